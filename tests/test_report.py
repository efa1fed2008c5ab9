"""report: the comparison table against hand-computed RelaImpr."""

import json

import numpy as np
import pandas as pd


def write_metrics(directory, preset, auc_vr, auc_ctr, towers=None, rows=1000,
                  eval_logs="logs/*.csv"):
    directory.mkdir()
    (directory / "eval_metrics.json").write_text(json.dumps({
        "preset": preset, "auc_valid_read": auc_vr, "auc_ctr": auc_ctr, "rows": rows,
        "clicks": 120, "valid_reads": 100, "eval": eval_logs, "logloss_ctr": 0.25,
        "score": {"fusion": "score = 1*ctr", "auc_ctr": auc_ctr, "auc_valid_read": auc_vr},
        "towers": towers or {}}))


def test_report_relaimpr_by_hand(run, tmp_path):
    write_metrics(tmp_path / "base", "single_ctr", 0.60, 0.62)
    write_metrics(tmp_path / "new", "vr_ndt", 0.62, 0.61,
                  {"valid_read": {"auc_ctr": 0.605, "auc_valid_read": 0.618}})
    done = run("report", f"--model_dirs={tmp_path / 'base'},{tmp_path / 'new'}",
               f"--output={tmp_path / 'report.md'}")
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "report.md").read_text()
    # (0.62 - 0.5) / (0.60 - 0.5) - 1 = +20 %; (0.61 - 0.5) / (0.62 - 0.5) - 1 = -8.33 %
    assert ("| new | vr_ndt | `1*ctr` | 0.6200 | +20.00% | 0.6100 | -8.33% | "
            "valid_read 0.6050 / 0.6180 |") in text
    assert "| base | single_ctr | `1*ctr` | 0.6000 | +0.00% | 0.6200 | +0.00% | – | ctr 0.2500 |" \
        in text
    missing = run("report", f"--model_dirs={tmp_path / 'nothing'}")
    assert missing.returncode == 1 and "no eval_metrics.json" in missing.stderr
    # An existing file that is not a report stays as it was; an earlier report is replaced.
    (tmp_path / "notes.md").write_text("my notes\n")
    kept = run("report", f"--model_dirs={tmp_path / 'base'}", f"--output={tmp_path / 'notes.md'}")
    assert kept.returncode == 1 and kept.stderr == (
        f"error: --output {tmp_path / 'notes.md'} exists and is not a report of this command; "
        "refusing to overwrite it (choose another path or remove it)\n"), kept.stderr
    assert (tmp_path / "notes.md").read_text() == "my notes\n"
    # A device is not read to tell a report (on a terminal, /dev/stdout waited for its keys).
    device = run("report", f"--model_dirs={tmp_path / 'base'}", "--output=/dev/null")
    assert device.returncode == 1 and "is a device or a process's stream" in device.stderr, \
        device.stderr
    # (a trailing comma: an empty item, which named no path in "no eval_metrics.json")
    again = run("report", f"--model_dirs={tmp_path / 'base'},", f"--output={tmp_path / 'report.md'}")
    assert again.returncode == 0 and "| base |" in (tmp_path / "report.md").read_text()
    # A file cut short, or JSON without the figures: one line naming the file, no report.
    for name, content, says in (("cut", '{"preset": "single', "cannot read eval_metrics.json"),
                                ("bare", "{}", "it has no preset, rows, clicks"),
                                ("list", "[1]", "it has no preset, rows, clicks")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "eval_metrics.json").write_text(content)
        done = run("report", f"--model_dirs={tmp_path / 'base'},{tmp_path / name}",
                   f"--output={tmp_path / name / 'report.md'}")
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.startswith(f"error: {tmp_path / name / 'eval_metrics.json'}"), \
            done.stderr
        assert says in done.stderr and len(done.stderr.splitlines()) == 1, done.stderr
        assert not (tmp_path / name / "report.md").exists()


def test_the_preset_column_says_what_the_run_added_to_the_preset():
    from report import tables

    def description(orca=False, metabalance=False, single_task="ctr"):
        return {"model": {"orca": {"enabled": orca}, "towers": {"single_task": single_task}},
                "training": {"metabalance": {"enabled": metabalance}}}

    assert tables.preset_text("shared_bottom_dt", description(orca=True)) == \
        "shared_bottom_dt + ORCA"
    assert tables.preset_text("mmoe_orca", description(orca=True)) == "mmoe_orca"
    assert tables.preset_text("mmoe", description(metabalance=True)) == "mmoe + MetaBalance"
    assert tables.preset_text("deepfm", description(single_task="dwell_bins")) == \
        "deepfm (dwell_bins)"
    assert tables.preset_text("vr_ndt", description()) == "vr_ndt"
    assert tables.preset_text("single_ctr", description(metabalance=True)) == "single_ctr"
    assert tables.preset_text("vr_ndt", None) == "vr_ndt"


