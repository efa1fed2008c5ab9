"""ORCA's served head (--orca_serve): the decision rule, the mean DT gain it decides by (by
hand), the gate inside the network (served outputs equal the raw head's, training unchanged),
a trained model's choice carried through best/, final/, eval_metrics.json and the export,
--orca_serve=validated refused without a validation window and a note without ORCA, and a
checkpoint from before the gate."""

import json
import math
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from core.errors import InputError
from export import exporter
from ranking import applicability, data, metrics, orca, training
from ranking.models import ModelConfig
from ranking.selection import SelectionConfig

from conftest import POST_CLICK
from model_fixtures import tiny_batch
from test_orca import ROWS, labels_for, orca_model


def test_the_mean_dt_gain_by_hand():
    reference = {"dt_mae_class": 1.0, "dt_rmse_class": 2.0, "dt_weighted_f1": 0.25,
                 "dt_macro_precision": 0.5, "dt_macro_recall": 0.2,
                 "dt_mae_seconds": 50.0, "dt_rmse_seconds": 100.0}
    candidate = {"dt_mae_class": 0.9, "dt_rmse_class": 2.2, "dt_weighted_f1": 0.3,
                 "dt_macro_precision": 0.4, "dt_macro_recall": 0.2,
                 "dt_mae_seconds": 60.0, "dt_rmse_seconds": 90.0}
    # MAE 10 % lower (+10), RMSE 10 % higher (-10), F1 +20, precision -20, recall 0.
    assert metrics.dt_gains(candidate, reference) == pytest.approx([10, -10, 20, -20, 0])
    assert metrics.dt_class_gain(candidate, reference) == pytest.approx(0.0, abs=1e-12)
    assert metrics.dt_gains(candidate, reference, ("dt_mae_seconds", "dt_rmse_seconds")) == (
        pytest.approx([-20, 10]))
    better = dict(candidate, dt_macro_precision=0.6)
    assert metrics.dt_class_gain(better, reference) == pytest.approx(8.0)
    # A reference of 0 (no class ever predicted right) gives no finite gain.
    assert not math.isfinite(metrics.dt_class_gain(candidate,
                                                   dict(reference, dt_macro_recall=0.0)))


@pytest.mark.parametrize("gain, head", [(-0.01, "raw"), (-50.0, "raw"), (0.0, "debiased"),
                                        (3.0, "debiased"), (float("nan"), "debiased")])
def test_the_raw_head_only_when_the_debiased_one_is_worse(gain, head):
    assert orca.choose_head(gain) == head


def test_the_gate_serves_the_raw_head_and_leaves_training_as_it_was():
    spec, model = orca_model()
    features, labels = tiny_batch(spec, ROWS), labels_for(ROWS)
    assert orca.serving_head(model.network) == "debiased"
    debiased = {k: v.numpy() for k, v in model(features, training=False).items()}
    draws = model.network.get_layer("orca").mask_draws.numpy()
    with tf.GradientTape() as tape:
        losses = model.task_losses((features, labels), training=True)
    nde_variables = model.network.get_layer("orca").trainable_variables
    gradients = [g.numpy() for g in tape.gradient(losses["nde"], nde_variables)]

    orca.set_served_head(model.network, "raw")
    assert orca.serving_head(model.network) == "raw"
    raw = {k: v.numpy() for k, v in model(features, training=False).items()}
    # Every dwell output is the raw head's; the click tower and the NDE's own logits are not
    # touched.
    np.testing.assert_array_equal(raw["dwell_logits"], raw["raw_dwell_logits"])
    np.testing.assert_allclose(raw["dwell_probs"], raw["raw_dwell_probs"], rtol=1e-6)
    np.testing.assert_array_equal(raw["ctr"], debiased["ctr"])
    np.testing.assert_array_equal(raw["nde_logits"], debiased["nde_logits"])
    np.testing.assert_allclose(raw["score"], np.log(raw["ctr"]) + np.log(
        raw["raw_dwell_probs"] @ np.array(model.targets.bin_values)), rtol=1e-5)
    assert np.max(np.abs(raw["dwell_probs"] - debiased["dwell_probs"])) > 1e-4

    # Back to the debiased head: bit for bit what the model served and trained before.
    orca.set_served_head(model.network, "debiased")
    again = {k: v.numpy() for k, v in model(features, training=False).items()}
    for key in debiased:
        np.testing.assert_array_equal(again[key], debiased[key])
    model.network.get_layer("orca").mask_draws.assign(draws)  # the same row masks again
    with tf.GradientTape() as tape:
        losses = model.task_losses((features, labels), training=True)
    for before, after in zip(gradients, tape.gradient(losses["nde"], nde_variables)):
        np.testing.assert_array_equal(after.numpy(), before)


