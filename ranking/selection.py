"""Model selection (SPEC §5): a validation window, early stopping and the best checkpoint.

**Validation window.** `--validation=GLOB` (held-out logs) or `--validation_days=N`: the last N
UTC days of the training input, by timestamp (never a random split: the tables are time
splits), held out from training. Validation rows are labelled like training rows, with the same
stats artifact. Validation runs at each epoch's end, or every `--validate_every` steps; its
metrics go to TensorBoard (`logs/validation`) and to `history.json` in the model directory.
The window is read, parsed and labelled at its first validation and kept in memory when it fits
`--validation_cache_mb` (`ranking.data.CachedBatches`): a day of validation rows otherwise costs
a pass over every training file (the days filter reads them all) at every validation.

**Early stopping.** The metric (`--early_stopping_metric`, `METRICS`) improves when it beats the
best so far by more than `--min_delta` (in its direction); after `--patience` validations
without improvement training stops; `--max_epochs` bounds the epochs. The default metric
matches what the preset serves (`default_metric`): the valid-read AUC of the served score for
the click-reweighting presets, the click AUC for CTR-only ones, the click log loss plus the
cross-entropy of the served dwell distribution for the dwell-bin and ORCA presets (both are
what their serving score is made of: p_ctr and the distribution over dwell bins), that
cross-entropy alone for a dwell-only model.

**Stopping ORCA where its backbone stops** (`raw_dwell_ce`, an option). An ORCA model's raw
dwell head and click tower are its backbone's at the same seed and step (the NDE's loss reaches
neither, unless `--shared_representation=gate_and_experts`). Stopping on the *served*
(debiased) head's loss, as the authors do, lets the NDE's curve pick the shared layers' epoch:
with the authors' protocol (no refit pass) on three simulated worlds it picked an earlier one
than the backbone's in 10 of 18 runs, whose raw heads then lost 7.8 % to their backbones on
average, nearly all of the debiased heads' 9.0 % over them (docs/orca.md, 2026-12-05).
`raw_dwell_ce` stops on the raw head's cross-entropy, which is the backbone's own `dwell_ce`:
the ORCA model stops at its backbone's step, so its click tower is the backbone's and its
debiased head is compared with the backbone at the same weights.

**The best checkpoint** is kept apart from the rolling ones: `best/` (a checkpoint of the model
alone, written under a temporary name and renamed) and `best.json` (step, epoch, metric and its
value). Those files, the refit's and history.json are read and written by
`ranking.selection_files`.

**Refit** (`--refit`). A validation window of the last days holds out the most recent logs, and
in a feed whose items are new each day those are the days that matter most to the next ones: on
the small simulated world, holding out the last of 11 training days costs a single-task CTR
model more test-day AUC than early stopping wins back. So by default (`validation`), once
training stops, the best checkpoint continues with one pass over the validation window
(shuffled, the training step, the optimizer as training left it, nothing validated any more):
the served model has then seen every day. It is written as `final/` and `final.json` (the best
step it started from, steps and rows of the pass). `none` serves the best checkpoint as
selected. The test-day evaluation (`eval_metrics.json`, which records `selected_step` and
`refit`) and `export.saved_model` use `final/` when there is one and it is the refit of
best.json's step (a run trained on after its pass, or started again with `--refit=none`, which
removes it, serves `best/`; so does a pass made before a resumed run trained on, with a larger
--max_epochs, from the same best checkpoint: final.json's `after_step` is then below the newest
rolling checkpoint's, and the run makes the pass again from the optimizer as training now leaves
it), else `best/` (`ranking.selection_files.served_checkpoint`). The pass runs on one worker
(one process, or the mirrored replicas of one); a multi-worker or parameter-server run with a
validation window needs `--refit=none`. The pass writes no rolling checkpoint, so a run killed
in it resumes at its end of training and makes the pass again from the same state.

**ORCA's served head** (`--orca_serve=validated`, `ranking.orca`): each validation of an ORCA
model also measures its debiased head against its raw head (`orca_debiased_gain` in
history.json, the mean DT gain over the five class metrics, `ranking.metrics.dt_class_gain`);
the value at the best validation is kept with the state, written to best.json, and decides
which head is served once selection ends (`ranking.loops.apply_served_head`).

**Exact resume.** The selection state (best value, step and epoch; validations without
improvement; the last validated step; stopped) is a `tf.Module` saved in the rolling checkpoint,
which is saved right after each validation. A run killed in training, in validation or between
them resumes from its last checkpoint, trains again to the validation point it had not
recorded, validates the same weights on the same rows (so to the same value) and goes on: it ends
at exactly the model an uninterrupted run ends at.
"""

