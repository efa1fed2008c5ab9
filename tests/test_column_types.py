"""--column_types (`core.log_schema.ReadConfig`): a column's type given once, to the statistics
job, and read so by the label and training jobs from its artifact, and by the model after them.

The logs have what real logs have and inference from the first 1,000 rows gets wrong: codes with
leading zeros ("007" and "7" are different codes; as int64 both are 7) and a rating that is a
whole number on every sampled row and a decimal further down (an error as int64).
"""

import csv
import json
import os
import re

import pytest

from core import log_diagnosis, log_schema
from core.errors import InputError

DAY = 20_000 * 86_400
ROWS = 1_200  # past schema_inference.SAMPLE_ROWS: the decimal rating is on line 1,102
CODES = ["007", "7", "0042", "42"]


def write_log(path, rows=ROWS, day=0, columns=("code", "rating"), decimal=True):
    """A day's log; with `decimal`, the rating on line 1,102 is 3.5, else every rating whole."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["impression_id", "user_id", "item_id", "timestamp", "click",
                         "dwell_time", *columns])
        for k in range(rows):
            click = int(k % 3 == 0)
            extra = {"code": CODES[k % 4],
                     "rating": "3.5" if k == 1100 and decimal else str(k % 5)}
            writer.writerow([f"{day}-{k}", f"u{k % 40}", f"i{k % 30}", DAY + day * 86_400 + 60 * k,
                             click, round(3.0 + 7.5 * (k % 11), 3) if click else 0,
                             *[extra[c] for c in columns]])
    return str(path)


def write_examples(path, extras) -> str:
    """A TFRecord of one tf.Example per dict of `extras` ({feature: value}; a float is a
    float_list, an int an int64_list), each with the required columns of an unclicked row."""
    import tensorflow as tf

    def feature(value):
        if isinstance(value, float):
            return tf.train.Feature(float_list=tf.train.FloatList(value=[value]))
        if isinstance(value, int):
            return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    with tf.io.TFRecordWriter(str(path)) as writer:
        for k, extra in enumerate(extras):
            values = {"user_id": b"u", "item_id": b"i", "timestamp": DAY + k, "click": 0,
                      "dwell_time": 0.0, **extra}
            writer.write(tf.train.Example(features=tf.train.Features(
                feature={name: feature(v) for name, v in values.items()})).SerializeToString())
    return str(path)


@pytest.mark.parametrize("entries,expected,types", [
    ((), (), {}),
    (["zip:string", " rating : float32"], ("zip:string", "rating:float32"),
     {"zip": "string", "rating": "float32"}),
    # A name may hold a colon: the type follows the last one.
    (["a:b:int64"], ("a:b:int64",), {"a:b": "int64"}),
    (["user_id:string", "zip:string", "zip:string"], ("user_id:string", "zip:string"),
     {"user_id": "string", "zip": "string"}),
])
def test_entries_are_read_as_name_and_type(entries, expected, types):
    assert log_schema.parse_column_types(entries) == expected
    assert log_schema.ReadConfig(column_types=expected).types == types
    # Built in Python from the entries as written: read alike.
    assert log_schema.ReadConfig(column_types=tuple(entries)).types == types


@pytest.mark.parametrize("entries,message", [
    (["zip"], r"'zip' is not name:type"),
    (["zip:float64"], r"'zip:float64' is not name:type with a type among int64, float32, string"),
    ([":string"], r"':string' is not name:type"),
    (["click:string"], r"column 'click' is always int64"),
    (["item_id:int64"], r"column 'item_id' is always string"),
    (["zip:int64", "zip:string"], r"gives column 'zip' two types: int64 and string"),
    (["valid_read:int64"], r"'valid_read' is a label the label job writes"),
])
def test_bad_entries_are_refused_naming_them(entries, message):
    with pytest.raises(InputError, match=message):
        log_schema.parse_column_types(entries)
    with pytest.raises(InputError, match=message):  # built in Python: checked all the same
        log_schema.ReadConfig(column_types=tuple(entries))


@pytest.mark.parametrize("value,kind", [
    ("3.5", "float32"), ("-1e-3", "float32"), (".5", "float32"), ("5.0", "float32"),
    ("3e38", "float32"), ("abc", "string"),
    ("9223372036854775808", "string"),  # an integer past int64: float32 would merge neighbours
    ("1e39", "string"), ("-4e38", "string"),  # past float32's largest, 3.4e38
    ("nan", None), ("inf", None), ("-Infinity", None),  # no type reads them: write them empty
])
def test_the_suggested_type_is_the_one_that_reads_the_value(value, kind):
    assert log_diagnosis._type_that_reads(value) == kind


def labelled_columns(directory, fmt):
    """{column: [values as text]} of the label job's shards in `directory`."""
    import tensorflow as tf

    out = {"code": [], "rating": []}
    if fmt == "csv":
        for shard in sorted(directory.glob("*.csv")):
            with open(shard, newline="") as handle:
                for row in csv.DictReader(handle):
                    out["code"].append(row["code"])
                    out["rating"].append(float(row["rating"]))
        return out
    for shard in sorted(directory.glob("*.tfrecord")):
        for record in tf.data.TFRecordDataset(str(shard)):
            feature = tf.train.Example.FromString(record.numpy()).features.feature
            out["code"].append(feature["code"].bytes_list.value[0].decode())
            out["rating"].append(feature["rating"].float_list.value[0])
    return out


