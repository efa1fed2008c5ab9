"""MMoE (Ma et al., KDD 2018): shared experts, one softmax gate per task, plus a shared gate.

h_t = sum_k g_t(x)_k e_k(x), g_t = softmax(W_t x + b_t) over the experts. The extra gate gives
the shared representation h_s that ORCA's NDE tower reads (SPEC §4); ORCA reads it through a
stop-gradient, so that gate is never trained and is the mean of the experts (zero weights).
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from ranking.layers import MLP


def mix(experts: tf.Tensor, gate: tf.Tensor) -> tf.Tensor:
    """Gate-weighted sum of expert outputs: experts [batch, n, d], gate [batch, n] -> [batch, d]."""
    return tf.einsum("bn,bnd->bd", gate, experts)


class MMoE(tf.keras.layers.Layer):
    """x [batch, d] -> {task: h_t, "shared": h_s} [batch, expert_units[-1]]."""

    def __init__(self, task_names: Sequence[str], num_experts: int,
                 expert_units: Sequence[int], dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if num_experts < 1:
            raise ValueError("MMoE needs at least one expert")
        self.task_names = tuple(task_names)
        self.experts = [MLP(expert_units, dropout=dropout, name=f"expert_{k}")
                        for k in range(num_experts)]
        # The shared gate gives h_s, which ORCA's NDE reads through a stop-gradient: no loss
        # trains it, so it starts (and stays) at zero, the plain mean of the experts, rather
        # than at a random mixture.
        self.gates = {name: tf.keras.layers.Dense(
            num_experts, activation="softmax", name=f"{name}_gate",
            kernel_initializer="zeros" if name == "shared" else "glorot_uniform")
            for name in self.task_names + ("shared",)}

    def gate_values(self, x) -> dict[str, tf.Tensor]:
        """Each gate's softmax weights over the experts, [batch, num_experts]."""
        return {name: gate(x) for name, gate in self.gates.items()}

    def call(self, x, training=None):
        experts = tf.stack([e(x, training=training) for e in self.experts], axis=1)
        return {name: mix(experts, g) for name, g in self.gate_values(x).items()}
