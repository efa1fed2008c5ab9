"""ranking.input_notes: what training says about its input (the held-out window, ids against
their hash buckets, files shared between --train and --eval), against hand values."""

from core.log_files import LogFile
from ranking import input_notes

DAY = 20_000  # a UTC day number (2024-10-04)


def test_the_validation_window_is_described_and_a_sliver_noted():
    # Training days 20000-20002 with 1,000 rows each (two files), a held-out day of 100 or 99.
    rows = {(0, DAY): 600, (1, DAY): 400, (0, DAY + 1): 1000, (1, DAY + 2): 1000}
    full = input_notes.validation_window_line({**rows, (1, DAY + 3): 100}, 1)
    assert full == ("validation window (--validation_days=1): 2024-10-07 to 2024-10-07 UTC, "
                    "100 rows; training 2024-10-04 to 2024-10-06, 3,000 rows")
    sliver = input_notes.validation_window_line({**rows, (1, DAY + 3): 99}, 1)
    assert sliver.endswith("; note: 99 rows a held-out day against 1,000 a training day (logs "
                           "cut at a local midnight end with a sliver of a UTC day): hold out "
                           "one more day")
    # A held-out window of two calendar days with rows on one (a weekend): 99 rows on it is a
    # sliver; 250 rows on each of two days is not.
    gap = input_notes.validation_window_line({**rows, (1, DAY + 4): 99}, 2)
    assert gap.startswith("validation window (--validation_days=2): 2024-10-07 to 2024-10-08 "
                          "UTC, 99 rows") and "; note: 99 rows a held-out day" in gap
    weekend = input_notes.validation_window_line({**rows, (1, DAY + 4): 150}, 2)
    assert "note" not in weekend
    two = input_notes.validation_window_line({(0, DAY): 1000, (0, DAY + 1): 250,
                                              (0, DAY + 2): 250}, 2)
    assert two == ("validation window (--validation_days=2): 2024-10-05 to 2024-10-06 UTC, "
                   "500 rows; training 2024-10-04 to 2024-10-04, 1,000 rows")


def test_numeric_features_named_like_ids_are_noted():
    from ranking import features

    from model_fixtures import NUMERIC_STATS, SCHEMA, tiny_spec

    assert input_notes.numeric_id_notes(tiny_spec()) == []  # position, item_length, ...
    columns = SCHEMA.columns + ("author_id", "musicId", "grid", "valid")
    dtypes = {**SCHEMA.dtypes, "author_id": "int64", "musicId": "int64", "grid": "int64",
              "valid": "int64"}
    stats = {**NUMERIC_STATS, **{name: {"mean": 1.0, "std": 1.0}
                                 for name in ("author_id", "musicId", "grid", "valid")}}
    schema = type(SCHEMA)(columns=columns, dtypes=dtypes)
    notes = input_notes.numeric_id_notes(features.build_feature_spec(schema, stats, None, ()))
    assert [note.split("'")[1] for note in notes] == ["author_id", "musicId"]
    assert notes[0] == ("note: feature column 'author_id' is named like an id but is read as a "
                        "number (log1p, standardized): if it is an id, make it categorical in "
                        'the feature config ({"features": {"author_id": {"type": '
                        '"categorical"}}})')
    # Made categorical, it is not noted.
    config = {"features": {"author_id": {"type": "categorical"}, "musicId": {"exclude": True}}}
    assert input_notes.numeric_id_notes(
        features.build_feature_spec(schema, stats, config, ())) == []


def test_held_out_files_that_are_training_files_are_noted(tmp_path):
    from core.log_files import LogFile

    for name in ("a.csv", "b.csv", "c.csv"):
        (tmp_path / name).write_text("user_id\n")
    (tmp_path / "link.csv").symlink_to(tmp_path / "b.csv")  # the same file by another path
    a, b, c, link = (LogFile(str(tmp_path / n), "csv", False)
                     for n in ("a.csv", "b.csv", "c.csv", "link.csv"))
    assert input_notes.input_overlap_notes([a, b], {"--eval": [c]}) == []
    assert input_notes.input_overlap_notes([a, b], {"--eval": [c, link],
                                                    "--validation": [a, b]}) == [
        f"note: 1 --eval file(s) are --train files too ({link.path}): their metrics measure "
        "rows the model trained on",
        f"note: 2 --validation file(s) are --train files too ({a.path}, ...): their metrics "
        "measure rows the model trained on"]