def orca_config(small_world, refit, serve="validated", preset="mmoe_orca", **selection):
    """An ORCA model with a validation window: 12 steps validated at steps 4, 8 and 12; a
    min_delta no change can beat makes step 4 the best (as in test_selection), so the best
    checkpoint is not the last weights."""
    options = dict(validation_days=1, validate_every=4, patience=2, min_delta=1e9,
                   max_epochs=1, refit=refit)
    return training.TrainConfig(
        train=small_world["train"], eval=small_world["eval"], stats=small_world["stats"],
        model=ModelConfig(preset, orca=orca.OrcaConfig(serve=serve)), batch_size=256,
        seed=5, progress="none", post_click_features=POST_CLICK,
        selection=SelectionConfig(**{**options, **selection}), steps_per_epoch=12)


def exported_dwell(small_world, model_dir, tmp_path):
    """(dwell_probs, raw_dwell_probs) of 256 evaluation rows through the export's
    predict_raw signature."""
    model, _ = exporter.load_trained(model_dir)
    served = exporter.export_saved_model(model_dir, str(tmp_path / "serving"))
    loaded = tf.saved_model.load(served.path).signatures["predict_raw"]
    source = data.open_source(small_world["eval"], model.feature_spec)
    batch = next(iter(source.dataset(256, columns=model.feature_spec.names)))
    out = loaded(**{n: batch[n] for n in model.feature_spec.names})
    return out["dwell_probs"].numpy(), out["raw_dwell_probs"].numpy()


def model_variables(prefix):
    """{checkpoint key: value} of the model's variables in a checkpoint."""
    reader = tf.train.load_checkpoint(prefix)
    return {key: reader.get_tensor(key) for key in reader.get_variable_to_shape_map()
            if key.startswith("model/") and key.endswith("/.ATTRIBUTES/VARIABLE_VALUE")
            and ".OPTIMIZER_SLOT" not in key}


def assert_best_is_step(model_dir, step, gate):
    """best/ holds the rolling checkpoint of `step`'s model variables, but for the gate."""
    best = model_variables(os.path.join(model_dir, "best", "model"))
    rolling = model_variables(os.path.join(model_dir, "checkpoints", f"ckpt-{step}"))
    gates = [k for k in best if "/debias/" in k]
    assert len(gates) == 1 and best.pop(gates[0]) == gate and rolling.pop(gates[0]) == 1.0
    assert best.keys() == rolling.keys()
    for key in best:
        np.testing.assert_array_equal(best[key], rolling[key], err_msg=key)


@pytest.fixture
def heads_in_training(monkeypatch):
    """The head the network serves at each call of the training steps (training and the
    refit pass), recorded."""
    from ranking import loops

    seen, steps = [], loops.synchronous_steps

    def recording(run, *args, **kwargs):
        seen.append(orca.serving_head(run.model.network))
        return steps(run, *args, **kwargs)

    monkeypatch.setattr(loops, "synchronous_steps", recording)
    return seen


@pytest.mark.parametrize("refit", ["none", "validation"])
def test_a_raw_head_decision_is_served_evaluated_and_exported(small_world, tmp_path,
                                                              monkeypatch, heads_in_training,
                                                              refit):
    """The decision forced to "raw" (the rule is tested above): best/ (--refit=none: the best
    step's weights, the gate at 0) or final/ serve the raw head, the refit pass trains with
    the debiased one as training does, eval_metrics.json's dwell metrics are the raw head's,
    and the export's dwell_probs are raw_dwell_probs."""
    decided = []

    def always_raw(gain):
        decided.append(gain)
        return "raw"

    monkeypatch.setattr(orca, "choose_head", always_raw)
    model_dir = str(tmp_path / "model")
    result = training.train_and_evaluate(orca_config(small_world, refit), model_dir)
    history = json.load(open(os.path.join(model_dir, "history.json")))["validations"]
    assert [(e["step"], e["best"]) for e in history] == [(4, True), (8, False), (12, False)]
    # It decided by the best validation's gain, which the history and best.json record.
    assert decided == [pytest.approx(history[0]["orca_debiased_gain"])]
    best_json = json.load(open(os.path.join(model_dir, "best.json")))
    assert best_json["orca_debiased_gain"] == pytest.approx(history[0]["orca_debiased_gain"])
    record = best_json if refit == "none" else result["refit"]
    assert record["orca_served_head"] == "raw" and result["orca_served_head"] == "raw"
    assert heads_in_training and set(heads_in_training) == {"debiased"}
    if refit == "none":
        assert_best_is_step(model_dir, 4, gate=0.0)
    for key in ("dt_cross_entropy", "dt_mae_class", "dt_macro_precision"):
        assert result[key] == result["raw_dwell"][key]
    served, raw = exported_dwell(small_world, model_dir, tmp_path)
    np.testing.assert_allclose(served, raw, rtol=1e-6, atol=1e-7)
    if refit == "none":
        # Started again with a refit pass: best/ reads back with the gate at 0, and the pass
        # still trains with the debiased head.
        heads_in_training.clear()
        again = training.train_and_evaluate(orca_config(small_world, "validation"), model_dir)
        assert heads_in_training[-1] == "debiased"
        assert again["refit"]["orca_served_head"] == again["orca_served_head"] == "raw"


