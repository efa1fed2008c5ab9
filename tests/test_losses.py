"""Each loss against a NumPy computation on a tiny batch (SPEC §4)."""

import numpy as np
import pytest
import tensorflow as tf

from core.stats_artifact import DwellTargets, representative_medians
from ranking import losses, models, tasks

from model_fixtures import tiny_batch, tiny_spec

LOGITS = np.array([2.0, -1.0, 0.5, -3.0, 0.0, 1.5])
VALID_READ = np.array([1, 0, 1, 0, 0, 0])
CLICK = np.array([1, 1, 1, 0, 0, 1])
NDT = np.array([1.2, 0.3, 0.8, 0.0, 0.0, 0.05])  # the invalid clicks have small NDTs
LOG_DWELL = np.array([4.1, 1.2, 3.3, 0.0, 0.0, 1.0])
PRED_LOG_DWELL = np.array([3.0, 2.0, 3.5, 9.0, -4.0, 0.0])


def np_bce(labels, logits):
    p = 1 / (1 + np.exp(-logits))
    return -(labels * np.log(p) + (1 - labels) * np.log(1 - p))


def test_weighted_bce_is_the_weighted_sum_over_the_batch_size():
    weights = np.array([0.5, 1.0, 2.0, 0.0, 1.0, 3.0])
    got = losses.WeightedBinaryCrossentropy()(VALID_READ, LOGITS, weights)
    assert float(got) == pytest.approx(np.sum(weights * np_bce(VALID_READ, LOGITS)) / 6, rel=1e-6)
    plain = losses.WeightedBinaryCrossentropy()(VALID_READ, LOGITS)
    assert float(plain) == pytest.approx(np.mean(np_bce(VALID_READ, LOGITS)), rel=1e-6)


@pytest.mark.parametrize("weighting,negative_weight", [("unit", 1.0), ("unit", 0.4),
                                                       ("ndt", 1.0), ("ndt", 2.0)])
def test_click_reweighting_weights(weighting, negative_weight):
    got = losses.click_reweighting_weights(VALID_READ, NDT, negative_weight, weighting).numpy()
    expected = []
    for valid, ndt in zip(VALID_READ, NDT):
        if valid:
            expected.append(ndt)
        elif weighting == "unit":
            expected.append(negative_weight)
        else:
            expected.append(negative_weight * ndt)
    np.testing.assert_allclose(got, expected, rtol=1e-6)
    if weighting == "ndt":  # the paper's Eq. 3 literally: unclicked impressions weigh nothing
        assert np.all(got[CLICK == 0] == 0)


def test_clicked_mse_counts_clicked_rows_over_the_batch_size():
    got = losses.ClickedMeanSquaredError()(LOG_DWELL, PRED_LOG_DWELL, CLICK)
    clicked = CLICK == 1
    expected = np.sum((LOG_DWELL[clicked] - PRED_LOG_DWELL[clicked]) ** 2) / 6
    assert float(got) == pytest.approx(expected, rel=1e-6)
    none = losses.ClickedMeanSquaredError()(LOG_DWELL, PRED_LOG_DWELL, np.zeros(6))
    assert float(none) == 0.0


def test_unknown_negative_weighting_is_refused():
    with pytest.raises(ValueError, match="negative_weighting"):
        losses.click_reweighting_weights(VALID_READ, NDT, 1.0, "zero")


DWELL_BIN = np.array([3, 0, 2, -1, -1, 1])
MEDIANS = (2.0, 6.0, 15.0, 40.0, 100.0, 250.0, 600.0, 1500.0)
BIN_NDT = tuple(float(v) for v in np.clip(2.312 / (1 + np.exp(-(np.array(MEDIANS) - 15) / 19.75))
                                          - 0.737, 0, None))


def np_log_softmax(z):
    z = z - z.max(axis=1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=1, keepdims=True))


def np_clicked_ce(bins, logits, denominator="batch"):
    """NumPy: the sum of the clicked rows' cross-entropies over the batch size or the clicks."""
    clicked = bins >= 0
    ce = -np_log_softmax(logits)[clicked, bins[clicked]]
    return ce.sum() / (len(bins) if denominator == "batch" else clicked.sum())


