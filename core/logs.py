"""Impression logs: the reader (`open_logs`, `read_logs`, `LogSource`).

`read_logs` turns globs of CSV (plain or gzip) and TFRecord files of `tf.Example` (plain or GZIP)
into a `tf.data.Dataset` of batched feature dicts. Parsing and every value check run inside the
graph, so the same reader serves training (also on `tf.distribute` workers), labelling and
scoring; a bad value stops the pipeline with an `InvalidArgumentError` that names the file, line
(or record) and column, which `core.errors.from_tf_error` turns into an `InputError`.

The contract the reader enforces (column names and types, the CSV and TFRecord layouts) is in
`core.log_schema`; the schema inference from a sample of the files is in
`core.schema_inference`; the writers are in `core.log_writers`; explaining a failed read
(`translate_error`, `diagnose`) is in `core.log_diagnosis`, which this reader tells which input
it is reading (`remember_source`).
"""

from __future__ import annotations

import dataclasses
import gzip
import zlib
from typing import Mapping, Sequence

from core import log_files
from core.errors import MARKER, InputError
from core.log_diagnosis import remember_source
from core.log_files import LogFile, expand_inputs, file_size, open_binary
from core.log_schema import (
    MAX_TIMESTAMP,
    MIN_TIMESTAMP,
    REQUIRED_COLUMNS,
    AbsentTypedColumns,
    LogSchema,
)
from core.schema_inference import infer_schema

# Extra keys of `read_logs(..., with_source=True)`.
SOURCE_FILE, SOURCE_ROW, DWELL_ZEROED = "_source_file", "_source_row", "_dwell_zeroed"
# With `dwell_as_read`: the dwell as the row holds it, before an unclicked row's is zeroed.
DWELL_AS_READ = "_dwell_as_read"
SOURCE_INDEX = "_source_index"  # position of the row's file in `LogSource.files`
RAW = "_raw"  # the row as read: a CSV line (without its line end) or a serialized tf.Example
# `dataset(with_missing=True)`: MISSING + column is True where the row had no value (an empty
# CSV field, a feature the tf.Example leaves out), so writers can leave it missing again.
MISSING = "_missing:"
# CSV files up to this size (bytes on disk) are read whole, decompressed and split in one op
# each (faster than line by line: docs/BENCHMARKS.md); larger inputs stream line by line.
WHOLE_FILE_BYTES = 64 << 20


