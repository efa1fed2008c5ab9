"""The stats artifact (SPEC §3): its layout, what it holds, and reading it into `StatsArtifact`.

The statistics job (`pipelines.stats`) computes the pre-aggregates on Apache Beam and writes the
artifact through `stats_json` and the table layout below; everything downstream reads it once,
with `load_artifact`, into a typed `StatsArtifact`.

    stats.json            format_version, mu, sigma, x_l, x_h, ndt {offset, tau, A, B, t_max,
                          epsilon, preset}, num_bins, dwell_bin_edges (s, num_bins + 1),
                          dwell_bin_medians (s, num_bins; null for an empty bin), bin_values
                          (median | midpoint: what DwellTargets values each bin at), rows, clicks,
                          clicks_with_dwell, rules {min_dwell, t1_threshold, light_user_days,
                          light_user_clicks, min_item_records}, numeric_features {name: {mean,
                          std} of log1p(max(x, 0)), raw_mean, raw_std (of x itself),
                          nonzero_clicked, nonzero_unclicked (rows with x != 0), negative (rows
                          with x < 0)}, items_with_p10,
                          clicked_items (items with a clicked dwell > 0), clicked_users (users
                          with a click), feature_values {name: {distinct, at_least}} (distinct
                          values of each string or integer feature column but the ids, counted
                          up to DISTINCT_VALUES_CAP: at_least when it stopped there),
                          user_days, schema, inputs,
                          files [{path, bytes, mtime_ns, rows, day_rows {UTC day: rows}}]: each
                          file read, as it was (`file_record`; `StatsArtifact.counts_for`;
                          empty when a file is a URL or changed while read), day_rows {UTC
                          day: rows} of the whole input (rule T2's held days, `day_rows`)
    items/part-*.csv      item_id, clicks, p10: items with >= min_item_records clicks with
                          dwell > 0; p10 = numpy's linear-interpolation 10th percentile (s)
    user_days/part-*.csv  user_id, day, clicks: clicks per user per UTC day (day = unix
                          seconds // 86400), rows with clicks > 0

Definitions: mu and sigma are the mean and population standard deviation of ln(dwell) over
clicks with dwell > 0; x_l = exp(mu - sigma), x_h = exp(mu + sigma). Bin edges are exact
percentiles (`label_rules.dwell_bin_edges`) or given; each bin's median is the median of the
clicked dwells > 0 that fall in it. An empty bin has no median (null in stats.json, which stays
strict JSON). A bin's representative value (`DwellTargets.bin_values`: what expected dwell and
the dwell MAE in seconds use) is its median (`bin_values` "median", the default; an empty bin's
is the geometric mean of its edges, applied here once) or the midpoint of its edges
("midpoint", as ORCA's authors value their fixed bins).
"""

from __future__ import annotations

import csv
import dataclasses
import glob
import itertools
import json
import math
import os
from typing import Mapping

import numpy as np

from core.data_doubts import dwell_unit_doubt
from core.errors import InputError
from core.label_rules import NdtFitError, NdtParams, RuleConfig, assign_bins, dwell_bin_edges, fit_ndt

FORMAT_VERSION = 1
USER_DAY_COLUMNS = {"user_id": str, "day": np.int64, "clicks": np.int64}
ITEM_COLUMNS = {"item_id": str, "clicks": np.int64, "p10": float}
BIN_VALUES = ("median", "midpoint")


