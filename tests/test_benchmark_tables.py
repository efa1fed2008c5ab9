"""The ORCA table and Table 1 benchmarks on a user's own logs (--train, --eval): the flags they
refuse, a metric left undefined, and one whole ORCA table on the small world's logs, its gain
recomputed by hand from the runs' eval_metrics.json, and ORCA's gain beside the prior-adjusted
decision (orca_decision.py) on that table's runs."""

import csv
import glob
import gzip
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from ranking import metrics

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCHMARKS = os.path.join(REPO, "benchmarks")


def bench(script, *args, cwd=REPO):
    """Runs benchmarks/`script` as a user would: (exit status, stdout, stderr)."""
    env = dict(os.environ, PYTHONPATH=REPO, TF_CPP_MIN_LOG_LEVEL="3")
    done = subprocess.run([sys.executable, os.path.join(BENCHMARKS, script), *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=600)
    return done.returncode, done.stdout, done.stderr


@pytest.mark.parametrize("script, args, says", [
    ("orca_table.py", ["--train=a.csv"], "--train and --eval go together"),
    ("orca_table.py", ["--eval=a.csv"], "--train and --eval go together"),
    ("orca_table.py", ["--train=a.csv", "--eval=b.csv", "--settings=legacy",
                       "--post_click_features=x"], "--settings: a simulator flag"),
    ("orca_table.py", ["--train=a.csv", "--eval=b.csv"],
     "--post_click_features is required with --train"),
    ("orca_table.py", ["--post_click_features=x"], "--post_click_features is for --train"),
    ("orca_table.py", ["--stats_args=--column_types=a:string"], "--stats_args is for --train"),
    ("orca_table.py", ["--seeds=0,a"], "--seeds=0,a: comma-separated integers"),
    ("orca_table.py", ["--runs=mmoe,nope"], "--runs: unknown run(s) nope"),
    ("orca_table.py", ["--train=a.csv", "--eval=b.csv", "--post_click_features=x",
                       "--stats_args=--column_types='a:string"],
     "--stats_args=\"--column_types='a:string\": No closing quotation"),
    ("orca_table.py", ["--project_args='--max_epochs=1"], "No closing quotation"),
    ("table1.py", ["--train=a.csv", "--eval=b.csv", "--setting=entangled"],
     "--setting: a simulator flag"),
    ("table1.py", ["--eval=b.csv"], "--train and --eval go together"),
    ("table1.py", ["--seeds=1;2"], "--seeds=1;2: comma-separated integers"),
    ("table1.py", ["--max_epochs=0"], "--epochs, --max_epochs and --batch_size are at least 1"),
    ("table1.py", ["--project_args=--seed='1"], "--project_args=\"--seed='1\": No closing"),
])
def test_the_logs_flags_refused_before_any_work(tmp_path, script, args, says):
    status, stdout, stderr = bench(script, f"--out={tmp_path / 'out'}", *args)
    assert status == 2 and says in stderr, stderr
    assert "Traceback" not in stderr
    assert not (tmp_path / "out").exists()


def test_an_undefined_metric_gives_an_undefined_gain_not_a_crash():
    reference = {"dt_mae_class": 1.0, "dt_rmse_class": 2.0, "dt_weighted_f1": 0.25,
                 "dt_macro_precision": None, "dt_macro_recall": 0.2}
    candidate = dict(reference, dt_mae_class=0.8, dt_macro_precision=0.5)
    gains = metrics.dt_gains(candidate, reference)
    assert gains[0] == pytest.approx(20.0) and gains[1:3] == [0.0, 0.0] and gains[4] == 0.0
    assert math.isnan(gains[3])
    assert math.isnan(metrics.dt_gains(reference, candidate)[3])


def test_the_prior_adjusted_decision_by_hand():
    """orca_decision.py's rule: argmax of ln p - ln pi, pi add-one smoothed; a bin of zero
    probability is never chosen."""
    sys.path.insert(0, BENCHMARKS)
    try:
        import orca_decision
    finally:
        sys.path.remove(BENCHMARKS)
    prior = orca_decision.smoothed_prior([0, 3, 1])
    np.testing.assert_allclose(prior, [1 / 7, 4 / 7, 2 / 7])
    probs = np.array([[0.2, 0.5, 0.3],    # 1.4, 0.875, 1.05 times the prior: bin 0
                      [0.0, 0.6, 0.4],    # -, 1.05, 1.4: bin 2
                      [0.05, 0.9, 0.05]])  # 0.35, 1.575, 0.175: bin 1, as argmax
    scores = orca_decision.prior_adjusted_scores(probs, prior)
    assert np.argmax(scores, axis=1).tolist() == [0, 2, 1]
    assert np.isneginf(scores[1, 0])
    decided = metrics.dwell_metrics(np.array([0, 1, 1]), scores, np.array([1.0, 5.0, 5.0]),
                                    np.array([1.0, 5.0, 20.0]))
    assert decided["dt_pred_bin_distribution"] == pytest.approx([1 / 3, 1 / 3, 1 / 3])
    assert decided["dt_mae_class"] == pytest.approx(1 / 3)  # |0-0|, |2-1|, |1-1|


def test_a_simulations_last_days_are_its_evaluation_logs_in_day_order(tmp_path):
    """Day files split by their number, not their name's text: with day-99 and day-100 (a
    world simulated before names widened past 99 days, or given by hand) day-100 is last."""
    sys.path.insert(0, BENCHMARKS)
    try:
        import common
    finally:
        sys.path.remove(BENCHMARKS)
    logs = tmp_path / "logs"
    logs.mkdir()
    for day in (98, 99, 100, 7):
        (logs / f"day-{day:02d}.csv.gz").write_bytes(b"")
    (logs / "notes.txt").write_text("not a day")
    train, evaluate = common.simulated_days(str(tmp_path), 2)
    assert train.split(",") == [str(logs / "day-07.csv.gz"), str(logs / "day-98.csv.gz")]
    assert evaluate.split(",") == [str(logs / "day-99.csv.gz"), str(logs / "day-100.csv.gz")]
    # A glob and the list of the files it matches are one input (a table made before the
    # split by day number reused, not refused).
    assert common.input_files(f"{logs}/day-9*.csv.gz") == common.input_files(
        f"{logs / 'day-99.csv.gz'},{logs / 'day-98.csv.gz'}")
    assert common.input_files(f"{logs}/day-9*.csv.gz") != common.input_files(evaluate)
    run = tmp_path / "run"
    run.mkdir()
    (run / common.ARGS_FILE).write_text(json.dumps(sorted(
        [f"--train={logs}/day-9*.csv.gz", "--seed=0"])))
    common.check_reused_args(str(run), [f"--train={logs / 'day-98.csv.gz'},"
                                        f"{logs / 'day-99.csv.gz'}", "--seed=0"])  # reused
    with pytest.raises(SystemExit, match="was trained with"):
        common.check_reused_args(str(run), [f"--train={logs / 'day-98.csv.gz'}", "--seed=0"])
    with pytest.raises(SystemExit) as refused:
        common.simulated_days(str(tmp_path), 4)
    assert str(refused.value) == (f"error: {logs} has 4 day file(s) and the last 4 are the "
                                  "evaluation logs: simulate at least 5 days (--days)")
    with pytest.raises(SystemExit, match="simulate at least 5 days"):
        common.simulated_days(str(tmp_path), 3, train_days=2)


def test_table1_summary_with_an_undefined_auc():
    sys.path.insert(0, BENCHMARKS)
    try:
        import table1
    finally:
        sys.path.remove(BENCHMARKS)
    run = {"global_step": 10, "train_examples_per_second": 1000.0}
    results = {"single_ctr": {0: dict(run, auc_valid_read=0.6, auc_ctr=0.7)},
               "vr_ndt": {0: dict(run, auc_valid_read=None, auc_ctr=0.65)}}
    rows = {r["model"]: r for r in table1.summarize(results, [0])}
    assert math.isnan(rows["vr_ndt"]["auc_valid_read_mean"])
    assert math.isnan(rows["vr_ndt"]["rel_impr_mean"])
    assert rows["vr_ndt"]["auc_ctr_mean"] == pytest.approx(0.65)
    assert rows["single_ctr"]["rel_impr_mean"] == 0.0
    table = table1.render(list(rows.values()), "cmd", 1)
    assert "| vr_ndt | undefined | undefined | 0.6500 | 10 | undefined |" in table, table
    assert "| single_ctr | 0.6000 | +0.00% | 0.7000 |" in table, table


def hand_gain(orca, base):
    """ORCA's mean DT gain over the five class metrics, in percent, by hand: lower MAE and RMSE
    in bins are better, higher F1, precision and recall."""
    lower = ("dt_mae_class", "dt_rmse_class")
    higher = ("dt_weighted_f1", "dt_macro_precision", "dt_macro_recall")
    changes = [(base[k] - orca[k]) / abs(base[k]) for k in lower]
    changes += [(orca[k] - base[k]) / abs(base[k]) for k in higher]
    return 100 * sum(changes) / 5


def test_the_orca_table_on_a_users_logs(small_world, tmp_path):
    out = tmp_path / "out"
    # A feature config marks one more post-click feature than the flag names.
    feature_config = tmp_path / "features.json"
    feature_config.write_text('{"features": {"publish_age_hours": {"post_click": true}}}')
    args = [f"--out={out}", f"--train={small_world['train']}", f"--eval={small_world['eval']}",
            "--name=mine", "--post_click_features=category,item_length", "--seeds=0",
            "--runs=mmoe_orca", "--project_args=--max_epochs=2 --steps_per_epoch=4 "
            f"--batch_size=256 --feature_config={feature_config}"]
    status, stdout, stderr = bench("orca_table.py", *args)
    assert status == 0, stderr
    # The stats of the given training logs, both bins, under OUT/NAME.
    for stats in ("stats", "stats_authors"):
        with open(out / "mine" / stats / "stats.json") as handle:
            assert json.load(handle)["inputs"] == small_world["train"]
    runs = {}
    for name in ("mmoe", "mmoe_orca"):
        model_dir = out / "mine" / "models" / f"{name}-seed0"
        with open(model_dir / "eval_metrics.json") as handle:
            runs[name] = json.load(handle)
        with open(model_dir / "config.json") as handle:
            features = json.load(handle)["features"]
        assert sorted(f["name"] for f in features if f.get("post_click")) == [
            "category", "item_length", "publish_age_hours"]
        # The run's warning and note lines, kept beside it: those passed on to stderr.
        with open(model_dir / "benchmark_notes.json") as handle:
            kept = json.load(handle)
        assert all(f"{line} [mine seed 0 {name}]" in stderr for line in kept), (kept, stderr)
    with open(out / "orca_table.json") as handle:
        table = json.load(handle)
    section = table["settings"]["mine"]
    assert section["logs"]["train"] == small_world["train"]
    with open(out / "mine" / "stats" / "stats.json") as handle:
        stats = json.load(handle)
    assert section["logs"]["rows"] == stats["rows"]
    assert section["logs"]["ctr"] == pytest.approx(stats["clicks"] / stats["rows"])
    gain = section["gains"]["mmoe_orca"]["class"][0]
    assert gain == pytest.approx(hand_gain(runs["mmoe_orca"], runs["mmoe"]), abs=1e-9)
    markdown = (out / "orca_table.md").read_text()
    assert "### Logs `mine`" in markdown and f"{stats['rows']:,} impressions" in markdown
    assert f"| MMoE + ORCA | MMoE | {gain:+.1f} % |" in markdown and "; 1 seed." in markdown
    assert ("post-click features (ORCA masks them) category, item_length, publish_age_hours"
            in markdown)
    assert "notes on the evaluation logs" not in markdown  # later days than the training's
    assert "trained before" not in markdown  # every run's notes are kept
    # What each run was trained with, kept beside it.
    with open(out / "mine" / "models" / "mmoe-seed0" / "benchmark_args.json") as handle:
        trained = json.load(handle)
    assert "--max_epochs=2" in trained and "--model=mmoe" in trained and "--seed=0" in trained
    assert "--name=mine" in table["command"]

    # ORCA's gain beside the prior-adjusted decision (orca_decision.py): each served head,
    # predicted again, gives eval_metrics.json's metrics (the script refuses a run otherwise).
    status, printed, stderr = bench("orca_decision.py", f"--out={out}", "--setting=mine",
                                    "--runs=mmoe_orca", "--seeds=0")
    assert status == 0, stderr
    with open(out / "orca_decision_mine.json") as handle:
        decided = json.load(handle)
    rows = {(r["run"], r["decision"]): r for r in decided["rows"]}
    assert rows[("mmoe", "argmax")]["gain"] == [0.0, 0.0]
    assert rows[("mmoe_orca", "argmax")]["gain"][0] == pytest.approx(gain, abs=1e-9)
    backbone = decided["models"]["mmoe-seed0"]
    assert backbone["argmax"]["dt_macro_recall"] == pytest.approx(
        runs["mmoe"]["dt_macro_recall"], rel=1e-6)
    assert rows[("mmoe", "prior-adjusted")]["gain"][0] == pytest.approx(
        hand_gain(backbone["prior-adjusted"], runs["mmoe"]), abs=1e-9)
    # The prior: the training logs' clicks per bin of the stats' edges, counted here by hand.
    with open(out / "mine" / "stats" / "stats.json") as handle:
        edges = np.asarray(json.load(handle)["dwell_bin_edges"])
    dwell = []
    for path in sorted(glob.glob(small_world["train"])):
        with gzip.open(path, "rt") as handle:
            dwell += [float(r["dwell_time"]) for r in csv.DictReader(handle) if r["click"] == "1"]
    bins = np.clip(np.searchsorted(edges, dwell, side="right") - 1, 0, len(edges) - 2)
    counts = np.bincount(bins, minlength=len(edges) - 1)
    np.testing.assert_allclose(backbone["prior"], (counts + 1) / (counts.sum() + len(counts)))
    assert "| mmoe_orca | prior-adjusted |" in printed
    # A run whose metrics are not its model's is refused in one line.
    edited = out / "mine" / "models" / "mmoe_orca-seed0" / "eval_metrics.json"
    recorded = json.loads(edited.read_text())
    edited.write_text(json.dumps({**recorded, "dt_mae_class": recorded["dt_mae_class"] + 0.5}))
    status, _, stderr = bench("orca_decision.py", f"--out={out}", "--setting=mine",
                              "--runs=mmoe_orca", "--seeds=0")
    assert status == 1 and "Traceback" not in stderr
    assert stderr.strip().splitlines()[-1].startswith(
        f"error: {edited.parent}: dt_mae_class predicted again is "), stderr
    edited.write_text(json.dumps(recorded))

    # Run again: the runs and stats are reused (no training), the feature config's post-click
    # feature included; other logs into the same OUT are refused rather than mixed. A run's
    # note on its --eval logs (as training prints one for rows of the training days) is in
    # the table; a run trained before notes were kept: the table says what it cannot know.
    overlap = ("note: 7 --eval rows fall on 1 UTC day(s) of --train's days or before "
               "(2024-10-05; --train ends 2024-10-06): held-out logs should be later days than "
               "the training logs")
    absent = ("note: the model's feature(s) likes have no value in any sampled record of the "
              "--eval logs (empty CSV fields, or left out of every tf.Example): read as their "
              "default there")  # a note on the --eval logs, not on their overlap
    with open(out / "mine" / "models" / "mmoe-seed0" / "benchmark_notes.json", "w") as handle:
        json.dump([absent, overlap], handle)
    os.remove(out / "mine" / "models" / "mmoe_orca-seed0" / "benchmark_notes.json")
    mtime = os.path.getmtime(out / "mine" / "models" / "mmoe-seed0" / "eval_metrics.json")
    status, again, stderr = bench("orca_table.py", *args)
    assert status == 0, stderr
    assert os.path.getmtime(out / "mine" / "models" / "mmoe-seed0" / "eval_metrics.json") == mtime
    markdown = (out / "orca_table.md").read_text()
    assert ("notes on the evaluation logs** (rows the models trained or were selected on, or "
            "the statistics learned the labels' thresholds from):\n\n"
            f"- {overlap}\n") in markdown
    assert "no value in any sampled record" not in markdown
    assert ("(1 of the runs were trained before their notes were kept: what they noted of the "
            "evaluation logs is not known here.)") in markdown
    def changed(flag, value):
        return [a if not a.startswith(f"--{flag}=") else f"--{flag}={value}" for a in args]

    status, _, stderr = bench("orca_table.py", *changed("train", small_world["eval"]))
    assert status == 1
    assert (f"holds the statistics of {small_world['train']} (flags none), not of "
            f"{small_world['eval']} (flags none)") in stderr
    status, _, stderr = bench("orca_table.py", *args, "--stats_args=--min_dwell=3")
    assert status == 1 and "(flags --min_dwell=3)" in stderr
    # Finished runs evaluated on other logs, or trained with other post-click features.
    status, _, stderr = bench("orca_table.py", *changed("eval", small_world["train"]))
    assert status == 1
    assert f"was evaluated on {small_world['eval']}, not {small_world['train']}" in stderr
    status, _, stderr = bench("orca_table.py", *changed("post_click_features", "category"))
    assert status == 1
    assert ("trained with post-click features category,item_length,publish_age_hours, not "
            "category,publish_age_hours") in stderr
    # A misspelt post-click feature, into a new OUT: refused once the first stats artifact
    # names the columns, before the second and before any training.
    fresh = [a.replace(f"--out={out}", f"--out={tmp_path / 'fresh'}") for a in args]
    status, _, stderr = bench("orca_table.py", *[
        a if not a.startswith("--post_click_features=") else
        "--post_click_features=category,item_lenght" for a in fresh])
    assert status == 1
    assert stderr.startswith("error: --post_click_features names item_lenght, not a column of "
                             f"{small_world['train']} (columns: "), stderr
    assert (tmp_path / "fresh" / "mine" / "stats" / "stats.json").exists()
    assert not (tmp_path / "fresh" / "mine" / "stats_authors").exists()
    assert not (tmp_path / "fresh" / "mine" / "models").exists()
    # Finished runs trained with other ranking.train flags than asked now.
    status, _, stderr = bench("orca_table.py", *changed(
        "project_args", "--max_epochs=3 --steps_per_epoch=4 --batch_size=256 "
        f"--feature_config={feature_config}"))
    assert status == 1, stderr
    assert "was trained with --max_epochs=2, not --max_epochs=3: give the benchmark a new --out" \
        in stderr


def test_table1_on_a_users_logs(small_world, tmp_path):
    out = tmp_path / "out"
    args = [f"--out={out}", f"--train={small_world['train']}", f"--eval={small_world['eval']}",
            "--name=mine", "--seeds=0", "--protocol=one_epoch", "--batch_size=256",
            "--project_args=--steps_per_epoch=3"]
    status, stdout, stderr = bench("table1.py", *args)
    assert status == 0, stderr
    markdown = (out / "table1-mine-one_epoch.md").read_text()
    with open(out / "mine" / "stats" / "stats.json") as handle:
        stats = json.load(handle)
    assert markdown.startswith("### Table 1 on mine, protocol `one_epoch`\n\nLogs `mine`: "
                               f"training `{small_world['train']}` ({stats['rows']:,} "
                               "impressions, CTR ")
    assert "| model | valid-read AUC (1 seed) |" in markdown and " ± " not in markdown
    run_dir = out / "mine" / "one_epoch" / "models" / "single_ctr-seed0"
    with open(run_dir / "eval_metrics.json") as handle:
        assert json.load(handle)["global_step"] == 3  # --project_args reached the run
    status, again, stderr = bench("table1.py", *args)
    assert status == 0 and again.count("(reused)") == 5, again
    status, _, stderr = bench("table1.py", *args[:-1], "--project_args=--steps_per_epoch=4")
    assert status == 1
    assert "was trained with --steps_per_epoch=3, not --steps_per_epoch=4" in stderr


def test_logs_rewritten_under_the_same_globs_are_refused(tmp_path, monkeypatch):
    sys.path.insert(0, BENCHMARKS)
    try:
        import common
    finally:
        sys.path.remove(BENCHMARKS)
    # Globs relative to the user's directory are read there, not in the repository the jobs
    # run from.
    monkeypatch.chdir(tmp_path)
    assert common.absolute_globs("logs/day-*.csv,gs://bucket/day-*.csv") == (
        f"{tmp_path}/logs/day-*.csv,gs://bucket/day-*.csv")
    logs = tmp_path / "logs"
    logs.mkdir()
    for day in ("a", "b"):
        (logs / f"day-{day}.csv").write_text("user_id\n1\n")
    inputs = {"train": str(logs / "day-a.csv"), "eval": str(logs / "day-b*.csv")}
    results = tmp_path / "out" / "mine"
    common.check_inputs_unchanged(str(results), inputs, made=False)
    common.check_inputs_unchanged(str(results), inputs, made=True)  # unchanged: passes
    # Another glob is left to the checks that name it (stats_of, check_reused_eval).
    common.check_inputs_unchanged(str(results), dict(inputs, eval=str(logs / "day-a.csv")),
                                  made=True)
    common.check_inputs_unchanged(str(results), inputs, made=True)
    (logs / "day-b2.csv").write_text("user_id\n2\n")  # a file added under the eval glob
    with pytest.raises(SystemExit) as refused:
        common.check_inputs_unchanged(str(results), inputs, made=True)
    assert str(refused.value) == (
        f"error: the files of --eval={logs}/day-b*.csv changed since {results} was made from "
        f"them ({os.path.realpath(logs / 'day-b2.csv')}: added, removed or rewritten): give "
        "the benchmark a new --out (or remove that directory)")
    (logs / "day-b2.csv").unlink()
    common.check_inputs_unchanged(str(results), inputs, made=True)
    (logs / "day-a.csv").write_text("user_id\n1000\n")  # rewritten in place
    with pytest.raises(SystemExit, match="the files of --train="):
        common.check_inputs_unchanged(str(results), inputs, made=True)
    # Nothing made from them yet: the record is written again.
    common.check_inputs_unchanged(str(results), inputs, made=False)
    common.check_inputs_unchanged(str(results), inputs, made=True)
    # A run with other globs in between (refused later by the checks that name them) keeps the
    # record of the first globs: their files rewritten meanwhile are still found.
    common.check_inputs_unchanged(str(results), dict(inputs, train=str(logs / "day-b*.csv")),
                                  made=True)
    (logs / "day-a.csv").write_text("user_id\n1000000\n")
    with pytest.raises(SystemExit, match="the files of --train="):
        common.check_inputs_unchanged(str(results), inputs, made=True)


def test_a_benchmarks_jobs_pass_their_warnings_on_once(tmp_path, capsys, monkeypatch):
    sys.path.insert(0, BENCHMARKS)
    try:
        import common
    finally:
        sys.path.remove(BENCHMARKS)
    log = tmp_path / "ms.csv"  # dwell in milliseconds: the statistics job warns
    lines = ["user_id,item_id,timestamp,click,dwell_time"] + [
        f"u{k % 7},i{k % 5},{1_700_000_000 + k},{int(k % 3 == 0)},"
        f"{(40_000 + 997 * k) if k % 3 == 0 else 0}" for k in range(300)]
    log.write_text("\n".join(lines) + "\n")
    for run in (1, 2):
        common.module("pipelines.stats", f"--input={log}", f"--output_dir={tmp_path}/s{run}",
                      "--engine=local", "--ndt_tau=20", label="stats of ms.csv")
    stderr = capsys.readouterr().err
    warnings = [line for line in stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, stderr  # the second job's equal warning is not repeated
    assert "if it is in milliseconds, divide it by 1000" in warnings[0]
    assert warnings[0].endswith(" [stats of ms.csv]")
    # A note at the end of a line (the validation window's sliver) is passed on whole.
    sliver = "validation window (--validation_days=1): ...; note: 20 rows a held-out day"
    monkeypatch.setattr(common.subprocess, "run", lambda *a, **k: subprocess.CompletedProcess(
        a, 0, stdout=f"epoch 1/1\n{sliver}\n", stderr=""))
    assert common.module("ranking.train", label="run") == f"epoch 1/1\n{sliver}\n"
    assert capsys.readouterr().err == f"{sliver} [run]\n"
    monkeypatch.undo()
    with pytest.raises(SystemExit) as failed:  # a failing job: its error line, tagged
        common.module("pipelines.stats", f"--input={tmp_path}/none.csv",
                      f"--output_dir={tmp_path}/s3", label="stats of none.csv")
    assert str(failed.value).startswith("error: stats of none.csv: ")
    assert "\n" not in str(failed.value)


def test_the_peers_auc_is_scikit_learns():
    """benchmarks/deepctr_ple.py computes its AUC in NumPy (scikit-learn's import cost the
    peer's timed process 0.7-0.9 s): equal to roc_auc_score, ties included."""
    import importlib.util

    from sklearn.metrics import roc_auc_score

    spec = importlib.util.spec_from_file_location(
        "deepctr_ple", os.path.join(os.path.dirname(__file__), "..", "benchmarks",
                                    "deepctr_ple.py"))
    peer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(peer)
    rng = np.random.default_rng(0)
    for n, levels in ((50, 3), (1000, 20), (5000, 5000)):
        labels = rng.random(n) < 0.3
        scores = rng.integers(0, levels, n) / levels  # ties when levels < n
        assert peer.roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores),
                                                            abs=1e-12)
