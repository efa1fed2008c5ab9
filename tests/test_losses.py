"""Each loss against a NumPy computation on a tiny batch (SPEC §4)."""

import numpy as np
import pytest
import tensorflow as tf

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


@pytest.mark.parametrize("preset,weighting", [("single_ctr", "unit"), ("ctr_logdt", "unit"),
                                              ("vr_logdt", "unit"), ("vr_ndt", "unit"),
                                              ("vr_ndt", "ndt")])
def test_model_losses_equal_numpy_on_the_models_own_outputs(preset, weighting):
    """The tasks read the right outputs and labels: L = sum of the towers' losses."""
    tf.keras.utils.set_random_seed(1)
    spec = tiny_spec()
    model = models.RankingModel(spec, models.ModelConfig(preset, negative_weight=0.7,
                                                         negative_weighting=weighting))
    features = tiny_batch(spec, 6)
    labels = {"click": tf.constant(CLICK), "valid_read": tf.constant(VALID_READ),
              "ndt": tf.constant(NDT, tf.float32), "log_dwell": tf.constant(LOG_DWELL, tf.float32),
              "dwell_bin": tf.constant([3, 0, 2, -1, -1, 1]),
              "dwell_time": tf.constant(np.expm1(LOG_DWELL))}
    outputs = {k: v.numpy().astype(np.float64) for k, v in model(features).items()}
    got = {k: float(v) for k, v in model.task_losses((features, labels)).items()}
    expected = {}
    for task in models.PRESETS[preset].towers:
        if task == "ctr":
            expected[task] = np.mean(np_bce(CLICK, outputs["ctr_logit"]))
        elif task == "valid_read":
            expected[task] = np.mean(np_bce(VALID_READ, outputs["valid_read_logit"]))
        elif task == "weighted_valid_read":
            negative = 0.7 * (NDT if weighting == "ndt" else np.ones(6))
            w = np.where(VALID_READ == 1, NDT, negative)
            expected[task] = np.sum(w * np_bce(VALID_READ, outputs[f"{task}_logit"])) / 6
        else:
            c = CLICK == 1
            expected[task] = np.sum((outputs["log_dwell"][c] - LOG_DWELL[c]) ** 2) / 6
    assert set(got) == set(expected)
    for task in expected:
        assert got[task] == pytest.approx(expected[task], rel=1e-5), task
    total = float(model.compute_loss((features, labels)))
    assert total == pytest.approx(sum(expected.values()), rel=1e-5)
    assert set(tasks.LABEL_OF[t] for t in got) <= set(labels)
