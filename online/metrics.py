"""What an online A/B run measures (`online.simulation` results in, tables and pictures out).

Per policy: impressions, clicks, CTR, and per user (the users with a session, the same for every
policy: the first day's sessions are common to all) clicks, dwell seconds, valid reads,
impressions (AIN) and sessions, with 95 % intervals over users; slots per session and the
return rate (the share of a user's active days followed by a session the next day). Against the
first policy: relative changes in percent with paired 95 % intervals (the delta method on a
ratio of means; each user is seen by every policy). The dwell-migration heat map is the
click-reweighting paper's Fig. 3.
"""

from __future__ import annotations

import numpy as np

from core.label_rules import SECONDS_PER_DAY
from pipelines.simulate import simulator
from ranking.metrics import metric_text

PER_USER = ("clicks", "dwell_seconds", "valid_reads", "impressions", "sessions")
CHANGES = ("ctr", "clicks", "dwell_seconds", "valid_reads", "impressions")


def per_user(rows: dict, num_users: int) -> dict:
    """{metric: [num_users]} sums per user."""
    user = rows["user"]
    sessions = np.unique(np.stack([user, rows["session"]]), axis=1)[0] if len(user) else user
    return {"clicks": np.bincount(user, rows["click"], num_users),
            "dwell_seconds": np.bincount(user, rows["dwell_time"], num_users),
            "valid_reads": np.bincount(user, rows["valid_read"], num_users),
            "impressions": np.bincount(user, minlength=num_users).astype(float),
            "sessions": np.bincount(sessions, minlength=num_users).astype(float)}


def return_rate(rows: dict) -> float:
    """Of the (user, day) pairs with a session, except on the last day, the share whose user
    has a session the next day."""
    if not len(rows["user"]):
        return float("nan")
    day = rows["timestamp"] // SECONDS_PER_DAY
    active = {(int(u), int(d)) for u, d in zip(rows["user"], day)}
    last = int(day.max())
    eligible = [(u, d) for u, d in active if d < last]
    if not eligible:
        return float("nan")
    return float(np.mean([(u, d + 1) in active for u, d in eligible]))


def _interval(values: np.ndarray) -> tuple[float, float]:
    """Mean and the half-width of its normal 95 % interval."""
    values = np.asarray(values, float)
    if len(values) < 2:
        return float(values.mean()) if len(values) else float("nan"), float("nan")
    return float(values.mean()), float(1.96 * values.std(ddof=1) / np.sqrt(len(values)))


def online_metrics(results: dict, num_users: int) -> dict:
    """Per policy: CTR and per-user means with 95 % intervals, slots per session, return rate;
    relative changes (percent) against the first policy with paired intervals."""
    names = list(results)
    sums = {n: per_user(results[n], num_users) for n in names}
    active = np.zeros(num_users, bool)
    for name in names:
        active |= sums[name]["impressions"] > 0
    base = sums[names[0]]
    table = {}
    for name in names:
        rows, own = results[name], sums[name]
        entry = {"impressions": int(len(rows["click"])), "clicks": int(rows["click"].sum()),
                 "ctr": float(rows["click"].mean()) if len(rows["click"]) else float("nan"),
                 "users": int(active.sum()),
                 "slots_per_session": float(own["impressions"].sum()
                                            / max(own["sessions"].sum(), 1)),
                 "return_rate": return_rate(rows)}
        for metric in PER_USER:
            mean, half = _interval(own[metric][active])
            entry[f"{metric}_per_user"] = mean
            entry[f"{metric}_per_user_ci95"] = half
        if name != names[0]:
            entry["relative_change"] = {}
            for metric in CHANGES:
                if metric == "ctr":  # clicks per impression: a ratio of two per-user means
                    change = ratio_change(base["clicks"][active], base["impressions"][active],
                                          own["clicks"][active], own["impressions"][active])
                else:
                    ones = np.ones(int(active.sum()))
                    change = ratio_change(base[metric][active], ones, own[metric][active], ones)
                entry["relative_change"][metric] = change
        table[name] = entry
    return table


def ratio_change(num_a, den_a, num_b, den_b) -> dict:
    """Relative change in percent of (mean num_b / mean den_b) against (mean num_a / mean den_a)
    over paired users (arrays [users]), with a 95 % interval by the delta method on the log of
    the ratio of ratios."""
    columns = np.stack([np.asarray(x, float) for x in (num_b, den_b, num_a, den_a)])
    means = columns.mean(axis=1)
    if np.any(means == 0):
        return {"percent": float("nan"), "ci95": float("nan")}
    ratio = (means[0] / means[1]) / (means[2] / means[3])
    n = columns.shape[1]
    gradient = np.array([1 / means[0], -1 / means[1], -1 / means[2], 1 / means[3]])
    cov = np.cov(columns, ddof=1) if n > 1 else np.zeros((4, 4))
    sd_log = float(np.sqrt(max(gradient @ cov @ gradient / n, 0.0)))
    return {"percent": float(100 * (ratio - 1)), "ci95": float(100 * ratio * 1.96 * sd_log)}


