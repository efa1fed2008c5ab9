"""Training: `train_and_evaluate(config, model_dir)`, the one entry point behind `ranking.train`.

The loop is a custom `tf.distribute` loop rather than `Model.fit`, so that resuming is exact:
the checkpoint holds the model, the optimizer, the global step, the epoch and the number of
batches done in that epoch; the input order is a pure function of (seed, epoch) (see
`ranking.data`), so a run killed at any point resumes from its last checkpoint with the same
global step and the same next batch, and no epoch is lost or repeated.

The model directory:

    config.json           what the model is (preset, sizes, losses, feature spec, the stats it
                          was built with, training options): export rebuilds the model from it
    checkpoints/          tf.train.Checkpoint files, every --checkpoint_every steps and at each
                          epoch end (the newest --keep_checkpoints are kept)
    logs/train, logs/eval TensorBoard summaries (losses, examples/s; evaluation metrics)
    eval_metrics.json     SPEC §6 metrics on --eval (written at the end, atomically)

A model directory that holds another model (a different config.json, or files without one) is
refused; the same config resumes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import sys
import time

import numpy as np

from pipelines import atomic
from pipelines import labels as labels_lib
from pipelines.errors import InputError
from ranking import data, evaluation, features as features_lib
from ranking.models import ModelConfig, check_config
from ranking.tasks import bin_medians_for_model

CONFIG_FORMAT_VERSION = 1
STRATEGIES = ("default", "mirrored", "multi_worker_mirrored", "parameter_server")
OPTIMIZERS = ("lazy_adam", "adam", "adagrad", "sgd")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; flows as one object from the flags to the loop."""

    train: str
    stats: str
    eval: str | None = None
    model: ModelConfig = ModelConfig()
    feature_config: str | None = None
    post_click_features: tuple[str, ...] = ()
    batch_size: int = 2048
    epochs: int = 1
    steps_per_epoch: int | None = None  # None: the whole training input per epoch
    optimizer: str = "lazy_adam"  # Adam with row-wise embedding updates (ranking.optimizers)
    # 3e-3, not Keras' 1e-3: one epoch of small logs (~64 steps) is otherwise under-trained
    # (click AUC 0.604 against 0.574 on 170 k simulated rows; 0.610 and 0.611 on 1 M rows;
    # benchmarks/defaults.py).
    learning_rate: float = 3e-3
    embedding_optimizer: str = "same"  # same | adam | adagrad | sgd
    embedding_learning_rate: float = 0.05
    seed: int = 0
    shuffle_buffer: int = 65536  # rows
    checkpoint_every: int = 500  # steps
    keep_checkpoints: int = 3
    log_every: int = 100  # steps between TensorBoard summaries
    eval_batch_size: int = 8192
    baseline_metrics: str | None = None
    strategy: str = "default"
    schema: str | None = None
    allow_unclicked_dwell: bool = False
    deterministic: bool = False
    progress: str = "auto"  # auto (bars on a terminal) | bar | epoch | none
    metabalance: bool = False  # ranking.metabalance: balance auxiliary gradients
    metabalance_ratio: float = 1.0
    metabalance_beta: float = 0.9

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def with_artifact(model: ModelConfig, artifact: labels_lib.StatsArtifact) -> ModelConfig:
    """`model` with the targets' scales from the stats artifact: mu and sigma of ln dwell (the
    log-dwell tower's standardization), the dwell bins' medians in seconds (an empty bin's
    replaced by its edges' geometric mean) and the NDT of each median."""
    stats = artifact.stats
    medians = bin_medians_for_model(stats["dwell_bin_medians"], stats["dwell_bin_edges"])
    bin_ndt = artifact.ndt(np.asarray(medians, np.float64))
    return dataclasses.replace(model, log_dwell_mean=float(stats["mu"]),
                               log_dwell_std=float(stats["sigma"]),
                               dwell_bin_medians=medians,
                               dwell_bin_ndt=tuple(float(v) for v in bin_ndt))


def model_description(config: TrainConfig, spec: features_lib.FeatureSpec,
                      artifact: labels_lib.StatsArtifact) -> dict:
    """The content of config.json: what export and scoring need to rebuild the model."""
    stats = artifact.stats
    description = {
        "format_version": CONFIG_FORMAT_VERSION,
        "model": dataclasses.asdict(config.model),
        "features": spec.to_json(),
        "stats": {"path": os.path.abspath(artifact.path), "ndt": stats["ndt"],
                  "dwell_bin_edges": stats["dwell_bin_edges"],
                  "dwell_bin_medians": stats["dwell_bin_medians"],
                  "x_l": stats["x_l"], "x_h": stats["x_h"]},
        "training": {k: v for k, v in config.to_json().items() if k != "model"},
    }
    return json.loads(json.dumps(description))  # as it reads back from disk (lists, not tuples)


