"""DeepFM (Guo et al., IJCAI 2017): first-order terms, FM second-order interactions, a DNN.

DeepFM's logit is w.x + FM(x) + DNN(x). Here the backbone returns [DNN(x), bi(x), x], where
bi(x) = 0.5 ((sum_f v_f)^2 - sum_f v_f^2) [batch, k] is FM's pairwise interaction before its
sum over the k factors, and the task's output layer (a linear map: the tower has no hidden
layers) reads it: for one logit it is DeepFM with a learned weight per factor instead of 1;
for `num_bins` logits (the dwell task) it is the same model with one such output per bin.
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from ranking.backbones.fields import FieldView
from ranking.layers import MLP, StaticLayer


def bi_interaction(fields: tf.Tensor) -> tf.Tensor:
    """FM's pairwise interactions sum_{i<j} v_i * v_j: fields [batch, F, k] -> [batch, k]."""
    summed = tf.reduce_sum(fields, axis=1)
    return 0.5 * (tf.square(summed) - tf.reduce_sum(tf.square(fields), axis=1))


class DeepFM(StaticLayer):
    def __init__(self, task_names: Sequence[str], spec, field_dim: int, units: Sequence[int],
                 dropout: float = 0.0, batch_norm: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.task_names = tuple(task_names)
        self.fields = FieldView(spec, field_dim, name="fields")
        self.dnn = MLP(units, dropout=dropout, batch_norm=batch_norm, name="dnn")

    def call(self, x, training=None):
        h = tf.concat([self.dnn(x, training=training), bi_interaction(self.fields(x)), x], axis=1)
        return {**{t: h for t in self.task_names}, "shared": h}
