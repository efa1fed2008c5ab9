"""DCN-V2 (Wang et al., WWW 2021), stacked: tfrs `Cross` layers, then a DNN.

x_{l+1} = x_0 * (W_l x_l + b_l) + x_l for `cross_layers` layers (full-rank W_l), then an MLP; the
task's output layer reads the MLP's output."""

from __future__ import annotations

from typing import Sequence

import tensorflow_recommenders as tfrs

from ranking.layers import MLP, StaticLayer


class DCNv2(StaticLayer):
    def __init__(self, task_names: Sequence[str], cross_layers: int, units: Sequence[int],
                 dropout: float = 0.0, batch_norm: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.task_names = tuple(task_names)
        self.crosses = [tfrs.layers.dcn.Cross(name=f"cross_{k}") for k in range(cross_layers)]
        self.dnn = MLP(units, dropout=dropout, batch_norm=batch_norm, name="dnn")

    def call(self, x, training=None):
        x0, xl = x, x
        for cross in self.crosses:
            xl = cross(x0, xl)
        h = self.dnn(xl, training=training)
        return {**{t: h for t in self.task_names}, "shared": h}
