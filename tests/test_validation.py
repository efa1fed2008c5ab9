"""Data validation: drift between simulator settings, new categories, the curated schema, and
--schema on the stats and label jobs (SPEC §9)."""

import dataclasses
import gzip
import os

import numpy as np
import pandas as pd
import pytest

from core.errors import InputError
from pipelines.simulate import simulator, world_config, writing
from pipelines.validate import validation

BASE = world_config.SimConfig(num_users=1500, num_items=800, days=4, seed=11)


@pytest.fixture(scope="module")
def worlds(tmp_path_factory):
    root = tmp_path_factory.mktemp("validation")
    writing.write_simulation(BASE, str(root / "base"), plot=False)
    # The same world with attractiveness raised: about twice the CTR.
    writing.write_simulation(dataclasses.replace(BASE, b0=BASE.b0 + 0.85), str(root / "ctr2"),
                             plot=False)
    # Day 3 again, with a tenth of the rows in a category the schema has never seen.
    frame = pd.read_csv(root / "base/logs/day-03.csv.gz", dtype=str, keep_default_na=False)
    frame.loc[frame.index % 10 == 0, "category"] = "weather"
    os.makedirs(root / "newcat")
    with gzip.open(root / "newcat/day-03.csv.gz", "wt", newline="") as handle:
        frame.to_csv(handle, index=False)
    reference = validation.generate_statistics(str(root / "base/logs/day-0[0-1].csv.gz"),
                                               str(root / "reference.pb"))
    schema = validation.infer_schema(reference)
    return root, reference, schema


def anomalies(root, pattern, schema, baseline):
    stats = validation.generate_statistics(str(root / pattern), str(root / "tmp.pb"))
    return validation.anomaly_lines(validation.validate(stats, schema, baseline))


def test_statistics_count_rows_and_columns(worlds):
    root, reference, _ = worlds
    frame = pd.concat(pd.read_csv(root / f"base/logs/day-0{d}.csv.gz") for d in (0, 1))
    dataset = reference.datasets[0]
    assert dataset.num_examples == len(frame)
    names = {f.path.step[0] for f in dataset.features}
    # Every column but the impression id, a key unique on every row (not profiled), and the
    # log dwell of clicks derived from the logs.
    assert "impression_id" in frame.columns and frame["impression_id"].is_unique
    assert names == set(frame.columns) - {"impression_id"} | {validation.LOG_DWELL_OF_CLICKS}
    features = {f.path.step[0]: f for f in dataset.features}
    assert features["click"].num_stats.mean == pytest.approx(frame["click"].mean(), rel=1e-9)
    # ln(1 + dwell) on clicked rows, missing on the others (NumPy on pandas' reading).
    log_dwell = features[validation.LOG_DWELL_OF_CLICKS].num_stats
    clicked = frame["click"] == 1
    assert log_dwell.common_stats.num_non_missing == clicked.sum() > 0
    assert log_dwell.common_stats.num_missing == (~clicked).sum()
    expected = np.log1p(frame.loc[clicked, "dwell_time"].to_numpy())
    assert log_dwell.mean == pytest.approx(expected.mean(), rel=1e-9)
    assert (log_dwell.min, log_dwell.max) == pytest.approx((expected.min(), expected.max()))


def test_curated_schema(worlds):
    _, _, schema = worlds
    tfdv = validation.tfdv()
    click = tfdv.get_feature(schema, "click")
    assert (click.int_domain.min, click.int_domain.max) == (0, 1)
    dwell = tfdv.get_feature(schema, "dwell_time")
    assert dwell.float_domain.min == 0 and dwell.float_domain.disallow_nan
    for name in ("user_id", "item_id", "timestamp", "click", "dwell_time"):
        assert tfdv.get_feature(schema, name).presence.min_fraction == 1.0
    category = tfdv.get_feature(schema, "category")
    assert set(tfdv.get_domain(schema, "category").value) == set(simulator.CATEGORIES)
    assert category.drift_comparator.infinity_norm.threshold == 0.05
    assert not tfdv.get_feature(schema, "timestamp").HasField("drift_comparator")
    assert not tfdv.get_feature(schema, "user_id").HasField("drift_comparator")


