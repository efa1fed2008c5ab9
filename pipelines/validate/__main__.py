"""Validates logs with TensorFlow Data Validation (SPEC §9).

    python -m pipelines.validate --input='sim/logs/day-0*.csv.gz' --output_dir=validation
    python -m pipelines.validate --input='new/*.csv.gz' --output_dir=v2 \\
        --schema=validation/schema.pbtxt --baseline_stats=validation/stats.pb

Writes stats.pb (TFDV statistics), schema.pbtxt (inferred and curated the first time; the given
schema otherwise), anomalies.pbtxt, report.md and stats.html (TFDV's facets view, against the
baseline when given). Prints the anomalies and exits with status 1 when there are any.
Unknown flags go to Apache Beam, as for the stats job; one Beam does not know either is refused
(`core.cli.beam_flags_problem`).
"""

from __future__ import annotations

import os
import sys

from absl import flags

from core import cli, log_files, log_schema, settings  # cli first: it quiets TensorFlow before it loads
from core.atomic import atomic_directory
from pipelines.validate import validation

FLAGS = flags.FLAGS
flags.DEFINE_string("input", None, "Comma-separated globs of logs to validate.")
flags.DEFINE_string("output_dir", None, "Directory for statistics, schema, anomalies, report.")
flags.DEFINE_string("schema", None, "A curated schema.pbtxt; inferred from the input if absent.")
flags.DEFINE_string("baseline_stats", None, "stats.pb of earlier logs, to check drift against.")
settings.define_flags(validation.ValidationConfig)
settings.define_flags(log_schema.ReadConfig)
flags.mark_flags_as_required(["input", "output_dir"])

DRIFT_FLAGS = ("categorical_drift", "click_drift", "numeric_drift", "dwell_drift",
               "log_dwell_drift")


def _unused_flag_notes() -> list[str]:
    """`note:` lines for the schema's thresholds given where they do nothing: with --schema
    (whose own thresholds and domains apply), or drift without --baseline_stats (kept in the
    inferred schema for later runs)."""
    given = [name for name in DRIFT_FLAGS + ("max_domain_size",) if FLAGS[name].present]
    if FLAGS.schema and given:
        return [f"note: {', '.join('--' + n for n in given)} set(s) what an inferred schema "
                f"holds; {FLAGS.schema}'s own thresholds and domains apply (edit them there)"]
    drift = [name for name in given if name in DRIFT_FLAGS]
    if drift and not FLAGS.baseline_stats:
        return [f"note: {', '.join('--' + n for n in drift)}: no drift is checked in this "
                "run (no --baseline_stats); the inferred schema.pbtxt keeps the threshold for "
                "runs with one"]
    return []


def main(argv):
    tfdv = validation.tfdv()
    from tensorflow_data_validation.utils import display_util

    config = settings.from_flags(validation.ValidationConfig)
    for note in _unused_flag_notes():
        print(note, file=sys.stderr, flush=True)
    baseline = None
    if FLAGS.baseline_stats:
        baseline = validation.load_statistics(FLAGS.baseline_stats)
    schema = None
    if FLAGS.schema:
        schema = validation.load_schema(FLAGS.schema)
    with atomic_directory(FLAGS.output_dir, may_replace=validation.is_validation_output,
                          what="--output_dir",
                          # (the baseline and the schema too: a run would replace them)
                          inputs=[f.path for f in log_files.expand_inputs(FLAGS.input)]
                          + [p for p in (FLAGS.baseline_stats, FLAGS.schema) if p]) as tmp:
        stats = validation.generate_statistics(FLAGS.input, os.path.join(tmp, "stats.pb"),
                                               argv[1:], config,
                                               column_types=settings.from_flags(
                                                   log_schema.ReadConfig).types)
        if schema is None:
            schema = validation.infer_schema(stats, config)
            note = "inferred from this input and curated (edit schema.pbtxt, pass --schema)"
        else:
            note = f"{FLAGS.schema}"
        tfdv.write_schema_text(schema, os.path.join(tmp, "schema.pbtxt"))
        for note in validation.derived_column_notes(schema, baseline):
            print(note, file=sys.stderr, flush=True)
        anomalies = validation.validate(stats, schema, baseline)
        tfdv.write_anomalies_text(anomalies, os.path.join(tmp, "anomalies.pbtxt"))
        lines = validation.anomaly_lines(anomalies)
        validation.write_report(os.path.join(tmp, "report.md"), FLAGS.input, stats, lines, note,
                                FLAGS.baseline_stats)
        html = display_util.get_statistics_html(stats, baseline, lhs_name="input",
                                                rhs_name="baseline")
        with open(os.path.join(tmp, "stats.html"), "w") as handle:
            handle.write(html)
    rows = stats.datasets[0].num_examples
    print(f"validated {rows:,} rows of {FLAGS.input}; report in "
          f"{os.path.join(FLAGS.output_dir, 'report.md')}")
    if lines:
        print(f"{len(lines)} anomal{'y' if len(lines) == 1 else 'ies'}:", file=sys.stderr)
        for line in lines:
            print(f"  {line}", file=sys.stderr)
        sys.exit(1)
    print("no anomalies")


if __name__ == "__main__":
    cli.run(main, pass_unknown_flags=True)
