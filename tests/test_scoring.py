"""pipelines.score: one output row per readable input row, in order, equal to the model's
outputs; dead letters with reasons; atomic re-runs (SPEC §8)."""

import csv
import glob
import gzip
import json
import os

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from pipelines import logs, scoring
from pipelines.errors import InputError


def read_input(path):
    return pd.read_csv(path, dtype={"user_id": str, "item_id": str}, keep_default_na=False)


def expected_scores(export, frame):
    """The SavedModel's predict_raw on the rows, computed here independently of the job."""
    loaded = tf.saved_model.load(export.path)
    raw = loaded.signatures["predict_raw"]
    inputs = {}
    for name, spec in raw.structured_input_signature[1].items():
        values = frame[name].to_numpy()
        inputs[name] = tf.constant(values.astype(str) if spec.dtype == tf.string
                                   else values.astype(spec.dtype.as_numpy_dtype))
    return {k: v.numpy() for k, v in raw(**inputs).items()}


@pytest.fixture(scope="module")
def small_input(small_world, tmp_path_factory):
    """Two small CSV files cut from the evaluation logs (300 and 200 rows)."""
    root = tmp_path_factory.mktemp("score_input")
    frame = read_input(sorted(glob.glob(small_world["eval"]))[0])
    paths = []
    for k, part in enumerate((frame.iloc[:300], frame.iloc[300:500])):
        path = str(root / f"part-{k}.csv")
        part.to_csv(path, index=False)
        paths.append(path)
    return paths


@pytest.mark.parametrize("engine", ["local", "beam"])
def test_scores_equal_the_model_row_for_row(exports, small_input, tmp_path, engine):
    export = exports["vr_ndt"]
    out = str(tmp_path / "scores")
    summary = scoring.score_logs(os.path.dirname(export.path), ",".join(small_input), out,
                                 scoring.ScoreConfig(engine=engine))
    assert summary["rows"] == 500 and summary["dead_letters"] == 0
    assert summary["saved_model"] == export.path  # the export base's newest version
    shards = sorted(glob.glob(os.path.join(out, "0000*-part-*.csv.gz")))
    assert [os.path.basename(s) for s in shards] == ["00000-part-0.csv.gz",
                                                     "00001-part-1.csv.gz"]
    for shard, path in zip(shards, small_input):
        got = pd.read_csv(shard, dtype={"user_id": str, "item_id": str})
        frame = read_input(path)
        assert list(got.columns) == ["impression_id", "user_id", "item_id", "score",
                                     "valid_read", "weighted_valid_read"]
        for column in ("impression_id", "user_id", "item_id"):
            assert got[column].tolist() == frame[column].tolist()
        expected = expected_scores(export, frame)
        for name in ("score", "valid_read", "weighted_valid_read"):
            np.testing.assert_allclose(got[name], expected[name], rtol=1e-5, atol=1e-7)
    assert open(os.path.join(out, scoring.DEAD_LETTER)).read().strip() == "file,row,reason,raw"


def test_tfrecord_input_and_output(exports, small_input, tmp_path):
    frame = read_input(small_input[0])
    source = logs.open_logs(small_input[0])
    batch = next(iter(source.dataset(1000)))
    tfrecord = str(tmp_path / "logs.tfrecord.gz")
    logs.write_tfrecord(tfrecord, {k: v.numpy() for k, v in batch.items()})
    out = str(tmp_path / "scores")
    scoring.score_logs(exports["ctr_logdt"].path, tfrecord, out,
                       scoring.ScoreConfig(engine="local", fmt="tfrecord"))
    [shard] = glob.glob(os.path.join(out, "00000-logs.tfrecord.gz"))
    parsed = [tf.train.Example.FromString(r.numpy())
              for r in tf.data.TFRecordDataset(shard, "GZIP")]
    assert len(parsed) == len(frame)
    got = np.array([e.features.feature["score"].float_list.value[0] for e in parsed])
    dwell = np.array([e.features.feature["dwell_seconds"].float_list.value[0] for e in parsed])
    expected = expected_scores(exports["ctr_logdt"], frame)
    np.testing.assert_allclose(got, expected["score"], rtol=1e-5)
    np.testing.assert_allclose(dwell, expected["dwell_seconds"], rtol=1e-5)
    ids = [e.features.feature["user_id"].bytes_list.value[0].decode() for e in parsed]
    assert ids == frame["user_id"].tolist()


