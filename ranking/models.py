"""The model: feature encoder -> backbone -> task towers, with ORCA when asked (SPEC §4).

`build_network` makes a Keras functional model from raw feature Tensors (a dict, one [batch]
Tensor per feature of the spec) to a dict of tower outputs; export wraps exactly this network.
`RankingModel` (a `tfrs.Model`) composes the network with its tasks and sums their losses.

What a model is comes from registries, not from names written here: the preset
(`ranking.presets`) gives the towers and the backbone, `ranking.backbones.BACKBONES` how to make
the backbone, `ranking.tasks.TASKS` each tower's task, and ORCA (`ranking.orca`) adapts the
tasks and attaches its head when the preset or `--orca` asks for it.

Each tower is an MLP of `tower_units` hidden layers and an output layer of the task's width;
the interaction backbones' towers have no hidden layer (their models end in a linear layer over
the interaction output). With `--tower_output=fm_terms` the towers' last layers read the
embeddings' first-order and FM terms too, as the ORCA authors' (`ranking.output_layers`).

Outputs: each task's (see `ranking.tasks`), and `score`, the serving score: the preset's default
fusion of the outputs (`ranking.fusion`; export may store another).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping

import tensorflow as tf
import tensorflow_recommenders as tfrs

from core.settings import from_json, setting
from core.stats_artifact import DwellTargets
from ranking import orca
from ranking.backbones import BACKBONES, BackboneConfig
from ranking.features import FeatureSpec
from ranking.fusion import Fusion, default_fusion
from ranking.layers import FeatureEncoder
from ranking.orca import OrcaConfig
from ranking.output_layers import WIDE, WideTerms, make_tower, tower_input
from ranking.presets import PRESETS, Preset, preset
from ranking.regularization import RegularizationConfig
from ranking.tasks import SINGLE_TASKS, TASKS, Task, TowerConfig, make_task

DEFAULT_TOWER_UNITS = (64, 32)


def _init_std(value):
    # The flag's 0 (or less) means Keras' default initializer.
    return value if value is not None and value > 0 else None


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """What defines a model's architecture and losses (stored in the model directory's
    config.json), by concern: the backbone's sizes, the towers and their losses, ORCA."""

    preset: str = setting("vr_ndt", "Model preset (SPEC §4).", flag="model",
                          choices=lambda: list(PRESETS))
    # Initial embeddings ~ N(0, std^2); None: Keras' uniform in [-0.05, 0.05]. Near-zero
    # starting rows keep ids seen rarely (or never, at evaluation) from adding noise (the
    # measurement is in the README's training defaults).
    embedding_init_std: float | None = setting(
        1e-4, "Initial embeddings ~ N(0, std^2); 0 or less: Keras' uniform in [-0.05, 0.05].",
        parse=_init_std)
    regularization: RegularizationConfig = RegularizationConfig()
    backbone: BackboneConfig = BackboneConfig()
    towers: TowerConfig = TowerConfig()
    orca: OrcaConfig = OrcaConfig()

    @property
    def spec(self) -> Preset:
        return preset(self.preset)

    @property
    def uses_orca(self) -> bool:
        return self.spec.orca or self.orca.enabled

    @property
    def tower_names(self) -> tuple[str, ...]:
        """The preset's towers, in order (a single-task preset's: the chosen task)."""
        return (self.towers.single_task,) if self.spec.single_task else self.spec.towers

    @property
    def serving(self) -> tuple[str, ...]:
        """The towers' serving outputs (what the default score fuses)."""
        if self.spec.single_task:
            return (TASKS[self.towers.single_task].serving_output,)
        return self.spec.serving

    @property
    def fusion(self) -> Fusion:
        """The preset's default serving score (`ranking.fusion`)."""
        return default_fusion(self.serving)

    @property
    def tower_units(self) -> tuple[int, ...]:
        if self.towers.tower_units is not None:
            return tuple(self.towers.tower_units)
        return () if BACKBONES[self.spec.backbone].interaction else DEFAULT_TOWER_UNITS

    @classmethod
    def from_json(cls, data: Mapping) -> "ModelConfig":
        return from_json(cls, dict(data))


def check_config(config: ModelConfig) -> None:
    """ValueError naming what is wrong with a config."""
    spec = config.spec
    if spec.single_task and config.towers.single_task not in SINGLE_TASKS:
        raise ValueError(f"single_task must be one of {', '.join(SINGLE_TASKS)}, "
                         f"not {config.towers.single_task!r}")
    if config.uses_orca:
        orca.check_model(config.preset, spec.towers, spec.backbone, config.orca)
    config.backbone.check()
    if config.towers.tower_units is not None and any(int(u) < 1
                                                     for u in config.towers.tower_units):
        raise ValueError(f"tower_units must be widths >= 1, not {config.towers.tower_units!r}")
    if config.towers.tower_output == "fm_terms" and not config.tower_units:
        raise ValueError(f"--tower_output=fm_terms needs towers with a hidden layer; "
                         f"{config.preset}'s have none (--tower_units)")
    config.regularization.check()
    config.orca.check()


