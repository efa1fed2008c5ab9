"""The losses of SPEC §4, as Keras-style callables `loss(y_true, y_pred, sample_weight)`.

Normalization is fixed and explicit, the same with or without `tf.distribute`:

- `WeightedBinaryCrossentropy`: sum_i w_i * BCE_i / N over the global batch of N impressions
  (the paper's Eq. 3 is a mean over impressions with per-impression weights);
- `ClickedMeanSquaredError`: sum_i c_i * (y_i - p_i)^2 / N with c_i = click: squared errors
  of clicked impressions, unclicked ones contributing 0, averaged over the batch like every
  other loss here (Keras' SUM_OVER_BATCH_SIZE with sample_weight = click). Dividing by the
  number of clicks instead weighs each click's dwell error ~1/CTR times more than its click
  error, which swamped the shared bottom on the simulator (README, "Models: decisions").

Under a distribution strategy every replica divides its own sum by the global denominator
(all-reduced), so the summed gradients equal those of one big batch.
"""

from __future__ import annotations

import tensorflow as tf

NEGATIVE_WEIGHTINGS = ("unit", "ndt")


def global_sum(value: tf.Tensor) -> tf.Tensor:
    """Sum of `value` over the replicas of the current strategy (itself without one)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return value
    return context.all_reduce(tf.distribute.ReduceOp.SUM, value)


def binary_cross_entropy(labels: tf.Tensor, logits: tf.Tensor) -> tf.Tensor:
    """Per-impression BCE in nats of binary `labels` [batch] given `logits` [batch]."""
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.cast(labels, tf.float32),
                                                   logits=tf.cast(logits, tf.float32))


def click_reweighting_weights(valid_read: tf.Tensor, ndt: tf.Tensor, negative_weight: float = 1.0,
                              negative_weighting: str = "unit") -> tf.Tensor:
    """Weights of the weighted valid-read tower, float32 [batch].

    A valid read weighs its NDT. A negative (an invalid click or an unclicked impression) weighs
    `negative_weight` ("unit") or `negative_weight` x its NDT ("ndt": the paper's Eq. 3 taken
    literally; NDT is 0 without a click, so unclicked impressions then weigh 0).
    """
    if negative_weighting not in NEGATIVE_WEIGHTINGS:
        raise ValueError(f"negative_weighting must be one of {NEGATIVE_WEIGHTINGS}, "
                         f"not {negative_weighting!r}")
    ndt = tf.cast(ndt, tf.float32)
    negative = (negative_weight * ndt if negative_weighting == "ndt"
                else tf.fill(tf.shape(ndt), tf.constant(negative_weight, tf.float32)))
    return tf.where(tf.equal(tf.cast(valid_read, tf.int64), 1), ndt, negative)


class WeightedBinaryCrossentropy:
    """sum_i w_i * BCE(y_i, sigmoid(z_i)) / N; `y_pred` are logits; weights default to 1."""

    def __call__(self, y_true, y_pred, sample_weight=None):
        losses = binary_cross_entropy(y_true, y_pred)
        if sample_weight is not None:
            losses = losses * tf.cast(sample_weight, tf.float32)
        count = global_sum(tf.cast(tf.size(losses), tf.float32))
        return tf.math.divide_no_nan(tf.reduce_sum(losses), count)


class ClickedMeanSquaredError:
    """sum_i m_i * (y_i - p_i)^2 / N, m_i = `sample_weight` (1 for clicked impressions)."""

    def __call__(self, y_true, y_pred, sample_weight=None):
        squared = tf.math.squared_difference(tf.cast(y_true, tf.float32),
                                             tf.cast(y_pred, tf.float32))
        mask = (tf.ones_like(squared) if sample_weight is None
                else tf.cast(sample_weight, tf.float32))
        count = global_sum(tf.cast(tf.size(squared), tf.float32))
        return tf.math.divide_no_nan(tf.reduce_sum(squared * mask), count)


DT_DENOMINATORS = ("batch", "clicks")


def clicked_sparse_cross_entropy(dwell_bin: tf.Tensor, logits: tf.Tensor,
                                 weights: tf.Tensor | None = None,
                                 denominator: str = "batch") -> tf.Tensor:
    """Softmax cross-entropy (nats) of `logits` [batch, bins] against `dwell_bin` [batch] over
    clicked rows (dwell_bin >= 0), summed and divided by the global batch size N
    (`denominator` "batch", like every loss here) or by the global batch's clicked rows
    ("clicks": the mean over clicks, ~1/CTR times heavier against the click loss).

    Unclicked rows (dwell_bin = -1) never reach the gather: their label is replaced by 0 and
    their loss multiplied by 0, so they give exactly zero gradient. `weights` [batch] scale
    each row's loss (ORCA's instance weights)."""
    dwell_bin = tf.cast(dwell_bin, tf.int64)
    clicked = dwell_bin >= 0
    per_row = tf.nn.sparse_softmax_cross_entropy_with_logits(
        labels=tf.where(clicked, dwell_bin, tf.zeros_like(dwell_bin)),
        logits=tf.cast(logits, tf.float32))
    mask = tf.cast(clicked, tf.float32)
    if weights is not None:
        mask = mask * tf.cast(weights, tf.float32)
    if denominator not in DT_DENOMINATORS:
        raise ValueError(f"denominator must be one of {DT_DENOMINATORS}, not {denominator!r}")
    count = global_sum(tf.reduce_sum(tf.cast(clicked, tf.float32)) if denominator == "clicks"
                        else tf.cast(tf.size(dwell_bin), tf.float32))
    return tf.math.divide_no_nan(tf.reduce_sum(tf.where(clicked, per_row * mask, 0.0)), count)


def entire_space_cross_entropy(click: tf.Tensor, dwell_bin: tf.Tensor, ctr_logit: tf.Tensor,
                               dwell_logits: tf.Tensor) -> tf.Tensor:
    """ESMM's entire-space loss for the dwell-bin target, summed over the batch / N.

    ESMM (Ma et al., 2018) fits pCTCVR = pCTR * pCVR by a binary cross-entropy over every
    impression, whose negatives are the unclicked impressions together with the clicks without
    a conversion, and never fits pCVR on clicks alone. A dwell target's conversions are its
    thresholds: for each interior bin edge k = 1 .. B-1, the event "clicked and dwell_bin >= k"
    with p_k = p_ctr * P(bin >= k | click) = sigmoid(ctr_logit) * sum_{j >= k}
    softmax(dwell_logits)_j. A row's loss is the mean of the B - 1 events' binary
    cross-entropies, so an unclicked impression lowers p_ctr * P(bin >= k | click) and reaches
    the dwell head. (The full likelihood of the (B + 1)-way outcome, no click or a click in bin
    k, factorises into the click's cross-entropy and the clicked rows' bin cross-entropy: the
    dwell head would learn from clicks alone, the sample selection ESMM exists to avoid; this
    loss was that one before 2026-12-08.)

    click [batch], dwell_bin [batch] (-1 when unclicked), ctr_logit [batch], dwell_logits
    [batch, B]."""
    clicked = tf.equal(tf.cast(click, tf.int64), 1)
    logits = tf.cast(dwell_logits, tf.float32)
    ctr_logit = tf.cast(ctr_logit, tf.float32)[:, None]
    # log P(bin >= k | click) and log P(bin < k | click) for k = 1 .. B-1, in log space.
    total = tf.reduce_logsumexp(logits, axis=-1, keepdims=True)
    log_tail = (tf.math.cumulative_logsumexp(logits, axis=-1, reverse=True) - total)[:, 1:]
    log_head = (tf.math.cumulative_logsumexp(logits, axis=-1) - total)[:, :-1]
    log_p = tf.math.log_sigmoid(ctr_logit) + log_tail
    # 1 - p_k = sigmoid(-x) + sigmoid(x) * P(bin < k): exact where p_k rounds to 1 in float32.
    log_not_p = tf.reduce_logsumexp(tf.stack(
        [tf.broadcast_to(tf.math.log_sigmoid(-ctr_logit), tf.shape(log_head)),
         tf.math.log_sigmoid(ctr_logit) + log_head], axis=-1), axis=-1)
    edges = tf.range(1, tf.shape(logits)[-1], dtype=tf.int64)
    event = tf.logical_and(clicked[:, None], tf.cast(dwell_bin, tf.int64)[:, None] >= edges)
    events = tf.cast(tf.shape(log_tail)[-1], tf.float32)
    per_row = -tf.math.divide_no_nan(tf.reduce_sum(tf.where(event, log_p, log_not_p), axis=-1),
                                     events)
    count = global_sum(tf.cast(tf.size(per_row), tf.float32))
    return tf.math.divide_no_nan(tf.reduce_sum(per_row), count)
