"""AutoInt+ (Song et al., CIKM 2019): multi-head self-attention over the fields, and a DNN.

Each interacting layer: multi-head self-attention over the F field vectors, plus a residual
(the input mapped linearly to the attention's width), then ReLU. The backbone returns
[flatten(last layer's fields), DNN(x)] (the "+" variant, as DeepCTR's AutoInt with its default
DNN), which the task's output layer reads."""

from __future__ import annotations

from typing import Sequence

import tensorflow as tf

from ranking.backbones.fields import FieldView
from ranking.layers import MLP, StaticLayer


class InteractingLayer(StaticLayer):
    """[batch, F, d_in] -> [batch, F, heads * key_dim]."""

    def __init__(self, heads: int, key_dim: int, **kwargs):
        super().__init__(**kwargs)
        self.attention = tf.keras.layers.MultiHeadAttention(
            num_heads=heads, key_dim=key_dim, output_shape=heads * key_dim, name="attention")
        self.residual = tf.keras.layers.Dense(heads * key_dim, use_bias=False, name="residual")

    def call(self, fields):
        return tf.nn.relu(self.attention(fields, fields) + self.residual(fields))


class AutoInt(StaticLayer):
    def __init__(self, task_names: Sequence[str], spec, field_dim: int, attention_layers: int,
                 attention_heads: int, units: Sequence[int], dropout: float = 0.0,
                 batch_norm: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.task_names = tuple(task_names)
        self.fields = FieldView(spec, field_dim, name="fields")
        self.interacting = [InteractingLayer(attention_heads, field_dim, name=f"interacting_{k}")
                            for k in range(attention_layers)]
        self.dnn = MLP(units, dropout=dropout, batch_norm=batch_norm, name="dnn")

    def call(self, x, training=None):
        fields = self.fields(x)
        for layer in self.interacting:
            fields = layer(fields)
        flat = tf.reshape(fields, [-1, fields.shape[1] * fields.shape[2]])
        h = tf.concat([flat, self.dnn(x, training=training)], axis=1)
        return {**{t: h for t in self.task_names}, "shared": h}
