"""Online evaluation: common random numbers, oracles beat random, SavedModel policies through
serving_default, the CLI's outputs (SPEC §10)."""

import json
import os

import numpy as np
import pytest

from core import stats_artifact
from online import metrics, simulation
from online.policies import LoggingScorePolicy, RandomPolicy, ScoreFunctionPolicy
from pipelines.simulate import simulator, world_config


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


def clickbait_oracle(world, requests, items):
    """Shows the most bounce-prone clickbait first (ground truth)."""
    return world.item_clickbait[items]


@pytest.mark.parametrize("strength", ["none", "chosen"])
def test_identical_policies_give_identical_results(world_and_artifact, strength):
    world, artifact = world_and_artifact
    config = simulation.OnlineConfig(days=2, seed=3, consequences=strength)
    results = simulation.simulate(world, {"a": LoggingScorePolicy(seed=1),
                                          "b": LoggingScorePolicy(seed=1)}, artifact, config)
    for key in ("user", "item", "session", "position", "click", "dwell_time", "valid_read"):
        np.testing.assert_array_equal(results["a"][key], results["b"][key])
    table = metrics.online_metrics(results, world.config.num_users)
    assert table["a"]["clicks"] == table["b"]["clicks"] > 0
    for change in table["b"]["relative_change"].values():
        assert change["percent"] == 0 and change["ci95"] < 1e-12  # (rounding of a 0 variance)
    if strength == "none":  # the same sessions and slots for every policy, whatever it shows
        other = simulation.simulate(world, {"a": RandomPolicy(seed=5)}, artifact, config)
        for key in ("user", "session", "position", "timestamp"):
            np.testing.assert_array_equal(other["a"][key], results["a"][key])


def test_oracles_beat_random(world_and_artifact):
    world, artifact = world_and_artifact
    policies = {"random": RandomPolicy(seed=2),
                "p_click": ScoreFunctionPolicy(p_click_oracle),
                "valid_read": ScoreFunctionPolicy(valid_read_oracle)}
    results = simulation.simulate(world, policies, artifact,
                                  simulation.OnlineConfig(days=2, seed=4, consequences="none"))
    table = metrics.online_metrics(results, world.config.num_users)
    ctr = table["p_click"]["relative_change"]["ctr"]
    assert ctr["percent"] - ctr["ci95"] > 0, ctr  # significantly more clicks
    reads = table["valid_read"]["relative_change"]["valid_reads"]
    assert reads["percent"] - reads["ci95"] > 0, reads
    assert table["random"]["impressions"] == table["p_click"]["impressions"]


def test_clickbait_shortens_sessions_and_keeps_users_away(world_and_artifact):
    """With consequences, a policy of bounce-prone clickbait gets shorter sessions and fewer
    users back the next day than one of the true best valid reads; without, the same slots."""
    world, artifact = world_and_artifact
    policies = {"valid_read": ScoreFunctionPolicy(valid_read_oracle),
                "clickbait": ScoreFunctionPolicy(clickbait_oracle)}
    tables = {}
    for strength in ("none", "chosen", "strong"):
        config = simulation.OnlineConfig(days=3, seed=6, consequences=strength)
        results = simulation.simulate(world, policies, artifact, config)
        tables[strength] = metrics.online_metrics(results, world.config.num_users)
    none, chosen, strong = tables["none"], tables["chosen"], tables["strong"]
    assert none["clickbait"]["impressions"] == none["valid_read"]["impressions"]
    assert none["clickbait"]["return_rate"] == none["valid_read"]["return_rate"]
    for table in (chosen, strong):
        good, bait = table["valid_read"], table["clickbait"]
        assert bait["slots_per_session"] < good["slots_per_session"]
        assert bait["return_rate"] < good["return_rate"]
        impressions = bait["relative_change"]["impressions"]
        assert impressions["percent"] + impressions["ci95"] < 0, impressions
    # The stronger the consequences, the larger the gap.
    gap = {name: t["valid_read"]["slots_per_session"] - t["clickbait"]["slots_per_session"]
           for name, t in tables.items()}
    assert gap["none"] == 0 < gap["chosen"] < gap["strong"]


