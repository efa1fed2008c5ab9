"""evaluation_metrics of dwell-bin models against scikit-learn on the same arrays (SPEC §6)."""

import numpy as np
import pytest
from sklearn import metrics as sk

from core.stats_artifact import DwellTargets
from ranking import evaluation, models
from ranking.tasks import TowerConfig

MEDIANS = (2.0, 6.0, 15.0, 40.0, 100.0, 250.0, 600.0, 1500.0)
EDGES = np.array([1.0, 4.0, 9.0, 25.0, 60.0, 150.0, 400.0, 900.0, 3000.0])
TARGETS = DwellTargets(bin_edges=tuple(EDGES), bin_values=MEDIANS, bin_ndt=MEDIANS)


def synthetic(rows=4000, seed=0):
    rng = np.random.default_rng(seed)
    click = (rng.random(rows) < 0.2).astype(np.int64)
    valid_read = click * (rng.random(rows) < 0.8)
    true_bin = np.where(click == 1, rng.integers(0, 8, rows), -1)
    seconds = np.where(click == 1, np.array(MEDIANS)[np.maximum(true_bin, 0)]
                       * rng.uniform(0.7, 1.3, rows), 0.0)
    logits = rng.normal(size=(rows, 8)) + 2.0 * np.eye(8)[np.maximum(true_bin, 0)]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    ctr = np.clip(0.2 + 0.3 * click + rng.normal(0, 0.2, rows), 0.01, 0.99)
    outputs = {"ctr": ctr, "dwell_probs": probs, "expected_ndt": probs @ np.linspace(0, 1.5, 8)}
    outputs["score"] = outputs["ctr"] + outputs["expected_ndt"]
    labels = {"click": click, "valid_read": valid_read, "dwell_bin": true_bin,
              "dwell_time": seconds}
    return outputs, labels


@pytest.mark.parametrize("preset", ["mmoe", "esmm"])
def test_dwell_metrics_of_a_bin_model_equal_scikit_learn(preset):
    outputs, labels = synthetic()
    result = evaluation.evaluation_metrics(models.ModelConfig(preset), TARGETS, outputs, labels)
    clicked = labels["click"] == 1
    true_bin = labels["dwell_bin"][clicked]
    pred_bin = outputs["dwell_probs"][clicked].argmax(axis=1)
    assert result["auc_ctr"] == pytest.approx(sk.roc_auc_score(labels["click"], outputs["score"]))
    assert result["towers"]["ctr"]["auc_ctr"] == pytest.approx(
        sk.roc_auc_score(labels["click"], outputs["ctr"]))
    assert result["logloss_ctr"] == pytest.approx(sk.log_loss(labels["click"], outputs["ctr"]))
    assert result["dt_mae_class"] == pytest.approx(sk.mean_absolute_error(true_bin, pred_bin))
    assert result["dt_rmse_class"] == pytest.approx(
        np.sqrt(sk.mean_squared_error(true_bin, pred_bin)))
    assert result["dt_weighted_f1"] == pytest.approx(
        sk.f1_score(true_bin, pred_bin, average="weighted"))
    assert result["dt_macro_precision"] == pytest.approx(
        sk.precision_score(true_bin, pred_bin, average="macro", zero_division=0))
    assert result["dt_macro_recall"] == pytest.approx(
        sk.recall_score(true_bin, pred_bin, average="macro", zero_division=0))
    seconds = labels["dwell_time"][clicked]
    assert result["dt_mae_seconds"] == pytest.approx(
        sk.mean_absolute_error(seconds, np.array(MEDIANS)[pred_bin]))
    assert result["dt_rmse_seconds"] == pytest.approx(
        np.sqrt(sk.mean_squared_error(seconds, np.array(MEDIANS)[pred_bin])))
    assert result["dt_pred_bin_distribution"] == pytest.approx(
        list(np.bincount(pred_bin, minlength=8) / clicked.sum()))
    # The bias by CTR decile orders clicked rows by the ctr tower's probability.
    deciles = result["dt_bias_by_ctr_decile"]
    assert len(deciles) == 10
    order = np.argsort(outputs["ctr"][clicked], kind="mergesort")
    lowest = order[: int(np.ceil(clicked.sum() / 10))]
    assert deciles[0]["bias_bins"] == pytest.approx(np.mean(pred_bin[lowest] - true_bin[lowest]),
                                                    abs=0.05)



DWELL_METRICS = ("dt_mae_class", "dt_rmse_class", "dt_weighted_f1", "dt_macro_precision",
                 "dt_macro_recall", "dt_mae_seconds", "dt_rmse_seconds")


