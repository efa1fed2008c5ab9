"""MMoE (Ma et al., KDD 2018): shared experts, one softmax gate per task, plus a shared gate.

h_t = sum_k g_t(x)_k e_k(x), g_t = softmax(W_t x + b_t) over the experts. The extra gate gives
the shared representation h_s that ORCA's NDE tower reads (SPEC §4); by default ORCA reads it
through a stop-gradient, so that gate is never trained and is the mean of the experts (zero
weights). With `nde_shared` ("gate" or "gate_and_experts", ORCA's `shared_representation`) it
also returns `nde_shared`, the mix through which the NDE loss trains that gate (and the
experts).
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from ranking.layers import MLP, StaticLayer


def mix(experts: Sequence[tf.Tensor], gate: tf.Tensor) -> tf.Tensor:
    """Gate-weighted sum of expert outputs: n experts [batch, d], gate [batch, n] -> [batch, d].

    A sum of n broadcast products: on 2 CPUs half the op time of stacking the experts and
    contracting them with the gate (`einsum`, then a quarter of a `ple` step's op time after the
    matmuls; docs/BENCHMARKS.md, benchmarks/profile_step.py)."""
    return tf.add_n([weight * expert for weight, expert in
                     zip(tf.split(gate, len(experts), axis=1), experts)])


class MMoE(StaticLayer):
    """x [batch, d] -> {task: h_t, "shared": h_s} [batch, expert_units[-1]]."""

    def __init__(self, task_names: Sequence[str], num_experts: int,
                 expert_units: Sequence[int], dropout: float = 0.0, batch_norm: bool = False,
                 nde_shared: str = "stop", **kwargs):
        super().__init__(**kwargs)
        if num_experts < 1:
            raise ValueError("MMoE needs at least one expert")
        self.task_names = tuple(task_names)
        self.nde_shared = nde_shared
        self.experts = [MLP(expert_units, dropout=dropout, batch_norm=batch_norm,
                            name=f"expert_{k}") for k in range(num_experts)]
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
        experts = [e(x, training=training) for e in self.experts]
        out = {name: mix(experts, g) for name, g in self.gate_values(x).items()}
        if self.nde_shared == "gate":  # the experts as computed, stopped: only the gate learns
            out["nde_shared"] = mix([tf.stop_gradient(e) for e in experts],
                                    self.gates["shared"](tf.stop_gradient(x)))
        elif self.nde_shared == "gate_and_experts":
            out["nde_shared"] = self.shared_for_nde(x)
        return out

    def shared_for_nde(self, x) -> tf.Tensor:
        """h_s as ORCA's NDE loss trains it with `nde_shared` "gate_and_experts": the experts
        rerun in inference mode on the stopped input (so no gradient reaches the encoder and
        no batch-norm statistic moves), mixed by the shared gate."""
        stopped = tf.stop_gradient(x)
        experts = [e(stopped, training=False) for e in self.experts]
        return mix(experts, self.gates["shared"](stopped))