def test_held_out_files_in_the_validation_window_are_noted(tmp_path):
    from core.log_files import LogFile

    for name in ("a.csv", "b.csv", "c.csv"):
        (tmp_path / name).write_text("user_id\n")
    a, b, c = (LogFile(str(tmp_path / n), "csv", False) for n in ("a.csv", "b.csv", "c.csv"))
    # b holds the last day (the --validation_days window); a file with both training and
    # window rows (a) is noted as a training file only.
    assert input_notes.input_overlap_notes([a], {"--eval": [c]}, [a, b], True) == []
    assert input_notes.input_overlap_notes([a], {"--eval": [b, c]}, [a, b], True) == [
        f"note: 1 --eval file(s) are in --train's validation window ({b.path}): their metrics "
        "measure rows the model was selected on and the refit pass trained on"]
    assert input_notes.input_overlap_notes([a], {"--eval": [a, b]}, [a, b], False) == [
        f"note: 1 --eval file(s) are --train files too ({a.path}): their metrics measure rows "
        "the model trained on",
        f"note: 1 --eval file(s) are in --train's validation window ({b.path}): their metrics "
        "measure rows the model was selected on"]
    # --validation logs of their own: --eval sharing one is noted, the window itself is not.
    assert input_notes.input_overlap_notes([a], {"--eval": [c], "--validation": [c]}, [c], True,
                                           "--validation files too") == [
        f"note: 1 --eval file(s) are --validation files too ({c.path}): their metrics measure "
        "rows the model was selected on and the refit pass trained on"]


def test_model_features_that_are_outcomes_of_the_click_are_noted():
    import types

    from model_fixtures import tiny_spec

    numeric = {"item_length": {"nonzero_clicked": 30, "nonzero_unclicked": 0},  # an outcome
               "position": {"nonzero_clicked": 30, "nonzero_unclicked": 5},  # on unclicked too
               "is_share": {"nonzero_clicked": 30, "nonzero_unclicked": 0}}  # not a feature
    artifact = types.SimpleNamespace(rows=1000, clicks=100, numeric_features=numeric)
    spec = tiny_spec()
    assert "item_length" in spec.names and "is_share" not in spec.names
    assert input_notes.outcome_feature_notes(spec, artifact) == [
        "note: feature column 'item_length' is 0 on all 900 unclicked rows but not on 30 of the "
        "100 clicked ones: an outcome of the click (a like, a share, a play time) hands the "
        "model its label (the statistics job's warning), and serving has no such value before "
        'the click: exclude it in the feature config ({"features": {"item_length": '
        '{"exclude": true}}})']
    excluded = tiny_spec({"features": {"item_length": {"exclude": True}}})
    assert input_notes.outcome_feature_notes(excluded, artifact) == []


def test_model_features_in_no_record_of_tfrecord_held_out_logs_are_noted():
    assert input_notes.absent_features_note("--eval", ()) is None
    assert input_notes.absent_features_note("--eval", ("author_followers", "likes")) == (
        "note: the model's feature(s) author_followers, likes have no value in any sampled "
        "record of the --eval logs (empty CSV fields, or left out of every tf.Example): read "
        "as their default there")


