"""ORCA's options (ranking/orca.py): the authors' masked-batch step, h_s trainable by the NDE
loss, their NDE head and bins; and that ORCA leaves its backbone's click tower as it was."""

import json
import types

import numpy as np
import pytest
import tensorflow as tf

from core.stats_artifact import DwellTargets
from ranking import loops, models, orca
from ranking.output_layers import tower_input
from ranking.regularization import RegularizationConfig
from ranking.tasks import TowerConfig

from conftest import POST_CLICK as WORLD_POST_CLICK
from model_fixtures import tiny_batch, tiny_spec
from test_orca import BIN_NDT, MEDIANS, POST_CLICK, ROWS, labels_for

BACKBONE_LAYERS = {"mmoe_orca": "mmoe", "ple_orca": "ple"}


def orca_model(preset="mmoe_orca", regularization=RegularizationConfig(),
               towers=TowerConfig(dt_denominator="clicks"), **orca_options):
    tf.keras.utils.set_random_seed(5)
    spec = tiny_spec(post_click=POST_CLICK)
    config = models.ModelConfig(preset, towers=towers,
                                regularization=regularization,
                                orca=orca.OrcaConfig(**orca_options))
    model = models.RankingModel(spec, config, DwellTargets(bin_values=MEDIANS, bin_ndt=BIN_NDT))
    model(tiny_batch(spec, 2))
    return spec, model


def softmax_ce(logits, bins):
    z = logits - logits.max(axis=1, keepdims=True)
    log_p = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    return -log_p[np.arange(len(bins)), np.maximum(bins, 0)]


def numpy_instance_weights(bins, ctr_logit, raw_logits, a=-0.1, b=0.8, c=-0.2):
    clicked = bins >= 0
    l_ctr = np.maximum(np.log1p(np.exp(-ctr_logit)), 1e-6)
    l_dt = np.maximum(softmax_ce(raw_logits, bins), 1e-6)
    w = np.where(clicked, np.maximum(l_ctr ** a * l_dt ** b + c, 0), 0)
    return w * clicked.sum() / w.sum()


@pytest.mark.parametrize("preset, tower_output", [("mmoe_orca", "dense"), ("ple_orca", "dense"),
                                                  ("mmoe_orca", "fm_terms")])
def test_the_nde_only_step_changes_only_the_nde_and_reads_the_masked_forward(preset,
                                                                             tower_output):
    spec, model = orca_model(preset, mask_scope="batch", nde_head="authors",
                             shared_representation="gate",
                             regularization=RegularizationConfig(batch_norm=True),
                             towers=TowerConfig(dt_denominator="clicks", tower_units=(16, 8),
                                                tower_output=tower_output))
    features, labels = tiny_batch(spec, ROWS), labels_for(ROWS, seed=2)
    head = model.network.get_layer("orca")
    nde_ids = {id(v) for v in head.nde_step_variables}
    # The NDE tower's own batch-norm statistics move with its training-mode forward.
    nde_state = {id(v) for layer in (head.nde_tower, head.nde_head) for v in layer.variables}
    variables = model.variables
    before = [v.numpy().copy() for v in variables]
    run = types.SimpleNamespace(model=model, nde_optimizer=tf.keras.optimizers.Adam(0.01),
                                config=types.SimpleNamespace(model=model.config))
    loss = float(loops.make_nde_replica_step(run)(
        ({name: features[name] for name in spec.names}, labels))["nde_masked_step"])
    changed = [v for v, old in zip(variables, before) if not np.array_equal(v.numpy(), old)]
    assert changed, "the NDE-only step changed nothing"
    assert all(id(v) in nde_state for v in changed), [v.name for v in changed
                                                       if id(v) not in nde_state]
    assert any(id(v) in nde_ids for v in changed)

    # Its loss is the NDE's on the masked forward: raw logits, instance weights and the NDE's
    # inputs all come from the encoder with every post-click feature masked.
    encoder = model.network.get_layer("features")
    backbone = model.network.get_layer(BACKBONE_LAYERS[preset])
    masked = encoder({n: features[n] for n in spec.names},
                     post_click_mask=tf.ones([ROWS], tf.bool))
    reps = backbone(masked, training=False)
    if tower_output == "fm_terms":  # the embeddings' terms of the masked input too
        reps = {**reps, "wide": model.network.get_layer("wide_terms")(masked)}
    raw = model.network.get_layer("dwell_bins_tower")(
        tower_input(reps, "dwell_bins"), training=False).numpy()
    ctr_logit = model.network.get_layer("ctr_tower")(
        tower_input(reps, "ctr"), training=False).numpy()[:, 0]
    # The NDE's logits as the step computed them: its head in training mode (no dropout here;
    # batch norm on the batch's statistics), with the weights the step read.
    for v, old in zip(variables, before):
        v.assign(old)
    nde_logits = head(features, reps, tf.constant(raw), training=True)["nde_logits"].numpy()
    bins = labels["dwell_bin"].numpy()
    clicked = bins >= 0
    w = numpy_instance_weights(bins, ctr_logit, raw)
    expected = np.sum((w * softmax_ce(raw - nde_logits, bins))[clicked]) / clicked.sum()
    assert loss == pytest.approx(expected, rel=1e-4)
    # ... which is not the unmasked forward's.
    plain = model.task_losses((features, labels), training=False)["nde"]
    assert abs(float(plain) - loss) > 1e-4


