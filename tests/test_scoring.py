"""pipelines.score: one output row per readable input row, in order, equal to the model's
outputs; dead letters with reasons; atomic re-runs (SPEC §8)."""

import csv
import glob
import gzip
import io
import json
import os
import shutil
import zlib

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from core import log_files, log_writers, logs
from core.errors import InputError
from pipelines.score import scoring, scoring_beam


def score(saved_model, pattern, output, engine="local", **options):
    """Scores with the engine the CLI's --engine names."""
    config = scoring.ScoreConfig(**options)
    if engine == "beam":
        return scoring_beam.score_logs_beam(saved_model, pattern, output, config)
    return scoring.score_logs(saved_model, pattern, output, config)


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
    summary = score(os.path.dirname(export.path), ",".join(small_input), out,
                                 engine=engine)
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



@pytest.mark.parametrize("engine", ["local", "beam"])
def test_file_names_with_glob_characters_are_scored_as_named(exports, small_input, tmp_path,
                                                            engine):
    # The Beam engine's workers expanded each input path again as a glob: `d[1].csv` matched
    # `d1.csv`, whose rows were scored twice under the other file's name.
    inputs = tmp_path / "input"
    inputs.mkdir()
    shutil.copy(small_input[0], inputs / "d[1].csv")  # 300 rows
    shutil.copy(small_input[1], inputs / "d1.csv")  # 200 rows
    out = str(tmp_path / "scores[1]")
    summary = score(exports["vr_ndt"].path, str(inputs / "*.csv"), out,
                    engine=engine)
    assert summary["rows"] == 500
    assert [os.path.basename(f["input"]) for f in summary["files"]] == ["d1.csv", "d[1].csv"]
    assert [f["rows"] for f in summary["files"]] == [200, 300]
    for shard, source in ((f"{out}/00000-d1.csv.gz", small_input[1]),
                          (f"{out}/00001-d[1].csv.gz", small_input[0])):
        got = pd.read_csv(shard, dtype={"user_id": str, "item_id": str})
        assert got["impression_id"].tolist() == read_input(source)["impression_id"].tolist()

def test_tfrecord_input_and_output(exports, small_input, tmp_path):
    frame = read_input(small_input[0])
    source = logs.open_logs(small_input[0])
    batch = next(iter(source.dataset(1000)))
    tfrecord = str(tmp_path / "logs.tfrecord.gz")
    log_writers.write_tfrecord(tfrecord, {k: v.numpy() for k, v in batch.items()})
    out = str(tmp_path / "scores")
    score(exports["ctr_logdt"].path, tfrecord, out,
                       engine="local", fmt="tfrecord")
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
    summary = score(exports["vr_ndt"].path, str(path), out,
                                 engine=engine)
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
        score(exports["vr_ndt"].path, str(path), str(out),
                           engine="local", max_dead_letters=2)
    assert not out.exists() and not [p for p in os.listdir(tmp_path) if p.startswith(".")]


def test_the_dead_letter_limit_counts_the_whole_job(exports, small_input, tmp_path):
    """Two files with 2 bad rows each and a limit of 3: the local engine stops in the second
    file, at the job's 4th dead letter (not after scoring both, with 2 per file under it)."""
    lines = open(small_input[0]).read().splitlines()
    for name in ("a.csv", "b.csv"):
        dirty = list(lines)
        dirty[1:3] = [line + ",extra" for line in dirty[1:3]]
        (tmp_path / name).write_text("\n".join(dirty) + "\n")
    out = tmp_path / "scores"
    with pytest.raises(InputError, match=r"more than 3 unreadable rows \(the last") as caught:
        score(exports["vr_ndt"].path, str(tmp_path / "*.csv"), str(out),
                           engine="local", max_dead_letters=3)
    assert caught.value.file.endswith("b.csv") and caught.value.row == 3
    assert not out.exists()


@pytest.mark.parametrize("engine", ["local", "beam"])
def test_a_job_that_scores_no_row_fails_and_a_file_without_one_is_named(
        exports, small_input, tmp_path, run, engine):
    """A candidate file whose feature column is written as another type on every row (here
    position 'x'): under the dead-letter limit, but nothing scored is a failed job; beside a
    good file, the job succeeds and names the file that gave no row."""
    frame = read_input(small_input[1])
    frame["position"] = "x"
    bad = tmp_path / "bad.csv"
    frame.to_csv(bad, index=False)
    out = tmp_path / "scores"
    done = run("pipelines.score", f"--saved_model={exports['vr_ndt'].path}", f"--input={bad}",
               f"--output={out}", f"--engine={engine}")
    assert done.returncode == 1 and done.stderr.count("\n") == 1, done.stderr
    assert done.stderr.startswith(f"error: {bad}, line 2: no row could be scored: every row "
                                  "read is a dead letter (200 letters; the first: ")
    assert "found 'x'" in done.stderr and not out.exists()
    done = run("pipelines.score", f"--saved_model={exports['vr_ndt'].path}",
               f"--input={small_input[0]},{bad}", f"--output={out}", f"--engine={engine}")
    assert done.returncode == 0, done.stderr
    assert "scored 300 rows" in done.stdout
    assert (f"warning: 1 input file(s) have no scored row, only dead letters ({bad})"
            in done.stdout)
    assert json.load(open(out / "summary.json"))["files_without_a_scored_row"] == [str(bad)]


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
    log_writers.write_tfrecord(str(path), columns, compress=False)
    data = path.read_bytes()
    path.write_bytes(data[:-30])  # record 1500 cut short
    out = str(tmp_path / "scores")
    summary = score(exports["vr_ndt"].path, str(path), out,
                                 engine="local")
    with open(os.path.join(out, scoring.DEAD_LETTER)) as handle:
        letters = list(csv.DictReader(handle))
    assert [int(d["row"]) for d in letters] == [1500]
    assert letters[0]["reason"].startswith("unreadable from here to the end of the file")
    assert summary["rows"] == 1499
    got = pd.read_csv(os.path.join(out, "00000-logs.csv.gz"), dtype={"impression_id": str})
    ids = [i.decode() for i in columns["impression_id"]]
    assert got["impression_id"].tolist() == ids[:1499]



