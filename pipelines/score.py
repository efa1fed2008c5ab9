"""Batch-score logs with an exported SavedModel (SPEC §8).

    python -m pipelines.score --saved_model=serving/vr_ndt --input='sim/logs/day-1*.csv.gz' \
        --output=scores [--format=csv|tfrecord --engine=beam|local --runner=DirectRunner ...]

--saved_model is a version directory or an export base (its newest version). Writes one shard per
input file with impression_id (when present), user_id, item_id, score and every tower output,
rows in input order; unreadable rows go to dead_letter.csv with the reason; summary.json. The
output directory appears atomically and a re-run replaces it. Beam pipeline options (--runner,
--direct_num_workers, ...) pass through.
"""

from __future__ import annotations

from pipelines import cli  # sets TF_CPP_MIN_LOG_LEVEL before TensorFlow loads

import time

from absl import flags

from pipelines import scoring

FLAGS = flags.FLAGS
flags.DEFINE_string("saved_model", None, "SavedModel version directory or export base.")
flags.DEFINE_string("input", None, "Comma-separated globs of logs to score.")
flags.DEFINE_string("output", None, "Output directory of the score shards.")
flags.DEFINE_enum("format", "csv", ["csv", "tfrecord"], "Output format.")
flags.DEFINE_bool("compress", True, "Gzip the output shards.")
flags.DEFINE_enum("engine", "beam", ["beam", "local"], "beam: RunInference on Apache Beam; "
                  "local: the SavedModel in this process (faster on one machine).")
flags.DEFINE_integer("batch_size", 4096, "Rows per read batch.")
flags.DEFINE_integer("max_dead_letters", 1000, "Fail when more rows than this are unreadable.")
flags.mark_flags_as_required(["saved_model", "input", "output"])


def main(argv):
    started = time.perf_counter()
    config = scoring.ScoreConfig(fmt=FLAGS.format, compress=FLAGS.compress, engine=FLAGS.engine,
                                 batch_size=FLAGS.batch_size,
                                 max_dead_letters=FLAGS.max_dead_letters)
    summary = scoring.score_logs(FLAGS.saved_model, FLAGS.input, FLAGS.output, config,
                                 beam_args=argv[1:])
    seconds = time.perf_counter() - started
    print(f"scored {summary['rows']:,} rows with {summary['saved_model']} into {FLAGS.output} "
          f"({len(summary['files'])} {FLAGS.format} shards, engine {FLAGS.engine}) in "
          f"{seconds:.1f} s ({summary['rows'] / max(seconds, 1e-9):,.0f} rows/s)")
    print(f"  outputs: {', '.join(summary['outputs'])}")
    print(f"  dead letters: {summary['dead_letters']:,}"
          + (f" (see {FLAGS.output}/{scoring.DEAD_LETTER})" if summary["dead_letters"] else ""))


if __name__ == "__main__":
    cli.run(main, pass_unknown_flags=True)