def test_calibration_keeps_the_logging_policys_sessions(world_and_artifact):
    """On the calibration day the logging policy's sessions are as long with consequences as
    without (the leave offset is solved for that)."""
    world, artifact = world_and_artifact
    lengths = {}
    for strength in ("none", "chosen"):
        config = simulation.OnlineConfig(days=1, seed=7, consequences=strength)
        results = simulation.simulate(world, {"logging": LoggingScorePolicy(seed=7)}, artifact,
                                      config)
        lengths[strength] = metrics.online_metrics(
            results, world.config.num_users)["logging"]["slots_per_session"]
    assert lengths["chosen"] == pytest.approx(lengths["none"], rel=0.01)
    assert lengths["none"] == pytest.approx(1 + world.config.session_items_mean, rel=0.05)


def test_ratio_change_interval_against_a_bootstrap():
    rng = np.random.default_rng(0)
    a = rng.poisson(3.0, 500).astype(float)
    b = a + rng.poisson(0.5, 500)
    ones = np.ones(500)
    got = metrics.ratio_change(a, ones, b, ones)
    assert got["percent"] == pytest.approx(100 * (b.mean() / a.mean() - 1))
    # Bootstrap the ratio of means: the delta-method interval matches it to within 15 %.
    ratios = [b[i].mean() / a[i].mean() for i in
              (rng.integers(0, 500, 500) for _ in range(2000))]
    assert got["ci95"] == pytest.approx(100 * 1.96 * np.std(ratios), rel=0.15)
    # A ratio of ratios (CTR: clicks over impressions, both per user).
    shown_a, shown_b = a + 5, a + 7
    got = metrics.ratio_change(a, shown_a, b, shown_b)
    want = (b.mean() / shown_b.mean()) / (a.mean() / shown_a.mean())
    assert got["percent"] == pytest.approx(100 * (want - 1))
    boot = [(b[i].mean() / shown_b[i].mean()) / (a[i].mean() / shown_a[i].mean()) for i in
            (rng.integers(0, 500, 500) for _ in range(2000))]
    assert got["ci95"] == pytest.approx(100 * 1.96 * np.std(boot), rel=0.15)


def test_dwell_migration_counts_clicks_by_activeness_and_dwell():
    world = simulator.World(world_config.SimConfig(num_users=200, num_items=50, days=1, seed=1))
    user = np.arange(200)
    base = {"user": user, "click": np.ones(200, int), "dwell_time": np.linspace(1, 200, 200)}
    other = {"user": user, "click": np.ones(200, int), "dwell_time": base["dwell_time"] * 2}
    change, edges = metrics.dwell_migration(world, base, base)
    assert np.nanmax(np.abs(change)) == 0 and len(edges) == 4
    change, _ = metrics.dwell_migration(world, base, other)
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
    def refuse(token):
        raise ValueError(f"not strict JSON: {token}")

    written = json.loads((out / "online.json").read_text(), parse_constant=refuse)
    # One day: no next day to return on, so the return rate is undefined, not NaN.
    assert written["metrics"]["single_ctr"]["return_rate"] is None
    assert "| undefined |" in (out / "online.md").read_text()
    metrics = written["metrics"]
    assert list(metrics) == ["single_ctr", "vr_ndt", "random"]
    # The version each export base resolved to.
    assert written["saved_models"] == {"single_ctr": exports["single_ctr"].path,
                                       "vr_ndt": exports["vr_ndt"].path}
    assert metrics["single_ctr"]["clicks"] > 0 and metrics["random"]["impressions"] > 0
    assert "calibrated on the logging policy: leave offset" in done.stdout
    # Without consequences nothing is calibrated, and the run does not say it was.
    plain = run("online.ab_test", f"--sim={small_world['root'] / 'sim'}",
                f"--stats={small_world['stats']}", "--policies=random", "--days=1",
                "--consequences=none", f"--output_dir={tmp_path / 'plain'}")
    assert plain.returncode == 0, plain.stderr[-3000:]
    assert "consequences none" in plain.stdout and "calibrated" not in plain.stdout
    bad = run("online.ab_test", f"--sim={small_world['root'] / 'sim'}",
              f"--stats={small_world['stats']}", "--policies=mystery", "--days=1",
              f"--output_dir={tmp_path / 'bad'}")
    assert bad.returncode == 1 and "'mystery' is not a built-in policy" in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_choose_takes_the_best_objective_above_the_clicks_floor():
    from online.tune_fusion import choose

    def row(clicks, reads):
        return {"metrics": {"clicks_per_user": clicks, "valid_reads_per_user": reads},
                "baseline": {"clicks_per_user": 1.0}}

    rows = [row(1.00, 0.50), row(0.99, 0.60), row(0.90, 0.90), row(1.05, 0.55)]
    assert choose(rows, "valid_reads", 0.98) == 1
    assert choose(rows, "valid_reads", 0.80) == 2
    assert choose(rows, "valid_reads", 1.10) is None