def test_tfrecords_the_schema_sample_cannot_read_are_dead_letters(exports, small_world,
                                                                  tmp_path):
    # Scoring sets unreadable records aside wherever they are; in the first records, which the
    # schema is sampled from, they failed the whole job (the same defect later: a dead letter).
    source = logs.open_logs(sorted(glob.glob(small_world["eval"]))[0])
    columns = {k: v.numpy() for k, v in next(iter(source.dataset(300))).items()}
    records = log_writers.serialize_examples(columns)
    as_float = tf.train.Example.FromString(records[0])
    position = as_float.features.feature["position"]
    value = position.int64_list.value[0]
    position.float_list.value.append(float(value))  # record 1: position stored as floats
    records[0] = as_float.SerializeToString()
    records[2] = b"garbage"  # record 3: not a tf.Example
    first = tmp_path / "a.tfrecord"
    with tf.io.TFRecordWriter(str(first)) as writer:
        for record in records[:200]:
            writer.write(record)
    second = tmp_path / "b.tfrecord"
    with tf.io.TFRecordWriter(str(second)) as writer:
        for record in records[200:]:
            writer.write(record)
    data = bytearray(second.read_bytes())
    data[12 + len(records[200])] ^= 0xFF  # record 1's data checksum: the file from there
    second.write_bytes(bytes(data))
    out = str(tmp_path / "scores")
    summary = score(exports["vr_ndt"].path, str(tmp_path / "*.tfrecord"), out, engine="local")
    with open(os.path.join(out, scoring.DEAD_LETTER)) as handle:
        letters = [(os.path.basename(d["file"]), int(d["row"]), d["reason"])
                   for d in csv.DictReader(handle)]
    assert [(name, row) for name, row, _ in letters] == [
        ("a.tfrecord", 1), ("a.tfrecord", 3), ("b.tfrecord", 1)]
    assert "position" in letters[0][2]
    assert summary["rows"] == 198
    got = pd.read_csv(os.path.join(out, "00000-a.csv.gz"), dtype={"impression_id": str})
    ids = [i.decode() for i in columns["impression_id"]]
    assert got["impression_id"].tolist() == ids[1:2] + ids[3:200]
    # Training still refuses such logs at once, naming the record.
    with pytest.raises(InputError, match="record 2, column 'position': is int64 here but float32"):
        logs.open_logs(str(first))

def _flush_cut(data: bytes, keep: int) -> bytes:
    """The first `keep` bytes of `data` gzipped and cut after a sync flush (a writer killed
    after a flush: no final block, no trailer)."""
    deflate = zlib.compressobj(wbits=31)
    return deflate.compress(data[:keep]) + deflate.flush(zlib.Z_SYNC_FLUSH)


def test_a_gzip_tfrecord_cut_after_a_flush_scores_its_whole_records(exports, small_world,
                                                                    tmp_path):
    """Cut at a record's end, TensorFlow reads the stream as whole; the check finds the cut:
    the records before it are scored, one dead letter at the first lost record."""
    source = logs.open_logs(sorted(glob.glob(small_world["eval"]))[0])
    columns = {k: v.numpy() for k, v in next(iter(source.dataset(1500))).items()}
    plain = tmp_path / "plain.tfrecord"
    log_writers.write_tfrecord(str(plain), columns, compress=False)
    data, end, records = plain.read_bytes(), 0, 0
    while records < 1200:  # framing: length (8 bytes), its CRC (4), the record, its CRC (4)
        end += 16 + int.from_bytes(data[end:end + 8], "little")
        records += 1
    path = tmp_path / "cut.tfrecord.gz"
    path.write_bytes(_flush_cut(data, end))
    read = sum(1 for _ in tf.data.TFRecordDataset(str(path), "GZIP"))
    assert read == 1200  # TensorFlow's reader sees no damage
    out = str(tmp_path / "scores")
    summary = score(exports["vr_ndt"].path, str(path), out, engine="local")
    with open(os.path.join(out, scoring.DEAD_LETTER)) as handle:
        [letter] = list(csv.DictReader(handle))
    assert int(letter["row"]) == 1201 and letter["reason"] == (
        "unreadable from here to the end of the file: is corrupt or truncated (the gzip stream "
        "stops before its end marker: the file was cut short, as by a writer stopped after a "
        "flush or a copy broken off)")
    assert summary["rows"] == 1200
    got = pd.read_csv(os.path.join(out, "00000-cut.csv.gz"),
                      dtype={"impression_id": str})
    assert got["impression_id"].tolist() == [i.decode() for i in
                                              columns["impression_id"][:1200]]


