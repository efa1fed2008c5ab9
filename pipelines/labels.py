"""The label rules of SPEC §3, in one place: valid read, NDT, log dwell and dwell-time bins.

Everything here is used by the statistics job (NDT fit, bin edges), the labelling job, training
(labels computed on the fly from raw logs) and the benchmarks. The rules:

- valid read of a click with dwell T seconds: the floor T >= min_dwell must pass, and one of
  T1: T > x_l;  T2: the user's clicks over the `light_user_days` UTC days ending with the
  impression's day (inclusive) < `light_user_clicks`;  T3: the item has a P10 and T > P10.
  `valid_read_rule` is the first rule that holds (1, 2, 3), else 0. Unclicked: 0 and 0.
- ndt(T) = A / (1 + exp(-(T - offset) / tau)) - B, clipped at 0; 0 when unclicked.
- log_dwell = ln(1 + T) for clicks, else 0.
- dwell_bin: the number of interior bin edges (seconds) that T reaches (T >= edge), so a dwell
  exactly on an edge falls in the upper bin, values outside the range fall in the end bins and
  a click with dwell 0 is in bin 0; -1 when unclicked.

Counting for T2 uses the logs being labelled for the UTC days they cover (a day is covered when
any row of the input falls on it; a user without clicks that day counts 0) and the stats
artifact's user table for every other day of the window.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import os
from typing import Mapping, NamedTuple

import numpy as np

from pipelines.errors import InputError

FORMAT_VERSION = 1
SECONDS_PER_DAY = 86_400
# Columns the labeller reads.
LABEL_INPUTS = ("user_id", "item_id", "timestamp", "click", "dwell_time")
_DAY_SLOTS = 1 << 24  # window table key: user index * _DAY_SLOTS + (day - first day)


# NDT ------------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class NdtParams:
    """Parameters of ndt(T) = A / (1 + exp(-(T - offset) / tau)) - B (T, offset, tau: seconds)."""

    offset: float
    tau: float
    A: float
    B: float
    t_max: float
    epsilon: float
    preset: str

    def __call__(self, dwell: np.ndarray) -> np.ndarray:
        """ndt of dwell seconds (shape [n]), clipped at 0. Clicks only: callers zero the rest."""
        value = self.A / (1.0 + np.exp(-(np.asarray(dwell, float) - self.offset) / self.tau)) - self.B
        return np.maximum(value, 0.0)

    def describe(self) -> str:
        """One line for tool summaries."""
        return (f"NDT ({self.preset}): offset {self.offset:.3f}  tau {self.tau:.3f}  "
                f"A {self.A:.4f}  B {self.B:.4f}")

    def derivative(self, dwell: float) -> float:
        """d ndt / dT at `dwell` seconds (unclipped branch)."""
        z = (dwell - self.offset) / self.tau
        return self.A * _sigmoid(z) * _sigmoid(-z) / self.tau


PAPER_NDT = dict(offset=15.0, tau=20.0, A=2.319, B=0.744)


def _sigmoid(x: float) -> float:
    """1 / (1 + exp(-x)) without overflow."""
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def _auto_a_b(offset: float, tau: float, t_max: float) -> tuple[float, float]:
    # A - B = t_max and B = A / (1 + exp(offset / tau))  =>  A = t_max / sigmoid(offset / tau).
    a = t_max / _sigmoid(offset / tau)
    return a, a * _sigmoid(-offset / tau)


def fit_ndt(preset: str, *, x_l: float, x_h: float, t_max: float = 1.575, epsilon: float = 1e-5,
            offset: float | None = None, tau: float | None = None, A: float | None = None,
            B: float | None = None) -> NdtParams:
    """NDT parameters for a preset ('auto', 'paper' or 'explicit').

    auto: offset = x_l (or `offset`); B = A / (1 + exp(offset / tau)) so ndt(0) = 0; A - B = t_max;
    tau solves d ndt/dT (x_h) = epsilon on the saturated branch 0 < tau < (x_h - offset) / 2,
    where the derivative rises with tau, by bisection. Explicit `tau`, `A`, `B` override.
    paper: offset 15, tau 20, A 2.319, B 0.744. explicit: all four given.
    """
    if preset == "paper":
        p = dict(PAPER_NDT)
        return NdtParams(p["offset"], p["tau"], p["A"], p["B"], p["A"] - p["B"], epsilon, "paper")
    if preset == "explicit":
        if None in (offset, tau, A, B):
            raise InputError("--ndt=explicit needs --ndt_offset, --ndt_tau, --ndt_a and --ndt_b")
        return NdtParams(offset, tau, A, B, A - B, epsilon, "explicit")
    if preset != "auto":
        raise InputError(f"unknown NDT preset '{preset}' (expected auto, paper or explicit)")
    offset = x_l if offset is None else offset
    if tau is None:
        tau = _solve_tau(offset, x_h, t_max, epsilon)
    a, b = _auto_a_b(offset, tau, t_max)
    return NdtParams(offset, tau, a if A is None else A, b if B is None else B, t_max, epsilon,
                     "auto")


def _solve_tau(offset: float, x_h: float, t_max: float, epsilon: float) -> float:
    def slope(tau: float) -> float:
        a, _ = _auto_a_b(offset, tau, t_max)
        z = (x_h - offset) / tau
        return a * _sigmoid(z) * _sigmoid(-z) / tau

    hi = (x_h - offset) / 2.0
    if hi <= 0:
        raise InputError(f"cannot fit NDT: x_h ({x_h:.3g} s) must exceed the offset "
                         f"({offset:.3g} s)")
    lo = hi * 1e-6
    if not slope(lo) < epsilon < slope(hi):
        raise InputError(f"cannot fit NDT: no tau in (0, {hi:.4g}) gives d ndt/dT(x_h) = "
                         f"{epsilon:g} (the slope ranges {slope(lo):.3g} .. {slope(hi):.3g}); "
                         "choose another --ndt_epsilon or give --ndt_tau")
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if slope(mid) < epsilon:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-13 * hi:
            break
    return 0.5 * (lo + hi)


# Dwell bins -----------------------------------------------------------------------------------------
def dwell_bin_edges(clicked_dwell: np.ndarray, num_bins: int) -> np.ndarray:
    """`num_bins` + 1 edges (seconds), equal-width on ln(T) between the 0.5th and 99.5th
    percentiles (numpy's linear interpolation) of clicked dwell times > 0."""
    positive = clicked_dwell[clicked_dwell > 0]
    lo, hi = np.percentile(positive, [0.5, 99.5])
    if not hi > lo:
        raise InputError(f"cannot make dwell-time bins: the 0.5th and 99.5th percentiles of "
                         f"clicked dwell are equal ({lo:g} s)")
    return np.exp(np.linspace(np.log(lo), np.log(hi), num_bins + 1))


def assign_bins(dwell: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin index of each dwell (seconds), [n] -> [n] int64, with the module's edge convention."""
    return np.searchsorted(np.asarray(edges)[1:-1], dwell, side="right").astype(np.int64)


# The stats artifact ---------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class RuleConfig:
    """Thresholds of the valid-read rules (stored in the artifact; label flags may override)."""

    min_dwell: float = 5.0
    t1_threshold: float | None = None  # None: the artifact's x_l
    light_user_days: int = 7
    light_user_clicks: int = 7
    min_item_records: int = 5


@dataclasses.dataclass
class StatsArtifact:
    """The statistics job's output, loaded: `stats` (stats.json), `item_p10` (item -> P10 s),
    `user_day_clicks` ((user, UTC day number) -> clicks)."""

    path: str
    stats: dict
    item_p10: dict
    user_day_clicks: dict

    @property
    def ndt(self) -> NdtParams:
        return NdtParams(**self.stats["ndt"])

    @property
    def rules(self) -> RuleConfig:
        return RuleConfig(**self.stats["rules"])

    @property
    def dwell_bin_edges(self) -> np.ndarray:
        return np.asarray(self.stats["dwell_bin_edges"], float)


def read_table(directory: str, columns: Mapping[str, type]) -> dict[str, np.ndarray]:
    """Reads the CSV shards `directory/part-*.csv` (header line, then rows) into arrays."""
    import pandas as pd

    frames = [read_table_shard(s, columns) for s in table_shards(directory)]
    if not frames:
        return {c: np.zeros(0, t) for c, t in columns.items()}
    frame = pd.concat(frames, ignore_index=True)
    return {c: frame[c].to_numpy() for c in columns}


def table_shards(directory: str) -> list[str]:
    """The CSV shards of an artifact table, sorted: `directory/part-*.csv`."""
    return sorted(glob.glob(os.path.join(directory, "part-*.csv")))


def read_table_shard(path: str, columns: Mapping[str, type]):
    """One shard of an artifact table as a DataFrame of `columns` (ids stay text: no NA)."""
    import pandas as pd

    return pd.read_csv(path, dtype=dict(columns), keep_default_na=False)[list(columns)]


USER_DAY_COLUMNS = {"user_id": str, "day": np.int64, "clicks": np.int64}


def load_artifact(path: str, *, user_days: bool = True) -> StatsArtifact:
    """Loads a stats artifact directory; InputError if it is missing or of another version.

    `user_days=False` leaves the user table out (`user_day_clicks` is then empty): it grows with
    users x days of the stats window, and the Beam labelling engine joins it by key instead."""
    stats_path = os.path.join(path, "stats.json")
    if not os.path.isfile(stats_path):
        raise InputError(f"{path} is not a stats artifact (no stats.json); make one with "
                         "python -m pipelines.stats")
    try:
        with open(stats_path) as handle:
            stats = json.load(handle)
    except ValueError as error:
        raise InputError(f"is not valid JSON ({error})", file=stats_path) from None
    version = stats.get("format_version")
    if version != FORMAT_VERSION:
        raise InputError(f"has format_version {version!r}; this dwellrank reads version "
                         f"{FORMAT_VERSION}: recompute the statistics with python -m "
                         "pipelines.stats", file=stats_path)
    items = read_table(os.path.join(path, "items"), {"item_id": str, "clicks": np.int64,
                                                      "p10": float})
    users = (read_table(os.path.join(path, "user_days"), USER_DAY_COLUMNS) if user_days
             else {c: np.zeros(0, t) for c, t in USER_DAY_COLUMNS.items()})
    return StatsArtifact(
        path=path, stats=stats,
        item_p10=dict(zip(items["item_id"].tolist(), items["p10"].tolist())),
        user_day_clicks=dict(zip(zip(users["user_id"].tolist(), users["day"].tolist()),
                                 users["clicks"].tolist())))


# T2 window counts -----------------------------------------------------------------------------------
# Users are keyed by the 63-bit FarmHash fingerprint of their id (computed in-graph, so counting
# never turns ids into Python objects). Two users share counts only if their fingerprints
# collide: probability about n_users^2 / 2^64 (1e-7 for 1M users).
FINGERPRINT_BUCKETS = (1 << 63) - 1


def user_fingerprint(user_ids):
    """int64 fingerprints of user ids (a string Tensor or array of str/bytes), [n] -> [n]."""
    import tensorflow as tf

    return tf.strings.to_hash_bucket_fast(user_ids, FINGERPRINT_BUCKETS)


def count_user_days(batches):
    """Clicks per (user fingerprint, UTC day) and the set of covered days, from batches of numpy
    dicts with `user_fp`, `day` and `click` (see `labeler_for`). Every (user, day) with an
    impression gets a row. Returns (DataFrame[user_fp, day, clicks], set of days)."""
    import pandas as pd

    parts, days = [], set()
    for batch in batches:
        frame = pd.DataFrame({"user_fp": batch["user_fp"], "day": batch["day"],
                              "clicks": batch["click"]})
        parts.append(frame.groupby(["user_fp", "day"], sort=False, as_index=False)["clicks"].sum())
        days.update(np.unique(batch["day"]).tolist())
    if not parts:
        return pd.DataFrame({"user_fp": [], "day": [], "clicks": []}, dtype=np.int64), days
    total = pd.concat(parts).groupby(["user_fp", "day"], as_index=False)["clicks"].sum()
    return total, days


def artifact_counts(artifact: "StatsArtifact"):
    """The artifact's user table as DataFrame[user_fp, day, clicks]."""
    import pandas as pd

    keys = list(artifact.user_day_clicks)
    users = [u for u, _ in keys]
    fps = user_fingerprint(np.asarray(users, dtype=object)).numpy() if users else []
    return pd.DataFrame({"user_fp": np.asarray(fps, np.int64),
                         "day": np.asarray([d for _, d in keys], np.int64),
                         "clicks": np.asarray(list(artifact.user_day_clicks.values()), np.int64)})


def window_clicks(labelled, covered_days: set, history, window_days: int):
    """For every (user_fp, day) of `labelled`: the user's clicks over the `window_days` days
    ending with `day`; covered days count from `labelled`, other days from `history`.
    Returns DataFrame[user_fp, day, window]."""
    import pandas as pd

    covered = np.fromiter(covered_days, np.int64) if covered_days else np.zeros(0, np.int64)
    counts = pd.concat([labelled[["user_fp", "day", "clicks"]],
                        history[~history["day"].isin(covered)][["user_fp", "day", "clicks"]]])
    result = labelled[["user_fp", "day"]].copy()
    result["window"] = 0
    for back in range(window_days):
        shifted = counts.assign(day=counts["day"] + back)
        merged = result[["user_fp", "day"]].merge(shifted, on=["user_fp", "day"], how="left")
        result["window"] += merged["clicks"].fillna(0).to_numpy(np.int64)
    return result


# The in-graph labeller ------------------------------------------------------------------------------
class Labeler:
    """Adds `valid_read`, `valid_read_rule`, `ndt`, `log_dwell`, `dwell_bin` to a batch dict of
    a `read_logs` dataset (Tensors of shape [batch]); use with `dataset.map(labeler)`.

    Lookup tables (item P10, 7-day click windows) are built once from the artifact and from the
    logs being labelled (`count_user_days`). `unclicked_dwell_zeroed`: rows of those logs whose
    dwell > 0 on an unclicked row was treated as 0 (`labeler_for` with allow_unclicked_dwell).
    """

    unclicked_dwell_zeroed = 0
    rows_per_file = None  # int64 [files] of the counted logs (`labeler_for`)

    def __init__(self, artifact: StatsArtifact, window, rules: RuleConfig | None = None,
                 ndt: NdtParams | None = None):
        """`window`: DataFrame[user_fp, day, window] from `window_clicks`."""
        import tensorflow as tf

        self.rules = rules or artifact.rules
        self.ndt = ndt or artifact.ndt
        self.x_l = float(artifact.stats["x_l"] if self.rules.t1_threshold is None
                         else self.rules.t1_threshold)
        self.interior_edges = tf.constant(artifact.dwell_bin_edges[1:-1], tf.float64)
        items = list(artifact.item_p10)
        self.item_p10 = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(items or [""], tf.string),
                tf.constant([artifact.item_p10[i] for i in items] or [np.nan], tf.float64)),
            default_value=np.nan)
        # Two int-keyed lookups: user fingerprint -> dense index, then index and day -> count.
        fps = np.unique(window["user_fp"].to_numpy(np.int64))
        self.first_day = int(window["day"].min()) if len(window) else 0
        self.user_index = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(fps if len(fps) else [0], tf.int64),
                tf.range(max(len(fps), 1), dtype=tf.int64)),
            default_value=-1)
        keys = (np.searchsorted(fps, window["user_fp"].to_numpy(np.int64)) * _DAY_SLOTS
                + (window["day"].to_numpy(np.int64) - self.first_day))
        self.window = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(
                tf.constant(keys if len(keys) else [0], tf.int64),
                tf.constant(window["window"].to_numpy(np.int64) if len(keys) else [0], tf.int64)),
            default_value=-1)

    def __call__(self, batch: dict) -> dict:
        import tensorflow as tf

        dwell = tf.cast(batch["dwell_time"], tf.float64)
        clicked = tf.equal(batch["click"], 1)
        day = tf.math.floordiv(batch["timestamp"], SECONDS_PER_DAY)
        user = self.user_index.lookup(user_fingerprint(batch["user_id"]))
        window = self.window.lookup(user * _DAY_SLOTS + (day - self.first_day))
        window = tf.where(user < 0, tf.constant(-1, tf.int64), window)
        tf.debugging.assert_non_negative(
            window, message="a (user, day) of the batch is missing from the T2 window table: "
                            "count_user_days must see the same logs as the labeller")
        p10 = self.item_p10.lookup(batch["item_id"])
        t1 = dwell > self.x_l
        t2 = window < self.rules.light_user_clicks
        t3 = tf.logical_not(tf.math.is_nan(p10)) & (dwell > p10)
        valid = clicked & (dwell >= self.rules.min_dwell) & (t1 | t2 | t3)
        rule = tf.where(t1, 1, tf.where(t2, 2, 3))
        p = self.ndt
        ndt = tf.maximum(p.A / (1.0 + tf.exp(-(dwell - p.offset) / p.tau)) - p.B, 0.0)
        zero = tf.zeros_like(dwell)
        bins = tf.reduce_sum(tf.cast(dwell[:, None] >= self.interior_edges[None, :], tf.int64),
                             axis=1)
        out = dict(batch)
        out["valid_read"] = tf.cast(valid, tf.int64)
        out["valid_read_rule"] = tf.where(valid, tf.cast(rule, tf.int64), 0)
        out["ndt"] = tf.cast(tf.where(clicked, ndt, zero), tf.float32)
        out["log_dwell"] = tf.cast(tf.where(clicked, tf.math.log1p(dwell), zero), tf.float32)
        out["dwell_bin"] = tf.where(clicked, bins, -1)
        return out


