"""The statistics job (SPEC §3): writes the stats artifact that labelling and training read.

    python -m pipelines.stats --input='sim/logs/day-0*.csv.gz' --output_dir=stats \
        [--min_dwell=5 --ndt=auto|paper|explicit --num_bins=8 ...] [Beam options]

Flags it does not know go to Apache Beam (DirectRunner by default), e.g.
`--direct_num_workers=2 --direct_running_mode=multi_processing`, or `--runner=FlinkRunner ...`.
The artifact's layout is in `pipelines/statistics.py`.
"""

from __future__ import annotations

import time

from pipelines import cli  # sets TF_CPP_MIN_LOG_LEVEL before TensorFlow loads

from absl import flags

from pipelines import labels, statistics

FLAGS = flags.FLAGS
_RULES = labels.RuleConfig()
flags.DEFINE_string("input", None, "Comma-separated globs of the stats window's logs.")
flags.DEFINE_string("output_dir", None, "Directory of the stats artifact.")
flags.DEFINE_float("min_dwell", _RULES.min_dwell, "Valid-read floor: dwell below it (s) is never "
                   "a valid read.")
flags.DEFINE_float("t1_threshold", None, "Rule T1's threshold in seconds (default: x_l).")
flags.DEFINE_integer("light_user_days", _RULES.light_user_days, "Rule T2's window in UTC days.")
flags.DEFINE_integer("light_user_clicks", _RULES.light_user_clicks,
                     "Rule T2: a user with fewer clicks than this in the window is light.")
flags.DEFINE_integer("min_item_records", _RULES.min_item_records,
                     "Rule T3: items need this many clicks with dwell > 0 for a P10.")
flags.DEFINE_enum("ndt", "auto", ["auto", "paper", "explicit"], "NDT parameter preset.")
flags.DEFINE_float("ndt_t_max", 1.575, "auto: the range A - B of the NDT.")
flags.DEFINE_float("ndt_epsilon", 1e-5, "auto: the NDT's slope at x_h.")
flags.DEFINE_float("ndt_offset", None, "NDT offset in seconds (auto default: x_l).")
flags.DEFINE_float("ndt_tau", None, "NDT tau in seconds (auto default: fitted).")
flags.DEFINE_float("ndt_a", None, "NDT A (auto default: from t_max).")
flags.DEFINE_float("ndt_b", None, "NDT B (auto default: so that ndt(0) = 0).")
flags.DEFINE_integer("num_bins", 8, "Number of dwell-time bins.")
flags.DEFINE_list("bin_edges", None, "Explicit dwell-bin edges in seconds (num_bins + 1 values).")
flags.DEFINE_bool("allow_unclicked_dwell", False, "Treat dwell > 0 on unclicked rows as 0 and "
                  "count them, instead of failing.")
flags.DEFINE_string("schema", None, "A curated schema.pbtxt (python -m pipelines.validate): "
                    "refuse input with anomalies against it.")
flags.mark_flags_as_required(["input", "output_dir"])


def main(argv):
    config = statistics.StatsConfig(
        rules=labels.RuleConfig(min_dwell=FLAGS.min_dwell, t1_threshold=FLAGS.t1_threshold,
                                light_user_days=FLAGS.light_user_days,
                                light_user_clicks=FLAGS.light_user_clicks,
                                min_item_records=FLAGS.min_item_records),
        ndt_preset=FLAGS.ndt, t_max=FLAGS.ndt_t_max, epsilon=FLAGS.ndt_epsilon,
        ndt_offset=FLAGS.ndt_offset, ndt_tau=FLAGS.ndt_tau, ndt_a=FLAGS.ndt_a, ndt_b=FLAGS.ndt_b,
        num_bins=FLAGS.num_bins,
        bin_edges=tuple(float(e) for e in FLAGS.bin_edges) if FLAGS.bin_edges else None,
        allow_unclicked_dwell=FLAGS.allow_unclicked_dwell)
    started = time.perf_counter()
    if FLAGS.schema:
        from pipelines import validation

        validation.check_input(FLAGS.input, FLAGS.schema, argv[1:])
    stats = statistics.compute_stats(FLAGS.input, FLAGS.output_dir, config, argv[1:])
    seconds = time.perf_counter() - started
    ndt = stats["ndt"]
    print(f"wrote {FLAGS.output_dir} in {seconds:.1f} s: {stats['rows']:,} rows, "
          f"{stats['clicks']:,} clicks, {stats['items_with_p10']:,} items with a P10, "
          f"{stats['user_days']:,} user-days")
    print(f"  ln(dwell): mu {stats['mu']:.4f}  sigma {stats['sigma']:.4f}  ->  "
          f"x_l {stats['x_l']:.2f} s  x_h {stats['x_h']:.1f} s")
    print("  " + labels.NdtParams(**ndt).describe())
    print("  dwell bins (s): " + "  ".join(f"{e:.1f}" for e in stats["dwell_bin_edges"]))
    if FLAGS.allow_unclicked_dwell:
        print(f"  unclicked rows with dwell > 0 treated as 0: "
              f"{stats['unclicked_dwell_treated_as_zero']:,}")


if __name__ == "__main__":
    cli.run(main, pass_unknown_flags=True)