def test_a_tfrecord_cut_within_its_first_records_is_scored_to_the_cut(exports, small_world,
                                                                       tmp_path):
    """A small shard (100 records) cut short in record 61: sampling the kinds reads the 60
    whole records (the batch that held the break again, a record at a time) instead of refusing
    the job; scoring scores them and gives the rest one dead letter."""
    source = logs.open_logs(sorted(glob.glob(small_world["eval"]))[0])
    columns = {k: v.numpy() for k, v in next(iter(source.dataset(100))).items()}
    path = tmp_path / "small.tfrecord"
    log_writers.write_tfrecord(str(path), columns, compress=False)
    data, end = path.read_bytes(), 0
    for _ in range(60):
        end += 16 + int.from_bytes(data[end:end + 8], "little")
    path.write_bytes(data[:end + 20])  # into record 61
    out = str(tmp_path / "scores")
    summary = score(exports["vr_ndt"].path, str(path), out, engine="local")
    with open(os.path.join(out, scoring.DEAD_LETTER)) as handle:
        [letter] = list(csv.DictReader(handle))
    assert int(letter["row"]) == 61 and letter["reason"].startswith(
        "unreadable from here to the end of the file: is corrupt or truncated")
    assert summary["rows"] == 60


def test_damaged_gzip_files_among_others(log_3000, tmp_path):
    """Among whole files: a gzip file whose CRC fails (every byte decompresses, but nothing
    tells a damaged one apart: one letter at its first row, none of its rows read) and one cut
    after a flush mid-line (its complete lines read, one letter at the cut line, which
    TensorFlow's reader would have read cut short). The other files are read in full, as each
    file alone is."""
    from pipelines.score import reading

    frame, lines = log_3000
    text = ("\n".join(lines) + "\n").encode()
    (tmp_path / "a.csv").write_text("\n".join(lines[:1001]) + "\n")
    whole = bytearray(gzip.compress(text, mtime=0))
    whole[-8] ^= 0xFF  # the trailer's CRC-32
    (tmp_path / "b.csv.gz").write_bytes(bytes(whole))
    cut_at = text.index(b"\n", len(text) // 2) + 5  # five bytes into a line
    (tmp_path / "c.csv.gz").write_bytes(_flush_cut(text, cut_at))
    (tmp_path / "d.csv").write_text("\n".join(lines[:501]) + "\n")
    files = log_files.expand_inputs([str(tmp_path / n) for n in
                                     ("a.csv", "b.csv.gz", "c.csv.gz", "d.csv")])
    assert [log_files.gzip_damage(f) for f in files] == [
        None, "its gzip data is corrupt: incorrect data check", log_files.GZIP_CUT, None]
    clean = logs.open_logs(str(tmp_path / "a.csv"))
    args = (clean.schema, clean.stored_types, tuple(clean.schema.columns), 256)
    letters = []
    got = list(reading.read_scorable_files(files, *args, letters, 100))
    rows = {}
    for i, batch in got:
        rows.setdefault(i, []).extend(batch[logs.SOURCE_ROW].tolist())
    complete = text[:cut_at].count(b"\n") - 1  # data lines before the cut one
    assert rows == {0: list(range(2, 1002)), 2: list(range(2, complete + 2)),
                    3: list(range(2, 502))}
    assert [(os.path.basename(d.file), d.row) for d in letters] == [
        ("b.csv.gz", 2), ("c.csv.gz", complete + 2)]
    assert letters[0].reason == (
        "unreadable from here to the end of the file: is corrupt or truncated (its gzip data "
        "is corrupt: incorrect data check); none of its rows is scored")
    assert letters[1].reason.startswith("unreadable from here to the end of the file: is "
                                        "corrupt or truncated (Compressed file ended before")
    # Each file alone gives the same rows and letters.
    alone_letters = []
    alone = {i: [r for b in reading.read_scorable(f, *args, alone_letters, 100)
                 for r in b[logs.SOURCE_ROW].tolist()] for i, f in enumerate(files)}
    assert {i: r for i, r in alone.items() if r} == rows and alone_letters == letters
    # The other jobs refuse both, naming the file.
    for damaged, reason in ((files[1], "its gzip data is corrupt: incorrect data check"),
                            (files[2], log_files.GZIP_CUT)):
        with pytest.raises(InputError) as refused:
            log_files.check_gzip_files([files[0], damaged])
        assert str(refused.value) == f"{damaged.path}: is corrupt or truncated ({reason})"


def test_gzip_damage_against_pythons_gzip_and_tensorflows_reader(tmp_path):
    """The check passes exactly the streams that both Python's gzip module and TensorFlow's
    reader read whole and alike (whole, multi-member, one zero byte after the end); it finds a
    stream cut mid-block or after a flush (which TensorFlow reads without a word), a wrong CRC
    or length, and zero-byte padding TensorFlow's reader fails on (which Python's reads past)."""
    import tensorflow as tf

    text = b"".join(b"%d,%d\n" % (k, k * k) for k in range(20000))
    member = gzip.compress(text, mtime=0)
    second = gzip.compress(b"1,1\n", mtime=0)
    cases = {"whole": member, "two members": member + second, "one zero byte": member + b"\0",
             "padded": member + b"\0" * 9, "a zero byte between members": member + b"\0" + second,
             "cut mid-block": member[: len(member) // 2],
             "cut after a flush": _flush_cut(text, 70001),
             "wrong crc": member[:-8] + bytes([member[-8] ^ 1]) + member[-7:],
             "wrong length": member[:-1] + bytes([member[-1] ^ 1])}
    for name, data in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.csv.gz"
        path.write_bytes(data)
        try:
            python_lines = gzip.decompress(data).splitlines()
        except (EOFError, OSError, zlib.error):
            python_lines = None
        try:
            # Batches, not one Python iteration a line: the same lines, a read error the same.
            tf_lines = [line for batch in tf.data.TextLineDataset(str(path), "GZIP")
                        .batch(1 << 15).as_numpy_iterator() for line in batch.tolist()]
        except tf.errors.OpError:
            tf_lines = None
        damage = log_files.gzip_damage(log_files.LogFile(str(path), "csv", True))
        assert (damage is None) == (python_lines is not None and tf_lines == python_lines), (
            name, damage)
        if name.startswith("cut"):
            assert damage == log_files.GZIP_CUT
    assert log_files.gzip_damage(log_files.LogFile(str(tmp_path / "padded.csv.gz"), "csv",
                                                   True)).startswith(
        "9 zero bytes of padding after its gzip data, which Python's gzip and gzip -dc read "
        "past but TensorFlow's reader cannot; write it again without them: gzip -dc FILE | "
        "gzip > NEW")
    assert log_files.gzip_damage(log_files.LogFile(
        str(tmp_path / "a_zero_byte_between_members.csv.gz"), "csv", True)).startswith(
        "1 zero bytes of padding between two gzip members, which Python's gzip reads past but "
        "TensorFlow's reader and gzip -dc cannot; write it again with Python's")
    assert log_files.gzip_damage(log_files.LogFile(str(path), "csv", False)) is None


@pytest.mark.parametrize("engine", ["local", "beam"])
def test_candidates_need_only_the_models_features(exports, small_input, tmp_path, engine):
    """Rows without timestamp, click and dwell_time (candidates before any outcome) score
    exactly as the same rows of a log do."""
    frame = read_input(small_input[0])
    candidates = frame.drop(columns=["timestamp", "click", "dwell_time"])
    path = tmp_path / "candidates.csv"
    candidates.to_csv(path, index=False)
    out = str(tmp_path / "scores")
    summary = score(exports["vr_ndt"].path, str(path), out,
                                 engine=engine)
    assert summary["rows"] == len(frame) and summary["dead_letters"] == 0
    got = pd.read_csv(os.path.join(out, "00000-candidates.csv.gz"), dtype={"user_id": str})
    assert got["impression_id"].tolist() == frame["impression_id"].tolist()
    expected = expected_scores(exports["vr_ndt"], frame)
    np.testing.assert_allclose(got["score"], expected["score"], rtol=1e-5, atol=1e-7)
    # A feature the model needs is still required, with the column named.
    without = candidates.drop(columns=["position"])
    without.to_csv(tmp_path / "no_position.csv", index=False)
    with pytest.raises(InputError, match="missing required column 'position'"):
        score(exports["vr_ndt"].path, str(tmp_path / "no_position.csv"),
                           str(tmp_path / "scores2"), engine=engine)


def test_a_csv_feature_column_empty_on_every_row_is_named_as_a_sparse_one(exports, small_input,
                                                                         tmp_path):
    """A CSV whose `item_length` column is empty on every row (a failed join upstream) scores
    each row with its default, as a TFRecord without the feature does, and the summary names
    it; a column empty on some rows only is not named."""
    frame = read_input(small_input[0]).head(1000)
    path = tmp_path / "blank.csv"
    frame.assign(item_length="").to_csv(path, index=False)
    summary = score(exports["vr_ndt"].path, str(path), str(tmp_path / "scores"), engine="local")
    assert summary["features_in_no_sampled_record"] == ["item_length"]
    assert summary["rows"] == len(frame) and summary["dead_letters"] == 0
    got = pd.read_csv(tmp_path / "scores" / "00000-blank.csv.gz", dtype={"user_id": str})
    expected = expected_scores(exports["vr_ndt"], frame.assign(item_length=0.0))
    np.testing.assert_allclose(got["score"], expected["score"], rtol=1e-5, atol=1e-7)
    some = frame.astype({"item_length": object})
    some.loc[some.index[::2], "item_length"] = ""
    some.to_csv(tmp_path / "some.csv", index=False)
    summary = score(exports["vr_ndt"].path, str(tmp_path / "some.csv"), str(tmp_path / "s2"),
                    engine="local")
    assert summary["features_in_no_sampled_record"] == []


@pytest.mark.parametrize("engine", ["local", "beam"])
def test_tfrecord_candidates_without_a_sparse_feature_score_it_as_its_default(
        exports, small_input, tmp_path, engine, run):
    """A tf.Example leaves out a feature it has no value for: TFRecord candidates in which no
    record has `item_length` score as the model does with it at its default (0), as
    serving_default does, and the summary names it; ids stay required."""
    frame = read_input(small_input[0])
    batch = next(iter(logs.open_logs(small_input[0]).dataset(1000)))
    columns = {k: v.numpy() for k, v in batch.items()
               if k not in ("item_length", "timestamp", "click", "dwell_time")}
    path = str(tmp_path / "candidates.tfrecord.gz")
    log_writers.write_tfrecord(path, columns)
    out = str(tmp_path / "scores")
    summary = score(exports["vr_ndt"].path, path, out, engine=engine)
    assert summary["rows"] == len(frame) and summary["dead_letters"] == 0
    assert summary["features_in_no_sampled_record"] == ["item_length"]
    got = pd.read_csv(os.path.join(out, "00000-candidates.csv.gz"), dtype={"user_id": str})
    expected = expected_scores(exports["vr_ndt"], frame.assign(item_length=0.0))
    np.testing.assert_allclose(got["score"], expected["score"], rtol=1e-5, atol=1e-7)
    assert np.abs(expected["score"] - expected_scores(exports["vr_ndt"], frame)["score"]).max() > 1e-4
    told = run("pipelines.score", f"--saved_model={exports['vr_ndt'].path}", f"--input={path}",
               f"--output={tmp_path / 'scores_cli'}", f"--engine={engine}")
    assert told.returncode == 0, told.stderr
    assert ("warning: the model's feature(s) item_length have no value in any sampled record "
            "of the input") in told.stdout
    log_writers.write_tfrecord(str(tmp_path / "no_user.tfrecord.gz"),
                               {k: v for k, v in columns.items() if k != "user_id"})
    with pytest.raises(InputError, match="missing required feature 'user_id'"):
        score(exports["vr_ndt"].path, str(tmp_path / "no_user.tfrecord.gz"),
              str(tmp_path / "scores2"), engine=engine)


@pytest.mark.parametrize("engine", ["local", "beam"])
def test_impression_ids_go_out_as_they_came_in(exports, small_input, tmp_path, engine):
    """impression_id is text: leading zeros, 20-digit ids (past int64) and, after 1,000 rows of
    integers, ids with letters are written as read, and never make a row a dead letter."""
    frame = read_input(small_input[0])
    many = pd.concat([frame] * 4, ignore_index=True).iloc[:1100].copy()
    ids = [f"{k:08d}" for k in range(400)] + [str(18446744073709551616 + k) for k in range(600)]
    many["impression_id"] = ids + [f"x{k}" for k in range(100)]
    path = tmp_path / "ids.csv"
    many.to_csv(path, index=False)
    out = str(tmp_path / "scores")
    summary = score(exports["vr_ndt"].path, str(path), out, engine=engine)
    assert summary["rows"] == len(many) and summary["dead_letters"] == 0
    got = pd.read_csv(os.path.join(out, "00000-ids.csv.gz"), dtype=str, keep_default_na=False)
    assert got["impression_id"].tolist() == many["impression_id"].tolist()


@pytest.mark.parametrize("engine", ["local", "beam"])
def test_dwell_bin_outputs_are_one_column_per_bin_or_a_float_list(exports, small_input,
                                                                 tmp_path, engine):
    export = exports["mmoe"]
    frame = read_input(small_input[1])
    expected = expected_scores(export, frame)
    bins = expected["dwell_probs"].shape[1]
    out = str(tmp_path / "csv")
    score(export.path, small_input[1], out, engine=engine)
    got = pd.read_csv(os.path.join(out, "00000-part-1.csv.gz"))
    probs = got[[f"dwell_probs_{k}" for k in range(bins)]].to_numpy()
    np.testing.assert_allclose(probs, expected["dwell_probs"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(got["expected_ndt"], expected["expected_ndt"], rtol=1e-5,
                               atol=1e-6)
    out = str(tmp_path / "tfrecord")
    score(export.path, small_input[1], out,
                       engine=engine, fmt="tfrecord")
    records = list(tf.data.TFRecordDataset(os.path.join(out, "00000-part-1.tfrecord.gz"),
                                           "GZIP").as_numpy_iterator())
    stored = np.array([tf.train.Example.FromString(r).features.feature["dwell_probs"]
                       .float_list.value for r in records])
    np.testing.assert_allclose(stored, expected["dwell_probs"], rtol=1e-5, atol=1e-6)


# Streaming shards, one-pass dead letters, the batched Beam engine ---------------------------------
def corrupt_rows(lines, rows, seed=0):
    """Corrupts data lines `rows` (CSV line numbers, the header being line 1) in turn four ways;
    returns {row: (the corrupted text, what its dead letter's reason must say)}."""
    header = lines[0].split(",")
    position, age = header.index("position"), header.index("publish_age_hours")
    done = {}
    for k, row in enumerate(rows):
        fields = lines[row - 1].split(",")
        kind = k % 4
        if kind == 0:
            text, reason = lines[row - 1] + ",extra", f"expected {len(header)} fields"
        elif kind == 1:
            fields[position] = "x"
            text, reason = ",".join(fields), "found 'x' (column 'position')"
        elif kind == 2:
            fields[age] = "inf"
            text, reason = ",".join(fields), "expected a finite number, found inf"
        else:
            text, reason = ",".join(fields[:3]), "found 3"
        lines[row - 1] = text
        done[row] = (text, reason)
    return done


@pytest.fixture(scope="module")
def log_3000(small_world, tmp_path_factory):
    """3,000 rows of the evaluation logs as one plain CSV file (its lines, header first)."""
    frame = read_input(sorted(glob.glob(small_world["eval"]))[0]).iloc[:3000]
    assert len(frame) == 3000
    path = tmp_path_factory.mktemp("log_3000") / "clean.csv"
    frame.to_csv(path, index=False)
    return frame, open(path).read().splitlines()


def test_a_thousand_bad_rows_cost_one_extra_pass(exports, log_3000, tmp_path, monkeypatch):
    """1,000 bad rows of 3,000: every one is a dead letter with its reason and text, the other
    rows are scored in order, and the file is read by the fast reader twice (the file, then
    its clean copy) and once in Python, not once per bad row."""
    from pipelines.score import dead_letters

    export = exports["vr_ndt"]  # trained (reading logs) before the reads are counted
    frame, lines = log_3000
    lines = list(lines)
    rng = np.random.default_rng(7)
    bad_rows = sorted(rng.choice(np.arange(2, 3002), size=1000, replace=False).tolist())
    corrupted = corrupt_rows(lines, bad_rows)
    path = tmp_path / "dirty.csv"
    path.write_text("\n".join(lines) + "\n")
    passes = {"reader": 0, "python": 0}
    dataset, units = logs.LogSource.dataset, dead_letters._Units.__iter__

    def counted_dataset(self, *args, **kwargs):
        passes["reader"] += 1
        return dataset(self, *args, **kwargs)

    def counted_units(self):
        passes["python"] += 1
        return units(self)

    monkeypatch.setattr(logs.LogSource, "dataset", counted_dataset)
    monkeypatch.setattr(dead_letters._Units, "__iter__", counted_units)
    out = str(tmp_path / "scores")
    summary = score(export.path, str(path), out,
                                 engine="local", batch_size=256)
    assert passes == {"reader": 2, "python": 1}
    assert summary["rows"] == 2000 and summary["dead_letters"] == 1000
    with open(os.path.join(out, scoring.DEAD_LETTER)) as handle:
        letters = list(csv.DictReader(handle))
    assert [int(d["row"]) for d in letters] == bad_rows
    for letter in letters:
        text, reason = corrupted[int(letter["row"])]
        assert letter["raw"] == text and reason in letter["reason"], letter
        assert letter["file"] == str(path)
    keep = [i for i in range(3000) if i + 2 not in corrupted]
    got = pd.read_csv(os.path.join(out, "00000-dirty.csv.gz"), dtype={"user_id": str})
    assert got["impression_id"].tolist() == frame["impression_id"].iloc[keep].tolist()
    expected = expected_scores(export, frame.iloc[keep])
    np.testing.assert_allclose(got["score"], expected["score"], rtol=1e-5, atol=1e-7)
    # The limit stops the pass as soon as it is passed, naming the row past it.
    with pytest.raises(InputError, match=f"line {bad_rows[10]}: more than 10 unreadable rows"):
        score(export.path, str(path), str(tmp_path / "scores2"),
                           engine="local", max_dead_letters=10)


def test_one_reader_for_all_files_gives_each_files_own_batches_and_dead_letters(
        log_3000, small_input, tmp_path, monkeypatch):
    """`read_scorable_files` (the local engine's one pipeline over all files) against reading
    each file alone (`read_scorable`): the same batches, bit for bit, and the same dead
    letters, with bad rows first, last and in the middle of a file in the middle, a
    header-only file and a gzip file that breaks off before more files; clean files are read
    by one pipeline."""
    from pipelines.score import reading

    frame, lines = log_3000
    gz = tmp_path / "a.csv.gz"
    gz.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))
    (tmp_path / "b.csv").write_text(lines[0] + "\n")
    dirty = list(lines)
    corrupt_rows(dirty, [2, 700, 3001])
    (tmp_path / "c.csv").write_text("\n".join(dirty) + "\n")
    cut = gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)
    (tmp_path / "d.csv.gz").write_bytes(cut[: len(cut) // 2])
    patterns = [str(tmp_path / n) for n in ("a.csv.gz", "b.csv", "c.csv", "d.csv.gz")]
    clean_source = logs.open_logs(str(gz))  # the schema, as the model would fix it
    source = logs.LogSource(log_files.expand_inputs(patterns + small_input),
                            clean_source.schema, clean_source.stored_types, outcomes=False)
    columns = tuple(source.schema.columns)
    args = (source.schema, source.stored_types, columns, 256)

    alone, alone_dead = [], []
    for i, log_file in enumerate(source.files):
        alone += [(i, b) for b in reading.read_scorable(log_file, *args, alone_dead, 100)]
    together_dead = []
    together = list(reading.read_scorable_files(source.files, *args, together_dead, 100))
    assert [i for i, _ in together] == [i for i, _ in alone]
    assert {i for i, _ in together} == {0, 2, 3, 4, 5}  # b.csv has no rows
    for (_, got), (_, want) in zip(together, alone):
        for name in columns + (logs.SOURCE_ROW,):
            np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert together_dead == alone_dead
    assert [(os.path.basename(d.file), d.row) for d in together_dead][:3] == [
        ("c.csv", 2), ("c.csv", 700), ("c.csv", 3001)]
    assert together_dead[3].reason.startswith(reading.LOST)

    opened = []
    dataset = logs.LogSource.dataset
    monkeypatch.setattr(logs.LogSource, "dataset",
                        lambda self, *a, **k: opened.append(len(self.files)) or
                        dataset(self, *a, **k))
    clean = [source.files[k] for k in (0, 1, 4, 5)]
    rows = sum(len(b[logs.SOURCE_ROW]) for _, b in
               reading.read_scorable_files(clean, *args, [], 100))
    assert rows == 3000 + 300 + 200 and opened == [4]


def test_rows_the_reader_accepts_are_scored_and_quotes_are_judged_by_it(exports, log_3000,
                                                                        tmp_path):
    """The cheap test flags rows the reader may still accept (spaces around a number, quoted
    fields); those are scored. A quote the reader refuses is a dead letter naming its column."""
    frame, lines = log_3000
    lines = list(lines)
    header = lines[0].split(",")
    fields = lines[10].split(",")
    fields[header.index("publish_age_hours")] = " 2.5 "  # TensorFlow allows spaces in floats
    lines[10] = ",".join(fields)
    fields = lines[20].split(",")
    fields[header.index("category")] = '"news"'  # a quoted field: the same value
    lines[20] = ",".join(fields)
    fields = lines[30].split(",")
    fields[header.index("category")] = 'ne"ws'
    lines[30] = ",".join(fields)
    lines[40] = lines[40] + ",extra"  # makes the fast reader fail, so the rows are checked
    path = tmp_path / "quotes.csv"
    path.write_text("\n".join(lines) + "\n")
    out = str(tmp_path / "scores")
    summary = score(exports["vr_ndt"].path, str(path), out,
                                 engine="local")
    with open(os.path.join(out, scoring.DEAD_LETTER)) as handle:
        letters = list(csv.DictReader(handle))
    assert [int(d["row"]) for d in letters] == [31, 41]
    assert letters[0]["reason"].startswith("a quote inside an unquoted field ('ne\"ws')")
    assert letters[0]["reason"].endswith("(column 'category')")
    assert summary["rows"] == 2998
    got = pd.read_csv(os.path.join(out, "00000-quotes.csv.gz"))
    keep = [i for i in range(3000) if i + 2 not in (31, 41)]
    assert got["impression_id"].tolist() == frame["impression_id"].iloc[keep].tolist()


@pytest.mark.parametrize("share", [2, 5])
def test_corrupt_gzip_scores_its_readable_head(exports, log_3000, tmp_path, share):
    """Cut in half, or within the 1,000 rows that sample the column types (a night's small
    hourly shard): the rows before the cut are scored, the rest is one dead letter."""
    frame, lines = log_3000
    data = gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)
    path = tmp_path / "cut.csv.gz"
    path.write_bytes(data[: len(data) // share])
    out = str(tmp_path / "scores")
    summary = score(exports["vr_ndt"].path, str(path), out,
                                 engine="local")
    with open(os.path.join(out, scoring.DEAD_LETTER)) as handle:
        [letter] = list(csv.DictReader(handle))
    assert letter["reason"].startswith("unreadable from here to the end of the file: is "
                                       "corrupt or truncated")
    head = int(letter["row"]) - 2  # complete lines before the break
    assert (500 < head < 3000 if share == 2 else 100 < head < 1000) and summary["rows"] == head
    got = pd.read_csv(os.path.join(out, "00000-cut.csv.gz"))
    assert got["impression_id"].tolist() == frame["impression_id"].iloc[:head].tolist()


def test_tfrecord_bad_records_and_a_corrupt_tail_in_one_file(exports, small_world, tmp_path):
    """Records of the wrong kind, with two values or without user_id are dead letters in the
    reader's words; the cut tail after them is one more (it was lost before)."""
    source = logs.open_logs(sorted(glob.glob(small_world["eval"]))[0])
    columns = {k: v.numpy() for k, v in next(iter(source.dataset(1500))).items()}
    records = log_writers.serialize_examples(columns)

    def example(change):
        parsed = tf.train.Example.FromString(records[0])
        change(parsed.features.feature)
        return parsed.SerializeToString()

    # After the first 1,000 records, which set the column types.
    records[1099] = example(lambda f: f["position"].float_list.value.append(2.5))
    records[1199] = example(lambda f: f["position"].int64_list.value.append(3))
    records[1299] = example(lambda f: f.__delitem__("user_id"))
    # A NaN in a float feature (pandas' missing value, kept by a converter).
    records[1399] = example(lambda f: f["publish_age_hours"].float_list.value.__setitem__(
        0, float("nan")))
    path = tmp_path / "logs.tfrecord"
    with tf.io.TFRecordWriter(str(path)) as writer:
        for record in records:
            writer.write(record)
    path.write_bytes(path.read_bytes()[:-30])  # record 1500 cut short
    out = str(tmp_path / "scores")
    summary = score(exports["vr_ndt"].path, str(path), out,
                                 engine="local")
    with open(os.path.join(out, scoring.DEAD_LETTER)) as handle:
        letters = list(csv.DictReader(handle))
    assert [int(d["row"]) for d in letters] == [1100, 1200, 1300, 1400, 1500]
    assert "Data types don't match" in letters[0]["reason"]
    assert "position" in letters[0]["reason"]
    assert letters[1]["reason"] == "expected one value, found 2 (column 'position')"
    assert letters[2]["reason"] == ("expected a value, but the feature is missing "
                                    "(column 'user_id')")
    assert letters[3]["reason"] == ("expected a finite number, found nan "
                                    "(column 'publish_age_hours')")
    assert letters[4]["reason"].startswith("unreadable from here to the end of the file")
    assert summary["rows"] == 1495


def test_shards_written_batch_by_batch_have_the_bytes_of_one_write(tmp_path):
    rng = np.random.default_rng(0)
    columns = {"impression_id": np.arange(1000), "user_id": np.array(
        [f"u{k % 37}".encode() for k in range(1000)], dtype=object),
        "score": rng.random(1000).astype(np.float32),
        "dwell_probs": rng.random((1000, 3)).astype(np.float32)}
    header = scoring.csv_header(columns, {"dwell_probs": 3})
    for fmt in ("csv", "tfrecord"):
        for compress in (True, False):
            path = str(tmp_path / f"batched.{fmt}.{compress}")
            with scoring.ShardWriter(path, fmt, compress, header) as writer:
                for start in (0, 10, 500, 999):
                    end = {0: 10, 10: 500, 500: 999, 999: 1000}[start]
                    writer.write({k: v[start:end] for k, v in columns.items()})
            assert writer.rows == 1000
            whole = str(tmp_path / f"whole.{fmt}.{compress}")
            if fmt == "csv":
                flat = scoring.flatten_columns(columns)
                flat["user_id"] = np.char.decode(flat["user_id"].astype(bytes), "utf-8")
                log_writers.write_csv(whole, flat, decimals=scoring.CSV_DECIMALS,
                                      compress=compress)
            else:
                log_writers.write_tfrecord(whole, columns, compress=compress)
            if fmt == "csv" and compress:
                # Scoring compresses at level 1 (speed), log_writers at 6: the same text, and
                # the same bytes as one write of every row.
                assert (gzip.decompress(open(path, "rb").read())
                        == gzip.decompress(open(whole, "rb").read()))
                once = str(tmp_path / f"once.{fmt}.{compress}")
                with scoring.ShardWriter(once, fmt, compress, header) as writer:
                    writer.write(columns)
                assert open(path, "rb").read() == open(once, "rb").read()
            else:
                assert open(path, "rb").read() == open(whole, "rb").read(), (fmt, compress)
    assert sorted(os.listdir(tmp_path)) == sorted(  # no temporary left
        [f"{kind}.{fmt}.{c}" for kind in ("batched", "whole") for fmt in ("csv", "tfrecord")
         for c in (True, False)] + ["once.csv.True"])


@pytest.mark.parametrize("fmt", ["csv", "tfrecord"])
def test_beam_and_local_engines_write_the_same_bytes(exports, log_3000, small_input, tmp_path,
                                                     fmt):
    """Many batches (64 rows each), dead letters, a blank line, several files: the batched
    Beam engine's shards, dead letters and counts are the local engine's, byte for byte."""
    frame, lines = log_3000
    lines = list(lines)
    corrupt_rows(lines, [5, 77, 78, 1500, 3001])
    lines[999] = ""
    path = tmp_path / "dirty.csv"
    path.write_text("\n".join(lines) + "\n")
    pattern = ",".join([str(path)] + small_input)
    outputs = {}
    for engine in ("local", "beam"):
        out = str(tmp_path / engine)
        summary = score(exports["mmoe"].path, pattern, out,
            engine=engine, fmt=fmt, batch_size=64)
        outputs[engine] = {name: open(os.path.join(out, name), "rb").read()
                           for name in sorted(os.listdir(out)) if name != "summary.json"}
        summary.pop("engine")
        outputs[engine]["summary"] = summary
    assert outputs["local"] == outputs["beam"]
    assert outputs["local"]["summary"]["rows"] == 2994 + 500
    assert outputs["local"]["summary"]["dead_letters"] == 5


def test_background_writer_keeps_order_and_raises_the_writers_error():
    """InBackground hands batches to one thread in call order; an error of the writer reaches
    the caller (at a later call or at exit), and a caller's own error does not hang the exit
    even with the queue full."""
    from pipelines.score.scoring import InBackground

    written = []
    with InBackground(written.append, depth=1) as write:
        for k in range(50):
            write({"k": k})
    assert written == [{"k": k} for k in range(50)]

    def failing(columns):
        if columns["k"] == 3:
            raise OSError("disk full")
        written.append(columns)

    written.clear()
    with pytest.raises(OSError, match="disk full"):
        with InBackground(failing, depth=1) as write:
            for k in range(10):
                write({"k": k})
    assert written == [{"k": 0}, {"k": 1}, {"k": 2}]

    import threading
    import time

    gate = threading.Event()

    def slow(columns):
        gate.wait(5)

    with pytest.raises(KeyError):
        with InBackground(slow, depth=1) as write:
            write({"k": 0})
            write({"k": 1})  # waits in the queue while the first is being written
            threading.Timer(0.2, gate.set).start()
            started = time.perf_counter()
            raise KeyError("caller failed")
    assert time.perf_counter() - started < 5


@pytest.mark.parametrize("ids", [["u1", "ü-7", "", "x y"], ["a,b", 'say "hi"', "line\nbreak", "z"]])
def test_csv_rows_are_what_pandas_writes(ids):
    """format_csv_rows joins fields itself; pandas' to_csv (minimal quoting) of the same text
    columns is the reference, quoted ids included."""
    import pandas as pd

    from pipelines.score.scoring import format_csv_rows

    rows = len(ids)
    columns = {"impression_id": np.arange(rows, dtype=np.int64) * 1_000_003,
               "user_id": np.array([i.encode() for i in ids], dtype=object),
               "score": np.array([0.1, 1e-9, np.nan, 1.2345678e-4], dtype=np.float32),
               "dwell_probs": np.random.default_rng(0).random((rows, 3)).astype(np.float32)}
    # Each float as the shortest text Python reads back to the same float32 (repr of the
    # float32 value): no rounding, so small scores keep their digits.
    text = lambda values: [repr(float(v)) if not np.isfinite(v) else  # noqa: E731
                           str(np.float32(v)) for v in values]
    expected = pd.DataFrame({
        "impression_id": columns["impression_id"], "user_id": ids,
        "score": text(columns["score"]),
        **{f"dwell_probs_{k}": text(columns["dwell_probs"][:, k])
           for k in range(3)}}).to_csv(index=False, header=False, lineterminator="\n")
    got = format_csv_rows(columns).decode("utf-8")
    assert got == expected
    scores = [row[2] for row in csv.reader(io.StringIO(got))]
    assert scores[1] == "1e-09" and scores[3] == "0.00012345678"
    assert all(np.float32(s) == v or np.isnan(v) for s, v in zip(scores, columns["score"]))


@pytest.mark.parametrize("other_id", [b"plain", b"needs,quotes"])
def test_ids_that_are_not_utf8_go_out_as_they_came_in(other_id):
    """An id's bytes are written as read, whether or not its batch goes through pandas for
    quoting (the other id decides which path)."""
    from pipelines.score.scoring import format_csv_rows

    columns = {"user_id": np.array([b"u\xff\xfe-1", other_id], dtype=object),
               "score": np.array([0.5, 0.25], dtype=np.float32)}
    other = b'"needs,quotes"' if b"," in other_id else other_id
    assert format_csv_rows(columns) == b"u\xff\xfe-1,0.5\n" + other + b",0.25\n"
