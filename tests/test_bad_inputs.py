"""The bad-input catalogue (SPEC §11 and what users really feed) against every entry point that
reads logs: exit status, a message naming the problem, and no partial output.

Refused: each case ends in exit status 1 and one line `error: ...` naming the file (and line
and column where there is one), with no output directory and no temporary left behind.
Tolerated (documented in the README): CRLF line ends, a UTF-8 BOM, unicode ids, an enormous
field; they end in exit status 0. No case prints a traceback anywhere (the harness captures
the process's file descriptors, so Beam's and TensorFlow's own output counts too).

Scoring reads candidates (SPEC §8): only the model's features are required and checked, so
outcome problems (a missing or wrong click, dwell or timestamp) are not errors there, and a
row it cannot read is a dead letter, not a failure (SCORE_EXPECTED).
"""

import csv
import gzip
import io
import os
import re
import zlib

import pytest

from conftest import Lazy

HEADER = ["impression_id", "user_id", "item_id", "timestamp", "click", "dwell_time", "category"]
DAY = 20_000 * 86_400


def good_rows(n=60):
    rows = []
    for k in range(n):
        click = int(k % 3 == 0)
        rows.append([k, f"u{k % 7}", f"i{k % 5}", DAY + 60 * k, click,
                     round(3.0 + 7.5 * (k % 11), 3) if click else 0, ["news", "tech"][k % 2]])
    return rows


def write(path, rows, header=HEADER, newline="\n", encoding="utf-8", opener=open):
    with opener(path, "wt", newline="", encoding=encoding) as handle:
        writer = csv.writer(handle, lineterminator=newline)
        writer.writerow(header)
        writer.writerows(rows)


def with_value(row_index, column, value):
    def build(d):
        rows = good_rows()
        rows[row_index][HEADER.index(column)] = value
        write(d / "log.csv", rows)
        return str(d / "log.csv")
    return build


def build_missing_column(d):
    write(d / "log.csv", [r[:4] + r[5:] for r in good_rows()], HEADER[:4] + HEADER[5:])
    return str(d / "log.csv")


def build_empty(d):
    (d / "log.csv").write_bytes(b"")
    return str(d / "log.csv")


def build_header_only(d):
    write(d / "log.csv", [])
    return str(d / "log.csv")