@dataclasses.dataclass(frozen=True)
class DwellTargets:
    """The dwell targets' scales that models are built with, from one stats artifact.

    log_dwell_mean, log_dwell_std: mu and sigma of ln(dwell) over clicks (the log-dwell tower
    predicts (log1p(T) - mean) / std); bin_edges: seconds [bins + 1]; bin_values: each bin's
    representative dwell in seconds [bins] (its median, an empty bin's the geometric mean of its
    edges; or the midpoint of its edges: the artifact's `bin_values`); bin_ndt: the NDT of each
    representative dwell [bins]."""

    log_dwell_mean: float = 0.0
    log_dwell_std: float = 1.0
    bin_edges: tuple[float, ...] = ()
    bin_values: tuple[float, ...] = ()
    bin_ndt: tuple[float, ...] = ()

    @property
    def num_bins(self) -> int:
        return len(self.bin_values)

    def to_json(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v
                for k, v in dataclasses.asdict(self).items()}

    @classmethod
    def from_json(cls, data: Mapping) -> "DwellTargets":
        data = dict(data)
        if "bin_medians" in data:  # model directories written before bin values had a choice
            data["bin_values"] = data.pop("bin_medians")
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclasses.dataclass(frozen=True)
class StatsArtifact:
    """A stats artifact, loaded (see the module docstring for each value).

    `item_p10`: item id -> P10 (s); `user_day_clicks`: (user id, UTC day number) -> clicks
    (empty when loaded with user_days=False)."""

    path: str
    mu: float
    sigma: float
    x_l: float
    x_h: float
    ndt: NdtParams
    rules: RuleConfig
    dwell_bin_edges: np.ndarray  # float64 [bins + 1], seconds
    dwell_bin_medians: tuple  # [bins] seconds, None for an empty bin (as stored)
    bin_values: str  # median | midpoint: how `targets` values each bin
    rows: int
    clicks: int
    numeric_features: dict  # name -> {"mean", "std"} of log1p(max(x, 0)), {"raw_mean",
    # "raw_std"} of x, non-zero row counts
    schema: dict  # the stats window's log schema (LogSchema.to_json())
    inputs: str
    item_p10: dict
    user_day_clicks: dict
    files: tuple = ()  # stats.json's file records (`file_record`), sorted by path
    unclicked_dwell_zeroed: int = 0
    # Users with a click and items with a clicked dwell (None in artifacts made before them).
    clicked_users: int | None = None
    clicked_items: int | None = None
    # stats.json's feature_values ({name: {distinct, at_least}}; {} in older artifacts)
    feature_values: dict = dataclasses.field(default_factory=dict)
    user_days_loaded: bool = True  # False: loaded without its user table
    # stats.json's day_rows ({UTC day: rows} of the whole input; None in older artifacts)
    input_day_rows: dict | None = None

    @property
    def log_types(self) -> dict[str, str]:
        """{column: type} of the logs this artifact was computed from, given or inferred (the
        label and training jobs type a column their own sample has no value of so). {} for
        an artifact without its schema."""
        return dict(self.schema.get("dtypes", {}))

    @property
    def column_types(self) -> dict[str, str]:
        """{column: type} given to the statistics job (--column_types; `log_schema.ReadConfig`):
        the label and training jobs read their logs so. {} when none were given."""
        return _given_types(self.schema)

    def counts_for(self, paths) -> dict | None:
        """{(file index, UTC day): rows} of `paths` when they are exactly the files this
        artifact was computed from, each once, unchanged (same real path, size, modification
        and change times, inode): then its user table holds their clicks per user and day, and
        a job labelling them needs no counting pass of its own. Else None."""
        if not self.files or not self.user_days_loaded or \
                any(record is None for record in self.files):
            return None
        records = {record["path"]: record for record in self.files}
        statuses = [file_status(path) for path in paths]
        if any(status is None for status in statuses):
            return None
        # The same set of files, none twice (two spellings or a link to one file included).
        if sorted(status["path"] for status in statuses) != sorted(records):
            return None
        counts = {}
        for index, status in enumerate(statuses):
            record = records[status["path"]]
            if any(record.get(key) != status[key]
                   for key in ("bytes", "mtime_ns", "ino", "ctime_ns")):
                return None
            for day, n in record["day_rows"].items():
                counts[(index, int(day))] = int(n)
        return counts

    @property
    def day_rows(self) -> dict | None:
        """{UTC day: rows} of the logs this artifact was computed from (stats.json's `day_rows`,
        or in artifacts made before it its files' records), or None when it recorded neither
        (`labeler.held_days` then takes every day of an input from the input)."""
        if self.input_day_rows is not None:
            return self.input_day_rows
        if not self.files or any(record is None or "day_rows" not in record
                                 for record in self.files):
            return None
        days: dict = {}
        for record in self.files:
            for day, rows in record["day_rows"].items():
                days[int(day)] = days.get(int(day), 0) + int(rows)
        return days

    @property
    def num_bins(self) -> int:
        return len(self.dwell_bin_edges) - 1

    @property
    def targets(self) -> DwellTargets:
        """The scales of the dwell targets (the empty-bin fallback applied)."""
        if self.bin_values == "midpoint":
            edges = self.dwell_bin_edges
            values = tuple(float(v) for v in (edges[:-1] + edges[1:]) / 2)
        else:
            values = representative_medians(self.dwell_bin_medians, self.dwell_bin_edges)
        return DwellTargets(
            log_dwell_mean=float(self.mu), log_dwell_std=float(self.sigma),
            bin_edges=tuple(float(e) for e in self.dwell_bin_edges), bin_values=values,
            bin_ndt=tuple(float(v) for v in self.ndt(np.asarray(values, np.float64))))

    def summary(self) -> dict:
        """What a model directory records of the artifact it was built with."""
        return {"path": os.path.abspath(self.path), "ndt": dataclasses.asdict(self.ndt),
                "dwell_bin_edges": [float(e) for e in self.dwell_bin_edges],
                "dwell_bin_medians": list(self.dwell_bin_medians),
                "bin_values": self.bin_values, "x_l": self.x_l, "x_h": self.x_h}


