"""Compare trained models: a Markdown report of their eval_metrics.json (SPEC §6).

    python -m report --model_dirs=models/single_ctr,models/vr_ndt --output=report.md \
        [--scores=scores]
    python -m report --model_dirs=... --output_dir=report --labelled=labelled \
        --online=online --scores=scores      # a report directory with pictures

The first model directory is the baseline of RelaImpr. With --scores (a pipelines.score
output), the report also gives the score distribution of the scored logs. With --output_dir,
the report is a directory: report.md and its pictures, the label job's ln(dwell) histogram
with the thresholds and the NDT curve (--labelled, the paper's Fig. 2), the shares of rules
T1/T2/T3 among valid reads, the online A/B table and dwell-migration heat maps (--online, a
pipelines.simulate_online output; the paper's Table 2 and Fig. 3).
"""

from __future__ import annotations

import glob
import json
import os

import numpy as np
from absl import flags

from core import cli  # sets TF_CPP_MIN_LOG_LEVEL before TensorFlow loads
from core.atomic import atomic_file
from core.errors import InputError
from ranking import metrics

FLAGS = flags.FLAGS
flags.DEFINE_list("model_dirs", None, "Model directories; the first is the baseline.")
flags.DEFINE_string("output", None, "Markdown file to write (default: print only).")
flags.DEFINE_string("scores", None, "Output directory of pipelines.score to summarize.")
flags.DEFINE_string("output_dir", None, "Write a report directory (report.md and pictures).")
flags.DEFINE_string("labelled", None, "Output directory of pipelines.label (pictures, rules).")
flags.DEFINE_string("online", None, "Output directory of pipelines.simulate_online.")
flags.mark_flags_as_required(["model_dirs"])


def load_metrics(model_dir: str) -> dict:
    path = os.path.join(model_dir, "eval_metrics.json")
    try:
        with open(path) as handle:
            return json.load(handle)
    except OSError:
        raise InputError("no eval_metrics.json: train with --eval first", file=model_dir) from None


