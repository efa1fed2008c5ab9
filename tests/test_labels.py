"""Labels and the statistics job against the independent reference in reference_labels.py,
on simulated logs and on hand-built edge cases (SPEC §3)."""

import csv
import dataclasses
import glob
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from core import data_doubts, label_rules, stats_artifact
from core.errors import InputError
from pipelines.label import labelling
from pipelines.simulate import world_config, writing
from pipelines.stats import statistics, table_shards

from conftest import REPO
from reference_labels import reference_labels, reference_ndt, reference_stats

DAY = 86_400
LABELS = ["valid_read", "valid_read_rule", "ndt", "log_dwell", "dwell_bin"]


# NDT ----------------------------------------------------------------------------------------------
def test_paper_preset_values():
    p = label_rules.fit_ndt("paper", x_l=1.0, x_h=2.0)
    assert (p.offset, p.tau, p.A, p.B) == (15.0, 20.0, 2.319, 0.744)
    np.testing.assert_allclose(p(np.array([0.0, 15.0, 1000.0])),
                               reference_ndt([0.0, 15.0, 1000.0], 15, 20, 2.319, 0.744))


@pytest.mark.parametrize("given", [dict(t_max=1.575, epsilon=1e-5), {}],
                         ids=["given", "defaults"])
def test_auto_fit_reproduces_the_papers_setting(given):
    """The paper's range and slope, given or as the fit's defaults (--ndt_t_max and
    --ndt_epsilon not given)."""
    p = label_rules.fit_ndt("auto", x_l=15.0, x_h=200.0, **given)
    assert p.offset == 15.0
    assert p.tau == pytest.approx(19.75, abs=0.01)
    assert p.A == pytest.approx(2.312, abs=5e-4)
    assert p.B == pytest.approx(0.737, abs=5e-4)
    assert p.A - p.B == pytest.approx(1.575, rel=1e-12)
    assert p(np.array([0.0]))[0] == pytest.approx(0.0, abs=1e-12)
    grid = np.linspace(0, 2000, 20001)
    assert np.all(np.diff(p(grid)) >= 0)
    # Central difference of the curve itself, not of the fitted formula.
    h = 1e-3
    slope = (p(np.array([200.0 + h]))[0] - p(np.array([200.0 - h]))[0]) / (2 * h)
    assert slope == pytest.approx(1e-5, rel=1e-4)
    # On the saturated branch: tau below (x_h - offset) / 2.
    assert p.tau < (200 - 15) / 2


def test_a_given_a_or_b_keeps_the_other_flags_documented_rule():
    """--ndt_a alone: B so that ndt(0) = 0 (--ndt_b's default); --ndt_b alone: A = t_max + B
    (--ndt_a's default, the range); tau is the automatic curve's in both."""
    auto = label_rules.fit_ndt("auto", x_l=15.0, x_h=200.0)
    with_a = label_rules.fit_ndt("auto", x_l=15.0, x_h=200.0, A=3.0)
    assert (with_a.tau, with_a.A) == (auto.tau, 3.0)
    # By hand: B = A / (1 + exp(offset / tau)).
    assert with_a.B == pytest.approx(3.0 / (1.0 + np.exp(15.0 / auto.tau)), rel=1e-12)
    assert with_a(np.array([0.0]))[0] == pytest.approx(0.0, abs=1e-12)
    assert with_a.t_max == pytest.approx(with_a.A - with_a.B, rel=1e-12)
    with_b = label_rules.fit_ndt("auto", x_l=15.0, x_h=200.0, B=0.5, t_max=2.0)
    assert (with_b.tau, with_b.A, with_b.B) == (
        label_rules.fit_ndt("auto", x_l=15.0, x_h=200.0, t_max=2.0).tau, 2.5, 0.5)
    both = label_rules.fit_ndt("auto", x_l=15.0, x_h=200.0, A=3.0, B=0.5)
    assert (both.A, both.B, both.t_max) == (3.0, 0.5, 2.5)


def test_auto_fit_refuses_an_impossible_slope():
    with pytest.raises(InputError, match="cannot fit NDT"):
        label_rules.fit_ndt("auto", x_l=15.0, x_h=200.0, epsilon=1.0)


# Simulated logs: statistics and labels against the reference ---------------------------------------
@pytest.fixture(scope="module")
def sim(tmp_path_factory):
    root = tmp_path_factory.mktemp("sim")
    config = world_config.SimConfig(num_users=400, num_items=250, days=10, seed=3)
    writing.write_simulation(config, str(root / "sim"), plot=False)
    stats_dir = str(root / "stats")
    statistics.compute_stats(str(root / "sim/logs/day-0[0-6].csv.gz"), stats_dir)
    return root, stats_dir


def read_frame(pattern):
    frames = [pd.read_csv(p, dtype={"user_id": str, "item_id": str}, keep_default_na=False)
              for p in sorted(glob.glob(pattern))]
    return pd.concat(frames, ignore_index=True)


def test_stats_equal_the_reference(sim):
    root, stats_dir = sim
    window = read_frame(str(root / "sim/logs/day-0[0-6].csv.gz"))
    want = reference_stats(window)
    artifact = stats_artifact.load_artifact(stats_dir)
    got = stats_artifact.read_stats_json(stats_dir)
    assert got["format_version"] == stats_artifact.FORMAT_VERSION
    assert got["rows"] == len(window) and got["clicks"] == int(window["click"].sum())
    for key in ("mu", "sigma", "x_l", "x_h"):
        assert got[key] == pytest.approx(want[key], rel=1e-6), key
    assert artifact.item_p10.keys() == want["item_p10"].keys()
    for item, p10 in want["item_p10"].items():
        assert artifact.item_p10[item] == pytest.approx(p10, rel=1e-12), item
    assert artifact.user_day_clicks == {(u, int(d)): n for (u, d), n in want["user_days"].items()}
    edges = np.exp(np.linspace(want["log_lo"], want["log_hi"], 9))
    np.testing.assert_allclose(got["dwell_bin_edges"], edges, rtol=1e-9)
    assert got["ndt"]["offset"] == pytest.approx(want["x_l"], rel=1e-6)
    # Bin medians: medians of the clicked dwells > 0 in each bin.
    dwell = window.loc[(window.click == 1) & (window.dwell_time > 0), "dwell_time"].to_numpy()
    bins = np.clip(np.floor((np.log(dwell) - want["log_lo"]) / (want["log_hi"] - want["log_lo"])
                            * 8), 0, 7)
    np.testing.assert_allclose(got["dwell_bin_medians"],
                               [np.median(dwell[bins == b]) for b in range(8)], rtol=1e-9)
    # Numeric features: mean and deviation of log1p(max(x, 0)).
    x = np.log1p(np.maximum(window["item_length"].to_numpy(float), 0))
    assert got["numeric_features"]["item_length"]["mean"] == pytest.approx(x.mean(), rel=1e-9)
    assert got["numeric_features"]["item_length"]["std"] == pytest.approx(x.std(), rel=1e-6)


def label_with_reference(frame, artifact, stats_day_rows=None):
    edges = np.log(artifact.dwell_bin_edges)
    ndt = artifact.ndt
    return reference_labels(frame, x_l=artifact.x_l, item_p10=artifact.item_p10,
                            history=artifact.user_day_clicks,
                            ndt={"offset": ndt.offset, "tau": ndt.tau, "A": ndt.A, "B": ndt.B},
                            log_lo=edges[0], log_hi=edges[-1], num_bins=artifact.num_bins,
                            stats_day_rows=stats_day_rows)