@pytest.mark.parametrize("denominator,count", [("batch", 6), ("clicks", 4)])
def test_dwell_bins_loss_is_cross_entropy_over_clicked_rows_only(denominator, count):
    logits = np.random.default_rng(0).normal(size=(6, 8)) * 2
    got = losses.clicked_sparse_cross_entropy(tf.constant(DWELL_BIN), tf.constant(logits),
                                              denominator=denominator)
    assert float(got) == pytest.approx(np_clicked_ce(DWELL_BIN, logits, denominator), rel=1e-5)
    # Unclicked rows (bin -1) give exactly zero gradient; clicked ones do not.
    variable = tf.Variable(logits, dtype=tf.float32)
    with tf.GradientTape() as tape:
        loss = losses.clicked_sparse_cross_entropy(tf.constant(DWELL_BIN), variable,
                                                   denominator=denominator)
    gradient = tape.gradient(loss, variable).numpy()
    assert np.all(gradient[DWELL_BIN < 0] == 0)
    assert np.all(np.abs(gradient[DWELL_BIN >= 0]).sum(axis=1) > 0)
    # The softmax cross-entropy's gradient: (p - onehot) / count.
    p = np.exp(np_log_softmax(logits))
    onehot = np.eye(8)[np.maximum(DWELL_BIN, 0)]
    np.testing.assert_allclose(gradient[DWELL_BIN >= 0], ((p - onehot) / count)[DWELL_BIN >= 0],
                               rtol=1e-4, atol=1e-6)
    # Instance weights scale each clicked row's term; a batch without clicks costs 0.
    weights = np.array([2.0, 0.5, 1.0, 9.0, 9.0, 0.0])
    weighted = losses.clicked_sparse_cross_entropy(tf.constant(DWELL_BIN), tf.constant(logits),
                                                   tf.constant(weights), denominator)
    ce = -np_log_softmax(logits)[np.arange(6), np.maximum(DWELL_BIN, 0)]
    assert float(weighted) == pytest.approx(np.sum((weights * ce)[DWELL_BIN >= 0]) / count,
                                            rel=1e-5)
    none = losses.clicked_sparse_cross_entropy(tf.constant([-1, -1]), tf.constant(logits[:2]),
                                               denominator=denominator)
    assert float(none) == 0.0


def np_entire_space(click, dwell_bin, ctr_logit, logits):
    """ESMM's loss by hand: per row, the mean over interior edges k of the binary
    cross-entropy of "clicked and bin >= k" against p_ctr * P(bin >= k | click); / N."""
    p_ctr = 1 / (1 + np.exp(-ctr_logit))
    probs = np.exp(np_log_softmax(logits))
    bins = logits.shape[1]
    tail = np.stack([probs[:, k:].sum(axis=1) for k in range(1, bins)], axis=1)
    p = p_ctr[:, None] * tail
    event = (click == 1)[:, None] & (dwell_bin[:, None] >= np.arange(1, bins))
    return -np.sum(np.mean(np.where(event, np.log(p), np.log(1 - p)), axis=1)) / len(click)


def test_entire_space_loss_is_esmm_over_the_dwell_thresholds():
    """ESMM's CTCVR loss, one binary event a threshold, against NumPy; an unclicked row reaches
    the dwell head (the entire-space property: the full (B + 1)-way likelihood, this loss before
    2026-12-08, gave it exactly no gradient there); a click logit past float32's sigmoid keeps
    its exact loss and gradient."""
    logits = np.random.default_rng(1).normal(size=(6, 8))
    got = losses.entire_space_cross_entropy(tf.constant(CLICK), tf.constant(DWELL_BIN),
                                            tf.constant(LOGITS), tf.constant(logits))
    assert float(got) == pytest.approx(np_entire_space(CLICK, DWELL_BIN, LOGITS, logits),
                                       rel=1e-5)
    variable = tf.Variable(logits, dtype=tf.float32)
    with tf.GradientTape() as tape:
        loss = losses.entire_space_cross_entropy(tf.constant(CLICK), tf.constant(DWELL_BIN),
                                                 tf.constant(LOGITS, tf.float32), variable)
    gradient = tape.gradient(loss, variable).numpy()
    unclicked = CLICK == 0
    assert np.all(np.abs(gradient[unclicked]).sum(axis=1) > 1e-4), gradient
    # Unclicked, every threshold is a negative: descent moves the head's mass to the lowest bin.
    assert np.all(gradient[unclicked][:, 0] < 0) and np.all(gradient[unclicked][:, -1] > 0)
    # Sure of a long read that was not clicked: 1 - p_k = sigmoid(-40) + sigmoid(40) * P(bin < k)
    # = e^-40 (1 + k e^-20) to float64, so that row's loss is 40 on every edge (and the clicked
    # row's, in bin 7, about 0): 40 / 2 over the batch; d/dx of the unclicked row's is
    # sigmoid(x) (1 - ...) = 1, / 2. (A clamp at p = 1 - 1e-7 gave 16.1 and no gradient.)
    x = tf.Variable([40.0, 40.0])
    with tf.GradientTape() as tape:
        extreme = losses.entire_space_cross_entropy(
            tf.constant([1, 0]), tf.constant([7, -1]), x,
            tf.constant(np.tile([[-30.0] * 7 + [30.0]], (2, 1)), tf.float32))
    assert float(extreme) == pytest.approx(20.0, rel=1e-5)
    assert tape.gradient(extreme, x).numpy() == pytest.approx([0.0, 0.5], abs=1e-5)