def load_model_description(model_dir: str) -> dict:
    """Reads `model_dir/config.json`; InputError if it is missing or of another version."""
    path = os.path.join(model_dir, "config.json")
    if not os.path.isfile(path):
        raise InputError(f"{model_dir} is not a model directory (no config.json); train one "
                         "with python -m ranking.train")
    with open(path) as handle:
        description = json.load(handle)
    if description.get("format_version") != CONFIG_FORMAT_VERSION:
        raise InputError(f"has format_version {description.get('format_version')!r}; this "
                         f"dwellrank reads version {CONFIG_FORMAT_VERSION}", file=path)
    return description


def build_from_description(description: dict):
    """(FeatureSpec, ModelConfig) of a model directory's config.json."""
    config = ModelConfig.from_json(description["model"])
    return features_lib.FeatureSpec.from_json(description["features"]), config


def _identity(description: dict) -> dict:
    # What must match for a run to continue in an existing model directory.
    training = description["training"]
    return {"model": description["model"], "features": description["features"],
            "stats": description["stats"],
            "training": {k: training.get(k) for k in (
                "train", "batch_size", "seed", "optimizer", "embedding_optimizer",
                "shuffle_buffer", "steps_per_epoch", "metabalance", "metabalance_ratio",
                "metabalance_beta")}}


def _prepare_model_dir(model_dir: str, description: dict) -> bool:
    """Creates or checks the model directory; returns True when resuming."""
    config_path = os.path.join(model_dir, "config.json")
    if os.path.isdir(model_dir) and os.listdir(model_dir):
        if not os.path.isfile(config_path):
            raise InputError(f"--model_dir {model_dir} is not empty and holds no config.json: "
                             "it is not a dwellrank model directory; choose an empty directory")
        existing = load_model_description(model_dir)
        if _identity(existing) != _identity(description):
            changed = [k for k in ("model", "features", "stats", "training")
                       if _identity(existing)[k] != _identity(description)[k]]
            raise InputError(f"--model_dir {model_dir} holds another model (its config.json "
                             f"differs in: {', '.join(changed)}); choose an empty directory "
                             "to train a new model", file=config_path)
        resuming = True
    else:
        os.makedirs(model_dir, exist_ok=True)
        resuming = False
    with atomic.atomic_file(config_path) as handle:
        json.dump(description, handle, indent=2)
    return resuming


def make_strategy(name: str):
    """The `tf.distribute` strategy of `--strategy` (cluster from TF_CONFIG for multi-worker)."""
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        # Every GPU, or without GPUs every logical CPU device (MirroredStrategy's own default
        # would take only the first CPU).
        devices = ([d.name for d in tf.config.list_logical_devices("GPU")]
                   or [d.name for d in tf.config.list_logical_devices("CPU")])
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker_mirrored":
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "parameter_server":
        raise InputError("--strategy=parameter_server is not supported by this training loop "
                         "yet (it needs a ClusterCoordinator loop); use multi_worker_mirrored")
    raise InputError(f"--strategy must be one of {', '.join(STRATEGIES)}, not {name!r}")


def _is_chief(strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker"
                                             and resolver.task_id == 0
                                             and "chief" not in resolver.cluster_spec().as_dict())


def make_optimizer(name: str, learning_rate: float, model=None,
                   embedding_optimizer: str = "same", embedding_learning_rate: float = 0.05):
    """The optimizer of `--optimizer`; with `embedding_optimizer` other than "same", embedding
    tables get their own (a tfrs CompositeOptimizer of legacy Keras optimizers).

    `lazy_adam` (`ranking.optimizers.LazyAdam`) is Adam on dense variables and updates only the
    embedding rows of the batch; Keras' `adam` decays both moments of every row of every table
    at every step, which for two 131,072 x 16 id tables is most of a training step on 2 CPUs.
    Adagrad and SGD touch only the rows in the batch too."""
    import tensorflow as tf

    from ranking.optimizers import LazyAdam

    legacy = embedding_optimizer != "same"
    family = tf.keras.optimizers.legacy if legacy else tf.keras.optimizers
    makers = {"adam": family.Adam, "lazy_adam": LazyAdam, "adagrad": family.Adagrad,
              "sgd": family.SGD}
    if name not in makers:
        raise InputError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, not {name!r}")
    if not legacy:
        return makers[name](learning_rate)
    if embedding_optimizer not in makers:
        raise InputError(f"--embedding_optimizer must be same or one of "
                         f"{', '.join(OPTIMIZERS)}, not {embedding_optimizer!r}")
    import tensorflow_recommenders as tfrs

    # The embedding tables are the encoder's (by identity, not by a name pattern).
    tables = {id(layer.embeddings) for layer in
              model.network.get_layer("features").embeddings.values()}

    def embeddings():
        return [v for v in model.trainable_variables if id(v) in tables]

    def others():
        return [v for v in model.trainable_variables if id(v) not in tables]

    return tfrs.experimental.optimizers.CompositeOptimizer([
        (makers[embedding_optimizer](embedding_learning_rate), embeddings),
        (makers[name](learning_rate), others)])