def test_a_schema_made_when_impression_ids_were_profiled_still_validates(worlds):
    """A schema inferred before impression ids were left out of the statistics holds the column
    as required; the logs' statistics, which no longer profile it, pass it all the same, and
    a column the schema requires that the logs lack is still an anomaly."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    root, reference, schema = worlds
    older = schema_pb2.Schema()
    older.CopyFrom(schema)
    for name in ("impression_id", "reader_mood"):
        feature = older.feature.add(name=name, type=schema_pb2.BYTES)
        feature.presence.min_fraction = 1.0
        feature.presence.min_count = 1
    lines = validation.anomaly_lines(validation.validate(reference, older))
    assert [line.split(":")[0] for line in lines] == ["reader_mood"]
    assert len(older.feature) == len(schema.feature) + 2  # the caller's schema untouched


def test_two_days_of_the_same_setting_pass(worlds):
    root, reference, schema = worlds
    assert anomalies(root, "base/logs/day-0[2-3].csv.gz", schema, reference) == []


def test_doubled_ctr_is_drift(worlds):
    root, reference, schema = worlds
    lines = anomalies(root, "ctr2/logs/day-0[2-3].csv.gz", schema, reference)
    assert any(line.startswith("click:") and "Jensen-Shannon" in line for line in lines), lines


def _dwell_times(path, out, factor):
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    frame["dwell_time"] = (frame["dwell_time"].astype(float) * factor).round(3).astype(str)
    with gzip.open(out, "wt", newline="") as handle:
        frame.to_csv(handle, index=False)


def test_a_dwell_shrunk_on_every_click_is_drift_of_the_log_dwell_of_clicks(worlds, tmp_path):
    """Days 2-3 with every dwell halved (a client that stops counting half the time on the
    page) against days 0-1: the log dwell of clicks drifts past its threshold, the same days
    unchanged do not (test_two_days_of_the_same_setting_pass), and a schema inferred before the
    derived column existed validates without it (no "new column"), the statistics given to it
    untouched."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    root, reference, schema = worlds
    for day in (2, 3):
        _dwell_times(root / f"base/logs/day-0{day}.csv.gz", tmp_path / f"day-0{day}.csv.gz", 0.5)
    lines = anomalies(tmp_path, "day-0[2-3].csv.gz", schema, reference)
    drift = [line for line in lines if line.startswith(f"{validation.LOG_DWELL_OF_CLICKS}:")]
    assert len(drift) == 1 and "Jensen-Shannon" in drift[0], lines
    threshold = validation.ValidationConfig().log_dwell_drift
    feature = validation.tfdv().get_feature(schema, validation.LOG_DWELL_OF_CLICKS)
    assert feature.drift_comparator.jensen_shannon_divergence.threshold == threshold
    assert f"above the threshold {threshold}" in drift[0]

    older = schema_pb2.Schema()
    older.CopyFrom(schema)
    index = [f.name for f in older.feature].index(validation.LOG_DWELL_OF_CLICKS)
    del older.feature[index]
    stats = validation.load_statistics(str(tmp_path / "tmp.pb"))
    kept = type(stats)()
    kept.CopyFrom(stats)
    lines = validation.anomaly_lines(validation.validate(stats, older, reference))
    assert not any(validation.LOG_DWELL_OF_CLICKS in line for line in lines), lines
    assert stats == kept
    assert "infer the schema again" in validation.derived_column_notes(older, reference)[0]
    # A baseline made before, with today's schema: no check of the column (TFDV would report
    # "previous data missing"), and a note that says why.
    old_baseline = validation.without_feature(reference, validation.LOG_DWELL_OF_CLICKS)
    lines = validation.anomaly_lines(validation.validate(stats, schema, old_baseline))
    assert not any(validation.LOG_DWELL_OF_CLICKS in line for line in lines), lines
    assert "make them again" in validation.derived_column_notes(schema, old_baseline)[0]
    assert validation.derived_column_notes(schema, reference) == []
    assert validation.derived_column_notes(older) == []  # no baseline: no drift to check

    # Logs with a column of the derived column's name are refused, naming it.
    frame = pd.read_csv(root / "base/logs/day-02.csv.gz")
    frame[validation.LOG_DWELL_OF_CLICKS] = 1.0
    frame.to_csv(tmp_path / "named.csv", index=False)
    with pytest.raises(InputError, match=f"a column named {validation.LOG_DWELL_OF_CLICKS}"):
        validation.generate_statistics(str(tmp_path / "named.csv"), str(tmp_path / "n.pb"))


