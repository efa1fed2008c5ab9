"""ORCA (SPEC §4): the negative CTR dependency extractor (NDE) and its debiased dwell logits.

On a multi-task backbone (MMoE, PLE or the shared bottom) with a CTR tower (p_ctr) and a raw
dwell tower (logits z_raw over the dwell bins), ORCA adds:

- SCD, the cross-task attention: multi-head self-attention (2 heads, 1 layer, residual) over
  the two tokens [stopgrad(h_ctr), stopgrad(h_dt)], flattened to [batch, 2 d];
- the NDE tower, an MLP on concat(SCD output, stopgrad(h_s)) giving logits z_nde [batch, bins];
- debiased logits z = stopgrad(z_raw) - z_nde; the model serves softmax(z).

Every input of the NDE path is stopped, so no gradient of its loss reaches the backbone, the
embeddings or the raw towers; the CTR and raw-DT losses never see the NDE variables.

Counterfactual masking (training only): each example is masked with probability `mask_prob`;
a masked example's post-click features take their reserved mask value (categorical) or 0
(numeric), and the NDE path sees the backbone's representations of the masked input (a second,
stop-gradient forward of the encoder and backbone). At evaluation and serving the NDE reads the
ordinary forward's representations: one forward pass, no mask input.

The mask is drawn with a stateless generator keyed by (seed, a counter of training calls kept in
the checkpoint), so a resumed run draws the masks an uninterrupted one would have.

The loss (the `nde` task, `ranking.tasks`) weighs each clicked example by ORCA's instance weight,
see `ranking.losses.orca_instance_weights`.
"""

from __future__ import annotations

from typing import Mapping

import tensorflow as tf

from ranking.layers import MLP


class CrossTaskAttention(tf.keras.layers.Layer):
    """SCD: tokens [h_ctr, h_dt] ([batch, d] each) -> [batch, 2 d]: one residual layer of
    multi-head self-attention over the two tokens, flattened."""

    def __init__(self, heads: int = 2, **kwargs):
        super().__init__(**kwargs)
        self.heads = heads
        self.attention = None

    def build(self, input_shape):
        width = int(input_shape[0][-1])
        self.attention = tf.keras.layers.MultiHeadAttention(
            num_heads=self.heads, key_dim=max(1, width // self.heads), name="attention")
        super().build(input_shape)

    def call(self, tokens):
        h_ctr, h_dt = tokens
        stacked = tf.stack([h_ctr, h_dt], axis=1)  # [batch, 2, d]
        mixed = stacked + self.attention(stacked, stacked)
        return tf.reshape(mixed, [-1, 2 * stacked.shape[-1]])


class OrcaHead(tf.keras.layers.Layer):
    """(features, representations, z_raw) -> {dwell logits z, nde_logits}.

    `masked_forward(features, post_click_mask, training)` reruns the model's encoder and
    backbone on masked features; it is held as a plain function (the layers it calls belong to
    the network already)."""

    def __init__(self, num_bins: int, tower_units, ctr_task: str, dwell_task: str,
                 mask_prob: float, seed: int, masked_forward=None, heads: int = 2,
                 dropout: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        if not 0.0 <= mask_prob <= 1.0:
            raise ValueError(f"mask_prob must be in [0, 1], not {mask_prob}")
        self.ctr_task, self.dwell_task = ctr_task, dwell_task
        self.mask_prob = float(mask_prob)
        self.seed = int(seed)
        self._masked_forward = masked_forward
        self.scd = CrossTaskAttention(heads, name="scd")
        self.nde_tower = MLP(tower_units, output_units=num_bins, dropout=dropout,
                             name="nde_tower")
        # Training calls so far: with the seed, it keys the stateless mask draws.
        self.mask_draws = self.add_weight(
            name="mask_draws", shape=(), dtype=tf.int64, trainable=False,
            initializer="zeros", aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

    def post_click_mask(self, rows: tf.Tensor) -> tf.Tensor:
        """bool [rows]: which examples the NDE path sees masked; advances the draw counter."""
        draw = self.mask_draws.assign_add(1)
        # Replicas of a distribution strategy share the counter: the replica id keeps their
        # draws apart (one replica: id 0).
        replica = tf.distribute.get_replica_context()
        replica_id = tf.cast(replica.replica_id_in_sync_group if replica is not None else 0,
                             tf.int64)
        noise = tf.random.stateless_uniform(tf.reshape(rows, [1]), seed=tf.stack(
            [tf.constant(self.seed, tf.int64) * 1024 + replica_id, draw]))
        return noise < self.mask_prob

    def call(self, features: Mapping[str, tf.Tensor], representations: Mapping[str, tf.Tensor],
             raw_logits: tf.Tensor, training=None):
        if training and self.mask_prob > 0 and self._masked_forward is not None:
            rows = tf.shape(raw_logits)[0]
            representations = self._masked_forward(features, self.post_click_mask(rows),
                                                   training)
        h_ctr, h_dt, h_s = (tf.stop_gradient(representations[k])
                            for k in (self.ctr_task, self.dwell_task, "shared"))
        nde_logits = self.nde_tower(tf.concat([self.scd([h_ctr, h_dt]), h_s], axis=1),
                                    training=training)
        return {"dwell_logits": tf.stop_gradient(raw_logits) - nde_logits,
                "nde_logits": nde_logits}
