"""AITM (Xi et al., KDD 2021): adaptive information transfer between sequential tasks.

Each task has its own MLP on the shared embeddings, giving q_t. For every task after the first,
the previous task's representation z_{t-1} is transferred as p_{t-1} = relu(W z_{t-1}), and
z_t = AIT(p_{t-1}, q_t): single-head attention over the two vectors,
w_u = softmax_u(<h2(u), h3(u)> / sqrt(d)), z_t = sum_u w_u h1(u), u in {p_{t-1}, q_t}.
The tasks run in the preset's tower order (ctr first: impression -> click -> dwell).

Not included: the paper's behavioural expectation calibrator, a hinge on p(conversion) >
p(click) between two probabilities of nested events; a dwell-bin distribution given a click
has no such order with the click probability.
"""

from __future__ import annotations

import math
from typing import Sequence

import tensorflow as tf

from ranking.layers import MLP, StaticLayer


class AdaptiveInformationTransfer(StaticLayer):
    """(p, q) [batch, d] each -> z [batch, d]."""

    def __init__(self, units: int, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.h1 = tf.keras.layers.Dense(units, name="value")
        self.h2 = tf.keras.layers.Dense(units, name="query")
        self.h3 = tf.keras.layers.Dense(units, name="key")

    def call(self, p, q):
        inputs = tf.stack([p, q], axis=1)  # [batch, 2, d]
        scores = tf.reduce_sum(self.h2(inputs) * self.h3(inputs), axis=-1) / math.sqrt(
            self.units)
        weights = tf.nn.softmax(scores, axis=1)  # [batch, 2]
        return tf.einsum("bu,bud->bd", weights, self.h1(inputs))


class AITM(StaticLayer):
    """x [batch, d] -> {task: z_t [batch, units[-1]], "shared": x}."""

    def __init__(self, task_names: Sequence[str], units: Sequence[int], dropout: float = 0.0,
                 batch_norm: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.task_names = tuple(task_names)
        width = units[-1]
        self.networks = {t: MLP(units, dropout=dropout, batch_norm=batch_norm, name=f"{t}_network")
                         for t in self.task_names}
        self.transfers = {t: tf.keras.layers.Dense(width, activation="relu",
                                                   name=f"{t}_info")
                          for t in self.task_names[1:]}
        self.attention = {t: AdaptiveInformationTransfer(width, name=f"{t}_ait")
                          for t in self.task_names[1:]}

    def call(self, x, training=None):
        outputs, previous = {"shared": x}, None
        for t in self.task_names:
            q = self.networks[t](x, training=training)
            z = q if previous is None else self.attention[t](self.transfers[t](previous), q)
            outputs[t], previous = z, z
        return outputs
