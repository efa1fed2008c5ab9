"""ranking.metrics against scikit-learn and hand-computed values."""

import math

import numpy as np
import pandas as pd
import pytest
from sklearn import metrics as sk

from ranking import metrics


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_auc_equals_sklearn_with_and_without_ties(rng):
    labels = rng.random(5000) < 0.2
    scores = rng.random(5000) + 0.3 * labels
    assert metrics.auc(labels, scores) == pytest.approx(sk.roc_auc_score(labels, scores), abs=1e-12)
    tied = np.round(scores, 1)  # many ties
    assert metrics.auc(labels, tied) == pytest.approx(sk.roc_auc_score(labels, tied), abs=1e-12)
    assert metrics.auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert np.isnan(metrics.auc([1, 1], [0.2, 0.3]))


def test_the_auc_of_a_diverged_model_is_undefined_not_a_number_between_0_and_1():
    # NaN scores (outputs past float range): scikit-learn refuses them; sorting would rank the
    # NaNs as one tie above every number (here an AUC of 1.0, and 0.5 with every score NaN).
    labels, scores = [0, 0, 1, 1], [0.1, 0.4, np.nan, np.nan]
    with pytest.raises(ValueError):
        sk.roc_auc_score(labels, scores)
    assert np.isnan(metrics.auc(labels, scores))
    assert np.isnan(metrics.auc(labels, [np.nan] * 4))


def test_logloss_equals_sklearn(rng):
    labels = (rng.random(3000) < 0.3).astype(int)
    probs = np.clip(rng.beta(2, 5, 3000), 1e-6, 1 - 1e-6)
    assert metrics.logloss(labels, probs) == pytest.approx(sk.log_loss(labels, probs), rel=1e-12)
    assert metrics.logloss([1, 0], [0.5, 0.5]) == pytest.approx(np.log(2))


def test_logloss_clips_a_float32_output_as_sklearn_does(rng):
    # A model's float32 sigmoid saturates at exactly 0 or 1 (and below 2^-23 from either end):
    # scikit-learn clips at the input's own epsilon, so the float64 epsilon would more than
    # double the loss of each confidently wrong row.
    labels = np.array([0, 1, 1, 0, 1, 0])
    probs = np.array([1.0, 0.0, 1e-20, 0.99999994, 0.3, 0.2], np.float32)
    assert metrics.logloss(labels, probs) == pytest.approx(sk.log_loss(labels, probs), rel=1e-6)
    by_hand = (3 * -np.log(2.0 ** -23) - np.log(2.0 ** -23) - np.log(0.3) - np.log(0.8)) / 6
    assert metrics.logloss(labels, probs) == pytest.approx(by_hand, rel=1e-6)
    labels = (rng.random(5000) < 0.2).astype(int)
    probs = (1 / (1 + np.exp(-rng.normal(0, 12, 5000)))).astype(np.float32)
    assert metrics.logloss(labels, probs) == pytest.approx(sk.log_loss(labels, probs), rel=1e-5)
    # float64 input keeps the float64 epsilon, as scikit-learn's does; a long double is read
    # as float64 there.
    assert metrics.logloss([0], np.array([1.0])) == pytest.approx(-np.log(2.0 ** -52))
    assert metrics.logloss([0, 1], np.array([1.0, 0.5], np.longdouble)) == pytest.approx(
        sk.log_loss([0, 1], np.array([1.0, 0.5], np.longdouble)), rel=1e-12)


def test_rel_impr_by_hand():
    assert metrics.rel_impr(0.75, 0.7) == pytest.approx(25.0)
    assert metrics.rel_impr(0.7, 0.7) == pytest.approx(0.0)
    # A baseline no better than random has no lift to divide by: undefined, not a sign flip.
    assert math.isnan(metrics.rel_impr(0.6277, 0.4941))
    assert math.isnan(metrics.rel_impr(0.6, 0.5))


