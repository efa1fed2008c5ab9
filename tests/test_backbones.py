"""Backbones: shapes, softmax gates, and each block against a NumPy computation of its math."""

import numpy as np
import pytest
import tensorflow as tf

from ranking import backbones
from ranking.backbones import fields as fields_lib
from ranking.backbones.deepfm import bi_interaction
from ranking.backbones.ple import PLE

from model_fixtures import tiny_spec

TASKS = ("ctr", "dwell_bins")
BATCH, DIM = 7, 12


def x_batch(seed=0, dim=DIM):
    return tf.constant(np.random.default_rng(seed).normal(size=(BATCH, dim)), tf.float32)


def mlp_numpy(mlp, x):
    for layer in mlp.hidden:
        kernel, bias = (w.numpy() for w in layer.weights)
        x = np.maximum(x @ kernel + bias, 0.0)
    return x


def softmax(z):
    z = z - z.max(axis=-1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(axis=-1, keepdims=True)


def dense_numpy(layer, x):
    kernel, bias = (w.numpy() for w in layer.weights)
    return x @ kernel + bias


def test_shared_bottom_gives_every_task_the_same_representation():
    layer = backbones.SharedBottom(TASKS, (16, 8))
    out = layer(x_batch())
    assert set(out) == set(TASKS) | {"shared"}
    assert out["ctr"].shape == (BATCH, 8)
    np.testing.assert_array_equal(out["ctr"].numpy(), out["dwell_bins"].numpy())
    np.testing.assert_allclose(out["shared"].numpy(), mlp_numpy(layer.mlp, x_batch().numpy()),
                               rtol=1e-5, atol=1e-6)


def test_mmoe_gates_sum_to_one_and_mix_the_experts():
    tf.keras.utils.set_random_seed(0)
    layer = backbones.MMoE(TASKS, num_experts=3, expert_units=(16, 8))
    x = x_batch()
    out = layer(x)
    assert set(out) == set(TASKS) | {"shared"}
    gates = {k: v.numpy() for k, v in layer.gate_values(x).items()}
    assert set(gates) == set(TASKS) | {"shared"}
    experts = np.stack([mlp_numpy(e, x.numpy()) for e in layer.experts], axis=1)  # [B, 3, 8]
    for name, gate in gates.items():
        assert gate.shape == (BATCH, 3)
        np.testing.assert_allclose(gate.sum(axis=1), 1.0, rtol=1e-6)
        np.testing.assert_allclose(gate, softmax(dense_numpy(layer.gates[name], x.numpy())),
                                   rtol=1e-5)
        expected = np.einsum("bn,bnd->bd", gate, experts)
        np.testing.assert_allclose(out[name].numpy(), expected, rtol=1e-5, atol=1e-6)
    # Different gates give different task representations.
    assert not np.allclose(out["ctr"].numpy(), out["dwell_bins"].numpy())


@pytest.mark.parametrize("levels", [1, 2])
def test_ple_levels_shapes_and_gates(levels):
    tf.keras.utils.set_random_seed(1)
    layer = PLE(TASKS, num_levels=levels, task_experts=2, shared_experts=1, expert_units=(16, 8))
    x = x_batch()
    out, gates = layer(x, return_gates=True)
    assert set(out) == set(TASKS) | {"shared"}
    assert all(v.shape == (BATCH, 8) for v in out.values())
    assert len(gates) == levels
    for level_gates in gates:
        for name in TASKS:  # own 2 experts + 1 shared
            assert level_gates[name].shape == (BATCH, 3)
        assert level_gates["shared"].shape == (BATCH, 2 * 2 + 1)  # every expert of the level
        for gate in level_gates.values():
            np.testing.assert_allclose(gate.numpy().sum(axis=1), 1.0, rtol=1e-6)
    # The last level by hand: task h = gate . [own experts, shared experts]; shared h = shared
    # gate . [every task's experts, shared experts], from the previous level's outputs.
    if levels == 1:
        level = layer.levels[0]
        xs = x.numpy()
        shared = [mlp_numpy(e, xs) for e in level.shared_experts]
        own = {t: [mlp_numpy(e, xs) for e in level.task_experts[t]] for t in TASKS}
        for t in TASKS:
            gate = softmax(dense_numpy(level.task_gates[t], xs))
            expected = np.einsum("bn,bnd->bd", gate, np.stack(own[t] + shared, axis=1))
            np.testing.assert_allclose(out[t].numpy(), expected, rtol=1e-5, atol=1e-6)
        gate = softmax(dense_numpy(level.shared_gate, xs))
        every = np.stack(own["ctr"] + own["dwell_bins"] + shared, axis=1)
        np.testing.assert_allclose(out["shared"].numpy(), np.einsum("bn,bnd->bd", gate, every),
                                   rtol=1e-5, atol=1e-6)


def test_ple_levels_can_have_their_own_expert_widths():
    """--level_expert_units=16,8/4: the first level's experts 16 -> 8, the second's 4 (the ORCA
    authors' PLE is 128,64/32); a count of levels other than --levels, or text that is not
    widths, is refused."""
    tf.keras.utils.set_random_seed(1)
    config = backbones.BackboneConfig(level_expert_units="16,8/4")
    assert config.ple_level_units == ((16, 8), (4,))
    assert backbones.BackboneConfig(expert_units=(8,)).ple_level_units == ((8,), (8,))
    layer = PLE(TASKS, num_levels=2, task_experts=2, shared_experts=1, expert_units=(99,),
                level_units=config.ple_level_units)
    x = x_batch()
    out = layer(x)
    assert all(v.shape == (BATCH, 4) for v in out.values())
    for level, widths in zip(layer.levels, ((16, 8), (4,))):
        for expert in level.shared_experts + level.task_experts["ctr"]:
            assert [int(d.kernel.shape[1]) for d in expert.hidden] == list(widths)
    assert int(layer.levels[1].shared_experts[0].hidden[0].kernel.shape[0]) == 8
    with pytest.raises(ValueError, match="gives 3 levels; --levels is 2"):
        backbones.BackboneConfig(level_expert_units="8/8/8").check()
    for text in ("16,x/4", "16,0/4", "/"):
        with pytest.raises(ValueError, match="level_expert_units must be widths"):
            backbones.BackboneConfig(level_expert_units=text).check()


def test_aitm_transfers_from_ctr_to_the_next_task():
    tf.keras.utils.set_random_seed(2)
    layer = backbones.AITM(TASKS, (16, 8))
    x = x_batch()
    out = layer(x)
    xs = x.numpy()
    q_ctr = mlp_numpy(layer.networks["ctr"], xs)
    np.testing.assert_allclose(out["ctr"].numpy(), q_ctr, rtol=1e-5, atol=1e-6)
    p = np.maximum(dense_numpy(layer.transfers["dwell_bins"], q_ctr), 0.0)
    q = mlp_numpy(layer.networks["dwell_bins"], xs)
    ait = layer.attention["dwell_bins"]
    stacked = np.stack([p, q], axis=1)
    scores = np.sum(dense_numpy(ait.h2, stacked) * dense_numpy(ait.h3, stacked), axis=-1) / np.sqrt(8)
    expected = np.einsum("bu,bud->bd", softmax(scores), dense_numpy(ait.h1, stacked))
    np.testing.assert_allclose(out["dwell_bins"].numpy(), expected, rtol=1e-4, atol=1e-5)


def test_separate_networks_share_only_the_input():
    layer = backbones.Separate(TASKS, (16, 8))
    out = layer(x_batch())
    assert not np.allclose(out["ctr"].numpy(), out["dwell_bins"].numpy())
    np.testing.assert_array_equal(out["shared"].numpy(), x_batch().numpy())


def test_bi_interaction_is_the_sum_of_pairwise_products():
    v = np.random.default_rng(3).normal(size=(BATCH, 5, 4))
    expected = sum(v[:, i] * v[:, j] for i in range(5) for j in range(i + 1, 5))
    np.testing.assert_allclose(bi_interaction(tf.constant(v)).numpy(), expected, rtol=1e-10)


def test_field_view_slices_the_encoder_output():
    spec = tiny_spec()  # user_id 16, item_id 16, category 8 (categoricals), then 3 numerics
    widths = fields_lib.field_widths(spec)
    assert widths == [("user_id", 16), ("item_id", 16), ("category", 8), ("position", 1),
                      ("item_length", 1), ("publish_age_hours", 1)]
    view = fields_lib.FieldView(spec, 8)
    x = x_batch(dim=43)
    fields = view(x).numpy()
    assert fields.shape == (BATCH, 6, 8)
    np.testing.assert_array_equal(fields[:, 2], x.numpy()[:, 32:40])  # width 8 passes as it is
    kernel = view.maps["position"].weights[0].numpy()  # a numeric x becomes x * v
    np.testing.assert_allclose(fields[:, 3], x.numpy()[:, 40:41] * kernel, rtol=1e-6)
    np.testing.assert_allclose(fields[:, 0], x.numpy()[:, :16] @ view.maps["user_id"].weights[0].numpy(),
                               rtol=1e-5, atol=1e-6)


def test_dcn_v2_cross_layers_follow_the_formula():
    tf.keras.utils.set_random_seed(4)
    layer = backbones.DCNv2(("ctr",), cross_layers=2, units=(8,))
    x = x_batch()
    out = layer(x)["ctr"].numpy()
    x0 = xl = x.numpy()
    for cross in layer.crosses:
        xl = x0 * dense_numpy(cross._dense, xl) + xl
    np.testing.assert_allclose(out, mlp_numpy(layer.dnn, xl), rtol=1e-4, atol=1e-5)


def test_interaction_backbones_shapes():
    spec = tiny_spec()
    x = x_batch(dim=43)
    deepfm = backbones.DeepFM(("ctr",), spec, 8, (16,))
    assert deepfm(x)["ctr"].shape == (BATCH, 16 + 8 + 43)  # [DNN, bi-interaction, first order]
    autoint = backbones.AutoInt(("ctr",), spec, 8, 2, 2, (16,))
    assert autoint(x)["ctr"].shape == (BATCH, 6 * 2 * 8 + 16)  # fields x heads x dim, DNN