def comparison_table(named: list[tuple[str, dict]]) -> str:
    """Markdown rows: the served score's AUCs and RelaImpr against the first model, each
    tower's own AUCs beside them, loglosses."""
    base = named[0][1]
    lines = ["| model | preset | served score | valid-read AUC | RelaImpr (valid read) | "
             "click AUC | RelaImpr (click) | towers' own AUCs (click / valid read) | logloss |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, m in named:
        loss = ", ".join(f"{k[8:]} {v:.4f}" for k, v in m.items() if k.startswith("logloss_"))
        towers = ", ".join(f"{t} {a['auc_ctr']:.4f} / {a['auc_valid_read']:.4f}"
                           for t, a in m.get("towers", {}).items()) or "–"
        fusion = m.get("score", {}).get("fusion", "score").removeprefix("score = ")
        lines.append(
            f"| {name} | {m['preset']} | `{fusion}` | {m['auc_valid_read']:.4f} | "
            f"{metrics.rel_impr(m['auc_valid_read'], base['auc_valid_read']):+.2f}% | "
            f"{m['auc_ctr']:.4f} | {metrics.rel_impr(m['auc_ctr'], base['auc_ctr']):+.2f}% | "
            f"{towers} | {loss} |")
    return "\n".join(lines)


DT_COLUMNS = (("dt_mae_class", "MAEclass", 3), ("dt_rmse_class", "RMSEclass", 3),
              ("dt_weighted_f1", "F1", 3), ("dt_macro_precision", "precision", 3),
              ("dt_macro_recall", "recall", 3), ("dt_mae_seconds", "MAE s", 1),
              ("dt_rmse_seconds", "RMSE s", 1))


def dwell_table(named: list[tuple[str, dict]]) -> str | None:
    """Markdown rows of the dwell-time metrics (clicked impressions) of the models that have
    them, with the ctr tower's own click AUC; None when no model has them."""
    rows = [(name, m) for name, m in named if "dt_mae_class" in m]
    if not rows:
        return None
    lines = ["Dwell time over clicked impressions (predicted bin = argmax of the served "
             "distribution; SPEC §6):", "",
             "| model | " + " | ".join(title for _, title, _ in DT_COLUMNS)
             + " | ctr tower's click AUC |", "|---|" + "---|" * (len(DT_COLUMNS) + 1)]
    for name, m in rows:
        auc = m.get("towers", {}).get("ctr", {}).get("auc_ctr")
        lines.append(f"| {name} | " + " | ".join(f"{m[k]:.{d}f}" for k, _, d in DT_COLUMNS)
                     + f" | {'–' if auc is None else f'{auc:.4f}'} |")
    return "\n".join(lines)


def _read_json(directory: str, name: str, flag: str) -> dict:
    path = os.path.join(directory, name)
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read {name} of {flag} ({error})", file=path) from None


def scores_summary(directory: str) -> str:
    import pandas as pd

    with open(os.path.join(directory, "summary.json")) as handle:
        summary = json.load(handle)
    frames = [pd.read_csv(p, usecols=["score"])
              for p in sorted(glob.glob(os.path.join(directory, "*.csv*")))
              if not p.endswith("dead_letter.csv")]
    lines = [f"Scored {summary['rows']:,} rows with `{summary['saved_model']}` "
             f"({summary['dead_letters']} dead letters); outputs: {', '.join(summary['outputs'])}."]
    if frames:
        score = pd.concat(frames)["score"].to_numpy()
        q = np.percentile(score, [1, 25, 50, 75, 99])
        lines.append("Score quantiles (1 / 25 / 50 / 75 / 99 %): "
                     + " / ".join(f"{v:.4f}" for v in q))
    return "\n\n".join(lines)


def rule_shares_figure(path: str, summary: dict) -> None:
    """Bar chart of the shares of T1/T2/T3 among valid reads, beside the paper's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shares = summary["rule_shares_of_valid_reads"]
    rules = ["T1", "T2", "T3"]
    x = np.arange(3)
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.bar(x - 0.2, [100 * shares[r] for r in rules], 0.4, label="these logs")
    ax.bar(x + 0.2, [89.9, 2.9, 7.2], 0.4, label="the paper's system", color="0.6")
    ax.set_xticks(x)
    ax.set_xticklabels(["T1: dwell > x_l", "T2: light user", "T3: > item P10"])
    ax.set_ylabel("% of valid reads (first rule that holds)")
    ax.set_title(f"Valid reads: {100 * summary['valid_read_share_of_clicks']:.1f} % of clicks")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_report_directory(output_dir: str, text: str, labelled: str | None,
                           online_dir: str | None) -> list[str]:
    """report.md with its pictures in `output_dir` (atomically); returns the picture names."""
    import shutil

    from core.atomic import atomic_directory

    pictures, sections = [], [text]
    with atomic_directory(output_dir, may_replace=lambda p: "report.md" in os.listdir(p)
                          or not os.listdir(p), what="--output_dir") as tmp:
        if labelled:
            summary = _read_json(labelled, "summary.json", "--labelled")
            if "rule_shares_of_valid_reads" not in summary:
                raise InputError("is not a pipelines.label summary",
                                 file=os.path.join(labelled, "summary.json"))
            shares = summary["rule_shares_of_valid_reads"]
            section = [f"## Labels\n\nValid reads are "
                       f"{100 * summary['valid_read_share_of_clicks']:.1f} % of the "
                       f"{summary['clicks']:,} clicks; first rule among valid reads: "
                       + ", ".join(f"{r} {100 * v:.1f} %" for r, v in shares.items())
                       + " (the paper's system: 89.9 / 2.9 / 7.2 %)."]
            if os.path.exists(os.path.join(labelled, "labels.png")):
                shutil.copy(os.path.join(labelled, "labels.png"), os.path.join(tmp, "labels.png"))
                pictures.append("labels.png")
                section.append("![ln(dwell) of clicks with mu ± sigma, x_l and x_h, and the NDT "
                               "curve beside log(1 + T)](labels.png)")
            rule_shares_figure(os.path.join(tmp, "rule_shares.png"), summary)
            pictures.append("rule_shares.png")
            section.append("![Shares of the valid-read rules](rule_shares.png)")
            sections.append("\n\n".join(section))
        if online_dir:
            run = _read_json(online_dir, "online.json", "--online")
            if not {"metrics", "config", "figures"} <= set(run):
                raise InputError("is not a pipelines.simulate_online output",
                                 file=os.path.join(online_dir, "online.json"))
            try:
                with open(os.path.join(online_dir, "online.md")) as handle:
                    table = handle.read()
            except OSError as error:
                raise InputError(f"cannot read online.md ({error.strerror})",
                                 file=online_dir) from None
            section = [f"## Online A/B test on the simulator\n\nPolicies "
                       f"{', '.join(run['metrics'])} over {run['config']['days']} simulated "
                       f"days, the same sessions, candidates and random draws for each "
                       f"(common random numbers); ± is a 95 % interval over users.", table]
            for name in run["figures"]:
                shutil.copy(os.path.join(online_dir, name), os.path.join(tmp, name))
                pictures.append(name)
                section.append(f"![Change in clicks by user activeness and dwell: "
                               f"{name[len('migration-'):-4]} against {list(run['metrics'])[0]}]"
                               f"({name})")
            sections.append("\n\n".join(section))
        with open(os.path.join(tmp, "report.md"), "w") as handle:
            handle.write("\n\n".join(sections) + "\n")
    return pictures


def main(argv):
    del argv
    named = [(os.path.basename(os.path.normpath(d)), load_metrics(d)) for d in FLAGS.model_dirs]
    first = named[0][1]
    if (FLAGS.labelled or FLAGS.online) and not FLAGS.output_dir:
        raise InputError("--labelled and --online go into a report directory: give --output_dir")
    if FLAGS.output_dir:
        parent = os.path.dirname(os.path.abspath(FLAGS.output_dir))
        if not os.path.isdir(parent):
            raise InputError(f"--output_dir {FLAGS.output_dir}: its parent {parent} is not a "
                             "directory")
    parts = [f"# dwellrank report\n\nEvaluated on `{first.get('eval')}`: {first['rows']:,} "
             f"impressions, {first['clicks']:,} clicks, {first['valid_reads']:,} valid reads. "
             f"RelaImpr is against `{named[0][0]}`.", comparison_table(named)]
    dwell = dwell_table(named)
    if dwell:
        parts.append(dwell)
    if FLAGS.scores:
        parts.append(scores_summary(FLAGS.scores))
    text = "\n\n".join(parts) + "\n"
    print(text)
    if FLAGS.output:
        with atomic_file(FLAGS.output) as handle:
            handle.write(text)
    if FLAGS.output_dir:
        pictures = write_report_directory(FLAGS.output_dir, text, FLAGS.labelled, FLAGS.online)
        print(f"wrote {FLAGS.output_dir}/report.md with {', '.join(pictures) or 'no pictures'}")


if __name__ == "__main__":
    cli.run(main)
