"""export.saved_model: the serving SavedModel against the Keras model, TF-only loading,
saved_model_cli, RunInference, defaults and type errors, versions and atomicity (SPEC §7)."""

import csv
import glob
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from core import log_writers, logs
from core.errors import InputError
from export import exporter, versions
from ranking import data, models
from ranking import model_dir as model_dir_lib

from conftest import Lazy

ROWS = 64


@pytest.fixture(scope="module")
def eval_rows(small_world, trained):
    """The first ROWS rows of the evaluation logs: feature columns and serialized examples."""
    model, description = exporter.load_trained(trained["vr_ndt"])
    spec = model.feature_spec
    source = data.open_source(small_world["eval"], spec)
    batch = next(iter(source.dataset(ROWS, columns=spec.names)))
    columns = {name: batch[name].numpy() for name in spec.names}
    return columns, log_writers.serialize_examples(columns)


def keras_outputs(model_dir, columns):
    model, _ = exporter.load_trained(model_dir)
    outputs = model.network({k: tf.constant(v) for k, v in columns.items()})
    return {k: v.numpy() for k, v in outputs.items()}


ISOLATED = r"""
import importlib.abc, json, os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
BLOCKED = {"core", "pipelines", "ranking", "export", "online", "report", "tensorflow_recommenders"}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError("importing " + name + " is not allowed here")
sys.meta_path.insert(0, Block())
import numpy as np
import tensorflow as tf
examples = np.load(sys.argv[2], allow_pickle=True)
columns = dict(np.load(sys.argv[3], allow_pickle=True))
import traceback
for saved_model, out in json.load(open(sys.argv[1])):
    # Each export on its own: a failure is that export's (a project or tf_keras import fails
    # it and, the module staying loaded, the exports after it: never a false pass).
    try:
        loaded = tf.saved_model.load(saved_model)
        a = loaded.signatures["serving_default"](examples=tf.constant(list(examples)))
        b = loaded.signatures["predict_raw"](**{k: tf.constant(v) for k, v in columns.items()})
        loaded_modules = set(m.split(".")[0] for m in sys.modules)
        assert not BLOCKED & loaded_modules, "project code was imported"
        # (`import tensorflow` itself imports Keras 3; the model was built with tf_keras.)
        assert "tf_keras" not in loaded_modules, "tf_keras was needed"
        np.savez(out, **{"examples/" + k: v.numpy() for k, v in a.items()},
                 **{"raw/" + k: v.numpy() for k, v in b.items()})
    except Exception:
        open(out + ".error", "w").write(traceback.format_exc())
"""

ISOLATED_TEST = "test_export_loads_without_project_code_and_matches_keras"


def run_isolated(paths, columns, tmp) -> list[dict]:
    """[{"examples/<output>" | "raw/<output>": array}] of each SavedModel of `paths`, called
    through both signatures on `columns` in one Python process that cannot import project code
    and has no Keras 2 setting (ISOLATED): one TensorFlow start-up for all of them."""
    np.save(tmp / "examples.npy", np.array(log_writers.serialize_examples(columns), dtype=object))
    np.savez(tmp / "columns.npz", **columns)
    (tmp / "isolated.py").write_text(ISOLATED)
    jobs = [(path, str(tmp / f"served-{k}.npz")) for k, path in enumerate(paths)]
    (tmp / "jobs.json").write_text(json.dumps(jobs))
    serving_env = {k: v for k, v in os.environ.items() if k != "TF_USE_LEGACY_KERAS"}
    # -I: isolated mode (no PYTHONPATH, no current directory on sys.path)
    completed = subprocess.run([sys.executable, "-I", str(tmp / "isolated.py"),
                                str(tmp / "jobs.json"), str(tmp / "examples.npy"),
                                str(tmp / "columns.npz")], capture_output=True, text=True,
                               cwd=str(tmp), env=serving_env)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return [{"error": open(out + ".error").read()} if os.path.exists(out + ".error")
            else dict(np.load(out)) for _, out in jobs]


# (preset, --score_weights, --score_space) of the exports FUSION_TEST checks.
FUSIONS = [("ple", ("ctr=1", "expected_dwell_seconds=0.5"), "log"),
           ("ple", ("ctr=2", "expected_ndt=1"), "linear"),
           ("vr_ndt", ("valid_read=1", "weighted_valid_read=0.25"), "linear")]
FUSION_TEST = "test_stored_fusion_is_the_formula_of_the_other_outputs"


@pytest.fixture(scope="module")
def fusion_exports(trained, tmp_path_factory):
    """Exports with a stored score fusion, on first use: fusion_exports[FUSIONS entry]."""
    base = tmp_path_factory.mktemp("fusion")
    return Lazy(lambda fusion: exporter.export_saved_model(
        trained[fusion[0]], str(base / str(FUSIONS.index(fusion))),
        score_weights=list(fusion[1]), score_space=fusion[2]))


@pytest.fixture(scope="module")
def isolated_exports(request, exports, fusion_exports, eval_rows, tmp_path_factory):
    """{preset or FUSIONS entry: run_isolated output} for every preset this session runs
    ISOLATED_TEST for and every fusion it runs FUSION_TEST for, all in one process."""
    def params(test, name):
        return [item.callspec.params[name] for item in request.session.items
                if getattr(item, "originalname", None) == test]

    presets = sorted(set(params(ISOLATED_TEST, "preset")))
    fusion_paths = {}
    for fusion in FUSIONS:
        if fusion in params(FUSION_TEST, "fusion"):
            try:
                fusion_paths[fusion] = fusion_exports[fusion].path
            except Exception:  # noqa: BLE001 - that export raises again in its own test
                pass
    fusions = list(fusion_paths)
    columns, _ = eval_rows
    served = run_isolated([exports[p].path for p in presets] + list(fusion_paths.values()),
                          columns, tmp_path_factory.mktemp("isolated"))
    return dict(zip(presets + fusions, served))


