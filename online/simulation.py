"""Online evaluation on the simulator: ranking policies A/B-tested on simulated users (SPEC §10).

The simulator's users arrive day by day on the calendar of the simulation's last days
(`default_start`: its item pools stay fresh there) or from `OnlineConfig.start_day`. Each day,
for every policy:

1. **Sessions.** User u opens Poisson(rate_u x m_u) sessions (rate: the world's sessions per
   day, 15 % more at weekends; m_u: the return multiplier of `online.consequences`, 1 without
   consequences or on the first day). Session j of user u on day d starts at an hour drawn as
   the logs' are (morning, lunch and evening peaks).
2. **Candidates.** `candidates` distinct items of the day's pool per session.
3. **Ranking.** The policy scores the session's candidates (`online.policies`) and would show
   them best first, slot k at position k, 12 s apart.
4. **Outcomes and leaving.** The world's causal model decides each slot's click and dwell; after
   each slot the user leaves with a probability that depends on its outcome (consequences), or
   continues to the next slot (at most `candidates` slots).
5. **Returning.** The day's outcomes set each user's return multiplier for the next day.

Common random numbers: every draw is keyed by what it decides (`online.crn`): the number of
sessions by (user, day), a session's hour and candidates by (user, day, session), a slot's
click, bounce, dwell, lost-dwell and leave draws by (user, day, session, slot). Differences
between policies therefore come from their rankings and what those make users do, not from
luck: two identical policies give identical results (tested), and a policy that keeps a user
longer meets at slot k the same draws any other policy would there.

Strengths of the consequences (`online.consequences.STRENGTHS`): `none` (the same sessions and
slots for every policy), `chosen`, `strong`. The constants that keep the logging policy's
impressions per user as they were (`Calibration`) are computed on the first online day with the
logging policy (`calibrate`).

Valid reads are labelled by `core.labeler.Labeler` (the one definition of the rules) with the
stats artifact of the training window; rule T2's click counts come from the online days
(earlier days from the artifact's user table, as for any labelled logs; days in neither count
0, which makes more users light than in the logs; equally for every policy).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os

import numpy as np

from core import stats_artifact
from core.atomic import earlier_output
from core.errors import InputError
from core.label_rules import SECONDS_PER_DAY
from core.labeler import Labeler, artifact_counts, count_user_days, user_fingerprint, window_clicks
from core.settings import setting
from online import consequences as conseq
from online import crn
from online.policies import LoggingScorePolicy, RankingPolicy
from pipelines.simulate import simulator, world_config

# Key streams of the draws (`online.crn`).
_SESSIONS, _HOUR_PEAK, _HOUR, _CANDIDATES, _LEAVE = 1, 2, 3, 4, 5
_NOISE = {"click": 6, "bounce": 7, "bounce_dwell": 8, "dwell": 9, "lost": 10}
MAX_SESSIONS_PER_DAY = 255  # per user (a session key holds 8 bits for it)
SLOT_SECONDS = 12  # between a session's slots, as in the logs
# The logs' session hours: peaks at 8:00, 12:30 and 20:30 (`simulator.World.requests`).
_PEAKS, _PEAK_SHARES, _PEAK_SD = np.array([8.0, 12.5, 20.5]), np.array([0.3, 0.25, 0.45]), 1.8
_CHUNK = 2048  # sessions per block when drawing candidates (memory: block x pool uniforms)


# What the online tools write into their --output_dir: an earlier output of theirs (its files
# alone) is replaced by a run into its directory, a directory holding anything else is not.
is_ab_test_output = earlier_output(names=("online.md",), patterns=(r"migration-.*\.png",),
                                   markers={"online.json": "policies"})
is_tuning_output = earlier_output(names=("frontier.md", "frontier.png"),
                                  markers={"frontier.json": "saved_model"})


@dataclasses.dataclass(frozen=True)
class OnlineConfig:
    """Options of an online run; each is a flag of `online.ab_test` (`core.settings`)."""

    days: int = setting(3, "Online days.")
    start_day: int | None = setting(None, "First online day (default: the simulation's last "
                                    "--days days, whose item pools are fresh).")
    candidates: int = setting(50, "Candidates per session (also the most slots a session "
                              "can have).")
    seed: int = setting(0, "Seed of sessions, candidates and outcomes.")
    consequences: str = setting(
        conseq.DEFAULT_STRENGTH, "Strength of the consequences (online/consequences.py): none "
        "(every policy gets the same sessions and slots), chosen, strong.",
        choices=tuple(conseq.STRENGTHS))


@dataclasses.dataclass
class DaySessions:
    """One day's sessions of one policy: user [S], key [S] (day, user, index), start [S]
    (unix s) and candidates [S, C] (item indices)."""

    user: np.ndarray
    key: np.ndarray
    start: np.ndarray
    candidates: np.ndarray


def session_keys(day: int, user: np.ndarray, index: np.ndarray) -> np.ndarray:
    """int64 keys unique per (day, user, session index)."""
    return (np.int64(day) << np.int64(40)) | (user.astype(np.int64) << np.int64(8)) | index


def draw_sessions(world: simulator.World, day: int, multiplier: np.ndarray,
                  config: OnlineConfig) -> DaySessions:
    """The day's sessions for users whose session rate is scaled by `multiplier` [users]."""
    c = world.config
    users = np.arange(c.num_users)
    weekend = ((dt.date.fromisoformat(c.start_date).weekday() + day) % 7) >= 5
    rate = world.user_sessions_per_day * (1.15 if weekend else 1.0) * multiplier
    count = np.minimum(crn.poisson(crn.uniform(config.seed, _SESSIONS, day, users), rate),
                       MAX_SESSIONS_PER_DAY)
    user = np.repeat(users, count)
    index = np.arange(len(user)) - np.repeat(np.cumsum(count) - count, count)
    key = session_keys(day, user, index)
    peak = np.searchsorted(np.cumsum(_PEAK_SHARES), crn.uniform(config.seed, _HOUR_PEAK, key),
                           side="right")
    hour = np.clip(_PEAKS[np.minimum(peak, 2)] + _PEAK_SD * crn.normal(config.seed, _HOUR, key),
                   0, 23.9)
    start = world.start + day * SECONDS_PER_DAY + (hour * 3600).astype(np.int64)
    pool = world.candidate_pool(day)
    if len(pool) < config.candidates:  # tiny worlds: repeat the pool
        pool = np.resize(pool, config.candidates)
    candidates = np.empty((len(key), config.candidates), np.int64)
    for lo in range(0, len(key), _CHUNK):  # each session: the pool items of its lowest keys
        keys = crn.uniform(config.seed, _CANDIDATES, key[lo:lo + _CHUNK, None],
                           np.arange(len(pool))[None, :])
        top = np.argpartition(keys, config.candidates - 1, axis=1)[:, :config.candidates]
        candidates[lo:lo + _CHUNK] = pool[top]
    return DaySessions(user, key, start, candidates)