def test_given_to_the_statistics_job_the_types_reach_labels_and_the_model(run, tmp_path):
    logs = [write_log(tmp_path / f"day-{d}.csv", day=d) for d in range(2)]
    pattern = str(tmp_path / "day-*.csv")
    stats = tmp_path / "stats"

    # Inferred, the rating is int64 and its decimal on line 1,102 stops the job, which says
    # which flag reads it.
    refused = run("pipelines.stats", f"--input={pattern}", f"--output_dir={stats}",
                  "--engine=local")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert (f"{logs[0]}, line 1102, column 'rating': expected an integer (type inferred from "
            "the sampled first rows, which all fit it: give --column_types=rating:float32 to "
            "the statistics job, which keeps it for the label and training jobs, or write the "
            "column so that its first rows show its type") in refused.stderr, refused.stderr
    assert not stats.exists()

    done = run("pipelines.stats", f"--input={pattern}", f"--output_dir={stats}",
               "--engine=local", "--column_types=code:string,rating:float32")
    assert done.returncode == 0, done.stderr
    stats_json = json.loads((stats / "stats.json").read_text())
    assert stats_json["schema"]["given"] == {"code": "string", "rating": "float32"}
    assert stats_json["schema"]["dtypes"]["code"] == "string"
    assert stats_json["schema"]["dtypes"]["rating"] == "float32"
    # "007" and "7" are two codes: the distinct-value count sees the text (as int64: two).
    assert stats_json["feature_values"]["code"]["distinct"] == 4

    # The label job reads the codes as text, on both engines: its output carries them as written.
    for engine, fmt in (("local", "tfrecord"), ("beam", "csv")):
        labelled = tmp_path / f"labelled-{engine}"
        done = run("pipelines.label", f"--input={logs[0]}", f"--stats={stats}",
                   f"--output_dir={labelled}", f"--format={fmt}", "--compress=false",
                   "--plot=false", f"--engine={engine}")
        assert done.returncode == 0, done.stderr
        columns = labelled_columns(labelled, fmt)
        assert columns["code"] == [CODES[k % 4] for k in range(ROWS)], engine
        assert columns["rating"][1100] == 3.5 and columns["rating"][:5] == [0, 1, 2, 3, 4]

    # Training reads with the artifact's types, and the model keeps them for serving.
    model_dir = tmp_path / "model"
    done = run("ranking.train", "--model=single_ctr", f"--train={pattern}",
               f"--stats={stats}", f"--model_dir={model_dir}", "--batch_size=256",
               "--max_epochs=1", "--validation_days=0", "--progress=none")
    assert done.returncode == 0, done.stderr
    features = {f["name"]: f for f in json.loads((model_dir / "config.json").read_text())[
        "features"]}
    assert features["code"]["dtype"] == "string" and features["code"]["kind"] == "categorical"
    assert features["rating"]["dtype"] == "float32" and features["rating"]["kind"] == "numeric"


