"""Presets and the model: feature encoder -> backbone -> task towers (SPEC §4).

`build_network` makes a Keras functional model from raw feature Tensors (a dict, one [batch]
Tensor per feature of the spec) to a dict of tower outputs; export wraps exactly this network.
`RankingModel` (a `tfrs.Model`) composes the network with its tasks and sums their losses.

| preset             | backbone (`ranking.backbones`) | towers (`ranking.tasks`)       | serving score          |
|--------------------|--------------------------------|--------------------------------|------------------------|
| single_ctr         | mlp                            | ctr                            | ctr                    |
| ctr_logdt          | shared_bottom                  | ctr, log_dwell                 | ctr                    |
| vr_logdt           | shared_bottom                  | valid_read, log_dwell          | valid_read             |
| vr_ndt             | shared_bottom                  | valid_read, weighted_valid_read| valid_read + weighted  |
| shared_bottom_dt   | shared_bottom                  | ctr, dwell_bins                | ctr + expected_ndt     |
| mmoe               | mmoe                           | ctr, dwell_bins                | ctr + expected_ndt     |
| ple                | ple                            | ctr, dwell_bins                | ctr + expected_ndt     |
| esmm               | separate                       | ctr, entire_space_dwell        | ctr + expected_ndt     |
| aitm               | aitm                           | ctr, dwell_bins                | ctr + expected_ndt     |
| mmoe_orca,         | mmoe, ple (ORCA on             | ctr, dwell_bins (raw), nde     | ctr + expected_ndt of  |
| ple_orca           | shared_bottom_dt with `orca`)  | (`ranking.orca`)               | the debiased bins      |
| deepfm, dcn_v2,    | deepfm, dcn_v2, autoint        | one: ctr (default) or          | ctr or expected_ndt    |
| autoint            |                                | dwell_bins (`single_task`)     |                        |

The MLP backbone of `single_ctr` is the same bottom stack as the shared bottom, with one task
on it. Each tower is an MLP of `tower_units` hidden layers and an output layer of the task's
width; the interaction backbones' towers have no hidden layer (their models end in a linear
layer over the interaction output).

Outputs: each task's (see `ranking.tasks`), and `score`, the serving score (tower weights 1;
export may weigh them).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import tensorflow as tf
import tensorflow_recommenders as tfrs

from ranking import backbones
from ranking import tasks as tasks_lib
from ranking.losses import DT_DENOMINATORS
from ranking.features import FeatureSpec
from ranking.layers import MLP, FeatureEncoder


@dataclasses.dataclass(frozen=True)
class Preset:
    towers: tuple[str, ...]  # task names; single-task presets: the default task
    serving: tuple[str, ...]  # outputs whose sum is the serving score
    backbone: str = "shared_bottom"
    single_task: bool = False  # one tower, chosen by ModelConfig.single_task
    orca: bool = False  # ORCA on top (SPEC §4): the `nde` task and `ranking.orca`

    @property
    def multi_task(self) -> bool:
        return len(self.towers) > 1


_BINS = ("ctr", "dwell_bins")
_BINS_SCORE = ("ctr", "expected_ndt")
PRESETS = {
    "single_ctr": Preset(("ctr",), ("ctr",), backbone="mlp"),
    "ctr_logdt": Preset(("ctr", "log_dwell"), ("ctr",)),
    "vr_logdt": Preset(("valid_read", "log_dwell"), ("valid_read",)),
    "vr_ndt": Preset(("valid_read", "weighted_valid_read"), ("valid_read", "weighted_valid_read")),
    "shared_bottom_dt": Preset(_BINS, _BINS_SCORE),
    "mmoe": Preset(_BINS, _BINS_SCORE, backbone="mmoe"),
    "ple": Preset(_BINS, _BINS_SCORE, backbone="ple"),
    "esmm": Preset(("ctr", "entire_space_dwell"), _BINS_SCORE, backbone="separate"),
    "aitm": Preset(_BINS, _BINS_SCORE, backbone="aitm"),
    "mmoe_orca": Preset(_BINS, _BINS_SCORE, backbone="mmoe", orca=True),
    "ple_orca": Preset(_BINS, _BINS_SCORE, backbone="ple", orca=True),
    "deepfm": Preset(("ctr",), ("ctr",), backbone="deepfm", single_task=True),
    "dcn_v2": Preset(("ctr",), ("ctr",), backbone="dcn_v2", single_task=True),
    "autoint": Preset(("ctr",), ("ctr",), backbone="autoint", single_task=True),
}
SINGLE_TASKS = ("ctr", "dwell_bins")
_TASK_DEFAULTS = tasks_lib.TaskOptions()
# ORCA needs a ctr and a raw dwell tower on a backbone that gives h_ctr, h_dt and h_s.
ORCA_BACKBONES = ("shared_bottom", "mmoe", "ple")
DEFAULT_TOWER_UNITS = (64, 32)


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What defines a model's architecture and losses (stored in the model directory)."""

    preset: str = "vr_ndt"
    bottom_units: tuple[int, ...] = (256, 128)  # shared bottom, MLP, DNN parts, ESMM/AITM nets
    tower_units: tuple[int, ...] | None = None  # hidden layers; None: (64, 32), () for the
    #                                             interaction backbones; an output layer follows
    dropout: float = 0.0
    # Initial embeddings ~ N(0, std^2); None: Keras' uniform in [-0.05, 0.05]. Near-zero
    # starting rows keep ids seen rarely (or never, at evaluation) from adding noise: on the
    # small simulated logs, click AUC 0.574 against 0.565 (benchmarks/defaults.py).
    embedding_init_std: float | None = 1e-4
    # The loss options' defaults live once, in ranking.tasks.TaskOptions.
    negative_weight: float = _TASK_DEFAULTS.negative_weight
    negative_weighting: str = _TASK_DEFAULTS.negative_weighting
    single_task: str = "ctr"  # the task of deepfm, dcn_v2, autoint: ctr | dwell_bins
    # MMoE and PLE.
    experts: int = 4
    expert_units: tuple[int, ...] = (128, 64)
    levels: int = 2
    task_experts: int = 1
    shared_experts: int = 1
    # Interaction models.
    field_dim: int = 8
    cross_layers: int = 3
    attention_layers: int = 2
    attention_heads: int = 2
    # Filled from the stats artifact by training. The log-dwell tower predicts
    # (log1p(dwell) - mean) / std (mu, sigma of ln dwell over clicks); the dwell-bin tasks use
    # the bins' medians (seconds) and their NDT.
    log_dwell_mean: float = _TASK_DEFAULTS.log_dwell_mean
    log_dwell_std: float = _TASK_DEFAULTS.log_dwell_std
    dwell_bin_medians: tuple[float, ...] = ()
    dwell_bin_ndt: tuple[float, ...] = ()
    dt_denominator: str = _TASK_DEFAULTS.dt_denominator  # / batch size N, or / clicks
    # ORCA (the *_orca presets, or `orca` on shared_bottom_dt; see ranking.orca).
    orca: bool = False
    mask_prob: float = 0.2
    mask_seed: int = 0  # training sets it from its --seed
    alpha: float = _TASK_DEFAULTS.alpha
    beta: float = _TASK_DEFAULTS.beta
    instance_weights: bool = _TASK_DEFAULTS.instance_weights
    iw_a: float = _TASK_DEFAULTS.iw_a
    iw_b: float = _TASK_DEFAULTS.iw_b
    iw_c: float = _TASK_DEFAULTS.iw_c
    scd_heads: int = 2

    @property
    def spec(self) -> Preset:
        return PRESETS[self.preset]

    @property
    def uses_orca(self) -> bool:
        return self.spec.orca or self.orca

    @property
    def towers(self) -> tuple[str, ...]:
        """The model's tasks, in tower order (ORCA's `nde` last)."""
        towers = (self.single_task,) if self.spec.single_task else self.spec.towers
        return towers + ("nde",) if self.uses_orca else towers

    @property
    def serving(self) -> tuple[str, ...]:
        """Outputs summed into the serving score."""
        if self.spec.single_task:
            return (tasks_lib.TASKS[self.single_task].serving_output,)
        return self.spec.serving

    @property
    def resolved_tower_units(self) -> tuple[int, ...]:
        if self.tower_units is not None:
            return tuple(self.tower_units)
        return () if self.spec.backbone in backbones.INTERACTION_BACKBONES else DEFAULT_TOWER_UNITS

    @property
    def task_options(self) -> tasks_lib.TaskOptions:
        return tasks_lib.TaskOptions(
            self.negative_weight, self.negative_weighting, self.log_dwell_mean,
            self.log_dwell_std, tuple(self.dwell_bin_medians), tuple(self.dwell_bin_ndt),
            dt_denominator=self.dt_denominator, orca=self.uses_orca, alpha=self.alpha,
            beta=self.beta,
            instance_weights=self.instance_weights, iw_a=self.iw_a, iw_b=self.iw_b,
            iw_c=self.iw_c)

    def make_tasks(self) -> list[tasks_lib.Task]:
        return tasks_lib.make_tasks(self.towers, self.task_options)

    @classmethod
    def from_json(cls, data: Mapping) -> "ModelConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v
                      for k, v in data.items() if k in known})


