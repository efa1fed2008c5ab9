"""The statistics job (SPEC §3): the stats artifact, on Apache Beam or in one process.

The artifact's layout, its definitions and its reader are in `core.stats_artifact`; this job
computes the pre-aggregates and writes them through `stats_artifact.stats_json` and the table
layout there. It appears atomically (written to a temporary sibling and renamed into place).

Two engines run the same steps (`_preaggregate` per file group, the partitions' merges,
`table_shards.write_shard`, `_write_stats`): "beam" (the default, SPEC §3's DirectRunner or
any runner by pipeline options) and "local", which runs them in this process one file group after the other:
no Beam import nor pipeline start (about 1.4 s of a small job), no parallelism across groups
(each group's reader reads two files at once).

Scaling: the input files are read in groups (`_file_groups`: up to `--files_per_read` files of
together at most 64 MB on disk), each group read by one worker through one pipeline of the
training reader (`tf.data`) and pre-aggregated there (per-item dwell arrays,
per-user-day counts, moments, and each file's rows per day), so what is shuffled grows with
items and user-days; the item and user-day tables travel in `TABLE_PARTITIONS` partitions by a
stable hash of the id, one element per partition, merged per partition and written as one CSV
shard each by the worker that merged it (so the artifact's directory must be on a file system
the workers share, as it must for its atomic rename). The merge therefore runs on at most
`TABLE_PARTITIONS` workers, each holding its partition's share (1/32) of the clicked dwells
(8 bytes each) and of the user-days (a Python dict entry, about 150 bytes each): 100 MB per
400 M clicks, 470 MB per 100 M user-days; a larger constant spreads them wider. Exact
percentiles keep each click's dwell (8 bytes) until the combine: the global array for mu,
sigma, edges and medians, and the per-item arrays for P10.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import math
import os

import numpy as np

from core import label_rules, log_diagnosis, log_files, log_schema, logs, stats_artifact
from core.atomic import earlier_output
from core.errors import InputError, reraised_from_workers
from core.label_rules import SECONDS_PER_DAY
from core.settings import setting
from core.stats_artifact import BIN_VALUES
from pipelines.stats import table_shards
from pipelines.stats.table_shards import TABLE_PARTITIONS

DEFAULT_NUM_BINS = 8
MAX_BINS = 1000  # dwell-time bins: one softmax output each; more is a typo, not a model


@dataclasses.dataclass(frozen=True)
class StatsConfig:
    """Options of the statistics job; each is a flag of `pipelines.stats` (`core.settings`)."""

    rules: label_rules.RuleConfig = label_rules.RuleConfig()
    read: log_schema.ReadConfig = log_schema.ReadConfig()
    ndt_preset: str = setting("auto", "NDT parameter preset.", flag="ndt",
                              choices=("auto", "paper", "explicit"))
    # None: the fit's defaults (label_rules.AUTO_T_MAX, AUTO_EPSILON), so that a value given
    # where the fit does not read it can be told from the default and refused.
    t_max: float | None = setting(None, "auto: the range A - B of the NDT (default "
                                  f"{label_rules.AUTO_T_MAX:g}).", flag="ndt_t_max")
    epsilon: float | None = setting(None, "auto: the NDT's slope at x_h, which fits tau "
                                    f"(default {label_rules.AUTO_EPSILON:g}).",
                                    flag="ndt_epsilon")
    ndt_offset: float | None = setting(None, "NDT offset in seconds, >= 0 (auto default: x_l).")
    ndt_tau: float | None = setting(None, "NDT tau in seconds, > 0 (auto default: fitted).")
    ndt_a: float | None = setting(None, "NDT A (auto default: from t_max).")
    ndt_b: float | None = setting(None, "NDT B (auto default: so that ndt(0) = 0).")
    # None: DEFAULT_NUM_BINS, or the count --bin_edges gives (a value given beside them is
    # checked against it)
    num_bins: int | None = setting(None, f"Number of dwell-time bins (default "
                                   f"{DEFAULT_NUM_BINS}; with --bin_edges, theirs).")
    bin_edges: tuple[float, ...] | None = setting(
        None, "Explicit dwell-bin edges in seconds (num_bins + 1 increasing finite values; "
        "dwell above the last edge falls in the top bin) instead of percentiles.")
    bin_values: str = setting("median", "How each dwell bin is valued in seconds (expected "
                              "dwell, dwell MAE): median (of its clicked dwells) or midpoint (of "
                              "its edges, as ORCA's authors).", choices=BIN_VALUES)
    allow_unclicked_dwell: bool = setting(False, "Treat dwell > 0 on unclicked rows as 0 and "
                                          "count them, instead of failing.")
    files_per_read: int = setting(
        16, "Input files a worker reads through one pipeline (one reader built for the group, "
        "two files read at once); lower it to spread a few large files over more workers.")
    batch_size: int = 8192

    def __post_init__(self):
        self.rules.check()
        # (nan and inf are refused for every float flag: core.settings)
        for name in ("t_max", "epsilon", "ndt_tau"):
            if getattr(self, name) is not None and not getattr(self, name) > 0:
                raise InputError(f"--{name if name == 'ndt_tau' else 'ndt_' + name} must be > 0, "
                                 f"not {getattr(self, name)}")
        if self.ndt_offset is not None and not self.ndt_offset >= 0:
            raise InputError(f"--ndt_offset must be >= 0 seconds, not {self.ndt_offset}")
        given = [name for name in ("ndt_offset", "ndt_tau", "ndt_a", "ndt_b")
                 if getattr(self, name) is not None]
        if self.ndt_preset == "paper" and given:
            # The paper's parameters are fixed: a value beside them would be dropped unseen.
            paper = label_rules.PAPER_NDT
            raise InputError(f"--ndt=paper takes the paper's NDT parameters as they are "
                             f"(offset {paper['offset']:g} s, tau {paper['tau']:g} s, A "
                             f"{paper['A']:g}, B {paper['B']:g}); "
                             f"{', '.join('--' + n for n in given)} "
                             f"{'is' if len(given) == 1 else 'are'} not read with it: drop "
                             f"{'it' if len(given) == 1 else 'them'}, or use --ndt=auto "
                             "(they override the fit) or --ndt=explicit (all four)")
        # --ndt_t_max and --ndt_epsilon shape the automatic fit only: with the paper's or four
        # explicit parameters nothing reads them, nor epsilon beside a given tau (it only fits
        # tau), nor t_max beside a given tau and A (it fits tau, then A; B then follows A,
        # `label_rules.fit_ndt`); a value given there would be dropped unseen.
        fitted = (self.ndt_tau is None, self.ndt_tau is None or self.ndt_a is None)
        fit_only = [f"--ndt_{name}" for name, read in zip(("epsilon", "t_max"), fitted)
                    if getattr(self, name) is not None
                    and (self.ndt_preset != "auto" or not read)][::-1]
        if fit_only:
            why = (f"with --ndt={self.ndt_preset}" if self.ndt_preset != "auto"
                   else "with --ndt_tau given (epsilon only fits tau)"
                   if fit_only == ["--ndt_epsilon"]
                   else "with --ndt_tau and --ndt_a given (t_max only fits tau and A)")
            raise InputError(f"{' and '.join(fit_only)} shape{'s' if len(fit_only) == 1 else ''}"
                             f" the automatic NDT fit (--ndt=auto); {why} "
                             f"{'it is' if len(fit_only) == 1 else 'they are'} not read: drop "
                             f"{'it' if len(fit_only) == 1 else 'them'}")
        if self.bin_edges is None and self.bins > MAX_BINS:
            raise InputError(f"--num_bins must be <= {MAX_BINS:,} (one softmax output a bin), "
                             f"not {self.bins:,}")
        # The dwell-bin models need two bins at least (one is a softmax with nothing to choose).
        if self.bin_edges is None and self.bins < 2:
            raise InputError(f"--num_bins must be >= 2, not {self.bins}")
        if self.bin_edges is not None:
            self._check_bin_edges()

    @property
    def bins(self) -> int:
        """The number of dwell-time bins: --bin_edges', else --num_bins or its default."""
        if self.bin_edges is not None:
            return len(self.bin_edges) - 1
        return DEFAULT_NUM_BINS if self.num_bins is None else self.num_bins

    def _check_bin_edges(self):
        edges = self.bin_edges
        # A finite last edge: the open top bin a user may mean by `inf` would be valued at
        # infinity (its midpoint, or its median when empty), and expected dwell with it.
        if len(edges) < 3 or any(not b > a for a, b in zip(edges, edges[1:])) or not (
                edges[0] >= 0 and math.isfinite(edges[-1])):
            raise InputError("--bin_edges must be three or more increasing finite numbers of "
                             f"seconds >= 0 (two bins at least), not {','.join(map(str, edges))}"
                             " (the last edge closes the top bin: dwell above it falls in it)")
        if len(edges) - 1 > MAX_BINS:
            raise InputError(f"--bin_edges must give <= {MAX_BINS:,} bins (one softmax output a "
                             f"bin), not {len(edges) - 1:,}")
        if self.num_bins not in (None, len(edges) - 1):
            raise InputError(f"--num_bins={self.num_bins} and --bin_edges ({len(edges) - 1} "
                             "bins) disagree: the edges set the bins; drop --num_bins")