def test_new_category_is_an_anomaly(worlds):
    root, reference, schema = worlds
    lines = anomalies(root, "newcat/day-03.csv.gz", schema, reference)
    assert any(line.startswith("category:") and "weather" in line for line in lines), lines


def test_an_empty_field_is_missing_not_zero(worlds, tmp_path):
    """A fifth of a day's `item_length` and `category` left empty: TFDV counts those rows as
    missing (pandas' count of empties), the mean is that of the values there are, and the
    schema, inferred on days where both are always present, says they are present too
    rarely. Read as 0 and "", they were present on every row, the mean pulled toward 0."""
    root, reference, schema = worlds
    frame = pd.read_csv(root / "base/logs/day-03.csv.gz", dtype=str, keep_default_na=False)
    holes = np.random.default_rng(1).random((len(frame), 2)) < 0.2
    frame.loc[holes[:, 0], "item_length"] = ""
    frame.loc[holes[:, 1], "category"] = ""
    frame.to_csv(tmp_path / "holes.csv", index=False)
    stats = validation.generate_statistics(str(tmp_path / "holes.csv"), str(tmp_path / "s.pb"))
    features = {f.path.step[0]: f for f in stats.datasets[0].features}
    length = features["item_length"].num_stats
    assert length.common_stats.num_missing == holes[:, 0].sum() > 0
    assert length.common_stats.num_non_missing == (~holes[:, 0]).sum()
    present = pd.to_numeric(frame.loc[~holes[:, 0], "item_length"])
    assert length.mean == pytest.approx(present.mean(), rel=1e-9)
    assert length.min == present.min()
    category = features["category"].string_stats
    assert category.common_stats.num_missing == holes[:, 1].sum()
    assert "" not in {b.label for b in category.rank_histogram.buckets}
    lines = validation.anomaly_lines(validation.validate(stats, schema, reference))
    for name in ("item_length", "category"):
        line, = [line for line in lines if line.startswith(f"{name}:")]
        assert "fewer examples than expected" in line and validation.SPARSE_REMEDY in line
    assert not any(line.startswith("position:") for line in lines), lines
    # The remedy works: with their presence.min_fraction lowered, the columns pass (the
    # inferred shape of one value on every row refused them still: "Feature shape dropped").
    tfdv = validation.tfdv()
    sparse = type(schema)()
    sparse.CopyFrom(schema)
    for name in ("item_length", "category"):
        tfdv.get_feature(sparse, name).presence.min_fraction = 0.5
    lines = validation.anomaly_lines(validation.validate(stats, sparse, reference))
    assert not any(line.startswith(("item_length:", "category:")) for line in lines), lines
    # A schema inferred before, with that shape: its line says to delete it.
    tfdv.get_feature(sparse, "category").shape.dim.add().size = 1
    lines = validation.anomaly_lines(validation.validate(stats, sparse, reference))
    line, = [line for line in lines if line.startswith("category:")]
    assert "Feature shape dropped" in line and validation.SPARSE_REMEDY in line, line



