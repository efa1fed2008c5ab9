"""One training run's parts, as the loops use them: the model, the optimizer, the progress
counters, the checkpoint (with MetaBalance's averages, the selection state and ORCA's NDE
optimizer when the run has them) and its manager (`build_run`)."""

from __future__ import annotations

import contextlib
import dataclasses
import os

import numpy as np

from core.errors import InputError
from ranking import variable_memory
from ranking.optimizers import make_optimizer


@dataclasses.dataclass
class Run:
    """One training run's parts (`ranking.loops` trains it)."""

    config: object  # TrainConfig
    model_dir: str
    strategy: object
    chief: bool
    spec: object  # FeatureSpec
    inputs: object  # ranking.data.Inputs
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
    workers: int = 1
    validator: object = None  # ranking.selection.Validator, with a validation window
    # ORCA with --mask_scope=batch: the optimizer of the NDE-only step (`ranking.orca`).
    nde_optimizer: object = None
    # `ranking.loops.synchronous_steps`, once made: training and the refit pass share its trace.
    synchronous_steps: object = None

    @property
    def train_source(self):
        return self.inputs.train

    @property
    def labeler(self):
        return self.inputs.labeler

    @property
    def rows_per_file(self) -> np.ndarray:
        """int64 [training files]: rows of each (the counting pass)."""
        return self.inputs.rows_per_file

    def save(self) -> None:
        """Writes a checkpoint at the global step (every task calls it; only the chief's
        directory keeps them)."""
        self.manager.save(checkpoint_number=int(self.global_step))


def build_run(config, model_dir: str, strategy, chief: bool, spec, targets, inputs,
              workers: int, validator_factory=None, click_rate: float | None = None) -> Run:
    """The model, optimizer, counters and checkpoint of a run, made in the strategy's scope;
    `validator_factory(run)` makes the run's validator (its selection state is checkpointed);
    `click_rate` (clicks / rows of the training logs) sets the click tower's initial output
    bias under --output_bias=prior (a restored checkpoint then overwrites it)."""
    import tensorflow as tf

    from ranking.models import RankingModel

    counters = {name: tf.Variable(0, dtype=tf.int64, trainable=False, name=name)
                for name in ("global_step", "epoch", "batch_in_epoch", "steps_per_epoch")}
    # Variables this machine's memory cannot hold are refused, not left to the OOM killer.
    guard = contextlib.nullcontext()
    if variable_memory.checks(strategy):
        available = variable_memory.available_bytes()
        variable_memory.check_embedding_tables(spec, config.optimizer, available)
        guard = variable_memory.within_memory(available)
    with guard, strategy.scope():
        model = RankingModel(spec, config.model, targets)
        # Create every variable now, so a restore fills them all at once.
        model({f.name: tf.zeros([1], f.dtype) for f in spec.features})
        if config.model.towers.output_bias == "prior":
            set_click_prior(model, click_rate)
        optimizer = make_optimizer(config.optimizer, model)
        # Slots now, not at the first step: a restore then fills them at once, which a
        # deferred restore into slots made later on parameter servers would not.
        if hasattr(optimizer, "build"):
            optimizer.build(model.trainable_variables)
        elif hasattr(optimizer, "_create_all_weights"):  # legacy Keras optimizers
            optimizer._create_all_weights(model.trainable_variables)  # noqa: SLF001
        nde_optimizer = None
        if config.model.uses_orca and config.model.orca.mask_scope == "batch":
            # The authors' NDE-only step has its own Adam state, at a multiple of the rate.
            nde_optimizer = make_optimizer(dataclasses.replace(
                config.optimizer, embedding_optimizer="same",
                learning_rate=config.optimizer.learning_rate
                * config.model.orca.nde_learning_rate_ratio))
            nde_variables = model.network.get_layer("orca").nde_step_variables
            if hasattr(nde_optimizer, "build"):
                nde_optimizer.build(nde_variables)
            else:
                nde_optimizer._create_all_weights(nde_variables)  # noqa: SLF001
        balance = None
        if config.metabalance.enabled:
            from ranking.metabalance import MetaBalance

            towers = [task.task for task in model.tasks]
            balance = MetaBalance(towers[0], towers[1:], config.metabalance.ratio,
                                  config.metabalance.beta)
    run = Run(config=config, model_dir=model_dir, strategy=strategy, chief=chief, spec=spec,
              inputs=inputs, model=model, optimizer=optimizer, balance=balance,
              checkpoint=None, manager=None, workers=workers, nde_optimizer=nde_optimizer,
              **counters)
    parts = dict(model=model, optimizer=optimizer, **counters)
    if nde_optimizer is not None:
        parts["nde_optimizer"] = nde_optimizer
    if balance is not None:
        parts["metabalance"] = balance
    if validator_factory is not None:
        with strategy.scope():
            run.validator = validator_factory(run)
        parts["selection"] = run.validator.selection.module
    run.checkpoint = tf.train.Checkpoint(**parts)
    if chief:
        run.manager = tf.train.CheckpointManager(
            run.checkpoint, os.path.join(model_dir, "checkpoints"),
            max_to_keep=config.keep_checkpoints)
    else:  # other workers write somewhere harmless, removed at the end (tf.distribute's way)
        task_id = strategy.cluster_resolver.task_id
        run.manager = tf.train.CheckpointManager(
            run.checkpoint, os.path.join(model_dir, f".worker-{task_id}-checkpoints"),
            max_to_keep=1)
        if run.validator is not None:
            from ranking.selection_files import scratch_directory

            run.validator.scratch = scratch_directory(model_dir, task_id)
    return run


def set_click_prior(model, click_rate: float | None) -> None:
    """Sets the output bias of `model`'s click tower (`ctr`) to logit(click_rate), the
    log-odds of the training CTR: the initial prediction is then the base rate."""
    import math

    if click_rate is None or not 0.0 < click_rate < 1.0:
        raise InputError(f"--output_bias=prior needs a training CTR strictly between 0 and 1, "
                         f"not {click_rate}")
    tower = model.network.get_layer("ctr_tower")
    tower.output_layer.bias.assign([math.log(click_rate / (1.0 - click_rate))])