def test_export_loads_without_project_code_and_matches_keras(preset, trained, exports,
                                                            eval_rows, isolated_exports):
    columns, _ = eval_rows
    result = exports[preset]
    served = isolated_exports[preset]
    assert "error" not in served, served.get("error")
    expected = keras_outputs(trained[preset], columns)
    _, config, targets = model_dir_lib.build_from_description(
        model_dir_lib.load_model_description(trained[preset]))
    names = models.output_names(config, targets)
    assert {k.split("/")[1] for k in served} == set(names)
    for name in names:
        for path in ("examples", "raw"):
            np.testing.assert_allclose(served[f"{path}/{name}"], expected[name], rtol=1e-5,
                                       atol=1e-6, err_msg=f"{preset} {path} {name}")
    if "dwell_bins" in config.tower_names or "entire_space_dwell" in config.tower_names:
        # dwell_probs is float32 [batch, num_bins] in both signatures and sums to 1.
        for path in ("examples", "raw"):
            probs = served[f"{path}/dwell_probs"]
            assert probs.dtype == np.float32 and probs.shape == (ROWS, targets.num_bins)
            np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
        signatures = result.signatures
        for name in ("serving_default", "predict_raw"):
            assert signatures[name]["outputs"]["dwell_probs"] == (
                "float32", [None, targets.num_bins])


def _saved_model_cli_scores(path, columns, rows, outdir):
    """`saved_model_cli run` of the serving signature on tf.Examples of `rows` rows of
    `columns`: the scores, float32 [rows] (the CLI runs the SavedModel in a TF1 session)."""
    literal = "[" + ", ".join(
        "{" + ", ".join(f"{k!r}: [{(v[i].decode() if isinstance(v[i], bytes) else v[i].item())!r}]"
                        for k, v in columns.items()) + "}" for i in range(rows)) + "]"
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    completed = subprocess.run(
        [cli, "run", "--dir", path, "--tag_set", "serve", "--signature_def",
         "serving_default", "--input_examples", f"examples={literal}",
         "--outdir", str(outdir)], capture_output=True, text=True)
    assert completed.returncode == 0, completed.stderr[-3000:]
    return np.load(outdir / "score.npy")


def test_saved_model_cli_runs_input_examples(exports, trained, eval_rows, tmp_path):
    columns, _ = eval_rows
    result = exports["vr_ndt"]
    first = {k: np.repeat(v[:1], 2) for k, v in columns.items()}
    score = _saved_model_cli_scores(result.path, first, 2, tmp_path / "out")
    expected = keras_outputs(trained["vr_ndt"], {k: v[:1] for k, v in columns.items()})["score"]
    np.testing.assert_allclose(score, np.repeat(expected, 2), rtol=1e-5)
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run([cli, "show", "--dir", result.path, "--all"], capture_output=True,
                           text=True)
    assert shown.returncode == 0 and "predict_raw" in shown.stdout


def test_a_vocabulary_feature_serves_in_a_session(small_world, eval_rows, tmp_path):
    """A categorical feature with a vocabulary is a lookup table in the SavedModel, which
    `saved_model_cli run` (as TF Serving) initializes in a session by its name."""
    from ranking import training
    from ranking.models import ModelConfig

    columns, _ = eval_rows
    seen = sorted({c.decode() for c in columns["category"][:8]})
    assert len(seen) >= 2  # the 8 rows served: some in the vocabulary, some out of it
    feature_config = tmp_path / "features.json"
    feature_config.write_text(json.dumps({"features": {"category": {"vocabulary": seen[:-1]}}}))
    model_dir = str(tmp_path / "model")
    training.train_and_evaluate(training.TrainConfig(
        train=small_world["train"], stats=small_world["stats"], model=ModelConfig("vr_ndt"),
        batch_size=256, epochs=1, steps_per_epoch=5, progress="none",
        feature_config=str(feature_config)), model_dir)
    result = exporter.export_saved_model(model_dir, str(tmp_path / "export"))
    score = _saved_model_cli_scores(result.path, columns, 8, tmp_path / "out")
    expected = keras_outputs(model_dir, {k: v[:8] for k, v in columns.items()})["score"]
    np.testing.assert_allclose(score, expected, rtol=1e-5)


def test_run_inference_gives_one_prediction_per_input(exports, trained, eval_rows):
    import apache_beam as beam
    from apache_beam.testing.util import assert_that
    from tfx_bsl.public.beam import RunInference
    from tfx_bsl.public.proto import model_spec_pb2

    columns, examples = eval_rows
    expected = keras_outputs(trained["vr_ndt"], columns)["score"]
    spec = model_spec_pb2.InferenceSpecType(saved_model_spec=model_spec_pb2.SavedModelSpec(
        model_path=exports["vr_ndt"].path, signature_name=["serving_default"]))

    def check(results):
        assert len(results) == len(examples)
        by_key = {k: log.predict_log.response.outputs["score"].float_val[0] for k, log in results}
        assert sorted(by_key) == list(range(len(examples)))
        np.testing.assert_allclose([by_key[i] for i in range(len(examples))], expected, rtol=1e-5)

    with beam.Pipeline() as pipeline:
        predictions = (pipeline | beam.Create(list(enumerate(examples)))
                       | RunInference(spec))
        assert_that(predictions, check)


