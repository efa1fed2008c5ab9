"""Optimizers: their settings (`OptimizerConfig`), the factory (`make_optimizer`), and Adam with
lazy (row-wise) updates of embedding tables.

Keras' Adam applies a sparse gradient (an embedding lookup's `IndexedSlices`) densely: it decays
both moments of every row of the table and moves every row whose moment is not zero, at every
step. For the two 131,072 x 16 id tables that is most of a training step on 2 CPUs.

`LazyAdam` (the update of TF Addons' LazyAdam and of TensorFlow 1's `LazyAdamOptimizer`) does
exactly Adam on dense gradients, and on a sparse gradient updates only the rows in the batch:

    m[rows] <- beta_1 m[rows] + (1 - beta_1) g
    v[rows] <- beta_2 v[rows] + (1 - beta_2) g^2
    w[rows] <- w[rows] - lr sqrt(1 - beta_2^t) / (1 - beta_1^t) m[rows] / (sqrt(v[rows]) + eps)

(repeated indices in a batch are summed first). A row's moments therefore decay only when it is
seen: a rarely seen id keeps its last moments instead of drifting with zero gradients, which is
what large, sparse id tables want; on dense variables it is Adam.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from core.errors import InputError
from core.settings import setting

OPTIMIZERS = ("lazy_adam", "adam", "adagrad", "sgd")
# Slot variables each keeps per weight (Adam's two moments, Adagrad's accumulator).
SLOTS = {"lazy_adam": 2, "adam": 2, "adagrad": 1, "sgd": 0}


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
    """The optimizer of a training run (and, optionally, another one for the embedding tables)."""

    optimizer: str = setting("lazy_adam", "Optimizer (lazy_adam: Adam that updates only the "
                             "embedding rows of the batch).", choices=OPTIMIZERS)
    # 3e-3, not Keras' 1e-3: one epoch of small logs is otherwise under-trained (the
    # measurement is in the README's training defaults).
    learning_rate: float = setting(3e-3, "Learning rate.")
    embedding_optimizer: str = setting(
        "same", "Optimizer of the embedding tables (same: --optimizer for everything).",
        choices=("same",) + OPTIMIZERS)
    embedding_learning_rate: float = setting(0.05, "Learning rate of --embedding_optimizer.")


class LazyAdam(tf.keras.optimizers.legacy.Adam):
    """Adam; sparse gradients update only the rows they touch (module docstring)."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 name="LazyAdam", **kwargs):
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                         epsilon=epsilon, amsgrad=False, name=name, **kwargs)

    def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
        var_device, var_dtype = var.device, var.dtype.base_dtype
        coefficients = (apply_state or {}).get(
            (var_device, var_dtype)) or self._fallback_apply_state(var_device, var_dtype)
        m = self.get_slot(var, "m")
        v = self.get_slot(var, "v")
        m_rows = (coefficients["beta_1_t"] * tf.gather(m, indices)
                  + coefficients["one_minus_beta_1_t"] * grad)
        v_rows = (coefficients["beta_2_t"] * tf.gather(v, indices)
                  + coefficients["one_minus_beta_2_t"] * tf.square(grad))
        update_m = self._resource_scatter_update(m, indices, m_rows)
        update_v = self._resource_scatter_update(v, indices, v_rows)
        step = coefficients["lr"] * m_rows / (tf.sqrt(v_rows) + coefficients["epsilon"])
        update_var = self._resource_scatter_add(var, indices, -step)
        return tf.group(update_var, update_m, update_v)


def make_optimizer(config: OptimizerConfig, model=None):
    """The optimizer of `config`; with an `embedding_optimizer` other than "same", embedding
    tables get their own (a tfrs CompositeOptimizer of legacy Keras optimizers; `model`, a
    RankingModel, tells which variables are the tables).

    `lazy_adam` (`LazyAdam`) is Adam on dense variables and updates only the embedding rows of
    the batch; Keras' `adam` decays both moments of every row of every table at every step,
    which for two 131,072 x 16 id tables is most of a training step on 2 CPUs. Adagrad and SGD
    touch only the rows in the batch too."""
    name, embedding_optimizer = config.optimizer, config.embedding_optimizer
    legacy = embedding_optimizer != "same"
    family = tf.keras.optimizers.legacy if legacy else tf.keras.optimizers
    makers = {"adam": family.Adam, "lazy_adam": LazyAdam, "adagrad": family.Adagrad,
              "sgd": family.SGD}
    if name not in makers:
        raise InputError(f"--optimizer must be one of {', '.join(OPTIMIZERS)}, not {name!r}")
    if not legacy:
        return makers[name](config.learning_rate)
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
        (makers[embedding_optimizer](config.embedding_learning_rate), embeddings),
        (makers[name](config.learning_rate), others)])