def test_a_diverged_dwell_output_leaves_the_dwell_metrics_undefined():
    # The argmax of a NaN row is bin 0 and numpy's searchsorted puts a NaN past the last edge:
    # without the check, a model with NaN outputs scored finite dwell metrics like any other.
    outputs, labels = synthetic(rows=500)
    clicked = np.flatnonzero(labels["click"] == 1)
    finite = evaluation.evaluation_metrics(models.ModelConfig("mmoe"), TARGETS, outputs, labels)
    assert all(np.isfinite(finite[k]) for k in DWELL_METRICS)
    outputs["dwell_probs"] = outputs["dwell_probs"].copy()
    outputs["dwell_probs"][clicked[3]] = np.nan  # one clicked row
    result = evaluation.evaluation_metrics(models.ModelConfig("mmoe"), TARGETS, outputs, labels)
    assert all(np.isnan(result[k]) for k in (*DWELL_METRICS, "dt_cross_entropy"))
    assert result["towers"]["ctr"]["auc_ctr"] == finite["towers"]["ctr"]["auc_ctr"]

    # The log-dwell baselines: a NaN prediction on one clicked row.
    rng = np.random.default_rng(1)
    log_dwell = rng.normal(3.0, 1.0, 500)
    log_dwell[clicked[5]] = np.nan
    logdt = {"ctr": outputs["ctr"], "score": outputs["ctr"], "log_dwell": log_dwell,
             "dwell_seconds": np.expm1(np.clip(log_dwell, 0, None))}
    result = evaluation.evaluation_metrics(models.ModelConfig("ctr_logdt"), TARGETS, logdt,
                                           labels)
    assert all(np.isnan(result[k]) for k in (*DWELL_METRICS, "log_dwell_rmse"))
    logdt["dwell_seconds"][clicked[5]] = 30.0  # the same row, a number again
    logdt["log_dwell"][clicked[5]] = np.log1p(30.0)
    result = evaluation.evaluation_metrics(models.ModelConfig("ctr_logdt"), TARGETS, logdt,
                                           labels)
    assert all(np.isfinite(result[k]) for k in DWELL_METRICS)

def test_a_dwell_only_single_task_model_has_no_ctr_decile_bias():
    outputs, labels = synthetic(rows=500)
    outputs = {k: v for k, v in outputs.items() if k != "ctr"}
    outputs["score"] = outputs["expected_ndt"]
    config = models.ModelConfig("deepfm", towers=TowerConfig(single_task="dwell_bins"))
    result = evaluation.evaluation_metrics(config, TARGETS, outputs, labels)
    assert "dt_weighted_f1" in result and "dt_bias_by_ctr_decile" not in result
    assert result["towers"] == {}


def test_a_predictor_traces_once_for_batches_of_any_size_and_predicts_as_the_network():
    """Predictor.trace (the evaluation's trace before its first batch is read), or its trace on
    the first batch (validation): one trace for batches of any size, the outputs those of the
    network called eagerly."""
    import tensorflow as tf

    from model_fixtures import tiny_batch, tiny_spec

    spec = tiny_spec()
    config = models.ModelConfig("ple")
    network = models.build_network(spec, config, TARGETS)
    rows = (64, 64, 17)  # a short last batch, as an evaluation's
    batches = [(tiny_batch(spec, n, seed=i),
                {"click": tf.zeros([n], tf.int64), "valid_read": tf.zeros([n], tf.int64),
                 "dwell_bin": tf.fill([n], -1), "dwell_time": tf.zeros([n], tf.float64)})
               for i, n in enumerate(rows)]
    ahead = evaluation.Predictor(network, config, TARGETS)
    ahead.trace({name: tf.TensorSpec([None], tensor.dtype)
                 for name, tensor in batches[0][0].items()})
    outputs, labels = ahead(batches)
    assert ahead._step.experimental_get_tracing_count() == 1  # noqa: SLF001
    # Not traced ahead: traced on the first batch, with its batch dimension open, once for all
    # (the short last batch and a second call included).
    plain = evaluation.Predictor(network, config, TARGETS)
    again, _ = plain(batches)
    plain(batches[2:])
    assert plain._step.experimental_get_tracing_count() == 1  # noqa: SLF001
    # The reference: the network called eagerly on each batch.
    names = set(outputs)
    expected = {k: np.concatenate([network(f, training=False)[k].numpy() for f, _ in batches])
                for k in names}
    assert set(again) == names and len(labels["click"]) == sum(rows)
    for key in expected:
        np.testing.assert_allclose(outputs[key], expected[key], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(again[key], expected[key], rtol=1e-5, atol=1e-6)