def labeler_for(source, artifact: StatsArtifact, rules: RuleConfig | None = None,
                ndt: NdtParams | None = None, batch_size: int = 8192,
                allow_unclicked_dwell: bool = False) -> Labeler:
    """A Labeler for the logs of `source` (a `LogSource`): one pass counts their clicks per user
    and day for rule T2."""
    rules = rules or artifact.rules
    counted = count_source(source, batch_size, allow_unclicked_dwell)
    window = window_clicks(counted.user_days, counted.covered_days, artifact_counts(artifact),
                           rules.light_user_days)
    labeler = Labeler(artifact, window, rules, ndt)
    labeler.unclicked_dwell_zeroed = counted.unclicked_dwell_zeroed
    labeler.rows_per_file = counted.rows_per_file
    return labeler


class SourceCounts(NamedTuple):
    """What the counting pass over some logs finds (`count_source`)."""

    user_days: "object"  # DataFrame[user_fp, day, clicks], as `count_user_days`
    covered_days: set  # UTC days with an impression
    unclicked_dwell_zeroed: int  # unclicked rows whose dwell > 0 was treated as 0
    rows_per_file: np.ndarray  # int64 [files]: rows of each of `source.files`


def count_source(source, batch_size: int = 8192,
                 allow_unclicked_dwell: bool = False) -> SourceCounts:
    """The counting pass of rule T2 over the logs of `source` (a `LogSource`); it also counts
    each file's rows (multi-worker training deals files to workers by them)."""
    import tensorflow as tf

    from pipelines import logs as logs_lib

    # Order does not matter for counting: two files at a time, three columns parsed, and only
    # integers leave the graph.
    dataset = source.dataset(batch_size, allow_unclicked_dwell=allow_unclicked_dwell,
                             columns=("user_id", "timestamp", "click"), parallel_files=2,
                             with_source=True)
    zeroed = [0]  # unclicked rows whose dwell > 0 was treated as 0 (--allow_unclicked_dwell)
    rows_per_file = np.zeros(len(source.files), np.int64)

    def key(b):
        out = {"user_fp": user_fingerprint(b["user_id"]),
               "day": tf.math.floordiv(b["timestamp"], SECONDS_PER_DAY), "click": b["click"],
               "file": b[logs_lib.SOURCE_INDEX]}
        if allow_unclicked_dwell:
            out["zeroed"] = tf.reduce_sum(b[logs_lib.DWELL_ZEROED])
        return out

    def counted(batches):
        for batch in batches:
            zeroed[0] += int(batch.pop("zeroed", 0))
            rows_per_file[:] += np.bincount(batch.pop("file"), minlength=len(rows_per_file))
            yield batch

    keys = dataset.map(tf.autograph.experimental.do_not_convert(key))
    counts, covered = count_user_days(counted(keys.as_numpy_iterator()))
    return SourceCounts(counts, covered, zeroed[0], rows_per_file)