from __future__ import annotations

import dataclasses
import math
import os

from core.errors import InputError
from core.settings import setting
from ranking import metrics
from ranking.selection_files import read_history, write_best, write_history

# name -> (direction: +1 higher is better, -1 lower is better, what it is, the serving outputs
# it reads beside the score, which every model serves)
METRICS = {
    "auc_valid_read": (+1, "AUC of the served score against valid_read", ()),
    "auc_ctr": (+1, "AUC of the served score against click", ()),
    "logloss_ctr": (-1, "log loss of the click tower", ("ctr",)),
    "dwell_ce": (-1, "cross-entropy of the served dwell distribution over clicked rows",
                 ("dwell_probs",)),
    "logloss_ctr+dwell_ce": (-1, "the click log loss plus the dwell cross-entropy",
                             ("ctr", "dwell_probs")),
    "raw_dwell_ce": (-1, "cross-entropy of the raw dwell head over clicked rows (ORCA: its "
                     "backbone's own criterion; other models: dwell_ce)", ("dwell_probs",)),
}
REFITS = ("validation", "none")


@dataclasses.dataclass(frozen=True)
class SelectionConfig:
    validation: str | None = setting(None, "Held-out validation logs (comma-separated globs), "
                                     "labelled like the training logs.")
    validation_days: int = setting(0, "Hold out the last N UTC days of --train, by timestamp, "
                                   "for validation.")
    validate_every: int | None = setting(None, "Steps between validations (default: at each "
                                         "epoch's end).")
    max_epochs: int = setting(10, "With a validation window, the most epochs to train (early "
                              "stopping ends sooner); without one, --epochs applies.")
    early_stopping_metric: str = setting(
        "auto", "Validation metric of early stopping and the best checkpoint (auto: what the "
        "preset serves).", choices=("auto",) + tuple(METRICS))
    patience: int = setting(2, "Validations without improvement before training stops.")
    min_steps: int = setting(
        0, "Global steps of warm-up whose validations do not count against --patience (as "
        "Keras' start_from_epoch, in steps, except that they still choose the best "
        "checkpoint): on small logs the validation metric can sit on a plateau for hundreds of "
        "steps before it rises.")
    min_delta: float = setting(0.0, "Smallest change of the metric that counts as an "
                               "improvement.")
    refit: str = setting("validation", "After early stopping: validation (the best checkpoint "
                         "trains one more pass, over the validation window, so the served "
                         "model has seen the latest days) or none (serve the best checkpoint).",
                         choices=REFITS)
    validation_cache_mb: int = setting(
        1024, "Keep the labelled validation window in memory after its first validation, up "
        "to this many MB (0: read, parse and label it again at each validation).")

    @property
    def enabled(self) -> bool:
        return bool(self.validation or self.validation_days)

    def check(self) -> None:
        if self.validation and self.validation_days:
            raise InputError("give --validation or --validation_days, not both")
        if self.min_steps < 0:
            raise InputError(f"--min_steps must be >= 0, not {self.min_steps}")
        if self.validation_days < 0 or self.max_epochs < 1 or self.patience < 1 or (
                self.validate_every is not None and self.validate_every < 1):
            raise InputError("--validation_days must be >= 0; --max_epochs, --patience and "
                             "--validate_every >= 1")
        if self.min_delta < 0:
            raise InputError(f"--min_delta must be >= 0, not {self.min_delta}")
        if self.validation_cache_mb < 0:
            raise InputError(f"--validation_cache_mb must be >= 0 (0: no cache), not "
                             f"{self.validation_cache_mb}")