def _coded_log(path, seed, region_shares, new_ids=False, rows=400):
    """A small log with a region code of digits (text by --column_types), 20 items and
    numeric user ids, and a `price` column empty on every row."""
    rng = np.random.default_rng(seed)
    click = (rng.random(rows) < 0.12).astype(int)
    frame = pd.DataFrame(dict(
        impression_id=np.arange(rows).astype(str), user_id=rng.integers(0, 30, rows).astype(str),
        item_id=[f"it-{i}" for i in rng.integers(0, 20, rows)],
        timestamp=1767574723 + np.arange(rows) * 60, click=click,
        dwell_time=np.where(click == 1, 30.0, 0.0),
        region=rng.choice(["1", "2", "3"], rows, p=region_shares), price=""))
    if new_ids:  # a new item and a user id with letters: open sets, not anomalies
        frame.loc[rows - 1, ["user_id", "item_id"]] = ["u-new", "it-99"]
    frame.to_csv(path, index=False)
    return str(path)


def test_a_text_code_of_digits_is_drift_checked_and_ids_have_no_domain(tmp_path):
    # TFDV infers an empty int_domain for a text column of digits (no drift comparator: a
    # shift of region codes passed), and closed domains for a small catalogue's item ids and
    # numeric user ids (a new item, or a user id with letters, failed validation).
    types = {"region": "string", "price": "float32"}
    before = validation.generate_statistics(
        _coded_log(tmp_path / "a.csv", 1, [0.6, 0.3, 0.1]), str(tmp_path / "a.pb"),
        column_types=types)
    schema = validation.infer_schema(before)
    tfdv = validation.tfdv()
    assert list(tfdv.get_domain(schema, "region").value) == ["1", "2", "3"]
    assert tfdv.get_feature(schema, "region").drift_comparator.infinity_norm.threshold == 0.05
    for name in ("user_id", "item_id"):
        assert tfdv.get_feature(schema, name).WhichOneof("domain_info") is None
    assert [d.name for d in schema.string_domain] == ["region"]
    after = validation.generate_statistics(
        _coded_log(tmp_path / "b.csv", 2, [0.1, 0.3, 0.6], new_ids=True),
        str(tmp_path / "b.pb"), column_types=types)
    lines = validation.anomaly_lines(validation.validate(after, schema, before))
    assert [line.split(":")[0] for line in lines] == ["region"], lines
    assert "Linfty distance" in lines[0]
    # The report: a numeric column without a value has no mean, min or max (TFDV's are 0).
    validation.write_report(str(tmp_path / "report.md"), "b.csv", after, lines, "given", None)
    assert "| price | FLOAT | 400 | – | – | – |" in open(tmp_path / "report.md").read()