def test_held_out_rows_of_the_training_logs_days_are_noted():
    train = {DAY: 1000, DAY + 1: 1000, DAY + 2: 800}  # the fullest day: 1,000 rows
    # The next days, and the share of --train's last day that logs cut at a local midnight
    # hold (up to 14 h of 24: 58 %): none.
    assert input_notes.earlier_days_note(train, "--eval", {DAY + 2: 120, DAY + 3: 900}) is None
    assert input_notes.earlier_days_note(train, "--eval", {DAY + 2: 544, DAY + 3: 900}) is None
    assert input_notes.earlier_days_note(train, "--eval", {}) is None
    assert input_notes.earlier_days_note({}, "--eval", {DAY: 5}) is None
    assert input_notes.earlier_days_note(train, "--eval", {DAY + 1: 7, DAY + 2: 300,
                                                           DAY + 3: 900}) == (
        "note: 7 --eval rows fall on 1 UTC day(s) of --train's days or before (2024-10-05; "
        "--train ends 2024-10-06): held-out logs should be later days than the training logs")
    assert input_notes.earlier_days_note(train, "--validation", {DAY: 3, DAY + 1: 4}) == (
        "note: 7 --validation rows fall on 2 UTC day(s) of --train's days or before (2024-10-04 "
        "to 2024-10-05; --train ends 2024-10-06): held-out logs should be later days than the "
        "training logs")
    # Logs cut at UTC-10 (local days of 1,000 rows: UTC days of 583, 1,000, 417): the next
    # local day's 583 rows on the last UTC day are not noted.
    assert input_notes.earlier_days_note({DAY: 583, DAY + 1: 1000, DAY + 2: 417}, "--eval",
                                         {DAY + 2: 583, DAY + 3: 417}) is None
    # The whole last day again (a copy of the validation day under another name): noted.
    assert input_notes.earlier_days_note(train, "--eval", {DAY + 2: 800}) == (
        "note: 800 --eval rows fall on 1 UTC day(s) of --train's days or before (2024-10-06; "
        "--train ends 2024-10-06): held-out logs should be later days than the training logs")


def test_a_copy_of_a_training_day_smaller_than_the_fullest_is_noted():
    """Days vary: a copy of the last training day (700 rows, below 75 % of the fullest day's
    1,000) is found as a held-out file with a training file's rows per day and bytes; the other
    part of a day cut at a local midnight, and shards of a fixed row count, are not."""
    def log(path):
        return LogFile(path, "csv", False)

    sizes = {"d0.csv": 51_000, "d1.csv": 48_000, "d2.csv": 35_000, "copy.csv": 35_000,
             "d3.csv": 45_000}
    train_files = [log("d0.csv"), log("d1.csv"), log("d2.csv")]
    train_rows = {(0, DAY): 1000, (1, DAY + 1): 950, (2, DAY + 2): 700}
    held = [log("copy.csv"), log("d3.csv")]
    held_rows = {(0, DAY + 2): 700, (1, DAY + 3): 900}
    copied = input_notes.copied_days(train_files, train_rows, held, held_rows, sizes.get)
    assert copied == {DAY + 2}
    train = input_notes.day_rows_of(train_rows)
    assert input_notes.earlier_days_note(train, "--eval", {DAY + 2: 700}) is None  # by count
    assert input_notes.earlier_days_note(train, "--eval", {DAY + 2: 700, DAY + 3: 900},
                                         copied) == (
        "note: 700 --eval rows fall on 1 UTC day(s) of --train's days or before (2024-10-06; "
        "--train ends 2024-10-06): held-out logs should be later days than the training logs")
    # The same rows but other bytes (another file of as many rows): not a copy.
    assert input_notes.copied_days(train_files, train_rows, held, held_rows,
                                   {**sizes, "copy.csv": 35_001}.get) == set()
    # Logs cut at a local midnight: the held-out part of the last UTC day holds other rows;
    # shards of a fixed 100 rows wholly inside that day hold as many rows, other bytes.
    cut = {(0, DAY): 583, (1, DAY + 1): 1000, (2, DAY + 2): 417, (3, DAY + 2): 100}
    after = {(0, DAY + 2): 583, (0, DAY + 3): 417, (1, DAY + 2): 100}
    shard_sizes = {"d0.csv": 30_000, "d1.csv": 51_000, "d2.csv": 21_000, "s.csv": 5_113,
                   "e0.csv": 50_000, "e1.csv": 5_087}
    cut_files = [log("d0.csv"), log("d1.csv"), log("d2.csv"), log("s.csv")]
    after_files = [log("e0.csv"), log("e1.csv")]
    assert input_notes.copied_days(cut_files, cut, after_files, after, shard_sizes.get) == set()
    assert input_notes.earlier_days_note(input_notes.day_rows_of(cut), "--eval",
                                         input_notes.day_rows_of(after), set()) is None
    # A training file given again as --eval (the same path): its days are copied.
    assert input_notes.copied_days(train_files, train_rows, [log("d1.csv")],
                                   {(0, DAY + 1): 950}, sizes.get) == {DAY + 1}