def build_corrupt_gzip(d):
    write(d / "full.csv.gz", good_rows(4000), opener=gzip.open)
    data = (d / "full.csv.gz").read_bytes()
    os.remove(d / "full.csv.gz")
    (d / "log.csv.gz").write_bytes(data[: len(data) // 2])
    return str(d / "log.csv.gz")


def build_gzip_cut_after_a_flush(d):
    """A log shipper killed after a flush: the deflate stream breaks off at a byte boundary,
    with no final block and no trailer, its last line cut; TensorFlow reads it as whole. (Within the
    1,000 rows the schema's sample reads, Python's gzip would find the cut.)"""
    data = io.StringIO()
    write_to = csv.writer(data)
    write_to.writerow(HEADER)
    write_to.writerows(good_rows(1200))
    text = data.getvalue().encode()
    deflate = zlib.compressobj(wbits=31)
    cut = deflate.compress(text[:-7]) + deflate.flush(zlib.Z_SYNC_FLUSH)
    (d / "log.csv.gz").write_bytes(cut)
    return str(d / "log.csv.gz")


def build_not_gzip(d):
    (d / "log.csv.gz").write_bytes(b"impression_id,user_id\n1,2\n")
    return str(d / "log.csv.gz")


def build_corrupt_tfrecord(d):
    (d / "log.tfrecord").write_bytes(b"\x00" * 5 + b"this is not a TFRecord file" * 10)
    return str(d / "log.tfrecord")


def build_nan_feature_tfrecord(d):
    # A float feature a converter left NaN (pandas' missing value) on the fourth record.
    import tensorflow as tf

    with tf.io.TFRecordWriter(str(d / "log.tfrecord")) as writer:
        for k, row in enumerate(good_rows()):
            feature = {name: (tf.train.Feature(bytes_list=tf.train.BytesList(
                value=[str(value).encode()])) if name in ("user_id", "item_id", "category")
                else tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
                if name == "dwell_time"
                else tf.train.Feature(int64_list=tf.train.Int64List(value=[value])))
                for name, value in zip(HEADER, row)}
            feature["rating"] = tf.train.Feature(float_list=tf.train.FloatList(
                value=[float("nan") if k == 3 else 0.5 * k]))
            writer.write(tf.train.Example(features=tf.train.Features(
                feature=feature)).SerializeToString())
    return str(d / "log.tfrecord")


def build_glob_nothing(d):
    return str(d / "nothing-*.csv")


def build_directory(d):
    (d / "logs").mkdir()
    return str(d / "logs")


def build_unreadable(d):
    # A dangling link: the one unreadable file root cannot read either.
    os.symlink(d / "gone.csv", d / "log.csv")
    return str(d / "log.csv")


def build_duplicated_header(d):
    rows = good_rows()
    write(d / "log.csv", rows[:20] + [HEADER] + rows[20:])
    return str(d / "log.csv")


def build_extra_field(d):
    rows = good_rows()
    rows[7] = rows[7] + ["surplus"]
    write(d / "log.csv", rows)
    return str(d / "log.csv")


def build_stray_quote(d):
    # Python's csv module reads `a 5" screen` as one field; TensorFlow's parser refuses it.
    write(d / "log.csv", good_rows())
    lines = (d / "log.csv").read_text().splitlines(keepends=True)
    lines[6] = lines[6][: lines[6].rindex(",") + 1] + 'a 5" screen\n'
    (d / "log.csv").write_text("".join(lines))
    return str(d / "log.csv")


def build_quoted_line_break(d):
    # What pandas' to_csv writes for a title with a line break: a quoted field over two lines.
    rows = good_rows()
    rows[4][HEADER.index("category")] = "two\nlines"
    write(d / "log.csv", rows)
    return str(d / "log.csv")


def build_crlf(d):
    write(d / "log.csv", good_rows(), newline="\r\n")
    return str(d / "log.csv")


def build_bom(d):
    write(d / "log.csv", good_rows(), encoding="utf-8-sig")
    return str(d / "log.csv")


def build_unicode_ids(d):
    rows = good_rows()
    for k, row in enumerate(rows):
        row[1] = ["Zoë", "用户一", "👩‍💻", "Ωmega"][k % 4]
    write(d / "log.csv", rows)
    return str(d / "log.csv")


def build_cr_line_ends(d):
    write(d / "log.csv", good_rows(), newline="\r")  # Excel for Mac's "CSV (Macintosh)"
    return str(d / "log.csv")


def build_enormous_field(d):
    rows = good_rows()
    rows[3][HEADER.index("category")] = "x" * 2_000_000
    write(d / "log.csv", rows)
    return str(d / "log.csv")


# name -> (builder, pattern the error must contain, or None when tolerated)
CATALOGUE = {
    "missing column": (build_missing_column, "line 1: missing required column 'click'"),
    "wrong type": (with_value(4, "timestamp", "yesterday"),
                   "line 6, column 'timestamp': expected an integer, found 'yesterday'"),
    "click outside 0/1": (with_value(5, "click", 2), "line 7, column 'click': expected 0 or 1"),
    # TensorFlow's reader reads no '+' on an integer, which Python's int() takes.
    "plus-signed click": (with_value(5, "click", "+1"),
                          "line 7, column 'click': expected an integer (TensorFlow's reader "
                          "takes no '+' sign on an integer: write it without one), found '+1'"),
    # TensorFlow's reader ends lines at LF only: the whole file was one line (no rows).
    "CR line ends": (build_cr_line_ends, "log.csv: ends its lines with a carriage return (CR) "
                     "alone"),
    "timestamp in milliseconds": (with_value(4, "timestamp", (DAY + 240) * 1000),
                                  "line 6, column 'timestamp': expected unix seconds"),
    "negative timestamp": (with_value(4, "timestamp", -1),
                           "line 6, column 'timestamp': expected unix seconds (1970-01-01 UTC or "
                           "later), found -1"),
    "negative dwell": (with_value(3, "dwell_time", -1.5),
                       "line 5, column 'dwell_time': expected seconds >= 0"),
    "non-finite dwell": (with_value(3, "dwell_time", "nan"),
                         "line 5, column 'dwell_time': expected a finite number"),
    "dwell on unclicked row": (with_value(1, "dwell_time", 9.0),
                               "line 3, column 'dwell_time': expected 0 or empty on an unclicked"),
    "empty file": (build_empty, "log.csv: is empty (0 bytes)"),
    "header only": (build_header_only, "the input has no rows"),
    "corrupt gzip": (build_corrupt_gzip, "log.csv.gz: is corrupt or truncated"),
    "gzip cut after a flush": (build_gzip_cut_after_a_flush,
                               "log.csv.gz: is corrupt or truncated (the gzip stream stops "
                               "before its end marker"),
    "gzip name, not gzip": (build_not_gzip, "log.csv.gz: is named as gzip but is not gzip"),
    "corrupt tfrecord": (build_corrupt_tfrecord, "log.tfrecord, record 1: is corrupt or "
                         "truncated: 0 record(s) read, then corrupted record at 0"),
    "NaN feature in a tfrecord": (build_nan_feature_tfrecord,
                                  "log.tfrecord, record 4, column 'rating': expected a finite "
                                  "number, found nan"),
    "glob matching nothing": (build_glob_nothing, "no file matches"),
    "directory": (build_directory, "is a directory; expected log files"),
    # (Root reads every file: a link whose target is gone stands for one that cannot be read.)
    "dangling symbolic link": (build_unreadable, "log.csv: is a symbolic link to "),
    # The repeated header is among the sampled rows (impression_id, read as text, takes the
    # line): named as the header, not as a value of the wrong type.
    "duplicated header": (build_duplicated_header, "line 22: is the header again"),
    "extra field": (build_extra_field, "line 9: expected 7 fields as in the header, found 8"),
    "stray quote": (build_stray_quote,
                    "line 7, column 'category': a quote inside an unquoted field"),
    "quoted line break": (build_quoted_line_break,
                          "line 6, column 'category': a quote opens that does not close"),
    "CRLF line ends": (build_crlf, None),
    "UTF-8 BOM": (build_bom, None),
    "unicode ids": (build_unicode_ids, None),
    "enormous field": (build_enormous_field, None),
}
# "module:engine" is a module run with --engine=engine (the label job's Beam engine).
ENTRY_POINTS = ("pipelines.validate.describe", "pipelines.stats", "pipelines.label",
                "pipelines.label:beam", "pipelines.validate", "ranking.train", "pipelines.score")
# Scoring's own outcome where it differs: None (scored, exit 0), or the error's pattern. A file
# whose first records cannot be read at all (the corrupt TFRecord) is refused, as elsewhere:
# those rows set the column types.
SCORE_EXPECTED = {
    "missing column": None,  # click is an outcome: candidates need none
    "wrong type": None,  # timestamp is not a model feature
    "click outside 0/1": None,
    "plus-signed click": None,
    "timestamp in milliseconds": None,  # scoring never reads the timestamp
    "negative timestamp": None,
    "negative dwell": None,
    "non-finite dwell": None,
    "dwell on unclicked row": None,
    # A gzip file cut short: its complete rows are scored, the rest is one dead letter.
    "corrupt gzip": None,
    "gzip cut after a flush": None,
    "NaN feature in a tfrecord": None,  # rating is not the model's: not read (test_scoring)
    "duplicated header": None,  # every feature of that line is a string: a candidate row
    "extra field": None,  # a dead letter for line 9
    "stray quote": None,  # a dead letter for line 7
    "quoted line break": None,  # dead letters for both halves of the row
}
DEAD_LETTERS = {"corrupt gzip": ["unreadable from here to the end of the file"],
                "gzip cut after a flush": ["unreadable from here to the end of the file: is "
                                           "corrupt or truncated (Compressed file ended before "
                                           "the end-of-stream marker was reached)"],
                "extra field": ["expected 7 fields as in the header, found 8"],
                "stray quote": ["a quote inside an unquoted field ('a 5\" screen'); quote the "
                                "whole field and double the quotes inside it (column 'category')"],
                "quoted line break": ["a quote opens that does not close on this line",
                                      "a quote inside an unquoted field ('lines\"')"]}


# Training's own outcome where it differs: the cases train against the stats of logs without
# the column, which the feature spec needs before a row is read.
TRAIN_EXPECTED = {"NaN feature in a tfrecord": "feature 'rating': the stats artifact has no "
                                               "moments for it (the logs of its stats window "
                                               "lack the column"}


def expected(entry, case):
    if entry == "pipelines.score" and case in SCORE_EXPECTED:
        return SCORE_EXPECTED[case]
    if entry == "ranking.train" and case in TRAIN_EXPECTED:
        return TRAIN_EXPECTED[case]
    return CATALOGUE[case][1]


def argv_for(entry, pattern, out, stats, saved_model):
    if ":" in entry:
        module, engine = entry.split(":")
        return argv_for(module, pattern, out, stats, saved_model) + [f"--engine={engine}"]
    if entry == "pipelines.validate.describe":
        return [f"--input={pattern}"]
    if entry == "pipelines.label":
        return [f"--input={pattern}", f"--stats={stats}", f"--output_dir={out}", "--format=csv",
                "--plot=false"]
    if entry == "ranking.train":
        return [f"--train={pattern}", f"--stats={stats}", f"--model_dir={out}",
                "--model=single_ctr", "--batch_size=16", "--steps_per_epoch=2",
                "--progress=none"]
    if entry == "pipelines.score":
        return [f"--saved_model={saved_model}", f"--input={pattern}", f"--output={out}"]
    return [f"--input={pattern}", f"--output_dir={out}"]


@pytest.fixture(scope="module")
def results(tmp_path_factory, run):
    """Runs every case against an entry point, on first use (so `-k label` runs only the label
    entry points), through the `run` fixture (each case from the flags' defaults, output
    captured at the descriptors): results[entry] -> {case: (CompletedProcess, case dir)}."""
    root = tmp_path_factory.mktemp("catalogue")
    good = root / "good.csv"
    write(good, good_rows())
    stats = root / "stats"
    from pipelines.stats import statistics

    statistics.compute_stats(str(good), str(stats))

    def saved_model():
        from export import exporter
        from ranking import training
        from ranking.models import ModelConfig

        training.train_and_evaluate(training.TrainConfig(
            train=str(good), stats=str(stats), model=ModelConfig("single_ctr"), batch_size=16,
            steps_per_epoch=2, progress="none"), str(root / "model"))
        return exporter.export_saved_model(str(root / "model"), str(root / "serving")).path

    def run_entry(entry):
        model = saved_model() if entry == "pipelines.score" else None
        cases, dirs = [], []
        for name, (build, _) in CATALOGUE.items():
            # --input is a comma-separated list of globs: keep commas out of the paths.
            case_dir = (root / re.sub(r"[^A-Za-z0-9]+", "_", entry)
                        / re.sub(r"[^A-Za-z0-9]+", "_", name))
            case_dir.mkdir(parents=True)
            pattern = build(case_dir)
            cases.append(argv_for(entry, pattern, case_dir / "out", stats, model))
            dirs.append(case_dir)
        module = entry.split(":")[0]
        return {name: (run(module, *argv), case_dir)
                for name, argv, case_dir in zip(CATALOGUE, cases, dirs)}

    return Lazy(run_entry)


@pytest.mark.parametrize("entry", ENTRY_POINTS)
@pytest.mark.parametrize("case", list(CATALOGUE))
def test_catalogue(results, entry, case):
    result, case_dir = results[entry][case]
    pattern = expected(entry, case)
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    if pattern is None:
        assert result.returncode == 0, result.stderr
        if entry == "pipelines.score":
            with open(case_dir / "out" / "dead_letter.csv") as handle:
                letters = list(csv.DictReader(handle))
            if case in DEAD_LETTERS:
                assert len(letters) == len(DEAD_LETTERS[case]), letters
                for letter, reason in zip(letters, DEAD_LETTERS[case]):
                    assert reason in letter["reason"], (reason, letter)
                    assert letter["file"].endswith(("log.csv", "log.csv.gz", "log.tfrecord"))
            else:
                assert letters == [], letters
        return
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: "), result.stderr
    assert pattern in result.stderr, result.stderr
    assert "while running" not in result.stderr
    leftovers = [p for p in os.listdir(case_dir) if p == "out" or p.startswith(".out")]
    assert leftovers == [], leftovers


@pytest.mark.parametrize("module, int_flag", [
    ("pipelines.stats", "num_bins"), ("pipelines.validate", "max_domain_size"),
    ("pipelines.label", "batch_size"), ("pipelines.score", "batch_size"),
    ("ranking.train", "batch_size")])
def test_a_missing_required_flag_or_a_bad_flag_value_is_one_message_without_a_traceback(
        run, module, int_flag):
    # The Beam tools pass unknown flags on to Beam (their own parser); the others use absl's.
    missing = run(module)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr, missing.stderr
    assert "FATAL Flags parsing error:" in missing.stderr
    assert "must have a value other than None" in missing.stderr
    bad = run(module, f"--{int_flag}=abc")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr, bad.stderr
    assert f"flag --{int_flag}=abc" in bad.stderr


@pytest.mark.parametrize("flag, message", [
    ("--read_ahead_mb=-1", "--read_ahead_mb must be >= 0 (0: tf.data's own prefetch), not -1"),
    ("--shuffle_buffer=-5", "--shuffle_buffer must be >= 0 (0: no row shuffle, the files' order "
                            "only), not -5"),
    ("--train_cache_mb=-1", "--train_cache_mb must be >= 0 (0: no cache), not -1"),
    ("--learning_rate=-1", "--learning_rate must be > 0, not -1.0"),
    ("--validation_days=1 --min_steps=-1", "--min_steps must be >= 0, not -1"),
    ("--embedding_optimizer=adagrad --embedding_learning_rate=0",
     "--embedding_learning_rate must be > 0, not 0.0"),
    ("--negative_weight=-1", "--negative_weight must be >= 0 (a weight of the negatives' loss), "
                             "not -1.0"),
    ("--model=mmoe_orca --noorca", "--noorca: mmoe_orca is mmoe with ORCA; for mmoe without it, "
                                   "train --model=mmoe")])
def test_a_setting_out_of_range_is_refused_before_anything_is_read(run, tmp_path, flag,
                                                                     message):
    done = run("ranking.train", "--train=missing/*.csv", "--stats=missing",
               f"--model_dir={tmp_path / 'model'}", *flag.split())
    assert done.returncode == 1 and done.stderr.strip() == f"error: {message}", done.stderr
    assert not (tmp_path / "model").exists()


@pytest.mark.parametrize("engine", ["local", "beam"])
def test_an_id_that_is_not_utf8_past_the_sampled_rows_is_named_by_the_stats_job(run, tmp_path,
                                                                                engine):
    # The reader checks the encoding of the rows it samples for the column types; a stray
    # Latin-1 byte further down reaches the statistics job, whose tables are text.
    write(tmp_path / "log.csv", good_rows(1200))
    lines = (tmp_path / "log.csv").read_bytes().split(b"\n")
    assert lines[1102].startswith(b"1101,u2,")  # line 1103: a click with dwell 10.5 s
    lines[1102] = lines[1102].replace(b",u2,", b",u\xe92,")
    (tmp_path / "log.csv").write_bytes(b"\n".join(lines))
    result = run("pipelines.stats", f"--input={tmp_path / 'log.csv'}",
                 f"--output_dir={tmp_path / 'stats'}", f"--engine={engine}")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert (f"error: {tmp_path / 'log.csv'}, line 1103, column 'user_id': expected UTF-8 text, "
            "found b'u\\xe92'") in result.stderr, result.stderr
    assert not (tmp_path / "stats").exists()
