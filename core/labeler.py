"""The in-graph labeller: applies the label rules (`core.label_rules`) to batches of logs.

`Labeler` adds `valid_read`, `valid_read_rule`, `ndt`, `log_dwell` and `dwell_bin` to the batch
dicts of a `core.logs` dataset, inside the tf.data graph, so the same code labels logs in the
labelling job, in training (labels computed on the fly from raw logs) and in the online
evaluation. `labeler_for` builds one for some logs: a first pass counts their clicks per user
and UTC day for rule T2.

Counting for T2 uses the logs being labelled for the UTC days they hold (`held_days`: a day with
at least as many rows in the input as the stats artifact saw of it; a user without clicks that
day counts 0), the larger of the two counts for the other days the input has rows of (a sliver
of a day the artifact holds, late rows in hourly files, does not replace its counts; a user
the artifact lacks keeps its own), and the stats artifact's user table for the days the
input lacks. When the logs being labelled are the
very files the artifact was computed from (`StatsArtifact.counts_for`), its user table already
holds every count the rules need: the labeller is built from it, without a pass over the logs
(`window_from_daily`: a (user, day) the table has no window for had no click in the window).
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import numpy as np

from core import logs as logs_lib
from core.label_rules import SECONDS_PER_DAY, NdtParams, RuleConfig, utc_date
from core.lookup_tables import static_table
from core.stats_artifact import StatsArtifact

_DAY_SLOTS = 1 << 24  # window table key: user index * _DAY_SLOTS + (day - first day)


# T2 window counts -----------------------------------------------------------------------------------
# Users are keyed by the 63-bit FarmHash fingerprint of their id (computed in-graph, so counting
# never turns ids into Python objects). Two users share counts only if their fingerprints
# collide: probability about n_users^2 / 2^64 (1e-7 for 1M users).
FINGERPRINT_BUCKETS = (1 << 63) - 1


def user_fingerprint(user_ids):
    """int64 fingerprints of user ids (a string Tensor or array of str/bytes), [n] -> [n]."""
    import tensorflow as tf

    return tf.strings.to_hash_bucket_fast(user_ids, FINGERPRINT_BUCKETS)


@dataclasses.dataclass(frozen=True, eq=False)
class UserDays:
    """Counts per (user fingerprint, UTC day): int64 arrays [rows] of one length. `count` is
    clicks that day (`count_user_days`, `artifact_counts`) or clicks over the T2 window ending
    that day (`window_clicks`, `window_from_daily`). NumPy, not pandas: training never imports
    pandas (0.3 s of its start)."""

    user_fp: np.ndarray
    day: np.ndarray
    count: np.ndarray

    @property
    def rows(self) -> int:
        return len(self.user_fp)

    @classmethod
    def of(cls, user_fp, day, count) -> "UserDays":
        return cls(np.asarray(user_fp, np.int64).reshape(-1), np.asarray(day, np.int64).reshape(-1),
                   np.asarray(count, np.int64).reshape(-1))

    def summed(self, combine=np.add) -> tuple["UserDays", np.ndarray]:
        """(rows with equal (user_fp, day) added into one (or combined by the ufunc `combine`,
        e.g. np.maximum), sorted by user_fp then day; int64 [rows] index of each of this
        table's rows in it)."""
        if not self.rows:
            return self, np.zeros(0, np.int64)
        order = np.lexsort((self.day, self.user_fp))
        fp, day = self.user_fp[order], self.day[order]
        new = np.ones(len(fp), bool)
        new[1:] = (fp[1:] != fp[:-1]) | (day[1:] != day[:-1])
        starts = np.flatnonzero(new)
        inverse = np.empty(len(fp), np.int64)
        inverse[order] = np.cumsum(new) - 1
        return UserDays(fp[starts], day[starts],
                        combine.reduceat(self.count[order], starts)), inverse


def _concat(tables) -> UserDays:
    tables = list(tables)
    return UserDays(*(np.concatenate([getattr(t, c) for t in tables] + [np.zeros(0, np.int64)])
                      for c in ("user_fp", "day", "count")))


def count_user_days(batches):
    """Clicks per (user fingerprint, UTC day) and the set of covered days, from batches of numpy
    dicts with `user_fp`, `day` and `click` (see `labeler_for`). Every (user, day) with an
    impression gets a row. Returns (UserDays of clicks, sorted by user and day; set of days)."""
    parts, days = [], set()
    for batch in batches:
        parts.append(UserDays.of(batch["user_fp"], batch["day"], batch["click"]).summed()[0])
        days.update(np.unique(batch["day"]).tolist())
    return _concat(parts).summed()[0], days


def artifact_counts(artifact: StatsArtifact) -> UserDays:
    """The artifact's user table as UserDays of clicks."""
    keys = list(artifact.user_day_clicks)
    users = [u for u, _ in keys]
    fps = user_fingerprint(np.asarray(users, dtype=object)).numpy() if users else []
    return UserDays.of(fps, [d for _, d in keys], list(artifact.user_day_clicks.values()))


def held_days(input_day_rows, artifact_day_rows) -> tuple[set, dict]:
    """The UTC days whose T2 counts come from the logs being labelled alone: the days of
    `input_day_rows` ({day: rows of the input}) with at least as many rows as the stats artifact
    has of them (`artifact_day_rows`, {day: rows}; None for an artifact that did not record
    them: every day of the input, SPEC §3's letter). A day the input holds fewer rows of may be
    a part of a day the artifact saw more of (late rows filed with the next day's logs, one
    hour of a day) or other users' rows of it (a held-out sample, a region): each user's
    count of it is the larger of the input's and the artifact's (`window_clicks`). Returns
    (held days, {day: (input rows, artifact rows)} of the other days of the input)."""
    held, left = set(), {}
    for day, rows in input_day_rows.items():
        seen = 0 if artifact_day_rows is None else artifact_day_rows.get(day, 0)
        if rows >= seen:
            held.add(int(day))
        else:
            left[int(day)] = (int(rows), int(seen))
    return held, left


def t2_days_note(left: dict) -> str | None:
    """The note a job prints when `held_days` did not give some days of its input to it alone
    (`left`, {day: (input rows, artifact rows)}), or None."""
    if not left:
        return None
    days = sorted(left)
    shown = ", ".join(f"{utc_date(d)} ({left[d][0]:,} row{'s' if left[d][0] != 1 else ''} "
                      f"here, {left[d][1]:,} in the stats window)" for d in days[:3])
    more = f" and {len(days) - 3} more day(s)" if len(days) > 3 else ""
    return (f"rule T2 takes each user's clicks on {shown}{more} as the larger of these logs' "
            "count and the stats artifact's: a UTC day counts from the logs being labelled "
            "alone only when they hold at least as many of its rows as the stats job saw (late "
            "rows of a "
            "day filed with the next day's logs then add nothing to the artifact's count; a "
            "user the stats window lacks keeps these logs' count)")


def t2_gap_days(input_day_rows, artifact_day_rows, light_user_days: int) -> list[int]:
    """The UTC days that rule T2's windows of the input's days reach (`light_user_days` long,
    each ending with its day) of which neither the input (`input_day_rows`, {day: rows}) nor
    the stats artifact (`artifact_day_rows`; None: an artifact that did not record its days,
    then []) holds a row, after the first day either holds: a day between the artifact's last
    and the input's first (evaluation logs of days 11-13 with statistics of days 0-9), or a
    day no log has (an outage). Every user's clicks on them count as 0, so more users pass as
    light than did; ascending."""
    if artifact_day_rows is None or not input_day_rows:
        return []
    known = {int(d) for d in input_day_rows} | {int(d) for d in artifact_day_rows}
    first, reached = min(known), set()
    for day in input_day_rows:
        reached.update(range(max(first, int(day) - light_user_days + 1), int(day)))
    return sorted(reached - known)


def t2_gap_note(days) -> str | None:
    """The note a job prints on `t2_gap_days`' days, or None."""
    if not days:
        return None
    shown = ", ".join(utc_date(d) for d in days[:3])
    more = f" and {len(days) - 3} more day(s)" if len(days) > 3 else ""
    return (f"rule T2's windows of these logs' days reach UTC {shown}{more}, of which neither "
            "these logs nor the stats artifact holds a row: every user's clicks there count as "
            "0, so more users may pass as light (T2) than were; if those days' logs exist, give "
            "them with these logs (or to the stats job)")


# A day's rows in the logs past the stats artifact's by more than this share of them: late
# rows filed days later, a few records replayed, do not make a note.
SHORT_ARTIFACT_SHARE = 0.05


def short_artifact_days(input_day_rows, artifact_day_rows) -> dict:
    """{UTC day: (input rows, artifact rows)} of the days the stats artifact saw whole (neither
    its first nor its last day, which may be slivers: late rows, a window cut mid-day) of
    which the input holds more rows than it saw, by more than SHORT_ARTIFACT_SHARE of them
    (`input_day_rows`, `artifact_day_rows`: {day: rows}; None: an artifact that did not record
    them, {}): the
    artifact was made from other logs, a part of these (a sample, a region) or before they
    were complete, and its rules and rule T2's counts of other days are those logs'."""
    if not artifact_day_rows or len(artifact_day_rows) < 3:
        return {}
    first, last = min(artifact_day_rows), max(artifact_day_rows)
    return {int(day): (int(rows), int(artifact_day_rows[day]))
            for day, rows in input_day_rows.items()
            if first < day < last
            and 0 < artifact_day_rows.get(day, 0) * (1 + SHORT_ARTIFACT_SHARE) < rows}


def short_artifact_note(short: dict) -> str | None:
    """The note a job prints on `short_artifact_days`' days, or None."""
    if not short:
        return None
    days = sorted(short)
    shown = ", ".join(f"{utc_date(d)} ({short[d][0]:,} rows here, {short[d][1]:,} in the stats "
                      "window)" for d in days[:3])
    more = f" and {len(days) - 3} more day(s)" if len(days) > 3 else ""
    return (f"these logs hold more rows of {shown}{more} than the stats job saw: was the stats "
            "artifact made from other logs, a part of these, or before they were complete? Its "
            "rules (mu, sigma, bin edges, item P10s) and rule T2's counts of days these logs do "
            "not hold are those logs'; unless it is of a sample of them by design, run "
            "pipelines.stats on these logs' days")


def clicks_per_day(daily: UserDays) -> dict:
    """{UTC day: clicks} from clicks per (user, day)."""
    days, at = np.unique(daily.day, return_inverse=True)
    return dict(zip(days.tolist(), np.bincount(at, daily.count, len(days)).astype(int).tolist()))


def day_rows_of(file_day_rows) -> dict:
    """{UTC day: rows} from {(file index, UTC day): rows}."""
    days: dict = {}
    for (_, day), rows in file_day_rows.items():
        days[int(day)] = days.get(int(day), 0) + int(rows)
    return days


def window_clicks(labelled: UserDays, covered_days: set, history: UserDays,
                  window_days: int) -> UserDays:
    """For every (user_fp, day) of `labelled` (clicks that day): the user's clicks over the
    `window_days` days ending with `day`. Covered days (`held_days`) count from `labelled`;
    other days of `labelled` count the larger of its and `history`'s clicks of the user that
    day (a sliver of a day `history` saw whole adds nothing; a user `history` lacks keeps its
    own clicks); days `labelled` lacks count from `history`. Returns UserDays of window
    clicks, row for row of `labelled`."""
    window = np.zeros(labelled.rows, np.int64)
    if not labelled.rows or window_days < 1:
        return UserDays(labelled.user_fp, labelled.day, window)
    covered = np.fromiter(covered_days, np.int64, len(covered_days))
    # Only the history a window reaches (the artifact's whole table is given): a smaller sort.
    reached = ((history.day >= labelled.day.min() - window_days + 1)
               & (history.day <= labelled.day.max()) & ~np.isin(history.day, covered))
    held = np.isin(labelled.day, covered)
    if held.all():  # the usual case: one sort, as no day takes the larger of two counts
        counts, _ = _concat([labelled, _rows(history, reached)]).summed()
    else:
        # One row per (user, day) on each side (history's summed), then on a day not held
        # the larger count of the two (on a day only history has, its count).
        past, _ = _rows(history, reached).summed()
        partial, _ = _concat([_rows(labelled, ~held), past]).summed(np.maximum)
        counts, _ = _concat([_rows(labelled, held), partial]).summed()
    if counts.rows:
        # One int64 key per (user, day): user rank * days + day rank, over the users of
        # `counts` and the days any window asks for (ranks, not offsets: a stray far-off day
        # cannot overflow the key). `counts` is sorted by user then day: its keys ascend.
        users = np.unique(counts.user_fp)
        asked = labelled.day[None, :] - np.arange(window_days, dtype=np.int64)[:, None]
        days = np.unique(np.concatenate([counts.day, asked.ravel()]))
        keys = np.searchsorted(users, counts.user_fp) * len(days) + np.searchsorted(
            days, counts.day)
        where = np.minimum(np.searchsorted(users, labelled.user_fp), len(users) - 1)
        known = users[where] == labelled.user_fp
        for back in range(window_days):
            query = where * len(days) + np.searchsorted(days, asked[back])
            at = np.minimum(np.searchsorted(keys, query), len(keys) - 1)
            window += np.where(known & (keys[at] == query), counts.count[at], 0)
    return UserDays(labelled.user_fp, labelled.day, window)


def _rows(table: UserDays, keep: np.ndarray) -> UserDays:
    return UserDays(table.user_fp[keep], table.day[keep], table.count[keep])


def window_from_daily(daily: UserDays, window_days: int) -> UserDays:
    """Every (user_fp, day) whose window of `window_days` days ending with it holds a click,
    with that window's clicks, from daily clicks; any other (user, day) has a window of 0."""
    if window_days < 1 or not daily.rows:
        return UserDays.of([], [], [])
    return _concat(UserDays(daily.user_fp, daily.day + back, daily.count)
                   for back in range(window_days)).summed()[0]


# The in-graph labeller ------------------------------------------------------------------------------
class Labeler:
    """Adds `valid_read`, `valid_read_rule`, `ndt`, `log_dwell`, `dwell_bin` to a batch dict of
    a `read_logs` dataset (Tensors of shape [batch]); use with `dataset.map(labeler)`.

    Lookup tables (item P10, 7-day click windows) are built once from the artifact and from the
    logs being labelled (`count_user_days`). `unclicked_dwell_zeroed`: rows of those logs whose
    dwell > 0 on an unclicked row was treated as 0 (`labeler_for` with allow_unclicked_dwell).
    """

    unclicked_dwell_zeroed = 0
    # {UTC day: (input rows, artifact rows)}: days the input holds fewer rows of than the
    # artifact, whose T2 counts are the larger of the two (`held_days`; `t2_days_note`); None
    # on a labeller built from the artifact alone.
    t2_days_from_artifact: dict | None = None
    # {UTC day: (input rows, artifact rows)}: days the artifact saw whole, of which the input
    # holds more rows (`short_artifact_days`): made from other logs? ({}: not counted.)
    short_artifact_days: dict = {}
    # UTC days T2's windows reach that neither the input nor the artifact holds
    # (`t2_gap_days`; []: not counted).
    t2_gap_days: list = []
    rows_per_file = None  # int64 [files] of the counted logs (`labeler_for`)
    day_clicks = None  # {UTC day: clicks} of the counted logs (`labeler_for`)
    file_day_rows = None  # (file index, UTC day) -> rows of the counted logs
    files = ()  # the `LogFile`s of the counted logs, which file_day_rows' indices name
    counted = True  # False: built from the artifact's counts, without a pass over the logs

    def __init__(self, artifact: StatsArtifact, window, rules: RuleConfig | None = None,
                 ndt: NdtParams | None = None, missing_is_zero: bool = False):
        """`window`: UserDays of window clicks from `window_clicks` (every (user, day) of the
        logs to label has a row: a missing one is an error) or, with `missing_is_zero`, from
        `window_from_daily` (a missing (user, day) has a window of 0)."""
        import tensorflow as tf

        self.rules = rules or artifact.rules
        self.ndt = ndt or artifact.ndt
        self.x_l = float(artifact.x_l if self.rules.t1_threshold is None
                         else self.rules.t1_threshold)
        self.interior_edges = tf.constant(artifact.dwell_bin_edges[1:-1], tf.float64)
        items = list(artifact.item_p10)
        self.item_p10 = static_table(items, [artifact.item_p10[i] for i in items], tf.string,
                                     tf.float64, np.nan)
        # Two int-keyed lookups: user fingerprint -> dense index, then index and day -> count.
        fps = np.unique(window.user_fp)
        self.first_day = int(window.day.min()) if window.rows else 0
        self.user_index = static_table(fps, np.arange(len(fps)), tf.int64, tf.int64, -1)
        keys = np.searchsorted(fps, window.user_fp) * _DAY_SLOTS + (window.day - self.first_day)
        self.missing = 0 if missing_is_zero else -1
        self.window = static_table(keys, window.count, tf.int64, tf.int64, self.missing)

    def __call__(self, batch: dict) -> dict:
        import tensorflow as tf

        dwell = tf.cast(batch["dwell_time"], tf.float64)
        clicked = tf.equal(batch["click"], 1)
        day = tf.math.floordiv(batch["timestamp"], SECONDS_PER_DAY)
        user = self.user_index.lookup(user_fingerprint(batch["user_id"]))
        offset = day - self.first_day
        window = self.window.lookup(user * _DAY_SLOTS + offset)
        outside = (user < 0) | (offset < 0) | (offset >= _DAY_SLOTS)
        window = tf.where(outside, tf.constant(self.missing, tf.int64), window)
        if self.missing < 0:
            tf.debugging.assert_non_negative(
                window, message="a (user, day) of the batch is missing from the T2 window "
                                "table: count_user_days must see the same logs as the labeller")
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
    and day for rule T2, unless they are the files `artifact` was computed from (module
    docstring)."""
    rules = rules or artifact.rules
    file_day_rows = artifact.counts_for([f.path for f in source.files])
    # Rows the stats job zeroed are errors here without --allow_unclicked_dwell: the counting
    # pass finds them (with their file and row) before anything is written.
    if artifact.unclicked_dwell_zeroed and not allow_unclicked_dwell:
        file_day_rows = None
    if file_day_rows is not None:
        daily = artifact_counts(artifact)
        labeler = Labeler(artifact, window_from_daily(daily, rules.light_user_days), rules, ndt,
                          missing_is_zero=True)
        labeler.day_clicks = clicks_per_day(daily)
        labeler.unclicked_dwell_zeroed = artifact.unclicked_dwell_zeroed
        labeler.file_day_rows, labeler.files = file_day_rows, tuple(source.files)
        labeler.t2_gap_days = t2_gap_days(day_rows_of(file_day_rows), artifact.day_rows,
                                          rules.light_user_days)
        labeler.rows_per_file = np.zeros(len(source.files), np.int64)
        for (file, _), n in file_day_rows.items():
            labeler.rows_per_file[file] += n
        labeler.counted = False
        return labeler
    counted = count_source(source, batch_size, allow_unclicked_dwell)
    held, left = held_days(day_rows_of(counted.file_day_rows), artifact.day_rows)
    window = window_clicks(counted.user_days, held, artifact_counts(artifact),
                           rules.light_user_days)
    labeler = Labeler(artifact, window, rules, ndt)
    labeler.t2_days_from_artifact = left
    labeler.short_artifact_days = short_artifact_days(day_rows_of(counted.file_day_rows),
                                                      artifact.day_rows)
    labeler.t2_gap_days = t2_gap_days(day_rows_of(counted.file_day_rows), artifact.day_rows,
                                      rules.light_user_days)
    labeler.day_clicks = clicks_per_day(counted.user_days)
    labeler.unclicked_dwell_zeroed = counted.unclicked_dwell_zeroed
    labeler.rows_per_file = counted.rows_per_file
    labeler.file_day_rows, labeler.files = counted.file_day_rows, tuple(source.files)
    labeler.counted = True
    return labeler


class SourceCounts(NamedTuple):
    """What the counting pass over some logs finds (`count_source`)."""

    user_days: UserDays  # clicks per (user, day), as `count_user_days`
    unclicked_dwell_zeroed: int  # unclicked rows whose dwell > 0 was treated as 0
    rows_per_file: np.ndarray  # int64 [files]: rows of each of `source.files`
    file_day_rows: dict  # (file index, UTC day) -> rows


def count_source(source, batch_size: int = 8192,
                 allow_unclicked_dwell: bool = False) -> SourceCounts:
    """The counting pass of rule T2 over the logs of `source` (a `LogSource`); it also counts
    each file's rows (multi-worker training deals files to workers by them)."""
    import tensorflow as tf

    # Order does not matter for counting: two files at a time, three columns parsed, and only
    # integers leave the graph.
    dataset = source.dataset(batch_size, allow_unclicked_dwell=allow_unclicked_dwell,
                             columns=("user_id", "timestamp", "click"), parallel_files=2,
                             with_source=True)
    zeroed = [0]  # unclicked rows whose dwell > 0 was treated as 0 (--allow_unclicked_dwell)
    file_day_rows: dict = {}

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
            logs_lib.add_file_day_rows(file_day_rows, batch.pop("file"), batch["day"])
            yield batch

    keys = dataset.map(tf.autograph.experimental.do_not_convert(key))
    try:
        counts, _ = count_user_days(counted(keys.as_numpy_iterator()))
    except tf.errors.OpError as error:
        # A bad row met first by this pass is the InputError naming its file, row and column,
        # as the jobs' own reads raise it (a library caller got TensorFlow's error).
        from core import log_diagnosis

        raise (log_diagnosis.translate_error(error) or error) from None
    rows_per_file = np.zeros(len(source.files), np.int64)
    for (file, _), n in file_day_rows.items():
        rows_per_file[file] += n
    return SourceCounts(counts, zeroed[0], rows_per_file, file_day_rows)
