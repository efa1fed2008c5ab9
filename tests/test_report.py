"""ranking.report: the comparison table against hand-computed RelaImpr."""

import json


def write_metrics(directory, preset, auc_vr, auc_ctr):
    directory.mkdir()
    (directory / "eval_metrics.json").write_text(json.dumps({
        "preset": preset, "auc_valid_read": auc_vr, "auc_ctr": auc_ctr, "rows": 1000,
        "clicks": 120, "valid_reads": 100, "eval": "logs/*.csv", "logloss_ctr": 0.25}))


def test_report_relaimpr_by_hand(run, tmp_path):
    write_metrics(tmp_path / "base", "single_ctr", 0.60, 0.62)
    write_metrics(tmp_path / "new", "vr_ndt", 0.62, 0.61)
    done = run("ranking.report", f"--model_dirs={tmp_path / 'base'},{tmp_path / 'new'}",
               f"--output={tmp_path / 'report.md'}")
    assert done.returncode == 0, done.stderr
    text = (tmp_path / "report.md").read_text()
    # (0.62 - 0.5) / (0.60 - 0.5) - 1 = +20 %; (0.61 - 0.5) / (0.62 - 0.5) - 1 = -8.33 %
    assert "| new | vr_ndt | 0.6200 | +20.00% | 0.6100 | -8.33% |" in text
    assert "| base | single_ctr | 0.6000 | +0.00% | 0.6200 | +0.00% | ctr 0.2500 |" in text
    missing = run("ranking.report", f"--model_dirs={tmp_path / 'nothing'}")
    assert missing.returncode == 1 and "no eval_metrics.json" in missing.stderr