def test_no_relaimpr_against_a_model_evaluated_on_other_logs(run, tmp_path):
    from ranking import evaluation, metrics

    write_metrics(tmp_path / "base", "vr_ndt", 0.60, 0.62)
    write_metrics(tmp_path / "same", "mmoe", 0.62, 0.61, eval_logs="./logs/*.csv")
    write_metrics(tmp_path / "part", "mmoe", 0.55, 0.66, rows=400, eval_logs="logs/day-1.csv")
    done = run("report", f"--model_dirs={tmp_path / 'base'},{tmp_path / 'same'},"
               f"{tmp_path / 'part'}")
    assert done.returncode == 0, done.stderr
    # The same counts under another spelling of the logs: compared; other counts: not.
    assert "| same | mmoe | `1*ctr` | 0.6200 | +20.00% |" in done.stdout
    assert ("| part | mmoe | `1*ctr` | 0.5500 | other logs | 0.6600 | other logs |"
            in done.stdout)
    assert ("`base` evaluated on `logs/*.csv` (1,000 impressions, 120 clicks, 100 valid "
            "reads); `part` on other logs or labels (`logs/day-1.csv`: 400 impressions), so "
            "no RelaImpr for them") in done.stdout
    # ranking.train's RelaImpr line: not computed, and why.
    base = json.loads((tmp_path / "base" / "eval_metrics.json").read_text())
    result = json.loads((tmp_path / "part" / "eval_metrics.json").read_text())
    evaluation.add_rel_impr(result, base, "vr_ndt")
    assert result["rel_impr"]["auc_ctr"] is None and result["rel_impr"]["auc_valid_read"] is None
    assert metrics.other_evaluation(result, base) == result["rel_impr"]["not_comparable"] == (
        "evaluated on other logs or labels (400 rows, 120 clicks, 100 valid reads against "
        "the baseline's 1,000, 120, 100)")
    line = evaluation.summary_lines(dict(result, towers={}))[-1]
    assert line == ("  RelaImpr vs vr_ndt: not computed, the baseline was evaluated on other "
                    "logs or labels (400 rows, 120 clicks, 100 valid reads against the "
                    "baseline's 1,000, 120, 100)")


def test_report_directory_with_pictures(run, tmp_path):
    write_metrics(tmp_path / "base", "single_ctr", 0.60, 0.62)
    (tmp_path / "base" / "history.json").write_text(json.dumps({
        "metric": "auc_ctr", "direction": 1, "validations": [
            {"step": 10, "epoch": 1, "train_loss": 0.40, "auc_ctr": 0.60, "best": True},
            {"step": 20, "epoch": 2, "train_loss": 0.38, "auc_ctr": 0.59, "best": False}]}))
    labelled = tmp_path / "labelled"
    labelled.mkdir()
    (labelled / "summary.json").write_text(json.dumps({
        "clicks": 200, "valid_reads": 170, "valid_read_share_of_clicks": 0.85,
        "rule_shares_of_valid_reads": {"T1": 0.9, "T2": 0.04, "T3": 0.06}}))
    (labelled / "labels.png").write_bytes(b"\x89PNG fake")
    online = tmp_path / "online"
    online.mkdir()
    (online / "online.json").write_text(json.dumps({
        "metrics": {"single_ctr": {}, "vr_ndt": {}}, "config": {"days": 2},
        "figures": ["migration-vr_ndt.png"]}))
    (online / "online.md").write_text("| policy | CTR |\n|---|---|\n| single_ctr | 11.00 % |\n")
    (online / "migration-vr_ndt.png").write_bytes(b"\x89PNG fake")
    out = tmp_path / "report"
    done = run("report", f"--model_dirs={tmp_path / 'base'}", f"--labelled={labelled}",
               f"--online={online}", f"--output_dir={out}")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in out.iterdir()) == [
        "curves-base.png", "labels.png", "migration-vr_ndt.png", "report.md", "rule_shares.png"]
    assert (out / "curves-base.png").read_bytes()[:4] == b"\x89PNG"
    text = (out / "report.md").read_text()
    assert "Valid reads are 85.0 % of the 200 clicks; first rule among valid reads: T1 90.0 %" \
        in text
    assert "](labels.png)" in text and "](rule_shares.png)" in text
    assert "## Training and validation" in text and "](curves-base.png)" in text
    assert "| single_ctr | 11.00 % |" in text and "](migration-vr_ndt.png)" in text
    assert (out / "rule_shares.png").read_bytes()[:4] == b"\x89PNG"
    # Run again, it replaces its report; a directory holding a report.md of someone else's,
    # or anything beside the report, is refused and left as it was.
    again = run("report", f"--model_dirs={tmp_path / 'base'}", f"--output_dir={out}")
    assert again.returncode == 0, again.stderr
    assert sorted(p.name for p in out.iterdir()) == ["curves-base.png", "report.md"]
    (out / "thesis.tex").write_text("months of work")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "report.md").write_text("# my notes\n")
    for taken in (out, mine):
        refused = run("report", f"--model_dirs={tmp_path / 'base'}", f"--output_dir={taken}")
        assert refused.returncode == 1 and "Traceback" not in refused.stderr, refused.stderr
        assert refused.stderr.startswith(f"error: --output_dir {taken} exists and holds "
                                         "something else"), refused.stderr
    assert (out / "thesis.tex").read_text() == "months of work"
    assert (mine / "report.md").read_text() == "# my notes\n"


