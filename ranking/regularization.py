"""Regularization (SPEC §5): dropout, batch normalization, L2 on dense weights and on the
embedding rows a batch touches, and torch-style weight decay on everything; each a flag with
its default here.

- `dropout`: after each hidden layer of every MLP (experts, bottoms, DNNs, towers, ORCA's NDE).
- `batch_norm`: each hidden layer of every MLP becomes Dense -> BatchNormalization -> ReLU
  (-> dropout), as in the ORCA authors' towers.
- `l2_dense`: lambda * sum of squared weights of every weight matrix (Dense kernels, attention
  and cross layers; not biases, batch-norm scales or embedding tables), added to the training
  loss each step.
- `l2_embedding`: lambda * sum of squared embedding rows the batch looks up (each distinct row
  once per step), added to the training loss: like a Keras L2 regularizer on the table, but
  only the rows LazyAdam updates get its gradient, so rarely seen ids decay only when seen
  (a whole-table penalty would touch every row at every step, which LazyAdam exists to avoid).
- `weight_decay`: wd / 2 * sum of squares of every trainable variable (weight matrices, biases,
  batch-normalization scales and offsets, whole embedding tables), added to the training loss,
  so each variable's gradient gets wd * w at every step: torch's Adam `weight_decay` (coupled,
  not AdamW's), as the ORCA authors train (1e-4 on every parameter). Every embedding row then
  has a gradient at every step, so with Adam an id not seen for a while still shrinks (its
  moments see only the decay): a real difference from `l2_embedding`, not a rescaling.

Under a distribution strategy each replica adds its share (divided by the replicas in sync),
so the all-reduced gradient holds the penalty once (for `l2_embedding`, rows that two replicas
both touch are counted by each, which halves their share: the penalty is then per replica's
batch, a documented approximation).
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from core.settings import setting


@dataclasses.dataclass(frozen=True)
class RegularizationConfig:
    dropout: float = setting(0.0, "Dropout rate after each hidden layer.")
    batch_norm: bool = setting(False, "Batch normalization in every hidden layer of the "
                               "experts, bottoms and towers.")
    l2_dense: float = setting(0.0, "L2 penalty on dense weight matrices (lambda x sum of "
                              "squares).")
    l2_embedding: float = setting(0.0, "L2 penalty on the embedding rows each batch touches.")
    weight_decay: float = setting(
        0.0, "Weight decay as torch's Adam weight_decay: wd x w added to the gradient of every "
        "trainable variable (biases, batch normalization and whole embedding tables too) at "
        "every step, i.e. wd/2 x the sum of squares added to the loss (the ORCA authors': 1e-4).")

    @property
    def any_penalty(self) -> bool:
        """Whether the training loss has a penalty term."""
        return bool(self.l2_dense or self.l2_embedding or self.weight_decay)

    def check(self) -> None:
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), not {self.dropout}")
        if self.l2_dense < 0 or self.l2_embedding < 0 or self.weight_decay < 0:
            raise ValueError(f"--l2_dense, --l2_embedding and --weight_decay must be >= 0, not "
                             f"{self.l2_dense}, {self.l2_embedding}, {self.weight_decay}")


def dense_matrices(model) -> list[tf.Variable]:
    """The trainable weight matrices of `model` (a RankingModel) but its embedding tables."""
    tables = {id(layer.embeddings) for layer in
              model.network.get_layer("features").embeddings.values()}
    return [v for v in model.trainable_variables if len(v.shape) >= 2 and id(v) not in tables]


def _squared_norms(variables) -> tf.Tensor:
    return tf.add_n([tf.constant(0.0)] + [tf.reduce_sum(tf.square(v)) for v in variables])


def _replica_share(total: tf.Tensor) -> tf.Tensor:
    replica = tf.distribute.get_replica_context()
    return total / (replica.num_replicas_in_sync if replica is not None else 1)


def penalty(model, features, config: RegularizationConfig, matrices=None) -> tf.Tensor:
    """This replica's share of the regularization loss of a batch (a scalar)."""
    total = tf.constant(0.0)
    if config.l2_dense:
        total += config.l2_dense * _squared_norms(matrices or dense_matrices(model))
    if config.l2_embedding:
        encoder = model.network.get_layer("features")
        total += config.l2_embedding * encoder.touched_rows_squared_norm(features)
    if config.weight_decay:
        total += 0.5 * config.weight_decay * _squared_norms(model.trainable_variables)
    return _replica_share(total)


def variables_penalty(variables, config: RegularizationConfig) -> tf.Tensor:
    """This replica's share of the penalty on `variables` alone (ORCA's NDE-only step, which
    trains them with its own optimizer): `l2_dense` on their matrices, `weight_decay` on all."""
    total = tf.constant(0.0)
    if config.l2_dense:
        total += config.l2_dense * _squared_norms([v for v in variables if len(v.shape) >= 2])
    if config.weight_decay:
        total += 0.5 * config.weight_decay * _squared_norms(variables)
    return _replica_share(total)