def test_batch_masks_are_keyed_by_seed_and_step():
    config = orca.OrcaConfig(mask_scope="batch", mask_prob=0.2, mask_seed=3)
    draws = [orca.batch_masked(config, step) for step in range(1, 5001)]
    assert abs(np.mean(draws) - 0.2) < 0.02
    assert draws == [orca.batch_masked(config, step) for step in range(1, 5001)]
    other = orca.OrcaConfig(mask_scope="batch", mask_prob=0.2, mask_seed=4)
    assert draws != [orca.batch_masked(other, step) for step in range(1, 5001)]
    assert not any(orca.batch_masked(orca.OrcaConfig(mask_prob=0.0), s) for s in range(100))


def gradient_owners(model, loss_name, features, labels):
    """Names of the trainable variables that `loss_name`'s gradient reaches (non-zero)."""
    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        loss = model.task_losses((features, labels), training=True)[loss_name]
    reached = set()
    for v, g in zip(variables, tape.gradient(loss, variables)):
        if g is not None and np.any(tf.convert_to_tensor(g).numpy() != 0):
            reached.add(v.name)
    return reached


@pytest.mark.parametrize("preset", ["mmoe_orca", "ple_orca"])
@pytest.mark.parametrize("mode", ["stop", "gate", "gate_and_experts"])
def test_h_s_gradient_reaches_exactly_what_shared_representation_names(preset, mode):
    spec, model = orca_model(preset, shared_representation=mode, mask_prob=0.0)
    features, labels = tiny_batch(spec, ROWS), labels_for(ROWS)
    reached = gradient_owners(model, "nde", features, labels)
    backbone = BACKBONE_LAYERS[preset]
    last = "level_1/" if preset == "ple_orca" else ""
    shared_gate = f"{backbone}/{last}shared_gate" if preset == "ple_orca" else f"{backbone}/shared_gate"
    expert = f"{backbone}/{last}" + ("" if preset == "ple_orca" else "expert_")
    outside_orca = {n for n in reached if not n.startswith("orca/")}
    assert any(n.startswith("orca/") for n in reached)
    if mode == "stop":
        assert outside_orca == set()
    elif mode == "gate":
        assert outside_orca and all(n.startswith(shared_gate) for n in outside_orca), outside_orca
    else:
        gate = {n for n in outside_orca if n.startswith(shared_gate)}
        experts = outside_orca - gate
        assert gate and experts
        # Experts of the level that h_s mixes (PLE: the last level's), nothing before them.
        assert all(n.startswith(expert) and "_gate" not in n for n in experts), experts
        if preset == "ple_orca":
            every = {v.name for v in model.network.get_layer(backbone).levels[1].trainable_variables
                     if "_gate" not in v.name}
            assert experts == every
    # The click and raw-dwell losses never reach the NDE.
    for task in ("ctr", "dwell_bins"):
        assert not any(n.startswith("orca/") for n in gradient_owners(model, task, features,
                                                                      labels))