def default_metric(config) -> str:
    """The early-stopping metric that matches what a model (its ModelConfig) serves."""
    serving = set(config.serving)
    if serving & {"valid_read", "weighted_valid_read"}:
        return "auc_valid_read"
    if "expected_ndt" in serving:
        return "logloss_ctr+dwell_ce" if "ctr" in serving else "dwell_ce"
    return "auc_ctr"


def metric_name(selection: SelectionConfig, model_config) -> str:
    return (default_metric(model_config) if selection.early_stopping_metric == "auto"
            else selection.early_stopping_metric)


def check_metric(selection: SelectionConfig, model_config, targets) -> None:
    """InputError, before a row is read or anything trained, when the early-stopping metric
    needs an output the model does not serve (e.g. a dwell metric of a CTR-only model);
    `targets` is the stats artifact's `DwellTargets`."""
    from ranking.models import output_names

    name = metric_name(selection, model_config)
    served = output_names(model_config, targets)
    missing = [output for output in METRICS[name][2] if output not in served]
    if missing:
        raise InputError(f"--early_stopping_metric={name} reads the model's "
                         f"{' and '.join(missing)}, which --model={model_config.preset} does "
                         f"not serve (it serves {', '.join(served)}); choose another metric")


def check_validation_clicks(selection: SelectionConfig, model_config, rows: int,
                            clicks: int) -> None:
    """InputError, before anything is trained, when the validation window (`rows` rows,
    `clicks` clicks, from the counting pass) has no click: then every early-stopping metric but
    the click log loss is undefined there (an AUC needs both classes, the dwell metrics
    clicks), which the first validation would find only after an epoch."""
    name = metric_name(selection, model_config)
    if clicks or name == "logloss_ctr":
        return
    raise InputError(f"the validation window has {rows:,} rows and no click, so "
                     f"--early_stopping_metric={name} is undefined there (an AUC needs both "
                     "classes, the dwell metrics need clicks): hold out other days "
                     "(--validation_days) or logs (--validation), or choose "
                     "--early_stopping_metric=logloss_ctr")


def metric_value(name: str, result: dict) -> float:
    """The value of metric `name` in an `evaluation_metrics` result; InputError when the model
    has no head the metric reads (refused before training by `check_metric`; kept for a
    result that lacks one all the same)."""
    try:
        if name == "dwell_ce":
            return float(result["dt_cross_entropy"])
        if name == "logloss_ctr+dwell_ce":
            return float(result["logloss_ctr"]) + float(result["dt_cross_entropy"])
        if name == "raw_dwell_ce":
            return float(result.get("raw_dwell", result)["dt_cross_entropy"])
        return float(result[name])
    except KeyError as missing:
        raise InputError(f"--early_stopping_metric={name}: this model's validation has no "
                         f"{missing.args[0]} (the metric needs a head the model does not have)"
                         ) from None


def undefined_metric(metric: str, labels: dict) -> str:
    """Why a run's validations have no value of `metric` (NaN), for the user: the
    validation logs' counts (`labels`: click and valid_read arrays [rows]), since an AUC needs
    both classes and the dwell metrics need clicks; else the model's outputs diverged."""
    import numpy as np

    rows = len(labels["click"])
    clicks, reads = int(np.sum(labels["click"])), int(np.sum(labels["valid_read"]))
    return (f"--early_stopping_metric={metric} is undefined (NaN) on the validation logs, and "
            f"no validation before had a value; they have {rows:,} rows, {clicks:,} clicks, "
            f"{reads:,} valid reads (an AUC needs both classes, the dwell metrics need clicks): "
            "choose other validation logs or days, or another metric; if both classes are "
            "there, the model's outputs are not finite (lower --learning_rate)")


def improves(value: float, best: float, direction: int, min_delta: float) -> bool:
    """Whether `value` beats `best` by more than `min_delta` in `direction`; a NaN never
    improves, anything improves on a NaN best (no validation yet)."""
    if math.isnan(value):
        return False
    return math.isnan(best) or direction * (value - best) > min_delta


def _read(variable):
    """A state variable's value: a cluster's mirrored variables (made in the strategy's scope)
    have no int() or float() of their own."""
    return variable.numpy()


