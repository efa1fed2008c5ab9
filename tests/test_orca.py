"""ORCA (SPEC §4): stop-gradients, counterfactual masking, instance weights, the served
distribution, all checked with tf.GradientTape and by hand from the model's own layers."""

import numpy as np
import pytest
import tensorflow as tf

from core.stats_artifact import DwellTargets
from ranking import models, orca
from ranking.tasks import TowerConfig

from model_fixtures import tiny_batch, tiny_spec

MEDIANS = (2.0, 6.0, 15.0, 40.0, 100.0, 250.0, 600.0, 1500.0)
BIN_NDT = (0.0, 0.0, 0.0, 0.8, 1.4, 1.57, 1.575, 1.575)
POST_CLICK = ("category", "item_length")
ROWS = 16


def orca_model(preset="mmoe_orca", dt_denominator="batch", **orca_options):
    """A model of `preset` with ORCA's options `orca_options` (OrcaConfig fields)."""
    tf.keras.utils.set_random_seed(3)
    spec = tiny_spec(post_click=POST_CLICK)
    config = models.ModelConfig(preset, towers=TowerConfig(dt_denominator=dt_denominator),
                                orca=orca.OrcaConfig(**orca_options))
    return spec, models.RankingModel(spec, config,
                                     DwellTargets(bin_values=MEDIANS, bin_ndt=BIN_NDT))


def labels_for(rows, seed=0):
    rng = np.random.default_rng(seed)
    click = (rng.random(rows) < 0.5).astype(np.int64)
    click[:2] = [1, 0]
    dwell_bin = np.where(click == 1, rng.integers(0, 8, rows), -1)
    return {"click": tf.constant(click), "valid_read": tf.constant(click),
            "ndt": tf.constant(np.zeros(rows), tf.float32),
            "log_dwell": tf.constant(np.zeros(rows), tf.float32),
            "dwell_bin": tf.constant(dwell_bin), "dwell_time": tf.constant(np.zeros(rows))}


def layer(model, name):
    return model.network.get_layer(name)


def variables_of(model, *names):
    return [v for n in names for v in layer(model, n).trainable_variables]


@pytest.mark.parametrize("preset", ["mmoe_orca", "ple_orca", "shared_bottom_dt"])
def test_gradients_are_decoupled(preset):
    spec, model = orca_model(preset, enabled=preset == "shared_bottom_dt")
    features, labels = tiny_batch(spec, ROWS), labels_for(ROWS)
    backbone = {"mmoe_orca": "mmoe", "ple_orca": "ple", "shared_bottom_dt": "bottom"}[preset]
    shared = variables_of(model, "features", backbone)
    towers = variables_of(model, "ctr_tower", "dwell_bins_tower")
    nde = variables_of(model, "orca")
    assert shared and towers and nde
    with tf.GradientTape(persistent=True) as tape:
        task_losses = model.task_losses((features, labels), training=True)
    # The NDE loss reaches neither the backbone nor the embeddings nor the raw towers.
    for gradient in tape.gradient(task_losses["nde"], shared + towers):
        assert gradient is None or np.all(tf.convert_to_tensor(gradient).numpy() == 0)
    assert any(g is not None and np.any(g.numpy() != 0)
               for g in tape.gradient(task_losses["nde"], nde))
    # The CTR and raw-DT losses never reach the NDE.
    for task in ("ctr", "dwell_bins"):
        assert all(g is None for g in tape.gradient(task_losses[task], nde))
        assert any(g is not None for g in tape.gradient(task_losses[task], shared))


def hand_debiased_logits(model, encoded):
    """stopgrad(z_raw) - z_nde from the model's own layers, on encoded features."""
    reps = layer(model, "mmoe")(encoded)
    raw = layer(model, "dwell_bins_tower")(reps["dwell_bins"])
    head = layer(model, "orca")
    nde = head.nde_tower(tf.concat([head.scd([reps["ctr"], reps["dwell_bins"]]), reps["shared"]],
                                   axis=1))
    return raw, raw - nde