@pytest.mark.parametrize("engine", ["local", "beam"])
def test_labels_with_late_rows_of_stats_days_equal_the_reference(sim, tmp_path, engine):
    """Day 7's logs with a sliver of each of days 5 and 6 (late rows, as hourly files hold
    them): both engines label as the reference, which leaves days 5 and 6 to the stats window
    (`stats_day_rows` by pandas from the stats input) and counts day 7 from the input."""
    from pipelines.label import labelling_beam

    root, stats_dir = sim
    stats_input = read_frame(str(root / "sim/logs/day-0[0-6].csv.gz"))
    stats_day_rows = (stats_input["timestamp"] // DAY).value_counts().to_dict()
    late = stats_input[(stats_input["timestamp"] // DAY).isin(
        [min(stats_day_rows) + 5, min(stats_day_rows) + 6])].tail(40)
    frame = pd.concat([late, read_frame(str(root / "sim/logs/day-07.csv.gz"))],
                      ignore_index=True)
    path = str(tmp_path / "day-07-hourly.csv")
    frame.to_csv(path, index=False)
    label = labelling.label_logs if engine == "local" else labelling_beam.label_logs_beam
    summary = label(path, stats_dir, str(tmp_path / "out"), fmt="csv")
    got = read_frame(str(tmp_path / "out/*.csv.gz"))
    frame = read_frame(path)
    want = label_with_reference(frame, stats_artifact.load_artifact(stats_dir), stats_day_rows)
    for column in ("valid_read", "valid_read_rule"):
        np.testing.assert_array_equal(got[column].to_numpy(), want[column].to_numpy(), column)
    assert sorted(summary.t2_days_from_artifact) == sorted(
        (late["timestamp"] // DAY).unique().tolist())
    # The rule matters here: counting days 5 and 6 from the sliver labels other reads.
    literal = label_with_reference(frame, stats_artifact.load_artifact(stats_dir))
    assert (literal["valid_read"] != want["valid_read"]).any()


@pytest.mark.parametrize("engine", ["local", "beam"])
def test_days_neither_the_logs_nor_the_stats_hold_are_named(sim, tmp_path, engine):
    """Day 9's logs with the statistics of days 0-6: rule T2's window of day 9 reaches days 7
    and 8, which neither holds. Both engines label as the reference, whose history lacks them
    (every user's clicks there count 0), and name the two days; days 7-9 together name none."""
    from pipelines.label import labelling_beam

    root, stats_dir = sim
    artifact = stats_artifact.load_artifact(stats_dir)
    first = min(artifact.day_rows)
    label = labelling.label_logs if engine == "local" else labelling_beam.label_logs_beam
    path = str(root / "sim/logs/day-09.csv.gz")
    summary = label(path, stats_dir, str(tmp_path / "out"), fmt="csv")
    assert summary.t2_gap_days == [first + 7, first + 8]
    got = read_frame(str(tmp_path / "out/*.csv.gz"))
    want = label_with_reference(read_frame(path), artifact)
    for column in ("valid_read", "valid_read_rule"):
        np.testing.assert_array_equal(got[column].to_numpy(), want[column].to_numpy(), column)
    whole = label(str(root / "sim/logs/day-0[7-9].csv.gz"), stats_dir, str(tmp_path / "whole"),
                  fmt="csv")
    assert whole.t2_gap_days == []


def test_t2_gap_days_by_hand():
    from core.labeler import t2_gap_days, t2_gap_note

    stats = dict.fromkeys(range(100, 110), 500)  # days 100-109
    # Evaluation logs of days 111-113: the windows (7 days) reach 105-112; 110 is nowhere.
    assert t2_gap_days({111: 9, 112: 9, 113: 9}, stats, 7) == [110]
    assert t2_gap_days({110: 9, 111: 9}, stats, 7) == []
    # An outage inside the stats window, and a day missing between two of the input's.
    assert t2_gap_days({111: 9, 113: 9}, {d: 5 for d in stats if d != 107}, 7) == [107, 110, 112]
    # Nothing before the first day any log holds; a one-day window reaches no other day.
    assert t2_gap_days({100: 9, 101: 9}, {105: 5}, 7) == []
    assert t2_gap_days({111: 9}, stats, 1) == []
    # An artifact that did not record its days: unknown, so nothing named.
    assert t2_gap_days({111: 9}, None, 7) == []
    assert t2_gap_note([]) is None
    note = t2_gap_note([0, 1, 2, 3])
    assert note.startswith("rule T2's windows of these logs' days reach UTC 1970-01-01, "
                           "1970-01-02, 1970-01-03 and 1 more day(s), of which neither these "
                           "logs nor the stats artifact holds a row: every user's clicks there "
                           "count as 0")


def test_labels_equal_the_reference_on_simulated_logs(sim, tmp_path):
    root, stats_dir = sim
    pattern = str(root / "sim/logs/day-0[5-9].csv.gz")  # overlaps the stats window and beyond
    summary = labelling.label_logs(pattern, stats_dir, str(tmp_path / "out"), fmt="csv")
    got = read_frame(str(tmp_path / "out/*.csv.gz"))
    frame = read_frame(pattern)
    assert len(got) == len(frame) == summary.rows
    # Input columns pass through unchanged, in input order.
    pd.testing.assert_frame_equal(got[frame.columns], frame)
    want = label_with_reference(frame, stats_artifact.load_artifact(stats_dir))
    for column in ("valid_read", "valid_read_rule", "dwell_bin"):
        np.testing.assert_array_equal(got[column].to_numpy(), want[column].to_numpy(), column)
    np.testing.assert_allclose(got["ndt"], want["ndt"], atol=1e-5)
    np.testing.assert_allclose(got["log_dwell"], want["log_dwell"], atol=1e-5)
    # Every rule and every bin occurs, so the comparison covers them.
    assert set(got["valid_read_rule"]) == {0, 1, 2, 3}
    assert set(got["dwell_bin"]) == set(range(-1, 8))
    assert summary.valid_reads == int(want["valid_read"].sum())


def test_tfrecord_output_carries_the_same_labels_and_the_input(sim, tmp_path):
    root, stats_dir = sim
    pattern = str(root / "sim/logs/day-08.csv.gz")
    labelling.label_logs(pattern, stats_dir, str(tmp_path / "csv"), fmt="csv")
    labelling.label_logs(pattern, stats_dir, str(tmp_path / "tfr"), fmt="tfrecord")
    from core import logs

    batches = list(logs.read_logs(str(tmp_path / "tfr/*.tfrecord.gz"), 4096).as_numpy_iterator())
    tfr = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    want = read_frame(str(tmp_path / "csv/*.csv.gz"))
    np.testing.assert_array_equal(tfr["impression_id"].astype(str),  # text, as written
                                  want["impression_id"].astype(str))
    np.testing.assert_array_equal(tfr["category"].astype(str), want["category"])
    for column in ("valid_read", "valid_read_rule", "dwell_bin"):
        np.testing.assert_array_equal(tfr[column], want[column], column)
    np.testing.assert_allclose(tfr["ndt"], want["ndt"], atol=1e-5)


def test_tfrecord_input_passes_its_records_through(tmp_path, sim):
    _, stats_dir = sim
    config = world_config.SimConfig(num_users=100, num_items=80, days=2, seed=5)
    writing.write_simulation(config, str(tmp_path / "sim"), "tfrecord", plot=False)
    labelling.label_logs(str(tmp_path / "sim/logs/*.tfrecord.gz"), stats_dir,
                         str(tmp_path / "tfr"), fmt="tfrecord")
    labelling.label_logs(str(tmp_path / "sim/logs/*.tfrecord.gz"), stats_dir,
                         str(tmp_path / "csv"), fmt="csv")
    from core import logs

    batches = list(logs.read_logs(str(tmp_path / "tfr/*.tfrecord.gz"), 4096).as_numpy_iterator())
    tfr = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
    want = read_frame(str(tmp_path / "csv/*.csv.gz"))
    np.testing.assert_array_equal(tfr["impression_id"].astype(str),  # text, as written
                                  want["impression_id"].astype(str))
    for column in ("valid_read", "valid_read_rule", "dwell_bin"):
        np.testing.assert_array_equal(tfr[column], want[column], column)



def _records(path):
    import tensorflow as tf

    return [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(
        path, "GZIP")]


def test_every_format_pair_passes_the_input_through_and_refuses_what_csv_cannot_hold(
        sim, tmp_path):
    # Unclicked dwell allowed (zeroed for the labels): CSV to TFRecord and TFRecord to CSV wrote
    # the zeroed 0, CSV to CSV and TFRecord to TFRecord (raw lines, records) the 3.5 read.
    from core import log_writers, logs

    root, stats_dir = sim
    frame = pd.read_csv(root / "sim/logs/day-08.csv.gz", dtype=str, keep_default_na=False)
    frame = frame.iloc[:40].reset_index(drop=True)
    row = int(np.flatnonzero(frame["click"] == "0")[0])
    frame.loc[row, "dwell_time"] = "3.5"
    (tmp_path / "csv").mkdir()
    frame.to_csv(tmp_path / "csv/log.csv", index=False)
    columns = {k: v for k, v in next(logs.read_logs(
        str(tmp_path / "csv/log.csv"), 100, allow_unclicked_dwell=True).as_numpy_iterator()
    ).items() if not k.startswith("_")}
    columns["dwell_time"] = columns["dwell_time"].copy()
    columns["dwell_time"][row] = 3.5
    (tmp_path / "tfr").mkdir()
    log_writers.write_tfrecord(str(tmp_path / "tfr/log.tfrecord.gz"), columns)
    for source in ("csv/log.csv", "tfr/log.tfrecord.gz"):
        for fmt in ("csv", "tfrecord"):
            out = tmp_path / f"out-{source.split('/')[0]}-{fmt}"
            labelling.label_logs(str(tmp_path / source), stats_dir, str(out), fmt=fmt,
                                 allow_unclicked_dwell=True)
            shard, = glob.glob(str(out / "00000-*"))
            if fmt == "csv":
                got = pd.read_csv(shard)
                dwell = float(got["dwell_time"][row])
                assert got["ndt"][row] == 0 and got["valid_read"][row] == 0
            else:
                example = _records(shard)[row]
                dwell = example.features.feature["dwell_time"].float_list.value[0]
            assert dwell == 3.5, (source, fmt)
    # A text feature with a line break: a TFRecord holds it, a CSV log cannot (the reader's
    # contract); labelled to CSV it is refused, naming the record, not written unreadable.
    columns["category"] = columns["category"].copy()
    columns["category"][6] = b"news\nsports"
    log_writers.write_tfrecord(str(tmp_path / "tfr/log.tfrecord.gz"), columns)
    with pytest.raises(InputError, match="log.tfrecord.gz, record 7, column 'category': a line "
                                         "break, which a CSV log cannot hold"):
        labelling.label_logs(str(tmp_path / "tfr/log.tfrecord.gz"), stats_dir,
                             str(tmp_path / "broken"), fmt="csv", allow_unclicked_dwell=True)
    assert not os.path.exists(tmp_path / "broken")
    labelling.label_logs(str(tmp_path / "tfr/log.tfrecord.gz"), stats_dir,
                         str(tmp_path / "kept"), fmt="tfrecord", allow_unclicked_dwell=True)
    kept = _records(glob.glob(str(tmp_path / "kept/00000-*"))[0])[6]
    assert kept.features.feature["category"].bytes_list.value[0] == b"news\nsports"


def test_an_output_dir_holding_the_input_is_refused_and_the_input_kept(sim, tmp_path):
    root, stats_dir = sim
    logs_dir = tmp_path / "dl"
    logs_dir.mkdir()
    raw = logs_dir / "00000-raw.csv"  # named like a label shard: the folder looked like one
    pd.read_csv(root / "sim/logs/day-08.csv.gz", dtype=str, keep_default_na=False).iloc[
        :30].to_csv(raw, index=False)
    before = raw.read_bytes()
    with pytest.raises(InputError, match="--output_dir .*dl holds the input .*00000-raw.csv"):
        labelling.label_logs(str(raw), stats_dir, str(logs_dir), fmt="csv")
    assert os.listdir(logs_dir) == ["00000-raw.csv"] and raw.read_bytes() == before


def test_a_bad_row_met_by_the_counting_pass_is_an_input_error_for_library_callers(sim,
                                                                                  tmp_path):
    root, stats_dir = sim
    frame = pd.read_csv(root / "sim/logs/day-08.csv.gz", dtype=str, keep_default_na=False)
    frame = frame.iloc[:30].reset_index(drop=True)
    frame.loc[4, "click"] = "2"
    frame.to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(InputError, match=r"bad.csv, line 6, column 'click': expected 0 or 1, "
                                         "found 2"):
        labelling.label_logs(str(tmp_path / "bad.csv"), stats_dir, str(tmp_path / "out"))
    assert not os.path.exists(tmp_path / "out")

def test_short_artifact_days_by_hand():
    from core.labeler import short_artifact_days, short_artifact_note

    artifact = {0: 3, 1: 100, 2: 80, 3: 120, 4: 2, 5: 1000}  # 0 and 5: maybe slivers
    logs = {0: 50, 1: 100, 2: 100, 3: 100, 4: 50, 5: 40, 6: 9}
    # Day 4: 2 rows seen of 50; day 3: fewer here; day 1: as many; day 5: the last.
    assert short_artifact_days(logs, artifact) == {2: (100, 80), 4: (50, 2)}
    assert short_artifact_days({2: 84}, artifact) == {}  # 5 % more: late rows, not a note
    assert short_artifact_days({2: 85}, artifact) == {2: (85, 80)}
    assert short_artifact_days(logs, {1: 5, 2: 5}) == {}  # no day seen whole
    assert short_artifact_days(logs, None) == {}
    assert short_artifact_note({}) is None
    assert short_artifact_note({2: (10, 8)}).startswith(
        "these logs hold more rows of 1970-01-03 (10 rows here, 8 in the stats window) than "
        "the stats job saw")


@pytest.fixture(scope="module")
def other_world(tmp_path_factory):
    """The directory of another simulated world than `sim`'s, of the same dates (twice the
    users; read only by the tests)."""
    root = tmp_path_factory.mktemp("other_world")
    other = dataclasses.replace(world_config.SimConfig(num_users=400, num_items=250, days=10,
                                                       seed=3), num_users=800, seed=4)
    writing.write_simulation(other, str(root / "other"), plot=False)
    return root / "other"


@pytest.mark.parametrize("engine", ["local", "beam"])
def test_logs_of_another_world_than_the_stats_are_named(sim, other_world, tmp_path, engine):
    """The stats of one simulated world, another world's logs of the same dates (twice the
    users): the days the artifact saw whole and fewer rows of are named (pandas' counts), and
    the stats world's own logs, read as other files, give no such day."""
    root, stats_dir = sim

    def day_rows(pattern):
        frame = pd.concat(pd.read_csv(p, usecols=["timestamp"]) for p in glob.glob(pattern))
        return (frame["timestamp"] // 86400).value_counts().to_dict()

    seen = day_rows(str(root / "sim/logs/day-0[0-6].csv.gz"))
    here = day_rows(str(other_world / "logs/day-0[0-6].csv.gz"))
    inner = range(min(seen) + 1, max(seen))
    want = {d: (here[d], seen[d]) for d in inner
            if d in here and 0 < seen[d] * 1.05 < here[d]}  # more than 5 % more rows here
    assert len(want) >= 3
    from pipelines.label import labelling_beam

    label = labelling.label_logs if engine == "local" else labelling_beam.label_logs_beam
    summary = label(str(other_world / "logs/day-0[0-6].csv.gz"), stats_dir,
                    str(tmp_path / "out"), fmt="csv")
    assert summary.short_artifact_days == want
    os.makedirs(tmp_path / "copy")
    for path in glob.glob(str(root / "sim/logs/day-0[2-8].csv.gz")):
        shutil.copy(path, tmp_path / "copy")
    same = label(str(tmp_path / "copy/*.csv.gz"), stats_dir, str(tmp_path / "same"), fmt="csv")
    assert same.short_artifact_days == {}


def _read_with_defaults(pattern, defaults):
    """Every row of `pattern`, a missing value read as `defaults[column]` (as training reads a
    feature whose config sets `default`)."""
    from core import logs

    source = logs.open_logs(pattern)
    source = dataclasses.replace(source, schema=source.schema.with_missing(defaults))
    batches = list(source.dataset(4096).as_numpy_iterator())
    return {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}


def test_a_missing_value_stays_missing_in_the_label_jobs_output(sim, tmp_path):
    """A CSV log's empty field is an empty value list in the labelled tf.Example (the column
    kept), and a tf.Example's absent feature an empty CSV field: a model whose feature config
    sets a `default` reads the default from the labelled shards, as from the raw logs and as
    serving does (written as 0 or "", it read 0 or "")."""
    from core import log_writers, logs

    root, stats_dir = sim
    frame = pd.read_csv(root / "sim/logs/day-08.csv.gz", dtype=str, keep_default_na=False)
    holes = np.random.default_rng(0).random((len(frame), 4)) < 0.2
    for column, hole in zip(("item_length", "publish_age_hours", "category", "impression_id"),
                            holes.T):
        frame.loc[hole, column] = ""
    frame["rating"] = ""  # empty on every row: the shards keep the column all the same
    frame.to_csv(tmp_path / "holes.csv", index=False)
    defaults = {"item_length": 500, "publish_age_hours": 24.0, "category": "unknown"}
    want = _read_with_defaults(str(tmp_path / "holes.csv"), defaults)
    assert (want["item_length"] == 500).sum() == holes[:, 0].sum() > 0
    labelling.label_logs(str(tmp_path / "holes.csv"), stats_dir, str(tmp_path / "tfr"),
                         fmt="tfrecord")
    labelling.label_logs(str(tmp_path / "holes.csv"), stats_dir, str(tmp_path / "csv"),
                         fmt="csv")
    raw_types = logs.open_logs(str(tmp_path / "holes.csv")).schema.dtypes
    import tensorflow as tf

    shard, = glob.glob(str(tmp_path / "tfr/*.tfrecord.gz"))
    first_hole = int(np.flatnonzero(holes[:, 0])[0])
    record = list(tf.data.TFRecordDataset(shard, "GZIP").skip(first_hole).take(1))[0]
    feature = tf.train.Example.FromString(record.numpy()).features.feature["item_length"]
    assert feature.WhichOneof("kind") == "int64_list" and not feature.int64_list.value
    for shards in ("tfr/*.tfrecord.gz", "csv/*.csv.gz"):
        dtypes = logs.open_logs(str(tmp_path / shards)).schema.dtypes
        assert {c: dtypes.get(c) for c in raw_types} == raw_types, shards
        got = _read_with_defaults(str(tmp_path / shards), defaults)
        for column in ("item_length", "publish_age_hours", "category", "position",
                       "impression_id", "rating"):
            np.testing.assert_array_equal(got[column], want[column], f"{shards} {column}")
    # A TFRecord log whose records leave the features out: empty fields in the CSV output.
    frame = frame.drop(columns=["rating", "impression_id"])
    columns = {c: frame[c].to_numpy(object) for c in frame.columns if c != "dwell_time"}
    columns["timestamp"] = frame["timestamp"].astype(np.int64).to_numpy()
    columns["click"] = frame["click"].astype(np.int64).to_numpy()
    columns["dwell_time"] = frame["dwell_time"].astype(np.float32).to_numpy()
    columns["item_length"] = np.where(holes[:, 0], "0", frame["item_length"]).astype(np.int64)
    columns["publish_age_hours"] = np.where(holes[:, 1], "0", frame["publish_age_hours"]
                                            ).astype(np.float32)
    records = np.empty(len(frame), object)
    sparse = ("item_length", "publish_age_hours", "category")
    for pattern in {tuple(h) for h in holes[:, :3].tolist()}:
        rows = np.flatnonzero((holes[:, :3] == pattern).all(axis=1))
        kept = {c: v[rows] for c, v in columns.items()
                if c not in sparse or not pattern[sparse.index(c)]}
        records[rows] = log_writers.serialize_examples(kept)
    with tf.io.TFRecordWriter(str(tmp_path / "holes.tfrecord")) as writer:
        for record in records:
            writer.write(record)
    labelling.label_logs(str(tmp_path / "holes.tfrecord"), stats_dir, str(tmp_path / "back"),
                         fmt="csv")
    back = read_frame(str(tmp_path / "back/*.csv*"))
    for column, hole in zip(("item_length", "publish_age_hours", "category"), holes.T):
        assert (back[column].astype(str) == "").tolist() == hole.tolist(), column
    got = _read_with_defaults(str(tmp_path / "back/*.csv*"), defaults)
    for column in ("item_length", "publish_age_hours", "category"):
        np.testing.assert_array_equal(got[column], want[column], column)


def test_ids_are_bytes_in_every_example_written(tmp_path, sim):
    """The simulator writes ids as bytes; an input whose ids are int64 is labelled into
    examples whose ids are bytes (what serving parses), the other features untouched."""
    import tensorflow as tf

    from core import log_writers

    _, stats_dir = sim
    config = world_config.SimConfig(num_users=100, num_items=80, days=2, seed=5)
    writing.write_simulation(config, str(tmp_path / "sim"), "tfrecord", plot=False)
    path = sorted(glob.glob(str(tmp_path / "sim/logs/*.tfrecord.gz")))[0]
    first = next(iter(tf.data.TFRecordDataset(path, "GZIP").as_numpy_iterator()))
    example = tf.train.Example.FromString(first)
    assert example.features.feature["user_id"].WhichOneof("kind") == "bytes_list"
    assert example.features.feature["item_id"].WhichOneof("kind") == "bytes_list"
    # Rewrite the logs with int64 user ids, as another system might store them.
    rows = [tf.train.Example.FromString(r) for r in
            tf.data.TFRecordDataset(path, "GZIP").as_numpy_iterator()]
    for row in rows:
        user = row.features.feature["user_id"].bytes_list.value[0]
        row.features.feature["user_id"].Clear()
        row.features.feature["user_id"].int64_list.value.append(int(user))
    with tf.io.TFRecordWriter(str(tmp_path / "ints.tfrecord")) as writer:
        for row in rows:
            writer.write(row.SerializeToString())
    labelling.label_logs(str(tmp_path / "ints.tfrecord"), stats_dir, str(tmp_path / "out"),
                         fmt="tfrecord")
    out = sorted(glob.glob(str(tmp_path / "out/*.tfrecord*")))[0]
    parsed = tf.io.parse_example(
        list(tf.data.TFRecordDataset(out, "GZIP").as_numpy_iterator()),
        {"user_id": tf.io.FixedLenFeature([], tf.string),
         "position": tf.io.FixedLenFeature([], tf.int64),
         "valid_read": tf.io.FixedLenFeature([], tf.int64)})
    expected = [str(r.features.feature["user_id"].int64_list.value[0]).encode() for r in rows]
    assert parsed["user_id"].numpy().tolist() == expected
    assert parsed["position"].numpy().tolist() == [
        r.features.feature["position"].int64_list.value[0] for r in rows]
    as_int = log_writers.serialize_examples({"user_id": np.array([7])})
    assert as_int == log_writers.serialize_examples({"user_id": np.array(["7"], dtype=object)})



def test_an_artifact_in_a_directory_named_with_glob_characters_is_read_whole(sim, tmp_path):
    # Its tables were found by a glob of the directory: `stats[v2]/part-*.csv` matched nothing,
    # and the artifact loaded with no item P10 and no user-day clicks (rules T2, T3 silent).
    root, stats_dir = sim
    odd = str(tmp_path / "stats[v2]*")
    statistics.compute_stats(str(root / "sim/logs/day-0[0-6].csv.gz"), odd,
                             statistics.StatsConfig(), engine="local")
    plain, named = stats_artifact.load_artifact(stats_dir), stats_artifact.load_artifact(odd)
    assert len(named.item_p10) > 0 and len(named.user_day_clicks) > 0
    assert named.item_p10 == plain.item_p10 and named.user_day_clicks == plain.user_day_clicks

def test_beam_job_gives_the_same_artifact_with_two_workers(sim, tmp_path):
    """Files read in groups of two by two worker processes against the fixture's artifact
    (all seven files read through one dataset by one worker)."""
    root, stats_dir = sim
    statistics.compute_stats(str(root / "sim/logs/day-0[0-6].csv.gz"), str(tmp_path / "two"),
                             statistics.StatsConfig(files_per_read=2),
                             beam_args=["--direct_num_workers=2",
                                        "--direct_running_mode=multi_processing"])
    one, two = stats_artifact.load_artifact(stats_dir), stats_artifact.load_artifact(str(tmp_path / "two"))
    json_one = stats_artifact.read_stats_json(stats_dir)
    json_two = stats_artifact.read_stats_json(str(tmp_path / "two"))
    for key in ("mu", "sigma", "x_l", "x_h", "ndt", "dwell_bin_edges", "dwell_bin_medians",
                "rows", "clicks", "items_with_p10", "user_days", "rules"):
        assert json_one[key] == json_two[key], key
    for name, moments in one.numeric_features.items():
        for k, v in moments.items():
            assert two.numeric_features[name][k] == pytest.approx(v, rel=1e-12)
    assert one.item_p10 == two.item_p10
    assert one.user_day_clicks == two.user_day_clicks
    assert json_one["files"] == json_two["files"]


# Hand-built edge cases -----------------------------------------------------------------------------
def test_the_stats_own_files_are_labelled_from_its_counts_without_a_pass(sim, tmp_path):
    """Labelling the very files of the stats window needs no counting pass (the artifact's user
    table and file records hold the counts); the labels equal the reference and, byte for byte,
    those of a counting pass (an artifact without file records); a changed file is counted."""
    import shutil

    from core import logs
    from core.labeler import labeler_for

    root, stats_dir = sim
    pattern = str(root / "sim/logs/day-0[0-6].csv.gz")
    artifact = stats_artifact.load_artifact(stats_dir)
    source = logs.open_logs(pattern)
    assert not labeler_for(source, artifact).counted
    assert labeler_for(logs.open_logs(str(root / "sim/logs/day-0[0-5].csv.gz")), artifact).counted
    recorded = [r["rows"] for r in stats_artifact.read_stats_json(stats_dir)["files"]]
    assert recorded == [len(pd.read_csv(p)) for p in sorted(glob.glob(pattern))]

    labelling.label_logs(pattern, stats_dir, str(tmp_path / "skip"), fmt="csv")
    without_files = tmp_path / "stats_without_files"
    shutil.copytree(stats_dir, without_files)
    stats = stats_artifact.read_stats_json(str(without_files))
    del stats["files"]
    (without_files / "stats.json").write_text(json.dumps(stats))
    labelling.label_logs(pattern, str(without_files), str(tmp_path / "count"), fmt="csv")
    names = sorted(os.listdir(tmp_path / "skip"))
    assert names == sorted(os.listdir(tmp_path / "count")) and names
    for name in names:
        if name.endswith(".csv.gz"):
            assert ((tmp_path / "skip" / name).read_bytes()
                    == (tmp_path / "count" / name).read_bytes()), name
    got = read_frame(str(tmp_path / "skip/*.csv.gz"))
    want = label_with_reference(read_frame(pattern), artifact)
    for column in ("valid_read", "valid_read_rule", "dwell_bin"):
        np.testing.assert_array_equal(got[column].to_numpy(), want[column].to_numpy(), column)
    assert set(got["valid_read_rule"]) == {0, 1, 2, 3}

    # A file that changed since the stats were computed is counted again.
    copy = tmp_path / "logs"
    shutil.copytree(root / "sim/logs", copy)
    moved = stats_artifact.load_artifact(stats_dir)
    assert labeler_for(logs.open_logs(str(copy / "day-0[0-6].csv.gz")), moved).counted


def test_only_the_unchanged_stats_files_each_once_skip_the_count(sim, tmp_path):
    """counts_for takes the artifact's counts only for exactly its files: not for one file
    named twice (two spellings, or a link) in place of another, not for a file rewritten with
    its size and modification time kept, not for a URL; and a file that changes while the
    stats job reads it gets no record."""
    import shutil

    root, stats_dir = sim
    artifact = stats_artifact.load_artifact(stats_dir)
    paths = sorted(glob.glob(str(root / "sim/logs/day-0[0-6].csv.gz")))
    assert artifact.counts_for(paths) is not None
    assert artifact.counts_for(list(reversed(paths))) is not None  # order does not matter
    twice = paths[:-1] + [os.path.join(os.path.dirname(paths[0]), ".", os.path.basename(paths[0]))]
    assert artifact.counts_for(twice) is None
    link = tmp_path / "link.csv.gz"
    os.symlink(paths[0], link)
    assert artifact.counts_for(paths[:-1] + [str(link)]) is None
    assert artifact.counts_for(paths[:-1] + ["gs://bucket/" + os.path.basename(paths[-1])]) is None

    # Rewritten in place with the same size and modification time: ctime and inode differ.
    rewritten = tmp_path / "logs"
    shutil.copytree(root / "sim/logs", rewritten)
    shutil.copytree(stats_dir, tmp_path / "stats")
    stats = stats_artifact.read_stats_json(str(tmp_path / "stats"))
    copies = sorted(glob.glob(str(rewritten / "day-0[0-6].csv.gz")))
    stats["files"] = [{**stats_artifact.file_status(p), "rows": r["rows"], "day_rows": r["day_rows"]}
                      for p, r in zip(copies, stats["files"])]
    (tmp_path / "stats" / "stats.json").write_text(json.dumps(stats))
    assert stats_artifact.load_artifact(str(tmp_path / "stats")).counts_for(copies) is not None
    status = os.stat(copies[0])
    data = bytearray(open(copies[0], "rb").read())
    data[-20] ^= 1
    os.remove(copies[0])
    open(copies[0], "wb").write(bytes(data))
    os.utime(copies[0], ns=(status.st_atime_ns, status.st_mtime_ns))
    assert os.stat(copies[0]).st_size == status.st_size
    assert os.stat(copies[0]).st_mtime_ns == status.st_mtime_ns
    assert stats_artifact.load_artifact(str(tmp_path / "stats")).counts_for(copies) is None

    before = stats_artifact.file_status(paths[0])
    assert stats_artifact.file_record(paths[0], {1: 2}, before)["day_rows"] == {"1": 2}
    assert stats_artifact.file_record(paths[0], {1: 2}, {**before, "bytes": 1}) is None
    assert stats_artifact.file_record("gs://bucket/x.csv", {1: 2}, None) is None


HEADER = ["user_id", "item_id", "timestamp", "click", "dwell_time"]
D = 20_000  # a UTC day number; its midnight is D * 86400


def write_log(path, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(rows)
    return str(path)


def history_rows():
    """A stats window: a spread of dwell times (so mu, sigma and bins are defined) and:
    - user 'hist6' with 6 clicks on day D-6; user 'hist7' with 7 clicks on day D-7;
    - item 'four' with 4 clicks, item 'five' with 5 clicks (dwell 30..70)."""
    rows = []
    rng = np.random.default_rng(0)
    for k, t in enumerate(np.exp(rng.normal(4, 1.3, 400))):
        rows.append((f"bg{k % 50}", f"bg{k % 40}", (D - 10) * DAY + k, 1, round(float(t), 3)))
    rows += [("hist6", "bgx", (D - 6) * DAY + k, 1, 100.0) for k in range(6)]
    rows += [("hist7", "bgx", (D - 7) * DAY + k, 1, 100.0) for k in range(7)]
    rows += [(f"h{k}", "four", (D - 9) * DAY + k, 1, 30.0 + 10 * k) for k in range(4)]
    rows += [(f"h{k}", "five", (D - 9) * DAY + k, 1, 30.0 + 10 * k) for k in range(5)]
    return rows


@pytest.fixture(scope="module")
def hand(tmp_path_factory):
    root = tmp_path_factory.mktemp("hand")
    stats_dir = str(root / "stats")
    statistics.compute_stats(write_log(root / "history.csv", history_rows()), stats_dir)
    return root, stats_dir


def label_rows(root, stats_dir, rows, name, **rules):
    import dataclasses

    path = write_log(root / f"{name}.csv", rows)
    artifact = stats_artifact.load_artifact(stats_dir)
    out = root / f"{name}-out"
    labelling.label_logs(path, stats_dir, str(out), fmt="csv",
                         rules=dataclasses.replace(artifact.rules, **rules))
    return read_frame(str(out / "*.csv.gz"))


def test_item_p10_only_with_enough_records(hand):
    _, stats_dir = hand
    artifact = stats_artifact.load_artifact(stats_dir)
    assert "four" not in artifact.item_p10
    assert artifact.item_p10["five"] == pytest.approx(np.percentile([30, 40, 50, 60, 70], 10))


def test_t2_window_counts_seven_days_inclusive_with_history(hand):
    root, stats_dir = hand
    # Day D is covered by these logs; D-6 (hist6's 6 clicks) and D-7 come from the artifact.
    # T1 off (threshold 1e9), so only T2 (and T3, unused here) can make a valid read.
    rows = [("hist6", "new", D * DAY + 5, 1, 10.0),   # window = 6 + 1 = 7 -> not light
            ("hist7", "new", D * DAY + 6, 1, 10.0),   # D-7 is outside: window = 1 -> light
            ("fresh", "new", D * DAY + 7, 1, 10.0)]   # window = 1 -> light
    got = label_rows(root, stats_dir, rows, "t2", t1_threshold=1e9)
    assert got["valid_read_rule"].tolist() == [0, 2, 2]
    # Day D-6 held by the labelled logs (as many of its rows as the stats job saw: 6) counts
    # from them, replacing the artifact's count, not adding to it: hist6 then has 0 (D-6, six
    # unclicked rows here) + 1 (D) = 1 -> light.
    held = [("hist6", "new", (D - 6) * DAY + k, 0, 0.0) for k in range(6)]
    got2 = label_rows(root, stats_dir, held + rows, "t2-covered", t1_threshold=1e9)
    assert got2["valid_read_rule"].tolist() == [0] * 6 + [2, 2, 2]
    # A sliver of D-6 (1 row against the artifact's 6: a late row in the next day's file): each
    # user's D-6 count is the larger of the two, so hist6 keeps 6 + 1 = 7 -> not light.
    sliver = [("hist6", "new", (D - 6) * DAY + 1, 0, 0.0)] + rows
    got_sliver = label_rows(root, stats_dir, sliver, "t2-sliver", t1_threshold=1e9)
    assert got_sliver["valid_read_rule"].tolist() == [0, 0, 2, 2]
    # Other users' rows of D-6 (5 rows against 6: a held-out sample, say): 'other', whom the
    # artifact lacks, keeps its own 5 clicks of D-6: 5 + 1 = 6 -> not light below 6.
    others = [("other", "bgx", (D - 6) * DAY + 10 + k, 1, 100.0) for k in range(5)] + [
        ("other", "new", D * DAY + 8, 1, 10.0)]
    got_others = label_rows(root, stats_dir, others, "t2-others", t1_threshold=1e9,
                            light_user_clicks=6)
    assert got_others["valid_read_rule"].tolist()[-1] == 0
    # The threshold and window are flags.
    got3 = label_rows(root, stats_dir, rows, "t2-flags", t1_threshold=1e9, light_user_clicks=8)
    assert got3["valid_read_rule"].tolist() == [2, 2, 2]


def test_held_days_by_hand():
    from core.labeler import held_days, t2_days_note

    artifact = {100: 3_000, 101: 2_500, 102: 10}
    # The input holds day 102 (more rows), 103 (the artifact has none) and 101 (as many):
    # those count from it; day 100 (27 rows against 3,000) is left to the artifact.
    held, left = held_days({100: 27, 101: 2_500, 102: 11, 103: 1}, artifact)
    assert held == {101, 102, 103} and left == {100: (27, 3_000)}
    # An artifact without its files' day rows: every day of the input (SPEC's letter).
    assert held_days({100: 27, 103: 1}, None) == ({100, 103}, {})
    assert t2_days_note({}) is None
    note = t2_days_note({0: (1, 3_008), 1: (2, 5), 2: (3, 6), 3: (4, 7)})
    assert note.startswith("rule T2 takes each user's clicks on 1970-01-01 (1 row here, 3,008 "
                           "in the stats window), 1970-01-02 (2 rows here, 5 in the stats "
                           "window), ")
    assert " and 1 more day(s) as the larger of these logs' count and the stats artifact's" in (
        note)


def test_the_artifact_keeps_rows_per_day_however_its_files_were_read(hand, tmp_path):
    """stats.json's day_rows (rule T2's held days) are the input's rows per UTC day, also when
    its file records are empty (a gs:// input, a file changed while read); artifacts made
    before them take them from the file records, or have none."""
    import shutil

    _, stats_dir = hand
    want = pd.Series([row[2] // DAY for row in history_rows()]).value_counts().to_dict()
    assert stats_artifact.load_artifact(stats_dir).day_rows == want
    copy = tmp_path / "stats"
    shutil.copytree(stats_dir, copy)
    stats = json.load(open(copy / "stats.json"))
    for drop, expected in (("files", want), ("day_rows", want), ("both", None)):
        edited = dict(stats)
        for key in (("files", "day_rows") if drop == "both" else (drop,)):
            edited.pop(key)
        (copy / "stats.json").write_text(json.dumps(edited))
        assert stats_artifact.load_artifact(str(copy)).day_rows == expected, drop


@pytest.mark.parametrize("engine", ["local", "beam"])
def test_a_late_row_of_a_stats_day_leaves_that_day_to_the_artifact(hand, run, engine):
    """hist6 clicked 6 times on D-6 (the stats window). Logs of day D whose file also holds
    one late row of D-6 label hist6's click on D with a window of 6 + 1 = 7 (not light), on
    both engines, and say which day they left to the artifact."""
    root, stats_dir = hand
    rows = [("late", "bgx", (D - 6) * DAY + 86_399, 0, 0.0),  # D-6 23:59:59, filed with D
            ("hist6", "new", D * DAY + 5, 1, 10.0), ("fresh", "new", D * DAY + 7, 1, 10.0)]
    path = write_log(root / f"late-{engine}.csv", rows)
    out = root / f"late-{engine}-out"
    done = run("pipelines.label", f"--input={path}", f"--stats={stats_dir}", "--format=csv",
               f"--output_dir={out}", f"--engine={engine}", "--t1_threshold=1e9")
    assert done.returncode == 0, done.stderr
    assert read_frame(str(out / "*.csv.gz"))["valid_read_rule"].tolist() == [0, 0, 2]
    day = label_rules.utc_date(D - 6)
    assert (f"note: rule T2 takes each user's clicks on {day} (1 row here, 6 in the stats "
            "window) as the larger of these logs' count and the stats artifact's") in done.stdout
    # The hand-made stats window has no row of days D-8 (which the late row's window reaches)
    # and D-5 to D-1 (day D's).
    gap = ", ".join(label_rules.utc_date(D - k) for k in (8, 5, 4))
    assert (f"note: rule T2's windows of these logs' days reach UTC {gap} and 3 more day(s), "
            "of which neither these logs nor the stats artifact holds a row") in done.stdout


def test_rule_precedence_floor_and_t3(hand):
    root, stats_dir = hand
    p10 = stats_artifact.load_artifact(stats_dir).item_p10["five"]  # 34 s
    heavy = [("heavy", "bgx", D * DAY + k, 1, 100.0) for k in range(10)]  # never light
    rows = heavy + [
        ("light", "five", D * DAY + 100, 1, 40.0),    # T1 (> 20) and T2 and T3 -> rule 1
        ("heavy", "five", D * DAY + 101, 1, 40.0),    # T1 and T3 -> 1
        ("heavy", "five", D * DAY + 102, 1, 19.0),    # T3 only? 19 < p10 (34): invalid -> 0
        ("heavy", "five", D * DAY + 103, 1, p10 + 0.5),  # T1 (> 20) -> 1
        ("light", "four", D * DAY + 104, 1, 12.0),    # T2 only (no P10 for 'four') -> 2
        ("light", "five", D * DAY + 105, 1, 4.9),     # below the floor -> 0 despite T2
        ("light", "five", D * DAY + 106, 0, 0.0),     # unclicked -> 0
    ]
    got = label_rows(root, stats_dir, rows, "precedence", t1_threshold=20.0)
    assert got["valid_read_rule"].tolist()[10:] == [1, 1, 0, 1, 2, 0, 0]
    # T3 alone: T1 off, a heavy user, dwell above the item's P10.
    rows = heavy + [("heavy", "five", D * DAY + 200, 1, 35.0),   # > 34: T3 -> 3
                    ("heavy", "five", D * DAY + 201, 1, 34.0),   # = P10: not above -> 0
                    ("heavy", "four", D * DAY + 202, 1, 90.0),   # no P10 -> 0
                    ("light", "five", D * DAY + 203, 1, 35.0)]   # T2 before T3 -> 2
    got = label_rows(root, stats_dir, rows, "t3", t1_threshold=1e9)
    assert got["valid_read_rule"].tolist()[10:] == [3, 0, 0, 2]
    assert got["valid_read"].tolist()[10:] == [1, 0, 0, 1]


def test_unclicked_and_zero_dwell_clicks(hand):
    root, stats_dir = hand
    rows = [("u", "bgx", D * DAY, 0, ""), ("u", "bgx", D * DAY + 1, 1, 0.0)]
    got = label_rows(root, stats_dir, rows, "zero")
    assert got["dwell_bin"].tolist() == [-1, 0]
    assert got["ndt"].tolist() == [0.0, 0.0] and got["log_dwell"].tolist() == [0.0, 0.0]
    assert got["valid_read"].tolist() == [0, 0]


def test_artifact_of_another_version_is_refused(hand, tmp_path):
    _, stats_dir = hand
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(stats_dir, copy)
    stats = json.loads((copy / "stats.json").read_text())
    stats["format_version"] = 0
    (copy / "stats.json").write_text(json.dumps(stats))
    with pytest.raises(InputError, match="format_version 0"):
        stats_artifact.load_artifact(str(copy))
    with pytest.raises(InputError, match="not a stats artifact"):
        stats_artifact.load_artifact(str(tmp_path))


def test_label_cli_bad_input_leaves_no_output(hand, run, tmp_path):
    root, stats_dir = hand
    bad = write_log(tmp_path / "bad.csv", [("u", "i", D * DAY, 1, 10.0),
                                           ("u", "i", D * DAY + 1, 0, 12.0)])
    result = run("pipelines.label", f"--input={bad}", f"--stats={stats_dir}",
                 f"--output_dir={tmp_path}/out", "--format=csv")
    assert result.returncode == 1
    assert "bad.csv, line 3, column 'dwell_time'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "out").exists()
    assert not [p for p in os.listdir(tmp_path) if p.startswith(".out")]
    result = run("pipelines.label", f"--input={bad}", f"--stats={stats_dir}",
                 f"--output_dir={tmp_path}/out", "--format=csv", "--allow_unclicked_dwell")
    assert result.returncode == 0, result.stderr
    assert "treated as 0: 1" in result.stdout
    assert (tmp_path / "out" / "labels.png").exists()
    # Re-running over its own output (shards, summary.json, labels.png) replaces it.
    again = run("pipelines.label", f"--input={bad}", f"--stats={stats_dir}",
                f"--output_dir={tmp_path}/out", "--format=csv", "--allow_unclicked_dwell")
    assert again.returncode == 0, again.stderr


def test_stats_cli_bad_input(run, tmp_path):
    bad = write_log(tmp_path / "bad.csv", [("u", "i", D * DAY, 3, 10.0)])
    result = run("pipelines.stats", f"--input={bad}", f"--output_dir={tmp_path}/stats")
    assert result.returncode == 1, result.stderr
    assert "bad.csv, line 2, column 'click': expected 0 or 1, found 3" in result.stderr
    assert not (tmp_path / "stats").exists()
    # The local engine: the same message, no traceback; Beam's options are refused.
    result = run("pipelines.stats", f"--input={bad}", f"--output_dir={tmp_path}/stats",
                 "--engine=local")
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert "bad.csv, line 2, column 'click': expected 0 or 1, found 3" in result.stderr
    good = write_log(tmp_path / "good.csv", history_rows())
    result = run("pipelines.stats", f"--input={good}", f"--output_dir={tmp_path}/stats",
                 "--engine=local", "--direct_num_workers=2")
    assert result.returncode == 1, result.stderr
    assert "unknown flag(s) --direct_num_workers=2 (Beam pipeline options need --engine=beam)" \
        in result.stderr
    no_clicks = write_log(tmp_path / "no_clicks.csv", [("u", "i", D * DAY, 0, "")])
    for engine in ("beam", "local"):
        result = run("pipelines.stats", f"--input={no_clicks}",
                     f"--output_dir={tmp_path}/stats", f"--engine={engine}")
        assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
        assert "the input has 0 click(s) with dwell > 0" in result.stderr, engine
    assert not (tmp_path / "stats").exists()


def test_dwell_in_milliseconds_is_named_by_the_stats_job(run, tmp_path):
    # history_rows' dwell in milliseconds: the automatic NDT fit fails, and its error says why.
    rows = [(u, i, t, c, round(d * 1000, 3)) for u, i, t, c, d in history_rows()]
    millis = write_log(tmp_path / "millis.csv", rows)
    seconds = np.array([d for *_, d in history_rows()])
    typical = float(np.exp(np.log(seconds * 1000).mean()))
    result = run("pipelines.stats", f"--input={millis}", f"--output_dir={tmp_path}/stats",
                 "--engine=local")
    assert result.returncode == 1, result.stderr
    assert "cannot fit NDT" in result.stderr
    assert f"typical dwell is exp(mu) = {typical:,.0f} s" in result.stderr
    assert "if it is in milliseconds, divide it by 1000" in result.stderr
    # With the NDT given, the artifact is written and the doubt is a warning.
    result = run("pipelines.stats", f"--input={millis}", f"--output_dir={tmp_path}/stats",
                 "--engine=local", "--ndt_tau=20")
    assert result.returncode == 0, result.stderr
    assert result.stderr.startswith("warning: the clicked rows' typical dwell is exp(mu) = ")
    # A flag mistake on the same logs is only that: no doubt about units added.
    result = run("pipelines.stats", f"--input={millis}", f"--output_dir={tmp_path}/stats_e",
                 "--engine=local", "--ndt=explicit")
    assert result.returncode == 1 and "--ndt=explicit needs" in result.stderr, result.stderr
    assert "milliseconds" not in result.stderr
    plain = run("pipelines.stats", f"--input={write_log(tmp_path / 's.csv', history_rows())}",
                f"--output_dir={tmp_path}/stats_s", "--engine=local")
    assert plain.returncode == 0 and "warning" not in plain.stderr, plain.stderr


def test_dwell_in_minutes_and_unknown_dwell_written_as_0_are_warned_about(run, tmp_path):
    # history_rows' dwell in minutes, and the same logs with a tenth of the clicks at dwell 0.
    rows = [(u, i, t, c, round(d / 60, 4)) for u, i, t, c, d in history_rows()]
    minutes = run("pipelines.stats", f"--input={write_log(tmp_path / 'min.csv', rows)}",
                  f"--output_dir={tmp_path}/stats_m", "--engine=local")
    assert minutes.returncode == 0, minutes.stderr
    assert "warning: the clicked rows' typical dwell is exp(mu) = " in minutes.stderr
    assert "multiply it by 60" in minutes.stderr
    rows = history_rows()
    clicked = [k for k, row in enumerate(rows) if row[3] == 1]
    zeroed = clicked[::10]
    rows = [row[:4] + (0.0,) if k in zeroed else row for k, row in enumerate(rows)]
    unknown = run("pipelines.stats", f"--input={write_log(tmp_path / 'zero.csv', rows)}",
                  f"--output_dir={tmp_path}/stats_z", "--engine=local")
    assert unknown.returncode == 0, unknown.stderr
    share = len(zeroed) / len(clicked)
    assert (f"warning: {len(zeroed):,} of {len(clicked):,} clicks ({share:.0%}) have dwell 0"
            in unknown.stderr), unknown.stderr
    assert "minutes" not in unknown.stderr
    # A tail of pages left open: 4 % of the clicks at 1-8 hours. The top bins then span hours
    # and the longest one's median (by numpy, over the clicks in it) is named.
    rows = history_rows()
    clicked = [k for k, row in enumerate(rows) if row[3] == 1]
    idle = clicked[::25]
    hours = np.random.default_rng(2).uniform(3600, 8 * 3600, len(idle)).round(1)
    rows = [row[:4] + (float(hours[idle.index(k)]),) if k in idle else row
            for k, row in enumerate(rows)]
    tabs = run("pipelines.stats", f"--input={write_log(tmp_path / 'tabs.csv', rows)}",
               f"--output_dir={tmp_path}/stats_t", "--engine=local")
    assert tabs.returncode == 0, tabs.stderr
    stats = json.load(open(tmp_path / "stats_t" / "stats.json"))
    dwell = np.array([row[4] for row in rows if row[3] == 1 and row[4] > 0])
    top = dwell[dwell >= stats["dwell_bin_edges"][-2]]
    assert stats["dwell_bin_medians"][-1] == pytest.approx(np.median(top)) and np.median(top) > 3600
    assert (f"warning: the longest dwell bin's median is {np.median(top):,.0f} s "
            f"({np.median(top) / 3600:.1f} h; it holds the clicks from "
            f"{stats['dwell_bin_edges'][-2]:,.0f} s on): if those clicks are pages left open"
            in tabs.stderr), tabs.stderr
    # An empty longest bin (given --bin_edges past every dwell) has no median: no warning.
    assert not [d for d in data_doubts.data_doubts(dict(
        stats, dwell_bin_medians=stats["dwell_bin_medians"][:-1] + [None]))
        if "longest dwell bin" in d]
    # Without the tail (the minutes and zeros above, the history as it is): no such warning.
    assert "longest dwell bin" not in unknown.stderr + minutes.stderr


@pytest.mark.parametrize("engine", ["local", "beam"])
def test_an_outcome_of_the_click_among_the_features_is_named_by_the_stats_job(run, tmp_path,
                                                                            engine):
    # history_rows (all clicks) with 600 unclicked impressions and two extra columns: is_like,
    # 1 on every third click and never without one; item_age, a feature on every row (negative
    # on the unclicked rows).
    # seen_at: a timestamp-like column (1.7e9 s, a spread of seconds), whose deviation sums of
    # squares would lose.
    rng = np.random.default_rng(1)
    # tag: a string column of many values, whose distinct values the job counts too.
    # flag: constant, whose deviation is 0, not the rounding of E[x^2] - E[x]^2.
    rows = [row + (int(k % 3 == 0), k % 17, 1_700_000_000 + k % 7, f"t{k % 1500}", 5)
            for k, row in enumerate(history_rows())]
    rows += [(f"bg{k % 50}", f"bg{k % 40}", (D - 9) * DAY + k, 0, 0.0, 0, -int(rng.integers(1, 9)),
              1_700_000_000 + k % 5, f"t{k * 7 % 2000}", 5) for k in range(600)]
    path = tmp_path / "likes.csv"
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER + ["is_like", "item_age", "seen_at", "tag", "flag"])
        writer.writerows(rows)
    result = run("pipelines.stats", f"--input={path}", f"--output_dir={tmp_path}/stats",
                 f"--engine={engine}")
    assert result.returncode == 0, result.stderr
    frame = pd.read_csv(path)
    clicked = frame["click"] == 1
    stats = json.loads((tmp_path / "stats" / "stats.json").read_text())
    for name in ("is_like", "item_age"):  # the counts against pandas
        assert stats["numeric_features"][name]["nonzero_clicked"] == int(
            (frame[name][clicked] != 0).sum())
        assert stats["numeric_features"][name]["nonzero_unclicked"] == int(
            (frame[name][~clicked] != 0).sum())
        assert stats["numeric_features"][name]["negative"] == int((frame[name] < 0).sum())
    for name in ("is_like", "item_age", "seen_at"):  # the moments of both transforms
        x = frame[name].to_numpy(np.float64)
        moments = stats["numeric_features"][name]
        assert moments["raw_mean"] == pytest.approx(x.mean(), rel=1e-12)
        assert moments["raw_std"] == pytest.approx(x.std(), rel=1e-9)
        log1p = np.log1p(np.maximum(x, 0))
        assert moments["mean"] == pytest.approx(log1p.mean(), rel=1e-12, abs=1e-15)
        assert moments["std"] == pytest.approx(log1p.std(), rel=1e-9)
    flag = stats["numeric_features"]["flag"]
    assert (flag["std"], flag["raw_std"], flag["raw_mean"]) == (0.0, 0.0, 5.0)
    assert flag["mean"] == pytest.approx(np.log(6.0), rel=1e-15)
    # Distinct values of the string and integer feature columns (not the ids), against pandas.
    assert stats["feature_values"] == {
        name: {"distinct": frame[name].nunique(), "at_least": False}
        for name in ("is_like", "item_age", "seen_at", "tag", "flag")}
    # The ids the training job's hash-bucket note compares with the buckets, against pandas.
    assert stats["clicked_users"] == frame["user_id"][clicked].nunique()
    positive = clicked & (frame["dwell_time"] > 0)
    assert stats["clicked_items"] == frame["item_id"][positive].nunique()
    artifact = stats_artifact.load_artifact(str(tmp_path / "stats"))
    assert (artifact.clicked_users, artifact.clicked_items) == (stats["clicked_users"],
                                                                stats["clicked_items"])
    assert artifact.feature_values == stats["feature_values"]
    likes = int((frame["is_like"][clicked] != 0).sum())
    assert (f"warning: feature column 'is_like' is 0 on all 600 unclicked rows but not on "
            f"{likes:,} of the {int(clicked.sum()):,} clicked ones") in result.stderr
    assert result.stderr.count("'is_like'") == 1  # named once
    assert (f"warning: feature column 'item_age' is negative on 600 of {len(frame):,} rows"
            in result.stderr), result.stderr


def test_distinct_values_stop_being_counted_at_the_cap(tmp_path, monkeypatch):
    # Three files read apart (three parts merged): a column of 300 values counted up to a cap
    # of 100 is "at least 100", one of 60 is exact, on both engines' merge (in this process).
    monkeypatch.setattr(stats_artifact, "DISTINCT_VALUES_CAP", 100)
    rows = [(*row, f"v{k % 300}", k % 60) for k, row in enumerate(history_rows())]
    for k in range(3):
        with open(tmp_path / f"{k}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([*HEADER, "tag", "slot"])
            writer.writerows(rows[k::3])
    assert len({r[-2] for r in rows}) == 300
    for engine in ("local", "beam"):
        statistics.compute_stats(str(tmp_path / "*.csv"), str(tmp_path / engine),
                                 statistics.StatsConfig(files_per_read=1), engine=engine)
        stats = stats_artifact.read_stats_json(str(tmp_path / engine))
        assert stats["feature_values"] == {"tag": {"distinct": 100, "at_least": True},
                                           "slot": {"distinct": 60, "at_least": False}}, engine
    # A worker stops adding values once past the cap (memory bounded by the cap and a batch).
    from core import logs

    source = logs.open_logs(str(tmp_path / "*.csv"))
    schema_json = {**source.schema.to_json(), "stored": source.stored_types}
    [(_, part)] = [out for out in statistics._preaggregate(
        source.files, schema_json, statistics.StatsConfig(batch_size=16)) if out[0] == "part"]
    assert 100 <= len(part.values["tag"]) < 100 + 16 and len(part.values["slot"]) == 60


def test_stats_local_engine_writes_the_beam_engines_artifact(tmp_path):
    """--engine=local, in a fresh process that never imports Apache Beam, over three file
    groups: the artifact of the Beam engine (stats.json equal but for the float sums of the
    numeric features' moments, merged in another order; the same shards with the same rows)."""
    # A numeric feature (its moments) and unclicked rows with a dwell (treated as 0).
    rows = [(*row, 1.5 * (k % 97)) for k, row in enumerate(history_rows())]
    rows += [(f"n{k}", f"bg{k}", (D - 8) * DAY + k, 0, 7.0, 3.0) for k in range(9)]
    for k in range(3):
        with open(tmp_path / f"{k}.csv", "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow([*HEADER, "item_length"])
            writer.writerows(rows[k::3])
    pattern = str(tmp_path / "*.csv")
    config = "statistics.StatsConfig(files_per_read=1, allow_unclicked_dwell=True)"
    script = ("import sys; from pipelines.stats import statistics; "
              f"statistics.compute_stats({pattern!r}, {str(tmp_path / 'local')!r}, {config}, "
              "engine='local'); print('apache_beam' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=REPO, check=False)
    assert result.returncode == 0 and result.stdout.split()[-1] == "False", result.stderr
    statistics.compute_stats(pattern, str(tmp_path / "beam"),
                             statistics.StatsConfig(files_per_read=1, allow_unclicked_dwell=True))
    local, beam = (stats_artifact.read_stats_json(str(tmp_path / name))
                   for name in ("local", "beam"))
    local_moments, beam_moments = local.pop("numeric_features"), beam.pop("numeric_features")
    assert local == beam and local["items_with_p10"] > 0
    assert local["unclicked_dwell_treated_as_zero"] == 9 and len(local["files"]) == 3
    assert local_moments.keys() == beam_moments.keys() == {"item_length"}
    for name, moments in beam_moments.items():
        assert local_moments[name] == pytest.approx(moments, rel=1e-12), name
    for table in ("items", "user_days"):
        shards = {engine: sorted(os.listdir(tmp_path / engine / table))
                  for engine in ("local", "beam")}
        assert shards["local"] == shards["beam"] and shards["local"], table
        for shard in shards["local"]:
            lines = [sorted((tmp_path / engine / table / shard).read_text().splitlines())
                     for engine in ("local", "beam")]
            assert lines[0] == lines[1], (table, shard)


def test_stats_read_files_in_groups_as_if_each_were_read_alone(tmp_path, monkeypatch):
    """Groups hold at most --files_per_read files of at most WHOLE_FILE_BYTES together; a file
    past that size (read line by line) is alone and CRLF files are apart; the artifact equals
    the one of every file read on its own (--files_per_read=1), file records included."""
    from core import logs

    rows = history_rows()
    paths = []
    for k in range(7):  # a-e LF, f CRLF (csv's default line end), g large (LF)
        part = rows[k * 60:(k + 1) * 60] * (3 if k == 6 else 1)
        path = tmp_path / f"{'abcdefg'[k]}.csv"
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\r\n" if k == 5 else "\n")
            writer.writerow(HEADER)
            writer.writerows(part)
        paths.append(str(path))
    sizes = [os.path.getsize(p) for p in paths]
    bound = int(2.5 * max(sizes[:5]))
    assert bound < sizes[6] and 2 * max(sizes[:5]) <= bound < 3 * min(sizes[:5])
    monkeypatch.setattr(logs, "WHOLE_FILE_BYTES", bound)
    files = logs.open_logs(str(tmp_path / "*.csv")).files
    groups = statistics._file_groups(files, files_per_read=3)  # noqa: SLF001
    assert sorted([os.path.basename(f.path) for f in g] for g in groups) == [
        ["a.csv", "b.csv"], ["c.csv", "d.csv"], ["e.csv"], ["f.csv"], ["g.csv"]]
    assert [len(g) for g in statistics._file_groups(files, 1)] == [1] * 7  # noqa: SLF001
    pattern = str(tmp_path / "*.csv")
    grouped = statistics.compute_stats(pattern, str(tmp_path / "grouped"),
                                       statistics.StatsConfig(files_per_read=3))
    alone = statistics.compute_stats(pattern, str(tmp_path / "alone"),
                                     statistics.StatsConfig(files_per_read=1))
    for key in ("rows", "clicks", "mu", "sigma", "dwell_bin_edges", "user_days",
                "items_with_p10", "files"):
        assert grouped[key] == alone[key], key
    assert [f["rows"] for f in grouped["files"]] == [60] * 6 + [180]
    one = stats_artifact.load_artifact(str(tmp_path / "grouped"))
    two = stats_artifact.load_artifact(str(tmp_path / "alone"))
    assert one.item_p10 == two.item_p10 and one.user_day_clicks == two.user_day_clicks
    with pytest.raises(InputError, match="--files_per_read must be >= 1"):
        statistics.compute_stats(pattern, str(tmp_path / "none"),
                                 statistics.StatsConfig(files_per_read=0))


def test_stats_tables_hold_one_row_per_item_and_user_day_over_groups(tmp_path):
    """Four files, each read by a group of its own (--files_per_read=1), share every user, day
    and item: each table has one row per item and per (user, day), equal to pandas' counts and
    numpy's P10 over all the rows (the groups' tables merge in their partitions)."""
    rows = history_rows()
    for k in range(4):
        write_log(tmp_path / f"{k}.csv", rows[k::4])
    stats_dir = str(tmp_path / "stats")
    statistics.compute_stats(str(tmp_path / "*.csv"), stats_dir,
                             statistics.StatsConfig(files_per_read=1))
    frame = pd.DataFrame(rows, columns=HEADER)
    users = stats_artifact.read_table(os.path.join(stats_dir, "user_days"),
                                      stats_artifact.USER_DAY_COLUMNS)
    keys = list(zip(users["user_id"].tolist(), users["day"].tolist()))
    assert len(keys) == len(set(keys))
    clicks = frame[frame.click == 1]
    want = clicks.groupby(["user_id", clicks.timestamp // DAY]).size()
    assert dict(zip(keys, users["clicks"].tolist())) == {(u, int(d)): int(n)
                                                          for (u, d), n in want.items()}
    items = stats_artifact.read_table(os.path.join(stats_dir, "items"),
                                      stats_artifact.ITEM_COLUMNS)
    assert len(set(items["item_id"].tolist())) == len(items["item_id"])
    dwell = clicks[clicks.dwell_time > 0].groupby("item_id")["dwell_time"]
    want_items = {item: values.to_numpy() for item, values in dwell if len(values) >= 5}
    assert sorted(items["item_id"].tolist()) == sorted(want_items) and len(want_items) > 10
    for item, n, p10 in zip(items["item_id"], items["clicks"], items["p10"]):
        assert n == len(want_items[item])
        assert p10 == np.percentile(want_items[item], 10)  # the same float, through the CSV
    # One shard per partition with rows, named after it.
    for table in ("items", "user_days"):
        names = os.listdir(os.path.join(stats_dir, table))
        assert names and all(re.fullmatch(r"part-\d{5}-of-00032\.csv", n) for n in names), names


def test_stats_over_a_group_of_files_without_clicks(tmp_path):
    """A file group whose rows have no click (--files_per_read=1) adds its rows and nothing to
    the tables: the artifact's tables are those of the other file alone."""
    write_log(tmp_path / "a.csv", history_rows())
    write_log(tmp_path / "b.csv", [(f"u{k}", f"i{k}", (D - 3) * DAY + k, 0, "")
                                   for k in range(20)])
    statistics.compute_stats(str(tmp_path / "*.csv"), str(tmp_path / "both"),
                             statistics.StatsConfig(files_per_read=1))
    statistics.compute_stats(str(tmp_path / "a.csv"), str(tmp_path / "alone"))
    both = stats_artifact.load_artifact(str(tmp_path / "both"))
    alone = stats_artifact.load_artifact(str(tmp_path / "alone"))
    assert stats_artifact.read_stats_json(str(tmp_path / "both"))["rows"] == len(history_rows()) + 20
    assert both.item_p10 == alone.item_p10 and both.user_day_clicks == alone.user_day_clicks


def test_item_p10_is_numpys_percentile_bit_for_bit():
    """The items' P10, computed for all items at once (and by NumPy past 1,024 clicks), equals
    `np.percentile(dwell, 10)` per item to the last bit: lengths 1..40 and around the cut-off,
    ties, values over nine orders of magnitude."""
    rng = np.random.default_rng(0)
    lengths = [*range(1, 41), 1023, 1024, 1025, 2500]
    arrays = ([rng.lognormal(3, 1.5, n) for n in lengths]
              + [rng.integers(1, 4, n).astype(float) for n in lengths]
              + [rng.uniform(1e-3, 1e6, n) for n in lengths])
    want = [float(np.percentile(a, 10)) for a in arrays]
    assert table_shards.tenth_percentiles(arrays) == want
    assert table_shards.tenth_percentiles_together(arrays) == want
    assert table_shards.tenth_percentiles([]) == []


def test_stats_with_no_item_reaching_rule_t3_write_an_empty_item_table(tmp_path):
    """No item has min_item_records clicks: the items table has no shard and reads empty; the
    user-day table is still written."""
    stats_dir = str(tmp_path / "stats")
    statistics.compute_stats(
        write_log(tmp_path / "log.csv", history_rows()), stats_dir,
        statistics.StatsConfig(rules=label_rules.RuleConfig(min_item_records=10**6)))
    assert os.listdir(os.path.join(stats_dir, "items")) == []
    assert stats_artifact.read_stats_json(stats_dir)["items_with_p10"] == 0
    artifact = stats_artifact.load_artifact(stats_dir)
    assert artifact.item_p10 == {} and artifact.user_day_clicks


def test_an_incomplete_or_damaged_artifact_is_refused_naming_what_is_wrong(tmp_path):
    """A table with a shard lost or a row cut off in a copy, a shard that is not text, a
    stats.json that is not an object or lacks a field: InputError naming the file, where the
    tables read without complaint (rules T2 and T3 then labelled from part of them) or Python's
    own KeyError, AttributeError or UnicodeDecodeError came out."""
    stats_dir = tmp_path / "stats"
    statistics.compute_stats(write_log(tmp_path / "log.csv", history_rows()), str(stats_dir))
    recorded = stats_artifact.read_stats_json(str(stats_dir))
    items, user_days = recorded["items_with_p10"], recorded["user_days"]
    assert items > 2 and user_days > 2
    stats_artifact.load_artifact(str(stats_dir))  # whole: read as it is

    def damaged(name, edit):
        copy = tmp_path / name
        shutil.copytree(stats_dir, copy)
        edit(copy)
        return str(copy)

    def cut_last_row(table):
        def edit(copy):
            (shard,) = [p for p in glob.glob(str(copy / table / "part-*.csv"))
                        if len(open(p).read().splitlines()) > 1][:1]
            lines = open(shard).read().splitlines(keepends=True)
            open(shard, "w").writelines(lines[:-1])
        return edit

    def drop_shards(table):
        return lambda copy: shutil.rmtree(copy / table)

    def shard_not_text(copy):
        shard = sorted(glob.glob(str(copy / "items" / "part-*.csv")))[0]
        open(shard, "ab").write(b"\xff\xfe,1,2\n")

    def stats_json(content):
        return lambda copy: (copy / "stats.json").write_text(content)

    no_ndt = {k: v for k, v in recorded.items() if k != "ndt"}
    cases = [
        (cut_last_row("items"), "items",
         f"items/ holds {items - 1} rows where stats.json records {items}"),
        (drop_shards("items"), "items", f"items/ holds 0 rows where stats.json records {items}"),
        (cut_last_row("user_days"), "user_days",
         f"user_days/ holds {user_days - 1} rows where stats.json records {user_days}"),
        (shard_not_text, "items/part-", "cannot be read as a table shard"),
        (stats_json("[1]"), "stats.json", "is not a stats.json (a JSON object)"),
        (stats_json(json.dumps(no_ndt)), "stats.json", "is damaged (no 'ndt')"),
    ]
    for n, (edit, where, says) in enumerate(cases):
        path = damaged(f"copy{n}", edit)
        with pytest.raises(InputError, match=re.escape(says)) as raised:
            stats_artifact.load_artifact(path)
        assert where in str(raised.value), raised.value
    # The Beam labelling engine reads the user table by key later: its absence is caught here.
    with pytest.raises(InputError, match="user_days/ holds 0 rows"):
        stats_artifact.load_artifact(damaged("no_users", drop_shards("user_days")),
                                     user_days=False)


def test_table_partitions_are_the_same_in_every_process():
    """Workers partition ids alike (Python's own str hash is salted per process)."""
    import subprocess
    import sys

    from conftest import REPO

    code = ("from pipelines.stats import statistics as s; "
            "print(sorted((k, sorted(v)) for k, v in s._partitioned("
            "{f'u{i}': i for i in range(200)}, lambda k: k).items()))")
    outputs = {subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                              text=True, check=True,
                              env=dict(os.environ, PYTHONHASHSEED=seed)).stdout
               for seed in ("1", "2")}
    assert len(outputs) == 1
    partitions = eval(outputs.pop())  # noqa: S307 (our own output)
    assert len(partitions) > 16 and sum(len(ids) for _, ids in partitions) == 200


def test_header_only_file_gets_an_empty_shard(hand, tmp_path):
    _, stats_dir = hand
    write_log(tmp_path / "a.csv", [("u", "five", D * DAY, 1, 40.0)])
    write_log(tmp_path / "b.csv", [])
    summary = labelling.label_logs(str(tmp_path / "*.csv"), stats_dir, str(tmp_path / "out"),
                                   fmt="csv")
    assert summary.files == ["00000-a.csv.gz", "00001-b.csv.gz"]
    import gzip

    lines = gzip.open(tmp_path / "out" / "00001-b.csv.gz", "rt").read().splitlines()
    assert lines == [",".join(HEADER + LABELS)]
    assert len(read_frame(str(tmp_path / "out" / "00000-a.csv.gz"))) == 1


def test_an_empty_bin_has_a_null_median_and_readers_accept_it(sim, tmp_path):
    """stats.json stays strict JSON (null, not a bare NaN) and a model gets a finite stand-in."""
    root, _ = sim
    out = str(tmp_path / "stats")
    config = statistics.StatsConfig(bin_edges=(0.0, 1e6, 2e6, 3e6))  # bins 2 and 3 are empty
    statistics.compute_stats(str(root / "sim/logs/day-0[0-2].csv.gz"), out, config)
    text = open(os.path.join(out, "stats.json")).read()

    def refuse(constant):
        raise ValueError(f"not strict JSON: {constant}")

    stats = json.loads(text, parse_constant=refuse)
    assert stats["dwell_bin_medians"][1:] == [None, None]
    assert stats["dwell_bin_medians"][0] > 0
    targets = stats_artifact.load_artifact(out).targets
    assert targets.bin_values[1] == pytest.approx(np.sqrt(1e6 * 2e6))
    assert all(np.isfinite(targets.bin_ndt))


# T2 window tables (core.labeler.UserDays) ---------------------------------------------------------
def _brute_windows(labelled, covered, history, window_days):
    """The T2 windows by dictionaries: a second implementation of `window_clicks`."""
    own, past = {}, {}
    for fp, day, n in labelled:
        own[(fp, day)] = own.get((fp, day), 0) + n
    for fp, day, n in history:
        past[(fp, day)] = past.get((fp, day), 0) + n
    days = {day for _, day, _ in labelled}
    counts = {}
    for key in set(own) | set(past):
        day = key[1]
        if day in covered:
            counts[key] = own.get(key, 0)
        elif day in days:  # a day the labelled logs have but do not hold: the larger
            counts[key] = max(own.get(key, 0), past.get(key, 0))
        else:
            counts[key] = past.get(key, 0)
    return [sum(counts.get((fp, day - back), 0) for back in range(window_days))
            for fp, day, _ in labelled]


def test_window_clicks_and_daily_windows_equal_a_dictionary_count():
    from core.labeler import UserDays, count_user_days, window_clicks, window_from_daily

    rng = np.random.default_rng(3)
    # Fingerprints near both ends of int64 (keys must not overflow), days spanning 40.
    users = np.array([0, 1, 7, 2**62, 2**63 - 2, 12345], np.int64)
    rows = [(int(rng.choice(users)), int(rng.integers(20_000, 20_040)), int(rng.integers(0, 3)))
            for _ in range(600)]
    batches = [{"user_fp": np.array([r[0] for r in part], np.int64),
                "day": np.array([r[1] for r in part], np.int64),
                "click": np.array([r[2] for r in part], np.int64)}
               for part in (rows[:250], rows[250:])]
    labelled, covered = count_user_days(batches)
    # One row per (user, day), clicks summed over both batches; every day seen is covered.
    summed = {}
    for fp, day, n in rows:
        summed[(fp, day)] = summed.get((fp, day), 0) + n
    got = dict(zip(zip(labelled.user_fp.tolist(), labelled.day.tolist()),
                   labelled.count.tolist()))
    assert got == summed and labelled.rows == len(summed)
    assert covered == {r[1] for r in rows}
    # History: days before and inside the covered range (the latter ignored), an unseen user.
    history = [(int(rng.choice(users)), int(rng.integers(19_990, 20_045)), int(rng.integers(1, 4)))
               for _ in range(300)] + [(99, 20_001, 5)]
    table = UserDays.of(*zip(*history))
    # Days of the labelled logs left to the history (`held_days`: slivers) count from it.
    slivers = {20_003, 20_010, 20_011}
    for window_days in (1, 7, 30):
        for held in (covered, covered - slivers):
            window = window_clicks(labelled, held, table, window_days)
            want = _brute_windows(list(zip(labelled.user_fp.tolist(), labelled.day.tolist(),
                                           labelled.count.tolist())), held, history, window_days)
            assert window.count.tolist() == want
            assert np.array_equal(window.user_fp, labelled.user_fp)
        # From daily counts alone: every (user, day) whose window holds a click, exactly.
        daily = window_from_daily(table, window_days)
        brute = {}
        for fp, day, n in history:
            for ahead in range(window_days):
                brute[(fp, day + ahead)] = brute.get((fp, day + ahead), 0) + n
        assert dict(zip(zip(daily.user_fp.tolist(), daily.day.tolist()),
                        daily.count.tolist())) == brute
    assert window_clicks(UserDays.of([], [], []), set(), table, 7).rows == 0
    # Stray far-off days (a timestamp in nanoseconds, say) in the history and in the logs
    # labelled, with many users: keys by rank, not offset, do not overflow.
    fps = np.arange(1, 100_001, dtype=np.int64) * 92_233_720_368
    far = UserDays.of(np.r_[fps, 5], np.r_[np.full(len(fps), 20_000), 2**62 // 86_400],
                      np.r_[np.full(len(fps), 2), 9])
    days = np.full(len(fps), 20_003)
    days[0] = 2**61  # one far-off row being labelled
    labelled = UserDays.of(fps, days, np.ones(len(fps)))
    got = window_clicks(labelled, {20_003, 2**61}, far, 7).count
    assert got[0] == 1 and (got[1:] == 3).all()
    assert window_from_daily(UserDays.of([], [], []), 7).rows == 0


def test_an_artifact_table_with_a_bad_value_names_its_shard_line_and_column(tmp_path):
    (tmp_path / "part-00000-of-00001.csv").write_text(
        "user_id,day,clicks\nu1,20000,3\n\n007,20001,2\nu3,20002,x\n")
    with pytest.raises(InputError, match=r"part-00000-of-00001.csv, line 5, column 'clicks': "
                                         r"'x' is not an integer"):
        stats_artifact.read_table(str(tmp_path), stats_artifact.USER_DAY_COLUMNS)
    # A quoted id over two lines counts both; a value past int64 is named, not a traceback.
    (tmp_path / "part-00000-of-00001.csv").write_text(
        'user_id,day,clicks\n"u\n1",20000,3\nu2,20001,99999999999999999999\n')
    with pytest.raises(InputError, match=r"line 4, column 'clicks': '99999999999999999999' is "
                                         r"not an integer"):
        stats_artifact.read_table(str(tmp_path), stats_artifact.USER_DAY_COLUMNS)
    (tmp_path / "part-00000-of-00001.csv").write_text("user_id,day,clicks\n\nu1,20000\n")
    with pytest.raises(InputError, match=r"line 3: has 2 fields; the header has 3"):
        stats_artifact.read_table(str(tmp_path), stats_artifact.USER_DAY_COLUMNS)
    (tmp_path / "part-00000-of-00001.csv").write_text(
        "user_id,day,clicks\nu1,20000,3\n\n007,20001,2\n")
    table = stats_artifact.read_table(str(tmp_path), stats_artifact.USER_DAY_COLUMNS)
    # Ids stay text (a leading zero kept), blank lines skipped, integers as int64.
    assert table["user_id"].tolist() == ["u1", "007"] and table["day"].dtype == np.int64
    assert table["clicks"].tolist() == [3, 2]


def test_the_label_jobs_csv_text_of_a_float_reads_back_to_it():
    # A TFRecord's float feature labelled to CSV: every float32 written exactly (%g's six
    # digits would write 1234567 as 1.23457e+06).
    import tensorflow as tf

    values = np.array([1234567.0, 0.1, 4.5, -3.25e-12, 70.09, 3.4e38], np.float32)
    text = labelling._as_text(tf.constant(values)).numpy()
    assert text[0] == b"1234567" and text[2] == b"4.5"
    np.testing.assert_array_equal(np.array([float(t) for t in text], np.float32), values)
    # A feature column is written as the reader makes text of a float (a CSV of the same log
    # then reads alike as a string column), also exactly.
    text = labelling._feature_text(tf.constant(values)).numpy()
    assert text.tolist()[:3] == [b"1234567.0", b"0.1", b"4.5"] and text[4] == b"70.09"
    np.testing.assert_array_equal(np.array([float(t) for t in text], np.float32), values)


@pytest.mark.parametrize("flags,message", [
    (["--num_bins=1"], r"--num_bins must be >= 2, not 1"),
    (["--num_bins=-2"], r"--num_bins must be >= 2, not -2"),
    (["--bin_edges=1,5"], r"--bin_edges must be three or more increasing finite numbers of "
                          r"seconds"),
    (["--bin_edges=1,5,5,9"], r"--bin_edges must be three or more increasing"),
    (["--bin_edges=-1,5,9"], r"--bin_edges must be three or more increasing finite numbers of "
                             r"seconds >= 0"),
    # An open top bin is the last bin already; `inf` valued it (and expected dwell) at infinity
    # and wrote stats.json with a bare Infinity (before 2026-12-07); --num_bins was dropped.
    (["--bin_edges=0,5,30,inf"], r"--bin_edges must be three or more increasing finite .*"
                                 r"not 0.0,5.0,30.0,inf \(the last edge closes the top bin"),
    (["--bin_edges=0,5,30,1e400"], r"--bin_edges must be three or more increasing finite"),
    (["--num_bins=8", "--bin_edges=0,5,30,60"],
     r"--num_bins=8 and --bin_edges \(3 bins\) disagree"),  # (8: the default, given)
    (["--num_bins=4", "--bin_edges=0,5,30,60"],
     r"--num_bins=4 and --bin_edges \(3 bins\) disagree: the edges set the bins; drop --num_bins"),
    (["--bin_edges=" + ",".join(map(str, range(1002)))],
     r"--bin_edges must give <= 1,000 bins \(one softmax output a bin\), not 1,001"),
    (["--light_user_days=0"], r"--light_user_days must be 1 to 3,650 UTC days, not 0"),
    (["--light_user_days=1000000"], r"--light_user_days must be 1 to 3,650"),
    (["--min_dwell=-1", "--light_user_clicks=-2"],
     r"--min_dwell must be a finite number >= 0 of seconds, not -1; --light_user_clicks must "
     r"be >= 0, not -2"),
    (["--t1_threshold=-1"], r"--t1_threshold must be a finite number >= 0 of seconds, not -1"),
    # NDT parameters whose curve is never above 0: every click's NDT label was 0.
    (["--ndt_a=-5"], r"the NDT's A \(-5\) and its range A - B \(-4.99\d+\) must be > 0"),
    (["--ndt=explicit", "--ndt_offset=1", "--ndt_tau=5", "--ndt_a=1", "--ndt_b=2"],
     r"the NDT's A \(1\) and its range A - B \(-1\) must be > 0, else every click's NDT is 0: "
     r"check --ndt_a and --ndt_b"),
    (["--min_item_records=-1"], r"--min_item_records must be >= 0, not -1"),
    # (each ended in a ZeroDivisionError or a MemoryError traceback, or labelled every click
    # with one NDT, before 2026-12-07)
    (["--ndt_tau=0"], r"--ndt_tau must be > 0, not 0.0"),
    (["--ndt=explicit", "--ndt_offset=1", "--ndt_tau=-5", "--ndt_a=1", "--ndt_b=0"],
     r"--ndt_tau must be > 0, not -5.0"),
    (["--ndt_offset=-100"], r"--ndt_offset must be >= 0 seconds, not -100.0"),
    (["--num_bins=1000000000000"], r"--num_bins must be <= 1,000 \(one softmax output a bin\)"),
])
def test_the_statistics_job_refuses_thresholds_out_of_range(run, tmp_path, flags, message):
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id,timestamp,click,dwell_time\n"
                   + "".join(f"u{k},i{k},{1767571200 + k},1,{5 + k}\n" for k in range(20)))
    result = run("pipelines.stats", f"--input={log}", f"--output_dir={tmp_path / 'stats'}",
                 "--engine=local", *flags)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert re.search(r"error: " + message, result.stderr), result.stderr
    assert not (tmp_path / "stats").exists()


@pytest.mark.parametrize("flags,message", [
    (["--light_user_days=-3"], r"--light_user_days must be 1 to 3,650 UTC days, not -3"),
    (["--min_dwell=-1"], r"--min_dwell must be a finite number >= 0 of seconds, not -1"),
    # (its flags are the label job's own, without the settings' finite check)
    (["--min_dwell=inf"], r"--min_dwell must be a finite number >= 0 of seconds, not inf"),
    (["--t1_threshold=nan"], r"--t1_threshold must be a finite number >= 0 of seconds, not nan"),
])
def test_the_label_job_refuses_overrides_out_of_range(run, tmp_path, hand, flags, message):
    root, stats_dir = hand
    result = run("pipelines.label", f"--input={root / 'history.csv'}", f"--stats={stats_dir}",
                 f"--output_dir={tmp_path / 'out'}", *flags)
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert re.search(r"error: " + message, result.stderr), result.stderr
    assert not (tmp_path / "out").exists()


def test_rules_are_checked_where_flags_set_them_not_where_an_artifact_is_read():
    stored = label_rules.RuleConfig(light_user_days=0, min_item_records=0, t1_threshold=0.0)
    with pytest.raises(InputError, match="--light_user_days must be 1 to 3,650 UTC days, not 0"):
        stored.check()
    assert dataclasses.replace(stored, light_user_days=7).check().min_item_records == 0