class _Part:
    """Pre-aggregates of a group of input files (picklable, merged by `_merge_parts`)."""

    def __init__(self, rows=0, clicks=0, dwell=None, numeric=None, unclicked_dwell=0, files=None,
                 values=None):
        self.rows, self.clicks, self.unclicked_dwell = rows, clicks, unclicked_dwell
        self.dwell = [] if dwell is None else dwell  # list of arrays of clicked dwell > 0
        # name -> [rows with x != 0 among clicked and among unclicked rows (an outcome of the
        # click is 0 on the latter), rows with x < 0]
        self.numeric = numeric or {}
        # name -> (count, mean, sum of squared deviations) of log1p(max(x, 0)) and of x itself
        # (the two standardizing transforms'), merged by `stats_artifact.combine_moments`
        self.log1p, self.raw = {}, {}
        # name -> fingerprints of the distinct values of a string or integer feature column
        # (not the ids), up to DISTINCT_VALUES_CAP of them (two of 65,536 values share a 64-bit
        # fingerprint with probability about 1e-10): how many hash buckets it needs (training's
        # note)
        self.values = values or {}
        self.files = files or []  # stats_artifact.file_record of each file read
        self.day_rows: dict = {}  # UTC day -> rows, of every file (local or not)


def _file_groups(files: list, files_per_read: int) -> list[list]:
    """The input's `LogFile`s in groups, each read by one worker: at most `files_per_read`
    files of together at most `logs.WHOLE_FILE_BYTES` on disk, so a worker holds no more than
    it did for one large file. A file past that size is a group of its own (read line by line),
    and CSV files with CRLF line ends are grouped apart: each file is parsed as if read alone."""
    groups, open_groups = [], {}  # CRLF or not -> (files, bytes) of the group being filled
    for log_file in files:
        size = log_files.file_size(log_file.path)
        if size > logs.WHOLE_FILE_BYTES:
            groups.append([log_file])
            continue
        kind = log_file.format == "csv" and logs.has_crlf(log_file)
        group, total = open_groups.get(kind, ([], 0))
        if group and (len(group) >= files_per_read or total + size > logs.WHOLE_FILE_BYTES):
            groups.append(group)
            group, total = [], 0
        open_groups[kind] = (group + [log_file], total + size)
    return groups + [group for group, _ in open_groups.values()]