def test_score_quantiles_of_csv_and_tfrecord_shards_alike(tmp_path):
    """The report's score quantiles read `pipelines.score`'s shards in either format
    (numpy's percentiles of every score)."""
    from core import log_writers
    from report import tables

    rng = np.random.default_rng(5)
    scores = rng.random(3000).astype(np.float32)
    summary = {"rows": 3000, "saved_model": "m/1", "dead_letters": 0, "outputs": ["score"]}
    expected = "Score quantiles (1 / 25 / 50 / 75 / 99 %): " + " / ".join(
        f"{v:.4f}" for v in np.percentile(scores, [1, 25, 50, 75, 99]))
    for fmt in ("csv", "tfrecord"):
        out = tmp_path / fmt
        out.mkdir()
        (out / "summary.json").write_text(json.dumps(summary))
        # (An input named as TensorFlow shards, scored to CSV, keeps ".tfrecord" in its name.)
        for k, part in enumerate((scores[:1000], scores[1000:])):
            columns = {"user_id": np.array([b"u"] * len(part)), "score": part}
            if fmt == "csv":
                pd.DataFrame({"user_id": "u", "score": part}).to_csv(
                    out / f"0000{k}-day.tfrecord-0000{k}-of-00002.csv.gz", index=False,
                    float_format="%.9g")
            else:
                log_writers.write_tfrecord(str(out / f"0000{k}-day.tfrecord.gz"), columns)
        assert expected in tables.scores_summary(str(out)), fmt


def test_report_refuses_unusable_inputs_in_one_line(run, tmp_path):
    write_metrics(tmp_path / "base", "single_ctr", 0.60, 0.62)
    (tmp_path / "empty").mkdir()
    cases = [([f"--labelled={tmp_path / 'empty'}", f"--output_dir={tmp_path / 'r1'}"],
              "cannot read summary.json of --labelled"),
             ([f"--online={tmp_path / 'empty'}", f"--output_dir={tmp_path / 'r2'}"],
              "cannot read online.json of --online"),
             ([f"--online={tmp_path / 'empty'}"], "give --output_dir"),
             ([f"--output_dir={tmp_path / 'base' / 'eval_metrics.json' / 'sub'}"],
              "is not a directory"),
             # An input's own file is not overwritten by the report (it was, until 2026-12-07).
             ([f"--output={tmp_path / 'base' / 'eval_metrics.json'}"],
              f"--output {tmp_path / 'base' / 'eval_metrics.json'} is a file of the input "
              f"{tmp_path / 'base'}")]
    metrics = (tmp_path / "base" / "eval_metrics.json").read_text()
    for args, message in cases:
        done = run("report", f"--model_dirs={tmp_path / 'base'}", *args)
        assert done.returncode == 1 and message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
    assert not (tmp_path / "r1").exists() and not (tmp_path / "r2").exists()
    assert (tmp_path / "base" / "eval_metrics.json").read_text() == metrics
    # A report of its own there is replaced when run again.
    for _ in range(2):
        done = run("report", f"--model_dirs={tmp_path / 'base'}",
                   f"--output={tmp_path / 'base' / 'report.md'}")
        assert done.returncode == 0, done.stderr