def ranked(world: simulator.World, sessions: DaySessions, policy: RankingPolicy) -> np.ndarray:
    """[S, C] the policy's candidates, best first."""
    S, C = sessions.candidates.shape
    rows = simulator.Requests(user=np.repeat(sessions.user, C),
                              timestamp=np.repeat(sessions.start, C),
                              session=np.repeat(sessions.key, C),
                              position=np.zeros(S * C, np.int64))
    scores = policy.scores(world, rows, sessions.candidates.ravel()).reshape(S, C)
    order = np.argsort(-scores, axis=1, kind="stable")
    return np.take_along_axis(sessions.candidates, order, axis=1)


def play(world: simulator.World, sessions: DaySessions, items: np.ndarray, day: int,
         config: OnlineConfig) -> dict:
    """Outcomes of every slot each session could reach: arrays [S, C] of click, dwell_time,
    timestamp, position, and the leave uniforms."""
    S, C = items.shape
    slot = np.arange(C)[None, :]
    key = sessions.key[:, None]
    timestamp = np.minimum(sessions.start[:, None] + SLOT_SECONDS * slot,
                           world.start + (day + 1) * SECONDS_PER_DAY - 1)
    requests = simulator.Requests(user=np.repeat(sessions.user, C), timestamp=timestamp.ravel(),
                                  session=np.repeat(sessions.key, C),
                                  position=np.tile(np.arange(C), S))
    noise = {}
    for name, stream in _NOISE.items():
        draw = crn.normal if name in ("bounce_dwell", "dwell") else crn.uniform
        noise[name] = draw(config.seed, stream, key, slot).ravel()
    outcome = world.respond(requests, items.ravel(), None, noise)
    return {"click": outcome["click"].reshape(S, C),
            "dwell_time": outcome["dwell_time"].reshape(S, C),
            "timestamp": timestamp, "position": np.broadcast_to(slot, (S, C)),
            "leave": crn.uniform(config.seed, _LEAVE, key, slot)}