# Reading ------------------------------------------------------------------------------------------
@dataclasses.dataclass
class LogSource:
    """Files of one input with their schema; `dataset()` reads them."""

    files: list[LogFile]
    schema: LogSchema
    stored_types: dict[str, str]  # TFRecord: the kind each feature is stored as
    # False for candidates (scoring): `click` and `dwell_time` are neither required, read nor
    # checked; only the columns asked for are converted and checked.
    outcomes: bool = True
    checked: tuple[str, ...] | None = None  # set by dataset(): the columns it converts
    # Columns whose type was given, not inferred, and by whom (the errors say so): {column:
    # "model"} for a trained model's features, "flag" for this command's --column_types,
    # "artifact" for the statistics job's, kept in its artifact (the label and training jobs).
    type_origins: Mapping[str, str] = dataclasses.field(default_factory=dict)
    # Features a model reads that no sampled record has a value of (a tf.Example leaves a
    # sparse feature out; a CSV column empty on every sampled row): read as their default on
    # every row without a value.
    absent_features: tuple[str, ...] = ()

    @property
    def format(self) -> str:
        return self.files[0].format

    def dataset(self, batch_size: int = 1024, *, allow_unclicked_dwell: bool = False,
                with_source: bool = False, with_raw: bool = False,
                columns: Sequence[str] | None = None, parallel_files: int = 1,
                num_parallel_calls: int | None = None, drop_remainder: bool = False,
                file_shard: tuple | None = None, whole_files: bool = True,
                batches_span_files: bool = True, with_missing: bool = False,
                check_streams: bool = True, dwell_as_read: bool = False):
        """A `tf.data.Dataset` of dicts column -> Tensor[batch] in file order.

        With `with_source`, adds `_source_file` (string path), `_source_index` (int64 position
        of the file in `files`) and `_source_row` (int64 line or record number). With
        `allow_unclicked_dwell`, dwell on an unclicked row becomes 0 and `_dwell_zeroed`
        (int64 0/1) marks the row (with `dwell_as_read`, `_dwell_as_read` keeps the value the
        row holds, for writers that pass rows through); otherwise such a row is an error. With
        `with_raw`, adds `_raw`: each row as read (a CSV line without its line end, or the
        serialized tf.Example), so writers can pass input through unchanged. With
        `with_missing`, adds `_missing:<column>` (bool) for every column returned but
        `dwell_time`: True where the row had no value (which reads as 0, "" or the schema's
        `missing` value), so a writer can leave it out again. With `columns`,
        only those columns are converted and returned (plus `click` and `dwell_time`, which
        every row is checked on); CSV lines are still split in full, so a wrong field count is
        still an error. `parallel_files` > 1 reads that many files at once (rows of different
        files then interleave). `file_shard` = (count, index) reads only files index,
        index + count, ... (index may be a Tensor: a parameter-server worker's own index).
        `whole_files=False` streams CSV lines even from files small enough to be decompressed
        and split in one op (faster, but it holds a file's text: scoring keeps memory flat).
        `batches_span_files=False` batches each file on its own (a file's last batch may be
        short): each file's batches are then those of reading it alone, so a model's outputs
        on them are too (float sums depend on the batch's size). `check_streams` (default):
        a gzip file is read through zlib first (`log_files.check_gzip_files`, once a process),
        since TensorFlow's readers take a stream cut short after a flush as whole and read a
        corrupt one until inflate happens to fail; an InputError names a damaged file.
        """
        import tensorflow as tf

        remember_source(self)
        if check_streams:
            shard = (file_shard if file_shard is not None
                     and all(isinstance(v, int) for v in file_shard) else None)
            log_files.check_gzip_files(self.files if shard is None
                                       else self.files[shard[1]::shard[0]])
        if columns is not None:
            unknown = [c for c in columns if c not in self.schema.dtypes]
            if unknown:
                raise InputError(f"the logs have no column(s) {', '.join(unknown)} (columns: "
                                 f"{', '.join(self.schema.columns)})", file=self.files[0].path)
        wanted = set(self.schema.columns if columns is None else columns)
        if self.outcomes:
            wanted |= {"click", "dwell_time"}
        self.checked = tuple(c for c in self.schema.columns if c in wanted)
        calls = tf.data.AUTOTUNE if num_parallel_calls is None else num_parallel_calls
        paths = [f.path for f in self.files]
        compression = ["GZIP" if f.gzip else "" for f in self.files]
        # Each file's position in `files` travels with its rows (`_source_index`).
        positions = tf.range(len(paths), dtype=tf.int64)
        files = tf.data.Dataset.from_tensor_slices((paths, compression, positions))
        if file_shard is not None:
            files = files.shard(*file_shard)
        # Each file is read in batches and numbered with vectorized ops: per-row tf.data
        # functions would cost more than the parsing itself.
        if self.format == "csv":
            whole = whole_files and all(file_size(f.path) <= WHOLE_FILE_BYTES for f in self.files)
            crlf = any(has_crlf(f) for f in self.files)
            # A CR before LF stays in the line only here (TextLineDataset strips it): the
            # explanation of a parse error must know (`log_diagnosis.diagnose`).
            self.keeps_cr = whole and not crlf

            def open_file(path, comp, position):
                if whole:
                    data = tf.io.read_file(path)
                    data = tf.cond(tf.equal(comp, "GZIP"),
                                   lambda: tf.io.decode_compressed(data, "GZIP"), lambda: data)
                    lines = tf.strings.split(data, "\n")[1:]
                    if crlf:
                        lines = tf.strings.regex_replace(lines, "\r$", "")
                    # Chunks sliced from the file's lines: a tf.data element per line (then
                    # batched) cost more than parsing the line.
                    chunks = tf.data.Dataset.range(
                        (tf.size(lines, out_type=tf.int64) + batch_size - 1) // batch_size).map(
                        _no_autograph(lambda k: (k, lines[k * batch_size:(k + 1) * batch_size])))
                else:
                    chunks = tf.data.TextLineDataset(path, compression_type=comp,
                                                     buffer_size=4 << 20).skip(1).batch(
                                                         batch_size).enumerate()
                return chunks.map(_no_autograph(
                    lambda k, chunk: _number_chunk(path, position, k, chunk, batch_size,
                                                   first_row=2, skip_blank=True)))

            def parse(path, row, line):
                return self._parse_csv_batch(path, row, line, wanted, with_missing)
        else:
            def open_file(path, comp, position):
                records = tf.data.TFRecordDataset(path, compression_type=comp,
                                                  buffer_size=4 << 20)
                return records.batch(batch_size).enumerate().map(_no_autograph(
                    lambda k, chunk: _number_chunk(path, position, k, chunk, batch_size,
                                                   first_row=1, skip_blank=False)))

            def parse(path, row, record):
                return self._parse_tfrecord_batch(path, row, record, wanted, with_missing)
        def file_batches(path, comp, position):
            chunks = open_file(path, comp, position)
            if parallel_files > 1:
                # A chunk left without rows (blank lines, a header-only file) would still take
                # a turn of the interleave; without it the order is a function of the rows'
                # line numbers alone, which `ranking.train_cache` replays.
                chunks = chunks.filter(_no_autograph(lambda _p, _q, row, _r: tf.size(row) > 0))
            if batches_span_files:
                return chunks
            return chunks.rebatch(batch_size, drop_remainder=drop_remainder)

        chunks = files.interleave(_no_autograph(file_batches),
                                  cycle_length=max(1, parallel_files),
                                  num_parallel_calls=calls if parallel_files > 1 else None,
                                  deterministic=True if parallel_files > 1 else None)
        # Blank lines and file ends leave short chunks: rebatch to exactly `batch_size` rows.
        batches = (chunks.rebatch(batch_size, drop_remainder=drop_remainder)
                   if batches_span_files else chunks)

        def to_features(path, position, row, payload):
            out = self._finish(parse(path, row, payload), path, row, allow_unclicked_dwell,
                               dwell_as_read)
            if with_source:
                out.update({SOURCE_FILE: path, SOURCE_ROW: row, SOURCE_INDEX: position})
            if with_raw:
                out[RAW] = payload
            return out

        # Straight-line graph code: autograph would only slow the tracing down.
        return batches.map(tf.autograph.experimental.do_not_convert(to_features),
                           num_parallel_calls=calls, deterministic=True).prefetch(tf.data.AUTOTUNE)

    # CSV --------------------------------------------------------------------------------------
    def _parse_csv_batch(self, path, row, line, wanted, with_missing=False):
        """Fast path: no per-field format checks. A wrong field count or a value of the wrong
        type makes TensorFlow's own parsing fail; `diagnose` then finds the line in Python."""
        import tensorflow as tf

        columns = self.schema.columns
        fields = tf.io.decode_csv(line, record_defaults=[[""]] * len(columns))
        out, checks = {}, []
        for name, text in zip(columns, fields):
            if name not in wanted:
                continue
            kind = self.schema.dtypes[name]
            empty = tf.equal(text, "")
            if with_missing and name != "dwell_time":
                out[MISSING + name] = empty
            if name in ("user_id", "item_id") and self.outcomes:
                # As a tf.Example without the feature: rows without an id would all be one
                # user (or item), a heavy one for rule T2, sharing one embedding. (Scoring's
                # candidates may lack one: a logged-out request is scored as served.)
                checks.append(_check(~empty, path, row, name, "expected an id, found an empty "
                                     "field (rows without an id would all be one "
                                     f"{name[:-3]}: drop them or give each its id)"))
            if kind == "string":
                out[name] = self._fill_missing(name, empty, text)
                continue
            if name in ("timestamp", "click"):
                checks.append(_check(~empty, path, row, name, "expected a value, found an empty "
                                     "field"))
            dtype = {"int64": tf.int64, "float32": tf.float32, "float64": tf.float64}[kind]
            value = tf.strings.to_number(tf.where(empty, "0", text), out_type=dtype)
            if kind != "int64" and name != "dwell_time":
                checks.append(_check(tf.math.is_finite(value), path, row, name,
                                     "expected a finite number, found ", text))
            out[name] = ((value, empty, text) if name == "dwell_time"
                         else self._fill_missing(name, empty, value))
        return out, checks

    def _fill_missing(self, name, missing, value):
        """`value` [batch] with the schema's value for `name` where `missing` (bool [batch])."""
        import tensorflow as tf

        if name not in self.schema.missing:
            return value
        return tf.where(missing, tf.constant(self.schema.missing[name], value.dtype), value)

    # TFRecord ---------------------------------------------------------------------------------
    def _parse_tfrecord_batch(self, path, row, record, wanted, with_missing=False):
        import tensorflow as tf

        names = tf.strings.join([path, ":record ", tf.strings.as_string(row)])
        stored = {n: {"int64": tf.int64, "float32": tf.float32, "string": tf.string}[k]
                  for n, k in self.stored_types.items() if n in self.schema.dtypes and n in wanted}
        spec = {n: tf.io.RaggedFeature(dtype=d, row_splits_dtype=tf.int64) for n, d in stored.items()}
        parsed = tf.io.parse_example(record, spec, example_names=names)
        out, checks = {}, []
        for name in self.schema.columns:
            if name not in wanted:
                continue
            ragged = parsed[name]
            count = ragged.row_lengths()
            checks.append(_check(count <= 1, path, row, name, "expected one value, found ",
                                 tf.strings.as_string(count), row_kind="record"))
            if name in ("timestamp", "click", "user_id", "item_id"):
                checks.append(_check(count >= 1, path, row, name,
                                     "expected a value, but the feature is missing",
                                     row_kind="record"))
            default = "" if stored[name] == tf.string else 0
            value = ragged.to_tensor(default_value=default, shape=[None, 1])[:, 0]
            if stored[name] == tf.float32 and name != "dwell_time":
                # As in CSV: a NaN (pandas' missing value, kept by a converter) or an infinity
                # would reach the statistics and the model as a number.
                checks.append(_check(tf.math.is_finite(value), path, row, name,
                                     "expected a finite number, found ", value,
                                     row_kind="record"))
            dense = value
            kind = self.schema.dtypes[name]
            if kind == "string" and stored[name] != tf.string:
                dense = as_text(dense)  # "5.6" as a CSV holds it, not %f's "5.600000"
            elif kind != "string":
                if kind == "int64" and stored[name] == tf.float32:
                    # Floats read as an integer column (a converter that writes every number
                    # as float_list): whole ones int64 holds only, as in CSV; a cast would
                    # drop decimals, or wrap.
                    checks.append(_check(tf.logical_and(tf.equal(value, tf.round(value)),
                                                        tf.abs(value) < 2.0 ** 63),
                                         path, row, name, "expected an integer, found ", value,
                                         row_kind="record"))
                dense = tf.cast(dense, {"int64": tf.int64, "float32": tf.float32,
                                        "float64": tf.float64}[kind])
            if name == "dwell_time":
                dense = (dense, tf.equal(count, 0), tf.strings.as_string(dense, shortest=True))
            else:
                if with_missing:
                    out[MISSING + name] = tf.equal(count, 0)
                dense = self._fill_missing(name, tf.equal(count, 0), dense)
            out[name] = dense
        return out, checks

    # Shared checks ----------------------------------------------------------------------------
    def _finish(self, parsed, path, row, allow_unclicked_dwell, dwell_as_read=False):
        import tensorflow as tf

        out, checks = parsed
        kind = "line" if self.format == "csv" else "record"
        if "timestamp" in out:
            timestamp = out["timestamp"]
            checks.append(_check(timestamp <= MAX_TIMESTAMP, path, row, "timestamp",
                                 f"expected unix seconds (at most {MAX_TIMESTAMP}, 9999-12-31 "
                                 "UTC), found ", tf.strings.as_string(timestamp),
                                 ": milliseconds, microseconds or nanoseconds? divide by 10^3, 10^6 or 10^9",
                                 row_kind=kind))
            checks.append(_check(timestamp >= MIN_TIMESTAMP, path, row, "timestamp",
                                 "expected unix seconds (1970-01-01 UTC or later), found ",
                                 tf.strings.as_string(timestamp),
                                 ": a missing time written as a negative number? leave those "
                                 "rows out", row_kind=kind))
        if not self.outcomes:
            with tf.control_dependencies(checks):
                return {n: tf.identity(v[0] if n == "dwell_time" else v)
                        for n, v in out.items()}
        dwell, dwell_empty, dwell_text = out["dwell_time"]
        click = out["click"]
        text = lambda x: tf.strings.as_string(x)  # noqa: E731
        checks.append(_check((click == 0) | (click == 1), path, row, "click",
                             "expected 0 or 1, found ", text(click), row_kind=kind))
        finite = tf.math.is_finite(dwell)
        checks.append(_check(finite, path, row, "dwell_time", "expected a finite number of "
                             "seconds, found ", dwell_text, row_kind=kind))
        checks.append(_check(~finite | (dwell >= 0), path, row, "dwell_time",
                             "expected seconds >= 0, found ", dwell_text, row_kind=kind))
        checks.append(_check(~((click == 1) & dwell_empty), path, row, "dwell_time",
                             "a clicked row needs its dwell time, found an empty field",
                             row_kind=kind))
        unclicked_dwell = (click == 0) & (dwell > 0)
        if not allow_unclicked_dwell:
            checks.append(_check(~unclicked_dwell, path, row, "dwell_time",
                                 "expected 0 or empty on an unclicked row (click = 0), found ",
                                 dwell_text, " (--allow_unclicked_dwell treats it as 0)",
                                 row_kind=kind))
        with tf.control_dependencies(checks):
            result = {n: tf.identity(v) for n, v in out.items() if n != "dwell_time"}
            result["dwell_time"] = tf.identity(tf.where(unclicked_dwell, tf.zeros_like(dwell),
                                                        dwell))
        if allow_unclicked_dwell:
            result[DWELL_ZEROED] = tf.cast(unclicked_dwell, tf.int64)
            if dwell_as_read:
                result[DWELL_AS_READ] = tf.identity(dwell)
        return result


