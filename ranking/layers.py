"""Keras layers: the feature encoder (raw log values in, one dense vector out) and MLP towers.

Only TensorFlow ops are used (FarmHash bucketing, static hash tables, embeddings, arithmetic),
so a SavedModel that contains these layers runs with TensorFlow alone.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import tensorflow as tf

from core.lookup_tables import static_table
from ranking.features import Feature, FeatureSpec


class StaticLayer(tf.keras.layers.Layer):
    """A Keras layer whose `call` is straight-line Python over tensors: its loops and branches
    run over lists, dicts and settings, never over tensor values. Keras then need not convert
    it with AutoGraph each time it builds a functional model or traces a step; converting every
    layer was most of the time to build a PLE network (about 6 of 9 s on 2 cores)."""

    def _should_use_autograph(self):  # tf_keras' hook (src/engine/base_layer.py)
        return False


class FeatureEncoder(StaticLayer):
    """Encodes a dict of raw feature Tensors [batch] into float32 [batch, output_dim].

    Categorical features: FarmHash bucket (`to_hash_bucket_fast`; integers are hashed as their
    decimal string) or vocabulary index (0 = out of vocabulary), then an embedding.
    Numeric features: log1p(max(x, 0)) standardized with the stats window's moments, x
    standardized with its own (`standardize`), or x as is.
    Outputs are concatenated in the spec's order: embeddings, then numerics.

    `post_click_mask` (optional bool [batch]): rows whose post-click features are replaced by
    their reserved mask row (categorical) or 0 (numeric), for ORCA's counterfactual masking.
    (Not `mask`: Keras reserves that argument name and fills it from `_keras_mask`.)
    """

    def __init__(self, spec: FeatureSpec, embedding_init_std: float | None = None, **kwargs):
        super().__init__(**kwargs)
        self.spec = spec
        self.embeddings = {}

        def initializer():
            # One initializer per table: a shared unseeded instance would give same-shaped
            # tables identical starting values. None: Keras' default, uniform in [-0.05, 0.05].
            return ("uniform" if embedding_init_std is None
                    else tf.keras.initializers.RandomNormal(stddev=embedding_init_std))

        self.vocabularies = {}
        for feature in spec.features:
            if feature.kind != "categorical":
                continue
            self.embeddings[feature.name] = tf.keras.layers.Embedding(
                feature.num_embeddings, feature.embedding_dim, embeddings_initializer=initializer(),
                name=f"{feature.name}_embedding")
            if feature.vocabulary:
                self.vocabularies[feature.name] = static_table(
                    feature.vocabulary, range(1, len(feature.vocabulary) + 1), tf.string,
                    tf.int64, 0, exported=True, name=f"{feature.name}_vocabulary")

    @property
    def output_dim(self) -> int:
        return sum(f.embedding_dim if f.kind == "categorical" else 1 for f in self.spec.features)

    def indices(self, feature: Feature, values: tf.Tensor) -> tf.Tensor:
        """Embedding row of each raw categorical value, int64 [batch]."""
        if values.dtype == tf.string:
            strings = values
        elif values.dtype.is_floating and feature.decimal_text == "g9":
            # Exact text ("4.5"; %f's "4.500000" bucketed every value below 5e-7 with 0), -0
            # (and a subnormal, which compares equal to 0 on a flushing CPU) as 0: what
            # `features.value_text` makes of a vocabulary entry.
            values = tf.where(tf.equal(values, 0), tf.zeros_like(values), values)
            strings = tf.strings.as_string(values, precision=9, shortest=True)
        else:
            strings = tf.strings.as_string(values)
        if feature.vocabulary:
            return self.vocabularies[feature.name].lookup(strings)
        return tf.strings.to_hash_bucket_fast(strings, feature.hash_buckets)

    @staticmethod
    def numeric(feature: Feature, values: tf.Tensor) -> tf.Tensor:
        """The transformed numeric value, float32 [batch]."""
        if feature.transform == "standardize":
            # In float64: a column far from 0 (1.7e9) keeps its spread through the subtraction.
            x = (tf.cast(values, tf.float64) - feature.mean) / feature.std
            return tf.cast(x, tf.float32)
        x = tf.cast(values, tf.float32)
        if feature.transform == "log1p_standardize":
            x = (tf.math.log1p(tf.maximum(x, 0.0)) - feature.mean) / feature.std
        return x

    def touched_rows_squared_norm(self, inputs: Mapping[str, tf.Tensor]) -> tf.Tensor:
        """Sum over the categorical features of the squared norms of the distinct embedding
        rows `inputs` look up (a scalar; its gradient reaches those rows only)."""
        total = tf.constant(0.0)
        for feature in self.spec.features:
            if feature.kind == "categorical":
                rows, _ = tf.unique(self.indices(feature, inputs[feature.name]))
                vectors = tf.gather(self.embeddings[feature.name].embeddings, rows)
                total += tf.reduce_sum(tf.square(vectors))
        return total

    def call(self, inputs: Mapping[str, tf.Tensor],
             post_click_mask: tf.Tensor | None = None) -> tf.Tensor:
        mask = post_click_mask
        embedded, numeric = [], []
        for feature in self.spec.features:
            values = inputs[feature.name]
            masked = mask is not None and feature.post_click
            if feature.kind == "categorical":
                index = self.indices(feature, values)
                if masked:
                    index = tf.where(mask, tf.constant(feature.mask_index, tf.int64), index)
                embedded.append(self.embeddings[feature.name](index))
            else:
                x = self.numeric(feature, values)
                if masked:
                    x = tf.where(mask, tf.zeros_like(x), x)
                numeric.append(x[:, None])
        return tf.concat(embedded + numeric, axis=1)


def stateless_seed(base_seed: int, draw: tf.Tensor) -> tf.Tensor:
    """The seed, int64 [2], of a stateless random draw: (`base_seed` * 1024 + this replica's
    id, `draw`, a count kept in a checkpointed variable). Replicas of a distribution strategy
    share the count: the replica id keeps their draws apart (one replica: id 0)."""
    replica = tf.distribute.get_replica_context()
    replica_id = tf.cast(replica.replica_id_in_sync_group if replica is not None else 0,
                         tf.int64)
    return tf.stack([tf.constant(base_seed, tf.int64) * 1024 + replica_id, draw])


class StatelessDropout(tf.keras.layers.Layer):
    """Dropout of `rate` whose masks are drawn statelessly from (a base seed, the replica, a
    count of training calls kept as the layer's variable, so in checkpoints): a resumed run
    draws the masks the uninterrupted run would have. Keras' Dropout draws from a generator
    whose state no checkpoint keeps, so a run resumed with --dropout parted from the
    uninterrupted one at its first step. The base seed comes from Python's `random`, which
    `tf.keras.utils.set_random_seed` (training: --seed) seeds, in the order layers are made.

    [...] -> the same shape; the input as it is unless `training`."""

    def __init__(self, rate: float, **kwargs):
        import random

        super().__init__(**kwargs)
        self.rate = rate
        self.base_seed = random.getrandbits(31)

    def build(self, input_shape):
        self.draws = self.add_weight(
            name="draws", shape=(), dtype=tf.int64, trainable=False, initializer="zeros",
            aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)
        super().build(input_shape)

    def call(self, x: tf.Tensor, training=None) -> tf.Tensor:
        if not self.rate or training is None or training is False:
            return x

        def dropped():
            seed = stateless_seed(self.base_seed, self.draws.assign_add(1))
            return tf.nn.experimental.stateless_dropout(x, self.rate, seed=seed)

        if training is True:
            return dropped()
        return tf.cond(tf.cast(training, tf.bool), dropped, lambda: tf.identity(x))


class MLP(StaticLayer):
    """Dense ReLU layers of `units`; with `output_units`, a final linear layer of that width.
    With `batch_norm`, each hidden layer is Dense -> BatchNormalization -> ReLU; `dropout`
    follows each hidden layer.

    [batch, d] -> [batch, units[-1]] (or [batch, output_units])."""

    def __init__(self, units: Sequence[int], output_units: int | None = None,
                 dropout: float = 0.0, batch_norm: bool = False, **kwargs):
        super().__init__(**kwargs)
        # Initial weights follow tf.keras.utils.set_random_seed (training sets it from --seed).
        self.hidden = [tf.keras.layers.Dense(u, activation=None if batch_norm else "relu",
                                             name=f"dense_{i}")
                       for i, u in enumerate(units)]
        self.norms = [tf.keras.layers.BatchNormalization(name=f"batch_norm_{i}")
                      for i in range(len(units))] if batch_norm else []
        self.dropout = [StatelessDropout(dropout, name=f"dropout_{i}")
                        for i in range(len(units))] if dropout else []
        self.output_layer = None if output_units is None else tf.keras.layers.Dense(
            output_units, name="logits")

    def call(self, x: tf.Tensor, training: bool | None = None) -> tf.Tensor:
        for i, layer in enumerate(self.hidden):
            x = layer(x)
            if self.norms:
                x = tf.nn.relu(self.norms[i](x, training=training))
            if self.dropout:
                x = self.dropout[i](x, training=training)
        return x if self.output_layer is None else self.output_layer(x)
