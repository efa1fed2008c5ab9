"""Separate task networks on shared embeddings: ESMM's structure (Ma et al., SIGIR 2018).

ESMM shares only the embedding layer; each task has its own MLP. Its "entire space" loss lives
in the `entire_space_dwell` task (`ranking.tasks`)."""

from __future__ import annotations

from typing import Sequence

from ranking.layers import MLP, StaticLayer


class Separate(StaticLayer):
    """x [batch, d] -> {task: MLP_t(x)} and "shared": x."""

    def __init__(self, task_names: Sequence[str], units: Sequence[int], dropout: float = 0.0,
                 batch_norm: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.task_names = tuple(task_names)
        self.networks = {t: MLP(units, dropout=dropout, batch_norm=batch_norm, name=f"{t}_network")
                         for t in self.task_names}

    def call(self, x, training=None):
        return {**{t: self.networks[t](x, training=training) for t in self.task_names},
                "shared": x}
