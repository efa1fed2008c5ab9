"""The feature spec, the encoder and the presets' towers and score wiring (SPEC §2, §4)."""

import json

import numpy as np
import pytest
import tensorflow as tf

from core.errors import InputError
from core.stats_artifact import DwellTargets
from ranking import features, models
from ranking.layers import FeatureEncoder

from model_fixtures import NUMERIC_STATS, SCHEMA, tiny_batch, tiny_spec


def test_default_spec_follows_the_schema():
    spec = tiny_spec()
    assert spec.names == ("user_id", "item_id", "position", "category", "item_length",
                          "publish_age_hours")
    kinds = {f.name: f.kind for f in spec.features}
    assert kinds == {"user_id": "categorical", "item_id": "categorical", "position": "numeric",
                     "category": "categorical", "item_length": "numeric",
                     "publish_age_hours": "numeric"}
    assert spec["user_id"].hash_buckets == features.ID_HASH_BUCKETS
    assert spec["category"].hash_buckets == features.HASH_BUCKETS
    assert spec["item_length"].mean == 6.5 and spec["item_length"].std == 0.6
    assert spec.post_click == ()
    again = features.FeatureSpec.from_json(json.loads(json.dumps(spec.to_json())))
    assert again == spec


def test_feature_config_overrides_and_post_click_flag():
    config = {"features": {"category": {"vocabulary": ["news", "sports"], "post_click": True},
                           "position": {"type": "categorical", "embedding_dim": 4},
                           "publish_age_hours": {"exclude": True},
                           "item_length": {"transform": "identity"}}}
    spec = tiny_spec(config, post_click=("item_length",))
    assert "publish_age_hours" not in spec.names
    assert spec["category"].vocabulary == ("news", "sports")
    assert spec["category"].num_embeddings == 4  # OOV row 0, two words, the mask row
    assert spec["position"].kind == "categorical" and spec["position"].embedding_dim == 4
    assert spec.post_click == ("category", "item_length")


@pytest.mark.parametrize("config,message", [
    ({"features": {"weather": {}}}, "names feature 'weather'"),
    ({"features": {"category": {"buckets": 3}}}, "unknown option"),
    ({"features": {"category": {"type": "numeric"}}}, "holds strings"),
    ({"features": {"user_id": {"type": "numeric"}}}, "always categorical"),
    ({"features": {"position": {"transform": "sqrt"}}}, "transform must be"),
    # Options of the other kind of feature, which would be dropped without a word.
    ({"features": {"position": {"vocabulary": [1, 2]}}},
     r"feature 'position' is numeric \(a number column is numeric unless its \"type\" is "
     r"\"categorical\"\): vocabulary applies to categorical features only"),
    ({"features": {"position": {"type": "numeric", "hash_buckets": 8, "embedding_dim": 4}}},
     r"'position' is numeric \(its type\): hash_buckets, embedding_dim apply to categorical"),
    ({"features": {"category": {"transform": "standardize"}}},
     r"'category' is categorical \(a text column and the ids are categorical\): transform "
     "applies to numeric features only"),
    ({"features": {"position": {"type": "categorical", "transform": "identity"}}},
     r"'position' is categorical \(its type\): transform applies"),
    # Values of the wrong JSON kind, which Python would read its own way.
    ({"features": {"category": {"exclude": "false"}}},
     "'category': exclude must be true or false, not \"false\""),
    ({"features": {"category": {"post_click": 1}}}, "post_click must be true or false, not 1"),
    ({"features": {"category": {"vocabulary": "tech"}}},
     "vocabulary must be a list of the column's values \\(texts or numbers\\), not \"tech\""),
    ({"features": {"category": {"vocabulary": ["news", None]}}},
     r'vocabulary must be a list .*, not \["news", null\]'),
    ({"features": {"category": {"hash_buckets": 8.5}}}, "hash_buckets must be a whole number"),
    ({"features": {"category": {"hash_buckets": float("inf")}}},
     "hash_buckets must be a whole number, not Infinity"),
    ({"features": {"category": {"embedding_dim": True}}}, "embedding_dim must be a whole number"),
    ({"features": {"category": {"default": None}}}, "default must be a text or a number, not null"),
    ({"features": {"category": {"type": ["numeric"]}}}, "type must be a text"),
    # A misspelt top-level key would leave every default feature (a leaking outcome too) in.
    ({"feature": {"category": {"exclude": True}}},
     r"features\.json: unknown key\(s\) feature: a feature config is an object"),
])
def test_bad_feature_config_is_refused_with_the_feature_named(config, message):
    with pytest.raises(InputError, match=message):
        features.build_feature_spec(SCHEMA, NUMERIC_STATS, config, config_path="features.json")


