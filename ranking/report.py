"""Compare trained models: a Markdown report of their eval_metrics.json (SPEC §6).

    python -m ranking.report --model_dirs=models/single_ctr,models/vr_ndt --output=report.md \
        [--scores=scores]

The first model directory is the baseline of RelaImpr. With --scores (a pipelines.score
output), the report also gives the score distribution of the scored logs.
"""

from __future__ import annotations

from pipelines import cli  # sets TF_CPP_MIN_LOG_LEVEL before TensorFlow loads

import glob
import json
import os

import numpy as np
from absl import flags

from pipelines.atomic import atomic_file
from pipelines.errors import InputError
from ranking import metrics

FLAGS = flags.FLAGS
flags.DEFINE_list("model_dirs", None, "Model directories; the first is the baseline.")
flags.DEFINE_string("output", None, "Markdown file to write (default: print only).")
flags.DEFINE_string("scores", None, "Output directory of pipelines.score to summarize.")
flags.mark_flags_as_required(["model_dirs"])


def load_metrics(model_dir: str) -> dict:
    path = os.path.join(model_dir, "eval_metrics.json")
    try:
        with open(path) as handle:
            return json.load(handle)
    except OSError:
        raise InputError("no eval_metrics.json: train with --eval first", file=model_dir) from None


def comparison_table(named: list[tuple[str, dict]]) -> str:
    """Markdown rows: AUCs, RelaImpr against the first model, loglosses."""
    base = named[0][1]
    lines = ["| model | preset | valid-read AUC | RelaImpr (valid read) | click AUC | "
             "RelaImpr (click) | logloss |", "|---|---|---|---|---|---|---|"]
    for name, m in named:
        loss = ", ".join(f"{k[8:]} {v:.4f}" for k, v in m.items() if k.startswith("logloss_"))
        lines.append(
            f"| {name} | {m['preset']} | {m['auc_valid_read']:.4f} | "
            f"{metrics.rel_impr(m['auc_valid_read'], base['auc_valid_read']):+.2f}% | "
            f"{m['auc_ctr']:.4f} | {metrics.rel_impr(m['auc_ctr'], base['auc_ctr']):+.2f}% | "
            f"{loss} |")
    return "\n".join(lines)


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


def main(argv):
    del argv
    named = [(os.path.basename(os.path.normpath(d)), load_metrics(d)) for d in FLAGS.model_dirs]
    first = named[0][1]
    parts = [f"# dwellrank report\n\nEvaluated on `{first.get('eval')}`: {first['rows']:,} "
             f"impressions, {first['clicks']:,} clicks, {first['valid_reads']:,} valid reads. "
             f"RelaImpr is against `{named[0][0]}`.", comparison_table(named)]
    if FLAGS.scores:
        parts.append(scores_summary(FLAGS.scores))
    text = "\n\n".join(parts) + "\n"
    print(text)
    if FLAGS.output:
        with atomic_file(FLAGS.output) as handle:
            handle.write(text)


if __name__ == "__main__":
    cli.run(main)
