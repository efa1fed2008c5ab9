"""Writes simulated impression logs and their latent ground truth (SPEC §10).

    python -m pipelines.simulate --output_dir=sim [--setting=legacy|entangled|clickbait
        --num_users=10000 --num_items=5000 --days=14 --seed=0 --format=csv|tfrecord]

--setting names the world (SPEC §10; the mechanisms are in the docstring of
pipelines/simulate/world_config.py, the measured marginals in the README):

    legacy      (default) the world the simulator had before settings existed, byte for byte:
                over clicks, click propensity and dwell are uncorrelated, and category drives the
                click through the user's interest. No true CTR-DT shortcut: a method that
                corrects over-reliance on CTR (ORCA) should have little to correct here.
    entangled   both papers' mechanisms: clickbait gives high CTR and short reads, so over clicks
                the true click logit and the true mean ln(dwell) of a read (bounces aside)
                correlate at -0.34 (seed 0); the click follows a latent topic, and the
                post-click features (category, length, publish age) act mainly on dwell.
    clickbait   entangled's mechanism with clickbait common: 28 % of the items are strong
                clickbait and draw 59 % of the clicks (r = -0.42, seed 0); the spread of
                ln(dwell) is wider than the papers'.

The default stays `legacy` so that the outputs, tables and expectations written before settings
existed (README, docs/table1.md, the demo, other modules' tests) still hold; choose `entangled`
to show a method where its mechanism exists, `clickbait` where it holds for most clicks.

Output (written to a temporary directory, then renamed onto --output_dir):

    logs/day-00.csv.gz ...        one file per UTC day (or day-00.tfrecord.gz with --format=tfrecord;
                                  day-000 ... past 100 days, so names sort in day order)
    ground_truth/users.csv.gz     latent user traits (activeness, reading depth, interests, bias)
    ground_truth/items.csv.gz     item attributes and latent traits (quality, clickbait; topic)
    ground_truth/impressions.csv.gz   per impression: true click probability, mean ln(dwell)
                                  of a read that does not bounce, bounce probability
    summary.json                  the setting and the marginals printed at the end
    ln_dwell_hist.png             histogram of ln(dwell) of clicks with mu +- sigma

The same flags and seed always give the same bytes in logs/ and ground_truth/.
--start_date is a calendar date; the last day must end by 9999-12-31 (SPEC §2's timestamps).
A world too small to hold two clicks with a dwell time is refused, with nothing written.
"""

from __future__ import annotations

import time

from absl import flags

from core import cli  # sets TF_CPP_MIN_LOG_LEVEL before TensorFlow loads
from pipelines.simulate import world_config, writing

FLAGS = flags.FLAGS
_DEFAULTS = world_config.SimConfig()
flags.DEFINE_string("output_dir", None, "Directory to write logs/, ground_truth/ and the summary.")
flags.DEFINE_string("setting", _DEFAULTS.setting,
                    f"Named world: {' or '.join(world_config.SETTINGS)} (see the module docstring).")
flags.DEFINE_integer("num_users", _DEFAULTS.num_users, "Number of users.")
flags.DEFINE_integer("num_items", _DEFAULTS.num_items, "Number of items (articles).")
flags.DEFINE_integer("days", _DEFAULTS.days, "Number of UTC days of logs.")
flags.DEFINE_integer("seed", _DEFAULTS.seed, "Random seed; the same seed gives the same bytes.")
flags.DEFINE_string("start_date", _DEFAULTS.start_date, "UTC date of day 0, YYYY-MM-DD.")
flags.DEFINE_enum("format", "csv", ["csv", "tfrecord"], "Log format: CSV.gz or GZIP TFRecord.")
flags.DEFINE_bool("plot", True, "Write ln_dwell_hist.png.")
flags.mark_flag_as_required("output_dir")

def _number(value, spec: str) -> str:
    """`value` formatted by `spec`, or "undefined" (null in summary.json)."""
    return "undefined" if value is None else format(value, spec)


def main(argv):
    del argv
    config = world_config.SimConfig(num_users=FLAGS.num_users, num_items=FLAGS.num_items,
                                    days=FLAGS.days, seed=FLAGS.seed, start_date=FLAGS.start_date,
                                    setting=FLAGS.setting)
    started = time.perf_counter()
    summary = writing.write_simulation(config, FLAGS.output_dir, FLAGS.format, FLAGS.plot)
    seconds = time.perf_counter() - started
    print(f"wrote {FLAGS.output_dir}/logs ({FLAGS.format}, {config.days} days, setting "
          f"{config.setting}) in {seconds:.1f} s ({summary['rows'] / seconds:,.0f} rows/s)")
    print(f"  rows {summary['rows']:,}   clicks {summary['clicks']:,}   CTR {summary['ctr']:.2%}   "
          f"users {summary['users_seen']:,}   items {summary['items_seen']:,}")
    def shown(key: str, spec: str) -> str:
        return _number(summary[key], spec)

    print(f"  ln(dwell): mu {shown('ln_dwell_mu', '.3f')}  sigma {shown('ln_dwell_sigma', '.3f')}  "
          f"skew {shown('ln_dwell_skew', '+.2f')}")
    print(f"  clicks with dwell > 0: below exp(mu - sigma) = {shown('x_l', '.1f')} s: "
          f"{shown('share_clicks_below_x_l', '.1%')}   above exp(mu + sigma) = {shown('x_h', '.0f')} s: "
          f"{shown('share_clicks_above_x_h', '.1%')}")
    print(f"  over clicks, corr(true click logit, true mean ln(dwell) of a read) "
          f"{shown('clicked_logit_dwell_corr', '+.2f')}")
    print(f"  light users (< {writing.LIGHT_USER_CLICKS} clicks in the last "
          f"{min(7, config.days)} days, among active): "
          f"{shown('share_light_users_last_week', '.1%')}")


if __name__ == "__main__":
    cli.run(main)