def _hazard0(world: simulator.World, config: OnlineConfig) -> np.ndarray:
    return conseq.baseline_hazard(world.config.session_items_mean, config.candidates)


def calibrate(world: simulator.World, artifact: stats_artifact.StatsArtifact,
              config: OnlineConfig) -> conseq.Calibration:
    """The leave offset and reference score of the logging policy on the first online day
    (`online.consequences`)."""
    strength = conseq.STRENGTHS[config.consequences]
    if strength.beta == 0 and strength.gamma == 0:
        return conseq.Calibration()
    day = default_start(world, config)
    sessions = draw_sessions(world, day, np.ones(world.config.num_users), config)
    slots = play(world, sessions, ranked(world, sessions, LoggingScorePolicy(seed=config.seed)),
                 day, config)
    scores = conseq.outcome_scores(slots["click"], slots["dwell_time"], artifact.x_l,
                                   artifact.x_h)
    hazard0 = _hazard0(world, config)
    offset = conseq.calibrate_leave_offset(scores, slots["leave"], hazard0, strength)
    length = conseq.session_lengths(scores, slots["leave"], hazard0, strength, offset)
    kept = np.arange(scores.shape[1])[None, :] < length[:, None]
    user = np.broadcast_to(sessions.user[:, None], scores.shape)[kept]
    per_user = np.bincount(user, weights=scores[kept], minlength=world.config.num_users)
    shown = np.bincount(user, minlength=world.config.num_users)
    reference = float(np.mean(per_user[shown > 0] / shown[shown > 0])) if shown.any() else 0.0
    return conseq.Calibration(leave_offset=offset, reference_score=reference)


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
    if config.seed >= 2 ** 63:  # the random streams key on int64
        raise InputError(f"--seed must be below 2^63, not {config.seed}")
    if config.consequences not in conseq.STRENGTHS:
        raise InputError(f"--consequences must be one of {', '.join(conseq.STRENGTHS)}, not "
                         f"{config.consequences!r}")


def check_world(world: simulator.World, config: OnlineConfig) -> list[str]:
    """Refuses online days past the simulation's calendar (InputError); returns warnings: days
    whose candidate pool is smaller than `config.candidates` (sessions then repeat items)."""
    start, last = default_start(world, config), world.config.days - 1
    if start + config.days - 1 > last:
        raise InputError(
            f"online days {start}..{start + config.days - 1} reach past the simulation's "
            f"calendar (days 0..{last}): it publishes items only up to day {last}, so later "
            f"days would show an ever older catalogue; choose --start_day and --days within it "
            f"(e.g. --start_day={max(0, last + 1 - config.days)})")
    warnings = []
    for day in range(start, start + config.days):
        pool = len(world.candidate_pool(day))
        if pool < config.candidates:
            warnings.append(f"day {day}'s candidate pool holds {pool} items, fewer than "
                            f"--candidates={config.candidates}: its sessions show some items "
                            f"twice; lower --candidates to {pool} or simulate more items")
            break
    return warnings