def _read_files(files: list, schema_json: dict, config: StatsConfig):
    """The Beam engine's step over a file group: `_preaggregate`'s outputs as tagged outputs,
    bad input carried to the driver (`log_diagnosis.input_errors_for_beam`)."""
    from apache_beam import pvalue

    with log_diagnosis.input_errors_for_beam():
        for tag, value in _preaggregate(files, schema_json, config):
            yield pvalue.TaggedOutput(tag, value)


def _preaggregate(files: list, schema_json: dict, config: StatsConfig):
    """Reads a group of log files (`LogFile`s); yields ('part', _Part) with a record per file,
    then ('item', (partition, {item: dwells})) and ('user_day', (partition, {(user, day):
    clicks})) per partition with rows (`_partitioned`), pre-aggregated over the group. A bad
    value raises the reader's TensorFlow error: each engine explains it (`log_diagnosis`)."""
    import pandas as pd

    schema = log_schema.LogSchema.from_json(schema_json)
    # Recorded only if unchanged by the end of the read.
    before = [stats_artifact.file_status(f.path) for f in files]
    source = logs.LogSource(files, schema, schema_json.get("stored", {}),
                            type_origins=schema_json.get("type_origins", {}))
    numeric = [c for c in schema.feature_columns() if schema.dtypes[c] != "string"]
    part = _Part(numeric={c: [0, 0, 0] for c in numeric},
                 values={c: set() for c in stats_artifact.counted_value_columns(schema)})
    item_parts, day_parts, file_day_rows = [], [], {}  # file_day_rows: (file, day) -> rows
    # One dataset for the group: building a reader's graph costs about as much as reading a
    # day's file, and two files read at once keep both cores busy.
    dataset = source.dataset(config.batch_size, allow_unclicked_dwell=config.allow_unclicked_dwell,
                             with_source=True, parallel_files=min(2, len(files)))
    for batch in dataset.as_numpy_iterator():
        click = batch["click"] == 1
        dwell = batch["dwell_time"]
        day = np.floor_divide(batch["timestamp"], SECONDS_PER_DAY)
        part.rows += len(click)
        logs.add_file_day_rows(file_day_rows, batch[logs.SOURCE_INDEX], day)
        part.clicks += int(click.sum())
        if config.allow_unclicked_dwell:
            part.unclicked_dwell += int(batch[logs.DWELL_ZEROED].sum())
        positive = click & (dwell > 0)
        part.dwell.append(dwell[positive])
        item_parts.append(batch["item_id"][positive])
        day_parts.append((batch["user_id"][click], day[click]))
        for name, seen in part.values.items():
            if len(seen) < stats_artifact.DISTINCT_VALUES_CAP:
                # 64-bit fingerprints, the same in every worker process (pandas' fixed key):
                # a set of long text fields would hold each field whole.
                seen.update(pd.unique(pd.util.hash_array(batch[name], categorize=False)).tolist())
        for name in numeric:
            values = batch[name]
            x = np.log1p(np.maximum(values.astype(np.float64), 0.0))
            counts = part.numeric[name]
            nonzero = values != 0
            counts[0] += int(np.count_nonzero(nonzero & click))
            counts[1] += int(np.count_nonzero(nonzero & ~click))
            counts[2] += int(np.count_nonzero(values < 0))
            for moments, of in ((part.log1p, x), (part.raw, values)):
                moments[name] = stats_artifact.combine_moments(
                    moments.get(name, stats_artifact.NO_MOMENTS),
                    stats_artifact.central_moments(of))
    part.dwell = [np.concatenate(part.dwell)] if part.dwell else []
    day_rows = [{} for _ in files]
    for (index, file_day), n in file_day_rows.items():
        day_rows[index][file_day] = n
        part.day_rows[int(file_day)] = part.day_rows.get(int(file_day), 0) + int(n)
    part.files = [stats_artifact.file_record(f.path, rows, status)
                  for f, rows, status in zip(files, day_rows, before)]
    yield "part", part
    item_dwells = _grouped_dwells(np.concatenate(item_parts) if item_parts else np.zeros(0, object),
                                  part.dwell[0] if part.dwell else np.zeros(0), files)
    for partition, table in _partitioned(item_dwells, lambda item: item).items():
        yield "item", (partition, table)
    users = np.concatenate([u for u, _ in day_parts]) if day_parts else np.zeros(0, object)
    days = np.concatenate([d for _, d in day_parts]) if day_parts else np.zeros(0, np.int64)
    for partition, table in _partitioned(_user_day_clicks(users, days, files),
                                         lambda key: key[0]).items():
        yield "user_day", (partition, table)