def test_validate_cli_exit_status_and_report(worlds, run, tmp_path):
    root, _, _ = worlds
    first = run("pipelines.validate", f"--input={root}/base/logs/day-0[0-1].csv.gz",
                f"--output_dir={tmp_path}/v1", "--dwell_drift=0.5")
    assert first.returncode == 0, first.stderr
    assert first.stderr.startswith(  # (its default value, but given: said)
        "note: --dwell_drift: no drift is checked in this run (no --baseline_stats); the "
        "inferred schema.pbtxt keeps the threshold for runs with one\n"), first.stderr
    assert "no anomalies" in first.stdout and "IPython" not in first.stderr
    for name in ("stats.pb", "schema.pbtxt", "anomalies.pbtxt", "report.md", "stats.html"):
        assert (tmp_path / "v1" / name).stat().st_size > 0, name
    second = run("pipelines.validate", f"--input={root}/newcat/day-03.csv.gz",
                 f"--output_dir={tmp_path}/v2", f"--schema={tmp_path}/v1/schema.pbtxt",
                 f"--baseline_stats={tmp_path}/v1/stats.pb", "--click_drift=0")
    assert second.returncode == 1
    # (a threshold of an inferred schema, given with --schema: said, not applied silently)
    assert second.stderr.startswith(
        f"note: --click_drift set(s) what an inferred schema holds; {tmp_path}/v1/schema.pbtxt's "
        "own thresholds and domains apply (edit them there)\n"), second.stderr
    assert "category:" in second.stderr and "weather" in second.stderr
    assert "weather" in (tmp_path / "v2" / "report.md").read_text()
    # Another file given as the schema or the baseline: one line naming it, no output.
    (tmp_path / "notes.txt").write_text("this is not a schema\n")
    # Statistics of two datasets (slices of another tool's): TFDV's check raised a traceback
    # after the whole statistics pass.
    from tensorflow_metadata.proto.v0 import statistics_pb2

    two = statistics_pb2.DatasetFeatureStatisticsList()
    for _ in range(2):
        two.datasets.add().CopyFrom(validation.load_statistics(
            str(tmp_path / "v1/stats.pb")).datasets[0])
    (tmp_path / "two.pb").write_bytes(two.SerializeToString())
    for flag, given, says in (
            ("--schema", tmp_path / "v1/stats.pb", "is not a schema.pbtxt"),
            ("--schema", tmp_path / "notes.txt", "is not a schema.pbtxt"),
            ("--baseline_stats", tmp_path / "v1/schema.pbtxt", "is not a stats.pb"),
            ("--baseline_stats", tmp_path / "notes.txt", "is not a stats.pb"),
            ("--baseline_stats", tmp_path / "two.pb", "holds 2 datasets, not the one")):
        bad = run("pipelines.validate", f"--input={root}/base/logs/day-02.csv.gz",
                  f"--output_dir={tmp_path}/v3", f"{flag}={given}")
        assert bad.returncode == 1 and "Traceback" not in bad.stderr, bad.stderr
        assert bad.stderr.strip().splitlines() == [bad.stderr.strip()], bad.stderr
        assert bad.stderr.startswith(f"error: {given}") and says in bad.stderr, bad.stderr
        assert not (tmp_path / "v3").exists()
    # The baseline (or schema) inside --output_dir: refused, not replaced by this run's.
    baseline = (tmp_path / "v1" / "stats.pb").read_bytes()
    again = run("pipelines.validate", f"--input={root}/base/logs/day-02.csv.gz",
                f"--output_dir={tmp_path}/v1", f"--baseline_stats={tmp_path}/v1/stats.pb")
    assert again.returncode == 1 and again.stderr.startswith(
        f"error: --output_dir {tmp_path}/v1 holds the input {tmp_path}/v1/stats.pb"), again.stderr
    assert (tmp_path / "v1" / "stats.pb").read_bytes() == baseline
    # A directory holding a report.md of someone else's, or anything beside a validation's
    # output, is refused and left as it was (it used to be replaced: a report.md sufficed).
    (tmp_path / "v1" / "thesis.tex").write_text("months of work")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("# my notes\n")
    for taken in (tmp_path / "v1", mine):
        refused = run("pipelines.validate", f"--input={root}/base/logs/day-02.csv.gz",
                      f"--output_dir={taken}")
        assert refused.returncode == 1 and refused.stderr.startswith(
            f"error: --output_dir {taken} exists and holds something else"), refused.stderr
    assert (tmp_path / "v1" / "thesis.tex").read_text() == "months of work"
    assert (mine / "report.md").read_text() == "# my notes\n"


