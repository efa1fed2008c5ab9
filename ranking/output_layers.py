"""The towers' output layers: this project's (`dense`) or the ORCA authors' (`fm_terms`).

`dense` (the default): a tower is an MLP of `tower_units` hidden layers (batch normalization
and dropout in each when the model has them) and a linear output layer of the task's width.

`fm_terms` (`--tower_output=fm_terms`, `configs/orca_authors.flags`): the ORCA authors' output
layers (their `model/orca.py`). The tower's hidden layers but the last as above; then its last
hidden layer (Dense, ReLU; no batch normalization, no dropout) reads them concatenated with two
scalars of the embeddings, `WideTerms`:

- the first-order term, a linear map of the encoder's output plus a bias (theirs: a learned
  scalar per id; here each id's scalar is w . e_id, its embedding through one shared map, and
  a numeric feature's w_f x);
- the FM term, sum_{i<j} <v_i, v_j> over the fields' vectors (`ranking.backbones.fields`: the
  embeddings as they are, another width or a numeric through a linear map), summed over the
  factors;

then the linear output. ORCA's NDE reads the same two terms, stopped (`ranking.orca`). Theirs
sets the last hidden width per head (8 for the click, the number of bins for a dwell head);
here it is `tower_units`' last for every tower (the same with `--tower_units=16,8` and 8 bins).

[batch, d] representation (and [batch, 2] terms) -> [batch, output_units].
"""

from __future__ import annotations

from collections import Counter
from typing import Mapping, Sequence

import tensorflow as tf

from ranking.backbones.deepfm import bi_interaction
from ranking.backbones.fields import FieldView, field_widths
from ranking.features import FeatureSpec
from ranking.layers import MLP, StaticLayer

TOWER_OUTPUTS = ("dense", "fm_terms")
WIDE = "wide"  # the representations' key of the [batch, 2] terms


class WideTerms(StaticLayer):
    """The encoder's output x [batch, d] -> [first-order term, FM term] [batch, 2]."""

    def __init__(self, spec: FeatureSpec, **kwargs):
        super().__init__(**kwargs)
        widths = [w for _, w in field_widths(spec) if w > 1] or [1]
        # The fields' common width: the embeddings' most common one (ties: the widest).
        counts = Counter(widths)
        self.k = max(counts, key=lambda w: (counts[w], w))
        self.fields = FieldView(spec, self.k, name="fields")
        self.first_order = tf.keras.layers.Dense(1, name="first_order")

    def call(self, x: tf.Tensor) -> tf.Tensor:
        fm = tf.reduce_sum(bi_interaction(self.fields(x)), axis=1, keepdims=True)
        return tf.concat([self.first_order(x), fm], axis=1)


class FmTermsTower(StaticLayer):
    """The authors' tower (module docstring): (h [batch, d], terms [batch, 2]) -> logits
    [batch, output_units]."""

    def __init__(self, units: Sequence[int], output_units: int, dropout: float = 0.0,
                 batch_norm: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.body = MLP(tuple(units[:-1]), dropout=dropout, batch_norm=batch_norm, name="body")
        self.head = MLP(tuple(units[-1:]), output_units=output_units, name="head")

    @property
    def output_layer(self):
        """The linear output layer (its bias takes the click prior)."""
        return self.head.output_layer

    def call(self, inputs, training=None):
        h, terms = inputs
        return self.head(tf.concat([self.body(h, training=training), terms], axis=1))


def make_tower(tower_output: str, units: Sequence[int], output_units: int, dropout: float,
               batch_norm: bool, name: str) -> tf.keras.layers.Layer:
    """A tower of `tower_output`'s kind; call it on `tower_input(...)`."""
    if tower_output == "fm_terms":
        return FmTermsTower(units, output_units, dropout=dropout, batch_norm=batch_norm,
                            name=name)
    return MLP(units, output_units=output_units, dropout=dropout, batch_norm=batch_norm,
               name=name)


def tower_input(representations: Mapping[str, tf.Tensor], name: str):
    """What the tower of representation `name` reads: the representation, or with the wide
    terms (when the model has them) the pair (representation, terms)."""
    h = representations[name]
    return h if WIDE not in representations else (h, representations[WIDE])