def test_models_of_one_name_in_two_experiments_keep_their_own_rows_and_curves(run, tmp_path):
    """expA/vr_ndt and expB/vr_ndt: the rows and pictures are told apart by their parent
    directory, each picture drawn from its own history (the selected step marked)."""
    for experiment, step in (("expA", 10), ("expB", 20)):
        model_dir = tmp_path / experiment / "vr_ndt"
        model_dir.parent.mkdir()
        write_metrics(model_dir, "vr_ndt", 0.60, 0.62)
        (model_dir / "history.json").write_text(json.dumps({
            "metric": "auc_ctr", "direction": 1, "validations": [
                {"step": step, "epoch": 1, "train_loss": 0.4, "auc_ctr": 0.6, "best": True}]}))
    out = tmp_path / "report"
    done = run("report", f"--model_dirs={tmp_path / 'expA' / 'vr_ndt'},"
               f"{tmp_path / 'expB' / 'vr_ndt'}", f"--output_dir={out}")
    assert done.returncode == 0, done.stderr
    pictures = sorted(p.name for p in out.glob("curves-*.png"))
    assert pictures == ["curves-expA_vr_ndt.png", "curves-expB_vr_ndt.png"]
    assert (out / pictures[0]).read_bytes() != (out / pictures[1]).read_bytes()
    text = (out / "report.md").read_text()
    assert "| expA/vr_ndt | vr_ndt |" in text and "| expB/vr_ndt | vr_ndt |" in text
    # Names whose file names would be one: a_b/vr_ndt and a/b/vr_ndt (beside c/b/vr_ndt).
    for parts in (("a_b",), ("a", "b"), ("c", "b")):
        model_dir = tmp_path.joinpath(*parts, "vr_ndt")
        model_dir.parent.mkdir(parents=True)
        write_metrics(model_dir, "vr_ndt", 0.60, 0.62)
        (model_dir / "history.json").write_text((tmp_path / "expA" / "vr_ndt" /
                                                 "history.json").read_text())
    done = run("report", f"--model_dirs={tmp_path / 'a_b' / 'vr_ndt'},"
               f"{tmp_path / 'a' / 'b' / 'vr_ndt'},{tmp_path / 'c' / 'b' / 'vr_ndt'}",
               f"--output_dir={tmp_path / 'r2'}",
               f"--output={tmp_path / 'new' / 'r.md'}")  # --output's directory is made
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in (tmp_path / "r2").glob("curves-*.png")) == [
        "curves-a_b_vr_ndt-2.png", "curves-a_b_vr_ndt.png", "curves-c_b_vr_ndt.png"]
    assert (tmp_path / "new" / "r.md").read_text().startswith("# dwellrank report")
    twice = run("report", f"--model_dirs={tmp_path / 'expA' / 'vr_ndt'},"
                f"{tmp_path / 'expA' / 'vr_ndt'}/")
    assert twice.returncode == 1 and "gives" in twice.stderr and "twice" in twice.stderr


def test_report_inputs_missing_a_file_fail_in_one_line_and_write_nothing(run, tmp_path):
    write_metrics(tmp_path / "base", "single_ctr", 0.60, 0.62)
    online = tmp_path / "online"
    online.mkdir()
    (online / "online.json").write_text(json.dumps({
        "metrics": {"single_ctr": {}}, "config": {"days": 2}, "figures": ["migration-x.png"]}))
    (online / "online.md").write_text("| policy |\n")
    tuning = tmp_path / "tuning"
    tuning.mkdir()
    (tuning / "frontier.json").write_text(json.dumps({
        "saved_model": "s", "baseline": "b", "objective": "valid_reads", "min_clicks": 0.98}))
    scores = tmp_path / "scores"
    scores.mkdir()
    (tmp_path / "a_directory").mkdir()
    cases = [([f"--online={online}"], "cannot read migration-x.png of --online"),
             ([f"--fusion_tuning={tuning}"], "cannot read frontier.md of --fusion_tuning"),
             ([f"--scores={scores}"], "cannot read summary.json of --scores")]
    for k, (args, message) in enumerate(cases):
        done = run("report", f"--model_dirs={tmp_path / 'base'}", *args,
                   f"--output_dir={tmp_path / f'r{k}'}",
                   f"--output={tmp_path / f'r{k}.md'}")
        assert done.returncode == 1 and message in done.stderr, done.stderr
        assert "Traceback" not in done.stderr
        assert not (tmp_path / f"r{k}.md").exists() and not (tmp_path / f"r{k}").exists()
    for directory in (str(tmp_path / "a_directory"), f"{tmp_path / 'to_be_made'}/"):
        done = run("report", f"--model_dirs={tmp_path / 'base'}", f"--output={directory}")
        assert done.returncode == 1 and "--output is a directory" in done.stderr, done.stderr
    assert not (tmp_path / "to_be_made").exists()
