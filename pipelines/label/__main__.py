"""The labelling job (SPEC §3, §12): labelled TFRecord (GZIP) or CSV, one shard per input file.

    python -m pipelines.label --input='sim/logs/day-1*.csv.gz' --stats=stats --output_dir=labelled \\
        [--format=tfrecord|csv --engine=local|beam --min_dwell=5 --allow_unclicked_dwell ...]

--engine=local (the default) labels in this process (`pipelines.label.labelling`); --engine=beam runs
the job on Apache Beam (`pipelines.label.labelling_beam`: rule T2's per-user-day counts joined by key
across workers), with the same output; Beam pipeline options (--runner, --direct_num_workers,
--direct_running_mode, ...) pass through.

Prints the valid-read share of clicks, the T1/T2/T3 shares among valid reads (the paper's system:
89.9 / 2.9 / 7.2 %), the NDT parameters and the dwell-bin counts, and writes labels.png (the
ln(dwell) histogram with mu +- sigma, x_l and x_h; the NDT curve beside log(1 + T): the paper's
Fig. 2) and summary.json into --output_dir.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

import numpy as np
from absl import flags

from core import cli, stats_artifact  # cli first: it quiets TensorFlow before it loads
from core.errors import InputError
from core.labeler import short_artifact_note, t2_days_note, t2_gap_note
from pipelines.label import labelling

FLAGS = flags.FLAGS
flags.DEFINE_string("input", None, "Comma-separated globs of logs to label.")
flags.DEFINE_string("stats", None, "Stats artifact directory (python -m pipelines.stats).")
flags.DEFINE_string("output_dir", None, "Directory for the labelled shards.")
flags.DEFINE_enum("format", "tfrecord", ["tfrecord", "csv"], "Output format.")
flags.DEFINE_enum("engine", "local", ["local", "beam"], "local: in this process; beam: on "
                  "Apache Beam (DirectRunner unless --runner says otherwise), same output.")
flags.DEFINE_bool("compress", True, "Gzip the output shards.")
flags.DEFINE_float("min_dwell", None, "Override the artifact's valid-read floor (s).")
flags.DEFINE_float("t1_threshold", None, "Override rule T1's threshold (s; default x_l).")
flags.DEFINE_integer("light_user_days", None, "Override rule T2's window (UTC days).")
flags.DEFINE_integer("light_user_clicks", None, "Override rule T2's click threshold.")
flags.DEFINE_bool("allow_unclicked_dwell", False, "Treat dwell > 0 on unclicked rows as 0 and "
                  "count them, instead of failing.")
flags.DEFINE_integer("batch_size", 8192, "Rows per tf.data batch.", lower_bound=1)
flags.DEFINE_bool("plot", True, "Write labels.png.")
flags.DEFINE_string("schema", None, "A curated schema.pbtxt (python -m pipelines.validate): "
                    "refuse input with anomalies against it.")
flags.mark_flags_as_required(["input", "stats", "output_dir"])


def plot_labels(path: str, log_dwell_counts: np.ndarray,
                artifact: stats_artifact.StatsArtifact) -> None:
    """The paper's Fig. 2: ln(dwell) histogram with mu +- sigma; NDT beside log(1 + T).
    `log_dwell_counts`: clicks per bin of `labelling.LOG_DWELL_EDGES`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ndt, mu, sigma = artifact.ndt, artifact.mu, artifact.sigma
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    edges = labelling.LOG_DWELL_EDGES
    left.stairs(log_dwell_counts, edges, fill=True, color="#4c72b0")
    occupied = np.flatnonzero(log_dwell_counts)
    if len(occupied):  # the histogram's bins span 0.05 s to 6 h: show the occupied ones
        left.set_xlim(edges[max(occupied[0] - 5, 0)], edges[min(occupied[-1] + 6, len(edges) - 1)])
    for x, label, colour in ((mu - sigma, f"mu - sigma: x_l = {artifact.x_l:.1f} s", "#c44e52"),
                             (mu, f"mu = {mu:.2f}", "k"),
                             (mu + sigma, f"mu + sigma: x_h = {artifact.x_h:.0f} s", "#55a868")):
        left.axvline(x, color=colour, ls="--", lw=1, label=label)
    left.set_xlabel("ln(dwell seconds)")
    left.set_ylabel("clicks")
    left.set_title("Dwell time of clicks")
    left.legend(fontsize=8)
    t = np.linspace(0, 400, 801)
    right.plot(t, ndt(t), label=f"NDT ({ndt.preset}: offset {ndt.offset:.1f}, tau {ndt.tau:.2f})")
    right.plot(t, np.log1p(t), label="log(1 + T)", color="#8172b2")
    right.axvline(artifact.x_l, color="#c44e52", ls="--", lw=1, label="x_l")
    right.axvline(artifact.x_h, color="#55a868", ls="--", lw=1, label="x_h")
    right.set_xlabel("dwell T (seconds)")
    right.set_title("Normalized dwell time")
    right.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def main(argv):
    beam_args = argv[1:]
    if beam_args and FLAGS.engine == "local":
        # Only the Beam engine takes pipeline options: anything else is a mistyped flag.
        raise InputError(f"unknown flag(s) {' '.join(beam_args)} (Beam pipeline options need "
                         "--engine=beam)")
    # The rules, NDT and bins only: the engines read the user table themselves.
    artifact = stats_artifact.load_artifact(FLAGS.stats, user_days=False)
    overrides = {k: getattr(FLAGS, k) for k in ("min_dwell", "t1_threshold", "light_user_days",
                                                "light_user_clicks")
                 if getattr(FLAGS, k) is not None}
    rules = dataclasses.replace(artifact.rules, **overrides).check()
    started = time.perf_counter()
    if FLAGS.schema:
        from core.log_files import expand_inputs
        from pipelines.validate import validation

        # The output is checked first: the schema check reads every row.
        labelling.check_output_directory(FLAGS.output_dir,
                                         [f.path for f in expand_inputs(FLAGS.input)])
        validation.check_input(FLAGS.input, FLAGS.schema, beam_args,
                               allow_unclicked_dwell=FLAGS.allow_unclicked_dwell,
                               column_types=artifact.column_types, given_by="artifact",
                               say=True)
    def finish(directory, summary):
        # summary.json and labels.png go into the output before it appears.
        result = summary.as_dict()
        result["rules"] = dataclasses.asdict(rules)
        result["ndt"] = dataclasses.asdict(artifact.ndt)
        with open(os.path.join(directory, "summary.json"), "w") as handle:
            json.dump(result, handle, indent=2)
        if FLAGS.plot:
            plot_labels(os.path.join(directory, "labels.png"), summary.log_dwell_counts,
                        artifact)

    options = dict(fmt=FLAGS.format, rules=rules, allow_unclicked_dwell=FLAGS.allow_unclicked_dwell,
                   batch_size=FLAGS.batch_size, compress=FLAGS.compress, finish=finish)
    if FLAGS.engine == "beam":
        from pipelines.label import labelling_beam

        summary = labelling_beam.label_logs_beam(FLAGS.input, FLAGS.stats, FLAGS.output_dir,
                                                 beam_args=beam_args, **options)
    else:
        summary = labelling.label_logs(FLAGS.input, FLAGS.stats, FLAGS.output_dir, **options)
    seconds = time.perf_counter() - started
    result = summary.as_dict()
    shares = result["rule_shares_of_valid_reads"]
    print(f"labelled {summary.rows:,} rows into {FLAGS.output_dir} ({len(summary.files)} "
          f"{FLAGS.format} shard{'s' if len(summary.files) != 1 else ''}, engine "
          f"{FLAGS.engine}) in {seconds:.1f} s "
          f"({summary.rows / seconds:,.0f} rows/s)")
    print(f"  clicks {summary.clicks:,}   valid reads {summary.valid_reads:,} "
          f"({result['valid_read_share_of_clicks']:.1%} of clicks)")
    print(f"  first rule among valid reads: T1 {shares['T1']:.1%}  T2 {shares['T2']:.1%}  "
          f"T3 {shares['T3']:.1%}   (paper: 89.9 / 2.9 / 7.2 %)")
    print("  " + artifact.ndt.describe())
    print("  dwell bins (clicks): " + "  ".join(f"{c:,}" for c in result["dwell_bin_counts"]))
    if FLAGS.allow_unclicked_dwell:
        print(f"  unclicked rows with dwell > 0 treated as 0: {summary.unclicked_dwell_zeroed:,}")
    for note in (short_artifact_note(summary.short_artifact_days),
                 t2_days_note(summary.t2_days_from_artifact),
                 t2_gap_note(summary.t2_gap_days)):
        if note:
            print(f"note: {note}")


if __name__ == "__main__":
    cli.run(main, pass_unknown_flags=True)