class Selection:
    """The early-stopping state as checkpointed variables (module docstring)."""

    def __init__(self, metric: str, patience: int, min_delta: float, min_steps: int = 0):
        import tensorflow as tf

        self.metric, self.patience, self.min_delta = metric, patience, min_delta
        self.min_steps = min_steps
        self.direction = METRICS[metric][0]
        aggregation = tf.VariableAggregation.ONLY_FIRST_REPLICA

        def variable(value, dtype, name):
            return tf.Variable(value, dtype=dtype, trainable=False, name=name,
                               aggregation=aggregation)

        self.module = tf.Module(name="selection")
        self.module.best_value = variable(float("nan"), tf.float64, "best_value")
        self.module.best_step = variable(-1, tf.int64, "best_step")
        self.module.best_epoch = variable(-1, tf.int64, "best_epoch")
        self.module.since_best = variable(0, tf.int64, "since_best")
        self.module.validated_step = variable(-1, tf.int64, "validated_step")
        self.module.stopped = variable(0, tf.int64, "stopped")
        # ORCA: the debiased head's mean DT gain over the raw head at the best validation
        # (percent; NaN for other models), which --orca_serve=validated decides by.
        self.module.best_head_gain = variable(float("nan"), tf.float64, "best_head_gain")
        # The training loss since the last validation (its mean goes to the history).
        self.module.loss_sum = variable(0.0, tf.float64, "loss_sum")
        self.module.loss_steps = variable(0, tf.int64, "loss_steps")

    def add_train_loss(self, loss: float) -> None:
        self.module.loss_sum.assign_add(loss)
        self.module.loss_steps.assign_add(1)

    def take_train_loss(self) -> float:
        """The mean training loss since the last call (NaN without a step), and a reset."""
        steps = int(_read(self.module.loss_steps))
        mean = float(_read(self.module.loss_sum)) / steps if steps else float("nan")
        self.module.loss_sum.assign(0.0)
        self.module.loss_steps.assign(0)
        return mean

    @property
    def stopped(self) -> bool:
        return bool(_read(self.module.stopped))

    @property
    def validated_step(self) -> int:
        return int(_read(self.module.validated_step))

    def update(self, value: float, step: int, epoch: int,
               head_gain: float = float("nan")) -> bool:
        """Records a validation of `value` at `step` (in 1-based `epoch`), with an ORCA model's
        `head_gain` (the debiased head's mean DT gain over the raw head, percent); returns
        whether it is the best so far. Stops after `patience` validations without
        improvement at global step `min_steps` or later (earlier ones choose the best but do
        not count against patience: Keras' start_from_epoch in steps, whose warm-up epochs
        do not choose the best either)."""
        m = self.module
        improved = improves(value, float(_read(m.best_value)), self.direction, self.min_delta)
        if improved:
            m.best_value.assign(value)
            m.best_head_gain.assign(head_gain)
            m.best_step.assign(step)
            m.best_epoch.assign(epoch)
            m.since_best.assign(0)
        elif step >= self.min_steps:  # the warm-up's validations do not count against patience
            m.since_best.assign_add(1)
        m.validated_step.assign(step)
        if int(_read(m.since_best)) >= self.patience:
            m.stopped.assign(1)
        return improved

    @property
    def best_head_gain(self) -> float:
        return float(_read(self.module.best_head_gain))

    def summary(self) -> dict:
        m = self.module
        summary = {"metric": self.metric, "value": float(_read(m.best_value)),
                   "step": int(_read(m.best_step)),
                   "epoch": int(_read(m.best_epoch))}
        if not math.isnan(self.best_head_gain):
            summary["orca_debiased_gain"] = self.best_head_gain
        return summary


# Early stopping this early is noted: the walk's news logs (38 steps an epoch) sat on a
# plateau of validation AUC 0.53-0.55 for 266 steps before rising to 0.75.
EARLY_STOP_NOTE_STEPS = 1000