def as_text(values):
    """A number column as text, one way everywhere (the reader, the label job's CSV, the
    gate): float32 by `float32_text`, integers in decimal."""
    import tensorflow as tf

    return float32_text(values) if values.dtype == tf.float32 else tf.strings.as_string(values)


def float32_text(values):
    """float32 [n] -> string [n]: each value's shortest decimal that reads back to the same
    float32, written as Python's repr writes a number ("5.6", "5.0", "0.0001", "1e-05",
    "1.5e+16"), so a float stored in a TFRecord and read as text matches a CSV of the same log
    where it matters (short decimals: grades, prices). A whole value from 2^24 to 1e16 is its
    exact integer ("126542144.0"); -0 and subnormals are "0.0". Finite values only."""
    import tensorflow as tf

    values = tf.where(tf.equal(values, 0), tf.zeros_like(values), values)
    # %g with the fewest significant digits (6 to 9) that reads back exactly; 9 always does.
    text = tf.strings.as_string(values, precision=9, shortest=True)
    for digits in (8, 7, 6):
        shorter = tf.strings.as_string(values, precision=digits, shortest=True)
        text = tf.where(tf.equal(tf.strings.to_number(shorter, tf.float32), values), shorter,
                        text)
    # A whole value below 1e16 is written as an integer with ".0", as repr writes it (%g
    # would write 1e+06 or drop the ".0").
    whole = tf.logical_and(tf.equal(values, tf.round(values)), tf.abs(values) < 1e16)
    integer = tf.strings.join([tf.strings.as_string(
        tf.cast(tf.where(whole, values, tf.zeros_like(values)), tf.int64)), ".0"])
    return tf.where(whole, integer, text)


