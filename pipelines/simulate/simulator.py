"""A causal simulator of article-feed impression logs (SPEC §10).

The world has users and items with observed attributes and latent traits. Each day, users open
sessions; a *policy* fills each session's slots with items; the world answers with clicks and
dwell times. Everything a log row holds is observable; the latent variables go to a ground-truth
file beside the logs.

Causal model (all effects additive on the logit of a click or on ln(dwell)):

    click logit  = b0 + user_bias + W_INTEREST * interest(u, category)
                   + W_TOPIC * interest(u, topic) + W_QUALITY * quality
                   + W_CLICKBAIT * clickbait - W_POSITION * position - W_FRESH_CLICK * age_days
    ln(dwell)    = m0 + W_LENGTH * (ln(length) - ln(700)) + category_dwell[category]
                   + W_DEPTH * reading_depth + W_QUALITY_DWELL * quality
                   + W_INTEREST_DWELL * interest(u, category) - W_CLICKBAIT_DWELL * clickbait
                   - W_FRESH_DWELL * age_days + N(0, DWELL_NOISE^2)
                   (or, for a bounce, with probability BOUNCE_BASE + BOUNCE_CLICKBAIT * clickbait,
                   ln(dwell) ~ N(ln 6, 0.6^2): the click the reader regrets at once)

`topic` is a latent item trait (20 topics, independent of the category) and users have interests
over topics as over categories; neither is logged.

The weights, sizes and named settings (`legacy`, `entangled`, `clickbait`) are
`pipelines.simulate.world_config`; writing a simulation to disk is
`pipelines.simulate.writing`.

A policy is any object with ``choose(world, requests, rng) -> item indices``: the logging policy
below samples by recency, quality and a little personalization (by category interest); the online
mode (benchmarks) plugs a ranking model in through the same interface.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Protocol

import numpy as np

from core.errors import InputError
from core.label_rules import SECONDS_PER_DAY
from pipelines.simulate.world_config import SimConfig

# Impression ids are day * IMPRESSIONS_PER_DAY + row: unique across days below this many a day.
IMPRESSIONS_PER_DAY = 100_000_000

CATEGORIES = ("news", "sports", "finance", "tech", "entertainment", "health", "travel", "food",
              "culture", "science", "autos", "games")
CATEGORY_SHARES = np.array([0.18, 0.12, 0.08, 0.09, 0.14, 0.06, 0.05, 0.06, 0.06, 0.05, 0.05, 0.06])
# Per-category shift of ln(length) and of ln(dwell): sports and games read short, culture long.
CATEGORY_LENGTH = np.array([-0.1, -0.3, 0.2, 0.2, -0.2, 0.1, 0.3, 0.0, 0.4, 0.3, 0.0, -0.2])
CATEGORY_DWELL = np.array([-0.1, -0.4, 0.3, 0.2, -0.3, 0.1, 0.3, -0.1, 0.5, 0.4, 0.0, -0.3])
AGE_GROUPS = ("<18", "18-24", "25-34", "35-44", "45-54", "55+")
AGE_GROUP_SHARES = np.array([0.05, 0.17, 0.27, 0.23, 0.16, 0.12])
DEVICES = ("android", "ios", "web")
DEVICE_SHARES = np.array([0.55, 0.35, 0.10])

# Log columns, in file order. `position`, user and item attributes are the observed features.
LOG_COLUMNS = ("impression_id", "user_id", "item_id", "timestamp", "click", "dwell_time",
               "position", "user_age_group", "user_device", "category", "item_length", "source",
               "publish_age_hours")
# Features that act mainly after the click (SPEC §2): for --post_click_features and ORCA.
POST_CLICK_FEATURES = ("category", "item_length", "publish_age_hours")




@dataclasses.dataclass
class Requests:
    """The slots of one day's sessions, one entry per impression to fill.

    Arrays have shape [num_impressions]: `user` (index), `timestamp` (unix s), `session`
    (a day-unique session number), `position` (0-based slot within the session).
    """

    user: np.ndarray
    timestamp: np.ndarray
    session: np.ndarray
    position: np.ndarray

    def __len__(self) -> int:
        return len(self.user)


class Policy(Protocol):
    """Fills request slots with items: returns item indices of shape [len(requests)]."""

    def choose(self, world: "World", requests: Requests, rng: np.random.Generator) -> np.ndarray:
        ...


class World:
    """Users and items with observed attributes and latent traits, and how users respond."""

    def __init__(self, config: SimConfig):
        self.config = c = config
        rng = np.random.default_rng([c.seed, 0xD3E11])
        num_cat = len(CATEGORIES)
        self.start = c.start_timestamp()

        # Users.
        log_sessions = np.log(c.sessions_median) + c.sessions_log_sd * rng.standard_normal(c.num_users)
        self.user_sessions_per_day = np.clip(np.exp(log_sessions), 0.02, 40.0)
        self.user_age_group = rng.choice(len(AGE_GROUPS), size=c.num_users, p=AGE_GROUP_SHARES)
        self.user_device = rng.choice(len(DEVICES), size=c.num_users, p=DEVICE_SHARES)
        spread = log_sessions.std()  # 0 for one user: every user is of average activity
        z_active = (log_sessions - log_sessions.mean()) / (spread if spread > 0 else 1.0)
        # Heavy users read deeper; light users scan (the paper's reason for rule T2). Older readers
        # read a little deeper.
        self.user_reading_depth = (0.3 * z_active + 0.1 * (self.user_age_group - 2.5) / 1.5
                                   + 0.93 * rng.standard_normal(c.num_users))
        self.user_bias = c.user_bias_sd * rng.standard_normal(c.num_users)
        self.user_interest = rng.dirichlet(np.full(num_cat, c.interest_concentration), c.num_users)

        # Sources: some are clickbait farms; source quality carries over to its items.
        source_quality = 0.5 * rng.standard_normal(c.num_sources)
        source_baity = rng.random(c.num_sources) < c.clickbait_source_share
        source_popularity = 1.0 / np.arange(1, c.num_sources + 1) ** 0.8
        source_popularity /= source_popularity.sum()

        # Items.
        self.item_source = rng.choice(c.num_sources, size=c.num_items, p=source_popularity)
        self.item_category = rng.choice(num_cat, size=c.num_items, p=CATEGORY_SHARES)
        baity_share = np.where(source_baity[self.item_source], c.clickbait_share_at_bad_sources,
                               c.clickbait_share)
        strong_bait = rng.random(c.num_items) < baity_share
        self.item_clickbait = np.where(strong_bait, rng.uniform(0.6, 1.0, c.num_items),
                                       rng.uniform(0.0, 0.15, c.num_items))
        self.item_quality = (source_quality[self.item_source] - 0.5 * self.item_clickbait
                             + 0.85 * rng.standard_normal(c.num_items))
        ln_length = (np.log(700.0) + CATEGORY_LENGTH[self.item_category] - 0.5 * self.item_clickbait
                     + 0.55 * rng.standard_normal(c.num_items))
        self.item_length = np.clip(np.round(np.exp(ln_length)), 30, 20_000).astype(np.int64)
        # Publication from pool_days before day 0 to the last day. The first items are published
        # before day 0 so that day 0 has a candidate pool even in a tiny world.
        span = (c.pool_days + c.days) * SECONDS_PER_DAY
        offset = rng.random(c.num_items) * span
        first = min(c.num_items, 2 * num_cat)
        offset[:first] = rng.random(first) * c.pool_days * SECONDS_PER_DAY
        self.item_publish_time = (self.start - int(c.pool_days * SECONDS_PER_DAY)
                                  + offset.astype(np.int64))

        # Latent topics, from a random stream of their own: the draws above are those of the
        # world before settings existed, so `legacy` stays byte for byte the same.
        topic_rng = np.random.default_rng([c.seed, 0xD3E11, 1])
        self.item_topic = topic_rng.integers(c.num_topics, size=c.num_items)
        self.user_topic_interest = topic_rng.dirichlet(np.full(c.num_topics, c.topic_concentration),
                                                       c.num_users)

    # Observable ids -------------------------------------------------------------------------
    @staticmethod
    def user_id(user: np.ndarray) -> np.ndarray:
        """Logged user ids: integers (the spec accepts them; they are still categorical)."""
        return 100_000 + np.asarray(user)

    @staticmethod
    def item_id(item: np.ndarray) -> np.ndarray:
        """Logged item ids: strings such as 'art-00042'."""
        return np.char.add("art-", np.char.zfill(np.asarray(item).astype(str), 5))

    @staticmethod
    def source_id(source: np.ndarray) -> np.ndarray:
        return np.char.add("src-", np.char.zfill(np.asarray(source).astype(str), 3))

    # Requests and candidates ----------------------------------------------------------------
    def requests(self, day: int, rng: np.random.Generator) -> Requests:
        """Sessions of `day`: Poisson sessions per user, 1 + Poisson slots per session."""
        c = self.config
        weekend = ((dt.date.fromisoformat(c.start_date).weekday() + day) % 7) >= 5
        rate = self.user_sessions_per_day * (1.15 if weekend else 1.0)
        sessions = rng.poisson(rate)
        session_user = np.repeat(np.arange(c.num_users), sessions)
        num_sessions = len(session_user)
        # Diurnal pattern: morning, lunch and evening peaks.
        peak = rng.choice(3, size=num_sessions, p=[0.3, 0.25, 0.45])
        hour = np.clip(np.array([8.0, 12.5, 20.5])[peak] + rng.normal(0, 1.8, num_sessions), 0, 23.9)
        session_start = self.start + day * SECONDS_PER_DAY + (hour * 3600).astype(np.int64)
        slots = 1 + rng.poisson(c.session_items_mean, num_sessions)
        session_index = np.repeat(np.arange(num_sessions), slots)
        first_slot = np.repeat(np.cumsum(slots) - slots, slots)
        position = np.arange(len(session_index)) - first_slot
        timestamp = np.minimum(session_start[session_index] + 12 * position,
                               self.start + (day + 1) * SECONDS_PER_DAY - 1)
        return Requests(user=session_user[session_index], timestamp=timestamp,
                        session=session_index, position=position)

    def candidate_pool(self, day: int) -> np.ndarray:
        """Items that may be shown on `day`: published before the day started, at most
        `pool_days` earlier. Falls back to the newest published items if that is empty."""
        day_start = self.start + day * SECONDS_PER_DAY
        age = day_start - self.item_publish_time
        pool = np.flatnonzero((age > 0) & (age <= self.config.pool_days * SECONDS_PER_DAY))
        if len(pool) == 0:
            published = np.flatnonzero(age > 0)
            pool = published[np.argsort(-self.item_publish_time[published])][:100]
        return pool

    # Responses --------------------------------------------------------------------------------
    def interest(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        """Interest of each user in the item's category, centred log scale, in [-1.5, 1.5]."""
        share = self.user_interest[user, self.item_category[item]] * len(CATEGORIES)
        return np.clip(0.6 * np.log(share + 0.1), -1.5, 1.5)

    def topic_interest(self, user: np.ndarray, item: np.ndarray) -> np.ndarray:
        """Interest of each user in the item's latent topic, on the same scale as `interest`."""
        share = self.user_topic_interest[user, self.item_topic[item]] * self.config.num_topics
        return np.clip(0.6 * np.log(share + 0.1), -1.5, 1.5)

    def age_days(self, item: np.ndarray, timestamp: np.ndarray) -> np.ndarray:
        return (timestamp - self.item_publish_time[item]) / SECONDS_PER_DAY

    def click_logit(self, user, item, position, timestamp) -> np.ndarray:
        """Latent click logit, shape [n]."""
        c = self.config
        logit = (c.b0 + self.user_bias[user] + c.w_interest * self.interest(user, item)
                 + c.w_quality * self.item_quality[item] + c.w_clickbait * self.item_clickbait[item]
                 - c.w_position * position - c.w_fresh_click * self.age_days(item, timestamp))
        if c.w_topic:  # skipped when 0, so `legacy` computes exactly what it always did
            logit = logit + c.w_topic * self.topic_interest(user, item)
        return logit

    def dwell_log_mean(self, user, item, timestamp) -> np.ndarray:
        """Mean of ln(dwell seconds) of a read, if the user clicks and does not bounce (a
        bounce, with probability `bounce_probability`, lasts about 6 s whatever this is),
        shape [n]."""
        c = self.config
        return (c.m0 + c.w_length * (np.log(self.item_length[item]) - np.log(700.0))
                + CATEGORY_DWELL[self.item_category[item]]
                + c.w_depth * self.user_reading_depth[user]
                + c.w_quality_dwell * self.item_quality[item]
                + c.w_interest_dwell * self.interest(user, item)
                - c.w_clickbait_dwell * self.item_clickbait[item]
                - c.w_fresh_dwell * self.age_days(item, timestamp))

    def bounce_probability(self, item) -> np.ndarray:
        """Probability that a click on `item` [n] bounces (about 6 s on the page), shape [n]."""
        c = self.config
        return np.clip(c.bounce_base + c.bounce_clickbait * self.item_clickbait[item], 0.0, 1.0)

    @staticmethod
    def outcome_noise(n: int, rng: np.random.Generator) -> dict:
        """The random draws that decide `n` impressions' outcomes (uniforms and normals, [n]
        each), in the order `respond` has always drawn them."""
        return {"click": rng.random(n), "bounce": rng.random(n),
                "bounce_dwell": rng.standard_normal(n), "dwell": rng.standard_normal(n),
                "lost": rng.random(n)}

    def respond(self, requests: Requests, item: np.ndarray, rng: np.random.Generator | None,
                noise: dict | None = None) -> dict:
        """Clicks and dwell seconds of the users in `requests` shown `item`.

        The draws come from `rng`, or from `noise` (`outcome_noise`), so that policies shown
        to the same slots can share them (common random numbers, `online.simulation`). Returns
        arrays of shape [n]: `click` (int64 0/1), `dwell_time` (float64 seconds, 0 when
        unclicked), and the latent `p_click`, `dwell_log_mean` and `p_bounce`.
        """
        noise = noise if noise is not None else self.outcome_noise(len(item), rng)
        logit = self.click_logit(requests.user, item, requests.position, requests.timestamp)
        p_click = 1.0 / (1.0 + np.exp(-logit))
        click = (noise["click"] < p_click).astype(np.int64)
        log_mean = self.dwell_log_mean(requests.user, item, requests.timestamp)
        c = self.config
        p_bounce = self.bounce_probability(item)
        bounce = noise["bounce"] < p_bounce
        dwell = np.exp(np.where(bounce, np.log(6.0) + 0.6 * noise["bounce_dwell"],
                                log_mean + c.dwell_noise * noise["dwell"]))
        lost = noise["lost"] < c.zero_dwell_share
        dwell = np.where((click == 1) & ~lost, np.round(dwell, 3), 0.0)
        return {"click": click, "dwell_time": dwell, "p_click": p_click, "dwell_log_mean": log_mean,
                "p_bounce": p_bounce}

    def observe(self, requests: Requests, item: np.ndarray) -> dict:
        """The observable feature columns of each impression (no outcome, no ids of the row)."""
        return {
            "user_id": self.user_id(requests.user),
            "item_id": self.item_id(item),
            "timestamp": requests.timestamp,
            "position": requests.position,
            "user_age_group": np.asarray(AGE_GROUPS)[self.user_age_group[requests.user]],
            "user_device": np.asarray(DEVICES)[self.user_device[requests.user]],
            "category": np.asarray(CATEGORIES)[self.item_category[item]],
            "item_length": self.item_length[item],
            "source": self.source_id(self.item_source[item]),
            "publish_age_hours": np.round(self.age_days(item, requests.timestamp) * 24.0, 2),
        }