def check_preset(name: str) -> None:
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(PRESETS)}")


def check_config(config: ModelConfig) -> None:
    """ValueError naming what is wrong with a config's preset or single task."""
    check_preset(config.preset)
    if config.spec.single_task and config.single_task not in SINGLE_TASKS:
        raise ValueError(f"single_task must be one of {', '.join(SINGLE_TASKS)}, "
                         f"not {config.single_task!r}")
    if config.uses_orca and (config.spec.towers != _BINS
                             or config.spec.backbone not in ORCA_BACKBONES):
        raise ValueError(f"ORCA needs a ctr and a dwell_bins tower on a "
                         f"{', '.join(ORCA_BACKBONES)} backbone; {config.preset} has "
                         f"{', '.join(config.spec.towers)} on {config.spec.backbone}")
    if config.dt_denominator not in DT_DENOMINATORS:
        raise ValueError(f"dt_denominator must be one of {', '.join(DT_DENOMINATORS)}, not "
                         f"{config.dt_denominator!r}")
    sizes = {"bottom_units": config.bottom_units, "expert_units": config.expert_units}
    for name, units in sizes.items():
        if not units or any(int(u) < 1 for u in units):
            raise ValueError(f"{name} must be one or more widths >= 1, not {units!r}")
    if config.tower_units is not None and any(int(u) < 1 for u in config.tower_units):
        raise ValueError(f"tower_units must be widths >= 1, not {config.tower_units!r}")
    at_least_one = {"experts": config.experts, "levels": config.levels,
                    "task_experts": config.task_experts, "shared_experts": config.shared_experts,
                    "field_dim": config.field_dim, "attention_heads": config.attention_heads,
                    "scd_heads": config.scd_heads}
    at_least_zero = {"cross_layers": config.cross_layers,
                     "attention_layers": config.attention_layers}
    for name, value in at_least_one.items():
        if value < 1:
            raise ValueError(f"{name} must be >= 1, not {value}")
    for name, value in at_least_zero.items():
        if value < 0:
            raise ValueError(f"{name} must be >= 0, not {value}")
    if not 0.0 <= config.dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), not {config.dropout}")
    if not 0.0 <= config.mask_prob <= 1.0:
        raise ValueError(f"mask_prob must be in [0, 1], not {config.mask_prob}")