def stopping_note(config: SelectionConfig, selection: Selection, global_step: int,
                  epochs_done: int) -> str | None:
    """A note on how a run with a validation window ended, or None: early stopping before
    EARLY_STOP_NOTE_STEPS global steps without --min_steps (a plateau looks like convergence
    to --patience), or --max_epochs reached (`epochs_done`) while the last validation was the
    best (the metric was still improving)."""
    summary = selection.summary()
    if selection.stopped and global_step < EARLY_STOP_NOTE_STEPS and not config.min_steps:
        return (f"note: early stopping ended training at step {global_step:,} (best step "
                f"{summary['step']:,}): on small logs the validation metric can sit on a "
                "plateau for hundreds of steps before it rises, which --patience="
                f"{config.patience} reads as the end; in a new --model_dir, "
                f"--min_steps={EARLY_STOP_NOTE_STEPS} trains that far (or to --max_epochs) "
                "before patience counts (the best validation is still served), or a smaller "
                "--batch_size gives more steps an epoch")
    if (not selection.stopped and epochs_done >= config.max_epochs and summary["step"] >= 0
            and summary["step"] == int(_read(selection.module.validated_step))):
        return (f"note: --max_epochs={config.max_epochs} ended training while the validation "
                f"metric was still improving ({summary['metric']} {summary['value']:.5f} at "
                f"the last validation, step {summary['step']:,}): more epochs may serve a "
                "better model")
    return None


class Validator:
    """Validates a run's model on its validation window and keeps what selection needs: the
    state (a `Selection`, in the run's checkpoint), history.json, TensorBoard scalars and the
    best checkpoint. Every task of a synchronous cluster validates (the same weights and rows
    give every task the same decision); only the chief writes."""

    def __init__(self, run, dataset_fn, config: SelectionConfig, say):
        from ranking import data, evaluation

        self.run, self.config, self.say = run, config, say
        self.batches = data.CachedBatches(dataset_fn, config.validation_cache_mb << 20)
        self.predict = evaluation.Predictor(run.model.network, run.config.model,
                                            run.model.targets)
        self.metric = metric_name(config, run.config.model)
        self.selection = Selection(self.metric, config.patience, config.min_delta,
                                   config.min_steps)
        self.history: list[dict] = []
        self.scratch = None  # a non-chief task's directory for what only the chief keeps

    def resume(self) -> None:
        """After the run's checkpoint is restored: the history it recorded."""
        if self.run.chief:
            self.history = read_history(self.run.model_dir, self.selection.validated_step)

    def validate(self, step: int, epoch: int) -> bool:
        """Validates the current weights at global `step` (in 1-based `epoch`); returns
        whether training stops."""
        import tensorflow as tf

        from ranking import evaluation

        run = self.run
        self.say(f"validating at step {step} (epoch {epoch})")
        outputs, labels = self.predict(self.batches)
        result = evaluation.evaluation_metrics(run.config.model, run.model.targets, outputs,
                                               labels)
        value = metric_value(self.metric, result)
        if math.isnan(value) and math.isnan(float(_read(self.selection.module.best_value))):
            raise InputError(undefined_metric(self.metric, labels))
        head_gain = (metrics.dt_class_gain(result, result["raw_dwell"]) if "raw_dwell" in result
                     else float("nan"))
        improved = self.selection.update(value, step, epoch, head_gain)
        if improved:
            write_best(run.model_dir, run.model, self.selection.summary(),
                       None if run.chief else self.scratch)
        entry = {"step": step, "epoch": epoch, "train_loss": self.selection.take_train_loss(),
                 self.metric: value, "best": improved}
        for key in ("auc_ctr", "auc_valid_read", "logloss_ctr", "dt_cross_entropy"):
            if key in result and key != self.metric:
                entry[key] = result[key]
        if "raw_dwell" in result:
            entry["orca_debiased_gain"] = head_gain
        if run.chief:
            self.history.append(entry)
            write_history(run.model_dir, self.history, self.metric, METRICS[self.metric][0])
            writer = tf.summary.create_file_writer(os.path.join(run.model_dir, "logs",
                                                                "validation"))
            with writer.as_default():
                for key, number in entry.items():
                    if key not in ("step", "epoch", "best") and number == number:
                        tf.summary.scalar(key, number, step=step)
        since = int(_read(self.selection.module.since_best))
        self.say(f"validation at step {step}: {self.metric} {value:.5f}"
                 + (" (best so far)" if improved else f" ({since} without improvement)")
                 + ("; stopping early" if self.selection.stopped else ""))
        return self.selection.stopped