def representative_medians(medians, edges) -> tuple[float, ...]:
    """Bin medians (seconds) with an empty bin's (None or NaN) replaced by the geometric mean
    of its edges, so that expectations over the bins stay finite."""
    result = []
    for k, median in enumerate(medians):
        if median is None or not math.isfinite(float(median)):
            lo, hi = max(float(edges[k]), 1e-3), max(float(edges[k + 1]), 1e-3)
            median = math.sqrt(lo * hi)
        result.append(float(median))
    return tuple(result)


# Writing ------------------------------------------------------------------------------------------
# Distinct values counted per string or integer feature column, at most: enough to tell a
# column's hash buckets (1,024 by default) too few, in bounded memory per worker.
DISTINCT_VALUES_CAP = 1 << 16


def counted_value_columns(schema) -> list[str]:
    """The feature columns of `schema` (a `LogSchema`) whose distinct values the statistics job
    counts: string and integer ones (a categorical feature, or one a feature config may make
    categorical), not the ids, whose counts are `clicked_users` and `clicked_items`."""
    return [name for name in schema.feature_columns()
            if schema.dtypes[name] in ("string", "int64") and name not in ("user_id", "item_id")]


# Moments of no values: (count, mean, sum of squared deviations from the mean).
NO_MOMENTS = (0, 0.0, 0.0)


def central_moments(values: np.ndarray) -> tuple:
    """(count, mean, sum of squared deviations from the mean) of `values` [n], in float64."""
    x = np.asarray(values, np.float64)
    if len(x) == 0:
        return NO_MOMENTS
    mean = float(x.mean())
    return len(x), mean, float(np.square(x - mean).sum())


def combine_moments(a: tuple, b: tuple) -> tuple:
    """The `central_moments` of two groups of values together (Chan, Golub and LeVeque's
    pairwise update): unlike sums of squares, exact for values far from 0 (a timestamp-like
    column of 1.7e9 s with a spread of seconds), and independent of how the rows were split up
    to rounding."""
    (n_a, mean_a, m2_a), (n_b, mean_b, m2_b) = a, b
    n = n_a + n_b
    if n_a == 0 or n_b == 0:
        return b if n_a == 0 else a
    delta = mean_b - mean_a
    return n, mean_a + delta * n_b / n, m2_a + m2_b + delta * delta * n_a * n_b / n


# A deviation below this share of the mean's magnitude (at least 1) is rounding in the mean of a
# constant column, not spread: it is written as 0 (so a reader standardizes by 1, not by 1e-16).
CONSTANT_DEVIATION = 1e-12


def mean_and_deviation(moments: tuple) -> tuple[float, float]:
    """(mean, population standard deviation) of `central_moments`; (0, 0) for no values and a
    deviation of 0 for a constant column (CONSTANT_DEVIATION)."""
    n, mean, m2 = moments
    if not n:
        return 0.0, 0.0
    std = float(np.sqrt(max(m2, 0.0) / n))
    return float(mean), std if std > CONSTANT_DEVIATION * max(1.0, abs(mean)) else 0.0


