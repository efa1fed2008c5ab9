"""The Beam labelling engine (pipelines/label/labelling_beam.py) against the local one: the same shards,
row for row, and the same counts; rule T2's counts joined across files and the artifact; bad
input through Beam workers ending in one readable line."""

import dataclasses
import glob
import gzip
import os

import numpy as np
import pytest
from test_labels import DAY, D, history_rows, read_frame, write_log

from core import stats_artifact
from pipelines.label import labelling, labelling_beam
from pipelines.simulate import world_config, writing
from pipelines.stats import statistics

TWO_WORKERS = ["--direct_num_workers=2", "--direct_running_mode=multi_processing"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Five simulated days; stats of days 0-2; days 2-4 are labelled (day 2 is in both, so its
    counts come from the labelled logs, and days 0-1 of the T2 windows from the artifact)."""
    root = tmp_path_factory.mktemp("beam-labels")
    config = world_config.SimConfig(num_users=150, num_items=100, days=5, seed=7)
    writing.write_simulation(config, str(root / "sim"), plot=False)
    statistics.compute_stats(str(root / "sim/logs/day-0[0-2].csv.gz"), str(root / "stats"))
    return root, str(root / "sim/logs/day-0[2-4].csv.gz"), str(root / "stats")


def shard_rows(directory, name):
    """A shard's rows as bytes, in file order: CSV lines (the header first) or TFRecords."""
    path = os.path.join(directory, name)
    if ".csv" in name:
        with gzip.open(path, "rb") as handle:
            return handle.read().splitlines()
    import tensorflow as tf

    return list(tf.data.TFRecordDataset(path, "GZIP").as_numpy_iterator())


def assert_same_output(local_dir, beam_dir, local, beam):
    assert beam.files == local.files
    assert sorted(os.listdir(beam_dir)) == sorted(os.listdir(local_dir)) == local.files
    for name in local.files:
        want, got = shard_rows(local_dir, name), shard_rows(beam_dir, name)
        assert len(got) == len(want), name
        for number, (w, g) in enumerate(zip(want, got)):
            assert g == w, f"{name} row {number}: {g!r} != {w!r}"
    assert beam.as_dict() == local.as_dict()
    np.testing.assert_array_equal(beam.log_dwell_counts, local.log_dwell_counts)


@pytest.mark.parametrize("fmt", ["csv", "tfrecord"])
def test_two_beam_workers_write_what_the_local_engine_writes(world, tmp_path, fmt):
    root, pattern, stats_dir = world
    local = labelling.label_logs(pattern, stats_dir, str(tmp_path / "local"), fmt=fmt)
    beam = labelling_beam.label_logs_beam(pattern, stats_dir, str(tmp_path / "beam"), fmt=fmt,
                                          beam_args=TWO_WORKERS)
    assert_same_output(tmp_path / "local", tmp_path / "beam", local, beam)
    # The comparison covers every rule, rule T2 included.
    assert all(local.rule_counts[1:] > 0), local.rule_counts
    assert local.rows > 2000
    # labels.png's histogram against NumPy's over the clicked rows' ln(dwell) (none falls
    # outside the edges' 0.05 s to 6 h here, so no clipping is involved).
    import pandas as pd

    frame = pd.concat([pd.read_csv(f) for f in sorted(glob.glob(pattern))])
    dwell = frame.loc[(frame["click"] == 1) & (frame["dwell_time"] > 0), "dwell_time"]
    assert np.exp(labelling.LOG_DWELL_EDGES[0]) < dwell.min() < dwell.max() < np.exp(
        labelling.LOG_DWELL_EDGES[-1])
    expected, _ = np.histogram(np.log(dwell.to_numpy(float)), labelling.LOG_DWELL_EDGES)
    np.testing.assert_array_equal(local.log_dwell_counts, expected)


def test_t2_counts_are_joined_across_files_and_with_the_artifact(tmp_path):
    """Light users whose clicks straddle a UTC midnight, split over two files the other way
    round, and a user whose earlier clicks are in the artifact only."""
    statistics.compute_stats(write_log(tmp_path / "history.csv", history_rows()),
                             str(tmp_path / "stats"))
    late, early = D * DAY + DAY - 10, (D + 1) * DAY + 5  # 23:59:50 on day D; 00:00:05 on D+1
    # T1 off below (threshold 1e9): a click is valid only through T2 (no item here has a P10).
    a = [("x", "new", late + k, 1, 30.0) for k in range(4)]        # x: 4 clicks on D
    a += [("y", "new", early + k, 1, 30.0) for k in range(3)]      # y: 3 clicks on D+1
    a += [("hist6", "new", late, 1, 30.0)]                         # 6 (D-6, artifact) + 1 on D
    b = [("x", "new", early + k, 1, 30.0) for k in range(3)]       # x: 3 more on D+1 -> 7
    b += [("y", "new", late + k, 1, 30.0) for k in range(2)]       # y: 2 on D -> 5 by D+1
    b += [("x", "new", early + 9, 0, 0.0)]                         # unclicked: rule 0
    write_log(tmp_path / "a.csv", a)
    write_log(tmp_path / "b.csv", b)
    pattern = str(tmp_path / "[ab].csv")
    rules = dataclasses.replace(stats_artifact.load_artifact(str(tmp_path / "stats")).rules,
                                t1_threshold=1e9)
    local = labelling.label_logs(pattern, str(tmp_path / "stats"), str(tmp_path / "local"),
                                 fmt="csv", rules=rules)
    beam = labelling_beam.label_logs_beam(pattern, str(tmp_path / "stats"),
                                          str(tmp_path / "beam"), fmt="csv", rules=rules)
    assert_same_output(tmp_path / "local", tmp_path / "beam", local, beam)
    got_a = read_frame(str(tmp_path / "beam/00000-a.csv.gz"))["valid_read_rule"].tolist()
    got_b = read_frame(str(tmp_path / "beam/00001-b.csv.gz"))["valid_read_rule"].tolist()
    # x: 4 clicks by D (light), 7 by D+1 (not); y: 2 by D, 5 by D+1 (light); hist6: 7 (not).
    assert got_a == [2, 2, 2, 2, 2, 2, 2, 0]
    assert got_b == [0, 0, 0, 2, 2, 0]


def test_bad_row_through_beam_workers(world, run, tmp_path):
    """A malformed row found by a Beam worker process: exit status 1, one line naming the file,
    line and column, no traceback, and neither the output nor its temporary left behind."""
    root, _, stats_dir = world
    rows = [("u", "i", D * DAY + k, k % 2, 12.0 if k % 2 else 0.0) for k in range(20)]
    rows[11] = ("u", "i", D * DAY + 11, 3, 12.0)  # line 13: click is 3
    bad = write_log(tmp_path / "bad.csv", rows)
    good = write_log(tmp_path / "good.csv", rows[:5])
    result = run("pipelines.label", f"--input={good},{bad}", f"--stats={stats_dir}",
                 f"--output_dir={tmp_path}/out", "--format=csv", "--engine=beam", *TWO_WORKERS)
    assert result.returncode == 1, result.stderr
    assert result.stderr.startswith("error: "), result.stderr
    assert "bad.csv, line 13, column 'click': expected 0 or 1, found 3" in result.stderr
    assert "Traceback" not in result.stdout + result.stderr, result.stderr
    assert not [p for p in os.listdir(tmp_path) if p == "out" or p.startswith(".out")]
    # Beam options without --engine=beam are a mistake, not something to ignore.
    local = run("pipelines.label", f"--input={good}", f"--stats={stats_dir}",
                f"--output_dir={tmp_path}/out", *TWO_WORKERS)
    assert local.returncode == 1
    assert "unknown flag(s) --direct_num_workers=2" in local.stderr
    assert not (tmp_path / "out").exists()