def test_shared_representation_needs_a_gate():
    with pytest.raises(ValueError, match="needs a gate"):
        models.check_config(models.ModelConfig("shared_bottom_dt", orca=orca.OrcaConfig(
            enabled=True, shared_representation="gate")))


def test_authors_head_shapes():
    _, model = orca_model("mmoe_orca", nde_head="authors")
    head = model.network.get_layer("orca")
    kernels = {v.name.split("orca/")[1]: tuple(v.shape) for v in head.trainable_variables
               if "kernel" in v.name}
    # Tokens projected to 32, attention, learned residual, 32-unit output; then 16 -> 8 -> bins.
    assert kernels["scd/projection/kernel:0"][1] == 32
    assert kernels["scd/residual/kernel:0"][1] == 32
    assert kernels["scd/output/kernel:0"] == (64, 32)
    widths = [shape[1] for name, shape in kernels.items() if name.startswith("nde_")]
    assert widths == [16, 8, len(MEDIANS)]
    # The attention's output projection is linear, as their `attn_fc`: it goes below zero.
    width = kernels["scd/projection/kernel:0"][0]
    tokens = [tf.random.stateless_normal([64, width], seed=[1, k]) for k in (0, 1)]
    out = head.scd(tokens).numpy()
    assert out.shape == (64, 32) and (out < 0).any()


def test_midpoint_bin_values(tmp_path, small_world):
    from core.stats_artifact import load_artifact
    from pipelines.stats import statistics

    edges = (0.1, 1.9, 26.1, 44.1, 72.1, 118.1, 216.1, 314, 486)
    out = tmp_path / "stats"
    statistics.compute_stats(small_world["train"], str(out), statistics.StatsConfig(
        bin_edges=edges, bin_values="midpoint"))
    stored = json.loads((out / "stats.json").read_text())
    assert stored["bin_values"] == "midpoint" and stored["dwell_bin_edges"] == list(edges)
    targets = load_artifact(str(out)).targets
    np.testing.assert_allclose(targets.bin_values,
                               [1.0, 14.0, 35.1, 58.1, 95.1, 167.1, 265.05, 400.0])


@pytest.fixture(scope="module")
def click_towers(small_world, tmp_path_factory):
    """Test-day click AUC of the ctr tower: mmoe, and mmoe + ORCA with each masking scope; the
    same seed and dropout (batch normalization's statistics, which the masked forwards must not
    move either, are checked by the NDE-only step's test: 40 steps leave its moving averages
    too far from the data for a trained tower)."""
    from ranking import training

    root = tmp_path_factory.mktemp("click_towers")
    results = {}
    for name, preset, options in [("mmoe", "mmoe", {}), ("row", "mmoe_orca", {}),
                                  ("batch", "mmoe_orca", {"mask_scope": "batch",
                                                          "mask_prob": 0.5})]:
        config = training.TrainConfig(
            train=small_world["train"], eval=small_world["eval"], stats=small_world["stats"],
            model=models.ModelConfig(preset, regularization=RegularizationConfig(dropout=0.1),
                                     orca=orca.OrcaConfig(**options)),
            batch_size=256, epochs=1, steps_per_epoch=40, progress="none",
            post_click_features=WORLD_POST_CLICK)
        results[name] = training.train_and_evaluate(config, str(root / name))
    return results


@pytest.mark.parametrize("scope", ["row", "batch"])
def test_orca_leaves_the_backbones_click_tower_as_it_was(click_towers, scope):
    plain = click_towers["mmoe"]["towers"]["ctr"]["auc_ctr"]
    with_orca = click_towers[scope]["towers"]["ctr"]["auc_ctr"]
    assert with_orca == pytest.approx(plain, abs=1e-4)
    # And it is a tower that ranks (40 steps on the small world: about 0.53), not two equal
    # constants.
    assert plain > 0.515
