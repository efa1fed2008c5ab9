"""Batch-score logs with an exported SavedModel (SPEC §8).

    python -m pipelines.score --saved_model=serving/vr_ndt --input='sim/logs/day-1*.csv.gz' \\
        --output=scores [--format=csv|tfrecord --engine=beam|local --runner=DirectRunner ...]

--saved_model is a version directory or an export base (its newest version). Writes one shard per
input file with impression_id (when present), user_id, item_id, score and every tower output,
rows in input order; unreadable rows go to dead_letter.csv with the reason; summary.json. The
output directory appears atomically and a re-run replaces it. Beam pipeline options (--runner,
--direct_num_workers, ...) pass through.
"""

from __future__ import annotations

import time

from absl import flags

from core import cli, settings  # cli first: it quiets TensorFlow before it loads
from core.errors import InputError
from pipelines.score import scoring

FLAGS = flags.FLAGS
flags.DEFINE_string("saved_model", None, "SavedModel version directory or export base.")
flags.DEFINE_string("input", None, "Comma-separated globs of logs to score.")
flags.DEFINE_string("output", None, "Output directory of the score shards.")
flags.DEFINE_enum("engine", "beam", ["beam", "local"], "beam: RunInference on Apache Beam; "
                  "local: the SavedModel in this process (faster on one machine).")
settings.define_flags(scoring.ScoreConfig)
flags.mark_flags_as_required(["saved_model", "input", "output"])


def main(argv):
    started = time.perf_counter()
    config = settings.from_flags(scoring.ScoreConfig)
    beam_args = argv[1:]
    if FLAGS.engine == "beam":
        from pipelines.score import scoring_beam

        summary = scoring_beam.score_logs_beam(FLAGS.saved_model, FLAGS.input, FLAGS.output,
                                               config, beam_args)
    else:
        if beam_args:  # only the Beam engine takes pipeline options
            raise InputError(f"unknown flag(s) {' '.join(beam_args)} (Beam pipeline options "
                             "need --engine=beam)")
        summary = scoring.score_logs(FLAGS.saved_model, FLAGS.input, FLAGS.output, config)
    seconds = time.perf_counter() - started
    print(f"scored {summary['rows']:,} rows with {summary['saved_model']} into {FLAGS.output} "
          f"({len(summary['files'])} {FLAGS.format} "
          f"shard{'s' if len(summary['files']) != 1 else ''}, engine {FLAGS.engine}) in "
          f"{seconds:.1f} s ({summary['rows'] / max(seconds, 1e-9):,.0f} rows/s)")
    print(f"  outputs: {', '.join(summary['outputs'])}")
    print(f"  dead letters: {summary['dead_letters']:,}"
          + (f" (see {FLAGS.output}/{scoring.DEAD_LETTER})" if summary["dead_letters"] else ""))
    absent = summary["features_in_no_sampled_record"]
    if absent:
        print(f"warning: the model's feature(s) {', '.join(absent)} have no value in any "
              "sampled record of the input (empty CSV fields, or left out of every "
              "tf.Example): rows without them were scored with each feature's default (the feature "
              "config's \"default\", else 0 or \"\"), as training and serving read an absent "
              "value; if the input's writer renamed or dropped them, these scores are not the "
              "model's")
    unscored = summary["files_without_a_scored_row"]
    if unscored:
        print(f"warning: {len(unscored)} input file(s) have no scored row, only dead letters "
              f"({unscored[0]}{', ...' if len(unscored) > 1 else ''})")


if __name__ == "__main__":
    cli.run(main, pass_unknown_flags=True)