def test_without_the_flag_the_artifact_is_as_before(tmp_path):
    from core import stats_artifact
    from pipelines.stats import statistics

    write_log(tmp_path / "day-0.csv", decimal=False)
    stats = statistics.compute_stats(str(tmp_path / "day-0.csv"), str(tmp_path / "stats"),
                                     engine="local")
    assert "given" not in stats["schema"]
    assert stats["schema"]["dtypes"]["code"] == "int64"  # inferred: "007" reads as 7
    assert stats["feature_values"]["code"]["distinct"] == 2
    assert stats_artifact.load_artifact(str(tmp_path / "stats")).column_types == {}
    assert stats_artifact.given_column_types(str(tmp_path / "stats")) == {}


def test_a_type_from_the_artifact_that_held_out_logs_do_not_fit_is_named_so(run, tmp_path):
    train = write_log(tmp_path / "day-0.csv", decimal=False)
    held_out = write_log(tmp_path / "day-1.csv", day=1)  # the rating 3.5 on line 1,102
    stats = tmp_path / "stats"
    done = run("pipelines.stats", f"--input={train}", f"--output_dir={stats}",
               "--engine=local", "--column_types=rating:int64")
    assert done.returncode == 0, done.stderr
    origin = ("expected an integer (its type is given as int64 by the statistics job's "
              "--column_types, kept in its artifact: run that job with the type these values "
              "need), found '3.5'")
    result = run("ranking.train", "--model=single_ctr", f"--train={train}", f"--eval={held_out}",
                 f"--stats={stats}", f"--model_dir={tmp_path / 'model'}", "--batch_size=256",
                 "--max_epochs=1", "--validation_days=0", "--progress=none")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"{held_out}, line 1102, column 'rating': {origin}" in result.stderr, result.stderr
    # Found in the evaluation, after training: its checkpoint stays for the same command to
    # resume once the logs or the artifact are mended.
    assert os.listdir(tmp_path / "model" / "checkpoints")
    result = run("pipelines.label", f"--input={held_out}", f"--stats={stats}",
                 f"--output_dir={tmp_path / 'out'}", "--plot=false")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert f"{held_out}, line 1102, column 'rating': {origin}" in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


def test_the_label_job_names_a_given_column_its_logs_lack(run, tmp_path):
    write_log(tmp_path / "day-0.csv")
    stats = tmp_path / "stats"
    done = run("pipelines.stats", f"--input={tmp_path / 'day-0.csv'}", f"--output_dir={stats}",
               "--engine=local", "--column_types=code:string,rating:float32")
    assert done.returncode == 0, done.stderr
    other = write_log(tmp_path / "other.csv", columns=("rating",))
    result = run("pipelines.label", f"--input={other}", f"--stats={stats}",
                 f"--output_dir={tmp_path / 'out'}")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert (f"{other}: the stats artifact (the statistics job's --column_types) gives a type to "
            "column(s) 'code', which these logs do not have") in result.stderr, result.stderr
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("engine", ["local", "beam"])
def test_a_value_a_given_type_cannot_read_is_named_with_the_flag(run, tmp_path, engine):
    path = write_log(tmp_path / "day-0.csv")
    result = run("pipelines.stats", f"--input={path}", f"--output_dir={tmp_path / 'stats'}",
                 f"--engine={engine}", "--column_types=rating:int64")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert (f"{path}, line 1102, column 'rating': expected an integer (its type is given as "
            "int64 by --column_types), found '3.5'") in result.stderr, result.stderr
    assert not (tmp_path / "stats").exists()


def test_the_validation_jobs_take_the_flag(run, tmp_path):
    path = write_log(tmp_path / "day-0.csv")
    advice = "column 'rating': expected an integer (type inferred from the sampled first rows"
    refused = run("pipelines.validate.describe", f"--input={path}")
    assert refused.returncode == 1 and advice in refused.stderr, refused.stderr
    assert "--column_types=rating:float32" in refused.stderr
    done = run("pipelines.validate.describe", f"--input={path}",
               "--column_types=rating:float32,code:string")
    assert done.returncode == 0, done.stderr
    assert "1,200 rows" in done.stdout
    columns = {line.split()[0]: line.split()[1] for line in done.stdout.splitlines()
               if line.startswith("  ")}
    assert columns["code"] == "string" and columns["rating"] == "float32", done.stdout

    # TFDV's statistics (Beam workers) read with the flag too: the codes are text there.
    refused = run("pipelines.validate", f"--input={path}", f"--output_dir={tmp_path / 'v0'}")
    assert refused.returncode == 1 and advice in refused.stderr, refused.stderr
    assert not (tmp_path / "v0").exists()
    run("pipelines.validate", f"--input={path}", f"--output_dir={tmp_path / 'v1'}",
        "--column_types=rating:float32,code:string")
    report = (tmp_path / "v1" / "report.md").read_text()
    assert "| code | STRING |" in report and "| rating | FLOAT |" in report, report