def dwell_migration(world: simulator.World, base: dict, other: dict, deciles: int = 10,
                    quantiles: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """The click-reweighting paper's Fig. 3: relative change (percent) of the clicks falling in
    each dwell quantile (edges: quantiles of the base policy's clicked dwell), per decile of
    user activeness (the world's sessions per day). Returns (matrix [deciles, quantiles], the
    dwell edges in seconds)."""
    activeness = world.user_sessions_per_day
    order = np.argsort(np.argsort(activeness, kind="stable"), kind="stable")
    decile_of_user = np.minimum(order * deciles // len(activeness), deciles - 1)
    clicked = base["click"] == 1
    edges = np.quantile(base["dwell_time"][clicked], np.linspace(0, 1, quantiles + 1))
    edges[0], edges[-1] = -np.inf, np.inf

    def counts(rows):
        c = rows["click"] == 1
        q = np.clip(np.searchsorted(edges, rows["dwell_time"][c], side="right") - 1, 0,
                    quantiles - 1)
        return np.histogram2d(decile_of_user[rows["user"][c]], q,
                              bins=[np.arange(deciles + 1), np.arange(quantiles + 1)])[0]

    a, b = counts(base), counts(other)
    with np.errstate(divide="ignore", invalid="ignore"):
        change = np.where(a > 0, 100 * (b / a - 1), np.nan)
    return change, edges[1:-1]


def plot_migration(path: str, change: np.ndarray, edges: np.ndarray, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.8))
    limit = float(np.nanmax(np.abs(change))) if np.isfinite(change).any() else 1.0
    image = ax.imshow(change, cmap="RdBu", vmin=-limit, vmax=limit, aspect="auto", origin="lower")
    labels = ([f"< {edges[0]:.0f} s"] + [f"{lo:.0f}-{hi:.0f} s" for lo, hi in
                                       zip(edges[:-1], edges[1:])] + [f"> {edges[-1]:.0f} s"])
    ax.set_xticks(range(len(labels)))
    ax.set_xticklabels(labels, rotation=30, ha="right")
    ax.set_yticks(range(change.shape[0]))
    ax.set_yticklabels([str(d + 1) for d in range(change.shape[0])])
    ax.set_xlabel("dwell time (quantiles of the baseline's clicked dwell)")
    ax.set_ylabel("user activeness decile (1 = lightest)")
    for (row, col), value in np.ndenumerate(change):
        if np.isfinite(value):
            ax.text(col, row, f"{value:+.0f}", ha="center", va="center", fontsize=7)
    fig.colorbar(image, ax=ax, label="change in clicks (%)")
    ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def change_text(change: dict, digits: int = 2) -> str:
    """A relative change ({percent, ci95}) as "+1.23 % ± 0.45", "undefined" where the base's
    mean is 0."""
    return (f"{metric_text(change['percent'], digits, '+', ' %')} ± "
            f"{metric_text(change['ci95'], digits)}")


def render(table: dict, base: str) -> str:
    """The table as Markdown: per policy, then the changes against `base`."""
    lines = ["| policy | impressions | CTR | clicks / user | dwell s / user | valid reads / user "
             "| impressions / user | sessions / user | slots / session | return rate |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for name, e in table.items():
        lines.append(
            f"| {name} | {e['impressions']:,} | {metric_text(100 * e['ctr'], 2, unit=' %')} | "
            f"{e['clicks_per_user']:.3f} ± {e['clicks_per_user_ci95']:.3f} | "
            f"{e['dwell_seconds_per_user']:.1f} ± {e['dwell_seconds_per_user_ci95']:.1f} | "
            f"{e['valid_reads_per_user']:.3f} ± {e['valid_reads_per_user_ci95']:.3f} | "
            f"{e['impressions_per_user']:.2f} ± {e['impressions_per_user_ci95']:.2f} | "
            f"{e['sessions_per_user']:.2f} | {e['slots_per_session']:.2f} | "
            f"{metric_text(100 * e['return_rate'], 1, unit=' %')} |")
    changes = [f"| {name} vs {base} | " + " | ".join(
        change_text(e['relative_change'][m])
        for m in CHANGES) + " |"
        for name, e in table.items() if "relative_change" in e]
    if changes:
        lines += ["", "| change (paired 95 % interval) | CTR | clicks / user | dwell / user | "
                  "valid reads / user | impressions / user |", "|---|---|---|---|---|---|"] + changes
    return "\n".join(lines) + "\n"