def test_a_resumed_runs_changed_input_is_noted():
    record = {"train": {str(DAY): 100, str(DAY + 1): 50}, "validation_days": 1,
              "validation": None}
    assert input_notes.input_change_note(None, {DAY: 1}) is None  # a new run
    assert input_notes.input_change_note(record, {DAY: 100, DAY + 1: 50}, {}, 1) is None
    # A day added at the end: the window (the last day) moved.
    assert input_notes.input_change_note(record, {DAY: 100, DAY + 1: 50, DAY + 2: 30}, None,
                                         1) == (
        "note: against the run being resumed, --train now holds +30 rows on 1 UTC day(s) "
        "(2024-10-06): the epochs still to train read the logs as they are now, the epochs "
        "done read them as they were; the --validation_days=1 window holds other rows now, so "
        "validation compares other days than the best recorded; train in an empty directory "
        "to learn from one input")
    # A day backfilled before: the window did not move, so nothing is said of it.
    backfilled = input_notes.input_change_note(record, {DAY - 1: 7, DAY: 100, DAY + 1: 50},
                                               None, 1)
    assert "+7 rows on 1 UTC day(s) (2024-10-03)" in backfilled
    assert "window" not in backfilled
    # The window is calendar days, as training holds it out: with days {1, 3, 5} before and
    # {1, 2, 5} now, a two-day window is day 5 (and the empty day 4) both times.
    gaps = {"train": {str(DAY + 1): 10, str(DAY + 3): 10, str(DAY + 5): 10},
            "validation_days": 2, "validation": None}
    assert "window" not in input_notes.input_change_note(
        gaps, {DAY + 1: 10, DAY + 2: 10, DAY + 5: 10}, None, 2)
    assert "window" in input_notes.input_change_note(
        gaps, {DAY + 1: 10, DAY + 3: 10, DAY + 4: 3, DAY + 5: 10}, None, 2)
    held = dict(record, validation_days=0, validation={str(DAY + 5): 10})
    assert input_notes.input_change_note(held, {DAY: 100, DAY + 1: 50}, {DAY + 5: 12}) == (
        "note: against the run being resumed, --validation now holds +2 rows on 1 UTC day(s) "
        "(2024-10-09): the epochs still to train read the logs as they are now, the epochs "
        "done read them as they were; train in an empty directory to learn from one input")


def test_ids_beyond_their_hash_buckets_are_noted():
    import math

    from model_fixtures import tiny_spec

    spec = tiny_spec({"features": {"item_id": {"hash_buckets": 1000, "embedding_dim": 8}}})
    users = spec["user_id"].hash_buckets
    # Noted from a quarter of the values sharing a row: 1 - exp(-n / b) >= 0.25, n / b >= 0.2877.
    below = int(-math.log(0.75) * users)  # 37,707 of 131,072: 24.99...%
    assert 1 - math.exp(-below / users) < 0.25 <= 1 - math.exp(-(below + 1) / users)
    assert input_notes.id_bucket_notes(spec, below, 287) == []
    assert input_notes.id_bucket_notes(spec, None, None) == []  # an artifact before the counts
    [user, item] = input_notes.id_bucket_notes(spec, users, 1500)
    # As many users as buckets: 63 % share (noted; before, only past one id a bucket).
    assert user.startswith(f"note: the stats window has {users:,} users with a click for "
                           f"{users:,} hash buckets of user_id: 63% of them share")
    assert '{"hash_buckets": 524288}' in user  # 4 x 131,072
    [user] = input_notes.id_bucket_notes(spec, below + 1, None)
    assert f"{below + 1:,} users with a click" in user and ": 25% of them share" in user
    # 1 - exp(-1.5) = 78 %; 4 x 1500 = 6000 -> 8192 buckets of 8 floats: 0.25 MB, which
    # 1 - exp(-1500 / 8192) = 17 % of the items would share.
    assert f"{1 - math.exp(-1.5):.0%}" == "78%"
    assert item == ("note: the stats window has 1,500 items with a clicked dwell for 1,000 hash "
                    "buckets of item_id: 78% of them share an embedding row; raise them in the "
                    'feature config ({"features": {"item_id": {"hash_buckets": 8192}}}, 0.2 MB of '
                    "table)")
    # Other hashed features against their distinct values (stats.json's feature_values): a
    # category column of 1,024 buckets with 1,025 values, 'position' (numeric unless made
    # categorical) never noted as a number, and a count that stopped at the cap.
    values = {"category": {"distinct": 1025, "at_least": False},
              "position": {"distinct": 70000, "at_least": True}}
    [category] = input_notes.id_bucket_notes(spec, None, None, values)
    assert category.startswith("note: the stats window has 1,025 distinct values for 1,024 hash "
                               "buckets of category: 63% of them share")
    assert '{"hash_buckets": 8192}' in category
    assert input_notes.id_bucket_notes(spec, None, None,
                                       {"category": {"distinct": 294, "at_least": False}}) == []
    made = tiny_spec({"features": {"position": {"type": "categorical"}}})
    [position] = [n for n in input_notes.id_bucket_notes(made, None, None, values)
                  if "of position" in n]
    assert position.startswith("note: the stats window has at least 70,000 distinct values for "
                               "1,024 hash buckets of position: 100% of them")
    vocabulary = tiny_spec({"features": {"category": {"vocabulary": ["a"]}}})
    assert input_notes.id_bucket_notes(vocabulary, None, None, values) == []