def _grouped_dwells(items: np.ndarray, dwell: np.ndarray, files: list) -> dict:
    """{item id (str): its clicked dwells in read order}. `items`: ids as bytes [clicks],
    `dwell`: seconds [clicks]; `files`: the `LogFile`s read, to name one with an id that is not
    UTF-8. Grouped by sorting codes, not per row in Python."""
    import pandas as pd

    codes, ids = pd.factorize(items)
    names = log_diagnosis.text_ids(ids, "item_id", files)
    order = np.argsort(codes, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(codes[order]) != 0]) if len(codes) else []
    return {names[codes[order[start]]]: values
            for start, values in zip(starts, np.split(dwell[order], starts[1:]))}


def _user_day_clicks(users: np.ndarray, days: np.ndarray, files: list) -> dict:
    """{(user id (str), UTC day): clicks}. `users`: ids as bytes [clicks], `days`: int [clicks];
    `files` as in `_grouped_dwells`. Counted per (user code, day) by `logs.add_file_day_rows`,
    the pair counter the job uses for rows per file and day."""
    import pandas as pd

    codes, ids = pd.factorize(users)
    counts: dict = {}
    logs.add_file_day_rows(counts, codes, days)  # empty input: no pairs
    names = log_diagnosis.text_ids(ids, "user_id", files)
    return {(names[code], day): n for (code, day), n in counts.items()}


