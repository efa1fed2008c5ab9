"""The field view of the encoder's output: one vector of one width per feature.

FM and AutoInt interact features pairwise, so they need every feature as a vector of the same
width k. Rather than a second feature pipeline, `FieldView` slices the encoder's flat output
(embeddings in spec order, then numerics; see `ranking.layers.FeatureEncoder`) and maps each
slice to k dimensions: an embedding of width k as it is, another width through a linear map
without bias (a factorized embedding), a numeric value x to x * v_f (a learned vector per
numeric feature, as DeepFM and AutoInt embed dense features).
"""

from __future__ import annotations

import tensorflow as tf

from ranking.features import FeatureSpec
from ranking.layers import StaticLayer


def field_widths(spec: FeatureSpec) -> list[tuple[str, int]]:
    """(feature, width) of each slice of the encoder's output, in its order."""
    categorical = [(f.name, f.embedding_dim) for f in spec.features if f.kind == "categorical"]
    numeric = [(f.name, 1) for f in spec.features if f.kind != "categorical"]
    return categorical + numeric


class FieldView(StaticLayer):
    """x [batch, d] (the encoder's output) -> [batch, num_fields, k]."""

    def __init__(self, spec: FeatureSpec, k: int, **kwargs):
        super().__init__(**kwargs)
        self.widths = field_widths(spec)
        self.k = k
        self.maps = {name: tf.keras.layers.Dense(k, use_bias=False, name=f"{name}_field")
                     for name, width in self.widths if width != k}

    def call(self, x):
        fields, start = [], 0
        for name, width in self.widths:
            part = x[:, start:start + width]
            start += width
            fields.append(self.maps[name](part) if name in self.maps else part)
        return tf.stack(fields, axis=1)
