"""Online evaluation: common random numbers, oracles beat random, SavedModel policies through
serving_default, the CLI's outputs (SPEC §10)."""

import json
import os

import numpy as np
import pytest

from core import stats_artifact
from online import simulation
from pipelines.simulate import simulator


@pytest.fixture(scope="module")
def world_and_artifact(small_world):
    world = simulation.world_of(str(small_world["root"] / "sim"))
    return world, stats_artifact.load_artifact(small_world["stats"])


def p_click_oracle(world, requests, items):
    # The slot is being decided: the true click probability at position 0.
    return world.click_logit(requests.user, items, np.zeros(len(items)), requests.timestamp)


def valid_read_oracle(world, requests, items):
    """Expected valid-read value: p(click) x p(dwell above x_l | click), from the world's truth."""
    from scipy.stats import norm

    logit = world.click_logit(requests.user, items, np.zeros(len(items)), requests.timestamp)
    mean = world.dwell_log_mean(requests.user, items, requests.timestamp)
    long_read = norm.sf((np.log(15.0) - mean) / world.config.dwell_noise)
    return long_read / (1 + np.exp(-logit))


def test_identical_policies_give_identical_results(world_and_artifact):
    world, artifact = world_and_artifact
    config = simulation.OnlineConfig(days=2, seed=3)
    results = simulation.simulate(world, {"a": simulation.LoggingScorePolicy(seed=1),
                                      "b": simulation.LoggingScorePolicy(seed=1)}, artifact, config)
    for key in ("user", "item", "click", "dwell_time", "valid_read"):
        np.testing.assert_array_equal(results["a"][key], results["b"][key])
    table = simulation.online_metrics(results, world.config.num_users)
    assert table["a"]["clicks"] == table["b"]["clicks"] > 0
    change = table["b"]["relative_change"]
    assert change["clicks"]["percent"] == 0 and change["clicks"]["ci95"] == 0
    # The same sessions and slots for every policy, whatever it shows.
    other = simulation.simulate(world, {"a": simulation.RandomPolicy(seed=5)}, artifact, config)
    np.testing.assert_array_equal(other["a"]["user"], results["a"]["user"])
    np.testing.assert_array_equal(other["a"]["position"], results["a"]["position"])


def test_oracles_beat_random(world_and_artifact):
    world, artifact = world_and_artifact
    policies = {"random": simulation.RandomPolicy(seed=2),
                "p_click": simulation.ScoreFunctionPolicy(p_click_oracle),
                "valid_read": simulation.ScoreFunctionPolicy(valid_read_oracle)}
    results = simulation.simulate(world, policies, artifact, simulation.OnlineConfig(days=2, seed=4))
    table = simulation.online_metrics(results, world.config.num_users)
    ctr = table["p_click"]["relative_change"]["ctr"]
    assert ctr["percent"] - ctr["ci95"] > 0, ctr  # significantly more clicks
    reads = table["valid_read"]["relative_change"]["valid_reads"]
    assert reads["percent"] - reads["ci95"] > 0, reads
    assert table["random"]["impressions"] == table["p_click"]["impressions"]


def test_relative_change_interval_against_numpy():
    rng = np.random.default_rng(0)
    a = rng.poisson(3.0, 500).astype(float)
    b = a + rng.poisson(0.5, 500)
    got = simulation._relative_change(a, b)
    assert got["percent"] == pytest.approx(100 * (b.mean() / a.mean() - 1))
    # Bootstrap the ratio of means: the delta-method interval matches it to within 15 %.
    ratios = [b[i].mean() / a[i].mean() for i in
              (rng.integers(0, 500, 500) for _ in range(2000))]
    assert got["ci95"] == pytest.approx(100 * 1.96 * np.std(ratios), rel=0.15)


def test_dwell_migration_counts_clicks_by_activeness_and_dwell():
    world = simulator.World(simulator.SimConfig(num_users=200, num_items=50, days=1, seed=1))
    user = np.arange(200)
    base = {"user": user, "click": np.ones(200, int), "dwell_time": np.linspace(1, 200, 200)}
    other = {"user": user, "click": np.ones(200, int), "dwell_time": base["dwell_time"] * 2}
    change, edges = simulation.dwell_migration(world, base, base)
    assert np.nanmax(np.abs(change)) == 0 and len(edges) == 4
    change, _ = simulation.dwell_migration(world, base, other)
    # Doubling every dwell moves clicks out of the shortest quantile, into the longest.
    assert np.nansum(change[:, 0]) < 0 < np.nansum(change[:, -1])


def test_cli_with_saved_model_policies(small_world, exports, run, tmp_path):
    out = tmp_path / "online"
    done = run("online.ab_test", f"--sim={small_world['root'] / 'sim'}",
               f"--stats={small_world['stats']}",
               f"--policies=single_ctr={exports['single_ctr'].path},"
               f"vr_ndt={exports['vr_ndt'].path},random", "--days=1", f"--output_dir={out}")
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(os.listdir(out)) == ["migration-random.png", "migration-vr_ndt.png",
                                       "online.json", "online.md"]
    metrics = json.load(open(out / "online.json"))["metrics"]
    assert list(metrics) == ["single_ctr", "vr_ndt", "random"]
    assert metrics["single_ctr"]["impressions"] == metrics["random"]["impressions"] > 0
    bad = run("online.ab_test", f"--sim={small_world['root'] / 'sim'}",
              f"--stats={small_world['stats']}", "--policies=mystery", "--days=1",
              f"--output_dir={tmp_path / 'bad'}")
    assert bad.returncode == 1 and "'mystery' is not a built-in policy" in bad.stderr
    assert not (tmp_path / "bad").exists()
