"""Dead letters: rows of logs to score that cannot be read, and the pass that finds them.

A `DeadLetter` names a row's file, line or record, the reason and the row as read;
`write_dead_letters` writes dead_letter.csv; `check_count` stops the job past
`--max_dead_letters`. `RowCheck` and `clean_copy` are the Python pass of
`pipelines.score.reading`'s salvage: one streaming pass over a file's rows from a given row on,
each row the reader might reject judged by the reader's own checks of that row (a dead letter
exactly when the reader rejects it, with its reason), the others copied to a clean file for the
fast reader.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import gzip
import logging
import math
import re
import zlib

import numpy as np

from core import log_diagnosis, log_files, log_schema, logs
from core.errors import InputError, from_tf_error, tf_reason

DEAD_LETTER = "dead_letter.csv"
DEAD_LETTER_HEADER = ("file", "row", "reason", "raw")
LOST = "unreadable from here to the end of the file: "

# What the cheap test lets through without asking TensorFlow (a value outside these may still
# be accepted by the reader: the reader decides).
_INT = re.compile(rb"[+-]?[0-9]{1,19}")
_FLOAT = re.compile(rb"(?i)[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)(e[+-]?[0-9]+)?|inf|infinity|nan)")
_FLOAT32_MAX = 3.4028234663852886e38
# Columns the reader requires a value of, when it reads them (see logs.LogSource).
_CSV_NEEDS_VALUE = ("timestamp", "click")
_RECORD_NEEDS_VALUE = ("timestamp", "click", "user_id", "item_id")
_KINDS = {"int64": "int64_list", "float32": "float_list", "string": "bytes_list"}


@dataclasses.dataclass
class DeadLetter:
    """A row that could not be scored: `row` is the CSV line (the header is line 1) or the
    TFRecord record (from 1), None when no row can be named; `raw` the row as read."""

    file: str
    row: int | None
    reason: str
    raw: str


class TooManyDeadLetters(InputError):
    pass


def check_count(dead_letters: list, limit: int) -> None:
    """Raises TooManyDeadLetters, naming the last one, when there are more than `limit`."""
    if len(dead_letters) > limit:
        last = dead_letters[-1]
        raise TooManyDeadLetters(f"more than {limit} unreadable rows (the last: {last.reason}); "
                                 "raise --max_dead_letters if that many are expected",
                                 file=last.file, row=last.row)


def write_dead_letters(path: str, dead_letters: list) -> None:
    """dead_letter.csv: a header and one row per DeadLetter, in the given order."""
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(DEAD_LETTER_HEADER)
        for letter in dead_letters:
            writer.writerow([letter.file, "" if letter.row is None else letter.row,
                             letter.reason, letter.raw])


def reason_of(problem: InputError) -> str:
    return problem.reason + (f" (column '{problem.column}')" if problem.column else "")


# The Python pass ----------------------------------------------------------------------------------
class RowCheck:
    """Whether one row of a file passes the reader: `suspicious` (cheap, may flag rows the
    reader accepts) then `problem` (the reader's parsing and checks of that row)."""

    def __init__(self, source: logs.LogSource, columns):
        import tensorflow as tf

        self.path = source.files[0].path
        self.csv = source.format == "csv"
        schema = source.schema
        self.columns = schema.columns
        wanted = set(columns)
        checked = [n for n in schema.columns if n in wanted]
        self.numeric = [(schema.columns.index(n), schema.dtypes[n], n in _CSV_NEEDS_VALUE)
                        for n in checked if schema.dtypes[n] != "string"]
        self.needs_value = [schema.columns.index(n) for n in checked
                            if n in _CSV_NEEDS_VALUE and schema.dtypes[n] == "string"]
        self.kinds = {n: (_KINDS[source.stored_types[n]], n in _RECORD_NEEDS_VALUE)
                      for n in checked if n in source.stored_types}
        # diagnose's account of a CSV line the reader rejects without naming it.
        self.typed = [(i, n, log_schema.INT64_TEXT if schema.dtypes[n] == "int64"
                       else log_schema.FLOAT_RE,
                       schema.dtypes[n]) for i, n in enumerate(schema.columns)
                      if schema.dtypes[n] != "string" and n in wanted]
        parse = source._parse_csv_batch if self.csv else source._parse_tfrecord_batch

        def reader_checks(path, row, payload):
            return source._finish(parse(path, row, payload, wanted), path, row,
                                  allow_unclicked_dwell=False)

        self._reader = tf.function(reader_checks, autograph=False, input_signature=[
            tf.TensorSpec([None], tf.string), tf.TensorSpec([None], tf.int64),
            tf.TensorSpec([None], tf.string)])

    def suspicious(self, unit: bytes) -> bool:
        if not self.csv:
            return self._suspicious_record(unit)
        if b'"' in unit or b"\r" in unit:
            return True
        fields = unit.split(b",")
        if len(fields) != len(self.columns):
            return True
        for index in self.needs_value:
            if not fields[index]:
                return True
        for index, kind, needs_value in self.numeric:
            value = fields[index]
            if not value:
                if needs_value:
                    return True
                continue
            if kind == "int64":
                if not _INT.fullmatch(value) or not -(1 << 63) <= int(value) < (1 << 63):
                    return True  # 19 digits may lie past int64, which the reader refuses
            elif not _FLOAT.fullmatch(value):
                return True
            else:
                number = float(value)
                if not math.isfinite(number) or (kind == "float32"
                                                 and abs(number) > _FLOAT32_MAX):
                    return True
        return False

    def _suspicious_record(self, record: bytes) -> bool:
        import tensorflow as tf

        try:
            features = tf.train.Example.FromString(record).features.feature
        except Exception:  # noqa: BLE001 - any parse failure: let the reader judge
            return True
        for name, (kind, needs_value) in self.kinds.items():
            if name not in features:
                if needs_value:
                    return True
                continue
            feature = features[name]
            which = feature.WhichOneof("kind")
            count = 0 if which is None else len(getattr(feature, which).value)
            if (which is not None and which != kind) or count > 1 or (needs_value and not count):
                return True
            if which == "float_list" and count and not math.isfinite(feature.float_list.value[0]):
                return True  # the reader refuses a NaN or an infinity
        return False

    def problem(self, unit: bytes, row: int) -> InputError | None:
        """The reader's error for this row alone (naming the original file and row), or None
        if the reader accepts it."""
        import tensorflow as tf

        try:
            self._reader(tf.constant([self.path]), tf.constant([row], tf.int64),
                         tf.constant([unit]))
            return None
        except tf.errors.OpError as error:
            found = from_tf_error(error)
            if found is None and self.csv:
                found = log_diagnosis.csv_line_problem(
                    unit.decode("utf-8", "replace"), self.columns, self.typed, self.path, row,
                    # The SavedModel's types (impression_id's is this input's own).
                    given={name: "model" for _, name, _, _ in self.typed
                           if name not in log_schema.NON_FEATURE_COLUMNS})
            return found or InputError(_op_reason(error.message), file=self.path, row=row,
                                       row_kind="line" if self.csv else "record")


def _op_reason(message: str) -> str:
    """The failing op's own words in a TensorFlow error of a traced function (its message may
    start "Graph execution error: Detected at node ..." with the Python frames)."""
    if message.startswith("Graph execution error"):
        lines = message.splitlines()
        frames = [k for k, line in enumerate(lines) if line.startswith("  File ")]
        if frames:
            message = "\n".join(line for line in lines[frames[-1] + 1:] if line.strip())
    return tf_reason(message)


class _Units:
    """A file's rows as bytes, streamed: CSV data lines without their line ends (`header` is
    line 1) or TFRecord records. Iterating yields (row, bytes); a stream that breaks off sets
    `lost` (the reason) and ends; `end_row` is then the first row not read."""

    def __init__(self, log_file: log_files.LogFile):
        self.log_file = log_file
        self.header = b""
        self.lost: str | None = None
        self.end_row = 2 if log_file.format == "csv" else 1

    def __iter__(self):
        if self.log_file.format == "csv":
            yield from self._lines()
        else:
            yield from self._records()

    def _lines(self):
        with log_files.open_binary(self.log_file.path) as raw:
            handle = gzip.GzipFile(fileobj=raw, mode="rb") if self.log_file.gzip else raw
            # Each line is yielded once the next one is read: a line without its line end
            # just before a break in the stream is incomplete and counts as lost.
            pending = None
            try:
                self.header = handle.readline().rstrip(b"\n").removesuffix(b"\r")
                for line in handle:
                    if pending is not None:
                        yield self.end_row, pending.rstrip(b"\n").removesuffix(b"\r")
                        self.end_row += 1
                    pending = line
            except (OSError, EOFError, zlib.error) as error:
                self.lost = f"is corrupt or truncated ({error})"
                if pending is None or not pending.endswith(b"\n"):
                    return
            if pending is not None:
                yield self.end_row, pending.rstrip(b"\n").removesuffix(b"\r")
                self.end_row += 1

    def _records(self):
        import tensorflow as tf

        options = tf.io.TFRecordOptions(compression_type="GZIP" if self.log_file.gzip else "")
        # tf_record_iterator streams records in C++ one by one (tf.data would lose the
        # records of a batch that holds the break); quiet its deprecation notice.
        with _quiet_tf_logger():
            records = tf.compat.v1.io.tf_record_iterator(self.log_file.path, options)
        try:
            for record in records:
                yield self.end_row, record
                self.end_row += 1
        except tf.errors.OpError as error:
            reason = log_files.damage_reason(error.message, self.log_file.gzip)
            self.lost = f"is corrupt or truncated ({reason})"
            return
        # A GZIP stream cut after a flush at a record's end reads as whole: its records are,
        # the rest is lost.
        if log_files.gzip_damage(self.log_file) == log_files.GZIP_CUT:
            self.lost = f"is corrupt or truncated ({log_files.GZIP_CUT})"


@contextlib.contextmanager
def _quiet_tf_logger():
    import tensorflow as tf

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def unit_text(log_file: log_files.LogFile, row: int) -> str:
    """Row `row` of a file as text (`raw` of a dead letter), "" when the file has no such row."""
    for number, unit in _Units(log_file):
        if number == row:
            return _raw_text(unit)
    return ""


def _raw_text(unit: bytes) -> str:
    try:
        return unit.decode("utf-8")
    except UnicodeDecodeError:
        return unit.hex()


@dataclasses.dataclass
class CleanCopy:
    """A clean copy of a file's readable rows from `start` on (None: no row), and how its rows
    map back: copy row k (from the format's first row) is original row
    start + k' + (number of gaps at or before it), gaps being the original rows left out."""

    file: log_files.LogFile | None
    first_row: int
    start: int
    gaps: np.ndarray  # t_i = gap_i - start - i (sorted): kept rows before the i-th gap
    lost: str | None
    end_row: int

    def original(self, rows: np.ndarray) -> np.ndarray:
        position = np.asarray(rows, dtype=np.int64) - self.first_row
        return self.start + position + np.searchsorted(self.gaps, position, side="right")


def clean_copy(log_file, check: RowCheck, start: int, skipped: set, stem: str,
               dead_letters: list, limit: int) -> CleanCopy:
    """One pass over the rows from `start` on: new dead letters appended (and added to
    `skipped`), the others copied to a plain file `stem`.csv|.tfrecord."""
    import tensorflow as tf

    units = _Units(log_file)
    csv_format = log_file.format == "csv"
    path = stem + (".csv" if csv_format else ".tfrecord")
    gaps: list[int] = []
    kept = 0
    with contextlib.ExitStack() as stack:
        write = None
        for row, unit in units:
            if row < start:
                continue
            if row in skipped or (csv_format and not unit.strip()):
                gaps.append(row)  # blank lines: the reader skips them too
                continue
            if check.suspicious(unit):
                problem = check.problem(unit, row)
                if problem is not None:
                    dead_letters.append(DeadLetter(log_file.path, row, reason_of(problem),
                                                   _raw_text(unit)))
                    check_count(dead_letters, limit)
                    skipped.add(row)
                    gaps.append(row)
                    continue
            if write is None:
                if csv_format:
                    handle = stack.enter_context(open(path, "wb"))
                    handle.write(units.header + b"\n")
                    write = lambda line, handle=handle: handle.write(line + b"\n")  # noqa: E731
                else:
                    write = stack.enter_context(tf.io.TFRecordWriter(path)).write
            write(unit)
            kept += 1
    first_row = 2 if csv_format else 1
    # A copy row's original number: start + its position + the gaps before it.
    t = np.asarray(gaps, dtype=np.int64) - start - np.arange(len(gaps), dtype=np.int64)
    return CleanCopy(log_files.log_file(path) if kept else None, first_row, start, t,
                 units.lost, units.end_row)
