"""Tasks: each owns its label, its tower's outputs, its loss and weights, and what evaluation and
serving read from it (tensorflow-recommenders' `tasks/` style: one base class, one small
subclass per task). Models, evaluation, export and scoring ask the task; none branches on a
task's name.

| task                  | label      | units    | outputs                                | loss / denom.   |
|-----------------------|------------|----------|----------------------------------------|-----------------|
| `ctr`                 | click      | 1        | `ctr_logit`, `ctr`                     | BCE / N         |
| `valid_read`          | valid_read | 1        | `valid_read_logit`, `valid_read`       | BCE / N         |
| `weighted_valid_read` | valid_read | 1        | `weighted_valid_read_logit`, ...       | w * BCE / N     |
| `log_dwell`           | log_dwell  | 1        | `log_dwell`, `dwell_seconds`           | click * SE / N  |
| `dwell_bins`          | dwell_bin  | num_bins | `dwell_logits`, `dwell_probs`,         | CE over clicked |
|                       |            |          | `expected_dwell_seconds`,              | rows / N (or    |
|                       |            |          | `expected_ndt`                         | / clicks)       |
| `entire_space_dwell`  | dwell_bin  | num_bins | as `dwell_bins`                        | mean over k of  |
|                       |            |          |                                        | BCE(click & bin |
|                       |            |          |                                        | >= k) / N       |

(w: a valid read's NDT, or the negative weight; SE: squared error.)

A task may be given a `prefix` for its outputs and a `weight` for its loss: ORCA
(`ranking.orca`) uses them to make the dwell-bin tower its raw one (`raw_dwell_logits`, ...,
loss weighed by alpha) and adds its own `nde` task, which serves the debiased `dwell_*`.

N is the global batch size, "clicks" the global batch's clicked rows (see `ranking.losses`).
The dwell-bin losses count clicked rows only (SPEC §4) and divide by N like every loss here
(`dt_denominator` "batch", the default), or by the clicks ("clicks", the mean over clicked
rows, which weighs the dwell task ~1/CTR times more against the click task; the measured
choice is in the README). `entire_space_dwell` is ESMM's view of the same target: its
conversions are the thresholds "clicked and dwell_bin >= k", each with p_ctr *
P(bin >= k | click), a binary cross-entropy over every impression, so unclicked impressions
train the dwell head too (`ranking.losses.entire_space_cross_entropy`).

A task's `serving_output` is the output its preset may add to the serving score (`ctr`,
`valid_read`, `weighted_valid_read`, `expected_ndt`), `serving_outputs` every output export
writes, `evaluate` its SPEC §6 metrics.
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import numpy as np
import tensorflow as tf
import tensorflow_recommenders as tfrs

from core.settings import setting
from core.stats_artifact import DwellTargets
from ranking import losses, metrics
from ranking.layers import StaticLayer
from ranking.output_layers import TOWER_OUTPUTS

# Largest predicted log1p(dwell) turned into seconds (e^12 s is about 1.9 days).
MAX_LOG_DWELL = 12.0
SINGLE_TASKS = ("ctr", "dwell_bins")


@dataclasses.dataclass(frozen=True)
class TowerConfig:
    """The towers and their losses' options (SPEC §4)."""

    tower_units: tuple[int, ...] | None = setting(
        None, "Hidden widths of each tower (an output layer of the task's width follows); "
        "default 64,32, and none for deepfm, dcn_v2, autoint.")
    tower_output: str = setting(
        "dense", "Each tower's output layers: dense (its hidden layers, then a linear output) or "
        "fm_terms (the ORCA authors': the last hidden layer reads the ones before with the "
        "embeddings' first-order and FM terms; ranking/output_layers.py).",
        choices=TOWER_OUTPUTS)
    negative_weight: float = setting(1.0, "Weight of negatives in the weighted valid-read loss.")
    negative_weighting: str = setting(
        "unit", "unit: negatives weigh --negative_weight; ndt: --negative_weight x their NDT "
        "(the paper's Eq. 3 literally: unclicked impressions weigh 0).",
        choices=losses.NEGATIVE_WEIGHTINGS)
    single_task: str = setting(
        "ctr", "Task of the single-task presets deepfm, dcn_v2, autoint: ctr on every "
        "impression, or dwell_bins on clicked ones.", choices=SINGLE_TASKS)
    dt_denominator: str = setting(
        "batch", "Dwell-bin losses (clicked rows) divided by the batch size, or by the clicks "
        "(their mean over clicked rows).", choices=losses.DT_DENOMINATORS)
    output_bias: str = setting(
        "zero", "Initial bias of the click tower's output layer: zero (Keras' default), or "
        "prior: the logit of the training logs' CTR (the stats artifact's clicks / rows), so "
        "the tower does not spend its first steps learning the base rate (in narrow towers "
        "that push can leave every ReLU dead and the click output constant).",
        choices=("zero", "prior"))