@pytest.mark.parametrize("engine", ["local", "beam"])
def test_unreadable_rows_go_to_the_dead_letter_file(exports, small_input, tmp_path, engine):
    lines = open(small_input[0]).read().splitlines()
    # A click of 2 is not a scoring problem: outcome columns are never checked (row 5 is scored).
    lines[4] = lines[4].replace(",0,0.0,", ",2,0.0,", 1)
    assert ",2,0.0," in lines[4]
    bad = {40: lines[39] + ",extra",  # one field too many
           41: lines[40].split(",", 6)[0:6] and ",".join(
               lines[40].split(",")[:6] + ["x"] + lines[40].split(",")[7:]),  # position 'x'
           301: lines[300][: len(lines[300]) // 2]}  # the last line, cut short
    for number, text in bad.items():
        lines[number - 1] = text
    path = tmp_path / "dirty.csv"
    path.write_text("\n".join(lines) + "\n")
    out = str(tmp_path / "scores")
    summary = scoring.score_logs(exports["vr_ndt"].path, str(path), out,
                                 scoring.ScoreConfig(engine=engine))
    assert summary["rows"] == 300 - 3 and summary["dead_letters"] == 3
    with open(os.path.join(out, scoring.DEAD_LETTER)) as handle:
        letters = list(csv.DictReader(handle))
    assert [int(d["row"]) for d in letters] == [40, 41, 301]
    assert "expected 13 fields" in letters[0]["reason"]
    assert "position" in letters[1]["reason"] and "found 'x'" in letters[1]["reason"]
    assert [d["raw"] for d in letters] == [bad[n] for n in (40, 41, 301)]
    got = pd.read_csv(os.path.join(out, "00000-dirty.csv.gz"), dtype={"user_id": str})
    clean = read_input(small_input[0])
    keep = [i for i in range(300) if i + 2 not in bad]
    assert got["impression_id"].tolist() == clean["impression_id"].iloc[keep].tolist()
    expected = expected_scores(exports["vr_ndt"], clean.iloc[keep])
    np.testing.assert_allclose(got["score"], expected["score"], rtol=1e-5, atol=1e-7)


def test_too_many_dead_letters_fail_without_output(exports, small_input, tmp_path):
    lines = open(small_input[0]).read().splitlines()
    lines[1:4] = [line + ",extra" for line in lines[1:4]]
    path = tmp_path / "dirty.csv"
    path.write_text("\n".join(lines) + "\n")
    out = tmp_path / "scores"
    with pytest.raises(InputError, match="more than 2 unreadable rows"):
        scoring.score_logs(exports["vr_ndt"].path, str(path), str(out),
                           scoring.ScoreConfig(engine="local", max_dead_letters=2))
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".")]


def test_rerun_replaces_atomically_and_foreign_directories_are_refused(exports, small_input,
                                                                      tmp_path, run):
    out = tmp_path / "scores"
    for _ in range(2):
        done = run("pipelines.score", f"--saved_model={exports['single_ctr'].path}",
                   f"--input={small_input[1]}", f"--output={out}", "--engine=local")
        assert done.returncode == 0, done.stderr
        assert "scored 200 rows" in done.stdout
    assert sorted(os.listdir(out)) == ["00000-part-1.csv.gz", "dead_letter.csv", "summary.json"]
    assert json.load(open(out / "summary.json"))["rows"] == 200
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    refused = run("pipelines.score", f"--saved_model={exports['single_ctr'].path}",
                  f"--input={small_input[1]}", f"--output={foreign}", "--engine=local")
    assert refused.returncode == 1 and "refusing to overwrite" in refused.stderr
    assert os.listdir(foreign) == ["notes.txt"]
    with gzip.open(out / "00000-part-1.csv.gz", "rt") as handle:
        assert handle.readline().strip() == "impression_id,user_id,item_id,score,ctr"