def model_tasks(config: ModelConfig, targets: DwellTargets) -> list[Task]:
    """The model's tasks in tower order (ORCA's `nde` last)."""
    tasks = [make_task(name, config.towers, targets) for name in config.tower_names]
    return orca.adapt_tasks(tasks, config.orca) if config.uses_orca else tasks


def output_names(config: ModelConfig, targets: DwellTargets) -> tuple[str, ...]:
    """What export, scoring and evaluation read: `score`, then every task's serving outputs."""
    names = ["score"]
    for task in model_tasks(config, targets):
        names += [n for n in task.serving_outputs if n not in names]
    return tuple(names)


def build_network(spec: FeatureSpec, config: ModelConfig,
                  targets: DwellTargets) -> tf.keras.Model:
    """The functional network: {feature: Tensor[batch]} -> {output name: Tensor}."""
    check_config(config)
    inputs = {f.name: tf.keras.Input(shape=(), dtype=f.dtype, name=f.name)
              for f in spec.features}
    encoder = FeatureEncoder(spec, config.embedding_init_std, name="features")
    tasks = model_tasks(config, targets)
    # ORCA's h_s as its NDE loss may train it (`ranking.orca`: shared_representation).
    nde_shared = ({"nde_shared": config.orca.shared_representation}
                  if config.uses_orca and config.orca.shared_representation != "stop" else {})
    backbone = BACKBONES[config.spec.backbone].make(
        [t.task for t in tasks if t.has_tower], config.backbone, config.regularization, spec,
        **nde_shared)
    # The embeddings' first-order and FM terms, which the towers' last layers read with
    # --tower_output=fm_terms (`ranking.output_layers`).
    wide = (WideTerms(spec, name="wide_terms") if config.towers.tower_output == "fm_terms"
            else None)

    def represent(encoded, training=None):
        representations = backbone(encoded, training=training)
        return representations if wide is None else {**representations, WIDE: wide(encoded)}

    representations = represent(encoder(inputs))
    outputs = {}
    for task in tasks:
        if task.has_tower:
            tower = make_tower(config.towers.tower_output, config.tower_units, task.output_units,
                               config.regularization.dropout, config.regularization.batch_norm,
                               name=f"{task.task}_tower")
            outputs.update(task.outputs(tower(tower_input(representations, task.task))))
    if config.uses_orca:
        @tf.autograph.experimental.do_not_convert  # straight-line code
        def masked_forward(features, post_click_mask):
            # Inference mode: the second forward updates no batch-norm statistic and draws no
            # dropout noise, so the backbone the towers train is not disturbed.
            return represent(encoder(features, post_click_mask=post_click_mask),
                             training=False)

        outputs.update(orca.attach(config.orca, tasks, inputs, representations, outputs,
                                   masked_forward, config.tower_units, config.regularization,
                                   config.towers.tower_output))
    outputs["score"] = config.fusion.apply(outputs)
    return tf.keras.Model(inputs=inputs, outputs=outputs, name=config.preset)


class RankingModel(tfrs.Model):
    """The network and its tasks; `compute_loss((features, labels))` sums the task losses."""

    def __init__(self, spec: FeatureSpec, config: ModelConfig, targets: DwellTargets):
        super().__init__()
        self.feature_spec = spec
        self.config = config
        self.targets = targets
        self.network = build_network(spec, config, targets)
        self.tasks = model_tasks(config, targets)

    def call(self, features: Mapping[str, tf.Tensor], training: bool = False):
        return self.network({name: features[name] for name in self.feature_spec.names},
                            training=training)

    def shared_variables(self) -> list[tf.Variable]:
        """Trainable variables every task reaches: the feature encoder's and the backbone's."""
        names = ("features", BACKBONES[self.config.spec.backbone].layer_name)
        return [v for n in names for v in self.network.get_layer(n).trainable_variables]

    def task_losses(self, inputs, training: bool = False) -> dict[str, tf.Tensor]:
        """{task: scalar loss} of a batch `inputs` = (features, labels)."""
        features, labels = inputs
        outputs = self(features, training=training)
        return {task.task: task(labels, outputs) for task in self.tasks}

    def compute_loss(self, inputs, training: bool = False) -> tf.Tensor:
        return tf.add_n(list(self.task_losses(inputs, training).values()))
