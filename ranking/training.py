"""Training: `train_and_evaluate(config, model_dir)`, the one entry point behind `ranking.train`.

The loop is a custom `tf.distribute` loop rather than `Model.fit`, so that resuming is exact:
the checkpoint holds the model, the optimizer, the global step, the epoch and the number of
batches done in that epoch; the input order is a pure function of (seed, epoch) (see
`ranking.data`), so a run killed at any point resumes from its last checkpoint with the same
global step and the same next batch, and no epoch is lost or repeated.

The model directory's layout and checks: `ranking.model_dir`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time

from core import atomic, stats_artifact, threads
from core.errors import InputError
from core.labeler import day_rows_of
from core.phases import Phases
from core.settings import setting
from ranking import (
    applicability,
    data,
    distribute,
    evaluation,
    input_notes,
    loops,
    metrics,
    orca,
    preemption,
    selection,
    selection_files,
    train_cache,
)
from ranking import features as features_lib
from ranking import model_dir as model_dir_lib
from ranking.metabalance import MetaBalanceConfig
from ranking.models import ModelConfig, check_config
from ranking.optimizers import OptimizerConfig
from ranking.run import build_run
from ranking.selection import SelectionConfig


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """Everything a training run needs; flows as one object from the flags to the loop. Each
    field with a help is a flag of `ranking.train` (`core.settings`)."""

    train: str = setting(help="Comma-separated globs of raw training logs.")
    stats: str = setting(help="Stats artifact of the training window (pipelines.stats).")
    eval: str | None = setting(None, "Comma-separated globs of raw evaluation logs.")
    model: ModelConfig = ModelConfig()
    feature_config: str | None = setting(None, "JSON feature config (see ranking/features.py).")
    post_click_features: tuple[str, ...] = setting((), "Features that mostly act on dwell time.")
    embedding_dim: int | None = setting(None, "Width of every categorical feature's embedding "
                                        "(default: ids 16, others 8; the feature config wins).",
                                        minimum=1)
    batch_size: int = setting(2048, "Global batch size (rows).", minimum=1)
    epochs: int = setting(1, "Passes over the training logs.")
    steps_per_epoch: int | None = setting(None, "Cap on steps per epoch (default: all rows).",
                                          minimum=1)
    optimizer: OptimizerConfig = OptimizerConfig()
    seed: int = setting(0, "Seed of initial weights and input order.", minimum=0,
                        maximum=2**32 - 1)
    shuffle_buffer: int = setting(65536, "Rows in the shuffle buffer.")
    train_cache_mb: int = setting(
        2048, "When the epochs left would read the training rows twice over (one worker, one "
        "replica): keep the labelled rows in memory up to this many MB, so that each row is "
        "read, parsed and labelled once, not every epoch (the same batches; 0: read the logs "
        "every epoch).")
    read_ahead_mb: int = setting(
        512, "One worker streaming its logs (not from --train_cache_mb): MB of labelled "
        "training batches read ahead of the training step, by a thread pool of every CPU but "
        "one (filled while the model is built and traced, so that the steps find their batches "
        "ready; 0: tf.data's own few batches).")
    checkpoint_every: int = setting(500, "Steps between checkpoints.", minimum=1)
    keep_checkpoints: int = setting(3, "Checkpoints kept.", minimum=1)
    log_every: int = setting(100, "Steps between TensorBoard summaries.", minimum=1)
    eval_batch_size: int = setting(8192, "Rows per evaluation batch.", minimum=1)
    baseline_metrics: str | None = setting(None, "eval_metrics.json of a baseline model: adds "
                                           "rel_impr.")
    strategy: str = setting(
        "default", "tf.distribute strategy; multi-worker strategies read the cluster from "
        "TF_CONFIG (BUILD.md). parameter_server: run this command on every task; the chief "
        "trains, workers and ps tasks serve.", choices=distribute.STRATEGIES)
    input_sharding: str = setting(
        "files", "multi_worker_mirrored: each worker reads its own files (files), or every file "
        "and its slice of each global batch (rows: exactly one process's batches).",
        choices=distribute.INPUT_SHARDINGS)
    schema: str | None = setting(None, "Curated schema.pbtxt: refuse anomalous input.")
    allow_unclicked_dwell: bool = setting(False, "Treat dwell > 0 on unclicked rows as 0.")
    deterministic: bool = setting(False, "Enable TensorFlow's op determinism (slower).")
    intra_op_threads: int = setting(
        1, "Threads one TensorFlow op may use (0: TensorFlow's choice, TF_NUM_INTRAOP_THREADS "
        "or one per core). 1: each op on one thread and independent ops (experts, towers) side "
        "by side, the faster on few cores for these small matmuls (core/threads.py); set "
        "before TensorFlow starts.")
    progress: str = setting("auto", "Keras progress bars (auto: on a terminal), one line per "
                            "epoch, or none (notes on the input and the evaluation are "
                            "printed either way).", choices=("auto", "bar", "epoch", "none"))
    metabalance: MetaBalanceConfig = MetaBalanceConfig()
    selection: SelectionConfig = SelectionConfig()

    def to_json(self) -> dict:
        return dataclasses.asdict(self)


def _say(message: str) -> None:
    print(message, flush=True)


def train_and_evaluate(config: TrainConfig, model_dir: str) -> dict:
    """Trains `config.model` on `config.train`, checkpointing into `model_dir` and resuming from
    it; then evaluates on `config.eval` (when given) and writes eval_metrics.json.

    The threads per op are set first, then the `tf.distribute` strategy is made (both only
    before the runtime's first op: multi-worker strategies configure collective ops). In a
    parameter-server cluster, a worker or ps task serves here until it is stopped
    (`ranking.distribute`); only the chief trains.

    Bad input met after the model directory was made (a value past the rows that set the
    column types, say) removes what this run wrote when the directory was new or empty and no
    checkpoint was written yet (one written before is kept, for the same command to resume);
    a directory being resumed keeps its checkpoints. Returns the metrics dict ({} without
    --eval, and on every task but the chief)."""
    phases = Phases()
    _check_options(config)
    note = threads.set_intra_op_threads(config.intra_op_threads)  # before the first op
    if note:  # a setting that does not apply is said even under --progress=none
        _say(note)
    for line in applicability.unread_settings(config):
        _say(line)
    note = distribute.lone_worker_note(config.strategy)
    if note:
        _say(note)
    if distribute.is_server_task(config.strategy):
        distribute.serve_forever(config.intra_op_threads)
        return {}
    strategy = distribute.make_strategy(config.strategy)
    chief = distribute.is_chief(strategy)
    try:
        # SIGTERM and Ctrl-C stop training at a checkpointed step (`ranking.preemption`): in
        # one process, on every task of a multi-worker mirrored cluster (they agree on the
        # step) and on a parameter-server cluster's chief (whose workers and ps tasks serve
        # in TensorFlow's C++ and never come here).
        with preemption.handled(True), distribute.peer_failures_named(config.strategy):
            return _train_and_evaluate(config, model_dir, strategy, chief, phases)
    except Exception as error:
        # A directory this run took as new (under its lock: `model_dir.prepare`) is emptied,
        # and removed when the run made it, unless the run wrote a checkpoint before the bad
        # input came (a bad row in the evaluation logs after hours of training: the same
        # command, the input mended, resumes there); one being resumed keeps its checkpoints.
        created = model_dir_lib.taken_as_new(model_dir)
        if (chief and created is not None and _is_bad_input(error)
                and not isinstance(error, distribute.PeerFailed)
                and selection_files.newest_checkpoint_step(model_dir) is None):
            for name in os.listdir(model_dir):
                path = os.path.join(model_dir, name)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
            if created:
                os.rmdir(model_dir)  # (before the lock's descriptor closes: no one takes it)
        raise
    finally:
        model_dir_lib.unlock(model_dir)


def _is_bad_input(error: Exception) -> bool:
    if isinstance(error, InputError):
        return True
    from core import log_diagnosis

    return log_diagnosis.translate_error(error) is not None


def _check_options(config: TrainConfig) -> None:
    try:
        check_config(config.model)
    except ValueError as error:
        raise InputError(str(error)) from None
    if config.baseline_metrics and config.eval:  # read at the end: a typo must not wait
        evaluation.read_baseline_metrics(config.baseline_metrics)
    if config.batch_size < 1 or config.epochs < 1:
        raise InputError("--batch_size and --epochs must be >= 1")
    # Ranges of the settings this run reads (one it does not read is a note, below).
    rates = [("learning_rate", config.optimizer.learning_rate)] + (
        [("embedding_learning_rate", config.optimizer.embedding_learning_rate)]
        if config.optimizer.embedding_optimizer != "same" else [])
    for flag, rate in rates:
        if not rate > 0:  # a negative rate climbs the loss: every score ends constant
            raise InputError(f"--{flag} must be > 0, not {rate}")
    if "weighted_valid_read" in config.model.tower_names and \
            not config.model.towers.negative_weight >= 0:
        raise InputError(f"--negative_weight must be >= 0 (a weight of the negatives' loss), "
                         f"not {config.model.towers.negative_weight}")
    if config.intra_op_threads < 0:
        raise InputError(f"--intra_op_threads must be >= 0 (0: TensorFlow's choice), not "
                         f"{config.intra_op_threads}")
    if config.shuffle_buffer < 0:
        raise InputError(f"--shuffle_buffer must be >= 0 (0: no row shuffle, the files' order "
                         f"only), not {config.shuffle_buffer}")
    if config.read_ahead_mb < 0:
        raise InputError(f"--read_ahead_mb must be >= 0 (0: tf.data's own prefetch), not "
                         f"{config.read_ahead_mb}")
    if config.train_cache_mb < 0:
        raise InputError(f"--train_cache_mb must be >= 0 (0: no cache), not "
                         f"{config.train_cache_mb}")
    config.selection.check()
    if config.metabalance.enabled and not (config.metabalance.ratio > 0
                                           and 0 <= config.metabalance.beta < 1):
        raise InputError("--metabalance_ratio must be > 0 and --metabalance_beta in [0, 1)")
    if config.input_sharding not in distribute.INPUT_SHARDINGS:
        raise InputError(f"--input_sharding must be one of "
                         f"{', '.join(distribute.INPUT_SHARDINGS)}, not {config.input_sharding!r}")
    if config.strategy == "parameter_server" and config.input_sharding != "files":
        raise InputError("--input_sharding=rows is for multi_worker_mirrored: parameter-server "
                         "workers take asynchronous steps from their own files")
    if config.strategy == "multi_worker_mirrored" and config.model.regularization.batch_norm:
        # Found 2026-12-03, cause not found: the workers' first step fails in a collective op
        # of the batch normalization ("Shape mismatch in the collective instance").
        raise InputError("--batch_norm does not train on multi_worker_mirrored here (its first "
                         "step fails in a collective op of the batch normalization); train "
                         "without it, or with --strategy=default or parameter_server")
    # Without ORCA, --orca_serve=validated is one of the ORCA settings the run does not read
    # (a note, `ranking.applicability`): one flagfile serves the presets with and without it.
    if (config.model.orca.serve == "validated" and config.model.uses_orca
            and not config.selection.enabled):
        raise InputError("--orca_serve=validated chooses the head on a validation window: give "
                         "--validation or --validation_days")
    if (config.strategy == "parameter_server" and config.model.uses_orca
            and config.model.orca.mask_scope == "batch"):
        raise InputError("--mask_scope=batch is for synchronous training: its NDE-only step "
                         "follows a masked batch's step, which asynchronous parameter-server "
                         "steps cannot order; use --mask_scope=row")


def _train_and_evaluate(config: TrainConfig, model_dir: str, strategy, chief: bool,
                        phases: Phases) -> dict:
    import tensorflow as tf

    parameter_servers = isinstance(strategy, tf.distribute.experimental.ParameterServerStrategy)
    workers = distribute.input_workers(strategy)
    if not parameter_servers and config.batch_size % strategy.num_replicas_in_sync:
        raise InputError(f"--batch_size {config.batch_size} must be a multiple of the "
                         f"{strategy.num_replicas_in_sync} replicas in sync")
    if (workers > 1 or parameter_servers) and config.selection.enabled and (
            config.selection.refit != "none"):
        raise InputError("--refit=validation (the default) makes its pass in one worker; on a "
                         "cluster pass --refit=none (the best checkpoint is served as "
                         "selected)")
    if parameter_servers and config.selection.validate_every:
        raise InputError("--validate_every is for synchronous training: parameter-server steps "
                         "are asynchronous, so a parameter-server run validates at epoch ends")
    if config.schema:
        from pipelines.validate import validation

        given = stats_artifact.given_column_types(config.stats)
        with phases("schema"):
            for glob in (config.train, config.selection.validation, config.eval):
                if glob:
                    validation.check_input(glob, config.schema,
                                           allow_unclicked_dwell=config.allow_unclicked_dwell,
                                           column_types=given, given_by="artifact")
    # The seed before any input pipeline or thread: tf.data's shuffle seeds combine it with
    # their own, and the model's initial weights come from it.
    tf.keras.utils.set_random_seed(config.seed)
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    with phases("inputs"):
        artifact = stats_artifact.load_artifact(config.stats)
        targets = artifact.targets
        config = dataclasses.replace(config, model=dataclasses.replace(
            config.model, orca=dataclasses.replace(config.model.orca, mask_seed=config.seed)))
        train_schema = data.open_source(config.train, artifact=artifact).schema
        spec = features_lib.build_feature_spec(
            train_schema, artifact.numeric_features,
            features_lib.load_feature_config(config.feature_config), config.post_click_features,
            config_path=config.feature_config, embedding_dim=config.embedding_dim)
        spec = model_dir_lib.in_stored_order(model_dir, spec)
        if config.model.uses_orca:
            orca.check_features(config.model.orca, spec, config.model.preset)
        if chief:  # notes on the input, under --progress=none too (it quiets progress)
            for note in (applicability.unread_post_click_marks(config, spec)
                         + input_notes.label_column_notes(train_schema, artifact.rules)
                         + input_notes.outcome_feature_notes(spec, artifact)
                         + input_notes.numeric_id_notes(spec)
                         + input_notes.id_bucket_notes(spec, artifact.clicked_users,
                                                       artifact.clicked_items,
                                                       artifact.feature_values)):
                _say(note)
        if config.model.towers.output_bias == "prior" and (
                "ctr" not in config.model.tower_names):
            raise InputError(f"--output_bias=prior sets the click tower's bias; the model "
                             f"{config.model.preset} has no click tower (ctr)")
        if config.selection.enabled:
            selection.check_metric(config.selection, config.model, targets)
        # Every task makes the same refusals (bad input, too few files) before anything is
        # written. One process alone counts the evaluation logs beside the model's build.
        single_process = (workers == 1 and strategy.num_replicas_in_sync == 1
                          and not parameter_servers)
        inputs = data.prepare_inputs(config, spec, artifact,
                                     strategy.scope() if parameter_servers else None,
                                     count_evaluation_in_background=single_process)
        if config.selection.enabled and inputs.validation is not None:
            selection.check_validation_clicks(config.selection, config.model,
                                              *data.validation_counts(inputs))
    if workers > 1 and config.input_sharding == "files" and len(inputs.train.files) < workers:
        raise InputError(f"--input_sharding=files needs at least one training file per worker: "
                         f"{len(inputs.train.files)} file(s) for {workers} workers; split the "
                         "logs into more files or use --input_sharding=rows", file=config.train)
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    if single_process and latest is None and not _uses_train_cache(
            config, inputs.rows_per_file, inputs.validation is not None):
        # A run starting at step 0 reads its first batch while the model is built and traced.
        inputs.first_epoch = data.ReadAhead(loops.single_worker_batches(
            config, inputs, spec, strategy, epoch=0, skip=0))
    say = _say if chief and config.progress != "none" else (lambda _: None)
    validator_factory = None
    if inputs.validation is not None:
        source, labeler, days = inputs.validation

        def validator_factory(run):
            return selection.Validator(run, lambda: data.labelled_dataset(
                source, labeler, spec, config.eval_batch_size,
                allow_unclicked_dwell=config.allow_unclicked_dwell, days=days),
                config.selection, say)

    def prepare_model_dir() -> bool:
        return _prepare_model_dir(config, model_dir, chief, workers, inputs,
                                  model_dir_lib.model_description(config, spec, artifact, targets),
                                  artifact.files)

    if not single_process:  # a cluster's tasks make the directory before they build together
        resuming = prepare_model_dir()
    with phases("build"):
        run = build_run(config, model_dir, strategy, chief, spec, targets, inputs, workers,
                        validator_factory, click_rate=artifact.clicks / max(artifact.rows, 1))
    if single_process:
        with phases("inputs"):
            inputs.wait_for_counts()  # bad evaluation input is refused before anything is written
        resuming = prepare_model_dir()
    if config.progress != "none" and chief and (strategy.num_replicas_in_sync > 1
                                                or workers > 1):
        _say(f"{config.strategy}: {strategy.num_replicas_in_sync} replicas in sync, "
             f"{workers} input worker(s); global batch {config.batch_size}")
    if latest:  # every task restores the chief's checkpoint
        model_dir_lib.read_checkpoint(run.checkpoint, latest, restore=True)
        if chief:
            wanted = (config.selection.max_epochs if run.validator is not None
                      else config.epochs)
            where = (f"epoch {int(run.epoch) + 1}, {int(run.batch_in_epoch)} batches into it"
                     if int(run.epoch) < wanted else f"its {int(run.epoch)} epoch(s) done")
            _say(f"resumed from {latest}: global step {int(run.global_step)}, {where}")
    elif resuming and chief:
        _say(f"{model_dir} has this model's config.json but no checkpoint: starting at step 0")
    if run.validator is not None:
        run.validator.resume()
        if chief and run.validator.selection.stopped:
            best = run.validator.selection.summary()
            _say(f"early stopping ended this run's training at step {int(run.global_step)} "
                 f"(best step {best['step']}): no more epochs, whatever --patience, "
                 "--min_steps or --max_epochs say now (a new --model_dir trains afresh)")

    if single_process and _uses_train_cache(
            config, run.rows_per_file, run.validator is not None, int(run.epoch),
            run.validator is not None and run.validator.selection.stopped):
        with phases("cache"):
            inputs.train_cache = train_cache.load(
                inputs.train, inputs.labeler, spec, config.train_cache_mb << 20,
                allow_unclicked_dwell=config.allow_unclicked_dwell)
        cache = inputs.train_cache
        # The files' rows: a file that straddles the validation window holds some of its
        # rows too, which the day filter leaves out as each epoch draws.
        trained = sum(int(n) for n in inputs.rows_per_file)
        others = (f" ({trained:,} on training days; the rest, of the validation window in the "
                  "same files, are filtered out as each epoch draws)"
                  if cache and cache.rows != trained else "")
        say(f"training rows in memory: {cache.rows:,} rows{others}, "
            f"{cache.nbytes / 2**20:,.0f} MB, "
            f"read and labelled in {cache.seconds:.1f} s (--train_cache_mb)" if cache else
            f"training rows not kept in memory: more than --train_cache_mb="
            f"{config.train_cache_mb} MB; each epoch reads the logs")
    started = time.perf_counter()
    steps_before = int(run.global_step)
    # The days this run learns from, kept across runs for the export's quality gate: its
    # training days before the loop when epochs remain (a run killed mid-loop keeps them),
    # again after it if it trained, and the window's once the refit pass trains on it.
    record = (model_dir_lib.read_training_days(model_dir) if chief else None) or {"train": {}}
    trains_on = input_notes.run_day_rows(record, False)
    epochs_wanted = config.selection.max_epochs if run.validator is not None else config.epochs
    stopped = run.validator is not None and run.validator.selection.stopped
    will_train = int(run.epoch) < epochs_wanted and not stopped
    if chief and will_train:
        model_dir_lib.add_learned_days(model_dir, trains_on)
    if chief:  # until the weights to serve are written (export says when it is there)
        model_dir_lib.mark_training(model_dir, running=True)
    train = loops.train_parameter_server if parameter_servers else loops.train_synchronous
    with phases("training"):
        throughputs = train(run, _say)
    if chief and run.validator is not None and int(run.global_step) > steps_before and (
            note := selection.stopping_note(config.selection, run.validator.selection,
                                            int(run.global_step), int(run.epoch))):
        _say(note)
    if chief and not will_train and int(run.global_step) > steps_before:
        model_dir_lib.add_learned_days(model_dir, trains_on)
    refit = run.validator is not None and config.selection.refit == "validation"
    # (A finished run started again finds its pass made: it trains nothing now.)
    refit_trains = refit and selection_files.read_final(model_dir) is None
    if refit:
        with phases("refit"):
            loops.refit_on_validation(run, say)  # with the served head (--orca_serve)
    if chief and refit_trains:
        model_dir_lib.add_learned_days(model_dir, {
            day: rows for day, rows in input_notes.run_day_rows(record, True).items()
            if trains_on.get(day) != rows})
    if run.validator is not None and not refit:
        if chief:  # --refit=none serves best/, not a refit pass an earlier run made here
            selection_files.remove_final(model_dir)
        loops.serve_best_with_head(run, say)
    if chief:
        model_dir_lib.mark_training(model_dir, running=False)
    training_seconds = time.perf_counter() - started
    if not chief:  # its checkpoints were only written for the collective ops' sake
        shutil.rmtree(os.path.dirname(run.manager.directory + "/"), ignore_errors=True)
        if run.validator is not None:
            selection_files.remove_scratch(run.validator.scratch)

    result = {}
    if inputs.evaluation is not None and chief:
        result = _evaluate_and_write(run, training_seconds, throughputs, phases)
    if workers > 1 and not parameter_servers:
        # The other workers wait for the chief's evaluation, so that none leaves the cluster
        # while it still runs (the chief's coordination service would report it as failed).
        loops.final_barrier(strategy)
    return result


def _prepare_model_dir(config: TrainConfig, model_dir: str, chief: bool, workers: int,
                       inputs, description: dict, stats_files=()) -> bool:
    """Makes or checks the model directory (the chief) or checks it (another task); says what
    --allow_unclicked_dwell treated as 0 and the input's notes (`input_notes.input_lines`,
    with the stats artifact's file records `stats_files`); returns whether the run resumes."""
    if config.allow_unclicked_dwell and chief:
        _say("--allow_unclicked_dwell: unclicked rows with dwell > 0 treated as 0: " + ", ".join(
            f"{what} {lab.unclicked_dwell_zeroed:,}" for what, lab in inputs.labellers()))
    if chief:
        for line in input_notes.input_lines(config, inputs, stats_files):
            _say(line)
    description["training"]["input_workers"] = workers
    if not chief:
        model_dir_lib.check_as_other_task(model_dir, description)
        return True
    note = model_dir_lib.layout_change(model_dir, description)
    older = model_dir_lib.defaults_change(model_dir, description)
    resuming = model_dir_lib.prepare(model_dir, description)
    validation = (day_rows_of(inputs.validation[1].file_day_rows or {})
                  if inputs.validation is not None and config.selection.validation else None)
    train_days = day_rows_of(inputs.labeler.file_day_rows or {})
    recorded = model_dir_lib.read_training_days(model_dir) if resuming else None
    grown = input_notes.input_change_note(recorded, train_days, validation,
                                          config.selection.validation_days)
    model_dir_lib.write_training_days(model_dir, train_days,
                                      config.selection.validation_days, validation)
    for line in (note, older, grown):
        if line and resuming:
            _say(line)
    return resuming


def _uses_train_cache(config, rows_per_file, validating: bool, epochs_done: int = 0,
                      stopped: bool = False) -> bool:
    """Whether a single-process run keeps its training rows in memory (--train_cache_mb): when
    the epochs it may still train after `epochs_done` (to --epochs, or to --max_epochs when it
    is `validating` and selection has not `stopped` it) would read the training rows
    (`rows_per_file`) at least twice over, so that the cache saves a pass
    (`ranking.train_cache`)."""
    if not config.train_cache_mb or stopped:
        return False
    epochs = config.selection.max_epochs if validating else config.epochs
    rows = int(rows_per_file.sum())
    per_epoch = rows if not config.steps_per_epoch else min(
        rows, config.steps_per_epoch * config.batch_size)
    return (epochs - epochs_done) * per_epoch >= 2 * rows > 0


def _evaluate_and_write(run, training_seconds: float, throughputs: list, phases: Phases) -> dict:
    """eval_metrics.json of a trained run (the chief's), with TensorBoard scalars: of the
    checkpoint it serves when the run has a validation window (the refit one, else the best:
    `selection_files.served_checkpoint`), else of the weights it ended with."""
    import tensorflow as tf

    config, spec, model_dir = run.config, run.spec, run.model_dir
    model, global_step = run.model, run.global_step
    eval_source, eval_labeler = run.inputs.evaluation
    with phases("evaluation"):
        served = None
        if run.validator is not None:
            served = selection_files.served_checkpoint(model_dir)
            if served is None:
                raise InputError("training ended without a validation (no best checkpoint)",
                                 file=model_dir)
        dataset = data.labelled_dataset(eval_source, eval_labeler, spec, config.eval_batch_size,
                                        allow_unclicked_dwell=config.allow_unclicked_dwell)
        # The first batch is read (tf.data's threads) while the served weights are restored
        # and the forward pass is traced (Python): 0.2-0.3 s of a one-epoch run.
        batches = data.ReadAhead(iter(dataset))
        if served is not None:
            model_dir_lib.read_checkpoint(tf.train.Checkpoint(model=model), served)
        head = orca.serving_head(model.network) if config.model.uses_orca else None
        predictor = evaluation.Predictor(model.network, config.model, model.targets)
        predictor.trace(dataset.element_spec[0])
        result = evaluation.evaluate(model, batches, config.baseline_metrics, predictor)
    if head is not None:  # ORCA: the dwell head the evaluated (and exported) weights serve
        result["orca_served_head"] = head
    result["eval"] = config.eval
    result["global_step"] = int(global_step)
    if run.validator is not None:
        result["selection"] = run.validator.selection.summary()
        result["selected_step"] = result["selection"]["step"]
        result["refit"] = selection_files.read_final(model_dir)
    if config.allow_unclicked_dwell:
        result["unclicked_dwell_treated_as_zero"] = {
            what: labeler.unclicked_dwell_zeroed for what, labeler in run.inputs.labellers()}
    result["training_seconds_this_run"] = training_seconds
    if throughputs:  # examples/s of this run's last epoch, after its first (tracing) step
        result["train_examples_per_second"] = throughputs[-1]
    step = result.get("selected_step", int(global_step))
    with tf.summary.create_file_writer(os.path.join(model_dir, "logs", "eval")).as_default():
        for key in ("auc_ctr", "auc_valid_read"):
            tf.summary.scalar(key, result[key], step=step)
    # Where this process's time went, up to here (the write that follows is not in it).
    result["phase_seconds"] = phases.summary()
    with atomic.atomic_file(os.path.join(model_dir, "eval_metrics.json")) as handle:
        # Strict JSON: an undefined metric (e.g. AUC on eval logs of one class) is null.
        json.dump(metrics.json_ready(result), handle, indent=2, allow_nan=False)
    return result