def add_file_day_rows(into: dict, file_index, day) -> None:
    """Adds a batch's rows per (file index, UTC day) to `into` ({(file, day): rows}).
    `file_index`, `day`: int arrays [rows] (the batch's SOURCE_INDEX column and its timestamps
    // 86400). A batch of one file and one day (the usual case: logs are files per day) costs
    two comparisons; others one sort."""
    import numpy as np

    file_index, day = np.asarray(file_index), np.asarray(day)
    if not len(day):
        return
    if (file_index == file_index[0]).all() and (day == day[0]).all():
        pairs, counts = [(int(file_index[0]), int(day[0]))], [len(day)]
    else:
        order = np.lexsort((day, file_index))
        file_index, day = file_index[order], day[order]
        starts = np.flatnonzero(np.r_[True, (file_index[1:] != file_index[:-1])
                                      | (day[1:] != day[:-1])])
        counts = np.diff(np.r_[starts, len(day)]).tolist()
        pairs = list(zip(file_index[starts].tolist(), day[starts].tolist()))
    for pair, n in zip(pairs, counts):
        into[pair] = into.get(pair, 0) + n


def has_crlf(log_file: LogFile) -> bool:
    """Whether the CSV file's header or first data line ends with CR LF (a header written
    apart with LF, then rows by Python's csv.writer, whose lines end with CR LF by default)."""
    try:
        with open_binary(log_file.path) as raw:
            handle = gzip.GzipFile(fileobj=raw, mode="rb") if log_file.gzip else raw
            return any(handle.readline().endswith(b"\r\n") for _ in range(2))
    except (OSError, EOFError, zlib.error):
        return False


