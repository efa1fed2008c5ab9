"""Writes simulated impression logs and their latent ground truth (SPEC §10).

    python -m pipelines.simulate --output_dir=sim [--num_users=10000 --num_items=5000 --days=14
        --seed=0 --format=csv|tfrecord]

Output (written to a temporary directory, then renamed onto --output_dir):

    logs/day-00.csv.gz ...        one file per UTC day (or day-00.tfrecord.gz with --format=tfrecord)
    ground_truth/users.csv.gz     latent user traits (activeness, reading depth, interests, bias)
    ground_truth/items.csv.gz     latent item traits (quality, clickbait) and attributes
    ground_truth/impressions.csv.gz   per impression: true click probability, mean ln(dwell)
    summary.json                  the marginals printed at the end
    ln_dwell_hist.png             histogram of ln(dwell) of clicks with mu +- sigma

The same flags and seed always give the same bytes in logs/ and ground_truth/.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

from pipelines import cli  # sets TF_CPP_MIN_LOG_LEVEL before TensorFlow loads

import numpy as np
from absl import flags

from pipelines import logs, simulator
from pipelines.atomic import atomic_directory
from pipelines.errors import InputError

FLAGS = flags.FLAGS
_DEFAULTS = simulator.SimConfig()
flags.DEFINE_string("output_dir", None, "Directory to write logs/, ground_truth/ and the summary.")
flags.DEFINE_integer("num_users", _DEFAULTS.num_users, "Number of users.")
flags.DEFINE_integer("num_items", _DEFAULTS.num_items, "Number of items (articles).")
flags.DEFINE_integer("days", _DEFAULTS.days, "Number of UTC days of logs.")
flags.DEFINE_integer("seed", _DEFAULTS.seed, "Random seed; the same seed gives the same bytes.")
flags.DEFINE_string("start_date", _DEFAULTS.start_date, "UTC date of day 0, YYYY-MM-DD.")
flags.DEFINE_enum("format", "csv", ["csv", "tfrecord"], "Log format: CSV.gz or GZIP TFRecord.")
flags.DEFINE_bool("plot", True, "Write ln_dwell_hist.png.")
flags.mark_flag_as_required("output_dir")

GENERATOR = "pipelines.simulate"
LIGHT_USER_CLICKS = 7  # SPEC §3 rule T2's default: fewer clicks than this over 7 days


def summarize(log: dict, config: simulator.SimConfig) -> dict:
    """Marginals of a simulated log (dict of LOG_COLUMNS arrays), for the printout and tests."""
    click = log["click"] == 1
    dwell = log["dwell_time"][click]
    positive = dwell[dwell > 0]
    ln_dwell = np.log(positive)
    mu, sigma = float(ln_dwell.mean()), float(ln_dwell.std())
    centred = ln_dwell - mu
    day = (log["timestamp"] - config.start_timestamp()) // simulator.SECONDS_PER_DAY
    last_week = day >= config.days - 7
    users, user_index = np.unique(log["user_id"], return_inverse=True)
    week_clicks = np.bincount(user_index[last_week & click], minlength=len(users))
    active = np.bincount(user_index[last_week], minlength=len(users)) > 0
    return {
        "generator": GENERATOR,
        "config": dataclasses.asdict(config),
        "rows": int(len(click)),
        "clicks": int(click.sum()),
        "ctr": float(click.mean()),
        "users_seen": int(len(users)),
        "items_seen": int(len(np.unique(log["item_id"]))),
        "ln_dwell_mu": mu,
        "ln_dwell_sigma": sigma,
        "ln_dwell_skew": float((centred ** 3).mean() / sigma ** 3),
        "x_l": float(np.exp(mu - sigma)),
        "x_h": float(np.exp(mu + sigma)),
        "share_clicks_below_x_l": float((positive < np.exp(mu - sigma)).mean()),
        "share_clicks_above_x_h": float((positive > np.exp(mu + sigma)).mean()),
        "share_clicks_zero_dwell": float((dwell == 0).mean()),
        "share_light_users_last_week": float((week_clicks[active] < LIGHT_USER_CLICKS).mean()),
    }


def plot_ln_dwell(path: str, log: dict, summary: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dwell = log["dwell_time"][(log["click"] == 1) & (log["dwell_time"] > 0)]
    mu, sigma = summary["ln_dwell_mu"], summary["ln_dwell_sigma"]
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    ax.hist(np.log(dwell), bins=80, color="#4c72b0")
    for x, label in ((mu - sigma, f"mu - sigma (x_l = {np.exp(mu - sigma):.1f} s)"),
                     (mu, f"mu = {mu:.2f}"), (mu + sigma, f"mu + sigma (x_h = {np.exp(mu + sigma):.0f} s)")):
        ax.axvline(x, color="#c44e52" if x != mu else "k", ls="--", lw=1, label=label)
    ax.set_xlabel("ln(dwell seconds)")
    ax.set_ylabel("clicks")
    ax.set_title(f"Simulated dwell time: {summary['clicks']:,} clicks")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def _is_previous_output(path: str) -> bool:
    if not os.listdir(path):
        return True
    try:
        with open(os.path.join(path, "summary.json")) as handle:
            return json.load(handle).get("generator") == GENERATOR
    except (OSError, ValueError):
        return False


def simulate(config: simulator.SimConfig, output_dir: str, fmt: str = "csv",
             plot: bool = True) -> dict:
    """Simulates `config.days` days under the logging policy and writes them to `output_dir`.

    Returns the summary (see `summarize`). Replaces an earlier simulator output in `output_dir`;
    refuses any other non-empty directory.
    """
    if config.num_users < 1 or config.num_items < 1 or config.days < 1:
        raise InputError("--num_users, --num_items and --days must be at least 1")
    world = simulator.World(config)
    policy = simulator.LoggingPolicy()
    with atomic_directory(output_dir, may_replace=_is_previous_output,
                          what="--output_dir") as tmp:
        os.makedirs(os.path.join(tmp, "logs"))
        os.makedirs(os.path.join(tmp, "ground_truth"))
        day_logs, latents = [], []
        for day in range(config.days):
            log, latent = simulator.simulate_day(world, policy, day)
            name = os.path.join(tmp, "logs", f"day-{day:02d}")
            if fmt == "csv":
                logs.write_csv(name + ".csv.gz", log)
            else:
                logs.write_tfrecord(name + ".tfrecord.gz", log)
            day_logs.append(log)
            latents.append(latent)
        everything = {k: np.concatenate([d[k] for d in day_logs]) for k in simulator.LOG_COLUMNS}
        latent = {k: np.concatenate([d[k] for d in latents]) for k in latents[0]}
        truth = os.path.join(tmp, "ground_truth")
        logs.write_csv(os.path.join(truth, "users.csv.gz"), simulator.user_table(world),
                       decimals=5)
        logs.write_csv(os.path.join(truth, "items.csv.gz"), simulator.item_table(world),
                       decimals=5)
        logs.write_csv(os.path.join(truth, "impressions.csv.gz"), latent, decimals=6)
        summary = summarize(everything, config)
        with open(os.path.join(tmp, "summary.json"), "w") as handle:
            json.dump(summary, handle, indent=2)
        if plot:
            plot_ln_dwell(os.path.join(tmp, "ln_dwell_hist.png"), everything, summary)
    return summary


def main(argv):
    del argv
    config = simulator.SimConfig(num_users=FLAGS.num_users, num_items=FLAGS.num_items,
                                 days=FLAGS.days, seed=FLAGS.seed, start_date=FLAGS.start_date)
    started = time.perf_counter()
    summary = simulate(config, FLAGS.output_dir, FLAGS.format, FLAGS.plot)
    seconds = time.perf_counter() - started
    print(f"wrote {FLAGS.output_dir}/logs ({FLAGS.format}, {config.days} days) in {seconds:.1f} s "
          f"({summary['rows'] / seconds:,.0f} rows/s)")
    print(f"  rows {summary['rows']:,}   clicks {summary['clicks']:,}   CTR {summary['ctr']:.2%}   "
          f"users {summary['users_seen']:,}   items {summary['items_seen']:,}")
    print(f"  ln(dwell): mu {summary['ln_dwell_mu']:.3f}  sigma {summary['ln_dwell_sigma']:.3f}  "
          f"skew {summary['ln_dwell_skew']:+.2f}")
    print(f"  clicks below exp(mu - sigma) = {summary['x_l']:.1f} s: "
          f"{summary['share_clicks_below_x_l']:.1%}   above exp(mu + sigma) = {summary['x_h']:.0f} s: "
          f"{summary['share_clicks_above_x_h']:.1%}")
    print(f"  light users (< {LIGHT_USER_CLICKS} clicks in the last 7 days, among active): "
          f"{summary['share_light_users_last_week']:.1%}")


if __name__ == "__main__":
    cli.run(main)