def test_stats_and_label_refuse_input_against_a_schema(worlds, run, tmp_path):
    root, _, schema = worlds
    tfdv = validation.tfdv()
    tfdv.write_schema_text(schema, str(tmp_path / "schema.pbtxt"))
    result = run("pipelines.stats", f"--input={root}/newcat/day-03.csv.gz",
                 f"--output_dir={tmp_path}/stats", f"--schema={tmp_path}/schema.pbtxt")
    assert result.returncode == 1
    assert "does not match the schema" in result.stderr and "weather" in result.stderr
    assert not (tmp_path / "stats").exists()
    ok = run("pipelines.stats", f"--input={root}/base/logs/day-0[0-1].csv.gz",
             f"--output_dir={tmp_path}/stats", f"--schema={tmp_path}/schema.pbtxt")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith(f"checked {root}/base/logs/day-0[0-1].csv.gz against "
                                f"{tmp_path}/schema.pbtxt in ")
    result = run("pipelines.label", f"--input={root}/newcat/day-03.csv.gz",
                 f"--stats={tmp_path}/stats", f"--output_dir={tmp_path}/labelled",
                 f"--schema={tmp_path}/schema.pbtxt")
    assert result.returncode == 1 and "weather" in result.stderr
    assert not (tmp_path / "labelled").exists()
    # An output directory that cannot be written is refused before the schema check's pass
    # over every row (which came first, and then the refusal).
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    for argv in ((f"--output_dir={tmp_path}/taken",),
                 (f"--stats={tmp_path}/stats", f"--output_dir={tmp_path}/taken")):
        module = "pipelines.stats" if len(argv) == 1 else "pipelines.label"
        taken = run(module, f"--input={root}/base/logs/day-0[0-1].csv.gz", *argv,
                    f"--schema={tmp_path}/schema.pbtxt")
        assert taken.returncode == 1 and taken.stderr.startswith(
            f"error: --output_dir {tmp_path}/taken exists and holds something else"), \
            taken.stderr
        assert "checked" not in taken.stdout, taken.stdout
    # Training takes the same schema and refuses before it creates the model directory.
    from ranking import training

    with pytest.raises(InputError, match="weather"):
        training.train_and_evaluate(training.TrainConfig(
            train=f"{root}/newcat/day-03.csv.gz", stats=f"{tmp_path}/stats",
            schema=f"{tmp_path}/schema.pbtxt"), str(tmp_path / "model"))
    assert not (tmp_path / "model").exists()


def test_unclicked_dwell_is_allowed_by_the_same_flag_in_validation_and_schema_checks(
        worlds, run, tmp_path):
    # Short-video logs carry play time on unclicked rows: with --allow_unclicked_dwell every
    # job reads them as 0, the validation job and the --schema check of the others included.
    root, _, schema = worlds
    frame = pd.read_csv(root / "base/logs/day-00.csv.gz", dtype=str, keep_default_na=False)
    unclicked = frame.index[frame["click"] == "0"][:5]
    frame.loc[unclicked, "dwell_time"] = "7.5"
    frame.to_csv(tmp_path / "autoplay.csv", index=False)
    line = unclicked[0] + 2
    refused = run("pipelines.validate", f"--input={tmp_path}/autoplay.csv",
                  f"--output_dir={tmp_path}/v0")
    assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
    assert f"line {line}, column 'dwell_time': expected 0 or empty" in refused.stderr
    assert not (tmp_path / "v0").exists()
    # A Beam pipeline option still reaches Beam; a mistyped flag is refused, not dropped.
    typo = run("pipelines.validate", f"--input={tmp_path}/autoplay.csv",
               f"--output_dir={tmp_path}/v1", "--allow_unclicked_dwel")
    assert typo.returncode == 1 and "Traceback" not in typo.stderr, typo.stderr
    assert ("FATAL Flags parsing error: --allow_unclicked_dwel: neither a flag of this command "
            "nor an Apache Beam pipeline option") in typo.stderr
    assert not (tmp_path / "v1").exists()
    allowed = run("pipelines.validate", f"--input={tmp_path}/autoplay.csv",
                  f"--output_dir={tmp_path}/v1", "--allow_unclicked_dwell",
                  "--direct_num_workers=1")
    assert allowed.returncode == 0, allowed.stderr
    assert (tmp_path / "v1" / "report.md").exists()
    tfdv = validation.tfdv()
    tfdv.write_schema_text(schema, str(tmp_path / "schema.pbtxt"))
    stats = run("pipelines.stats", f"--input={tmp_path}/autoplay.csv",
                f"--output_dir={tmp_path}/stats", f"--schema={tmp_path}/schema.pbtxt",
                "--allow_unclicked_dwell")
    assert stats.returncode == 0, stats.stderr
    with pytest.raises(InputError, match=f"line {line}, column 'dwell_time'"):
        validation.check_input(f"{tmp_path}/autoplay.csv", str(tmp_path / "schema.pbtxt"))