def _no_autograph(fn):
    import tensorflow as tf

    return tf.autograph.experimental.do_not_convert(fn)


def _number_chunk(path, position, index, chunk, batch_size, first_row, skip_blank):
    """(path[n], position[n], row[n], payload[n]) of the `index`-th chunk of the file at
    `position` in the input, blank lines dropped."""
    import tensorflow as tf

    size = tf.shape(chunk, out_type=tf.int64)[0]
    row = first_row + index * batch_size + tf.range(size, dtype=tf.int64)
    paths, positions = tf.fill([size], path), tf.fill([size], position)
    if skip_blank:
        keep = tf.strings.length(tf.strings.strip(chunk)) > 0
        return (tf.boolean_mask(paths, keep), tf.boolean_mask(positions, keep),
                tf.boolean_mask(row, keep), tf.boolean_mask(chunk, keep))
    return paths, positions, row, chunk


def open_logs(patterns: str | Sequence[str], *,
              column_types: Mapping[str, str] | None = None, given_by: str = "model",
              candidates: Sequence[str] | None = None,
              unseen_types: Mapping[str, str] | None = None) -> LogSource:
    """Expands `patterns`, checks the files and infers their schema (see `core.schema_inference`).

    `column_types` ({column: type}) are read so instead of inferred, and each must be in the
    logs; `given_by` says who gave them, for the errors: "model" (a trained model's features),
    "flag" (this command's --column_types) or "artifact" (the statistics job's --column_types,
    kept in its artifact: the label and training jobs). With `candidates`
    (column names), the input is candidate rows to score: only those columns are required, and
    `click` and `dwell_time`, when present, are neither read nor checked, and a TFRecord the
    schema's sample cannot read is left to the scoring reader's dead letters. `unseen_types`
    ({column: type}, the statistics job's logs'): a CSV column with no value in the sample
    takes its type there (`schema_inference.infer_schema`)."""
    files = expand_inputs(patterns)
    for log_file in files:
        if file_size(log_file.path) == 0:
            raise InputError("is empty (0 bytes); expected "
                             + ("a CSV header line" if log_file.format == "csv" else "TFRecords"),
                             file=log_file.path)
    given = {name: given_by for name in column_types or ()}
    required = tuple(candidates) if candidates is not None else None
    if required is not None and given_by == "model" and files[0].format == "tfrecord":
        # Candidates' ids must be there; a model's other features may be sparse (below).
        required = tuple(name for name in required if name in REQUIRED_COLUMNS)
    try:
        # A tf.Example leaves out a feature it has no value for, so a model's feature in no
        # sampled TFRecord is sparse there, not missing: read as its default, as training reads
        # an absent value (`absent_features` says which).
        schema, stored, absent_features = infer_schema(
            files, column_types, REQUIRED_COLUMNS if required is None else required,
            sparse_typed=given_by == "model", unseen_types=unseen_types,
            dead_letters=candidates is not None)
    except AbsentTypedColumns as absent:
        if given_by == "model":
            raise
        quoted = ", ".join(f"'{name}'" for name in absent.names)
        who = ("--column_types" if given_by == "flag" else
               "the stats artifact (the statistics job's --column_types)")
        raise InputError(f"{who} gives a type to column(s) {quoted}, which these logs do not "
                         f"have (columns: {', '.join(absent.columns)})",
                         file=absent.path) from None
    return LogSource(files, schema, stored, outcomes=candidates is None, type_origins=given,
                     absent_features=absent_features)


