"""The simulator: deterministic bytes, the papers' marginals, and its causal structure.

Marginals are computed here from the raw arrays with NumPy, not taken from the simulator's own
summary.
"""

import dataclasses
import filecmp
import os

import numpy as np
import pandas as pd
import pytest

from pipelines import logs, simulator
from pipelines.errors import InputError


@pytest.fixture(scope="module")
def default_world():
    """The default-size world (about a million impressions), simulated in memory."""
    config = simulator.SimConfig()
    world = simulator.World(config)
    policy = simulator.LoggingPolicy()
    days = [simulator.simulate_day(world, policy, d) for d in range(config.days)]
    log = {k: np.concatenate([d[0][k] for d in days]) for k in simulator.LOG_COLUMNS}
    latent = {k: np.concatenate([d[1][k] for d in days]) for k in days[0][1]}
    return world, log, latent


def item_index(log):
    return np.char.replace(log["item_id"].astype(str), "art-", "").astype(int)


def test_default_size_is_about_a_million_impressions(default_world):
    _, log, _ = default_world
    assert 800_000 <= len(log["click"]) <= 1_300_000


def test_calibrated_to_the_papers_marginals(default_world):
    _, log, _ = default_world
    click = log["click"] == 1
    assert 0.08 <= click.mean() <= 0.16
    dwell = log["dwell_time"][click]
    ln = np.log(dwell[dwell > 0])
    mu, sigma = ln.mean(), ln.std()
    below = (dwell[dwell > 0] < np.exp(mu - sigma)).mean()
    above = (dwell[dwell > 0] > np.exp(mu + sigma)).mean()
    assert 0.16 <= below <= 0.19, below
    assert 0.13 <= above <= 0.17, above
    assert 12 <= np.exp(mu - sigma) <= 18  # the paper: ~15 s
    assert 160 <= np.exp(mu + sigma) <= 250  # the paper: ~200 s
    skew = ((ln - mu) ** 3).mean() / sigma ** 3
    assert abs(skew) < 0.5, skew


def test_clickbait_means_high_ctr_and_short_dwell(default_world):
    world, log, _ = default_world
    bait = world.item_clickbait[item_index(log)] > 0.5
    click = log["click"] == 1
    assert 0.02 < bait.mean() < 0.25  # a minority of impressions
    assert click[bait].mean() > 1.5 * click[~bait].mean()
    assert log["dwell_time"][click & bait].mean() < 0.5 * log["dwell_time"][click & ~bait].mean()


def r_squared(target, design):
    design = np.column_stack([np.ones(len(target)), design])
    coef, *_ = np.linalg.lstsq(design, target, rcond=None)
    residual = target - design @ coef
    return 1 - residual.var() / target.var()


def post_click_design(log, rows):
    category = pd.get_dummies(log["category"][rows], drop_first=True).to_numpy(float)
    return np.column_stack([category, np.log(log["item_length"][rows]),
                            log["publish_age_hours"][rows]])


def test_post_click_features_explain_dwell_more_than_clicks(default_world):
    _, log, latent = default_world
    rng = np.random.default_rng(0)
    rows = rng.choice(len(log["click"]), 200_000, replace=False)
    design = post_click_design(log, rows)
    # Latent scale, comparable for both outcomes: the true click logit vs the true mean ln(dwell).
    p = latent["p_click"][rows]
    r2_click = r_squared(np.log(p / (1 - p)), design)
    r2_dwell = r_squared(latent["dwell_log_mean"][rows], design)
    assert r2_dwell > 0.3 and r2_dwell > 4 * r2_click, (r2_dwell, r2_click)
    # Observed scale: ln(dwell) of clicks against the click indicator of all impressions.
    clicked = np.flatnonzero((log["click"] == 1) & (log["dwell_time"] > 0))
    r2_obs_dwell = r_squared(np.log(log["dwell_time"][clicked]), post_click_design(log, clicked))
    r2_obs_click = r_squared(log["click"][rows].astype(float), design)
    assert r2_obs_dwell > 0.1 and r2_obs_dwell > 10 * r2_obs_click, (r2_obs_dwell, r2_obs_click)


def test_light_and_heavy_users_both_exist(default_world):
    world, log, _ = default_world
    day = (log["timestamp"] - world.start) // simulator.SECONDS_PER_DAY
    week = (day >= 7) & (log["click"] == 1)
    clicks = pd.Series(log["user_id"][week]).value_counts()
    active = pd.Series(log["user_id"][day >= 7]).unique()
    counts = clicks.reindex(active, fill_value=0)
    assert 0.2 < (counts < 7).mean() < 0.9  # many light users ...
    light_click_share = counts[counts < 7].sum() / counts.sum()
    assert 0.05 < light_click_share < 0.5  # ... who produce a minority of the clicks


