"""Reading logs to score, with dead letters: rows that cannot be read, found in one extra pass.

`read_scorable` reads one file with the fast reader (`logs.LogSource.dataset`, batches of NumPy
columns). That reader stops at the first row it cannot parse; the file's rest is then salvaged:

1. One streaming pass over the rows after the last one scored (CSV lines or TFRecord records,
   read in Python, never the whole file in memory). A cheap test of each row flags those the
   reader might reject (a wrong field count, quotes or a carriage return, a value that is not
   a plain number of its column's type, a non-finite or float32-overflowing float, an empty
   `timestamp` or `click` when those are read; a record that does not parse as a `tf.Example`,
   a feature of another kind, several values or a missing id). Each flagged row then goes
   through the reader's own parsing and checks of that one row (the same TensorFlow ops,
   traced once per file), so a row is a dead letter exactly when the reader rejects it, with
   the reader's reason. The other rows are copied, in order, to a plain temporary file.
2. The fast reader reads that clean copy; its rows are mapped back to the original line or
   record numbers.

A file with any number of bad rows thus costs one Python pass and one read of the copy (before:
one read of the file's remainder per bad row). Should the reader still fail on the copy (a
problem the cheap test does not flag), the row it names becomes a dead letter and the copy is
made again without it: correct, at the old cost for each such row.

A stream that cannot be read to its end (a corrupt or truncated gzip or TFRecord file) gets one
dead letter at its first lost row, "unreadable from here to the end of the file: <reason>"; the
complete rows before that point are scored. More than `max_dead_letters` dead letters in a file
stop the job (TooManyDeadLetters), as soon as the limit is passed.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import gzip
import logging
import math
import os
import re
import tempfile
import zlib
from typing import Iterator

import numpy as np

from core import log_diagnosis, log_schema, logs
from core.errors import InputError, from_tf_error, tf_reason

DEAD_LETTER = "dead_letter.csv"
DEAD_LETTER_HEADER = ("file", "row", "reason", "raw")
LOST = "unreadable from here to the end of the file: "

# What the cheap test lets through without asking TensorFlow (a value outside these may still
# be accepted by the reader: the reader decides).
_INT = re.compile(rb"[+-]?[0-9]{1,18}")
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


def read_scorable_files(files: list[log_schema.LogFile], schema: log_schema.LogSchema,
                        stored: dict, columns: tuple[str, ...], batch_size: int,
                        dead_letters: list, max_dead_letters: int) -> Iterator[tuple[int, dict]]:
    """Yields (i, batch) for the readable rows of every file in `files`, in file then row
    order, `batch` being what `read_scorable` yields for file i alone: the same rows in the
    same batches, so a model scores them to the same bits.

    All files go through one reader pipeline: opening one per file cost about 0.4 s a file,
    more than reading it (docs/BENCHMARKS.md). At the first error, the file being read is read
    again on its own from its last yielded row on (`read_scorable`, which salvages it; one
    more fast read of that file) and the pipeline restarts at the next file; so the rows and
    the dead letters are those of reading each file alone."""
    import tensorflow as tf

    first = 0
    while first < len(files) - 1:
        source = logs.LogSource(files[first:], schema, stored, outcomes=False)
        current, last_done = first, 0  # the file and row last yielded
        try:
            for batch in _streamed(source, batch_size, columns, batches_span_files=False
                                   ).as_numpy_iterator():
                index = batch.pop(logs.SOURCE_INDEX)
                if len(index):
                    current = first + int(index[0])
                    last_done = int(batch[logs.SOURCE_ROW][-1])
                    yield current, batch
            return
        except tf.errors.OpError:
            pass  # read_scorable meets the error again and salvages the file
        for batch in read_scorable(files[current], schema, stored, columns, batch_size,
                                   dead_letters, max_dead_letters, after_row=last_done):
            yield current, batch
        first = current + 1
    if first == len(files) - 1:  # one file left: read alone from the start
        for batch in read_scorable(files[first], schema, stored, columns, batch_size,
                                   dead_letters, max_dead_letters):
            yield first, batch


def read_scorable(log_file: log_schema.LogFile, schema: log_schema.LogSchema, stored: dict,
                  columns: tuple[str, ...], batch_size: int, dead_letters: list,
                  max_dead_letters: int, after_row: int = 0) -> Iterator[dict]:
    """Yields the readable rows of one file after row `after_row` in order, as dicts of NumPy
    columns [rows] of `columns` plus `logs.SOURCE_ROW` (the original line or record numbers),
    at most `batch_size` rows each; unreadable rows are appended to `dead_letters` (see the
    module docstring). Raises TooManyDeadLetters past `max_dead_letters`, and the reader's
    error when it is not about the input."""
    import tensorflow as tf

    source = logs.LogSource([log_file], schema, stored, outcomes=False)
    last_done = after_row  # the last row yielded (or skipped)
    try:
        for batch in _streamed(source, batch_size, columns).as_numpy_iterator():
            rows = batch[logs.SOURCE_ROW]
            if after_row and len(rows) and rows[0] <= after_row:
                batch = {k: v[rows > after_row] for k, v in batch.items()}
            if len(batch[logs.SOURCE_ROW]):
                last_done = int(batch[logs.SOURCE_ROW][-1])
                yield batch
        return
    except tf.errors.OpError as error:
        failure = error
    yield from _salvage(source, columns, batch_size, last_done, failure, dead_letters,
                        max_dead_letters)


def _streamed(source: logs.LogSource, batch_size: int, columns, batches_span_files=True):
    """The reader's dataset of `source` with CSV lines streamed, never a whole file in memory.

    The reader decompresses and splits a CSV file of up to `logs.WHOLE_FILE_BYTES` on disk in
    one op: faster for labelling, but it holds the file's text (a 64 MB .csv.gz is several
    hundred MB of text and strings). Scoring's time goes to inference, and streaming costs it
    nothing measurable (docs/BENCHMARKS.md), so its memory stays flat whatever the file's
    size."""
    import tensorflow as tf

    # tf.data's autotuner ran this reader at one of two speeds from run to run on 2 cores
    # (about 3 or 5.5 s per million rows); with its fixed defaults (parallel calls: the
    # cores) it runs at the faster one every time (docs/BENCHMARKS.md).
    options = tf.data.Options()
    options.autotune.enabled = False
    return source.dataset(batch_size, columns=columns, with_source=True, whole_files=False,
                          batches_span_files=batches_span_files).with_options(options)


def _salvage(source, columns, batch_size, last_done, error, dead_letters, limit):
    """The rows after `last_done` of a file whose reading failed with `error`."""
    import tensorflow as tf

    log_file = source.files[0]
    check = _RowCheck(source, columns)
    first_row = 2 if log_file.format == "csv" else 1
    skipped: set[int] = set()  # original rows given a dead letter here
    lost_noted = False
    failed_copy = None  # the clean copy whose reading raised `error` (None: the original)
    with tempfile.TemporaryDirectory(prefix="dwellrank-score-") as tmpdir:
        attempt = 0
        while True:
            attempt += 1
            start = max(first_row, last_done + 1)
            before = len(skipped)
            copy = _scan(log_file, check, start, skipped, os.path.join(tmpdir, f"clean-{attempt}"),
                         dead_letters, limit)
            progress = len(skipped) > before
            if copy.lost is not None and not lost_noted:
                lost_noted = progress = True
                dead_letters.append(DeadLetter(log_file.path, copy.end_row, LOST + copy.lost, ""))
                check_count(dead_letters, limit)
            if not progress:
                # Every row passed, yet the reader failed: the reader's own account decides.
                problem = log_diagnosis.translate_error(error)
                if problem is None:
                    raise error
                row = _original_row(problem, failed_copy, log_file)
                if row is None or row < start or row in skipped:
                    dead_letters.append(DeadLetter(log_file.path, start,
                                                   LOST + problem.reason, ""))
                    check_count(dead_letters, limit)
                    return
                dead_letters.append(DeadLetter(log_file.path, row, reason_of(problem),
                                               _unit_text(log_file, row)))
                check_count(dead_letters, limit)
                skipped.add(row)
                continue  # a new copy without that row
            if copy.file is None:
                return
            reader = logs.LogSource([copy.file], source.schema, source.stored_types,
                                    outcomes=False)
            try:
                for batch in _streamed(reader, batch_size, columns).as_numpy_iterator():
                    rows = copy.original(batch[logs.SOURCE_ROW])
                    batch[logs.SOURCE_ROW] = rows
                    batch[logs.SOURCE_FILE] = np.full(len(rows), log_file.path.encode(),
                                                      dtype=object)
                    if len(rows):
                        last_done = int(rows[-1])
                    yield batch
                return
            except tf.errors.OpError as copy_error:
                error, failed_copy = copy_error, copy


def _original_row(problem: InputError, failed_copy, log_file) -> int | None:
    if problem.row is None:
        return None
    if failed_copy is None:
        return problem.row if problem.file in (None, log_file.path) else None
    if problem.file not in (None, failed_copy.file.path):
        return None
    return int(failed_copy.original(np.array([problem.row]))[0])


# The Python pass ----------------------------------------------------------------------------------
class _RowCheck:
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
        self.typed = [(i, n, log_schema.INT_RE if schema.dtypes[n] == "int64" else log_schema.FLOAT_RE,
                       schema.dtypes[n]) for i, n in enumerate(schema.columns)
                      if schema.dtypes[n] != "string" and n in wanted]
        parse = source._parse_csv_batch if self.csv else source._parse_tfrecord_batch

        def reader_checks(path, row, payload):
            return source._finish(parse(path, row, payload, wanted), path, row,
                                  allow_unclicked_dwell=False, with_source=False)

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
                if not _INT.fullmatch(value):
                    return True
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
            if found is None and self.csv and "quote" not in error.message.lower():
                # (TensorFlow's own words are the clearer ones about quoting.)
                found = _csv_line_problem(unit.decode("utf-8", "replace"), len(self.columns),
                                          self.typed, self.path, row)
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


def _csv_line_problem(line, num_columns, typed, path, number):
    """The wording of `log_diagnosis.diagnose` for one CSV line (keep the two in step)."""
    try:
        fields = next(csv.reader([line]))
    except csv.Error as error:
        return InputError(f"is not valid CSV: {error}", file=path, row=number)
    if len(fields) != num_columns:
        return InputError(f"expected {num_columns} fields as in the header, found "
                          f"{len(fields)}", file=path, row=number)
    for index, name, pattern, kind in typed:
        value = fields[index]
        if value and not pattern.match(value):
            what = "an integer" if kind == "int64" else "a number"
            guess = "" if name in log_schema.FIXED_TYPES else (
                " (type inferred from the first rows; set it in the feature config "
                "if that guess was wrong)")
            return InputError(f"expected {what}{guess}, found '{value[:80]}'",
                              file=path, row=number, column=name)
    return None


class _Units:
    """A file's rows as bytes, streamed: CSV data lines without their line ends (`header` is
    line 1) or TFRecord records. Iterating yields (row, bytes); a stream that breaks off sets
    `lost` (the reason) and ends; `end_row` is then the first row not read."""

    def __init__(self, log_file: log_schema.LogFile):
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
        with log_schema.open_binary(self.log_file.path) as raw:
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
            self.lost = f"is corrupt or truncated ({tf_reason(error.message)})"


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


def _unit_text(log_file: log_schema.LogFile, row: int) -> str:
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
class _Copy:
    """A clean copy of a file's readable rows from `start` on (None: no row), and how its rows
    map back: copy row k (from the format's first row) is original row
    start + k' + (number of gaps at or before it), gaps being the original rows left out."""

    file: log_schema.LogFile | None
    first_row: int
    start: int
    gaps: np.ndarray  # t_i = gap_i - start - i (sorted): kept rows before the i-th gap
    lost: str | None
    end_row: int

    def original(self, rows: np.ndarray) -> np.ndarray:
        position = np.asarray(rows, dtype=np.int64) - self.first_row
        return self.start + position + np.searchsorted(self.gaps, position, side="right")


def _scan(log_file, check: _RowCheck, start: int, skipped: set, stem: str, dead_letters: list,
          limit: int) -> _Copy:
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
    return _Copy(log_schema.expand_inputs([path])[0] if kept else None, first_row, start, t,
                 units.lost, units.end_row)
