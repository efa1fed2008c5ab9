"""Tasks: each owns its labels, its weights and its loss (tensorflow-recommenders style).

A task reads the tower outputs it needs from the network's output dict and the label columns
from the batch (`labels`: the dict of label Tensors made by `pipelines.labels.Labeler`), and
returns a scalar loss through a `tfrs.tasks.Ranking`.

| task                  | label       | tower output (logit)       | weight                         |
|-----------------------|-------------|----------------------------|--------------------------------|
| `ctr`                 | click       | `ctr_logit`                | 1                              |
| `valid_read`          | valid_read  | `valid_read_logit`         | 1                              |
| `weighted_valid_read` | valid_read  | `weighted_valid_read_logit`| ndt / negative weight          |
| `log_dwell`           | log_dwell   | `log_dwell` (log1p seconds) | click (MSE; 0 if unclicked)    |
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import tensorflow as tf
import tensorflow_recommenders as tfrs

from ranking import losses

BINARY_TASKS = ("ctr", "valid_read", "weighted_valid_read")
REGRESSION_TASKS = ("log_dwell",)
TASKS = BINARY_TASKS + REGRESSION_TASKS
LABEL_OF = {"ctr": "click", "valid_read": "valid_read", "weighted_valid_read": "valid_read",
            "log_dwell": "log_dwell"}
# Label columns every task may need, as the labeller produces them.
LABEL_KEYS = ("click", "valid_read", "ndt", "log_dwell", "dwell_bin", "dwell_time")


@dataclasses.dataclass(frozen=True)
class TaskOptions:
    """Options of the click-reweighting loss (SPEC §4)."""

    negative_weight: float = 1.0
    negative_weighting: str = "unit"  # unit | ndt


class Task(tf.keras.layers.Layer):
    """One training objective on one tower."""

    def __init__(self, name: str, options: TaskOptions = TaskOptions(), **kwargs):
        if name not in TASKS:
            raise ValueError(f"unknown task {name!r}; tasks: {', '.join(TASKS)}")
        super().__init__(name=f"{name}_task", **kwargs)
        self.task = name
        self.options = options
        loss = (losses.ClickedMeanSquaredError() if name in REGRESSION_TASKS
                else losses.WeightedBinaryCrossentropy())
        self.ranking = tfrs.tasks.Ranking(loss=loss, name=name)

    @property
    def output_key(self) -> str:
        """The network output the loss is computed on."""
        return "log_dwell" if self.task == "log_dwell" else f"{self.task}_logit"

    def weights(self, labels: Mapping[str, tf.Tensor]) -> tf.Tensor | None:
        if self.task == "weighted_valid_read":
            return losses.click_reweighting_weights(
                labels["valid_read"], labels["ndt"], self.options.negative_weight,
                self.options.negative_weighting)
        if self.task == "log_dwell":
            return tf.cast(tf.equal(labels["click"], 1), tf.float32)
        return None

    def call(self, labels: Mapping[str, tf.Tensor], outputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """Scalar loss of this task on one batch."""
        target = tf.cast(labels[LABEL_OF[self.task]], tf.float32)
        return self.ranking(labels=target, predictions=outputs[self.output_key],
                            sample_weight=self.weights(labels), compute_metrics=False)
