"""Online evaluation on the simulator: ranking policies A/B-tested on simulated users (SPEC §10).

The simulator's users arrive day by day on the calendar of the simulation's last days
(`default_start`: its item pools stay fresh there) or from `OnlineConfig.start_day`; sessions
and outcomes come from the online streams, not from the logs. For each session, `candidates`
items are drawn from the day's pool; every policy scores the session's candidates and shows
its top items in the session's slots (position 0 first); the world's causal model decides
clicks and dwell.

Common random numbers: the sessions, their candidates and the outcome noise of every
(session, slot) are drawn once per day from streams keyed by (seed, day) and shared by all
policies; a click is `u < p_click(user, shown item, slot)` with the same `u` whatever the policy
shows there, and so are the bounce, dwell-noise and lost-dwell draws. Differences between
policies therefore come from their rankings, not from luck (two identical policies give
identical results, tested).

Policies (`RankingPolicy.scores(world, requests, items) -> [n]`, higher is shown first):

- `SavedModelPolicy(path)`: an export of `export.saved_model`, loaded with TensorFlow alone;
  candidates go through its `serving_default` signature as serialized `tf.Example`s (built by
  the same writer as the project's logs), as TF Serving would receive them, with `position` 0
  (the slot is what is being decided);
- `RandomPolicy()`: uniform random order (a reference);
- `LoggingScorePolicy()`: a scorer built from the logging policy's preferences (freshness,
  item quality, the user's true category interests) with Gumbel noise; it sees latent
  traits no model sees, so it is a strong reference (it ranks one session's candidates, while
  the logging policy samples a category, then an item of it, from the whole pool);
- `ScoreFunctionPolicy(fn)`: any function of (world, requests, items), e.g. an oracle of the
  true click probability (tests).

Per policy: impressions, clicks, CTR, and per user (users with at least one session): clicks,
dwell seconds, valid reads and impressions, with 95 % intervals over users; against the first
policy, relative changes with paired 95 % intervals (each user is seen by every policy).
Valid reads are labelled by `pipelines.Labeler` (the one definition of the rules) with
the stats artifact of the training window; rule T2's click counts come from the online days
(earlier days from the artifact's user table, as for any labelled logs; days in neither count
0, which makes more users light than in the logs; equally for every policy).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
from typing import Callable, Sequence

import numpy as np

from core import log_writers, stats_artifact
from core.errors import InputError
from core.label_rules import SECONDS_PER_DAY
from core.labeler import Labeler, artifact_counts, count_user_days, user_fingerprint, window_clicks
from pipelines.simulate import simulator


@dataclasses.dataclass(frozen=True)
class OnlineConfig:
    days: int = 3
    start_day: int | None = None  # default: the day after the simulation's logs
    candidates: int = 50  # per session
    seed: int = 0


class RankingPolicy:
    """Scores candidates; `requests` and `items` are aligned arrays of [n] candidate rows."""

    def scores(self, world: simulator.World, requests: simulator.Requests,
               items: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class SavedModelPolicy(RankingPolicy):
    def __init__(self, path: str, batch_size: int = 8192):
        import tensorflow as tf

        from pipelines.score.scoring import resolve_saved_model

        self.path = resolve_saved_model(path)
        self.model = tf.saved_model.load(self.path)
        self.serve = self.model.signatures["serving_default"]
        self.batch_size = batch_size

    def scores(self, world, requests, items):
        import tensorflow as tf

        columns = world.observe(requests, items)
        columns["position"] = np.zeros(len(items), np.int64)  # the slot is being decided
        examples = log_writers.serialize_examples(columns)
        out = []
        for start in range(0, len(examples), self.batch_size):
            batch = tf.constant(examples[start:start + self.batch_size])
            out.append(self.serve(examples=batch)["score"].numpy())
        return np.concatenate(out) if out else np.zeros(0, np.float32)


class RandomPolicy(RankingPolicy):
    def __init__(self, seed: int = 0):
        self.seed = seed

    def scores(self, world, requests, items):
        rng = np.random.default_rng([self.seed, 17, int(requests.timestamp.min(initial=0))])
        return rng.random(len(items))


class LoggingScorePolicy(RankingPolicy):
    """The simulator's logging policy as a scorer: log of its sampling weight (freshness and
    quality) plus log of the user's category preference mix, plus Gumbel noise (sampling
    without replacement in proportion to the weights)."""

    def __init__(self, personalization: float = 0.5, seed: int = 0):
        self.personalization, self.seed = personalization, seed

    def scores(self, world, requests, items):
        age = (requests.timestamp - world.item_publish_time[items]) / SECONDS_PER_DAY
        category = world.item_category[items]
        shares = simulator.CATEGORY_SHARES / simulator.CATEGORY_SHARES.sum()
        mix = (self.personalization * world.user_interest[requests.user, category]
               + (1 - self.personalization) * shares[category])
        rng = np.random.default_rng([self.seed, 19, int(requests.timestamp.min(initial=0))])
        gumbel = -np.log(-np.log(rng.random(len(items)) + 1e-300) + 1e-300)
        return -age / 1.5 + 0.3 * world.item_quality[items] + np.log(mix + 1e-12) + gumbel


class ScoreFunctionPolicy(RankingPolicy):
    def __init__(self, function: Callable):
        self.function = function

    def scores(self, world, requests, items):
        return np.asarray(self.function(world, requests, items), float)


@dataclasses.dataclass
class DayDraws:
    """What every policy shares on one day: sessions, candidates, outcome noise per slot."""

    requests: simulator.Requests  # one row per slot
    session_slots: np.ndarray  # [sessions] slots per session
    candidates: np.ndarray  # [sessions, k] item indices
    noise: dict  # per slot: click, bounce, dwell, lost uniforms / normals


def draw_day(world: simulator.World, day: int, config: OnlineConfig) -> DayDraws:
    rng = np.random.default_rng([config.seed, 0x0411E, day])
    requests = world.requests(day, rng)
    sessions = int(requests.session.max()) + 1 if len(requests) else 0
    slots = np.bincount(requests.session, minlength=sessions)
    pool = world.candidate_pool(day)
    k = max(int(slots.max(initial=1)), min(config.candidates, len(pool)))
    if len(pool) < k:  # tiny worlds: repeat the pool
        pool = np.resize(pool, k)
    # Each session's candidates: k distinct pool items (a random permutation's head).
    keys = rng.random((sessions, len(pool)))
    candidates = pool[np.argsort(keys, axis=1)[:, :k]]
    return DayDraws(requests, slots, candidates, world.outcome_noise(len(requests), rng))


def rank(world: simulator.World, draws: DayDraws, policy: RankingPolicy) -> np.ndarray:
    """The item a policy shows in every slot of the day: its top candidates per session."""
    sessions, k = draws.candidates.shape
    user = np.repeat(draws.requests.user[np.r_[0, np.cumsum(draws.session_slots)[:-1]]], k) \
        if sessions else np.zeros(0, np.int64)
    start = draws.requests.timestamp[np.r_[0, np.cumsum(draws.session_slots)[:-1]]] \
        if sessions else np.zeros(0, np.int64)
    rows = simulator.Requests(user=user, timestamp=np.repeat(start, k),
                              session=np.repeat(np.arange(sessions), k),
                              position=np.zeros(sessions * k, np.int64))
    scores = policy.scores(world, rows, draws.candidates.ravel()).reshape(sessions, k)
    order = np.argsort(-scores, axis=1, kind="stable")
    position = draws.requests.position
    return draws.candidates[draws.requests.session, order[draws.requests.session, position]]


def default_start(world: simulator.World, config: OnlineConfig) -> int:
    """The first online day: `config.start_day`, else the last `config.days` days of the
    simulation's calendar (the evaluation days of a usual split). The simulator publishes
    items only up to its last day, so later days would show an ever older catalogue; replaying
    the last days' calendar keeps the item pools fresh (new sessions and outcomes, drawn from
    the online streams, not the logs')."""
    if config.start_day is not None:
        return config.start_day
    return max(0, world.config.days - config.days)


