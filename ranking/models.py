"""Presets and the model: feature encoder -> backbone -> task towers (SPEC §4).

`build_network` makes a Keras functional model from raw feature Tensors (a dict, one [batch]
Tensor per feature of the spec) to a dict of tower outputs; export wraps exactly this network.
`RankingModel` (a `tfrs.Model`) composes the network with its tasks and sums their losses.

| preset       | backbone      | towers                           | serving score           |
|--------------|---------------|----------------------------------|-------------------------|
| single_ctr   | MLP           | ctr                              | ctr                     |
| ctr_logdt    | shared bottom | ctr, log_dwell (MSE on clicks)   | ctr                     |
| vr_logdt     | shared bottom | valid_read, log_dwell            | valid_read              |
| vr_ndt       | shared bottom | valid_read, weighted_valid_read  | valid_read + weighted   |

The MLP backbone of `single_ctr` is the same bottom stack as the shared bottom, with one task
on it, so the presets differ only in their towers and losses.

Outputs: a binary tower `t` gives `t_logit` and `t` (its probability); the log-dwell tower gives
`log_dwell` (predicted log(1 + dwell seconds)) and `dwell_seconds` (its expm1); `score` is the
serving score (tower weights 1; export may weigh them).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import tensorflow as tf
import tensorflow_recommenders as tfrs

from ranking import tasks as tasks_lib
from ranking.features import FeatureSpec
from ranking.layers import MLP, FeatureEncoder


@dataclasses.dataclass(frozen=True)
class Preset:
    towers: tuple[str, ...]
    serving: tuple[str, ...]  # towers whose probabilities sum to the serving score
    backbone: str = "shared_bottom"


PRESETS = {
    "single_ctr": Preset(("ctr",), ("ctr",), backbone="mlp"),
    "ctr_logdt": Preset(("ctr", "log_dwell"), ("ctr",)),
    "vr_logdt": Preset(("valid_read", "log_dwell"), ("valid_read",)),
    "vr_ndt": Preset(("valid_read", "weighted_valid_read"), ("valid_read", "weighted_valid_read")),
}
# Largest predicted log1p(dwell) turned into seconds (e^12 s is about 1.9 days).
MAX_LOG_DWELL = 12.0


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What defines a model's architecture and losses (stored in the model directory)."""

    preset: str = "vr_ndt"
    bottom_units: tuple[int, ...] = (256, 128)
    tower_units: tuple[int, ...] = (64, 32)  # hidden layers; a 1-unit output layer follows
    dropout: float = 0.0
    negative_weight: float = 1.0
    negative_weighting: str = "unit"
    # The log-dwell tower predicts (log1p(dwell) - mean) / std: targets of unit scale keep its
    # MSE from swamping the shared bottom at the start. Training sets them from the stats
    # artifact (mu, sigma of ln dwell over clicks).
    log_dwell_mean: float = 0.0
    log_dwell_std: float = 1.0

    @property
    def spec(self) -> Preset:
        return PRESETS[self.preset]

    @property
    def task_options(self) -> tasks_lib.TaskOptions:
        return tasks_lib.TaskOptions(self.negative_weight, self.negative_weighting)


def check_preset(name: str) -> None:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")


def serving_score(outputs: Mapping[str, tf.Tensor], serving: Sequence[str],
                  weights: Mapping[str, float] | None = None) -> tf.Tensor:
    """Serving score [batch]: the weighted sum of the serving towers' probabilities."""
    weights = weights or {}
    return tf.add_n([float(weights.get(t, 1.0)) * outputs[t] for t in serving])


def tower_outputs(task: str, raw: tf.Tensor, config: ModelConfig) -> dict[str, tf.Tensor]:
    """Named outputs of one tower from its final layer's output [batch, 1]."""
    raw = tf.squeeze(raw, axis=1)
    if task == "log_dwell":
        log_dwell = config.log_dwell_mean + config.log_dwell_std * raw
        return {"log_dwell": log_dwell,
                "dwell_seconds": tf.math.expm1(tf.clip_by_value(log_dwell, 0.0, MAX_LOG_DWELL))}
    return {f"{task}_logit": raw, task: tf.sigmoid(raw)}


def build_network(spec: FeatureSpec, config: ModelConfig) -> tf.keras.Model:
    """The functional network: {feature: Tensor[batch]} -> {output name: Tensor[batch]}."""
    check_preset(config.preset)
    inputs = {f.name: tf.keras.Input(shape=(), dtype=f.dtype, name=f.name)
              for f in spec.features}
    encoded = FeatureEncoder(spec, name="features")(inputs)
    shared = MLP(config.bottom_units, dropout=config.dropout, name="bottom")(encoded)
    outputs = {}
    for task in config.spec.towers:
        raw = MLP(config.tower_units, output_units=1, dropout=config.dropout,
                  name=f"{task}_tower")(shared)
        outputs.update(tower_outputs(task, raw, config))
    outputs["score"] = serving_score(outputs, config.spec.serving)
    return tf.keras.Model(inputs=inputs, outputs=outputs, name=config.preset)


class RankingModel(tfrs.Model):
    """The network and its tasks; `compute_loss((features, labels))` sums the task losses."""

    def __init__(self, spec: FeatureSpec, config: ModelConfig):
        super().__init__()
        self.feature_spec = spec
        self.config = config
        self.network = build_network(spec, config)
        self.tasks = [tasks_lib.Task(t, config.task_options) for t in config.spec.towers]

    def call(self, features: Mapping[str, tf.Tensor], training: bool = False):
        return self.network({name: features[name] for name in self.feature_spec.names},
                            training=training)

    def task_losses(self, inputs, training: bool = False) -> dict[str, tf.Tensor]:
        """{task: scalar loss} of a batch `inputs` = (features, labels)."""
        features, labels = inputs
        outputs = self(features, training=training)
        return {task.task: task(labels, outputs) for task in self.tasks}

    def compute_loss(self, inputs, training: bool = False) -> tf.Tensor:
        return tf.add_n(list(self.task_losses(inputs, training).values()))