def test_whole_numbers_given_as_json_decimals_are_read():
    spec = tiny_spec({"features": {"category": {"hash_buckets": 64.0, "embedding_dim": 4}}})
    assert (spec["category"].hash_buckets, spec["category"].embedding_dim) == (64, 4)


def test_post_click_flag_naming_an_absent_column_is_refused():
    with pytest.raises(InputError, match="'length'"):
        tiny_spec(post_click=("length",))
    # One the feature config excludes would be dropped from the post-click set in silence.
    with pytest.raises(InputError, match="names 'category', which the feature config excludes"):
        tiny_spec({"features": {"category": {"exclude": True}}}, post_click=("category",))


def test_encoder_against_numpy():
    config = {"features": {"category": {"vocabulary": ["news", "sports"], "post_click": True},
                           "position": {"type": "categorical"}}}
    spec = tiny_spec(config, post_click=("item_length",))
    encoder = FeatureEncoder(spec)
    batch = {"user_id": tf.constant(["u1", "u2", "u1"]), "item_id": tf.constant(["a", "b", "c"]),
             "position": tf.constant([7, 0, 7], tf.int64),
             "category": tf.constant(["sports", "weather", "news"]),
             "item_length": tf.constant([300, 0, -5], tf.int64),
             "publish_age_hours": tf.constant([2.5, 0.0, 40.0])}
    # Integers are hashed as their decimal strings; out-of-vocabulary is index 0.
    position = encoder.indices(spec["position"], batch["position"]).numpy()
    as_text = tf.strings.to_hash_bucket_fast(["7", "0", "7"], spec["position"].hash_buckets)
    np.testing.assert_array_equal(position, as_text.numpy())
    np.testing.assert_array_equal(
        encoder.indices(spec["category"], batch["category"]).numpy(), [2, 0, 1])
    length = FeatureEncoder.numeric(spec["item_length"], batch["item_length"]).numpy()
    np.testing.assert_allclose(length, (np.log1p([300, 0, 0]) - 6.5) / 0.6, rtol=1e-6)
    encoded = encoder(batch).numpy()
    assert encoded.shape == (3, encoder.output_dim)
    # Masking replaces the post-click features only: category (mask row) and item_length (0).
    masked = encoder(batch, post_click_mask=tf.constant([True, False, False])).numpy()
    np.testing.assert_array_equal(masked[1:], encoded[1:])
    mask_row = encoder.embeddings["category"](tf.constant([spec["category"].mask_index]))
    dims = [f.embedding_dim if f.kind == "categorical" else 1 for f in spec.features]
    start = np.cumsum([0] + dims)
    names = [f.name for f in spec.features if f.kind == "categorical"] + [
        f.name for f in spec.features if f.kind == "numeric"]
    offsets = dict(zip(names, start))
    c = offsets["category"]
    np.testing.assert_array_equal(masked[0, c:c + 8], mask_row.numpy()[0])
    assert masked[0, offsets["item_length"]] == 0.0
    np.testing.assert_array_equal(masked[0, :offsets["category"]], encoded[0, :offsets["category"]])