def test_dwell_metrics_equal_sklearn(rng):
    n, bins = 4000, 8
    true_bin = rng.integers(0, bins, n)
    logits = rng.normal(size=(n, bins))
    logits[np.arange(n), true_bin] += 1.0
    logits[:, 6] -= 5  # bin 6 is never predicted: zero-division precision counts 0
    medians = np.exp(np.linspace(1, 7, bins))
    seconds = medians[true_bin] * np.exp(rng.normal(0, 0.3, n))
    p_ctr = rng.beta(2, 8, n)
    got = metrics.dwell_metrics(true_bin, logits, seconds, medians, p_ctr)
    pred = logits.argmax(axis=1)
    assert 6 not in pred
    assert got["dt_mae_class"] == pytest.approx(sk.mean_absolute_error(true_bin, pred))
    assert got["dt_rmse_class"] == pytest.approx(np.sqrt(sk.mean_squared_error(true_bin, pred)))
    assert got["dt_weighted_f1"] == pytest.approx(sk.f1_score(true_bin, pred, average="weighted",
                                                              zero_division=0))
    assert got["dt_macro_precision"] == pytest.approx(
        sk.precision_score(true_bin, pred, average="macro", zero_division=0))
    assert got["dt_macro_recall"] == pytest.approx(
        sk.recall_score(true_bin, pred, average="macro", zero_division=0))
    assert got["dt_mae_seconds"] == pytest.approx(sk.mean_absolute_error(seconds, medians[pred]))
    assert got["dt_rmse_seconds"] == pytest.approx(
        np.sqrt(sk.mean_squared_error(seconds, medians[pred])))
    np.testing.assert_allclose(got["dt_true_bin_distribution"],
                               np.bincount(true_bin, minlength=bins) / n)
    np.testing.assert_allclose(got["dt_pred_bin_distribution"],
                               np.bincount(pred, minlength=bins) / n)
    # Bias by CTR decile against pandas' qcut on the same predictions.
    frame = pd.DataFrame({"decile": pd.qcut(p_ctr, 10, labels=False), "bins": pred - true_bin,
                          "seconds": medians[pred] - seconds})
    want = frame.groupby("decile").mean()
    assert [d["decile"] for d in got["dt_bias_by_ctr_decile"]] == list(range(10))
    np.testing.assert_allclose([d["bias_bins"] for d in got["dt_bias_by_ctr_decile"]],
                               want["bins"], rtol=1e-12)
    np.testing.assert_allclose([d["bias_seconds"] for d in got["dt_bias_by_ctr_decile"]],
                               want["seconds"], rtol=1e-12)


def test_without_clicked_rows_the_dwell_metrics_are_undefined_and_written_as_null():
    import json
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Mean of empty slice" reaches the user
        got = metrics.dwell_metrics(np.zeros(0, int), np.zeros((0, 4)), np.zeros(0),
                                    [1.0, 2.0, 3.0, 4.0], p_ctr=np.zeros(0))
    assert set(got) == {*metrics.DT_CLASS_METRICS, *metrics.DT_SECONDS_METRICS,
                        "dt_pred_bin_distribution", "dt_true_bin_distribution",
                        "dt_bias_by_ctr_decile"}
    assert all(np.isnan(got[k]) for k in (*metrics.DT_CLASS_METRICS, *metrics.DT_SECONDS_METRICS))
    assert len(got["dt_true_bin_distribution"]) == 4 and got["dt_bias_by_ctr_decile"] == []
    text = json.dumps(metrics.json_ready({"auc": metrics.auc([1, 1], [0.2, 0.3]), **got,
                                          "n": 3, "inf": [float("inf"), 0.5]}), allow_nan=False)
    back = json.loads(text)
    assert back["auc"] is None and back["dt_mae_class"] is None and back["n"] == 3
    assert back["dt_pred_bin_distribution"] == [None] * 4 and back["inf"] == [None, 0.5]
    assert np.isnan(metrics.rel_impr(None, 0.7)) and metrics.rel_impr(0.8, 0.7) == pytest.approx(50)


def test_dwell_metrics_by_hand():
    probs = np.eye(3)[[0, 1, 1, 2]]  # predicted bins 0, 1, 1, 2
    got = metrics.dwell_metrics([0, 1, 2, 2], probs, [1.0, 10.0, 100.0, 90.0], [1.0, 10.0, 100.0])
    assert got["dt_mae_class"] == pytest.approx(0.25)
    assert got["dt_rmse_class"] == pytest.approx(0.5)
    assert got["dt_macro_precision"] == pytest.approx((1 + 0.5 + 1) / 3)
    assert got["dt_macro_recall"] == pytest.approx((1 + 1 + 0.5) / 3)
    assert got["dt_mae_seconds"] == pytest.approx((0 + 0 + 90 + 10) / 4)
