"""--column_types (`core.log_schema.ReadConfig`): a column's type given once, to the statistics
job, and read so by the label and training jobs from its artifact, and by the model after them.

The logs have what real logs have and inference from the first 1,000 rows gets wrong: codes with
leading zeros ("007" and "7" are different codes; as int64 both are 7) and a rating that is a
whole number on every sampled row and a decimal further down (an error as int64).
"""

import csv
import json

import pytest

from core import log_diagnosis, log_schema
from core.errors import InputError

DAY = 20_000 * 86_400
ROWS = 1_200  # past log_schema.SAMPLE_ROWS: the decimal rating is on line 1,102
CODES = ["007", "7", "0042", "42"]


def write_log(path, rows=ROWS, day=0, columns=("code", "rating")):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["impression_id", "user_id", "item_id", "timestamp", "click",
                         "dwell_time", *columns])
        for k in range(rows):
            click = int(k % 3 == 0)
            extra = {"code": CODES[k % 4], "rating": "3.5" if k == 1100 else str(k % 5)}
            writer.writerow([f"{day}-{k}", f"u{k % 40}", f"i{k % 30}", DAY + day * 86_400 + 60 * k,
                             click, round(3.0 + 7.5 * (k % 11), 3) if click else 0,
                             *[extra[c] for c in columns]])
    return str(path)


@pytest.mark.parametrize("entries,expected", [
    ((), ()),
    (["zip:string", " rating : float32"], ("zip:string", "rating:float32")),
    (["a:b:int64"], ("a:b:int64",)),  # a name may hold a colon: the type follows the last one
    (["user_id:string", "zip:string", "zip:string"], ("user_id:string", "zip:string")),
])
def test_entries_are_read_as_name_and_type(entries, expected):
    assert log_schema.parse_column_types(entries) == expected
    assert log_schema.ReadConfig(column_types=expected).types == dict(
        e.rsplit(":", 1) for e in expected)


@pytest.mark.parametrize("entries,message", [
    (["zip"], r"'zip' is not name:type"),
    (["zip:float64"], r"'zip:float64' is not name:type with a type among int64, float32, string"),
    ([":string"], r"':string' is not name:type"),
    (["click:string"], r"column 'click' is always int64"),
    (["item_id:int64"], r"column 'item_id' is always string"),
    (["zip:int64", "zip:string"], r"gives column 'zip' two types: int64 and string"),
])
def test_bad_entries_are_refused_naming_them(entries, message):
    with pytest.raises(InputError, match=message):
        log_schema.parse_column_types(entries)


@pytest.mark.parametrize("value,kind", [
    ("3.5", "float32"), ("-1e-3", "float32"), (".5", "float32"),
    ("abc", "string"), ("nan", "string"), ("inf", "string"),
    ("9223372036854775808", "string"),  # an integer past int64: float32 would merge neighbours
])
def test_the_suggested_type_is_the_one_that_reads_the_value(value, kind):
    assert log_diagnosis._type_that_reads(value) == kind


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
            "the sampled first rows, which all fit it: give the statistics job "
            "--column_types=rating:float32, which the label and training jobs take from its "
            "artifact") in refused.stderr, refused.stderr
    assert not stats.exists()

    done = run("pipelines.stats", f"--input={pattern}", f"--output_dir={stats}",
               "--engine=local", "--column_types=code:string,rating:float32")
    assert done.returncode == 0, done.stderr
    schema = json.loads((stats / "stats.json").read_text())["schema"]
    assert schema["given"] == {"code": "string", "rating": "float32"}
    assert schema["dtypes"]["code"] == "string" and schema["dtypes"]["rating"] == "float32"
    # "007" and "7" are two codes: the distinct-value count sees the text.
    assert json.loads((stats / "stats.json").read_text())["feature_values"]["code"][
        "distinct"] == 4

    # The label job reads the codes as text: the TFRecord carries them as written.
    labelled = tmp_path / "labelled"
    done = run("pipelines.label", f"--input={logs[0]}", f"--stats={stats}",
               f"--output_dir={labelled}", "--format=tfrecord", "--compress=false",
               "--plot=false")
    assert done.returncode == 0, done.stderr
    import tensorflow as tf

    codes, ratings = [], []
    for shard in sorted(labelled.glob("*.tfrecord")):
        for record in tf.data.TFRecordDataset(str(shard)):
            example = tf.train.Example.FromString(record.numpy())
            codes.append(example.features.feature["code"].bytes_list.value[0].decode())
            ratings.append(example.features.feature["rating"].float_list.value[0])
    assert codes == [CODES[k % 4] for k in range(ROWS)]
    assert ratings[1100] == 3.5 and ratings[:5] == [0.0, 1.0, 2.0, 3.0, 4.0]

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
    assert (f"{other}: --column_types gives a type to column(s) 'code', which these logs do not "
            "have") in result.stderr, result.stderr
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
    refused = run("pipelines.validate.describe", f"--input={path}")
    assert refused.returncode == 1 and "column 'rating'" in refused.stderr, refused.stderr
    done = run("pipelines.validate.describe", f"--input={path}",
               "--column_types=rating:float32,code:string")
    assert done.returncode == 0, done.stderr
    assert "1,200 rows" in done.stdout
    columns = {line.split()[0]: line.split()[1] for line in done.stdout.splitlines()
               if line.startswith("  ")}
    assert columns["code"] == "string" and columns["rating"] == "float32", done.stdout
