"""Training: `train_and_evaluate(config, model_dir)`, the one entry point behind `ranking.train`.

The loop is a custom `tf.distribute` loop rather than `Model.fit`, so that resuming is exact:
the checkpoint holds the model, the optimizer, the global step, the epoch and the number of
batches done in that epoch; the input order is a pure function of (seed, epoch) (see
`ranking.data`), so a run killed at any point resumes from its last checkpoint with the same
global step and the same next batch, and no epoch is lost or repeated.

The model directory's layout and checks: `ranking.model_dir`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import time

import numpy as np

from pipelines import atomic
from pipelines import labels as labels_lib
from pipelines.errors import InputError
from ranking import data, distribute, evaluation, features as features_lib
from ranking import model_dir as model_dir_lib
from ranking.models import ModelConfig, check_config
from ranking.tasks import bin_medians_for_model

STRATEGIES = distribute.STRATEGIES
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
    strategy: str = "default"  # ranking.distribute
    input_sharding: str = "files"  # multi-worker: files | rows (ranking.distribute)
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

    The `tf.distribute` strategy is made first (multi-worker strategies must configure
    collective ops before any other op runs). In a parameter-server cluster, a worker or ps
    task serves here until it is stopped (`ranking.distribute`); only the chief trains.

    Bad input met after the model directory was made (a value past the rows that set the
    column types, say) removes what this run wrote when the directory was new or empty; a
    directory being resumed keeps its checkpoints. Returns the metrics dict ({} without
    --eval, and on every task but the chief)."""
    _check_options(config)
    if distribute.is_server_task(config.strategy):
        distribute.serve_forever()
        return {}
    strategy = distribute.make_strategy(config.strategy)
    chief = distribute.is_chief(strategy)
    existed = os.path.isdir(model_dir)
    fresh = not (existed and os.listdir(model_dir))
    try:
        return _train_and_evaluate(config, model_dir, strategy, chief)
    except Exception as error:
        if (chief and fresh and _is_bad_input(error) and os.path.isdir(model_dir)
                and not isinstance(error, distribute.PeerFailed)):
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


@dataclasses.dataclass
class Run:
    """One training run's parts, as the loops (`ranking.loops`) use them."""

    config: TrainConfig
    model_dir: str
    strategy: object
    chief: bool
    spec: features_lib.FeatureSpec
    train_source: object
    labeler: object
    model: object
    optimizer: object
    balance: object
    checkpoint: object
    manager: object
    # Progress counters, on the host (outside the strategy): only the loop updates them.
    global_step: object
    epoch: object
    batch_in_epoch: object
    steps_per_epoch: object
    rows_per_file: np.ndarray | None = None  # int64 [training files] (the counting pass)
    workers: int = 1

    def save(self) -> None:
        """Writes a checkpoint at the global step (every task calls it; only the chief's
        directory keeps them)."""
        self.manager.save(checkpoint_number=int(self.global_step))


def _check_options(config: TrainConfig) -> None:
    try:
        check_config(config.model)
    except ValueError as error:
        raise InputError(str(error)) from None
    if config.batch_size < 1 or config.epochs < 1:
        raise InputError("--batch_size and --epochs must be >= 1")
    if config.metabalance and not (config.metabalance_ratio > 0
                                   and 0 <= config.metabalance_beta < 1):
        raise InputError("--metabalance_ratio must be > 0 and --metabalance_beta in [0, 1)")
    if config.input_sharding not in distribute.INPUT_SHARDINGS:
        raise InputError(f"--input_sharding must be one of "
                         f"{', '.join(distribute.INPUT_SHARDINGS)}, not {config.input_sharding!r}")
    if config.strategy == "parameter_server" and config.input_sharding != "files":
        raise InputError("--input_sharding=rows is for multi_worker_mirrored: parameter-server "
                         "workers take asynchronous steps from their own files")