def test_served_distribution_is_softmax_of_raw_minus_nde_and_needs_no_mask():
    spec, model = orca_model()
    features = tiny_batch(spec, ROWS)
    draws = int(layer(model, "orca").mask_draws.numpy())
    out = {k: v.numpy() for k, v in model(features, training=False).items()}
    raw, debiased = hand_debiased_logits(model, layer(model, "features")(features))
    np.testing.assert_allclose(out["raw_dwell_logits"], raw.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["dwell_logits"], debiased.numpy(), rtol=1e-5, atol=1e-6)
    probs = np.exp(debiased.numpy()) / np.exp(debiased.numpy()).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(out["dwell_probs"], probs, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(out["expected_ndt"], probs @ np.array(BIN_NDT), rtol=1e-5)
    # The served score: the expected dwell per impression, log p_ctr + log E[dwell | click].
    np.testing.assert_allclose(out["score"], np.log(out["ctr"]) + np.log(
        probs @ np.array(MEDIANS)), rtol=1e-5)
    # Evaluation draws no mask: the counter did not move, and a second call is identical.
    assert int(layer(model, "orca").mask_draws.numpy()) == draws
    again = model(features, training=False)["dwell_logits"].numpy()
    np.testing.assert_array_equal(again, out["dwell_logits"])


def test_masking_changes_only_the_post_click_inputs_of_the_nde_path():
    spec, model = orca_model(mask_prob=1.0)
    features = tiny_batch(spec, ROWS)
    encoder = layer(model, "features")
    out = {k: v.numpy() for k, v in model(features, training=True).items()}
    # The raw towers see the real features ...
    raw, _ = hand_debiased_logits(model, encoder(features))
    np.testing.assert_allclose(out["raw_dwell_logits"], raw.numpy(), rtol=1e-5, atol=1e-6)
    # ... the NDE sees every row with its post-click features masked (mask_prob 1).
    masked = encoder(features, post_click_mask=tf.ones([ROWS], tf.bool))
    raw_masked, debiased_masked = hand_debiased_logits(model, masked)
    nde = (raw_masked - debiased_masked).numpy()
    np.testing.assert_allclose(out["nde_logits"], nde, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(out["dwell_logits"], raw.numpy() - nde, rtol=1e-4, atol=1e-5)
    # Masking only touches the post-click features: the masked encoding differs there only.
    plain = encoder(features).numpy()
    changed = np.flatnonzero(np.any(plain != masked.numpy(), axis=0))
    widths = [(f.name, f.embedding_dim if f.kind == "categorical" else 1) for f in spec.features
              if f.kind == "categorical"] + [(f.name, 1) for f in spec.features
                                              if f.kind != "categorical"]
    owner = [name for name, width in widths for _ in range(width)]
    assert {owner[i] for i in changed} == set(POST_CLICK)


def test_mask_draws_follow_the_probability_and_the_checkpointed_counter():
    spec, model = orca_model(mask_prob=0.3)
    head = layer(model, "orca")
    masks = np.stack([head.post_click_mask(tf.constant(2000)).numpy() for _ in range(5)])
    assert abs(masks.mean() - 0.3) < 0.02
    assert not np.array_equal(masks[0], masks[1])
    # The draws are keyed by (seed, counter): resetting the counter repeats them exactly.
    head.mask_draws.assign(0)
    np.testing.assert_array_equal(head.post_click_mask(tf.constant(2000)).numpy(), masks[0])


def test_instance_weights_equal_numpy_and_average_one_over_clicks():
    rng = np.random.default_rng(5)
    dwell_bin = np.array([3, -1, 0, 7, -1, 2, 5, 1])
    ctr_logit = rng.normal(size=8) * 2
    raw = rng.normal(size=(8, 8))
    got = orca.instance_weights(tf.constant(dwell_bin), tf.constant(ctr_logit),
                                       tf.constant(raw)).numpy()
    clicked = dwell_bin >= 0
    l_ctr = -np.log(1 / (1 + np.exp(-ctr_logit)))
    z = raw - raw.max(axis=1, keepdims=True)
    l_dt = -(z - np.log(np.exp(z).sum(axis=1, keepdims=True)))[np.arange(8),
                                                               np.maximum(dwell_bin, 0)]
    w = np.maximum(np.maximum(l_ctr, 1e-6) ** -0.1 * np.maximum(l_dt, 1e-6) ** 0.8 - 0.2, 0)
    w = np.where(clicked, w, 0)
    expected = w * clicked.sum() / w.sum()
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert got[clicked].mean() == pytest.approx(1.0, rel=1e-6)
    assert np.all(got[~clicked] == 0)
    # Accurate CTR (small l_ctr) and poor DT (large l_dt) weigh most.
    order = np.argsort(-got[clicked])
    assert l_dt[clicked][order[0]] >= np.median(l_dt[clicked])
    # All-zero raw weights fall back to 1 on every clicked row.
    zero = orca.instance_weights(tf.constant(dwell_bin), tf.constant(ctr_logit),
                                        tf.constant(raw), a=0.0, b=0.0, c=-5.0).numpy()
    np.testing.assert_array_equal(zero, clicked.astype(np.float32))


def test_instance_weights_per_bin_average_one_in_every_true_bin():
    """--iw_balance=bin against NumPy: the paper's weights rescaled within each true bin, so
    that every bin keeps its share of the NDE loss; a bin of all-zero weights gets 1s."""
    rng = np.random.default_rng(6)
    dwell_bin = np.array([3, -1, 0, 3, -1, 2, 3, 0, 2, 5, 1, -1])
    ctr_logit = rng.normal(size=12) * 2
    raw = rng.normal(size=(12, 8))
    raw[10] = [-9, 9, -9, -9, -9, -9, -9, -9]  # bin 1's only click predicted exactly: weight 0
    got = orca.instance_weights(tf.constant(dwell_bin), tf.constant(ctr_logit),
                                tf.constant(raw), c=-0.9, per_bin=True).numpy()
    paper = orca.instance_weights(tf.constant(dwell_bin), tf.constant(ctr_logit),
                                  tf.constant(raw), c=-0.9).numpy()
    clicked = dwell_bin >= 0
    assert np.all(got[~clicked] == 0)
    for b in np.unique(dwell_bin[clicked]):
        rows = dwell_bin == b
        if b == 1:  # its weights sum to 0: all 1
            assert paper[rows].sum() == 0 and np.all(got[rows] == 1)
            continue
        # Within a bin, the paper's weights rescaled (the same order, mean 1).
        np.testing.assert_allclose(got[rows], paper[rows] * rows.sum() / paper[rows].sum(),
                                   rtol=1e-5)
        assert got[rows].mean() == pytest.approx(1.0, rel=1e-5)
    # The paper's own weights move weight between bins; these do not.
    assert paper[dwell_bin == 3].sum() != pytest.approx(3.0, rel=1e-3)


@pytest.mark.parametrize("denominator,balance", [("batch", "none"), ("clicks", "none"),
                                                  ("batch", "bin")])
def test_nde_loss_is_beta_times_the_weighted_debiased_cross_entropy(denominator, balance):
    spec, model = orca_model(beta=0.5, alpha=2.0, dt_denominator=denominator,
                             iw_balance=balance)
    features, labels = tiny_batch(spec, ROWS), labels_for(ROWS, seed=1)
    outputs = model(features, training=False)
    got = {k: float(v) for k, v in model.task_losses((features, labels)).items()}
    bins = labels["dwell_bin"].numpy()
    clicked = bins >= 0

    def ce(logits):
        z = logits - logits.max(axis=1, keepdims=True)
        return -(z - np.log(np.exp(z).sum(axis=1, keepdims=True)))[np.arange(ROWS),
                                                                   np.maximum(bins, 0)]

    raw_ce = ce(outputs["raw_dwell_logits"].numpy())
    weights = orca.instance_weights(labels["dwell_bin"], outputs["ctr_logit"],
                                    outputs["raw_dwell_logits"],
                                    per_bin=balance == "bin").numpy()
    if balance == "bin":  # the two differ on this batch: the test tells them apart
        assert not np.allclose(weights, orca.instance_weights(
            labels["dwell_bin"], outputs["ctr_logit"], outputs["raw_dwell_logits"]).numpy())
    count = ROWS if denominator == "batch" else clicked.sum()
    assert got["dwell_bins"] == pytest.approx(2.0 * raw_ce[clicked].sum() / count, rel=1e-5)
    expected = 0.5 * np.sum((weights * ce(outputs["dwell_logits"].numpy()))[clicked]) / count
    assert got["nde"] == pytest.approx(expected, rel=1e-5)


def test_orca_needs_a_multi_task_bins_backbone():
    with pytest.raises(ValueError, match="ORCA needs"):
        models.check_config(models.ModelConfig("vr_ndt", orca=orca.OrcaConfig(enabled=True)))
    with pytest.raises(ValueError, match="ORCA needs"):
        models.check_config(models.ModelConfig("esmm", orca=orca.OrcaConfig(enabled=True)))