def read_logs(patterns: str | Sequence[str], batch_size: int = 1024, *,
              column_types: Mapping[str, str] | None = None, **dataset_kwargs):
    """Reads logs into a batched `tf.data.Dataset` of feature dicts; see `LogSource.dataset`."""
    return open_logs(patterns, column_types=column_types).dataset(batch_size, **dataset_kwargs)


# The reader's in-graph checks ---------------------------------------------------------------------
def row_check(ok, path, row, column, *message, row_kind="line"):
    """`_check` for writers of rows read here (path and row [batch], as `with_source` gives
    them): its failure names the first bad row as the reader's errors do."""
    return _check(ok, path, row, column, *message, row_kind=row_kind)


def _check(ok, path, row, column, *message, row_kind="line"):
    """An assertion that every element of `ok` holds; its message names the first bad row.

    `message` pieces are strings or tensors of the batch's shape (gathered at the first bad
    row; a number is then written in its shortest form)."""
    import tensorflow as tf

    bad = tf.logical_not(ok)
    first = tf.argmax(tf.cast(bad, tf.int32), output_type=tf.int64)
    pieces = [MARKER, tf.gather(path, first), f", {row_kind} ",
              tf.strings.as_string(tf.gather(row, first))]
    if column:
        pieces.append(f", column '{column}'")
    pieces.append(": ")
    for piece in message:
        if isinstance(piece, str):
            pieces.append(piece)
        elif piece.dtype == tf.string:
            pieces.append(tf.gather(piece, first))
        else:  # turned into text at the one row named, not over the whole batch
            pieces.append(tf.strings.as_string(tf.gather(piece, first),
                                               shortest=piece.dtype.is_floating))
    return tf.debugging.Assert(tf.logical_not(tf.reduce_any(bad)), [tf.strings.join(pieces)])
