"""MetaBalance: balanced gradients against a hand computation; exact resume of an ORCA model
with MetaBalance (its moving averages and ORCA's mask counter live in the checkpoint)."""

import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from core.stats_artifact import DwellTargets
from ranking import models, training
from ranking.metabalance import MetaBalance, MetaBalanceConfig

from model_fixtures import tiny_batch, tiny_spec
from test_orca import BIN_NDT, MEDIANS, labels_for


def flat(gradients, like):
    """Dense NumPy gradients; None (a variable the loss does not reach) as zeros."""
    return [np.zeros(v.shape) if g is None else tf.convert_to_tensor(g).numpy()
            for g, v in zip(gradients, like)]


def test_auxiliary_gradients_take_ratio_times_the_main_norm():
    tf.keras.utils.set_random_seed(0)
    spec = tiny_spec()
    model = models.RankingModel(spec, models.ModelConfig("mmoe"),
                                DwellTargets(bin_values=MEDIANS, bin_ndt=BIN_NDT))
    features, labels = tiny_batch(spec, 32), labels_for(32)
    candidates = model.shared_variables()
    others = [v for v in model.trainable_variables if all(v is not s for s in candidates)]
    balance = MetaBalance("ctr", ("dwell_bins",), ratio=0.5, beta=0.9)
    norms = []
    for step in range(2):
        with tf.GradientTape(persistent=True) as tape:
            task_losses = model.task_losses((features, labels), training=True)
        got_shared, got_others = balance.gradients(tape, task_losses, candidates, others)
        raw_main = tape.gradient(task_losses["ctr"], candidates)
        raw_aux = tape.gradient(task_losses["dwell_bins"], candidates)
        # Shared: reached by both tasks (embeddings, experts); each task's own gate is not.
        shared = np.array([a is not None and b is not None for a, b in zip(raw_main, raw_aux)])
        gates = {v.name: s for v, s in zip(candidates, shared) if "gate" in v.name}
        assert gates and not any(gates.values()), gates
        assert shared.sum() > 0
        main, aux = flat(raw_main, candidates), flat(raw_aux, candidates)
        norms.append((np.sqrt(sum(np.sum(g ** 2) for g, s in zip(main, shared) if s)),
                      np.sqrt(sum(np.sum(g ** 2) for g, s in zip(aux, shared) if s))))
        if step == 0:
            m_main, m_aux = norms[0]
        else:  # moving averages from the second step on
            m_main = 0.9 * norms[0][0] + 0.1 * norms[1][0]
            m_aux = 0.9 * norms[0][1] + 0.1 * norms[1][1]
        factor = 0.5 * m_main / m_aux
        for g, a, b, s in zip(flat(got_shared, candidates), main, aux, shared):
            np.testing.assert_allclose(g, a + (factor if s else 1.0) * b, rtol=1e-4, atol=1e-7)
        # Task-specific variables (the towers) keep their plain gradients: each task's own.
        assert all(g is not None for g in got_others)
        for g, variable in zip(got_others, others):
            task = "ctr" if variable.name.startswith("ctr_tower") else "dwell_bins"
            expected = tape.gradient(task_losses[task], variable)
            np.testing.assert_allclose(tf.convert_to_tensor(g).numpy(),
                                       tf.convert_to_tensor(expected).numpy(), rtol=1e-6)
        assert float(balance.norms["ctr"]) == pytest.approx(m_main, rel=1e-5)
        # A different batch for the second step.
        features, labels = tiny_batch(spec, 32, seed=1), labels_for(32, seed=1)


def test_orca_with_metabalance_resumes_exactly(small_world, tmp_path):
    def config(epochs):
        return training.TrainConfig(
            train=small_world["train"], eval=small_world["eval"], stats=small_world["stats"],
            model=models.ModelConfig("mmoe_orca"), batch_size=256, epochs=epochs,
            steps_per_epoch=6, seed=2, post_click_features=("category", "item_length"),
            metabalance=MetaBalanceConfig(True, ratio=0.8), deterministic=True, progress="none")

    whole = training.train_and_evaluate(config(2), str(tmp_path / "whole"))
    training.train_and_evaluate(config(1), str(tmp_path / "resumed"))
    resumed = training.train_and_evaluate(config(2), str(tmp_path / "resumed"))
    assert resumed["global_step"] == whole["global_step"] == 12
    for key in ("auc_ctr", "dt_mae_class", "dt_weighted_f1", "logloss_ctr"):
        assert resumed[key] == pytest.approx(whole[key], rel=1e-6, abs=1e-9), key
    # Without restoring the averages and the mask counter the runs would part.
    assert resumed["raw_dwell"]["dt_mae_class"] == pytest.approx(whole["raw_dwell"]["dt_mae_class"])


@pytest.mark.parametrize("preset", ["single_ctr", "mmoe_orca"])
def test_a_run_with_dropout_resumes_exactly(small_world, tmp_path, preset):
    """Keras' Dropout drew its masks from a generator no checkpoint keeps: resumed, a run with
    --dropout parted from the uninterrupted one at its first step. Its masks now come from a
    checkpointed count of draws (the towers', experts', and the authors' ORCA attention's)."""
    from ranking.orca import OrcaConfig
    from ranking.regularization import RegularizationConfig

    model = models.ModelConfig(preset, regularization=RegularizationConfig(dropout=0.3))
    if preset == "mmoe_orca":
        model = dataclasses.replace(model, orca=OrcaConfig(nde_head="authors"))

    def config(epochs):
        return training.TrainConfig(
            train=small_world["train"], eval=small_world["eval"], stats=small_world["stats"],
            model=model, batch_size=256, epochs=epochs, steps_per_epoch=4, seed=5,
            post_click_features=("category", "item_length") if preset == "mmoe_orca" else (),
            deterministic=True, progress="none")

    whole = training.train_and_evaluate(config(2), str(tmp_path / "whole"))
    training.train_and_evaluate(config(1), str(tmp_path / "resumed"))
    resumed = training.train_and_evaluate(config(2), str(tmp_path / "resumed"))
    assert resumed["global_step"] == whole["global_step"] == 8
    for key in ("auc_ctr", "logloss_ctr"):
        assert resumed[key] == pytest.approx(whole[key], rel=1e-6, abs=1e-9), key
    # Dropout acts: the same run without it ends elsewhere.
    plain = training.train_and_evaluate(dataclasses.replace(
        config(2), model=dataclasses.replace(model, regularization=RegularizationConfig())),
        str(tmp_path / "plain"))
    assert plain["logloss_ctr"] != pytest.approx(whole["logloss_ctr"], rel=1e-6)