def test_floats_read_as_an_integer_column_must_be_whole(tmp_path):
    """A converter that writes every number as a float_list: read as int64 (a model's type, or
    the flag's), whole values pass and a decimal is named, as in CSV (a cast dropped it)."""
    import numpy as np
    import tensorflow as tf

    from core import logs

    def write(path, ratings):
        return write_examples(path, [{"rating": float(r)} for r in ratings])

    def read(path):
        source = logs.open_logs(path, column_types={"rating": "int64"}, given_by="flag")
        try:
            return np.concatenate([b["rating"].numpy() for b in source.dataset(2)])
        except tf.errors.OpError as error:
            raise log_diagnosis.translate_error(error) from None

    got = read(write(tmp_path / "whole.tfrecord", [2.0, -3.0, 0.0, 40.0]))
    assert got.dtype == np.int64 and got.tolist() == [2, -3, 0, 40]
    bad = write(tmp_path / "decimal.tfrecord", [2.0, 2.5, 1.0])
    with pytest.raises(InputError, match=r"decimal\.tfrecord, record 2, column 'rating': "
                                         r"expected an integer, found 2\.5"):
        read(bad)
    huge = write(tmp_path / "huge.tfrecord", [2.0, 1.0, 1e20])  # whole, past int64: it wrapped
    with pytest.raises(InputError, match=r"huge\.tfrecord, record 3, column 'rating': "
                                         r"expected an integer, found 1e\+20"):
        read(huge)


def python_text(value) -> str:
    """The reference: Python's repr of the float32's shortest round-trip decimal (NumPy's
    unique digits), a whole value from 2^24 to 1e16 as its exact integer, 0 for -0 and
    subnormals."""
    import numpy as np

    value = np.float32(value)
    if value == 0 or abs(value) < np.finfo(np.float32).tiny:
        return "0.0"
    if value == np.round(value) and 2 ** 24 <= abs(value) < 1e16:
        return repr(float(value))
    return repr(float(np.format_float_positional(value, unique=True)))


def test_floats_read_as_text_are_written_as_python_writes_them():
    import numpy as np
    import tensorflow as tf

    from core import logs

    rng = np.random.default_rng(0)
    values = np.concatenate([
        rng.standard_normal(20_000) * 10.0 ** rng.integers(-12, 20, 20_000),
        np.round(rng.uniform(-100, 100, 5_000), 1),  # grades, prices: short decimals
        np.round(rng.uniform(0, 1e8, 5_000)),
        [5.6, 0.1, 12.99, 1e-4, 1e-5, 1234567, 16_777_217, 1e16, 1.5e16, -0.0, 3.4028235e38,
         1e-45, 2.5, -2.5, 100.0]]).astype(np.float32)
    got = [t.decode() for t in logs.float32_text(tf.constant(values)).numpy()]
    assert got == [python_text(v) for v in values]
    assert got[-15:-9] == ["5.6", "0.1", "12.99", "0.0001", "1e-05", "1234567.0"]
    back = np.array(got, dtype=np.float32)
    normal = np.abs(values) >= np.finfo(np.float32).tiny
    assert np.array_equal(back[normal], values[normal])  # each reads back to its value