def check_config(config: OnlineConfig) -> None:
    if config.days < 1 or config.candidates < 1 or config.seed < 0 or (
            config.start_day is not None and config.start_day < 0):
        raise InputError("--days and --candidates must be >= 1, --seed and --start_day >= 0")


def simulate(world: simulator.World, policies: dict, artifact: stats_artifact.StatsArtifact,
             config: OnlineConfig = OnlineConfig()) -> dict:
    """Runs every policy over the same days; returns {policy: impression arrays}: user, item,
    timestamp, position, click, dwell_time, valid_read (aligned [n], identical slots for all)."""
    start = default_start(world, config)
    shown = {name: [] for name in policies}
    for day in range(start, start + config.days):
        draws = draw_day(world, day, config)
        for name, policy in policies.items():
            item = rank(world, draws, policy)
            outcome = world.respond(draws.requests, item, None, draws.noise)
            shown[name].append({"user": draws.requests.user, "item": item,
                                "timestamp": draws.requests.timestamp,
                                "position": draws.requests.position, **outcome})
    result = {}
    for name, parts in shown.items():
        joined = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        joined["valid_read"] = valid_reads(world, joined, artifact)
        result[name] = joined
    return result


def valid_reads(world: simulator.World, rows: dict, artifact: stats_artifact.StatsArtifact
                ) -> np.ndarray:
    """valid_read [n] of online impressions, by the project's Labeler."""
    import tensorflow as tf

    user_id = world.user_id(rows["user"]).astype(str)
    batch = {"user_id": tf.constant(user_id), "item_id": tf.constant(world.item_id(rows["item"])),
             "timestamp": tf.constant(rows["timestamp"], tf.int64),
             "click": tf.constant(rows["click"], tf.int64),
             "dwell_time": tf.constant(rows["dwell_time"], tf.float64)}
    counts, covered = count_user_days([{
        "user_fp": user_fingerprint(user_id).numpy(),
        "day": rows["timestamp"] // SECONDS_PER_DAY, "click": rows["click"]}])
    window = window_clicks(counts, covered, artifact_counts(artifact),
                                      artifact.rules.light_user_days)
    return Labeler(artifact, window)(batch)["valid_read"].numpy()


# Metrics ----------------------------------------------------------------------------------------
PER_USER = ("clicks", "dwell_seconds", "valid_reads", "impressions")


def per_user(rows: dict, num_users: int) -> dict:
    """{metric: [num_users]} sums per user."""
    user = rows["user"]
    return {"clicks": np.bincount(user, rows["click"], num_users),
            "dwell_seconds": np.bincount(user, rows["dwell_time"], num_users),
            "valid_reads": np.bincount(user, rows["valid_read"], num_users),
            "impressions": np.bincount(user, minlength=num_users).astype(float)}


def _interval(values: np.ndarray) -> tuple[float, float]:
    """Mean and the half-width of its normal 95 % interval."""
    values = np.asarray(values, float)
    if len(values) < 2:
        return float(values.mean()) if len(values) else float("nan"), float("nan")
    return float(values.mean()), float(1.96 * values.std(ddof=1) / np.sqrt(len(values)))


def online_metrics(results: dict, num_users: int) -> dict:
    """Per policy: CTR and per-user means with 95 % intervals; relative change (percent)
    against the first policy with paired intervals (delta method on the ratio of means)."""
    names = list(results)
    sums = {n: per_user(results[n], num_users) for n in names}
    active = sums[names[0]]["impressions"] > 0  # the same users see every policy
    table = {}
    for name in names:
        rows = results[name]
        entry = {"impressions": int(len(rows["click"])), "clicks": int(rows["click"].sum()),
                 "ctr": float(rows["click"].mean()) if len(rows["click"]) else float("nan"),
                 "users": int(active.sum())}
        for metric in PER_USER:
            mean, half = _interval(sums[name][metric][active])
            entry[f"{metric}_per_user"] = mean
            entry[f"{metric}_per_user_ci95"] = half
        if name != names[0]:
            entry["relative_change"] = {}
            for metric in PER_USER[:3] + ("ctr",):
                if metric == "ctr":
                    a = sums[names[0]]["clicks"][active]
                    b = sums[name]["clicks"][active]  # same impressions per user
                else:
                    a, b = sums[names[0]][metric][active], sums[name][metric][active]
                entry["relative_change"][metric] = _relative_change(a, b)
        table[name] = entry
    return table


def _relative_change(a: np.ndarray, b: np.ndarray) -> dict:
    """(mean b / mean a - 1) in percent, with a paired 95 % interval (delta method)."""
    ma, mb = a.mean(), b.mean()
    if ma == 0:
        return {"percent": float("nan"), "ci95": float("nan")}
    n = len(a)
    ratio = mb / ma
    # Var(mb/ma) ~ (var(b) - 2 r cov(a, b) + r^2 var(a)) / (n ma^2)
    cov = np.cov(a, b, ddof=1) if n > 1 else np.zeros((2, 2))
    var = (cov[1, 1] - 2 * ratio * cov[0, 1] + ratio ** 2 * cov[0, 0]) / (n * ma ** 2)
    return {"percent": float(100 * (ratio - 1)), "ci95": float(100 * 1.96 * np.sqrt(max(var, 0)))}


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


def render(table: dict, base: str) -> str:
    lines = ["| policy | impressions | CTR | clicks / user | dwell s / user | valid reads / user "
             "| impressions / user |", "|---|---|---|---|---|---|---|"]
    for name, e in table.items():
        lines.append(
            f"| {name} | {e['impressions']:,} | {100 * e['ctr']:.2f} % | "
            f"{e['clicks_per_user']:.3f} ± {e['clicks_per_user_ci95']:.3f} | "
            f"{e['dwell_seconds_per_user']:.1f} ± {e['dwell_seconds_per_user_ci95']:.1f} | "
            f"{e['valid_reads_per_user']:.3f} ± {e['valid_reads_per_user_ci95']:.3f} | "
            f"{e['impressions_per_user']:.2f} |")
    changes = [f"| {name} vs {base} | " + " | ".join(
        f"{e['relative_change'][m]['percent']:+.2f} % ± {e['relative_change'][m]['ci95']:.2f}"
        for m in ("ctr", "clicks", "dwell_seconds", "valid_reads")) + " |"
        for name, e in table.items() if "relative_change" in e]
    if changes:
        lines += ["", "| change (paired 95 % interval) | CTR | clicks / user | dwell / user | "
                  "valid reads / user |", "|---|---|---|---|---|"] + changes
    return "\n".join(lines) + "\n"


def world_of(sim_dir: str) -> simulator.World:
    """The World that wrote the simulation in `sim_dir` (its summary.json's config)."""
    path = os.path.join(sim_dir, "summary.json")
    try:
        with open(path) as handle:
            summary = json.load(handle)
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read the simulation's summary ({error})", file=path) from None
    config = dict(summary.get("config", {}))
    if not config:
        raise InputError("has no simulator config", file=path)
    fields = {f.name for f in dataclasses.fields(simulator.SimConfig)}
    setting = config.get("setting", summary.get("setting", simulator.DEFAULT_SETTING))
    if setting not in simulator.SETTINGS:
        raise InputError(f"names simulator setting {setting!r}, unknown here (settings: "
                         f"{', '.join(simulator.SETTINGS)})", file=path)
    defaults = simulator.SETTINGS[setting].values
    # Values the setting gives are left to it; an explicit override is kept.
    explicit = {k: v for k, v in config.items() if k in fields and k != "setting"
                and not (k in defaults and v == defaults[k])}
    return simulator.World(simulator.SimConfig(setting=setting, **explicit))


def make_policies(specs: Sequence[str], seed: int = 0) -> dict:
    """NAME=SAVED_MODEL pairs, or the built-in names `random` and `logging`."""
    policies = {}
    for spec in specs:
        name, _, path = spec.partition("=")
        name = name.strip()
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name or "-/") or name in policies:
            raise InputError(f"--policies: expected NAME=SAVED_MODEL or random or logging, each "
                             f"name once and made of letters, digits, '_', '.', '-'; got "
                             f"{spec!r}")
        if not path:
            if name == "random":
                policies[name] = RandomPolicy(seed)
            elif name == "logging":
                policies[name] = LoggingScorePolicy(seed=seed)
            else:
                raise InputError(f"--policies: {name!r} is not a built-in policy (random, "
                                 "logging); give NAME=SAVED_MODEL")
        else:
            policies[name] = SavedModelPolicy(path)
    return policies
