"""The statistics job (SPEC §3): writes the stats artifact that labelling and training read.

    python -m pipelines.stats --input='sim/logs/day-0*.csv.gz' --output_dir=stats \\
        [--min_dwell=5 --ndt=auto|paper|explicit --num_bins=8 ...] [--engine=beam|local]
        [Beam options]

With --engine=beam (the default), flags it does not know go to Apache Beam (DirectRunner by
default), e.g. `--direct_num_workers=2 --direct_running_mode=multi_processing`, or
`--runner=FlinkRunner ...`. --engine=local runs the same steps in this process without Beam
(the same artifact; no Beam import or pipeline start, about 1.4 s less on one machine); the
check against a `--schema` is a TFDV pipeline on Beam's DirectRunner with either engine.
The artifact's layout is in `pipelines/stats/statistics.py`.
"""

from __future__ import annotations

import os
import time

from absl import flags

# (cli first: it quiets TensorFlow)
from core import cli, data_doubts, label_rules, settings, stats_artifact
from core.atomic import check_output_directory
from pipelines.stats import statistics

FLAGS = flags.FLAGS
flags.DEFINE_string("input", None, "Comma-separated globs of the stats window's logs.")
flags.DEFINE_string("output_dir", None, "Directory of the stats artifact.")
settings.define_flags(statistics.StatsConfig)
flags.DEFINE_enum("engine", "beam", list(statistics.ENGINES), "beam: on Apache Beam "
                  "(DirectRunner unless --runner says otherwise); local: the same steps in this "
                  "process, without Beam (the same artifact).")
flags.DEFINE_string("schema", None, "A curated schema.pbtxt (python -m pipelines.validate): "
                    "refuse input with anomalies against it.")
flags.mark_flags_as_required(["input", "output_dir"])


def main(argv):
    config = settings.from_flags(statistics.StatsConfig)
    started = time.perf_counter()
    statistics.check_engine(FLAGS.engine, argv[1:])
    if FLAGS.schema:
        from core.log_files import expand_inputs
        from pipelines.validate import validation

        # The output is checked first: the schema check reads every row.
        check_output_directory(FLAGS.output_dir, may_replace=statistics.is_artifact,
                               what="--output_dir",
                               inputs=[f.path for f in expand_inputs(FLAGS.input)])
        validation.check_input(FLAGS.input, FLAGS.schema, argv[1:],
                               allow_unclicked_dwell=FLAGS.allow_unclicked_dwell,
                               column_types=config.read.types, say=True)
    stats = statistics.compute_stats(FLAGS.input, FLAGS.output_dir, config, argv[1:],
                                     engine=FLAGS.engine)
    seconds = time.perf_counter() - started
    ndt = stats["ndt"]
    print(f"wrote {FLAGS.output_dir} in {seconds:.1f} s: {stats['rows']:,} rows, "
          f"{stats['clicks']:,} clicks, {stats['items_with_p10']:,} items with a P10, "
          f"{stats['user_days']:,} user-days")
    print(f"  ln(dwell): mu {stats['mu']:.4f}  sigma {stats['sigma']:.4f}  ->  "
          f"x_l {stats['x_l']:.2f} s  x_h {stats['x_h']:.1f} s")
    print("  " + label_rules.NdtParams(**ndt).describe())
    # Short-video logs have sub-second edges: two significant digits there, not 0.0 and 0.1.
    print("  dwell bins (s): " + "  ".join(f"{e:.1f}" if e >= 1 else f"{e:.2g}"
                                           for e in stats["dwell_bin_edges"]))
    if FLAGS.allow_unclicked_dwell:
        print(f"  unclicked rows with dwell > 0 treated as 0: "
              f"{stats['unclicked_dwell_treated_as_zero']:,}")
    for doubt in data_doubts.data_doubts(stats) + artifact_id_doubts(FLAGS.output_dir):
        cli.warn(doubt)


def artifact_id_doubts(output_dir: str) -> list[str]:
    """The doubts about the ids of the artifact at `output_dir` (`data_doubts.id_doubts`), from
    the first rows of its item table (items with at least --min_item_records clicks with dwell
    > 0) and its user-day table (users with a click)."""
    doubts = []
    for table, column in (("items", "item_id"), ("user_days", "user_id")):
        ids = stats_artifact.first_ids(os.path.join(output_dir, table), column,
                                       data_doubts.ID_SAMPLE)
        doubts += data_doubts.id_doubts(column, ids)
    return doubts


if __name__ == "__main__":
    cli.run(main, pass_unknown_flags=True)
