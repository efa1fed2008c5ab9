"""Compare trained models: a Markdown report of their eval_metrics.json (SPEC §6).

    python -m report --model_dirs=models/single_ctr,models/vr_ndt --output=report.md \\
        [--scores=scores]
    python -m report --model_dirs=... --output_dir=report --labelled=labelled \\
        --online=online --scores=scores --fusion_tuning=tuning   # a directory with pictures

The first model directory is the baseline of RelaImpr. The tables give the served score's AUCs
beside each tower's own, and the checkpoint each model selected when it had a validation window.
With --scores (a pipelines.score output), the report also gives the score distribution of the
scored logs. With --output_dir, the report is a directory: report.md and its pictures, the
training and validation curves of every model with a history.json (the selected step marked),
the label job's ln(dwell) histogram with the thresholds and the NDT curve (--labelled, the
paper's Fig. 2), the shares of rules T1/T2/T3 among valid reads, the online A/B table and
dwell-migration heat maps (--online, an online.ab_test output; the paper's Table 2 and Fig. 3),
and the fusion tuning's frontier (--fusion_tuning, an online.tune_fusion output).
"""

from __future__ import annotations

import os

from absl import flags

from core import cli  # sets TF_CPP_MIN_LOG_LEVEL before TensorFlow loads
from core.atomic import atomic_file
from core.errors import InputError
from ranking.metrics import other_evaluation
from report import tables
from report.directory import REPORT_TITLE, is_report, write_report_directory

FLAGS = flags.FLAGS
flags.DEFINE_list("model_dirs", None, "Model directories; the first is the baseline.")
flags.DEFINE_string("output", None, "Markdown file to write (default: print only).")
flags.DEFINE_string("scores", None, "Output directory of pipelines.score to summarize.")
flags.DEFINE_string("output_dir", None, "Write a report directory (report.md and pictures).")
flags.DEFINE_string("labelled", None, "Output directory of pipelines.label (pictures, rules).")
flags.DEFINE_string("online", None, "Output directory of online.ab_test.")
flags.DEFINE_string("fusion_tuning", None, "Output directory of online.tune_fusion.")
flags.mark_flags_as_required(["model_dirs"])



def main(argv):
    del argv
    # (an empty item, `--model_dirs=a,`, is no directory: as --input's empty globs)
    model_dirs = [d for d in FLAGS.model_dirs if d.strip()]
    if not model_dirs:
        raise InputError("--model_dirs names no model directory")
    names = tables.model_names(model_dirs)
    named = [(name, tables.load_metrics(d)) for name, d in zip(names, model_dirs)]
    first = named[0][1]
    if (FLAGS.labelled or FLAGS.online or FLAGS.fusion_tuning) and not FLAGS.output_dir:
        raise InputError("--labelled, --online and --fusion_tuning go into a report "
                         "directory: give --output_dir")
    if FLAGS.output_dir:
        parent = os.path.dirname(os.path.abspath(FLAGS.output_dir))
        if not os.path.isdir(parent):
            raise InputError(f"--output_dir {FLAGS.output_dir}: its parent {parent} is not a "
                             "directory")
    if FLAGS.output:  # checked first: it is written after the report directory
        if os.path.isdir(FLAGS.output) or FLAGS.output.endswith(os.sep):
            raise InputError("--output is a directory; it names the Markdown file to write "
                             "(--output_dir writes a report directory)", file=FLAGS.output)
        ancestor = os.path.dirname(os.path.abspath(FLAGS.output))
        while not os.path.exists(ancestor):  # missing directories are made
            ancestor = os.path.dirname(ancestor)
        if not os.path.isdir(ancestor):
            raise InputError(f"--output {FLAGS.output}: {ancestor} is a file, not a directory")
        # An input's own file (a model's config.json, eval_metrics.json) is not overwritten.
        output = os.path.realpath(FLAGS.output)
        for given in [*model_dirs, FLAGS.scores, FLAGS.labelled, FLAGS.online,
                      FLAGS.fusion_tuning]:
            inside = given and os.path.isdir(given) and os.path.commonpath(
                [output, os.path.realpath(given)]) == os.path.realpath(given)
            if inside and os.path.exists(output) and not is_report(output):
                raise InputError(f"--output {FLAGS.output} is a file of the input {given}; "
                                 "the report would overwrite it: write it elsewhere")
        # Any other file but an earlier report stays too (a log, a user's notes.md).
        if os.path.isfile(output) and not is_report(output):  # (a device: atomic_file's)
            raise InputError(f"--output {FLAGS.output} exists and is not a report of this "
                             "command; refusing to overwrite it (choose another path or "
                             "remove it)")
    others = [name for name, m in named[1:] if other_evaluation(m, first)]
    evaluated = (f"Evaluated on `{first.get('eval')}`: {first['rows']:,} impressions, "
                 f"{first['clicks']:,} clicks, {first['valid_reads']:,} valid reads")
    if others:
        evaluated = (f"`{named[0][0]}` evaluated on `{first.get('eval')}` ({first['rows']:,} "
                     f"impressions, {first['clicks']:,} clicks, {first['valid_reads']:,} valid "
                     f"reads); {', '.join(f'`{n}`' for n in others)} on other logs or labels "
                     "(" + "; ".join(f"`{m.get('eval')}`: {m['rows']:,} impressions" for n, m
                                     in named if n in others) + "), so no RelaImpr for them")
    parts = [f"{REPORT_TITLE}\n\n{evaluated}. RelaImpr is against `{named[0][0]}`.",
             tables.comparison_table(named)]
    for table in (tables.selection_table(named), tables.dwell_table(named)):
        if table:
            parts.append(table)
    if FLAGS.scores:
        parts.append(tables.scores_summary(FLAGS.scores))
    text = "\n\n".join(parts) + "\n"
    pictures = None
    if FLAGS.output_dir:  # first: it reads the other jobs' outputs, which may fail
        pictures = write_report_directory(FLAGS.output_dir, text, FLAGS.labelled, FLAGS.online,
                                          model_dirs, FLAGS.fusion_tuning, names)
    print(text)
    if FLAGS.output:
        with atomic_file(FLAGS.output) as handle:
            handle.write(text)
    if pictures is not None:
        print(f"wrote {FLAGS.output_dir}/report.md with {', '.join(pictures) or 'no pictures'}")


if __name__ == "__main__":
    cli.run(main)