def test_tfrecord_bad_record_and_corrupt_tail(exports, small_world, tmp_path):
    # 1,500 records: schema sampling reads the first 1,000, so the cut tail is met while scoring.
    source = logs.open_logs(sorted(glob.glob(small_world["eval"]))[0])
    columns = {k: v.numpy() for k, v in next(iter(source.dataset(1500))).items()}
    columns["click"][9] = 2  # record 10: an outcome, never checked when scoring
    path = tmp_path / "logs.tfrecord"
    logs.write_tfrecord(str(path), columns, compress=False)
    data = path.read_bytes()
    path.write_bytes(data[:-30])  # record 1500 cut short
    out = str(tmp_path / "scores")
    summary = scoring.score_logs(exports["vr_ndt"].path, str(path), out,
                                 scoring.ScoreConfig(engine="local"))
    with open(os.path.join(out, scoring.DEAD_LETTER)) as handle:
        letters = list(csv.DictReader(handle))
    assert [int(d["row"]) for d in letters] == [1500]
    assert letters[0]["reason"].startswith("unreadable from here to the end of the file")
    assert summary["rows"] == 1499
    got = pd.read_csv(os.path.join(out, "00000-logs.csv.gz"))
    ids = columns["impression_id"]
    assert got["impression_id"].tolist() == ids[:1499].tolist()


@pytest.mark.parametrize("engine", ["local", "beam"])
def test_candidates_need_only_the_models_features(exports, small_input, tmp_path, engine):
    """Rows without timestamp, click and dwell_time (candidates before any outcome) score
    exactly as the same rows of a log do."""
    frame = read_input(small_input[0])
    candidates = frame.drop(columns=["timestamp", "click", "dwell_time"])
    path = tmp_path / "candidates.csv"
    candidates.to_csv(path, index=False)
    out = str(tmp_path / "scores")
    summary = scoring.score_logs(exports["vr_ndt"].path, str(path), out,
                                 scoring.ScoreConfig(engine=engine))
    assert summary["rows"] == len(frame) and summary["dead_letters"] == 0
    got = pd.read_csv(os.path.join(out, "00000-candidates.csv.gz"), dtype={"user_id": str})
    assert got["impression_id"].tolist() == frame["impression_id"].tolist()
    expected = expected_scores(exports["vr_ndt"], frame)
    np.testing.assert_allclose(got["score"], expected["score"], rtol=1e-5, atol=1e-7)
    # A feature the model needs is still required, with the column named.
    without = candidates.drop(columns=["position"])
    without.to_csv(tmp_path / "no_position.csv", index=False)
    with pytest.raises(InputError, match="missing required column 'position'"):
        scoring.score_logs(exports["vr_ndt"].path, str(tmp_path / "no_position.csv"),
                           str(tmp_path / "scores2"), scoring.ScoreConfig(engine=engine))


@pytest.mark.parametrize("engine", ["local", "beam"])
def test_dwell_bin_outputs_are_one_column_per_bin_or_a_float_list(exports, small_input,
                                                                 tmp_path, engine):
    export = exports["mmoe"]
    frame = read_input(small_input[1])
    expected = expected_scores(export, frame)
    bins = expected["dwell_probs"].shape[1]
    out = str(tmp_path / "csv")
    scoring.score_logs(export.path, small_input[1], out, scoring.ScoreConfig(engine=engine))
    got = pd.read_csv(os.path.join(out, "00000-part-1.csv.gz"))
    probs = got[[f"dwell_probs_{k}" for k in range(bins)]].to_numpy()
    np.testing.assert_allclose(probs, expected["dwell_probs"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["expected_ndt"], expected["expected_ndt"], rtol=1e-5,
                               atol=1e-6)
    out = str(tmp_path / "tfrecord")
    scoring.score_logs(export.path, small_input[1], out,
                       scoring.ScoreConfig(engine=engine, fmt="tfrecord"))
    records = list(tf.data.TFRecordDataset(os.path.join(out, "00000-part-1.tfrecord.gz"),
                                           "GZIP").as_numpy_iterator())
    stored = np.array([tf.train.Example.FromString(r).features.feature["dwell_probs"]
                       .float_list.value for r in records])
    np.testing.assert_allclose(stored, expected["dwell_probs"], rtol=1e-5, atol=1e-6)