class LoggingPolicy:
    """The production policy that produced the logs: per slot, draws a category from a mix of the
    user's interests and the global mix, then an item of that category from the day's pool with
    weight exp(-age / 1.5 days + 0.3 quality). Mildly personalized, so logs cover the catalogue."""

    def __init__(self, personalization: float = 0.5):
        self.personalization = personalization

    def choose(self, world: World, requests: Requests, rng: np.random.Generator) -> np.ndarray:
        day = int((requests.timestamp.min() - world.start) // SECONDS_PER_DAY) if len(requests) else 0
        pool = world.candidate_pool(day)
        day_start = world.start + day * SECONDS_PER_DAY
        weight = np.exp(-(day_start - world.item_publish_time[pool]) / (1.5 * SECONDS_PER_DAY)
                        + 0.3 * world.item_quality[pool])
        mix = (self.personalization * world.user_interest
               + (1 - self.personalization) * CATEGORY_SHARES / CATEGORY_SHARES.sum())
        cum = np.cumsum(mix, axis=1)
        draw = rng.random(len(requests))[:, None]
        category = np.minimum((cum[requests.user] < draw).sum(axis=1), len(CATEGORIES) - 1)
        chosen = np.empty(len(requests), dtype=np.int64)
        pool_category = world.item_category[pool]
        for cat in range(len(CATEGORIES)):
            slots = np.flatnonzero(category == cat)
            if len(slots) == 0:
                continue
            members = np.flatnonzero(pool_category == cat)
            if len(members) == 0:  # tiny worlds: no item of this category today
                members = np.arange(len(pool))
            cum_w = np.cumsum(weight[members])
            pick = np.searchsorted(cum_w, rng.random(len(slots)) * cum_w[-1], side="right")
            chosen[slots] = pool[members[np.minimum(pick, len(members) - 1)]]
        return chosen


def simulate_day(world: World, policy: Policy, day: int) -> tuple[dict, dict]:
    """One day of logs under `policy`.

    Returns (log, latent): `log` maps LOG_COLUMNS to arrays of shape [n], rows sorted by
    timestamp, session and position; `latent` holds `impression_id`, `p_click`,
    `dwell_log_mean` and `p_bounce` for the same rows. Each day has its own random stream, so a
    day's rows do not depend on how many days come before it. InputError for a day of
    IMPRESSIONS_PER_DAY rows or more, whose impression ids would repeat the next day's.
    """
    rng = np.random.default_rng([world.config.seed, 1, day])
    requests = world.requests(day, rng)
    if len(requests) >= IMPRESSIONS_PER_DAY:  # (before the day's outcomes take the memory)
        raise InputError(f"day {day} has {len(requests):,} impressions: the simulator numbers a "
                         f"day's impressions below {IMPRESSIONS_PER_DAY:,} (ids day * 10^8 + row, "
                         "unique across days); simulate fewer users")
    item = policy.choose(world, requests, rng)
    response = world.respond(requests, item, rng)
    log = world.observe(requests, item)
    log.update(click=response["click"], dwell_time=response["dwell_time"])
    order = np.lexsort((requests.position, requests.session, requests.timestamp))
    impression_id = day * IMPRESSIONS_PER_DAY + np.arange(len(order), dtype=np.int64)
    log = {name: (impression_id if name == "impression_id" else log[name][order])
           for name in LOG_COLUMNS}
    latent = {"impression_id": impression_id, "p_click": response["p_click"][order],
              "dwell_log_mean": response["dwell_log_mean"][order],
              "p_bounce": response["p_bounce"][order]}
    return log, latent


def user_table(world: World) -> dict:
    """Ground truth per user: ids, observed attributes and latent traits."""
    table = {
        "user_id": world.user_id(np.arange(world.config.num_users)),
        "sessions_per_day": np.round(world.user_sessions_per_day, 5),
        "reading_depth": np.round(world.user_reading_depth, 5),
        "user_bias": np.round(world.user_bias, 5),
        "user_age_group": np.asarray(AGE_GROUPS)[world.user_age_group],
        "user_device": np.asarray(DEVICES)[world.user_device],
    }
    for k, name in enumerate(CATEGORIES):
        table[f"interest_{name}"] = np.round(world.user_interest[:, k], 5)
    if world.config.w_topic:  # only where topics act (so `legacy` keeps its bytes)
        for k in range(world.config.num_topics):
            table[f"topic_interest_{k:02d}"] = np.round(world.user_topic_interest[:, k], 5)
    return table


def item_table(world: World) -> dict:
    """Ground truth per item: ids, observed attributes, latent quality and clickbait (and the
    latent topic where topics act on the click)."""
    table = {
        "item_id": world.item_id(np.arange(world.config.num_items)),
        "category": np.asarray(CATEGORIES)[world.item_category],
        "item_length": world.item_length,
        "source": world.source_id(world.item_source),
        "publish_time": world.item_publish_time,
        "quality": np.round(world.item_quality, 5),
        "clickbait": np.round(world.item_clickbait, 5),
    }
    if world.config.w_topic:
        table["topic"] = world.item_topic
    return table