def test_vocabularies_on_numeric_columns_match_the_values_as_the_encoder_reads_them():
    # publish_age_hours is float32, position int64: entries given as JSON numbers or text match
    # the values TensorFlow turns into text (its own op is the reference).
    config = {"features": {"publish_age_hours": {"type": "categorical", "vocabulary": [
        0.5, "4.0", 12, 0.1, 1e-7, 1234567, 1234568, 10.00001]},
                           "position": {"type": "categorical", "vocabulary": [
                               "007", 2.0, 1234567890123456789, "9007199254740993"]}}}
    spec = tiny_spec(config)
    encoder = FeatureEncoder(spec)
    hours = tf.constant([0.5, 4.0, 12.0, 0.1, 1e-7, 1234567, 1234568, 10.00001, 10.0, 0.0, 4.5],
                        tf.float32)
    np.testing.assert_array_equal(encoder.indices(spec["publish_age_hours"], hours).numpy(),
                                  [1, 2, 3, 4, 5, 6, 7, 8, 0, 0, 0])
    # Integers exactly, past float64's 2^53 too.
    positions = tf.constant([7, 2, 1234567890123456789, 9007199254740993, 9007199254740992, 3],
                            tf.int64)
    np.testing.assert_array_equal(encoder.indices(spec["position"], positions).numpy(),
                                  [1, 2, 3, 4, 0, 0])
    # Hashed decimals are told apart below 5e-7 ("%f" text would read them all as "0.000000")
    # and past six digits (%g would read 1234567 and 1234568 as "1.23457e+06").
    hashed = tiny_spec({"features": {"publish_age_hours": {"type": "categorical"}}})
    rows = FeatureEncoder(hashed).indices(hashed["publish_age_hours"], tf.constant(
        [0.0, 1e-7, 2e-7, 1234567, 1234568], tf.float32)).numpy()
    assert len(set(rows.tolist())) == 5
    # config.json carries decimal_text for float categoricals only: a config written before
    # the field, of a model without one, reads as the spec built now (a run resumes).
    assert [("decimal_text" in f) for f in hashed.to_json()] == [
        f.name == "publish_age_hours" for f in hashed.features]
    assert "decimal_text" not in json.dumps(tiny_spec().to_json())
    # A config written before the field: the buckets it trained with (%f text).
    old = features.FeatureSpec.from_json([{k: v for k, v in f.items() if k != "decimal_text"}
                                          for f in hashed.to_json()])
    assert old["publish_age_hours"].decimal_text == "fixed"
    values = tf.constant([0.5, 1e-7], tf.float32)
    np.testing.assert_array_equal(
        FeatureEncoder(old).indices(old["publish_age_hours"], values).numpy(),
        tf.strings.to_hash_bucket_fast(["0.500000", "0.000000"], features.HASH_BUCKETS).numpy())
    # Integers by their exact value; -0 as 0 (values and entries alike).
    assert features.value_text("9007199254740993.0", "int64", "p", "f") == "9007199254740993"
    assert [features.value_text(v, "int64", "p", "f") for v in ("+7", " 7", 7.0, "1e3")] == [
        "7", "7", "7", "1000"]
    zero = tiny_spec({"features": {"publish_age_hours": {"type": "categorical",
                                                         "vocabulary": [-0.0, 2]}}})
    np.testing.assert_array_equal(FeatureEncoder(zero).indices(
        zero["publish_age_hours"], tf.constant([0.0, -0.0, 2.0, 1.0], tf.float32)).numpy(),
        [1, 1, 2, 0])
    for bad, message in [(["x"], "vocabulary entry 'x' is not a value of the column, which "
                                 "holds numbers"),
                         ([1.5], "entry 1.5 is not a value of the column, which holds integers"),
                         (["1e30"], "entry '1e30' is not a value of the column"),
                         (["nan"], "entry 'nan' is not a value of the column"),
                         ([4, "4.0"], "lists 4 more than once")]:
        column = "position" if bad in ([1.5], ["1e30"]) else "publish_age_hours"
        with pytest.raises(InputError, match=message):
            tiny_spec({"features": {column: {"type": "categorical", "vocabulary": bad}}})


def test_standardize_reads_the_raw_moments_and_keeps_the_sign():
    # A signed feature: (x - raw_mean) / raw_std, negative values kept (log1p_standardize reads
    # them all as 0), in float64 so a column far from 0 keeps its spread.
    stats = {**NUMERIC_STATS, "item_length": {"mean": 6.5, "std": 0.6, "raw_mean": 1.7e9,
                                              "raw_std": 2.0}}
    config = {"features": {"item_length": {"transform": "standardize"}}}
    spec = features.build_feature_spec(SCHEMA, stats, config)
    feature = spec["item_length"]
    assert (feature.transform, feature.mean, feature.std) == ("standardize", 1.7e9, 2.0)
    assert features.FeatureSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec
    values = np.array([1_700_000_003, 1_699_999_995, 1_700_000_000], np.int64)
    got = FeatureEncoder.numeric(feature, tf.constant(values)).numpy()
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, [1.5, -2.5, 0.0])
    # A constant column: a deviation of 0, or rounding (an artifact made before the floor),
    # standardizes by 1, so a value other than the constant is not read as 1e7 deviations.
    for rounding in (0.0, 3.65e-08):
        constant = {**NUMERIC_STATS, "item_length": {"mean": 1.7917595, "std": rounding}}
        assert features.build_feature_spec(SCHEMA, constant)["item_length"].std == 1.0
    assert features.build_feature_spec(
        SCHEMA, {**NUMERIC_STATS, "item_length": {"mean": 1.79, "std": 1e-6}})[
            "item_length"].std == 1e-6
    # An artifact made before the raw moments: the message says to recompute it.
    with pytest.raises(InputError, match="no moments for transform 'standardize'.*recompute"):
        features.build_feature_spec(SCHEMA, NUMERIC_STATS, config)