def stats_json(dwell: np.ndarray, *, rows: int, clicks: int, log1p_moments: Mapping,
               unclicked_dwell_zeroed: int, raw_moments: Mapping, numeric_counts: Mapping,
               distinct_values: Mapping,
               rules: RuleConfig, ndt_preset: str, t_max: float | None = None,
               epsilon: float | None = None, ndt_offset=None, ndt_tau=None, ndt_a=None, ndt_b=None,
               num_bins: int = 8, bin_edges=None, bin_values: str = "median",
               schema: dict) -> dict:
    """stats.json's content (everything but the table counts and the inputs).

    dwell: float [clicks with dwell > 0], sorted (so that the sums, and the artifact, do not
    depend on how the work was split); log1p_moments and raw_moments: name ->
    `central_moments` of log1p(max(x, 0)) (mean, std) and of x itself (raw_mean, raw_std: the
    `standardize` transform's); numeric_counts: name -> the rows with x != 0 among clicked and
    among unclicked rows and the rows with x < 0; bin_edges: explicit edges in
    seconds, or None for percentiles; distinct_values: name -> distinct values counted (up to
    DISTINCT_VALUES_CAP, or past it); bin_values: median | midpoint (module docstring)."""
    if bin_values not in BIN_VALUES:
        raise InputError(f"bin_values must be one of {', '.join(BIN_VALUES)}, not {bin_values!r}")
    if rows == 0:
        raise InputError("the input has no rows")
    if len(dwell) < 2:
        raise InputError(f"the input has {len(dwell)} click(s) with dwell > 0; the statistics "
                         "need at least 2")
    ln = np.log(dwell)
    mu = float(ln.mean())
    sigma = float(np.sqrt(((ln - mu) ** 2).mean()))
    x_l, x_h = float(np.exp(mu - sigma)), float(np.exp(mu + sigma))
    try:
        ndt = fit_ndt(ndt_preset, x_l=x_l, x_h=x_h, t_max=t_max, epsilon=epsilon,
                      offset=ndt_offset, tau=ndt_tau, A=ndt_a, B=ndt_b)
    except NdtFitError as error:
        doubt = dwell_unit_doubt(mu)
        if doubt is None:
            raise
        raise InputError(f"{error}; {doubt}") from None
    if bin_edges is not None:  # checked by the job's config (`StatsConfig`)
        edges = np.asarray(bin_edges, float)
    else:
        edges = dwell_bin_edges(dwell, num_bins)
    bins = assign_bins(dwell, edges)
    medians = [float(np.median(dwell[bins == b])) if np.any(bins == b) else None
               for b in range(len(edges) - 1)]
    numeric = {}
    for name, moments in sorted(log1p_moments.items()):
        numeric[name] = dict(zip(("mean", "std"), mean_and_deviation(moments)))
        numeric[name].update(zip(("nonzero_clicked", "nonzero_unclicked", "negative"),
                                 map(int, numeric_counts[name])))
        numeric[name].update(zip(("raw_mean", "raw_std"), mean_and_deviation(raw_moments[name])))
    return {
        "format_version": FORMAT_VERSION,
        "mu": mu, "sigma": sigma, "x_l": x_l, "x_h": x_h,
        "ndt": dataclasses.asdict(ndt),
        "num_bins": len(edges) - 1,
        "dwell_bin_edges": edges.tolist(),
        "dwell_bin_medians": medians,
        "bin_values": bin_values,
        "rows": rows, "clicks": clicks, "clicks_with_dwell": int(len(dwell)),
        "unclicked_dwell_treated_as_zero": unclicked_dwell_zeroed,
        "rules": dataclasses.asdict(rules),
        "numeric_features": numeric,
        "feature_values": {name: {"distinct": min(n, DISTINCT_VALUES_CAP),
                                  "at_least": n >= DISTINCT_VALUES_CAP}
                           for name, n in sorted(distinct_values.items())},
        "schema": schema,
    }


def file_status(path: str) -> dict | None:
    """What identifies a local input file's contents without reading it: {path (real), bytes,
    mtime_ns, ino, ctime_ns}; None for a URL (gs://, hdfs://, ...) or a file that cannot be
    stat'ed, which is then never taken as unchanged. ino and ctime_ns are set by the
    filesystem on every write and rename, so a copy that preserves size and mtime (`cp -p`,
    `rsync -t`, tar) is still a different file."""
    if "://" in path:
        return None
    try:
        status = os.stat(path)
    except OSError:
        return None
    return {"path": os.path.realpath(path), "bytes": int(status.st_size),
            "mtime_ns": int(status.st_mtime_ns), "ino": int(status.st_ino),
            "ctime_ns": int(status.st_ctime_ns)}


def file_record(path: str, day_rows: Mapping[int, int], before: dict | None) -> dict | None:
    """What the artifact records of an input file: its `file_status` (taken `before` it was
    read and again now: a file that changed while it was read, or a URL, gets no record) and
    its rows per UTC day, so that a later job can tell it is the same file."""
    after = file_status(path)
    if before is None or after != before:
        return None
    return {**after, "rows": int(sum(day_rows.values())),
            "day_rows": {str(day): int(n) for day, n in sorted(day_rows.items())}}