def _partitioned(table: dict, id_of) -> dict[int, dict]:
    """{partition: the entries of `table` whose `id_of(key)` falls in it}, by a hash of the id
    that is the same in every worker process (pandas' hash_array, not Python's salted hash)."""
    import pandas as pd

    keys = list(table)
    if not keys:
        return {}
    ids = np.asarray([id_of(key) for key in keys], dtype=object)
    partitions = pd.util.hash_array(ids) % TABLE_PARTITIONS
    out: dict[int, dict] = {}
    for key, partition in zip(keys, partitions.tolist()):
        out.setdefault(partition, {})[key] = table[key]
    return out


def _merge_item_dwells(tables) -> dict:
    """One partition's {item: clicked dwell array} tables merged (arrays concatenated)."""
    parts: dict = {}
    for table in tables:
        for item, dwell in table.items():
            parts.setdefault(item, []).append(np.asarray(dwell, float))
    return {item: arrays[0] if len(arrays) == 1 else np.concatenate(arrays)
            for item, arrays in parts.items()}


def _merge_user_days(tables) -> dict:
    """One partition's {(user, day): clicks} tables merged (counts added)."""
    merged: dict = {}
    for table in tables:
        for key, clicks in table.items():
            merged[key] = merged.get(key, 0) + clicks
    return merged


def _merge_parts(parts) -> _Part:
    merged = _Part()
    for part in parts:
        merged.rows += part.rows
        merged.clicks += part.clicks
        merged.unclicked_dwell += part.unclicked_dwell
        merged.dwell.extend(part.dwell)
        merged.files.extend(part.files)
        for day, n in part.day_rows.items():
            merged.day_rows[day] = merged.day_rows.get(day, 0) + n
        for name, counts in part.numeric.items():
            into = merged.numeric.setdefault(name, [0, 0, 0])
            for k in range(len(into)):
                into[k] += counts[k]
        for into, moments in ((merged.log1p, part.log1p), (merged.raw, part.raw)):
            for name, of in moments.items():
                into[name] = stats_artifact.combine_moments(
                    into.get(name, stats_artifact.NO_MOMENTS), of)
        for name, seen in part.values.items():
            into = merged.values.setdefault(name, set())
            if len(into) < stats_artifact.DISTINCT_VALUES_CAP:
                into.update(seen)
    merged.dwell = [np.concatenate(merged.dwell)] if merged.dwell else []
    return merged