def _say(message: str) -> None:
    print(message, flush=True)


def train_and_evaluate(config: TrainConfig, model_dir: str) -> dict:
    """Trains `config.model` on `config.train`, checkpointing into `model_dir` and resuming from
    it; then evaluates on `config.eval` (when given) and writes eval_metrics.json.

    Bad input met after the model directory was made (a value past the rows that set the
    column types, say) removes what this run wrote when the directory was new or empty; a
    directory being resumed keeps its checkpoints. Returns the metrics dict ({} without
    --eval)."""
    existed = os.path.isdir(model_dir)
    fresh = not (existed and os.listdir(model_dir))
    try:
        return _train_and_evaluate(config, model_dir)
    except Exception as error:
        if fresh and _is_bad_input(error) and os.path.isdir(model_dir):
            for name in os.listdir(model_dir):
                path = os.path.join(model_dir, name)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
            if not existed:
                os.rmdir(model_dir)
        raise


def _is_bad_input(error: Exception) -> bool:
    if isinstance(error, InputError):
        return True
    from pipelines import logs

    return logs.translate_error(error) is not None


def _train_and_evaluate(config: TrainConfig, model_dir: str) -> dict:
    import tensorflow as tf

    try:
        check_config(config.model)
    except ValueError as error:
        raise InputError(str(error)) from None
    if config.batch_size < 1 or config.epochs < 1:
        raise InputError("--batch_size and --epochs must be >= 1")
    if config.metabalance and not (config.metabalance_ratio > 0
                                   and 0 <= config.metabalance_beta < 1):
        raise InputError("--metabalance_ratio must be > 0 and --metabalance_beta in [0, 1)")
    if config.schema:
        from pipelines import validation

        validation.check_input(config.train, config.schema)
        if config.eval:
            validation.check_input(config.eval, config.schema)
    artifact = labels_lib.load_artifact(config.stats)
    config = dataclasses.replace(config, model=dataclasses.replace(
        with_artifact(config.model, artifact), mask_seed=config.seed))
    train_source = data.open_source(config.train)
    spec = features_lib.build_feature_spec(
        train_source.schema, artifact.stats.get("numeric_features", {}),
        features_lib.load_feature_config(config.feature_config), config.post_click_features,
        config_path=config.feature_config)
    if config.model.uses_orca and config.model.mask_prob > 0 and not spec.post_click:
        raise InputError(f"{config.model.preset}: ORCA's counterfactual masking needs "
                         "post-click features (--post_click_features or post_click in the "
                         "feature config); or set --mask_prob=0")
    train_source = data.open_source(config.train, spec)
    eval_source = data.open_source(config.eval, spec) if config.eval else None
    # The labellers' counting pass reads every row of the inputs, so bad input is refused here,
    # before the model directory is created or touched.
    labeler = labels_lib.labeler_for(train_source, artifact,
                                     allow_unclicked_dwell=config.allow_unclicked_dwell)
    eval_labeler = (labels_lib.labeler_for(eval_source, artifact,
                                           allow_unclicked_dwell=config.allow_unclicked_dwell)
                    if eval_source is not None else None)
    if config.allow_unclicked_dwell and config.progress != "none":
        counted = [("training", labeler)] + ([("evaluation", eval_labeler)] if eval_labeler
                                            else [])
        _say("--allow_unclicked_dwell: unclicked rows with dwell > 0 treated as 0: " + ", ".join(
            f"{what} {lab.unclicked_dwell_zeroed:,}" for what, lab in counted))
    description = model_description(config, spec, artifact)
    resuming = _prepare_model_dir(model_dir, description)

    tf.keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    strategy = make_strategy(config.strategy)
    chief = _is_chief(strategy)
    if strategy.num_replicas_in_sync > 1 and config.progress != "none":
        _say(f"{config.strategy}: {strategy.num_replicas_in_sync} replicas in sync; "
             f"global batch {config.batch_size}")
    from ranking.models import RankingModel

    # Progress counters live on the host, outside the strategy: only this loop updates them.
    global_step = tf.Variable(0, dtype=tf.int64, trainable=False, name="global_step")
    epoch_var = tf.Variable(0, dtype=tf.int64, trainable=False, name="epoch")
    batch_in_epoch = tf.Variable(0, dtype=tf.int64, trainable=False, name="batch_in_epoch")
    steps_per_epoch_seen = tf.Variable(0, dtype=tf.int64, trainable=False, name="steps_per_epoch")
    with strategy.scope():
        model = RankingModel(spec, config.model)
        # Create every variable now, so a restore fills them all at once.
        model({f.name: tf.zeros([1], f.dtype) for f in spec.features})
        optimizer = make_optimizer(config.optimizer, config.learning_rate, model,
                                   config.embedding_optimizer, config.embedding_learning_rate)
        if hasattr(optimizer, "build"):
            optimizer.build(model.trainable_variables)
        balance = None
        if config.metabalance:
            from ranking.metabalance import MetaBalance

            towers = config.model.towers
            balance = MetaBalance(towers[0], towers[1:], config.metabalance_ratio,
                                  config.metabalance_beta)
    parts = dict(model=model, optimizer=optimizer, global_step=global_step, epoch=epoch_var,
                 batch_in_epoch=batch_in_epoch, steps_per_epoch=steps_per_epoch_seen)
    if balance is not None:
        parts["metabalance"] = balance
    checkpoint = tf.train.Checkpoint(**parts)
    checkpoint_dir = os.path.join(model_dir, "checkpoints")
    if not chief:  # other workers write somewhere harmless (tf.distribute's convention)
        checkpoint_dir = os.path.join(model_dir, f".worker-{strategy.cluster_resolver.task_id}")
    manager = tf.train.CheckpointManager(checkpoint, checkpoint_dir,
                                         max_to_keep=config.keep_checkpoints)
    if manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
        _say(f"resumed from {manager.latest_checkpoint}: global step {int(global_step)}, "
             f"epoch {int(epoch_var) + 1}, {int(batch_in_epoch)} batches into it")
    elif resuming:
        _say(f"{model_dir} has this model's config.json but no checkpoint: starting at step 0")

    train_step = _make_train_step(model, optimizer, strategy, balance)
    writer = tf.summary.create_file_writer(os.path.join(model_dir, "logs", "train")) \
        if chief else tf.summary.create_noop_writer()
    show = config.progress if config.progress != "auto" else (
        "bar" if sys.stdout.isatty() else "epoch")

    started, throughputs = time.perf_counter(), []
    while int(epoch_var) < config.epochs:
        epoch = int(epoch_var)
        skip = int(batch_in_epoch)
        dataset = data.labelled_dataset(
            train_source, labeler, spec, config.batch_size, seed=config.seed, epoch=epoch,
            shuffle_buffer=config.shuffle_buffer,
            allow_unclicked_dwell=config.allow_unclicked_dwell)
        if config.steps_per_epoch:
            dataset = dataset.take(config.steps_per_epoch)
        dataset = dataset.skip(skip)
        batches = iter(strategy.experimental_distribute_dataset(dataset))
        target = int(steps_per_epoch_seen) or config.steps_per_epoch or None
        bar = None
        if show == "bar":
            print(f"epoch {epoch + 1}/{config.epochs}")
            bar = tf.keras.utils.Progbar(target, stateful_metrics=["loss"], unit_name="step")
            if skip:
                bar.update(skip)
        epoch_started, epoch_rows, losses = time.perf_counter(), 0, {}
        warm = None  # (time, rows) after the first step, which includes tracing
        with writer.as_default():
            for features, labels in batches:
                step_losses = train_step((features, labels))
                global_step.assign_add(1)
                batch_in_epoch.assign_add(1)
                step = int(global_step)
                epoch_rows += int(step_losses.pop("rows"))
                if warm is None:
                    warm = (time.perf_counter(), epoch_rows)
                losses = {k: float(v) for k, v in step_losses.items()}
                if bar is not None:
                    bar.update(int(batch_in_epoch), values=[("loss", losses["loss"])])
                if step % config.log_every == 0:
                    for name, value in losses.items():
                        tf.summary.scalar(f"loss/{name}", value, step=step)
                    tf.summary.scalar("examples_per_second",
                                      epoch_rows / (time.perf_counter() - epoch_started), step=step)
                if step % config.checkpoint_every == 0:
                    manager.save(checkpoint_number=step)
        if int(batch_in_epoch) == 0:
            raise InputError("the training input yielded no batch", file=config.train)
        steps_per_epoch_seen.assign(int(batch_in_epoch))
        epoch_var.assign_add(1)
        batch_in_epoch.assign(0)
        manager.save(checkpoint_number=int(global_step))
        now = time.perf_counter()
        seconds = now - epoch_started
        throughput = ((epoch_rows - warm[1]) / (now - warm[0])
                      if warm is not None and epoch_rows > warm[1] else float("nan"))
        throughputs.append(throughput)
        if show != "none":
            done = int(steps_per_epoch_seen) - skip
            _say(f"epoch {epoch + 1}/{config.epochs}: {done} steps in {seconds:.1f} s "
                 f"({throughput:,.0f} examples/s after the first step), "
                 f"global step {int(global_step)}, "
                 + ", ".join(f"{k} {v:.4f}" for k, v in losses.items()))
    training_seconds = time.perf_counter() - started

    if eval_source is None or not chief:
        return {}
    result = evaluate(model, eval_source, artifact, spec, config, eval_labeler)
    result["global_step"] = int(global_step)
    if config.allow_unclicked_dwell:
        result["unclicked_dwell_treated_as_zero"] = {
            "train": labeler.unclicked_dwell_zeroed, "eval": eval_labeler.unclicked_dwell_zeroed}
    result["training_seconds_this_run"] = training_seconds
    if throughputs:  # examples/s of this run's last epoch, after its first (tracing) step
        result["train_examples_per_second"] = throughputs[-1]
    with tf.summary.create_file_writer(os.path.join(model_dir, "logs", "eval")).as_default():
        for key in ("auc_ctr", "auc_valid_read"):
            tf.summary.scalar(key, result[key], step=int(global_step))
    with atomic.atomic_file(os.path.join(model_dir, "eval_metrics.json")) as handle:
        json.dump(result, handle, indent=2, allow_nan=True)
    return result