def test_missing_features_take_defaults_and_wrong_types_name_the_feature(exports):
    loaded = tf.saved_model.load(exports["vr_ndt"].path)
    by_examples = loaded.signatures["serving_default"]
    raw = loaded.signatures["predict_raw"]
    spec = {name: value.dtype for name, value in raw.structured_input_signature[1].items()}
    defaults = {name: tf.constant([""] if dtype == tf.string else [0], dtype)
                for name, dtype in spec.items()}
    empty = by_examples(examples=tf.constant([b""]))
    np.testing.assert_allclose(empty["score"].numpy(), raw(**defaults)["score"].numpy(), rtol=1e-6)

    partial = tf.train.Example()
    partial.features.feature["user_id"].bytes_list.value.append(b"u-7")
    partial.features.feature["position"].int64_list.value.append(3)
    given = dict(defaults, user_id=tf.constant(["u-7"]), position=tf.constant([3], tf.int64))
    np.testing.assert_allclose(
        by_examples(examples=tf.constant([partial.SerializeToString()]))["score"].numpy(),
        raw(**given)["score"].numpy(), rtol=1e-6)

    # Empty value lists read as absent, as the log reader reads them in training and scoring:
    # one such example does not fail the request.
    empty_lists = tf.train.Example()
    empty_lists.features.feature["user_id"].bytes_list.value.append(b"u-7")
    empty_lists.features.feature["position"].int64_list.value.append(3)
    for name, dtype in spec.items():
        if name not in ("user_id", "position"):
            feature = empty_lists.features.feature[name]
            {tf.string: feature.bytes_list, tf.int64: feature.int64_list,
             tf.float32: feature.float_list}[dtype].SetInParent()
    assert empty_lists.features.feature["item_id"].WhichOneof("kind") == "bytes_list"
    batch = [empty_lists.SerializeToString(), partial.SerializeToString()]
    np.testing.assert_allclose(by_examples(examples=tf.constant(batch))["score"].numpy(),
                               raw(**given)["score"].numpy().repeat(2), rtol=1e-6)

    wrong = tf.train.Example()
    wrong.features.feature["position"].float_list.value.append(2.5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="position"):
        by_examples(examples=tf.constant([wrong.SerializeToString()]))
    two = tf.train.Example()
    two.features.feature["position"].int64_list.value.extend([1, 2])
    with pytest.raises(tf.errors.InvalidArgumentError,
                       match="feature position: expected at most one value per example"):
        by_examples(examples=tf.constant([two.SerializeToString()]))
    # A NaN or infinite number fails the request on both signatures (training and scoring
    # refuse it; the network would give it one fixed score).
    floats = [name for name, dtype in spec.items() if dtype == tf.float32]
    assert floats
    for bad in (float("nan"), float("inf"), float("-inf")):
        example = tf.train.Example()
        example.features.feature[floats[0]].float_list.value.append(bad)
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=f"feature {floats[0]}: expected a finite number"):
            by_examples(examples=tf.constant([partial.SerializeToString(),
                                              example.SerializeToString()]))
        with pytest.raises(tf.errors.InvalidArgumentError,
                           match=f"feature {floats[0]}: expected a finite number"):
            raw(**dict(defaults, **{floats[0]: tf.constant([bad])}))


def test_versions_warmup_and_models_config(exports, trained):
    result = exports["vr_ndt"]
    base = os.path.dirname(result.path)
    assert result.version == 1 and os.path.basename(result.path) == "1"
    with pytest.raises(InputError, match="version 1 exists already"):
        exporter.export_saved_model(trained["vr_ndt"], base, version=1)
    warmup = os.path.join(result.path, "assets.extra", "tf_serving_warmup_requests")
    from tensorflow_serving.apis import prediction_log_pb2

    sizes = []
    for record in tf.data.TFRecordDataset(warmup):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        assert log.predict_log.request.model_spec.signature_name == "serving_default"
        sizes.append(log.predict_log.request.inputs["examples"].tensor_shape.dim[0].size)
    assert sizes == list(exporter.WARMUP_BATCHES)
    config = open(os.path.join(base, "models.config")).read()
    assert f'base_path: "{os.path.abspath(base)}"' in config and "vr_ndt" in config



def test_a_version_below_the_newest_is_exported_with_a_warning(trained, tmp_path):
    base = str(tmp_path / "serving")
    assert exporter.export_saved_model(trained["single_ctr"], base, version=3).warnings == ()
    older = exporter.export_saved_model(trained["single_ctr"], base, version=2)
    assert older.version == 2 and os.path.isfile(os.path.join(older.path, "saved_model.pb"))
    assert [w for w in older.warnings if "below the newest" in w] == [
        "version 2 is below the newest, 3: TF Serving serves 3 (models.config: latest { "
        "num_versions: 1 }), not this one; export it above 3 to serve it"]

def test_an_export_base_that_is_another_things_directory_is_refused(exports, trained, tmp_path):
    """A model directory, a stats artifact or a version given as --export_base was written
    into (a version 1 beside config.json, a version inside a version) before 2026-12-07."""
    model_dir = trained["single_ctr"]
    before = sorted(os.listdir(model_dir))
    with pytest.raises(InputError, match=re.escape(f"--export_base {model_dir} holds ")
                       + ".*config.json.*: an export base holds only numbered versions"):
        exporter.export_saved_model(model_dir, model_dir)
    assert sorted(os.listdir(model_dir)) == before
    version = exports["single_ctr"].path
    with pytest.raises(InputError, match="holds .*saved_model.pb"):
        exporter.export_saved_model(model_dir, version)
    assert not os.path.exists(os.path.join(version, "2"))
    # What else a serving volume holds beside the versions is left alone.
    base = tmp_path / "serving"
    (base / "lost+found").mkdir(parents=True)
    (base / "monitoring.config").write_text("prometheus_config { enable: true }\n")
    assert exporter.export_saved_model(model_dir, str(base)).version == 1