def summarize(part: _Part, config: StatsConfig, schema: log_schema.LogSchema) -> dict:
    """stats.json's content from the merged pre-aggregates (everything but the table counts)."""
    # Sorted, so the sums (and so the artifact) do not depend on how the work was split.
    dwell = np.sort(part.dwell[0]) if part.dwell else np.zeros(0)
    return stats_artifact.stats_json(
        dwell, rows=part.rows, clicks=part.clicks, numeric_counts=part.numeric,
        log1p_moments=part.log1p, raw_moments=part.raw,
        distinct_values={k: len(v) for k, v in part.values.items()},
        unclicked_dwell_zeroed=part.unclicked_dwell, rules=config.rules,
        ndt_preset=config.ndt_preset, t_max=config.t_max, epsilon=config.epsilon,
        ndt_offset=config.ndt_offset, ndt_tau=config.ndt_tau, ndt_a=config.ndt_a,
        ndt_b=config.ndt_b, num_bins=config.bins, bin_edges=config.bin_edges,
        bin_values=config.bin_values,
        # The types given by --column_types, which the label and training jobs read with
        # (`StatsArtifact.column_types`); the key only when some were given.
        schema=dict(schema.to_json(), **({"given": config.read.types}
                                         if config.read.column_types else {})))


ENGINES = ("beam", "local")


def check_engine(engine: str, beam_args: list[str] | None) -> None:
    """InputError unless `engine` is one of ENGINES and takes the pipeline options given."""
    if engine not in ENGINES:
        raise InputError(f"--engine must be one of {', '.join(ENGINES)}, not {engine!r}")
    if beam_args and engine == "local":
        # Only the Beam engine takes pipeline options: anything else is a mistyped flag.
        raise InputError(f"unknown flag(s) {' '.join(beam_args)} (Beam pipeline options need "
                         "--engine=beam)")


# An earlier artifact (replaced by a run into its directory): stats.json and its tables alone.
is_artifact = earlier_output(markers={"stats.json": "format_version"},
                             folders={"items": r"part-\d+-of-\d+\.csv",
                                      "user_days": r"part-\d+-of-\d+\.csv"})


def compute_stats(pattern: str, output_dir: str, config: StatsConfig = StatsConfig(),
                  beam_args: list[str] | None = None, engine: str = "beam") -> dict:
    """Runs the statistics job over the logs matching `pattern` into `output_dir`.

    `engine` "beam" runs it on Apache Beam with the pipeline options `beam_args` (e.g.
    ['--runner=FlinkRunner', ...]; DirectRunner by default); "local" runs the same steps in
    this process, one file group after the other, without Beam (the same artifact). Returns
    stats.json's content. The artifact appears atomically; an existing one is replaced, any
    other non-empty directory refused.
    """
    from core.atomic import atomic_directory

    check_engine(engine, beam_args)
    if config.files_per_read < 1:
        raise InputError(f"--files_per_read must be >= 1, not {config.files_per_read}")
    source = logs.open_logs(pattern, column_types=config.read.types, given_by="flag")
    schema_json = dict(source.schema.to_json(), stored=source.stored_types,
                       type_origins=dict(source.type_origins))

    with atomic_directory(output_dir, may_replace=is_artifact, what="--output_dir",
                          inputs=[f.path for f in source.files]) as tmp:
        for table in ("items", "user_days"):  # each table's shards are written straight in
            os.makedirs(os.path.join(tmp, table))
        if engine == "local":
            _run_local(source.files, schema_json, config, tmp, pattern)
        else:
            import apache_beam as beam
            from apache_beam.options.pipeline_options import PipelineOptions

            with reraised_from_workers():
                _run_pipeline(beam, PipelineOptions(beam_args or []), source.files,
                              schema_json, config, tmp, pattern)
        # A shard whose writer failed and was retried leaves its partial file behind.
        for partial in glob.glob(os.path.join(glob.escape(tmp), "*", "*.partial")):
            os.remove(partial)
        with open(os.path.join(tmp, "stats.json")) as handle:
            stats = json.load(handle)
    return stats