@pytest.fixture(scope="module")
def served_debiased(small_world, tmp_path_factory):
    """(model_dir, eval metrics) of one --orca_serve=debiased run of `orca_config` with
    --refit=none; a test that changes the directory works on a copy."""
    model_dir = str(tmp_path_factory.mktemp("debiased") / "model")
    return model_dir, training.train_and_evaluate(orca_config(small_world, "none", "debiased"),
                                                  model_dir)


@pytest.mark.parametrize("serve", ["debiased", "validated"])
def test_the_paper_head_is_served_when_asked_or_not_worse(small_world, tmp_path, monkeypatch,
                                                          request, serve):
    """--orca_serve=debiased, or validated when the debiased head is not worse (the decision
    forced): the debiased head; best/ keeps the best step's weights and the gate at 1;
    eval_metrics.json says which head it evaluated, and the export's dwell_probs are not the
    raw ones."""
    if serve == "debiased":  # (the head is not chosen: `choose_head` is not asked)
        model_dir, result = request.getfixturevalue("served_debiased")
    else:
        monkeypatch.setattr(orca, "choose_head", lambda gain: "debiased")
        model_dir = str(tmp_path / "model")
        result = training.train_and_evaluate(orca_config(small_world, "none", serve), model_dir)
    assert result["orca_served_head"] == "debiased"
    best_json = json.load(open(os.path.join(model_dir, "best.json")))
    assert best_json.get("orca_served_head") == ("debiased" if serve == "validated" else None)
    assert_best_is_step(model_dir, 4, gate=1.0)
    assert result["dt_cross_entropy"] != result["raw_dwell"]["dt_cross_entropy"]
    served, raw = exported_dwell(small_world, model_dir, tmp_path)
    assert np.max(np.abs(served - raw)) > 1e-4


def test_validated_needs_a_validation_window(small_world, tmp_path):
    config = orca_config(small_world, "none", preset="mmoe_orca", validation_days=0)
    with pytest.raises(InputError, match="give --validation or --validation_days"):
        training.train_and_evaluate(config, str(tmp_path / "model"))
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("validation_days", [0, 1])
def test_validated_without_orca_is_a_setting_not_read(small_world, validation_days):
    """A preset without ORCA (one flagfile for mmoe and mmoe_orca) trains as without the flag,
    with or without a validation window: the run's notes name it, training's checks pass."""
    config = orca_config(small_world, "none", preset="ple", validation_days=validation_days)
    assert config.model.orca.serve == "validated" and not config.model.uses_orca
    notes = applicability.unread_settings(config)
    assert [n for n in notes if "--orca_serve=validated" in n] == [
        "note: --orca_serve=validated does not apply: an ORCA setting; ple has no ORCA "
        "(mmoe_orca, ple_orca, or --orca on shared_bottom_dt); it is not used"], notes
    training._check_options(config)  # no InputError


def test_a_checkpoint_without_the_gate_is_one_error_not_a_traceback(served_debiased, tmp_path):
    """An ORCA model's checkpoint written before the gate existed (made here by untracking
    it) is refused by export with an InputError naming the checkpoint."""
    model_dir = str(tmp_path / "model")
    shutil.copytree(served_debiased[0], model_dir)
    model, _ = exporter.load_trained(model_dir)
    head = model.network.get_layer("orca")
    # Untracked as a weight and as a checkpoint dependency (TensorFlow's internal lists: the
    # way to make a checkpoint as the code before the gate wrote it).
    gate = head.debias
    head._non_trainable_weights = [w for w in head._non_trainable_weights if w is not gate]
    head._self_unconditional_checkpoint_dependencies = [
        d for d in head._self_unconditional_checkpoint_dependencies if d.name != "debias"]
    del head._self_unconditional_dependency_names["debias"]
    best = os.path.join(model_dir, "best", "model")
    tf.train.Checkpoint(model=model).write(best)
    assert not any("/debias/" in k for k in model_variables(best))
    with pytest.raises(InputError, match="does not hold every variable of this model"):
        exporter.load_trained(model_dir)