def test_dwell_bin_outputs_and_expected_ndt_equal_numpy():
    task = tasks.DwellBinsTask(targets=DwellTargets(bin_values=MEDIANS, bin_ndt=BIN_NDT))
    logits = np.random.default_rng(2).normal(size=(5, 8))
    out = {k: v.numpy() for k, v in task.outputs(tf.constant(logits, tf.float32)).items()}
    p = np.exp(np_log_softmax(logits))
    np.testing.assert_allclose(out["dwell_probs"], p, rtol=1e-5)
    np.testing.assert_allclose(out["expected_dwell_seconds"], p @ np.array(MEDIANS), rtol=1e-5)
    np.testing.assert_allclose(out["expected_ndt"], p @ np.array(BIN_NDT), rtol=1e-5)
    assert task.output_units == 8 and task.serving_output == "expected_ndt"


def test_empty_bins_get_a_finite_representative():
    got = representative_medians([2.0, float("nan"), None, 50.0], [1.0, 4.0, 9.0, 30.0, 80.0])
    assert got == pytest.approx((2.0, 6.0, np.sqrt(9.0 * 30.0), 50.0))


@pytest.mark.parametrize("preset,weighting", [
    ("single_ctr", "unit"), ("ctr_logdt", "unit"), ("vr_logdt", "unit"), ("vr_ndt", "unit"),
    ("vr_ndt", "ndt"), ("shared_bottom_dt", "unit"), ("mmoe", "unit"), ("ple", "unit"),
    ("esmm", "unit"), ("aitm", "unit"), ("deepfm", "unit"), ("dcn_v2", "unit"),
    ("autoint", "unit"), ("autoint:dwell_bins", "unit"), ("mmoe:clicks", "unit")])
def test_model_losses_equal_numpy_on_the_models_own_outputs(preset, weighting):
    """The tasks read the right outputs and labels: L = sum of the towers' losses."""
    tf.keras.utils.set_random_seed(1)
    spec = tiny_spec()
    preset, _, variant = preset.partition(":")
    denominator = "clicks" if variant == "clicks" else "batch"
    config = models.ModelConfig(preset, towers=tasks.TowerConfig(
        negative_weight=0.7, negative_weighting=weighting,
        single_task=variant if variant == "dwell_bins" else "ctr", dt_denominator=denominator))
    model = models.RankingModel(spec, config, DwellTargets(bin_values=MEDIANS, bin_ndt=BIN_NDT))
    features = tiny_batch(spec, 6)
    labels = {"click": tf.constant(CLICK), "valid_read": tf.constant(VALID_READ),
              "ndt": tf.constant(NDT, tf.float32), "log_dwell": tf.constant(LOG_DWELL, tf.float32),
              "dwell_bin": tf.constant(DWELL_BIN),
              "dwell_time": tf.constant(np.expm1(LOG_DWELL))}
    outputs = {k: v.numpy().astype(np.float64) for k, v in model(features).items()}
    got = {k: float(v) for k, v in model.task_losses((features, labels)).items()}
    expected = {}
    for task in config.tower_names:
        if task == "ctr":
            expected[task] = np.mean(np_bce(CLICK, outputs["ctr_logit"]))
        elif task == "valid_read":
            expected[task] = np.mean(np_bce(VALID_READ, outputs["valid_read_logit"]))
        elif task == "weighted_valid_read":
            negative = 0.7 * (NDT if weighting == "ndt" else np.ones(6))
            w = np.where(VALID_READ == 1, NDT, negative)
            expected[task] = np.sum(w * np_bce(VALID_READ, outputs[f"{task}_logit"])) / 6
        elif task == "dwell_bins":
            expected[task] = np_clicked_ce(DWELL_BIN, outputs["dwell_logits"], denominator)
        elif task == "entire_space_dwell":
            expected[task] = np_entire_space(CLICK, DWELL_BIN, outputs["ctr_logit"],
                                             outputs["dwell_logits"])
        else:
            c = CLICK == 1
            expected[task] = np.sum((outputs["log_dwell"][c] - LOG_DWELL[c]) ** 2) / 6
    assert set(got) == set(expected)
    for task in expected:
        assert got[task] == pytest.approx(expected[task], rel=1e-5), task
    total = float(model.compute_loss((features, labels)))
    assert total == pytest.approx(sum(expected.values()), rel=1e-5)
    assert set(tasks.TASKS[t].label for t in got) <= set(labels)