def _run_local(files, schema_json, config, tmp, pattern):
    """The local engine: the Beam pipeline's steps in this process (file groups read one after
    the other, each through its own reader); the artifact lands in `tmp`. It holds every
    partition's tables at once, as the Beam engine's merge spreads them over its workers: each
    clicked dwell twice (the global array and its item's, 16 bytes) and about 150 bytes per
    user-day (15 GB per 100 M user-days)."""
    parts, tables = [], {"item": {}, "user_day": {}}  # tag -> partition -> [group tables]
    for group in _file_groups(files, config.files_per_read):
        with log_diagnosis.input_errors_explained():
            for tag, value in _preaggregate(group, schema_json, config):
                if tag == "part":
                    parts.append(value)
                else:
                    partition, table = value
                    tables[tag].setdefault(partition, []).append(table)
    # Each partition's tables are let go once its shard is written.
    items = [table_shards.write_items(
                 tmp, partition, _merge_item_dwells(tables["item"].pop(partition)),
                 config.rules.min_item_records)
             for partition in sorted(tables["item"])]
    user_days = [table_shards.write_user_days(
                     tmp, partition, _merge_user_days(tables["user_day"].pop(partition)))
                 for partition in sorted(tables["user_day"])]
    _write_stats(_merge_parts(parts), tmp, config, schema_json, pattern, items, user_days)


def _run_pipeline(beam, options, files, schema_json, config, tmp, pattern):
    """Builds and runs the pipeline; the artifact lands in `tmp`."""
    with beam.Pipeline(options=options) as pipeline:
        outputs = (pipeline
                   | "FileGroups" >> beam.Create(_file_groups(files, config.files_per_read))
                   | "Reshuffle" >> beam.Reshuffle()
                   | "ReadAndPreaggregate" >> beam.FlatMap(_read_files, schema_json, config)
                   .with_outputs("part", "item", "user_day"))
        min_records = config.rules.min_item_records
        # Each partition's rows become one CSV shard, written by the worker that merged it
        # (WriteToText's own stages cost 0.2 s on the DirectRunner); its rows go on as a number.
        items = (outputs.item
                 | "ItemDwells" >> beam.CombinePerKey(_merge_item_dwells)
                 | "WriteItems" >> beam.MapTuple(
                     lambda partition, table: table_shards.write_items(
                         tmp, partition, table, min_records)))
        user_days = (outputs.user_day
                     | "UserDayClicks" >> beam.CombinePerKey(_merge_user_days)
                     | "WriteUserDays" >> beam.MapTuple(
                         lambda partition, table: table_shards.write_user_days(
                             tmp, partition, table)))
        # The counts of each shard are summed by the stats writer (side inputs of at most
        # TABLE_PARTITIONS pairs each).
        _ = (outputs.part
             | "MergeParts" >> beam.CombineGlobally(_merge_parts)
             | "WriteStats" >> beam.Map(
                 _write_stats_beam, tmp, config, schema_json, pattern,
                 beam.pvalue.AsList(items), beam.pvalue.AsList(user_days)))


def _write_stats_beam(*args):
    """`_write_stats` as the Beam engine's step: bad input carried to the driver."""
    with log_diagnosis.input_errors_for_beam():
        _write_stats(*args)


def _write_stats(part, directory, config, schema_json, pattern, items, user_days):
    """Writes stats.json from the merged part; `items`, `user_days`: (rows, distinct ids) of
    each table shard (`table_shards.write_items`, `table_shards.write_user_days`). Bad input
    (no click) raises InputError."""
    schema = log_schema.LogSchema.from_json(schema_json)
    stats = summarize(part, config, schema)
    stats.update(items_with_p10=int(sum(rows for rows, _ in items)),
                 user_days=int(sum(rows for rows, _ in user_days)),
                 clicked_items=int(sum(ids for _, ids in items)),
                 clicked_users=int(sum(ids for _, ids in user_days)), inputs=pattern,
                 # A file without a record (a URL, or changed while read): none is kept,
                 # so labelling always counts.
                 files=(sorted(part.files, key=lambda record: record["path"])
                        if all(record is not None for record in part.files) else []),
                 # Rows per UTC day of the whole input, URLs included: rule T2's held days.
                 day_rows={str(day): n for day, n in sorted(part.day_rows.items())})
    with open(os.path.join(directory, "stats.json"), "w") as handle:
        json.dump(stats, handle, indent=2)