def evaluate(model, source, artifact, spec, config: TrainConfig, labeler=None) -> dict:
    """SPEC §6 metrics of `model` on the logs of `source`, labelled with `artifact` (by
    `labeler`, made for `source` when not given)."""
    labeler = labeler or labels_lib.labeler_for(
        source, artifact, allow_unclicked_dwell=config.allow_unclicked_dwell)
    dataset = data.labelled_dataset(source, labeler, spec, config.eval_batch_size,
                                    allow_unclicked_dwell=config.allow_unclicked_dwell)
    outputs, labels = evaluation.predict(model.network, dataset, config.model)
    result = evaluation.evaluation_metrics(
        config.model, outputs, labels, np.asarray(artifact.stats["dwell_bin_edges"]),
        # The model's medians: an empty bin's is its edges' geometric mean, not NaN.
        np.asarray(config.model.dwell_bin_medians or bin_medians_for_model(
            artifact.stats["dwell_bin_medians"], artifact.stats["dwell_bin_edges"]), float))
    result["eval"] = config.eval
    if config.baseline_metrics:
        try:
            with open(config.baseline_metrics) as handle:
                baseline = json.load(handle)
        except (OSError, ValueError) as error:
            raise InputError(f"cannot read the baseline metrics ({error})",
                             file=config.baseline_metrics) from None
        evaluation.add_rel_impr(result, baseline, baseline.get("preset", config.baseline_metrics))
    return result