def test_training_logs_with_label_columns_are_noted():
    from core.label_rules import RuleConfig
    from core.log_schema import LogSchema

    raw = LogSchema(("user_id", "item_id", "timestamp", "click", "dwell_time", "tag"),
                    {"user_id": "string", "item_id": "string", "timestamp": "int64",
                     "click": "int64", "dwell_time": "float64", "tag": "string"})
    assert input_notes.label_column_notes(raw, RuleConfig()) == []
    shards = LogSchema(raw.columns + ("valid_read", "dwell_bin"),
                       dict(raw.dtypes, valid_read="int64", dwell_bin="int64"))
    assert input_notes.label_column_notes(shards, RuleConfig(t1_threshold=12.5)) == [
        "note: the training logs carry label columns (valid_read, dwell_bin): training labels "
        "every row again with the stats artifact's rules (min_dwell 5 s, T1 12.5 s, T2 7 "
        "clicks in 7 days, T3 5 records) and does not read them, so labels made with other "
        "thresholds (the label job's overrides) are not the ones trained on"]


def test_held_out_files_of_the_stats_window_are_noted(tmp_path):
    """--eval files the stats artifact was computed from (its records' real paths) are named;
    others are not."""
    import os

    from core.stats_artifact import file_status

    for name in ("day-1.csv", "day-2.csv", "day-3.csv"):
        (tmp_path / name).write_text("user_id,item_id,timestamp,click,dwell_time\n")
    records = [file_status(str(tmp_path / "day-1.csv")), file_status(str(tmp_path / "day-2.csv"))]
    assert records[0]["path"] == os.path.realpath(tmp_path / "day-1.csv")
    def logs(*names):
        return [LogFile(f"{tmp_path}/{name}", "csv", False) for name in names]

    notes = input_notes.stats_window_notes(records, {"--eval": logs("day-2.csv", "day-3.csv")})
    assert notes == [
        f"note: 1 --eval file(s) are files the stats artifact was computed from "
        f"({tmp_path}/day-2.csv): their labels' thresholds (x_l, item P10s, bin edges) and "
        "rule T2's counts learned from the rows evaluated on; compute the statistics on the "
        "training logs alone"]
    assert input_notes.stats_window_notes(records, {"--eval": logs("day-3.csv")}) == []
    assert input_notes.stats_window_notes((), {"--eval": logs("day-1.csv")}) == []
    # A file written again at that path since the statistics job read it: another file.
    (tmp_path / "day-2.csv").write_text("user_id,item_id,timestamp,click,dwell_time\nu,i,1,0,0\n")
    assert input_notes.stats_window_notes(records, {"--eval": logs("day-2.csv")}) == []