def test_a_model_name_models_config_cannot_hold_and_gate_logs_without_a_gate_are_refused(
        trained, tmp_path):
    """A name with a quote or a line break made models.config invalid for TF Serving, and
    --gate_logs without --gate was ignored, without a word, before 2026-12-07."""
    model_dir = trained["single_ctr"]
    for name in ('a"b', "a\nb", "a\\b"):
        with pytest.raises(InputError, match="--model_name .* holds a quote, a backslash or a "
                                             "control character"):
            exporter.export_saved_model(model_dir, str(tmp_path / "serving"), model_name=name)
    with pytest.raises(InputError, match="--export_base .* holds a quote"):
        exporter.export_saved_model(model_dir, str(tmp_path / 'say "cheese"'), model_name="a")
    with pytest.raises(InputError, match="--gate_logs are the quality gate's logs: give --gate"):
        exporter.export_saved_model(model_dir, str(tmp_path / "serving"), gate_logs="x.csv")
    assert os.listdir(tmp_path) == []


def test_a_diverged_model_is_not_exported(trained, tmp_path, monkeypatch):
    """Weights of NaN (a --learning_rate=inf run, or one that diverged) were exported, and every
    score served and scored was NaN, without a word, before 2026-12-07."""
    load = exporter.load_trained

    def diverged(model_dir):
        model, description = load(model_dir)
        variable = next(v for v in model.network.weights if v.shape.num_elements() > 1)
        values = variable.numpy()
        values.flat[[0, -1]] = [np.nan, np.inf]
        variable.assign(values)
        return model, description

    monkeypatch.setattr(exporter, "load_trained", diverged)
    with pytest.raises(InputError, match=r"holds 2 NaN or infinite value\(s\) in .*: training "
                                         r"diverged"):
        exporter.export_saved_model(trained["single_ctr"], str(tmp_path / "serving"))
    assert not os.path.exists(tmp_path / "serving")


def test_interrupted_export_leaves_no_version_directory(trained, tmp_path, monkeypatch):
    base = tmp_path / "serving"
    write_warmup = exporter.write_warmup

    def interrupt(path, *args):
        # The last step before the rename: the SavedModel is complete, the warmup written.
        count = write_warmup(path, *args)
        staged = os.path.dirname(os.path.dirname(path))
        assert os.path.exists(os.path.join(staged, "saved_model.pb")) and count
        raise KeyboardInterrupt

    monkeypatch.setattr(exporter, "write_warmup", interrupt)
    with pytest.raises(KeyboardInterrupt):
        exporter.export_saved_model(trained["single_ctr"], str(base))
    monkeypatch.undo()
    assert os.listdir(base) == []
    second = exporter.export_saved_model(trained["single_ctr"], str(base), version=7)
    third = exporter.export_saved_model(trained["single_ctr"], str(base))
    assert (second.version, third.version) == (7, 8)
    assert sorted(glob.glob(str(base / "*"))) == [str(base / "7"), str(base / "8"),
                                                   str(base / "models.config")]


@pytest.mark.parametrize("fusion", FUSIONS, ids=["ple-log", "ple-linear", "vr_ndt-linear"])
def test_stored_fusion_is_the_formula_of_the_other_outputs(fusion, fusion_exports,
                                                           isolated_exports):
    """The exported score equals the formula computed by hand from the outputs beside it, in a
    process that has TensorFlow alone; the fusion is stored (signature and asset)."""
    _, weights, space = fusion
    result = fusion_exports[fusion]
    served = isolated_exports[fusion]
    assert "error" not in served, served.get("error")
    pairs = [(w.split("=")[0], float(w.split("=")[1])) for w in weights]
    for path in ("examples", "raw"):
        terms = [w * (np.log(np.maximum(served[f"{path}/{n}"].astype(np.float64), 1e-12))
                      if space == "log" else served[f"{path}/{n}"]) for n, w in pairs]
        np.testing.assert_allclose(served[f"{path}/score"], np.sum(terms, axis=0), rtol=1e-5,
                                   atol=1e-6)
    loaded = tf.saved_model.load(result.path)
    stored = loaded.signatures["score_fusion"](unused=tf.constant(0))
    assert stored["space"].numpy().decode() == space
    assert [n.decode() for n in stored["outputs"].numpy()] == [n for n, _ in pairs]
    np.testing.assert_allclose(stored["weights"].numpy(), [w for _, w in pairs])
    asset = json.load(open(os.path.join(result.path, "assets.extra", "score_fusion.json")))
    assert asset["formula"] == stored["formula"].numpy().decode() == result.fusion.formula()


def test_export_cli(trained, run, tmp_path):
    done = run("export.saved_model", f"--model_dir={trained['vr_ndt']}",
               f"--export_base={tmp_path / 'b'}", "--score_weights=valid_read=1,"
               "weighted_valid_read=0.5")
    assert done.returncode == 0, done.stderr
    assert "signature 'serving_default'" in done.stdout and "score float32" in done.stdout
    assert "score = 1*valid_read + 0.5*weighted_valid_read (linear space)" in done.stdout
    again = run("export.saved_model", f"--model_dir={trained['vr_ndt']}",
                f"--export_base={tmp_path / 'b'}", "--version=1")
    assert again.returncode == 1 and "error: export version 1 exists already" in again.stderr
    bad = run("export.saved_model", f"--model_dir={trained['vr_ndt']}",
              f"--export_base={tmp_path / 'c'}", "--score_weights=ctr=1")
    assert bad.returncode == 1 and "names ctr, which vr_ndt does not output" in bad.stderr
    assert bad.stderr.count("\n") == 1
    assert not os.path.exists(tmp_path / "c" / "1")
    nan = run("export.saved_model", f"--model_dir={trained['vr_ndt']}",
              f"--export_base={tmp_path / 'd'}", "--score_weights=valid_read=1,"
              "weighted_valid_read=nan")
    assert nan.returncode == 1 and nan.stderr.startswith(
        "error: the weight of weighted_valid_read must be a finite number of float32's range "
        "(|w| <= 3.403e+38), not nan\n")
    assert not os.path.exists(tmp_path / "d" / "1")