def test_an_export_storing_a_weight_that_is_not_finite_is_named():
    """Exports made before --score_weights refused nan could store one: tuning them is one
    InputError naming the export, not Fusion's ValueError."""
    import types

    import tensorflow as tf

    from core.errors import InputError
    from online.tune_fusion import stored_fusion

    def export(weights):
        return types.SimpleNamespace(path="serving/old/1", model=types.SimpleNamespace(
            signatures={"score_fusion": lambda unused: {
                "outputs": tf.constant([b"ctr", b"expected_dwell_seconds"]),
                "weights": tf.constant(weights, tf.float32), "space": tf.constant(b"log")}}))

    assert stored_fusion(export([1.0, 0.5])).weights == (("ctr", 1.0),
                                                         ("expected_dwell_seconds", 0.5))
    with pytest.raises(InputError, match=r"^serving/old/1's stored score: the weight of "
                                         r"expected_dwell_seconds must be a finite number .*, "
                                         r"not nan: export it again with finite --score_weights"):
        stored_fusion(export([1.0, float("nan")]))


def test_a_report_on_the_tuning_seed_says_it_is_not_held_out():
    from online.tune_fusion import render
    from ranking.fusion import Fusion

    change = {"percent": 1.0, "ci95": 0.5}
    report = {"chosen": {"metrics": {"relative_change": {c: change for c in metrics.CHANGES}}}}
    stored = Fusion((("ctr", 1.0), ("expected_dwell_seconds", 1.0)), "log")
    held_out = render([], None, report, "valid_reads", stored)
    same = render([], None, report, "valid_reads", stored, held_out=False)
    assert "Report sessions (another seed), against the baseline" in held_out
    assert "Report sessions (the tuning seed: not held out), against the baseline" in same
    assert "| chosen | +1.00 % ± 0.50 |" in same


def test_tune_fusion_cli_sweeps_the_stored_weights(small_world, exports, run, tmp_path):
    """A sweep of ple's expected-dwell weight against random, on tiny sessions: one row per
    grid value, the stored fusion and the choice reported on other sessions, a picture."""
    out = tmp_path / "tuning"
    done = run("online.tune_fusion", f"--saved_model={exports['ple'].path}",
               "--baseline=random", f"--sim={small_world['root'] / 'sim'}",
               f"--stats={small_world['stats']}", f"--output_dir={out}", "--days=1",
               "--candidates=8", "--grid=0,1", "--min_clicks=0")
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(os.listdir(out)) == ["frontier.json", "frontier.md", "frontier.png"]
    result = json.load(open(out / "frontier.json"))
    assert [r["fusion"]["weights"] for r in result["rows"]] == [
        {"ctr": 1.0, "expected_dwell_seconds": 0.0}, {"ctr": 1.0, "expected_dwell_seconds": 1.0}]
    assert result["stored"]["space"] == "log" and result["chosen"] in (0, 1)
    assert set(result["report"]) == {"stored (score = 1*log(ctr) + 1*log(expected_dwell_seconds))",
                                     "chosen"}
    # The stored weights are row 1's: measured on the report seed's sessions, not the tuning's.
    assert result["report_seed"] != result["tune_seed"]
    assert "--score_weights=ctr=1,expected_dwell_seconds=" in done.stdout


