"""The towers' output layers (ranking/output_layers.py): the ORCA authors' first-order and FM
terms, by hand, and where --tower_output=fm_terms puts them."""

import itertools

import numpy as np
import pytest
import tensorflow as tf
from test_orca_options import gradient_owners

from core.stats_artifact import DwellTargets
from ranking import models, orca
from ranking.output_layers import WideTerms
from ranking.regularization import RegularizationConfig
from ranking.tasks import TowerConfig

from model_fixtures import tiny_batch, tiny_spec
from test_orca import BIN_NDT, MEDIANS, POST_CLICK, ROWS, labels_for


def test_wide_terms_are_the_first_order_and_fm_terms_by_hand():
    tf.keras.utils.set_random_seed(1)
    spec = tiny_spec()
    encoder = models.FeatureEncoder(spec, 0.3)
    x = encoder(tiny_batch(spec, 6))
    layer = WideTerms(spec)
    terms = layer(x).numpy()
    assert terms.shape == (6, 2)
    x = x.numpy()
    w = layer.first_order.kernel.numpy()[:, 0]
    np.testing.assert_allclose(terms[:, 0], x @ w + layer.first_order.bias.numpy()[0],
                               rtol=1e-5, atol=1e-6)
    # The fields' vectors by hand: embeddings of the common width as they are, a numeric
    # through its own vector; then the sum of inner products over pairs of fields.
    vectors, start = [], 0
    # The encoder's output: the embeddings in the spec's order, then the numerics.
    ordered = sorted(spec.features, key=lambda f: f.kind != "categorical")
    for feature in ordered:
        width = feature.embedding_dim if feature.kind == "categorical" else 1
        part = x[:, start:start + width]
        start += width
        if width == layer.k:
            vectors.append(part)
        else:
            vectors.append(part @ layer.fields.maps[feature.name].kernel.numpy())
    assert any(f.kind != "categorical" for f in spec.features) and len(vectors) > 2
    fm = sum(np.sum(a * b, axis=1) for a, b in itertools.combinations(vectors, 2))
    np.testing.assert_allclose(terms[:, 1], fm, rtol=1e-4, atol=1e-6)


def fm_model(preset="mmoe_orca", **orca_options):
    tf.keras.utils.set_random_seed(5)
    spec = tiny_spec(post_click=POST_CLICK)
    config = models.ModelConfig(
        preset, towers=TowerConfig(tower_units=(16, 8), tower_output="fm_terms"),
        regularization=RegularizationConfig(batch_norm=True),
        orca=orca.OrcaConfig(mask_prob=0.0, **orca_options))
    model = models.RankingModel(spec, config, DwellTargets(bin_values=MEDIANS, bin_ndt=BIN_NDT))
    model(tiny_batch(spec, 2))
    return spec, model


@pytest.mark.parametrize("nde_head", ["authors", "project"])
def test_fm_terms_feed_each_towers_last_layer_and_the_nde_reads_them_stopped(nde_head):
    spec, model = fm_model(nde_head=nde_head)
    kernels = {v.name: tuple(v.shape) for v in model.trainable_variables if "kernel" in v.name}
    # Each tower: 16 (batch norm) -> [16 + the two terms] -> 8 (no batch norm) -> output.
    for tower, width in (("ctr_tower", 1), ("dwell_bins_tower", len(MEDIANS))):
        assert kernels[f"{tower}/body/dense_0/kernel:0"][1] == 16
        assert kernels[f"{tower}/head/dense_0/kernel:0"] == (18, 8)
        assert kernels[f"{tower}/head/logits/kernel:0"] == (8, width)
        names = [v.name for v in model.network.get_layer(tower).variables]
        assert any("body/batch_norm" in n for n in names)
        assert not any("head/batch_norm" in n for n in names)
    nde_last = ("orca/nde_head/dense_0/kernel:0" if nde_head == "authors"
                else "orca/nde_tower/head/dense_0/kernel:0")
    assert kernels[nde_last] == (18, 8)
    # The click prior sets the output layer's bias (`ranking.run.set_click_prior`).
    assert model.network.get_layer("ctr_tower").output_layer.bias.shape == (1,)

    features, labels = tiny_batch(spec, ROWS), labels_for(ROWS)
    wide = {v.name for v in model.network.get_layer("wide_terms").trainable_variables}
    assert wide & gradient_owners(model, "ctr", features, labels)
    assert wide & gradient_owners(model, "dwell_bins", features, labels)
    nde = gradient_owners(model, "nde", features, labels)
    assert nde and all(n.startswith("orca/") for n in nde), nde
    # The NDE's logits move with the terms: they are read, not only stopped.
    head = model.network.get_layer("orca")
    encoder = model.network.get_layer("features")
    backbone = model.network.get_layer("mmoe")
    encoded = encoder({n: features[n] for n in spec.names})
    reps = dict(backbone(encoded, training=False))
    reps["wide"] = model.network.get_layer("wide_terms")(encoded)
    raw = tf.zeros([ROWS, len(MEDIANS)])
    base = head(features, reps, raw)["nde_logits"].numpy()
    shifted = head(features, {**reps, "wide": reps["wide"] + 1.0}, raw)["nde_logits"].numpy()
    assert not np.allclose(base, shifted)


def test_fm_terms_need_a_hidden_layer():
    with pytest.raises(ValueError, match="fm_terms needs towers with a hidden layer"):
        models.check_config(models.ModelConfig("deepfm", towers=TowerConfig(
            tower_output="fm_terms")))