def test_a_tfrecord_float_read_as_text_matches_the_csv_text(tmp_path):
    """A grade stored as a float_list and given the string type reads as the CSV of the same
    log holds it ("5.6"), so a model trained on one scores the other alike."""
    import numpy as np

    from core import logs

    grades = [5.6, 4.0, 12.99, 0.5]
    write_examples(tmp_path / "log.tfrecord", [{"grade": g} for g in grades])
    with open(tmp_path / "log.csv", "w") as handle:
        handle.write("user_id,item_id,timestamp,click,dwell_time,grade\n")
        handle.writelines(f"u,i,{DAY + k},0,0.0,{g}\n" for k, g in enumerate(grades))
    read = {}
    for name in ("log.tfrecord", "log.csv"):
        source = logs.open_logs(str(tmp_path / name), column_types={"grade": "string"},
                                given_by="flag")
        read[name] = np.concatenate([b["grade"].numpy() for b in source.dataset(8)]).tolist()
    assert read["log.tfrecord"] == read["log.csv"] == [b"5.6", b"4.0", b"12.99", b"0.5"]


def test_a_tfrecord_feature_first_seen_far_down_is_a_column(tmp_path, monkeypatch):
    """A tf.Example leaves a sparse feature out: one that first appears after the first
    1,000 records of each file is still found (up to 100,000 records of the first files); its
    earlier records read as the default, and a record that stores it with another kind is
    named by the reader (as any bad record past the first 1,000: scoring makes a dead letter
    of it)."""
    import numpy as np
    import tensorflow as tf

    from core import logs

    def write(path, rows, late_from, late_kind="float"):
        return write_examples(path, [
            {} if k < late_from else
            {"video_type": k / 2 if late_kind == "float" or k < late_from + 10 else k}
            for k in range(rows)])

    path = write(tmp_path / "late.tfrecord", 6_000, late_from=4_500)
    source = logs.open_logs(path)
    assert source.schema.dtypes["video_type"] == "float32"
    got = np.concatenate([b["video_type"].numpy() for b in source.dataset(1024)])
    assert got.tolist() == [0.0] * 4_500 + [k / 2 for k in range(4_500, 6_000)]
    # Past the first rows, sampling stops at SPARSE_SAMPLE_BYTES (records of article bodies
    # are large): with 2,000 records' worth, record 4,501 is not reached.
    from core import schema_inference

    record_bytes = os.path.getsize(path) / 6_000
    monkeypatch.setattr(schema_inference, "SPARSE_SAMPLE_BYTES", int(2_000 * record_bytes))
    assert "video_type" not in logs.open_logs(path).schema.dtypes
    monkeypatch.setattr(schema_inference, "SPARSE_SAMPLE_BYTES", int(4_000 * record_bytes))
    assert "video_type" in logs.open_logs(path).schema.dtypes
    mixed = write(tmp_path / "mixed.tfrecord", 6_000, late_from=4_500, late_kind="mixed")
    source = logs.open_logs(mixed)
    assert source.schema.dtypes["video_type"] == "float32"
    with pytest.raises(InputError, match=r"mixed\.tfrecord, record 4511, column 'video_type'"):
        try:
            for _ in source.dataset(1024):
                pass
        except tf.errors.OpError as error:
            raise log_diagnosis.translate_error(error) from None


@pytest.mark.parametrize("module", ["pipelines.stats", "pipelines.validate",
                                    "pipelines.validate.describe"])
@pytest.mark.parametrize("value,message", [
    ("zip", r"--column_types: 'zip' is not name:type with a type among int64, float32, string"),
    ("click:string", r"--column_types: column 'click' is always int64"),
    ("code:string,nope:float32", r"--column_types gives a type to column\(s\) 'nope', which "
                                 r"these logs do not have \(columns: impression_id, "),
])
def test_bad_flag_values_end_in_one_error_line(run, tmp_path, module, value, message):
    path = write_log(tmp_path / "day-0.csv", decimal=False)
    out = tmp_path / "out"
    result = run(module, f"--input={path}", f"--column_types={value}",
                 *([] if module.endswith("describe") else [f"--output_dir={out}"]),
                 *(["--engine=local"] if module == "pipelines.stats" else []))
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 and re.search("error: .*" + message, result.stderr), \
        result.stderr
    assert not out.exists()