# Reading ------------------------------------------------------------------------------------------
def read_table(directory: str, columns: Mapping[str, type]) -> dict[str, np.ndarray]:
    """Reads the CSV shards `directory/part-*.csv` (header line, then rows) into arrays
    {column: [rows]} of `columns`' types (ids as str objects)."""
    shards = [read_table_shard(s, columns) for s in table_shards(directory)]
    if not shards:
        return {c: np.zeros(0, object if t is str else t) for c, t in columns.items()}
    return {c: np.concatenate([s[c] for s in shards]) for c in columns}


def table_shards(directory: str) -> list[str]:
    """The CSV shards of an artifact table, sorted: `directory/part-*.csv`."""
    return sorted(glob.glob(os.path.join(glob.escape(directory), "part-*.csv")))


def first_ids(directory: str, column: str, count: int) -> list[str]:
    """The first `count` values of an artifact table's id `column` ('item_id', 'user_id'), in
    shard order, as written (text); fewer when the table holds fewer rows. Reads only as many
    lines as that takes."""
    ids: list[str] = []
    for shard in table_shards(directory):
        with open(shard, newline="", encoding="utf-8") as handle:
            reader = csv.reader(handle)
            header = next(reader, [])
            if column not in header:
                continue
            at = header.index(column)
            ids += [row[at] for row in itertools.islice(reader, count - len(ids))
                    if len(row) > at]
        if len(ids) >= count:
            break
    return ids


def read_table_shard(path: str, columns: Mapping[str, type]) -> dict[str, np.ndarray]:
    """One shard of an artifact table as arrays {column: [rows]} (ids stay text, "" included;
    blank lines are skipped).

    Python's csv module, not pandas: a training run then never imports pandas (0.3 s of its
    start), and floats are parsed correctly rounded. InputError names the shard, line and column
    of a row with another number of fields than the header or a value not of its column's type."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:  # as the statistics job writes
            reader = csv.reader(handle)
            header = next(reader, [])
            rows = [row for row in reader if row]
    except (OSError, UnicodeDecodeError) as error:
        raise InputError(f"cannot be read as a table shard of the stats artifact ({error}); "
                         "recompute the statistics with python -m pipelines.stats",
                         file=path) from None
    missing = [c for c in columns if c not in header]
    if missing:
        raise InputError(f"has no column(s) {', '.join(missing)} (header: {','.join(header)}); "
                         "recompute the statistics with python -m pipelines.stats", file=path)
    if any(len(row) != len(header) for row in rows):
        line, row = next((n, r) for n, r in _numbered_rows(path) if len(r) != len(header))
        raise InputError(f"has {len(row)} fields; the header has {len(header)}", file=path,
                         row=line)
    fields = list(zip(*rows)) if rows else [()] * len(header)
    out = {}
    for column, kind in columns.items():
        at = header.index(column)
        values = fields[at]
        if kind is str:
            out[column] = np.array(values, dtype=object).reshape(len(values))
            continue
        parse = float if kind is float else int
        try:
            out[column] = np.fromiter(map(parse, values), kind, len(values))
        except (ValueError, OverflowError):
            line, value = next((n, r[at]) for n, r in _numbered_rows(path)
                               if not _parses(r[at], parse))
            expected = "a number" if kind is float else "an integer (64-bit)"
            raise InputError(f"{value!r} is not {expected}", file=path, row=line,
                             column=column) from None
    return out


def _numbered_rows(path: str):
    """(line number where it starts, fields) of a table shard's non-blank rows after its header
    (a quoted field may span lines)."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        line = reader.line_num + 1
        for row in reader:
            if row and line > 1:
                yield line, row
            line = reader.line_num + 1


def _parses(value: str, parse) -> bool:
    try:
        number = parse(value)
    except ValueError:
        return False
    return parse is not int or -2**63 <= number < 2**63


def given_column_types(path: str) -> dict[str, str]:
    """{column: type} given to the statistics job of the artifact at `path` (--column_types),
    from its stats.json alone (the tables are not read); {} when none were given."""
    return _given_types(read_stats_json(path).get("schema", {}))


def log_types(path: str) -> dict[str, str]:
    """{column: type} of the logs the artifact at `path` was computed from (`StatsArtifact.
    log_types`), from its stats.json alone; {} for an artifact without its schema."""
    return dict(read_stats_json(path).get("schema", {}).get("dtypes", {}))


def _given_types(schema: dict) -> dict[str, str]:
    """stats.json's `schema.given` ({column: type}; absent when no type was given)."""
    return dict(schema.get("given", {}))