class Task(StaticLayer):
    """One training objective on one tower. Subclasses set the class attributes and implement
    `outputs` and `loss`."""

    name_: str = ""
    label: str = ""
    serving_output: str | None = None  # the output the serving score may sum
    binary: bool = False  # a probability of a binary label (AUC, logloss)
    has_tower: bool = True  # False: its outputs come from elsewhere in the model (ORCA's NDE)

    def __init__(self, config: TowerConfig = TowerConfig(),
                 targets: DwellTargets = DwellTargets(), *, prefix: str = "",
                 weight: float = 1.0, **kwargs):
        super().__init__(name=f"{self.name_}_task", **kwargs)
        self.task = self.name_
        self.config, self.targets = config, targets
        # `prefix` names the outputs (`<prefix>dwell_probs`, ...); `weight` scales the loss.
        self.prefix, self.weight = prefix, float(weight)

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
        `context` holds `bin_values`, `bin_edges` and `p_ctr` (the model's click probability,
        or None)."""
        return {}


class BinaryTask(Task):
    """A sigmoid tower for a binary label; BCE over all impressions."""

    binary = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
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
            labels["valid_read"], labels["ndt"], self.config.negative_weight,
            self.config.negative_weighting)


class LogDwellTask(Task):
    """Regression of log(1 + dwell seconds) on clicked rows (the logDT baselines)."""

    name_, label = "log_dwell", "log_dwell"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
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
        log_dwell = (self.targets.log_dwell_mean
                     + self.targets.log_dwell_std * tf.squeeze(raw, axis=1))
        return {"log_dwell": log_dwell,
                "dwell_seconds": tf.math.expm1(tf.clip_by_value(log_dwell, 0.0, MAX_LOG_DWELL))}

    def loss(self, labels, outputs):
        clicked = tf.cast(tf.equal(labels["click"], 1), tf.float32)
        return self.ranking(labels=tf.cast(labels["log_dwell"], tf.float32),
                            predictions=outputs["log_dwell"], sample_weight=clicked,
                            compute_metrics=False)

    def evaluate(self, outputs, labels, context):
        from core.label_rules import assign_bins

        clicked = np.asarray(labels["click"]) == 1
        seconds = np.asarray(labels["dwell_time"], np.float64)[clicked]
        predicted = np.asarray(outputs["log_dwell"], np.float64)[clicked]
        result = {"log_dwell_rmse": float(np.sqrt(np.mean((predicted - np.log1p(seconds)) ** 2)))
                  if clicked.any() else float("nan")}  # undefined without a clicked row
        # The predicted bin is the bin of the predicted dwell seconds.
        predicted_seconds = np.asarray(outputs["dwell_seconds"], np.float64)[clicked]
        pred_bin = assign_bins(predicted_seconds, context["bin_edges"])
        one_hot = np.eye(len(context["bin_values"]))[pred_bin]
        # A NaN prediction has no bin (assign_bins would put it in the last one): its row stays
        # NaN, so the dwell metrics are undefined, as the RMSE above is.
        one_hot[np.isnan(predicted_seconds)] = np.nan
        result.update(_dwell_metrics(labels, clicked, one_hot, context))
        return result


def _dwell_metrics(labels, clicked, probs_of_clicked, context) -> dict:
    p_ctr = context.get("p_ctr")
    return metrics.dwell_metrics(
        np.asarray(labels["dwell_bin"])[clicked], probs_of_clicked,
        np.asarray(labels["dwell_time"], np.float64)[clicked], context["bin_values"],
        p_ctr=None if p_ctr is None else np.asarray(p_ctr)[clicked])


class DwellBinsTask(Task):
    """ORCA's dwell-time target: `num_bins` logits, softmax cross-entropy on clicked rows only.

    Outputs: `dwell_logits` and `dwell_probs` [batch, num_bins]; `expected_dwell_seconds`
    = sum_k p_k * median_k and `expected_ndt` = sum_k p_k * ndt(median_k), [batch]."""

    name_, label = "dwell_bins", "dwell_bin"
    serving_output = "expected_ndt"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.targets.num_bins < 2:
            raise ValueError("the dwell_bins task needs the stats artifact's bin medians "
                             "(at least 2 bins)")
        self.medians = tf.constant(self.targets.bin_values, tf.float32)
        self.bin_ndt = tf.constant(self.targets.bin_ndt, tf.float32)

    @property
    def output_units(self) -> int:
        return self.targets.num_bins

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
            denominator=self.config.dt_denominator)

    def evaluate(self, outputs, labels, context):
        clicked = np.asarray(labels["click"]) == 1
        probs = np.asarray(outputs[f"{self.prefix}dwell_probs"])[clicked]
        result = _dwell_metrics(labels, clicked, probs, context)
        result["dt_cross_entropy"] = metrics.dwell_cross_entropy(
            np.asarray(labels["dwell_bin"])[clicked], probs)
        # A prefixed tower (ORCA's raw one) reports beside the served distribution.
        return {f"{self.prefix}dwell": result} if self.prefix else result


def distribution_outputs(logits: tf.Tensor, medians: tf.Tensor, bin_ndt: tf.Tensor,
                         prefix: str = "") -> dict[str, tf.Tensor]:
    """`dwell_logits`, `dwell_probs` [batch, bins] and the expectations [batch] of `logits`."""
    probs = tf.nn.softmax(logits, axis=-1)
    return {f"{prefix}dwell_logits": logits, f"{prefix}dwell_probs": probs,
            f"{prefix}expected_dwell_seconds": tf.linalg.matvec(probs, medians),
            f"{prefix}expected_ndt": tf.linalg.matvec(probs, bin_ndt)}


class EntireSpaceDwellTask(DwellBinsTask):
    """ESMM's dwell task: for each interior edge k, the binary cross-entropy of "clicked and
    dwell_bin >= k" against p_ctr * P(bin >= k | click) over every impression, averaged over
    the edges and divided by N (`losses.entire_space_cross_entropy`). Needs the `ctr` task's
    logit in the same model."""

    name_ = "entire_space_dwell"

    def loss(self, labels, outputs):
        return losses.entire_space_cross_entropy(labels["click"], labels["dwell_bin"],
                                                 outputs["ctr_logit"], outputs["dwell_logits"])


TASKS = {cls.name_: cls for cls in (CtrTask, ValidReadTask, WeightedValidReadTask, LogDwellTask,
                                    DwellBinsTask, EntireSpaceDwellTask)}


def make_task(name: str, config: TowerConfig = TowerConfig(),
              targets: DwellTargets = DwellTargets()) -> Task:
    """The task `name` of `TASKS` with the towers' config and the dwell targets' scales."""
    if name not in TASKS:
        raise ValueError(f"unknown task {name!r}; tasks: {', '.join(TASKS)}")
    return TASKS[name](config, targets)