CLICK_REWEIGHTING = ("single_ctr", "ctr_logdt", "vr_logdt", "vr_ndt")


@pytest.mark.parametrize("preset", CLICK_REWEIGHTING)
def test_presets_towers_and_serving_score(preset):
    tf.keras.utils.set_random_seed(0)
    spec = tiny_spec()
    network = models.build_network(spec, models.ModelConfig(preset), DwellTargets())
    outputs = {k: v.numpy() for k, v in network(tiny_batch(spec, 5)).items()}
    towers = models.PRESETS[preset].towers
    expected = {"score"}
    for tower in towers:
        expected |= ({"log_dwell", "dwell_seconds"} if tower == "log_dwell"
                     else {tower, f"{tower}_logit"})
    assert set(outputs) == expected
    for tower in towers:
        if tower == "log_dwell":
            np.testing.assert_allclose(outputs["dwell_seconds"],
                                       np.expm1(np.clip(outputs["log_dwell"], 0, 12)), rtol=1e-5)
        else:
            np.testing.assert_allclose(outputs[tower], 1 / (1 + np.exp(-outputs[f"{tower}_logit"])),
                                       rtol=1e-5)
    serving = {"single_ctr": ["ctr"], "ctr_logdt": ["ctr"], "vr_logdt": ["valid_read"],
               "vr_ndt": ["valid_read", "weighted_valid_read"]}[preset]
    np.testing.assert_allclose(outputs["score"], sum(outputs[t] for t in serving), rtol=1e-6)
    # Each tower is its own MLP on the shared bottom: 2 hidden layers and the output layer.
    tower_layers = [layer for layer in network.layers if layer.name.endswith("_tower")]
    assert sorted(layer.name for layer in tower_layers) == sorted(f"{t}_tower" for t in towers)
    assert all(len(layer.hidden) == 2 and layer.output_layer is not None
               for layer in tower_layers)
    assert len([layer for layer in network.layers if layer.name == "bottom"]) == 1


def test_a_default_must_be_a_value_the_column_could_hold():
    """Training, scoring and serving read a missing value as the default: a non-finite number,
    a fraction or an out-of-range number for an integer column, or a default on an id, is
    refused naming the feature; a whole float for an integer column is that integer."""
    spec = tiny_spec({"features": {"position": {"default": 3.0},
                                   "publish_age_hours": {"default": "24.5"},
                                   "category": {"default": 7}}})
    assert spec["position"].default == 3 and isinstance(spec["position"].default, int)
    assert spec["publish_age_hours"].default == 24.5
    assert spec["category"].default == "7"
    # int64 read exactly, to its bounds.
    for exact in (2 ** 63 - 1, -2 ** 63, "9007199254740993"):
        assert tiny_spec({"features": {"position": {"default": exact}}})[
            "position"].default == int(exact)
    for column, bad, message in [
            ("publish_age_hours", "nan", "default 'nan' is not a finite float32 number"),
            ("publish_age_hours", float("inf"), "is not a finite float32 number"),
            ("publish_age_hours", 1e39, "is not a finite float32 number"),  # inf in float32
            ("publish_age_hours", True, "is not a finite float32 number"),
            ("position", 6.5, "default 6.5 is not a whole number in int64's range"),
            ("position", 1e30, "is not a whole number in int64's range"),
            ("position", 2 ** 63, "is not a whole number in int64's range"),
            ("position", "x", "is not a whole number"),
            ("user_id", "anon", "an id takes no default"),
            ("item_id", 0, "an id takes no default")]:
        with pytest.raises(InputError, match=message):
            tiny_spec({"features": {column: {"default": bad}}})
