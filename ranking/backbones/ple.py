"""PLE (Tang et al., RecSys 2020): progressive layered extraction with CGC levels.

Each level has `task_experts` experts per task and `shared_experts` shared experts. A task's
gate (softmax over its own and the shared experts, on the task's input of that level) gives the
task's next input; the shared gate (softmax over every expert of the level, on the shared
input) gives the next shared input. The paper drops the shared gate at the last level; here it
is kept there too, as ORCA's h_s (SPEC §4: "the shared gate's output at the last level"). By
default no loss trains that gate (ORCA reads h_s through a stop-gradient), so it starts at zero
weights: h_s is the mean of the last level's experts. With `nde_shared` ("gate" or
"gate_and_experts", ORCA's `shared_representation`) the backbone also returns `nde_shared`, the
same mix through which the NDE loss trains that gate (and the last level's experts).
"""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from ranking.backbones.mmoe import mix
from ranking.layers import MLP, StaticLayer


class CGCLevel(StaticLayer):
    """One customized gate control level: ({task: x_t}, x_s) -> ({task: h_t}, h_s)."""

    def __init__(self, task_names, task_experts, shared_experts, expert_units, dropout=0.0,
                 last: bool = False, batch_norm: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.task_names = tuple(task_names)
        self.task_experts = {t: [MLP(expert_units, dropout=dropout, batch_norm=batch_norm,
                                     name=f"{t}_expert_{k}")
                                 for k in range(task_experts)] for t in self.task_names}
        self.shared_experts = [MLP(expert_units, dropout=dropout, batch_norm=batch_norm,
                                   name=f"shared_expert_{k}")
                               for k in range(shared_experts)]
        self.task_gates = {t: tf.keras.layers.Dense(task_experts + shared_experts,
                                                    activation="softmax", name=f"{t}_gate")
                           for t in self.task_names}
        # The last level's shared gate only gives h_s, which ORCA reads through a stop-gradient:
        # untrained, it stays at zero weights (the mean of the level's experts).
        self.shared_gate = tf.keras.layers.Dense(
            len(self.task_names) * task_experts + shared_experts, activation="softmax",
            name="shared_gate", kernel_initializer="zeros" if last else "glorot_uniform")

    def shared_for_nde(self, task_inputs, shared_input) -> tf.Tensor:
        """The shared gate's mix as ORCA's NDE loss trains it with `nde_shared`
        "gate_and_experts": the level's experts rerun in inference mode on the stopped inputs
        (no gradient reaches what feeds the level, no batch-norm statistic moves)."""
        task_inputs = {t: tf.stop_gradient(task_inputs[t]) for t in self.task_names}
        shared_input = tf.stop_gradient(shared_input)
        shared = [e(shared_input, training=False) for e in self.shared_experts]
        own = [e(task_inputs[t], training=False) for t in self.task_names
               for e in self.task_experts[t]]
        return mix(own + shared, self.shared_gate(shared_input))

    def call(self, task_inputs, shared_input, training=None, return_gates=False,
             nde_shared="stop"):
        """-> ({task: h_t}, h_s[, gates]); with `nde_shared` "gate" also h_s as the NDE loss
        trains it (the experts as computed, stopped, mixed by the shared gate on the stopped
        input), appended last."""
        shared = [e(shared_input, training=training) for e in self.shared_experts]
        own = {t: [e(task_inputs[t], training=training) for e in self.task_experts[t]]
               for t in self.task_names}
        gates = {t: self.task_gates[t](task_inputs[t]) for t in self.task_names}
        gates["shared"] = self.shared_gate(shared_input)
        outputs = {t: mix(own[t] + shared, gates[t]) for t in self.task_names}
        every = [h for t in self.task_names for h in own[t]] + shared
        shared_output = mix(every, gates["shared"])
        result = (outputs, shared_output) + ((gates,) if return_gates else ())
        if nde_shared == "gate":
            result += (mix([tf.stop_gradient(h) for h in every],
                           self.shared_gate(tf.stop_gradient(shared_input))),)
        return result


class PLE(StaticLayer):
    """x [batch, d] -> {task: h_t, "shared": h_s} [batch, the last level's widths[-1]].

    Every level's experts have the widths `expert_units`, or level k's `level_units[k]` (the
    ORCA authors' PLE: 128 -> 64, then 32)."""

    def __init__(self, task_names: Sequence[str], num_levels: int, task_experts: int,
                 shared_experts: int, expert_units: Sequence[int], dropout: float = 0.0,
                 batch_norm: bool = False, nde_shared: str = "stop",
                 level_units: Sequence[Sequence[int]] | None = None, **kwargs):
        super().__init__(**kwargs)
        if num_levels < 1 or task_experts < 1 or shared_experts < 1:
            raise ValueError("PLE needs at least one level, one task expert and one shared "
                             "expert")
        self.task_names = tuple(task_names)
        self.nde_shared = nde_shared
        level_units = [expert_units] * num_levels if level_units is None else level_units
        if len(level_units) != num_levels:
            raise ValueError(f"PLE has {num_levels} levels but widths for {len(level_units)}")
        self.levels = [CGCLevel(task_names, task_experts, shared_experts, tuple(level_units[k]),
                                dropout, last=k == num_levels - 1, batch_norm=batch_norm,
                                name=f"level_{k}")
                       for k in range(num_levels)]

    def call(self, x, training=None, return_gates=False):
        task_inputs, shared, all_gates = {t: x for t in self.task_names}, x, []
        nde_shared = None
        for k, level in enumerate(self.levels):
            last_inputs = (task_inputs, shared)
            mode = self.nde_shared if k == len(self.levels) - 1 else "stop"
            task_inputs, shared, gates, *extra = level(
                task_inputs, shared, training=training, return_gates=True, nde_shared=mode)
            all_gates.append(gates)
            if extra:
                nde_shared = extra[0]
        outputs = {**task_inputs, "shared": shared}
        # ORCA's h_s as the NDE loss trains it (module docstring).
        if self.nde_shared == "gate":
            outputs["nde_shared"] = nde_shared
        elif self.nde_shared == "gate_and_experts":
            outputs["nde_shared"] = self.levels[-1].shared_for_nde(*last_inputs)
        return (outputs, all_gates) if return_gates else outputs