def _make_train_step(model, optimizer, strategy, balance=None):
    import tensorflow as tf

    variables = model.trainable_variables
    shared = model.shared_variables() if balance is not None else []
    shared_ids = {id(v) for v in shared}
    others = [v for v in variables if id(v) not in shared_ids]

    def replica_step(batch):
        with tf.GradientTape(persistent=balance is not None) as tape:
            losses = model.task_losses(batch, training=True)
            total = tf.add_n(list(losses.values()))
        if balance is None:
            gradients = tape.gradient(total, variables)
            optimizer.apply_gradients(zip(gradients, variables))
        else:
            shared_gradients, other_gradients = balance.gradients(tape, losses, shared, others)
            optimizer.apply_gradients([(g, v) for g, v in zip(shared_gradients + other_gradients,
                                                              shared + others)
                                       if g is not None])
        return {"loss": total, **losses,
                "rows": tf.cast(tf.size(batch[1]["click"]), tf.float32)}

    @tf.function(reduce_retracing=True)
    def step(batch):
        per_replica = strategy.run(replica_step, args=(batch,))
        # Each replica's loss is already divided by the global batch: the sum is the loss.
        return {k: strategy.reduce(tf.distribute.ReduceOp.SUM, v, axis=None)
                for k, v in per_replica.items()}

    return step