def test_a_score_weight_is_a_finite_number():
    """A nan or inf weight was stored and served: every score nan (or inf), no ranking; so
    was one past float32's range, stored as inf."""
    from ranking import fusion

    assert fusion.parse_weights(["ctr=1e3", "expected_dwell_seconds=-0.5"], "log").weights == (
        ("ctr", 1000.0), ("expected_dwell_seconds", -0.5))
    assert fusion.parse_weights(["ctr=-3.4e38"], "linear").weights == (("ctr", -3.4e38),)
    for value in ("nan", "inf", "-inf", "1e39", "-3.5e38"):  # (1e39 is inf in float32)
        with pytest.raises(InputError, match=re.escape(
                "the weight of ctr must be a finite number of float32's range (|w| <= "
                f"3.403e+38), not {float(value)}")):
            fusion.parse_weights([f"ctr={value}"], "linear")


def test_warmup_falls_back_to_default_examples_without_training_logs(tmp_path):
    from model_fixtures import tiny_spec

    examples = exporter.warmup_examples({"training": {"train": str(tmp_path / "gone/*.csv")}},
                                        tiny_spec(), rows=3)
    assert examples == [b"", b"", b""]  # empty tf.Examples: every feature takes its default


def test_the_projects_own_tfrecord_logs_replay_to_serving(exports, tmp_path):
    """Examples the project writes (here the simulator's TFRecord logs, numeric user ids and
    all) parse in serving_default as they are: ids are bytes everywhere."""
    from pipelines.simulate import world_config, writing

    config = world_config.SimConfig(num_users=60, num_items=40, days=1, seed=9)
    writing.write_simulation(config, str(tmp_path / "sim"), "tfrecord", plot=False)
    path = sorted(glob.glob(str(tmp_path / "sim/logs/*.tfrecord.gz")))[0]
    records = list(tf.data.TFRecordDataset(path, "GZIP").take(32).as_numpy_iterator())
    loaded = tf.saved_model.load(exports["vr_ndt"].path)
    served = loaded.signatures["serving_default"](examples=tf.constant(records))
    source = logs.open_logs(path)
    batch = next(iter(source.dataset(32)))
    raw = loaded.signatures["predict_raw"](**{
        name: batch[name] for name in loaded.signatures["predict_raw"]
        .structured_input_signature[1]})
    np.testing.assert_allclose(served["score"].numpy(), raw["score"].numpy(), rtol=1e-6)


