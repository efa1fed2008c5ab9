"""Writing a simulation (`write_simulation`: logs, ground truth, `summary.json` and a histogram
of ln(dwell)) and the marginals it reports (`summarize`); `python -m pipelines.simulate` is its
command line."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np

from core.atomic import earlier_output
from core.errors import InputError
from core.label_rules import SECONDS_PER_DAY
from pipelines.simulate import simulator
from pipelines.simulate.world_config import SimConfig

GENERATOR = "pipelines.simulate"
LIGHT_USER_CLICKS = 7  # SPEC §3 rule T2's default: fewer clicks than this over 7 days


def summarize(log: dict, config: SimConfig, latent: dict | None = None) -> dict:
    """Marginals of a simulated log (dict of `simulator.LOG_COLUMNS` arrays), for the printout
    and tests.

    With `latent` (the ground truth of the same rows, as `simulator.simulate_day` returns it),
    also the setting's mechanism: over clicks, the Pearson correlation of the true click logit and the
    true mean ln(dwell) of a read that does not bounce (`clicked_logit_dwell_corr`; bounces,
    `p_bounce`, left out).
    """
    click = log["click"] == 1
    dwell = log["dwell_time"][click]
    positive = dwell[dwell > 0]
    ln_dwell = np.log(positive)
    mu, sigma = float(ln_dwell.mean()), float(ln_dwell.std())
    centred = ln_dwell - mu
    day = (log["timestamp"] - config.start_timestamp()) // SECONDS_PER_DAY
    last_week = day >= config.days - 7
    users, user_index = np.unique(log["user_id"], return_inverse=True)
    week_clicks = np.bincount(user_index[last_week & click], minlength=len(users))
    active = np.bincount(user_index[last_week], minlength=len(users)) > 0
    summary = {
        "generator": GENERATOR,
        "setting": config.setting,
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
    if latent is not None:
        p_click = latent["p_click"][click]
        logit = np.log(p_click) - np.log1p(-p_click)
        summary["clicked_logit_dwell_corr"] = float(
            np.corrcoef(logit, latent["dwell_log_mean"][click])[0, 1])
    # Undefined figures (one distinct dwell: no spread) are null, so summary.json is JSON.
    return {k: None if isinstance(v, float) and not np.isfinite(v) else v
            for k, v in summary.items()}


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


def _made_by_the_simulator(path: str) -> bool:
    try:
        with open(os.path.join(path, "summary.json")) as handle:
            return json.load(handle).get("generator") == GENERATOR
    except (OSError, ValueError, AttributeError):
        return False


# An earlier simulation (replaced by a run into its directory): its files alone.
_is_previous_output = earlier_output(
    names=("ln_dwell_hist.png",), markers={"summary.json": "generator"},
    folders={"logs": r"day-\d+\.(csv|tfrecord)\.gz",
             "ground_truth": r"(users|items|impressions)\.csv\.gz"},
    check=_made_by_the_simulator)


def write_simulation(config: SimConfig, output_dir: str, fmt: str = "csv",
             plot: bool = True) -> dict:
    """Simulates `config.days` days under the logging policy and writes them to `output_dir`.

    Returns the summary (see `summarize`). Replaces an earlier simulator output in `output_dir`;
    refuses any other non-empty directory.
    """
    from core import log_writers
    from core.atomic import atomic_directory

    if config.num_users < 1 or config.num_items < 1 or config.days < 1:
        raise InputError("--num_users, --num_items and --days must be at least 1")
    world = simulator.World(config)
    policy = simulator.LoggingPolicy()
    with atomic_directory(output_dir, may_replace=_is_previous_output,
                          what="--output_dir") as tmp:
        os.makedirs(os.path.join(tmp, "logs"))
        os.makedirs(os.path.join(tmp, "ground_truth"))
        day_logs, latents = [], []
        width = max(2, len(str(config.days - 1)))  # day-100 sorts after day-099, as glob sorts
        for day in range(config.days):
            log, latent = simulator.simulate_day(world, policy, day)
            name = os.path.join(tmp, "logs", f"day-{day:0{width}d}")
            if fmt == "csv":
                log_writers.write_csv(name + ".csv.gz", log)
            else:
                log_writers.write_tfrecord(name + ".tfrecord.gz", log)
            day_logs.append(log)
            latents.append(latent)
        everything = {k: np.concatenate([d[k] for d in day_logs]) for k in simulator.LOG_COLUMNS}
        read = (everything["click"] == 1) & (everything["dwell_time"] > 0)
        if read.sum() < 2:  # ln(dwell)'s spread, and every job after this one, need reads
            raise InputError(f"the simulated world has {len(read):,} impressions and "
                             f"{int(read.sum())} click(s) with a dwell time: too few for logs "
                             "(give more --num_users, --num_items or --days)")
        latent = {k: np.concatenate([d[k] for d in latents]) for k in latents[0]}
        truth = os.path.join(tmp, "ground_truth")
        log_writers.write_csv(os.path.join(truth, "users.csv.gz"), simulator.user_table(world),
                              decimals=5)
        log_writers.write_csv(os.path.join(truth, "items.csv.gz"), simulator.item_table(world),
                              decimals=5)
        log_writers.write_csv(os.path.join(truth, "impressions.csv.gz"), latent, decimals=6)
        summary = summarize(everything, config, latent)
        with open(os.path.join(tmp, "summary.json"), "w") as handle:
            json.dump(summary, handle, indent=2, allow_nan=False)
        if plot:
            plot_ln_dwell(os.path.join(tmp, "ln_dwell_hist.png"), everything, summary)
    return summary