def read_stats_json(path: str) -> dict:
    """stats.json of the artifact directory `path`, checked; InputError if it is missing, not
    JSON or of another format version."""
    stats_path = os.path.join(path, "stats.json")
    if not os.path.isfile(stats_path):
        raise InputError(f"{path} is not a stats artifact (no stats.json); make one with "
                         "python -m pipelines.stats")
    try:
        with open(stats_path) as handle:
            stats = json.load(handle)
    except ValueError as error:
        raise InputError(f"is not valid JSON ({error})", file=stats_path) from None
    if not isinstance(stats, dict):
        raise InputError("is not a stats.json (a JSON object); recompute the statistics with "
                         "python -m pipelines.stats", file=stats_path)
    version = stats.get("format_version")
    if version != FORMAT_VERSION:
        raise InputError(f"has format_version {version!r}; this dwellrank reads version "
                         f"{FORMAT_VERSION}: recompute the statistics with python -m "
                         "pipelines.stats", file=stats_path)
    return stats


def load_artifact(path: str, *, user_days: bool = True) -> StatsArtifact:
    """Loads a stats artifact directory; InputError if it is missing or of another version.

    `user_days=False` leaves the user table out (`user_day_clicks` is then empty): it grows with
    users x days of the stats window, and the Beam labelling engine joins it by key instead."""
    stats = read_stats_json(path)
    items = read_table(os.path.join(path, "items"), ITEM_COLUMNS)
    users = (read_table(os.path.join(path, "user_days"), USER_DAY_COLUMNS) if user_days
             else {c: np.zeros(0, t) for c, t in USER_DAY_COLUMNS.items()})
    # A table with a shard lost or cut short in a copy reads without complaint, and its rules
    # (T2, T3) would then label from part of it: its rows are checked against stats.json's.
    _check_table_rows(path, "items", len(items["item_id"]), stats.get("items_with_p10"))
    if user_days:
        _check_table_rows(path, "user_days", len(users["user_id"]), stats.get("user_days"))
    elif stats.get("user_days") and not table_shards(os.path.join(path, "user_days")):
        _check_table_rows(path, "user_days", 0, stats.get("user_days"))
    try:
        return _artifact(path, stats, items, users, user_days)
    except (KeyError, TypeError, ValueError) as error:
        what = f"no {error}" if isinstance(error, KeyError) else str(error)
        raise InputError(f"is damaged ({what}); recompute the statistics with python -m "
                         "pipelines.stats", file=os.path.join(path, "stats.json")) from None


def _check_table_rows(path: str, table: str, rows: int, recorded) -> None:
    """InputError unless the artifact's `table` read `rows` rows, as stats.json records."""
    if rows != recorded:
        raise InputError(f"{table}/ holds {rows:,} rows where stats.json records {recorded}: "
                         "the artifact is incomplete (a shard lost or cut short in a copy?); "
                         "copy it whole or recompute the statistics with python -m "
                         "pipelines.stats", file=os.path.join(path, table))


def _artifact(path: str, stats: dict, items: dict, users: dict, user_days: bool):
    """The StatsArtifact of a read stats.json and tables (`load_artifact`)."""
    return StatsArtifact(
        path=path, mu=float(stats["mu"]), sigma=float(stats["sigma"]), x_l=float(stats["x_l"]),
        x_h=float(stats["x_h"]), ndt=NdtParams(**stats["ndt"]),
        rules=RuleConfig(**stats["rules"]),
        dwell_bin_edges=np.asarray(stats["dwell_bin_edges"], float),
        dwell_bin_medians=tuple(stats["dwell_bin_medians"]),
        bin_values=str(stats.get("bin_values", "median")), rows=int(stats["rows"]),
        clicks=int(stats["clicks"]), numeric_features=dict(stats.get("numeric_features", {})),
        schema=dict(stats.get("schema", {})), inputs=str(stats.get("inputs", "")),
        item_p10=dict(zip(items["item_id"].tolist(), items["p10"].tolist())),
        user_day_clicks=dict(zip(zip(users["user_id"].tolist(), users["day"].tolist()),
                                 users["clicks"].tolist())),
        files=tuple(stats.get("files", ())), user_days_loaded=user_days,
        unclicked_dwell_zeroed=int(stats.get("unclicked_dwell_treated_as_zero", 0)),
        clicked_users=stats.get("clicked_users"), clicked_items=stats.get("clicked_items"),
        feature_values=dict(stats.get("feature_values", {})),
        input_day_rows=({int(day): int(n) for day, n in stats["day_rows"].items()}
                        if "day_rows" in stats else None))