def test_a_column_without_values_in_the_training_days_takes_the_stats_logs_type(tmp_path):
    """A sparse float rating given only since day 2: the stats job (days 0-2) types it
    float32; the training logs (days 0-1, every rating empty) read it so too, as CSV and as
    the label job's TFRecord shards of them (empty float lists), and the model makes a number
    of it, not a hashed word (before: text). TFRecord logs that never hold it do not gain it."""
    import tensorflow as tf

    from core import logs, stats_artifact
    from pipelines.label import labelling
    from pipelines.stats import statistics
    from ranking import data, features

    from model_fixtures import NUMERIC_STATS

    for day in range(3):  # ratings of 0.5 to 4.5 on day 2, none before
        path = write_log(tmp_path / f"day-{day}.csv", day=day, columns=("rating",))
        text = open(path).read().splitlines()
        open(path, "w").write("\n".join([text[0]] + [
            line.rsplit(",", 1)[0] + "," + (f"{k % 5}.5" if day == 2 else "")
            for k, line in enumerate(text[1:])]) + "\n")
    statistics.compute_stats(str(tmp_path / "day-*.csv"), str(tmp_path / "stats"))
    artifact = stats_artifact.load_artifact(str(tmp_path / "stats"))
    assert artifact.log_types["rating"] == "float32"
    early = str(tmp_path / "day-[01].csv")
    assert logs.open_logs(early).schema.dtypes["rating"] == "string"  # no artifact: text
    labelling.label_logs(early, str(tmp_path / "stats"), str(tmp_path / "shards"))
    record = next(iter(tf.data.TFRecordDataset(
        sorted((tmp_path / "shards").glob("*.tfrecord.gz"))[0], "GZIP")))
    rating = tf.train.Example.FromString(record.numpy()).features.feature["rating"]
    assert rating.WhichOneof("kind") == "float_list" and not rating.float_list.value
    left_out = write_examples(tmp_path / "early.tfrecord", [{"position": 1}] * 3)
    assert "rating" not in data.open_source(left_out, artifact=artifact).schema.dtypes
    for pattern in (early, str(tmp_path / "shards/*.tfrecord.gz")):
        schema = data.open_source(pattern, artifact=artifact).schema
        assert schema.dtypes["rating"] == "float32", pattern
        spec = features.build_feature_spec(schema, {**NUMERIC_STATS, "rating": {
            "mean": 1.0, "std": 1.0}}, None, ())
        assert spec["rating"].kind == "numeric", pattern


def test_the_statistics_job_names_ids_written_as_decimals(run, tmp_path):
    """pandas writes an integer column with a missing value as floats: item ids '530.0' in the
    statistics' logs are other items than the '530' of logs written otherwise."""
    def log(name, item_id):
        path = write_log(tmp_path / f"{name}.csv")
        with open(path, newline="") as handle:
            rows = list(csv.reader(handle))
        with open(path, "w", newline="") as handle:
            csv.writer(handle, lineterminator="\n").writerows(
                [rows[0]] + [row[:2] + [item_id(k)] + row[3:] for k, row in enumerate(rows[1:])])
        return path

    decimal = log("decimal", lambda k: f"{500 + k % 60}.0")
    done = run("pipelines.stats", f"--input={decimal}", f"--output_dir={tmp_path / 'stats'}",
               "--engine=local", "--column_types=code:string,rating:float32")
    assert done.returncode == 0, done.stderr
    # The artifact's item table holds the clicked items (every third row is a click): the 20
    # items 500, 503, ..., 557, each once. User ids 'u0'..'u39' are text, not named.
    assert re.search(r"warning: column 'item_id' holds integers written as decimals \(20 of the "
                     r"20 distinct ids read, such as '(5[0-5][0-9])\.0'\): .* write them as "
                     r"integers \('\1'\) name other items", done.stderr), done.stderr
    assert "user_id" not in done.stderr
    # Integers, one item padded on all its rows: the space is named, not the ids.
    whole = log("whole", lambda k: " 503" if k % 60 == 3 else str(500 + k % 60))
    done = run("pipelines.stats", f"--input={whole}", f"--output_dir={tmp_path / 'stats2'}",
               "--engine=local", "--column_types=code:string,rating:float32")
    assert done.returncode == 0 and "decimals" not in done.stderr, done.stderr
    assert ("warning: column 'item_id' holds ids with white space at an end (1 of the 20 "
            "distinct ids read, such as ' 503'): ids are text, read as written, so ' 503' and "
            "'503' are two items") in done.stderr, done.stderr