def test_refusals_before_a_wrong_simulation(world_and_artifact, small_world, exports, tmp_path):
    """Days past the calendar, a stats artifact of other logs, a model reading a column the
    simulator has not, no policy, a seed past int64: refused, each with a sentence."""
    from core.errors import InputError
    from online.policies import SavedModelPolicy, make_policies

    world, artifact = world_and_artifact  # a 6-day world: days 0..5
    with pytest.raises(InputError, match=r"online days 5..6 reach past the simulation's "
                                         r"calendar \(days 0..5\)"):
        simulation.simulate(world, {"r": RandomPolicy()}, artifact,
                            simulation.OnlineConfig(days=2, start_day=5))
    assert simulation.check_world(world, simulation.OnlineConfig(days=1)) == []
    warned = simulation.check_world(world, simulation.OnlineConfig(days=1, candidates=10 ** 6))
    assert len(warned) == 1 and "fewer than --candidates=1000000" in warned[0]
    with pytest.raises(InputError, match="below 2"):
        simulation.check_config(simulation.OnlineConfig(seed=2 ** 63))

    simulation.check_artifact(str(small_world["root"] / "sim"), artifact)  # its own logs
    other = tmp_path / "other_sim"
    (other / "logs").mkdir(parents=True)
    for name in os.listdir(small_world["root"] / "sim" / "logs"):
        (other / "logs" / name).write_bytes(b"other bytes")
    with pytest.raises(InputError, match="computed from other logs than the simulation"):
        simulation.check_artifact(str(other), artifact)

    with pytest.raises(InputError, match="--baseline: give at least one policy"):
        make_policies([], flag="--baseline")
    with pytest.raises(InputError, match="--baseline: 'foo' is not a built-in policy"):
        make_policies(["foo"], flag="--baseline")
    import tensorflow as tf

    tf.saved_model.save(tf.Module(), str(tmp_path / "foreign"))  # no signatures of ours
    with pytest.raises(InputError, match="is not an export of this project"):
        SavedModelPolicy(str(tmp_path / "foreign"))
    policy = SavedModelPolicy(exports["vr_ndt"].path)

    class WithoutItemLength:  # the world, observing no item_length column
        def __getattr__(self, name):
            return getattr(world, name)

        def observe(self, requests, items):
            columns = world.observe(requests, items)
            del columns["item_length"]
            return columns

    sessions = simulation.draw_sessions(world, 4, np.ones(world.config.num_users),
                                        simulation.OnlineConfig(candidates=4))
    requests = simulator.Requests(user=np.repeat(sessions.user[:2], 4),
                                  timestamp=np.repeat(sessions.start[:2], 4),
                                  session=np.repeat(sessions.key[:2], 4),
                                  position=np.zeros(8, np.int64))
    items = sessions.candidates[:2].reshape(-1)
    assert len(policy.scores(world, requests, items)) == 8
    with pytest.raises(InputError, match="reads feature\\(s\\) item_length, which the simulated "
                                         "world does not have"):
        policy.scores(WithoutItemLength(), requests, items)


def test_an_undefined_change_reads_undefined_not_nan():
    assert metrics.change_text({"percent": -11.624, "ci95": 1.1295}) == "-11.62 % ± 1.13"
    assert metrics.change_text({"percent": float("nan"), "ci95": None}) == (
        "undefined ± undefined")
