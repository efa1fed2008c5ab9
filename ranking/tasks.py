"""Tasks: each owns its label, its tower's outputs, its loss and weights, and what evaluation and
serving read from it (tensorflow-recommenders' `tasks/` style: one base class, one small
subclass per task). Models, evaluation, export and scoring ask the task; none branches on a
task's name.

| task                  | label       | tower units | outputs                                  | loss (sum / denominator)            |
|-----------------------|-------------|-------------|------------------------------------------|-------------------------------------|
| `ctr`                 | click       | 1           | `ctr_logit`, `ctr`                       | BCE / N                             |
| `valid_read`          | valid_read  | 1           | `valid_read_logit`, `valid_read`         | BCE / N                             |
| `weighted_valid_read` | valid_read  | 1           | `weighted_valid_read_logit`, ...         | w * BCE / N, w = ndt or negative w. |
| `log_dwell`           | log_dwell   | 1           | `log_dwell`, `dwell_seconds`             | click * squared error / N           |
| `dwell_bins`          | dwell_bin   | num_bins    | `dwell_logits`, `dwell_probs`,           | CE over clicked rows / N (or clicks)|
|                       |             |             | `expected_dwell_seconds`, `expected_ndt` |                                     |
| `entire_space_dwell`  | dwell_bin   | num_bins    | as `dwell_bins`                          | CE of (no click, click in bin k)/ N |
| `nde` (ORCA)          | dwell_bin   | (none)      | as `dwell_bins`, debiased; `nde_logits`  | beta * w * CE over clicked / N      |

Under ORCA the `dwell_bins` tower is the raw one: its outputs are `raw_dwell_logits`, ... and
its loss weighs `alpha`; the served `dwell_*` outputs are the `nde` task's (`ranking.orca`).

N is the global batch size, "clicks" the global batch's clicked rows (see `ranking.losses`).
The dwell-bin losses count clicked rows only (SPEC §4) and divide by N like every loss here
(`dt_denominator` "batch", the default), or by the clicks ("clicks", the mean over clicked
rows, which weighs the dwell task ~1/CTR times more against the click task): on 1 M simulated
rows `ple`'s ctr tower reached a click AUC of 0.6128 with N against 0.6042 with the clicks, at
the same dwell-bin error (MAEclass 1.082 against 1.072). `entire_space_dwell` is ESMM's view of
the same target: a
(num_bins + 1)-way outcome of every impression, p(no click) = 1 - p_ctr and
p(click, bin k) = p_ctr * p(bin k | click), so it trains on all impressions.

A task's `serving_output` is the output its preset may add to the serving score (`ctr`,
`valid_read`, `weighted_valid_read`, `expected_ndt`), `serving_outputs` every output export
writes, `evaluate` its SPEC §6 metrics.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Sequence

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from ranking import losses, metrics

# Label columns every task may need, as the labeller produces them.
LABEL_KEYS = ("click", "valid_read", "ndt", "log_dwell", "dwell_bin", "dwell_time")
# Largest predicted log1p(dwell) turned into seconds (e^12 s is about 1.9 days).
MAX_LOG_DWELL = 12.0


@dataclasses.dataclass(frozen=True)
class TaskOptions:
    """What the tasks need beyond their names (from the model config and the stats artifact).

    negative_weight, negative_weighting: the click-reweighting loss (SPEC §4).
    log_dwell_mean, log_dwell_std: the log-dwell tower predicts (log1p(T) - mean) / std.
    dwell_bin_medians: seconds, one per bin (the bins' representative values);
    dwell_bin_ndt: ndt of each median (for `expected_ndt`).
    """

    negative_weight: float = 1.0
    negative_weighting: str = "unit"  # unit | ndt
    log_dwell_mean: float = 0.0
    log_dwell_std: float = 1.0
    dwell_bin_medians: tuple[float, ...] = ()
    dwell_bin_ndt: tuple[float, ...] = ()
    # ORCA (SPEC §4): the raw dwell tower's outputs are `raw_*` and its loss weighs `alpha`;
    # the `nde` task's weighs `beta`, with instance weights relu(l_ctr^a l_dt^b + c).
    dt_denominator: str = "batch"  # dwell-bin losses: / batch size or / clicks (losses.py)
    orca: bool = False
    alpha: float = 1.0
    beta: float = 1.0
    instance_weights: bool = True
    iw_a: float = -0.1
    iw_b: float = 0.8
    iw_c: float = -0.2

    @property
    def num_bins(self) -> int:
        return len(self.dwell_bin_medians)


class Task(tf.keras.layers.Layer):
    """One training objective on one tower. Subclasses set the class attributes and implement
    `outputs` and `loss`."""

    name_: str = ""
    label: str = ""
    serving_output: str | None = None  # the output the serving score may sum
    binary: bool = False  # a probability of a binary label (AUC, logloss)
    has_tower: bool = True  # False: its outputs come from elsewhere in the model (ORCA's NDE)

    def __init__(self, options: TaskOptions = TaskOptions(), **kwargs):
        super().__init__(name=f"{self.name_}_task", **kwargs)
        self.task = self.name_
        self.options = options

    @property
    def output_units(self) -> int:
        """Width of the tower's last layer."""
        return 1

    @property
    def output_key(self) -> str:
        """The output the loss is computed on."""
        raise NotImplementedError

    @property
    def serving_outputs(self) -> tuple[str, ...]:
        """Outputs that export, scoring and evaluation read, by name."""
        raise NotImplementedError

    def outputs(self, raw: tf.Tensor) -> dict[str, tf.Tensor]:
        """Named outputs from the tower's last layer `raw` [batch, output_units]."""
        raise NotImplementedError

    def loss(self, labels: Mapping[str, tf.Tensor], outputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        raise NotImplementedError

    def call(self, labels: Mapping[str, tf.Tensor], outputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """Scalar loss of this task on one batch."""
        return self.loss(labels, outputs)

    def evaluate(self, outputs: Mapping[str, np.ndarray], labels: Mapping[str, np.ndarray],
                 context: Mapping) -> dict:
        """SPEC §6 metrics of this task's outputs (NumPy arrays, [rows] or [rows, bins]).
        `context` holds `bin_medians`, `bin_edges` and `p_ctr` (the model's click probability,
        or None)."""
        return {}


class BinaryTask(Task):
    """A sigmoid tower for a binary label; BCE over all impressions."""

    binary = True

    def __init__(self, options: TaskOptions = TaskOptions(), **kwargs):
        super().__init__(options, **kwargs)
        self.ranking = tfrs.tasks.Ranking(loss=losses.WeightedBinaryCrossentropy(),
                                          name=self.name_)

    @property
    def output_key(self) -> str:
        return f"{self.name_}_logit"

    @property
    def serving_outputs(self) -> tuple[str, ...]:
        return (self.name_,)

    def outputs(self, raw):
        raw = tf.squeeze(raw, axis=1)
        return {self.output_key: raw, self.name_: tf.sigmoid(raw)}

    def weights(self, labels) -> tf.Tensor | None:
        return None

    def loss(self, labels, outputs):
        target = tf.cast(labels[self.label], tf.float32)
        return self.ranking(labels=target, predictions=outputs[self.output_key],
                            sample_weight=self.weights(labels), compute_metrics=False)

    def evaluate(self, outputs, labels, context):
        probability = outputs[self.name_]
        return {f"logloss_{self.name_}": metrics.logloss(labels[self.label], probability),
                "towers": {self.name_: {
                    "auc_ctr": metrics.auc(labels["click"], probability),
                    "auc_valid_read": metrics.auc(labels["valid_read"], probability)}}}


class CtrTask(BinaryTask):
    name_ = serving_output = "ctr"
    label = "click"


class ValidReadTask(BinaryTask):
    name_ = label = serving_output = "valid_read"


class WeightedValidReadTask(BinaryTask):
    """Click reweighting: valid reads weigh their NDT, negatives `negative_weight` (x NDT)."""

    name_ = serving_output = "weighted_valid_read"
    label = "valid_read"

    def weights(self, labels):
        return losses.click_reweighting_weights(
            labels["valid_read"], labels["ndt"], self.options.negative_weight,
            self.options.negative_weighting)


class LogDwellTask(Task):
    """Regression of log(1 + dwell seconds) on clicked rows (the logDT baselines)."""

    name_, label = "log_dwell", "log_dwell"

    def __init__(self, options: TaskOptions = TaskOptions(), **kwargs):
        super().__init__(options, **kwargs)
        self.ranking = tfrs.tasks.Ranking(loss=losses.ClickedMeanSquaredError(), name=self.name_)

    @property
    def output_key(self) -> str:
        return "log_dwell"

    @property
    def serving_outputs(self) -> tuple[str, ...]:
        return ("log_dwell", "dwell_seconds")

    def outputs(self, raw):
        # The tower predicts the standardized target; unit scale keeps its MSE from swamping
        # the shared bottom at the start.
        log_dwell = (self.options.log_dwell_mean
                     + self.options.log_dwell_std * tf.squeeze(raw, axis=1))
        return {"log_dwell": log_dwell,
                "dwell_seconds": tf.math.expm1(tf.clip_by_value(log_dwell, 0.0, MAX_LOG_DWELL))}

    def loss(self, labels, outputs):
        clicked = tf.cast(tf.equal(labels["click"], 1), tf.float32)
        return self.ranking(labels=tf.cast(labels["log_dwell"], tf.float32),
                            predictions=outputs["log_dwell"], sample_weight=clicked,
                            compute_metrics=False)

    def evaluate(self, outputs, labels, context):
        from pipelines import labels as labels_lib

        clicked = np.asarray(labels["click"]) == 1
        seconds = np.asarray(labels["dwell_time"], np.float64)[clicked]
        predicted = np.asarray(outputs["log_dwell"], np.float64)[clicked]
        result = {"log_dwell_rmse": float(np.sqrt(np.mean((predicted - np.log1p(seconds)) ** 2)))}
        # The predicted bin is the bin of the predicted dwell seconds.
        pred_bin = labels_lib.assign_bins(
            np.asarray(outputs["dwell_seconds"], np.float64)[clicked], context["bin_edges"])
        one_hot = np.eye(len(context["bin_medians"]))[pred_bin]
        result.update(_dwell_metrics(labels, clicked, one_hot, context))
        return result


def _dwell_metrics(labels, clicked, probs_of_clicked, context) -> dict:
    p_ctr = context.get("p_ctr")
    return metrics.dwell_metrics(
        np.asarray(labels["dwell_bin"])[clicked], probs_of_clicked,
        np.asarray(labels["dwell_time"], np.float64)[clicked], context["bin_medians"],
        p_ctr=None if p_ctr is None else np.asarray(p_ctr)[clicked])


class DwellBinsTask(Task):
    """ORCA's dwell-time target: `num_bins` logits, softmax cross-entropy on clicked rows only.

    Outputs: `dwell_logits` and `dwell_probs` [batch, num_bins]; `expected_dwell_seconds`
    = sum_k p_k * median_k and `expected_ndt` = sum_k p_k * ndt(median_k), [batch]."""

    name_, label = "dwell_bins", "dwell_bin"
    serving_output = "expected_ndt"

    def __init__(self, options: TaskOptions = TaskOptions(), **kwargs):
        super().__init__(options, **kwargs)
        if options.num_bins < 2:
            raise ValueError("the dwell_bins task needs the stats artifact's bin medians "
                             "(at least 2 bins)")
        self.medians = tf.constant(options.dwell_bin_medians, tf.float32)
        self.bin_ndt = tf.constant(options.dwell_bin_ndt, tf.float32)
        # Under ORCA this tower is the raw one: its outputs are raw_*, ORCA serves the rest.
        self.prefix = "raw_" if options.orca else ""
        self.weight = options.alpha if options.orca else 1.0

    @property
    def output_units(self) -> int:
        return self.options.num_bins

    @property
    def output_key(self) -> str:
        return f"{self.prefix}dwell_logits"

    @property
    def serving_outputs(self) -> tuple[str, ...]:
        return tuple(f"{self.prefix}{name}" for name in
                     ("dwell_probs", "expected_dwell_seconds", "expected_ndt"))

    def outputs(self, raw):
        return distribution_outputs(raw, self.medians, self.bin_ndt, self.prefix)

    def loss(self, labels, outputs):
        return self.weight * losses.clicked_sparse_cross_entropy(
            labels["dwell_bin"], outputs[self.output_key],
            denominator=self.options.dt_denominator)

    def evaluate(self, outputs, labels, context):
        clicked = np.asarray(labels["click"]) == 1
        probs = np.asarray(outputs[f"{self.prefix}dwell_probs"])[clicked]
        result = _dwell_metrics(labels, clicked, probs, context)
        # ORCA's raw tower: its metrics beside the served (debiased) ones.
        return {f"{self.prefix}dwell": result} if self.prefix else result


def distribution_outputs(logits: tf.Tensor, medians: tf.Tensor, bin_ndt: tf.Tensor,
                         prefix: str = "") -> dict[str, tf.Tensor]:
    """`dwell_logits`, `dwell_probs` [batch, bins] and the expectations [batch] of `logits`."""
    probs = tf.nn.softmax(logits, axis=-1)
    return {f"{prefix}dwell_logits": logits, f"{prefix}dwell_probs": probs,
            f"{prefix}expected_dwell_seconds": tf.linalg.matvec(probs, medians),
            f"{prefix}expected_ndt": tf.linalg.matvec(probs, bin_ndt)}


class EntireSpaceDwellTask(DwellBinsTask):
    """ESMM's dwell task: p(no click) = 1 - p_ctr, p(click, bin k) = p_ctr * softmax(z)_k,
    cross-entropy of that (num_bins + 1)-way outcome over every impression, divided by N.
    Needs the `ctr` task's logit in the same model."""

    name_ = "entire_space_dwell"

    def loss(self, labels, outputs):
        return losses.entire_space_cross_entropy(labels["click"], labels["dwell_bin"],
                                                 outputs["ctr_logit"], outputs["dwell_logits"])


class NdeTask(DwellBinsTask):
    """ORCA's debiased dwell distribution softmax(z), z = stopgrad(z_raw) - z_nde (the NDE
    tower's logits come from `ranking.orca.OrcaHead`, not from a tower of this task).

    Loss: beta * sum_i w_i CE(z, bin)_i / N over clicked rows (or / clicks with
    `dt_denominator` "clicks": SPEC §4's mean_i), w_i ORCA's instance weights
    (`losses.orca_instance_weights`, from the ctr logit and the raw dwell logits, no gradient)
    or 1 without them. Outputs: `dwell_logits` (z), `dwell_probs`, `expected_dwell_seconds`,
    `expected_ndt` (what the model serves), and `nde_logits`."""

    name_ = "nde"
    has_tower = False

    def __init__(self, options: TaskOptions = TaskOptions(), **kwargs):
        super().__init__(dataclasses.replace(options, orca=False), **kwargs)
        self.weight = options.beta
        self.orca_options = options

    def loss(self, labels, outputs):
        weights = None
        options = self.orca_options
        if options.instance_weights:
            weights = losses.orca_instance_weights(
                labels["dwell_bin"], outputs["ctr_logit"], outputs["raw_dwell_logits"],
                options.iw_a, options.iw_b, options.iw_c)
        return self.weight * losses.clicked_sparse_cross_entropy(
            labels["dwell_bin"], outputs["dwell_logits"], weights,
            denominator=options.dt_denominator)


TASKS = {cls.name_: cls for cls in (CtrTask, ValidReadTask, WeightedValidReadTask, LogDwellTask,
                                    DwellBinsTask, EntireSpaceDwellTask, NdeTask)}


def make_task(name: str, options: TaskOptions = TaskOptions()) -> Task:
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; tasks: {', '.join(TASKS)}")
    return TASKS[name](options)


def make_tasks(names: Sequence[str], options: TaskOptions = TaskOptions()) -> list[Task]:
    return [make_task(n, options) for n in names]


def bin_medians_for_model(medians: Sequence[float | None], edges: Sequence[float]) -> tuple:
    """Bin medians with an empty bin's (NaN or None) replaced by the geometric mean of its
    edges, so that expectations stay finite; seconds."""
    result = []
    for k, median in enumerate(medians):
        if median is None or not math.isfinite(float(median)):
            lo, hi = max(float(edges[k]), 1e-3), max(float(edges[k + 1]), 1e-3)
            median = math.sqrt(lo * hi)
        result.append(float(median))
    return tuple(result)
