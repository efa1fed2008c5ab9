"""Shared bottom: one MLP whose output every tower reads (and `single_ctr`'s MLP backbone)."""

from __future__ import annotations

from typing import Sequence

from ranking.layers import MLP, StaticLayer


class SharedBottom(StaticLayer):
    """x [batch, d] -> {task: h, "shared": h}, h = MLP(x) [batch, units[-1]]."""

    def __init__(self, task_names: Sequence[str], units: Sequence[int], dropout: float = 0.0,
                 batch_norm: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.task_names = tuple(task_names)
        self.mlp = MLP(units, dropout=dropout, batch_norm=batch_norm, name="mlp")

    def call(self, x, training=None):
        h = self.mlp(x, training=training)
        return {**{t: h for t in self.task_names}, "shared": h}