def check_artifact(world_dir: str, artifact: stats_artifact.StatsArtifact) -> None:
    """Refuses a stats artifact made from logs other than the simulation's in `world_dir`
    (judged by the names and sizes of the files it records): its valid-read rules (x_l, the
    light users' counts, the items' P10) would come from another world."""
    records = [r for r in artifact.files if r]
    if not records:
        return  # an artifact made before it recorded its files
    logs_dir = os.path.join(world_dir, "logs")
    ours = {name: os.path.getsize(os.path.join(logs_dir, name))
            for name in (os.listdir(logs_dir) if os.path.isdir(logs_dir) else ())}
    foreign = [r["path"] for r in records
               if ours.get(os.path.basename(r["path"])) != r.get("bytes")]
    if foreign:
        raise InputError(f"the stats artifact was computed from other logs than the simulation "
                         f"{world_dir}'s ({foreign[0]}"
                         + (f" and {len(foreign) - 1} more" if len(foreign) > 1 else "")
                         + " not among its logs/ files): its valid-read rules would come from "
                         "another world; give the stats of this simulation's training days",
                         file=artifact.path)


def simulate(world: simulator.World, policies: dict, artifact: stats_artifact.StatsArtifact,
             config: OnlineConfig = OnlineConfig(),
             calibration: conseq.Calibration | None = None) -> dict:
    """Runs every policy over the same days; returns {policy: impression arrays}: user, item,
    timestamp, position, session (key), click, dwell_time, valid_read (aligned [n])."""
    check_config(config)
    check_world(world, config)
    strength = conseq.STRENGTHS[config.consequences]
    calibration = calibration or calibrate(world, artifact, config)
    hazard0 = _hazard0(world, config)
    start = default_start(world, config)
    num_users = world.config.num_users
    result = {}
    for name, policy in policies.items():
        multiplier, parts = np.ones(num_users), []
        for day in range(start, start + config.days):
            sessions = draw_sessions(world, day, multiplier, config)
            items = ranked(world, sessions, policy)
            slots = play(world, sessions, items, day, config)
            scores = conseq.outcome_scores(slots["click"], slots["dwell_time"], artifact.x_l,
                                           artifact.x_h)
            length = conseq.session_lengths(scores, slots["leave"], hazard0, strength,
                                            calibration.leave_offset)
            kept = np.arange(items.shape[1])[None, :] < length[:, None]
            user = np.broadcast_to(sessions.user[:, None], kept.shape)[kept]
            parts.append({"user": user, "item": items[kept],
                          "session": np.broadcast_to(sessions.key[:, None], kept.shape)[kept],
                          "timestamp": slots["timestamp"][kept],
                          "position": slots["position"][kept],
                          "click": slots["click"][kept], "dwell_time": slots["dwell_time"][kept],
                          "outcome_score": scores[kept]})
            multiplier = conseq.return_multipliers(user, scores[kept], num_users, strength,
                                                   calibration.reference_score)
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
    fields = {f.name for f in dataclasses.fields(world_config.SimConfig)}
    setting_name = config.get("setting", summary.get("setting", world_config.DEFAULT_SETTING))
    if setting_name not in world_config.SETTINGS:
        raise InputError(f"names simulator setting {setting_name!r}, unknown here (settings: "
                         f"{', '.join(world_config.SETTINGS)})", file=path)
    defaults = world_config.SETTINGS[setting_name].values
    # Values the setting gives are left to it; an explicit override is kept.
    explicit = {k: v for k, v in config.items() if k in fields and k != "setting"
                and not (k in defaults and v == defaults[k])}
    return simulator.World(world_config.SimConfig(setting=setting_name, **explicit))