def test_defaults_of_an_export_that_parsed_fixed_length_features(tmp_path):
    """Exports before 2026-12-05 13:26 parsed each feature as a `FixedLenFeature` with its
    default: `serving_defaults` reads those (`dense_defaults`), float32 as its shortest text;
    a SavedModel without a tf.Example parse gives {}."""

    class Old(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def serve(self, examples):
            parsed = tf.io.parse_example(examples, {
                "item_length": tf.io.FixedLenFeature([], tf.int64, default_value=7),
                "category": tf.io.FixedLenFeature([], tf.string, default_value="x"),
                "publish_age_hours": tf.io.FixedLenFeature([], tf.float32, default_value=0.1)})
            return {"score": tf.cast(parsed["item_length"], tf.float32)
                    + parsed["publish_age_hours"]}

    class Plain(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
        def plain(self, x):
            return {"score": x * 2}

    old, plain = Old(), Plain()
    tf.saved_model.save(old, str(tmp_path / "old"), signatures={"serving_default": old.serve})
    assert versions.read_feature_defaults(str(tmp_path / "old")) == {
        "item_length": 7, "category": "x", "publish_age_hours": 0.1}
    tf.saved_model.save(plain, str(tmp_path / "plain"),
                        signatures={"serving_default": plain.plain})
    assert versions.serving_defaults(str(tmp_path / "plain")) == {}


def test_a_feature_configs_default_is_read_alike_in_training_scoring_and_serving(
        small_world, exports, tmp_path):
    """A missing value (an empty CSV field, a feature a tf.Example leaves out) reads as the
    feature config's `default` in training's reader, in batch scoring (both engines) and in
    serving_default: all equal predict_raw fed the defaults by hand, which differs from 0 and
    "". The quality gate scores a baseline without those defaults with its own reading."""
    import pandas as pd
    from sklearn.metrics import roc_auc_score

    from export import gate
    from pipelines.score import scoring, scoring_beam
    from ranking import training
    from ranking.models import ModelConfig

    defaults = {"item_length": 600, "publish_age_hours": 24.5, "category": "sports"}
    feature_config = tmp_path / "features.json"
    feature_config.write_text(json.dumps({"features": {
        name: {"default": value} for name, value in defaults.items()}}))
    model_dir = str(tmp_path / "model")
    training.train_and_evaluate(training.TrainConfig(
        train=small_world["train"], stats=small_world["stats"], model=ModelConfig("vr_ndt"),
        batch_size=256, epochs=1, steps_per_epoch=5, progress="none",
        feature_config=str(feature_config)), model_dir)

    frame = pd.read_csv(sorted(glob.glob(small_world["eval"]))[0], dtype=str,
                        keep_default_na=False).iloc[:40]
    holes = frame.copy()
    for k, name in enumerate(defaults):  # rows k, k + 3, ... lack feature k
        holes.loc[holes.index[k::3], name] = ""
    csv_path = str(tmp_path / "holes.csv")
    holes.to_csv(csv_path, index=False)
    filled = holes.copy()
    for name, value in defaults.items():
        filled.loc[filled[name] == "", name] = str(value)

    model, _ = exporter.load_trained(model_dir)
    spec = model.feature_spec
    read = next(iter(data.open_source(csv_path, spec).dataset(64, columns=spec.names)))
    np.testing.assert_array_equal(read["item_length"].numpy(),
                                  filled["item_length"].astype(np.int64))
    np.testing.assert_allclose(read["publish_age_hours"].numpy(),
                               filled["publish_age_hours"].astype(np.float32))
    assert [v.decode() for v in read["category"].numpy()] == list(filled["category"])
    # The same rows in TFRecord, each missing feature left out of its tf.Example.
    examples = []
    for _, row in holes.iterrows():
        example = tf.train.Example()
        kinds = dict(spec.dtypes, timestamp="int64", click="int64", dwell_time="float32")
        for name, kind in kinds.items():
            if row[name] == "":
                continue
            feature = example.features.feature[name]
            if kind == "string":
                feature.bytes_list.value.append(row[name].encode())
            elif kind == "int64":
                feature.int64_list.value.append(int(row[name]))
            else:
                feature.float_list.value.append(float(row[name]))
        examples.append(example.SerializeToString())
    tfrecord_path = str(tmp_path / "holes.tfrecord")
    with tf.io.TFRecordWriter(tfrecord_path) as writer:
        for example in examples:
            writer.write(example)
    from_records = next(iter(data.open_source(tfrecord_path, spec).dataset(64,
                                                                        columns=spec.names)))
    for name in defaults:
        np.testing.assert_array_equal(from_records[name].numpy(), read[name].numpy())

    result = exporter.export_saved_model(model_dir, str(tmp_path / "export"))
    with open(os.path.join(result.path, "assets.extra", "feature_defaults.json")) as handle:
        assert {k: v for k, v in json.load(handle).items() if k in defaults} == defaults
    loaded = tf.saved_model.load(result.path)
    raw = loaded.signatures["predict_raw"]

    def predict_raw(rows):
        inputs = {name: tf.constant(rows[name].to_numpy().astype(
            {"string": str, "int64": np.int64, "float32": np.float32}[spec[name].dtype]))
            for name in spec.names}
        return raw(**inputs)["score"].numpy()

    expected = predict_raw(filled)
    zeros = holes.copy()
    for name in ("item_length", "publish_age_hours"):
        zeros.loc[zeros[name] == "", name] = "0"
    assert np.abs(predict_raw(zeros) - expected).max() > 1e-4  # the defaults matter
    served = loaded.signatures["serving_default"](examples=tf.constant(examples))["score"]
    np.testing.assert_allclose(served.numpy(), expected, rtol=1e-5, atol=1e-7)
    for path in (csv_path, tfrecord_path):
        for engine, score_logs in (("local", scoring.score_logs),
                                   ("beam", scoring_beam.score_logs_beam)):
            out = str(tmp_path / f"scores_{engine}_{os.path.basename(path)}")
            score_logs(result.path, path, out, scoring.ScoreConfig())
            got = pd.read_csv(glob.glob(os.path.join(out, "00000-*.csv.gz"))[0])
            np.testing.assert_allclose(got["score"], expected, rtol=1e-5, atol=1e-7)
    # An export from before feature_defaults.json (2026-12-05) served the defaults already:
    # they are read from its serving_default graph, so batch scoring, and the gate with it as
    # the baseline, read a missing value as it serves it (before: as 0 or "").
    older = tmp_path / "older" / "1"
    shutil.copytree(result.path, older)
    os.remove(older / "assets.extra" / "feature_defaults.json")
    with open(os.path.join(result.path, "assets.extra", "feature_defaults.json")) as handle:
        assert versions.read_feature_defaults(str(older)) == json.load(handle)
    assert versions.serving_defaults(result.path) == versions.read_feature_defaults(result.path)
    out = str(tmp_path / "scores_older")
    scoring.score_logs(str(older), csv_path, out, scoring.ScoreConfig())
    got = pd.read_csv(glob.glob(os.path.join(out, "00000-*.csv.gz"))[0])
    np.testing.assert_allclose(got["score"], expected, rtol=1e-5, atol=1e-7)
    itself = exporter.export_saved_model(model_dir, str(tmp_path / "older"), baseline=str(older),
                                         gate="auc_ctr:0", gate_logs=csv_path)
    assert itself.gate["baseline"] == pytest.approx(itself.gate["candidate"], abs=1e-6)

    # The gate: the baseline (exported without defaults) reads a missing value as 0 or "".
    baseline = exports["vr_ndt"]
    base = tf.saved_model.load(baseline.path).signatures["predict_raw"]
    base_inputs = {name: tf.constant(zeros[name].to_numpy().astype(
        {tf.string: str, tf.int64: np.int64, tf.float32: np.float32}[spec_.dtype]))
        for name, spec_ in base.structured_input_signature[1].items()}
    base_scores = base(**base_inputs)["score"].numpy().reshape(-1)
    from ranking import model_dir as model_dir_lib

    labels = gate.labelled_rows(model_dir_lib.load_model_description(model_dir), csv_path, spec,
                                False).labels["click"]
    assert 0 < labels.sum() < len(labels)
    gated = exporter.export_saved_model(model_dir, str(tmp_path / "export"),
                                        baseline=baseline.path, gate="auc_ctr:1",
                                        gate_logs=csv_path)
    assert gated.gate["baseline"] == pytest.approx(roc_auc_score(labels, base_scores), abs=1e-6)
    assert gated.gate["candidate"] == pytest.approx(roc_auc_score(labels, expected), abs=1e-6)
    # Gate logs in TFRecord without item_length in any record: read as its default, said.
    without = str(tmp_path / "without_item_length.tfrecord")
    with tf.io.TFRecordWriter(without) as writer:
        for serialized in examples:
            example = tf.train.Example.FromString(serialized)
            if "item_length" in example.features.feature:
                del example.features.feature["item_length"]
            writer.write(example.SerializeToString())
    noted = exporter.export_saved_model(model_dir, str(tmp_path / "export"),
                                        baseline=baseline.path, gate="auc_ctr:1",
                                        gate_logs=without)
    assert noted.gate["notes"] == [
        "note: the model's feature(s) item_length have no value in any sampled record of the "
        "gate's logs (empty CSV fields, or left out of every tf.Example): read as their "
        "default there"]
    assert noted.warnings[0] == noted.gate["notes"][0].removeprefix("note: ")


def test_a_damaged_version_is_named_by_export_scoring_the_gate_and_the_online_mode(
        trained, small_world, run, tmp_path):
    """A version whose saved_model.pb was cut short, or whose variables/ is gone: exporting the
    next version warns and succeeds (it used to fail with a traceback after the new version was
    already in place, models.config unwritten); scoring it, gating on it and simulating it are
    one error line each."""
    base = tmp_path / "base"
    first = run("export.saved_model", f"--model_dir={trained['vr_ndt']}",
                f"--export_base={base}")
    assert first.returncode == 0, first.stderr
    with open(base / "1" / "saved_model.pb", "r+b") as handle:
        handle.truncate(1000)
    second = run("export.saved_model", f"--model_dir={trained['vr_ndt']}",
                 f"--export_base={base}")
    assert second.returncode == 0 and "Traceback" not in second.stderr, second.stderr
    assert (f"warning: version 1's saved_model.pb cannot be read (damaged or cut short: "
            f"{base / '1'})") in second.stderr, second.stderr
    assert os.path.isfile(base / "2" / "saved_model.pb")
    assert os.path.isfile(base / "models.config")

    # A graph that reads with weights that do not: a copy of version 2 without variables/.
    shutil.copytree(base / "2", tmp_path / "no_variables")
    shutil.rmtree(tmp_path / "no_variables" / "variables")
    for damaged in (base / "1", tmp_path / "no_variables"):
        scored = run("pipelines.score", f"--saved_model={damaged}",
                     f"--input={small_world['eval']}", f"--output={tmp_path / 'scored'}")
        assert scored.returncode == 1 and "Traceback" not in scored.stderr, scored.stderr
        assert scored.stderr.startswith(f"error: --saved_model {damaged} cannot be loaded as a "
                                        "SavedModel ("), scored.stderr
        assert scored.stderr.rstrip().endswith("it is damaged or incomplete; export it again "
                                               "with python -m export.saved_model")
        assert scored.stderr.count("\n") == 1, scored.stderr
        assert not os.path.exists(tmp_path / "scored")
        gated = run("export.saved_model", f"--model_dir={trained['vr_ndt']}",
                    f"--export_base={tmp_path / 'gated'}", f"--baseline={damaged}",
                    "--gate=auc_valid_read:0.01", f"--gate_logs={small_world['eval']}")
        assert gated.returncode == 1 and "Traceback" not in gated.stderr, gated.stderr
        assert f"error: --baseline {damaged} cannot be loaded as a SavedModel" in gated.stderr
        assert not os.path.exists(tmp_path / "gated" / "1")
    from online import policies

    with pytest.raises(InputError, match="cannot be loaded as a SavedModel"):
        policies.SavedModelPolicy(str(base / "1"))
    # A SavedModel of another tool (no predict_raw) as the baseline: named, not a KeyError.
    other = tmp_path / "other"
    tf.saved_model.save(tf.Module(), str(other))
    gated = run("export.saved_model", f"--model_dir={trained['vr_ndt']}",
                f"--export_base={tmp_path / 'gated'}", f"--baseline={other}",
                "--gate=auc_valid_read:0.01", f"--gate_logs={small_world['eval']}")
    assert gated.returncode == 1 and "Traceback" not in gated.stderr, gated.stderr
    assert (f"error: --baseline {other} is not an export of this project (it has no "
            "predict_raw signature)") in gated.stderr, gated.stderr


def test_a_feature_named_outside_python_identifiers_trains_exports_scores_and_gates(
        small_world, run, tmp_path):
    """Columns named `2device` and `publish-age` are features TensorFlow takes, but a loaded
    SavedModel calls them `arg_2device` and `publish_age`: scoring asked the logs for those
    columns, and the gate could not take such an export as its baseline. A column name
    TensorFlow cannot take (a space) is refused before training, naming the column."""
    import gzip

    renamed = {"user_device": "2device", "publish_age_hours": "publish-age"}
    logs = tmp_path / "logs"
    logs.mkdir()
    for path in sorted(glob.glob(small_world["train"]) + glob.glob(small_world["eval"])):
        with gzip.open(path, "rt") as handle:
            header, rest = handle.readline(), handle.read()
        for before, after in renamed.items():
            header = header.replace(before, after)
        with gzip.open(logs / os.path.basename(path), "wt") as handle:
            handle.write(header + rest)
    train, held_out = str(logs / "day-0[0-3].csv.gz"), str(logs / "day-0[4-5].csv.gz")
    stats = run("pipelines.stats", f"--input={train}", f"--output_dir={tmp_path / 'stats'}")
    assert stats.returncode == 0, stats.stderr
    trained = run("ranking.train", "--model=single_ctr", f"--train={train}",
                  f"--stats={tmp_path / 'stats'}", f"--model_dir={tmp_path / 'model'}",
                  "--batch_size=256", "--steps_per_epoch=3", "--progress=none")
    assert trained.returncode == 0, trained.stderr
    exported = run("export.saved_model", f"--model_dir={tmp_path / 'model'}",
                   f"--export_base={tmp_path / 'serving'}")
    assert exported.returncode == 0, exported.stderr
    served = tf.saved_model.load(str(tmp_path / "serving" / "1")).signatures["predict_raw"]
    assert {"arg_2device", "publish_age"} <= set(served.structured_input_signature[1])

    scores = {}
    for engine in ("local", "beam"):
        out = tmp_path / f"scored_{engine}"
        scored = run("pipelines.score", f"--saved_model={tmp_path / 'serving'}",
                     f"--input={held_out}", f"--output={out}", "--format=csv",
                     "--compress=false", f"--engine={engine}")
        assert scored.returncode == 0, scored.stderr
        scores[engine] = sorted(glob.glob(str(out / "*.csv")))
        assert scores[engine]
    assert [open(p).read() for p in scores["local"]] == [open(p).read() for p in scores["beam"]]
    # The scores are predict_raw's on the columns as named in the logs.
    first = scores["local"][0]
    with gzip.open(sorted(glob.glob(held_out))[0], "rt") as handle:
        rows = list(csv.DictReader(handle))[:50]
    columns = {name: [row[name] for row in rows]
               for name, (_, spec) in versions.signature_inputs(served).items()}
    arguments = {keyword: tf.constant(np.array(columns[name], spec.dtype.as_numpy_dtype)
                                      if spec.dtype != tf.string else columns[name])
                 for name, (keyword, spec) in versions.signature_inputs(served).items()}
    expected = served(**arguments)["score"].numpy()
    with open(first) as handle:
        got = np.array([float(row["score"]) for row in csv.DictReader(handle)][:50])
    np.testing.assert_allclose(got, expected, rtol=1e-6)

    # The same export as the gate's baseline: the candidate (the same model) passes.
    gated = run("export.saved_model", f"--model_dir={tmp_path / 'model'}",
                f"--export_base={tmp_path / 'serving'}", f"--baseline={tmp_path / 'serving'}",
                "--gate=auc_ctr:0", f"--gate_logs={held_out}")
    assert gated.returncode == 0, gated.stderr
    record = json.load(open(tmp_path / "serving" / "2" / exporter.GATE_FILE))
    assert record["candidate"] == pytest.approx(record["baseline"], abs=1e-6)

    spaced = tmp_path / "spaced.csv"
    with gzip.open(sorted(glob.glob(train))[0], "rt") as handle:
        spaced.write_text(handle.read().replace("2device", "user device", 1))
    stats = run("pipelines.stats", f"--input={spaced}", f"--output_dir={tmp_path / 'stats2'}")
    assert stats.returncode == 0, stats.stderr
    refused = run("ranking.train", "--model=single_ctr", f"--train={spaced}",
                  f"--stats={tmp_path / 'stats2'}", f"--model_dir={tmp_path / 'model2'}",
                  "--batch_size=256", "--steps_per_epoch=1", "--progress=none")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert refused.stderr.startswith(
        "error: column 'user device' cannot be a model feature as named"), refused.stderr
    assert '{"features": {"user device": {"exclude": true}}}' in refused.stderr
    assert not os.path.exists(tmp_path / "model2")
    # The advice holds: the column left out, the model trains.
    config = tmp_path / "features.json"
    config.write_text('{"features": {"user device": {"exclude": true}}}')
    excluded = run("ranking.train", "--model=single_ctr", f"--train={spaced}",
                   f"--stats={tmp_path / 'stats2'}", f"--model_dir={tmp_path / 'model2'}",
                   f"--feature_config={config}", "--batch_size=256", "--steps_per_epoch=1",
                   "--progress=none")
    assert excluded.returncode == 0, excluded.stderr


def test_relative_globs_are_read_from_where_training_ran_wherever_the_export_runs(
        small_world, run, tmp_path):
    """A model trained from one directory with relative --train/--eval globs and exported from
    another: the export read the globs from its own working directory, so its warmup read
    nothing (examples of default values, without a word) and its quality gate found no file,
    or another directory's files. config.json records where training ran; the globs stay as
    given (a resumed run compares them as before)."""
    here = tmp_path / "here"
    here.mkdir()
    train = os.path.relpath(small_world["train"], here)
    held_out = os.path.relpath(small_world["eval"], here)
    argv = ["ranking.train", "--model=single_ctr", f"--train={train}", f"--eval={held_out}",
            f"--stats={small_world['stats']}", "--model_dir=model", "--batch_size=256",
            "--steps_per_epoch=2", "--progress=none"]
    trained = run(*argv, cwd=here)
    assert trained.returncode == 0, trained.stderr
    config_path = here / "model" / "config.json"
    config = json.load(open(config_path))
    assert config["training"]["train"] == train and config["working_directory"] == str(here)

    elsewhere = tmp_path / "elsewhere" / "deeper"  # (the relative globs lead elsewhere here)
    elsewhere.mkdir(parents=True)
    exported = run("export.saved_model", "--model_dir=../../here/model", "--export_base=serving",
                   cwd=elsewhere)
    assert exported.returncode == 0 and "warning" not in exported.stderr, exported.stderr
    warmup = elsewhere / "serving" / "1" / "assets.extra" / exporter.WARMUP_FILE
    from tensorflow_serving.apis import prediction_log_pb2

    record = next(iter(tf.data.TFRecordDataset(str(warmup)).as_numpy_iterator()))
    log = prediction_log_pb2.PredictionLog.FromString(record)
    example = tf.train.Example.FromString(
        log.predict_log.request.inputs["examples"].string_val[0])
    assert "user_id" in example.features.feature  # a row of the training logs, not defaults
    # The gate's default logs (its --eval logs here), read where training ran.
    gated = run("export.saved_model", "--model_dir=../../here/model", "--export_base=serving",
                "--baseline=serving", "--gate=auc_ctr:0", cwd=elsewhere)
    assert gated.returncode == 0, gated.stderr
    gate_record = json.load(open(elsewhere / "serving" / "2" / exporter.GATE_FILE))
    assert gate_record["logs"] == small_world["eval"]

    # Logs that cannot be read at export: the warmup's default examples are said.
    config["training"]["train"] = "gone/*.csv.gz"
    with open(config_path, "w") as handle:
        json.dump(config, handle)
    exported = run("export.saved_model", "--model_dir=../../here/model", "--export_base=serving",
                   cwd=elsewhere)
    assert exported.returncode == 0, exported.stderr
    assert ("warning: the warmup requests are examples of default values: the training logs "
            f"{here / 'gone' / '*.csv.gz'} cannot be read here (no file matches") \
        in exported.stderr, exported.stderr