def _train_and_evaluate(config: TrainConfig, model_dir: str, strategy, chief: bool) -> dict:
    import tensorflow as tf

    from ranking import loops

    parameter_servers = isinstance(strategy, tf.distribute.experimental.ParameterServerStrategy)
    workers = distribute.input_workers(strategy)
    if not parameter_servers and config.batch_size % strategy.num_replicas_in_sync:
        raise InputError(f"--batch_size {config.batch_size} must be a multiple of the "
                         f"{strategy.num_replicas_in_sync} replicas in sync")
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
    if workers > 1 and config.input_sharding == "files" and len(train_source.files) < workers:
        raise InputError(f"--input_sharding=files needs at least one training file per worker: "
                         f"{len(train_source.files)} file(s) for {workers} workers; split the "
                         "logs into more files or use --input_sharding=rows", file=config.train)
    # The labellers' counting pass reads every row of the inputs, so bad input is refused here,
    # before the model directory is created or touched. Under parameter servers the lookup
    # tables are made in the strategy's scope, which gives every worker its own copy.
    with strategy.scope() if parameter_servers else contextlib.nullcontext():
        labeler = labels_lib.labeler_for(train_source, artifact,
                                         allow_unclicked_dwell=config.allow_unclicked_dwell)
    eval_labeler = (labels_lib.labeler_for(eval_source, artifact,
                                           allow_unclicked_dwell=config.allow_unclicked_dwell)
                    if eval_source is not None else None)  # every task: the same refusals
    if config.allow_unclicked_dwell and config.progress != "none" and chief:
        counted = [("training", labeler)] + ([("evaluation", eval_labeler)] if eval_labeler
                                            else [])
        _say("--allow_unclicked_dwell: unclicked rows with dwell > 0 treated as 0: " + ", ".join(
            f"{what} {lab.unclicked_dwell_zeroed:,}" for what, lab in counted))
    description = model_dir_lib.model_description(config, spec, artifact)
    description["training"]["input_workers"] = workers
    if chief:
        note = model_dir_lib.layout_change(model_dir, description)
        resuming = model_dir_lib.prepare(model_dir, description)
        if note and resuming and config.progress != "none":
            _say(note)
    else:
        model_dir_lib.check_as_other_task(model_dir, description)
        resuming = True

    tf.keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    if config.progress != "none" and chief and (strategy.num_replicas_in_sync > 1
                                                or workers > 1):
        _say(f"{config.strategy}: {strategy.num_replicas_in_sync} replicas in sync, "
             f"{workers} input worker(s); global batch {config.batch_size}")
    run = _build(config, model_dir, strategy, chief, spec, train_source, labeler)
    run.rows_per_file, run.workers = labeler.rows_per_file, workers
    chief_dir = os.path.join(model_dir, "checkpoints")
    latest = tf.train.latest_checkpoint(chief_dir)
    if latest:  # every task restores the chief's checkpoint
        run.checkpoint.restore(latest).assert_existing_objects_matched()
        if chief:
            _say(f"resumed from {latest}: global step {int(run.global_step)}, "
                 f"epoch {int(run.epoch) + 1}, {int(run.batch_in_epoch)} batches into it")
    elif resuming and chief:
        _say(f"{model_dir} has this model's config.json but no checkpoint: starting at step 0")

    started = time.perf_counter()
    train = loops.train_parameter_server if parameter_servers else loops.train_synchronous
    throughputs = train(run, _say)
    training_seconds = time.perf_counter() - started
    if not chief:  # its checkpoints were only written for the collective ops' sake
        shutil.rmtree(os.path.dirname(run.manager.directory + "/"), ignore_errors=True)

    result = {}
    if eval_source is not None and chief:
        result = _evaluate_and_write(run, eval_source, artifact, eval_labeler, training_seconds,
                                     throughputs)
    if workers > 1 and not parameter_servers:
        # The other workers wait for the chief's evaluation, so that none leaves the cluster
        # while it still runs (the chief's coordination service would report it as failed).
        loops.barrier(strategy)
    return result


def _evaluate_and_write(run: Run, eval_source, artifact, eval_labeler, training_seconds: float,
                        throughputs: list) -> dict:
    """eval_metrics.json of a trained run (the chief's), with TensorBoard scalars."""
    import tensorflow as tf

    config, spec, model_dir, labeler = run.config, run.spec, run.model_dir, run.labeler
    model, global_step = run.model, run.global_step
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


def _build(config: TrainConfig, model_dir: str, strategy, chief: bool, spec, train_source,
           labeler) -> Run:
    """The model, optimizer, counters and checkpoint of a run, made in the strategy's scope."""
    import tensorflow as tf

    from ranking.models import RankingModel

    counters = {name: tf.Variable(0, dtype=tf.int64, trainable=False, name=name)
                for name in ("global_step", "epoch", "batch_in_epoch", "steps_per_epoch")}
    with strategy.scope():
        model = RankingModel(spec, config.model)
        # Create every variable now, so a restore fills them all at once.
        model({f.name: tf.zeros([1], f.dtype) for f in spec.features})
        optimizer = make_optimizer(config.optimizer, config.learning_rate, model,
                                   config.embedding_optimizer, config.embedding_learning_rate)
        # Slots now, not at the first step: a restore then fills them at once, which a
        # deferred restore into slots made later on parameter servers would not.
        if hasattr(optimizer, "build"):
            optimizer.build(model.trainable_variables)
        elif hasattr(optimizer, "_create_all_weights"):  # legacy Keras optimizers
            optimizer._create_all_weights(model.trainable_variables)  # noqa: SLF001
        balance = None
        if config.metabalance:
            from ranking.metabalance import MetaBalance

            towers = config.model.towers
            balance = MetaBalance(towers[0], towers[1:], config.metabalance_ratio,
                                  config.metabalance_beta)
    parts = dict(model=model, optimizer=optimizer, **counters)
    if balance is not None:
        parts["metabalance"] = balance
    checkpoint = tf.train.Checkpoint(**parts)
    if chief:
        manager = tf.train.CheckpointManager(checkpoint, os.path.join(model_dir, "checkpoints"),
                                             max_to_keep=config.keep_checkpoints)
    else:  # other workers write somewhere harmless, removed at the end (tf.distribute's way)
        task_id = strategy.cluster_resolver.task_id
        manager = tf.train.CheckpointManager(
            checkpoint, os.path.join(model_dir, f".worker-{task_id}-checkpoints"), max_to_keep=1)
    return Run(config=config, model_dir=model_dir, strategy=strategy, chief=chief, spec=spec,
               train_source=train_source, labeler=labeler, model=model, optimizer=optimizer,
               balance=balance, checkpoint=checkpoint, manager=manager, **counters)


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