def test_describe_names_the_utc_days_with_rows(run, tmp_path):
    # 2026-01-05 00:00:00 UTC is 1767571200 (= 20458 days); rows on the 5th (its first and last
    # second), the 7th and the 9th: five days spanned, three with rows, none on the 6th or 8th.
    day = 86_400
    stamps = [1767571200, 1767571200 + day - 1, 1767571200 + 2 * day, 1767571200 + 4 * day + 5]
    path = tmp_path / "log.csv"
    path.write_text("user_id,item_id,timestamp,click,dwell_time\n"
                    + "".join(f"u{k},i{k},{t},{k % 2},{30.0 * (k % 2)}\n"
                              for k, t in enumerate(stamps)))
    from pipelines.validate import describe

    described = describe.describe(str(path))
    assert described["days"] == [20458, 20460, 20462]
    assert described["clicks"] == 2 and described["zero_dwell_clicks"] == 0
    from core.label_rules import utc_date

    assert [utc_date(d) for d in (0, 20458, -719162, -719163)] == [
        "1970-01-01", "2026-01-05", "0001-01-01", "day -719163"]
    result = run("pipelines.validate.describe", f"--input={path}")
    assert result.returncode == 0, result.stderr
    assert "days (UTC): 2026-01-05 to 2026-01-09, 3 with rows of 5" in result.stdout
    assert "; 0 clicks (0.0%) with dwell 0" in result.stdout
    # A click with dwell 0 (an unknown dwell written as 0, say) is counted.
    path.write_text(path.read_text() + "u9,i9,1767571300,1,0\n")
    assert describe.describe(str(path))["zero_dwell_clicks"] == 1


@pytest.mark.parametrize("fmt", ["csv", "tfrecord"])
def test_describe_counts_duplicate_rows_and_impression_ids_as_pandas(run, tmp_path, fmt):
    rng = np.random.default_rng(5)
    n = 3000
    frame = pd.DataFrame({
        "impression_id": [f"m{k}" for k in range(n)], "user_id": rng.integers(0, 50, n).astype(str),
        "item_id": rng.integers(0, 40, n).astype(str),
        "timestamp": 1767571200 + rng.integers(0, 86_400, n), "click": rng.integers(0, 2, n)})
    frame["dwell_time"] = np.where(frame["click"] == 1, 12.5, 0.0)
    # A replayed batch (rows copied whole, some twice) and ids reused by other impressions.
    copies = frame.sample(120, random_state=1)
    frame = pd.concat([frame, copies, copies.iloc[:15]], ignore_index=True)
    reused = frame.sample(40, random_state=2).index
    frame.loc[reused, "impression_id"] = frame["impression_id"].iloc[:40].to_numpy()
    frame.loc[frame.sample(25, random_state=4).index, "impression_id"] = ""  # no id: no repeat
    frame = frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    expected_rows = int(frame.duplicated().sum())
    ids = frame["impression_id"][frame["impression_id"] != ""]
    expected_ids = int(ids.duplicated().sum())
    assert expected_rows >= 100 and expected_ids > expected_rows  # both kinds present
    if fmt == "csv":
        path = str(tmp_path / "log.csv")
        frame.to_csv(path, index=False)
    else:
        import tensorflow as tf

        path = str(tmp_path / "log.tfrecord")
        with tf.io.TFRecordWriter(path) as writer:
            for row in frame.itertuples(index=False):
                feature = {name: tf.train.Feature(bytes_list=tf.train.BytesList(
                    value=[str(getattr(row, name)).encode()]))
                    for name in ("impression_id", "user_id", "item_id")}
                feature["timestamp"] = tf.train.Feature(
                    int64_list=tf.train.Int64List(value=[row.timestamp]))
                feature["click"] = tf.train.Feature(int64_list=tf.train.Int64List(value=[row.click]))
                feature["dwell_time"] = tf.train.Feature(
                    float_list=tf.train.FloatList(value=[row.dwell_time]))
                writer.write(tf.train.Example(features=tf.train.Features(
                    feature=feature)).SerializeToString())
    from pipelines.validate import describe

    described = describe.describe(path, batch_size=256)
    assert described["rows"] == len(frame)
    assert described["duplicate_rows"] == expected_rows
    assert described["repeated_impression_ids"] == expected_ids
    result = run("pipelines.validate.describe", f"--input={path}")
    assert result.returncode == 0, result.stderr
    assert (f"duplicates: {expected_rows:,} rows repeat an earlier row exactly "
            f"({expected_rows / len(frame):.2%}); {expected_ids:,} rows repeat an earlier "
            "impression_id (each row is read as its own impression") in result.stdout, result.stdout
    # Without the column, only whole rows are compared.
    frame.drop(columns="impression_id").to_csv(tmp_path / "no_ids.csv", index=False)
    described = describe.describe(str(tmp_path / "no_ids.csv"))
    assert described["repeated_impression_ids"] is None
    assert described["duplicate_rows"] == int(frame.drop(columns="impression_id").duplicated().sum())