def test_items_are_shown_only_after_publication_and_rows_are_in_time_order(default_world):
    world, log, _ = default_world
    published = world.item_publish_time[item_index(log)]
    assert (log["timestamp"] > published).all()
    day = (log["timestamp"] - world.start) // simulator.SECONDS_PER_DAY
    for d in np.unique(day):
        assert (np.diff(log["timestamp"][day == d]) >= 0).all()
    assert len(np.unique(log["impression_id"])) == len(log["impression_id"])


def test_dwell_only_on_clicks_and_some_zero_dwell_clicks(default_world):
    _, log, _ = default_world
    click = log["click"] == 1
    assert (log["dwell_time"][~click] == 0).all()
    zero = (log["dwell_time"][click] == 0).mean()
    assert 0 < zero < 0.01


SMALL = simulator.SimConfig(num_users=300, num_items=200, days=3, seed=7)


def files_under(root):
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, fs in os.walk(root) for f in fs)


@pytest.mark.parametrize("fmt", ["csv", "tfrecord"])
def test_same_seed_same_bytes(tmp_path, fmt):
    a = simulator.write_simulation(SMALL, str(tmp_path / "a"), fmt, plot=False)
    simulator.write_simulation(SMALL, str(tmp_path / "b"), fmt, plot=False)
    simulator.write_simulation(dataclasses.replace(SMALL, seed=8), str(tmp_path / "c"), fmt, plot=False)
    names = [n for n in files_under(tmp_path / "a") if n.startswith(("logs", "ground_truth"))]
    assert len(names) == SMALL.days + 3 and a["rows"] > 1000
    for name in names:
        assert filecmp.cmp(tmp_path / "a" / name, tmp_path / "b" / name, shallow=False), name
    first_day = next(n for n in names if n.startswith("logs/"))
    assert not filecmp.cmp(tmp_path / "a" / first_day, tmp_path / "c" / first_day, shallow=False)


def test_written_logs_read_back_equal_in_both_formats(tmp_path):
    world = simulator.World(SMALL)
    log, _ = simulator.simulate_day(world, simulator.LoggingPolicy(), 1)
    simulator.write_simulation(SMALL, str(tmp_path / "csv"), "csv", plot=False)
    simulator.write_simulation(SMALL, str(tmp_path / "tfr"), "tfrecord", plot=False)
    for path in (tmp_path / "csv/logs/day-01.csv.gz", tmp_path / "tfr/logs/day-01.tfrecord.gz"):
        batches = list(logs.read_logs(str(path), 512).as_numpy_iterator())
        got = {k: np.concatenate([b[k] for b in batches]) for k in batches[0]}
        np.testing.assert_array_equal(got["impression_id"], log["impression_id"])
        np.testing.assert_array_equal(got["user_id"].astype(str), log["user_id"].astype(str))
        np.testing.assert_array_equal(got["item_id"].astype(str), log["item_id"])
        np.testing.assert_array_equal(got["click"], log["click"])
        np.testing.assert_allclose(got["dwell_time"], log["dwell_time"], rtol=1e-7)
        np.testing.assert_allclose(got["publish_age_hours"], log["publish_age_hours"], rtol=1e-6)
        np.testing.assert_array_equal(got["category"].astype(str), log["category"])


def test_output_dir_with_other_content_is_refused_untouched(tmp_path):
    target = tmp_path / "mine"
    target.mkdir()
    (target / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="exists and holds something else"):
        simulator.write_simulation(SMALL, str(target), plot=False)
    assert os.listdir(target) == ["notes.txt"]
    assert [p for p in os.listdir(tmp_path) if p.startswith(".")] == []


def test_rerun_replaces_a_previous_simulation(tmp_path):
    simulator.write_simulation(SMALL, str(tmp_path / "sim"), plot=False)
    simulator.write_simulation(dataclasses.replace(SMALL, days=2), str(tmp_path / "sim"), plot=False)
    assert sorted(os.listdir(tmp_path / "sim" / "logs")) == ["day-00.csv.gz", "day-01.csv.gz"]


def test_cli_prints_summary_and_plot(tmp_path, run):
    result = run("pipelines.simulate", f"--output_dir={tmp_path}/sim", "--num_users=200",
                 "--num_items=100", "--days=2")
    assert result.returncode == 0, result.stderr
    assert "CTR" in result.stdout and "clicks below exp(mu - sigma)" in result.stdout
    assert (tmp_path / "sim" / "ln_dwell_hist.png").read_bytes()[:4] == b"\x89PNG"
    assert "Traceback" not in result.stderr


def test_cli_bad_arguments_exit_non_zero_without_output(tmp_path, run):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "x").write_text("x")
    result = run("pipelines.simulate", f"--output_dir={tmp_path}/taken", "--days=1")
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and "Traceback" not in result.stderr
    result = run("pipelines.simulate", f"--output_dir={tmp_path}/new", "--days=0")
    assert result.returncode == 1 and "--days" in result.stderr
    assert not (tmp_path / "new").exists()