def serving_score(outputs: Mapping[str, tf.Tensor], serving: Sequence[str],
                  weights: Mapping[str, float] | None = None) -> tf.Tensor:
    """Serving score [batch]: the weighted sum of the serving outputs."""
    weights = weights or {}
    return tf.add_n([float(weights.get(t, 1.0)) * outputs[t] for t in serving])


def output_names(config: ModelConfig) -> tuple[str, ...]:
    """What export, scoring and evaluation read: `score`, then every task's serving outputs."""
    names = ["score"]
    for task in config.make_tasks():
        names += [n for n in task.serving_outputs if n not in names]
    return tuple(names)


def build_network(spec: FeatureSpec, config: ModelConfig) -> tf.keras.Model:
    """The functional network: {feature: Tensor[batch]} -> {output name: Tensor}."""
    check_config(config)
    inputs = {f.name: tf.keras.Input(shape=(), dtype=f.dtype, name=f.name)
              for f in spec.features}
    encoder = FeatureEncoder(spec, config.embedding_init_std, name="features")
    tasks = config.make_tasks()
    backbone = backbones.make_backbone(config.spec.backbone,
                                       [t.task for t in tasks if t.has_tower], config, spec)
    representations = backbone(encoder(inputs))
    outputs = {}
    for task in tasks:
        if task.has_tower:
            raw = MLP(config.resolved_tower_units, output_units=task.output_units,
                      dropout=config.dropout, name=f"{task.task}_tower")(
                representations[task.task])
            outputs.update(task.outputs(raw))
    if config.uses_orca:
        from ranking.orca import OrcaHead

        @tf.autograph.experimental.do_not_convert  # straight-line code
        def masked_forward(features, post_click_mask, training):
            return backbone(encoder(features, post_click_mask=post_click_mask),
                            training=training)

        nde = tasks[-1]
        head = OrcaHead(nde.output_units, config.resolved_tower_units, "ctr", "dwell_bins",
                        config.mask_prob, config.mask_seed, masked_forward,
                        heads=config.scd_heads, dropout=config.dropout, name="orca")
        debiased = head(inputs, representations, outputs["raw_dwell_logits"])
        outputs.update(nde.outputs(debiased["dwell_logits"]))
        outputs["nde_logits"] = debiased["nde_logits"]
    outputs["score"] = serving_score(outputs, config.serving)
    return tf.keras.Model(inputs=inputs, outputs=outputs, name=config.preset)


class RankingModel(tfrs.Model):
    """The network and its tasks; `compute_loss((features, labels))` sums the task losses."""

    def __init__(self, spec: FeatureSpec, config: ModelConfig):
        super().__init__()
        self.feature_spec = spec
        self.config = config
        self.network = build_network(spec, config)
        self.tasks = config.make_tasks()

    def call(self, features: Mapping[str, tf.Tensor], training: bool = False):
        return self.network({name: features[name] for name in self.feature_spec.names},
                            training=training)

    def shared_variables(self) -> list[tf.Variable]:
        """Trainable variables every task reaches: the feature encoder's and the backbone's."""
        names = ("features", backbones.layer_name(self.config.spec.backbone))
        return [v for n in names for v in self.network.get_layer(n).trainable_variables]

    def task_losses(self, inputs, training: bool = False) -> dict[str, tf.Tensor]:
        """{task: scalar loss} of a batch `inputs` = (features, labels)."""
        features, labels = inputs
        outputs = self(features, training=training)
        return {task.task: task(labels, outputs) for task in self.tasks}

    def compute_loss(self, inputs, training: bool = False) -> tf.Tensor:
        return tf.add_n(list(self.task_losses(inputs, training).values()))