def test_the_validation_flags_come_from_its_config_with_their_bounds():
    """--max_domain_size past a 32-bit int ended in a TypeError inside TFDV's C++, a negative or
    nan drift threshold was taken (no drift check can pass a negative one): the flags come from
    ValidationConfig (core.settings) with its bounds."""
    from absl import flags

    from core import settings

    def parse(*argv):
        values = flags.FlagValues()
        settings.define_flags(validation.ValidationConfig, values)
        values(["validate", *argv])
        return settings.from_flags(validation.ValidationConfig, values)

    assert parse() == validation.ValidationConfig()
    assert parse("--max_domain_size=2147483647", "--click_drift=0", "--allow_unclicked_dwell") \
        == validation.ValidationConfig(click_drift=0.0, max_domain_size=2**31 - 1,
                                       allow_unclicked_dwell=True)
    for argv in (["--max_domain_size=2147483648"], ["--max_domain_size=-1"],
                 ["--categorical_drift=-0.1"], ["--dwell_drift=nan"], ["--numeric_drift=inf"],
                 ["--log_dwell_drift=-0.01"]):
        with pytest.raises(flags.IllegalFlagValueError):
            parse(*argv)


def test_statistics_are_written_in_the_logs_column_order(worlds, tmp_path):
    """With several Beam workers TFDV's features come in the order its merge meets them (two
    runs on the same logs wrote their stats, schema and report in different orders): the
    features are put in the logs' column order, whatever order they come in."""
    root, reference, _ = worlds
    header = list(pd.read_csv(f"{root}/base/logs/day-00.csv.gz", nrows=0).columns)
    columns = validation.statistics_columns(header)
    # (the impression id not profiled; the derived log dwell beside dwell_time)
    expected = [c for c in header if c != "impression_id"]
    expected.insert(expected.index("dwell_time") + 1, validation.LOG_DWELL_OF_CLICKS)
    assert [c for c in columns if c != "impression_id"] == expected
    assert [f.path.step[0] for f in reference.datasets[0].features] == expected
    shuffled = type(reference)()
    shuffled.CopyFrom(reference)
    features = list(shuffled.datasets[0].features)
    order = np.random.default_rng(3).permutation(len(features))
    copies = [type(features[0])() for _ in features]
    for copy, k in zip(copies, order):
        copy.CopyFrom(features[k])
    del shuffled.datasets[0].features[:]
    shuffled.datasets[0].features.extend(copies)
    assert [f.path.step[0] for f in shuffled.datasets[0].features] != expected
    assert validation.in_column_order(shuffled, columns) == reference
