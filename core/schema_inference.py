"""Schema inference (SPEC §2): the columns and types of a set of logs, from a sample of them.

`infer_schema` is how the reader (`core.logs.open_logs`) types the logs of every job: each column
as given (--column_types, the statistics job's artifact, a model's features) or as its sample
reads, with the header and the required columns checked. The types are `core.log_schema`'s:
any column other than the fixed ones (SPEC §2) is int64 if every sampled value is an integer
int64 holds, a string if they are all integers but some lie beyond int64, float32 if every
sampled value is a number, else a string; numbers are what TensorFlow's parser reads (no '+'
on an integer, "inf" but not "Infinity"), and numbers among which a missing-value marker
(NULL, \\N, NA, ...), "Infinity" or a '+'-signed integer would make the column text are
refused (a missing value is an empty field).

The sample is the first `SAMPLE_ROWS` rows of each file (up to `SAMPLE_FILES` files, more while
no row has been seen; a column empty on all of them, up to `SPARSE_SAMPLE_ROWS` rows of those
files, then as many of the last `LAST_SAMPLE_FILES`): a column that turns out to hold another
type further down is reported with its row by the reader, and its type can be given instead
(`core.log_schema.ReadConfig`). The features of TFRecords are the keys of the first
`SPARSE_SAMPLE_ROWS` records of the first `SAMPLE_FILES` files and of the last
`LAST_SAMPLE_FILES` (each file's first `SAMPLE_ROWS` at least, and past those at most
`SPARSE_SAMPLE_BYTES` of records): a tf.Example leaves a sparse feature out, so one may first
appear far down, and a feature a writer added later appears only in the later files.
"""

from __future__ import annotations

import collections
import csv
import zlib
from typing import Iterable, Mapping, Sequence

from core.errors import InputError
from core.log_files import LogFile, files_text, open_text, tfrecord_damage
from core.log_schema import (
    ANY_INT_RE,
    DTYPES,
    FIXED_TYPES,
    FLOAT_RE,
    LABEL_COLUMNS,
    REQUIRED_COLUMNS,
    AbsentTypedColumns,
    LogSchema,
    fits_int64,
    unreadable_number,
)

SAMPLE_ROWS = 1000
SAMPLE_FILES = 10
# TFRecord inputs are also sampled in their last files (in name order, usually the latest
# days): a feature a log's writer added later is in no first file, and a tf.Example leaves no
# header to say it exists.
LAST_SAMPLE_FILES = 3
# A CSV column empty on every sampled row (a sparse feature: a count, a rating given by few) is
# sampled further, up to this many rows of the first files, before it is typed: with no value
# seen it is read as text, and its numbers would be hashed as words.
SPARSE_SAMPLE_ROWS = 100_000
# ... and, for TFRecords (whose features no header lists), at most this many bytes of records
# past each file's first SAMPLE_ROWS (records holding article bodies are large).
SPARSE_SAMPLE_BYTES = 64 << 20


def _odd_value_among_numbers(values: Sequence[str]) -> tuple[str, str] | None:
    """(value, why) for the first value of a column's sampled CSV text that `unreadable_number`
    explains when the others hold at least one number and nothing but numbers; else None (a
    text column, or one of markers alone: a sparse text column of a database's NULLs)."""
    present = [value for value in values if value != ""]
    numbers = [v for v in present if unreadable_number(v) is None]
    if not numbers or not all(FLOAT_RE.match(v) for v in numbers):
        return None
    integers = all(fits_int64(v) for v in numbers)
    for value in present:
        why = unreadable_number(value, integers)
        if why is not None:
            return value, why
    return None


def _infer_value_type(values: Iterable[str]) -> str:
    """int64 when every non-empty value is an integer int64 holds; string when they are all
    integers but some lie beyond int64 (a 20-digit id, which float32 would round to one value
    for many ids) or carry a '+' sign (which `_odd_value_among_numbers` refuses first where
    the type is inferred); float32 when every value is a number; else (or with no value)
    string."""
    present = [value for value in values if value != ""]
    if not present:
        return "string"
    if all(fits_int64(value) for value in present):
        return "int64"
    if all(ANY_INT_RE.match(value) for value in present):
        return "string"
    return "float32" if all(FLOAT_RE.match(value) for value in present) else "string"


def _line_end_problem(log_file: LogFile) -> str | None:
    """What is wrong with the line ends of CSV `log_file`, by its first line (at most 64 KiB),
    for the reader, which ends lines at LF and strips one CR before it: a CR alone
    (Excel for Mac's "CSV (Macintosh)", lineterminator='\\r') makes the file one line; CR CR
    LF leaves a CR at the end of every line (`core.logs` strips one). None for LF and CRLF."""
    with open_text(log_file, newline="\n") as text:
        first = text.readline(1 << 16)
    if first.endswith("\r\r\n"):
        return ("ends its lines with CR CR LF (a CSV writer given a file opened in text mode on "
                "Windows, without newline=''), which leaves a CR in every line; write it with "
                "LF or CRLF line ends")
    if "\r" in first.removesuffix("\n").removesuffix("\r"):
        return ("ends its lines with a carriage return (CR) alone (a Mac spreadsheet's CSV?), "
                "which TensorFlow's reader reads as one line; write it with LF or CRLF line "
                "ends, e.g. tr '\\r' '\\n' < FILE > NEW")
    return None


def _csv_header_and_sample(log_file: LogFile, limit: int) -> tuple[list[str], list[list[str]]]:
    header, rows = None, []
    try:
        problem = _line_end_problem(log_file)
        if problem is not None:
            raise InputError(problem, file=log_file.path)
        with open_text(log_file) as text:
            reader = csv.reader(text)
            try:
                header = next(reader)
            except StopIteration:
                raise InputError("is empty; expected a CSV header line",
                                 file=log_file.path) from None
            for row in reader:
                if not row or row == [""]:
                    continue
                rows.append(row)
                if len(rows) >= limit:
                    break
    except (OSError, EOFError, zlib.error) as error:
        # A gzip stream cut short or corrupt: the rows read before sample the types; the damage
        # is the reading's to report (an error, or in scoring dead letters: `gzip_damage`), as
        # for a file damaged past the sample.
        if header is None or not log_file.gzip or isinstance(error, FileNotFoundError):
            raise InputError(f"is corrupt or truncated ({error})", file=log_file.path) from None
    except UnicodeDecodeError as error:
        head = error.object[:4096]
        if error.start == 0 and head[:2] in (b"\xff\xfe", b"\xfe\xff"):
            why = ("it starts with a UTF-16 byte order mark (a spreadsheet's 'Unicode Text'?): "
                   "save it as UTF-8 CSV")
        elif head.count(0) > len(head) // 4:  # every other byte of ASCII text
            why = "a quarter of its bytes are NUL: UTF-16? save it as UTF-8 CSV"
        else:
            why = "expected a CSV log"
        raise InputError(f"is not UTF-8 text ({error.reason} at byte {error.start}); {why}",
                         file=log_file.path) from None
    except csv.Error as error:
        raise InputError(f"is not valid CSV: {error}", file=log_file.path) from None
    header = [h.strip() for h in header]
    return header, rows


def _check_header(header: list[str], path: str,
                  required: Sequence[str] = REQUIRED_COLUMNS) -> None:
    if not any(header):
        raise InputError("has an empty header line; expected column names", file=path, row=1)
    seen = set()
    for name in header:
        if not name:
            raise InputError("has an empty column name in its header", file=path, row=1)
        if name in seen:
            raise InputError(f"names column '{name}' twice in its header", file=path, row=1)
        seen.add(name)
    for name in required:
        if name not in seen:
            raise InputError(f"missing required column '{name}' (the header has: "
                             f"{_shown_header(header)}){_header_hint(header, name)}",
                             file=path, row=1)


def _shown_header(header: list[str]) -> str:
    text = ", ".join(header).replace("\x00", "")  # (UTF-16's NUL bytes, not printed)
    return text if len(text) <= 300 else text[:300] + "..."


def _header_hint(header: list[str], missing: str) -> str:
    """Why a header may lack `missing`: UTF-16 text, another separator, a name's case."""
    if any("\x00" in name for name in header):
        return "; its text holds NUL bytes: UTF-16? save the file as UTF-8"
    if len(header) == 1:
        for separator, called in (("\t", "tabs"), (";", "semicolons"), ("|", "'|'")):
            if separator in header[0]:
                return (f"; one column, its names separated by {called}: the logs are read as "
                        "comma-separated CSV")
    cased = [name for name in header if name.lower() == missing.lower()]
    if cased:
        return f"; it has '{cased[0]}': column names are case-sensitive"
    return ""


def infer_schema(files: Sequence[LogFile], column_types: Mapping[str, str] | None,
                 required: Sequence[str] = REQUIRED_COLUMNS, sparse_typed: bool = False,
                 unseen_types: Mapping[str, str] | None = None, dead_letters: bool = False
                 ) -> tuple[LogSchema, dict[str, str], tuple[str, ...]]:
    """The columns and types of `files` (see the module docstring for the rules), `stored`:
    each TFRecord feature's stored kind ({} for CSV), and, with `sparse_typed` (a model's
    features), the typed columns no sampled record has a value of: TFRecord features no
    sampled record holds, made columns of their given type (a tf.Example leaves out a feature
    it has no value for), and CSV columns empty on every sampled row; read as their default.
    `unseen_types` ({column: type}: the statistics job's logs' types, from its artifact) types
    a CSV column with no value in the sample (else text): logs of days a sparse feature left
    empty then read it as the logs the statistics were computed from do. (A TFRecord feature
    no sampled record holds is not added: it may be one these logs never have.) The columns
    so typed keep the artifact's type where later rows here disagree: the error then names the
    column and the --column_types remedy, as for a type inferred here. With `dead_letters`
    (batch scoring, whose reader sets unreadable records aside), a sampled TFRecord that is not
    a tf.Example or a file whose first record is damaged is left out of the sample, and a
    feature stored as two kinds takes the kind most sampled records hold: the records that
    differ become dead letters when read, wherever they are in a file.

    Raises InputError for a missing required column, differing CSV headers, empty input, a
    required column of the wrong type, or an unknown type in `column_types`;
    AbsentTypedColumns for other typed columns the logs lack.
    """
    column_types = dict(column_types or {})
    for name, kind in column_types.items():
        if kind not in DTYPES:
            raise InputError(f"type '{kind}' of column '{name}' is not one of {', '.join(DTYPES)}")
        if name in FIXED_TYPES and kind != FIXED_TYPES[name]:
            raise InputError(f"column '{name}' is always {FIXED_TYPES[name]}; cannot make it {kind}")
    unseen_types = {name: kind for name, kind in (unseen_types or {}).items()
                    if kind in DTYPES and name not in FIXED_TYPES and name not in LABEL_COLUMNS
                    and name not in column_types}
    if files[0].format == "csv":
        columns, samples = _sample_csv(files, required)
        unseen_typed = tuple(c for c in columns if c in unseen_types and not any(samples[c]))
        inferred = {c: (unseen_types[c] if c in unseen_typed else _infer_value_type(samples[c]))
                    for c in columns}
        # Numbers with a value that would make the column text, unless a model reads these
        # logs (its columns typed, the others unread) or the statistics job's logs had it as
        # text (an artifact made before this check: the label and training jobs read it so).
        for name in () if sparse_typed else columns:
            odd = (None if name in column_types or name in FIXED_TYPES or name in unseen_typed
                   or unseen_types.get(name) == "string"
                   else _odd_value_among_numbers(samples[name]))
            if odd is not None:
                path, line = _first_line_holding(files, columns, name, odd[0])
                raise InputError(
                    f"the sampled first rows of {files_text(files[:SAMPLE_FILES])} hold numbers "
                    f"and '{odd[0][:80]}': {odd[1]}; or, if the column is text, give "
                    f"--column_types={name}:string to the statistics job (which keeps it for "
                    "the label and training jobs) or to validation", file=path, row=line,
                    column=name)
        stored = {}
    else:
        columns, inferred = _sample_tfrecord(files, required, dead_letters)
        stored = dict(inferred)
    dtypes = {}
    for name in columns:
        dtypes[name] = column_types.get(name, FIXED_TYPES.get(name, inferred[name]))
    absent = [name for name in column_types if name not in dtypes]
    if absent and sparse_typed and files[0].format == "tfrecord":
        columns = list(columns) + absent
        for name in absent:
            dtypes[name] = stored[name] = column_types[name]
    elif absent:
        raise AbsentTypedColumns(absent, columns, files[0].path)
    if sparse_typed and files[0].format == "csv":
        # A model's feature column empty on every sampled row (a failed join upstream) reads
        # as its default everywhere, as a feature no sampled tf.Example holds: said the same.
        absent = [name for name in columns if name in column_types and not any(samples[name])]
    for name, kind in stored.items():
        if kind == "string" and dtypes[name] != "string":
            raise InputError(f"feature '{name}' is stored as bytes; it cannot be read as "
                             f"{dtypes[name]}", file=files[0].path, column=name)
    return LogSchema(tuple(columns), dtypes), stored, tuple(absent)


def _sample_csv(files: Sequence[LogFile], required: Sequence[str] = REQUIRED_COLUMNS
                ) -> tuple[list[str], dict[str, list[str]]]:
    header0 = None
    samples: dict[str, list[str]] = {}
    sampled = 0
    for index, log_file in enumerate(files):
        # Every header is checked (cheap); rows are sampled from the first files only, and from
        # more files while no data row has been seen (so empty input is recognised).
        take = SAMPLE_ROWS if (index < SAMPLE_FILES or sampled == 0) else 0
        header, rows = _csv_header_and_sample(log_file, max(take, 1))
        if header0 is None:
            _check_header(header, log_file.path, required)
            header0 = header
            samples = {c: [] for c in header}
        elif header != header0:
            raise InputError(f"has header {','.join(header)}, unlike {files[0].path} "
                             f"({','.join(header0)}); all files of one input need the same columns",
                             file=log_file.path, row=1)
        if take:
            for row in rows:
                if len(row) != len(header0):
                    continue  # reported with its line number when the file is read
                for name, value in zip(header0, row):
                    samples[name].append(value)
            sampled += len(rows)
    if sampled == 0:
        raise InputError(f"the input has no rows: {files_text(files)} "
                         f"{'holds' if len(files) == 1 else 'hold'} only a header")
    _sample_sparse_columns(files, header0, samples)
    return header0, samples


def _first_line_holding(files: Sequence[LogFile], header: list[str], name: str, value: str
                        ) -> tuple[str | None, int | None]:
    """(path, line) of the first sampled CSV row whose column `name` is `value`, so that an
    error can name it; (None, None) if it is not found. The rows are searched in the order the
    sample took them: each file's first SAMPLE_ROWS rows as `_sample_csv` takes them, then the
    rows `_sample_sparse_columns` reads (for a column empty on all of those). Lines are counted
    as the reader counts them (LF ends a line; the header is line 1). Only on the way to an
    error: the sample itself keeps no line numbers, and nothing here may replace the error."""
    column = header.index(name)

    def search(log_file: LogFile, limit: int) -> tuple[int | None, int]:
        """(the line holding `value` or None, rows read) over the first `limit` non-blank
        rows of `log_file`."""
        rows = 0
        try:
            with open_text(log_file, newline="\n") as text:
                for number, line in enumerate(text, 1):
                    if number == 1:
                        continue  # the header
                    try:
                        row = next(csv.reader([line.removesuffix("\n").removesuffix("\r")]), [])
                    except csv.Error:
                        row = None
                    if row is not None and (not row or row == [""]):
                        continue  # a blank line, which the sample skips too
                    rows += 1
                    if row is not None and len(row) == len(header) and row[column] == value:
                        return number, rows
                    if rows >= limit:
                        break
        except Exception:  # noqa: BLE001 - the sample stopped there too; the reader names it
            pass
        return None, rows

    sampled = 0
    for index, log_file in enumerate(files):  # as `_sample_csv`
        if index < SAMPLE_FILES or sampled == 0:
            line, rows = search(log_file, SAMPLE_ROWS)
            if line is not None:
                return log_file.path, line
            sampled += rows
    first = files[:SAMPLE_FILES]  # as `_sample_sparse_columns`
    for group in (first, [f for f in files[-LAST_SAMPLE_FILES:] if f not in first]):
        budget = SPARSE_SAMPLE_ROWS
        for log_file in group:
            if budget <= 0:
                break
            line, rows = search(log_file, budget)
            if line is not None:
                return log_file.path, line
            budget -= rows
    return None, None


def _sample_sparse_columns(files: Sequence[LogFile], header: list[str],
                           samples: dict[str, list[str]]) -> None:
    """Adds to `samples` the values of the columns empty on every sampled row, read from up to
    SPARSE_SAMPLE_ROWS rows of the first files (counted from each file's start), then, for
    those still empty, as many of the last LAST_SAMPLE_FILES files (a column filled only since
    a later day, as a TFRecord log's feature its writer added later comes out of the label
    job). A file that cannot be read that far ends the search: the reader names its problem
    with its line."""
    sparse = [i for i, name in enumerate(header)
              if name not in FIXED_TYPES and not any(samples[name])]
    first = files[:SAMPLE_FILES]
    last = [f for f in files[-LAST_SAMPLE_FILES:] if f not in first]
    for group in (first, last):
        budget = SPARSE_SAMPLE_ROWS
        for log_file in group:
            if not sparse or budget <= 0:
                break
            try:
                _, rows = _csv_header_and_sample(log_file, budget)
            except InputError:
                return
            budget -= len(rows)
            for row in rows:
                if len(row) == len(header):
                    for i in sparse:
                        if row[i]:
                            samples[header[i]].append(row[i])
            sparse = [i for i in sparse if not any(samples[header[i]])]


_STORED_KINDS = {"int64_list": "int64", "float_list": "float32", "bytes_list": "string"}


def _record_kinds(record: bytes) -> dict[str, str] | None:
    """{feature: stored kind} of a serialized tf.Example (features without a value list left
    out), or None if the record is not one."""
    import tensorflow as tf

    try:
        example = tf.train.Example.FromString(record)
    except Exception:
        return None
    return {name: _STORED_KINDS[kind] for name, feature in example.features.feature.items()
            if (kind := feature.WhichOneof("kind")) is not None}


def _sample_sparse_features(records, path: str, kinds: dict, first_seen: dict, sampled: int,
                            read_bytes: int) -> tuple[int, int]:
    """Adds to `kinds` the features first seen in `records` (a file's records after its first
    SAMPLE_ROWS), read until SPARSE_SAMPLE_ROWS records are sampled in all or
    SPARSE_SAMPLE_BYTES read past the first rows: a tf.Example leaves a sparse feature out, so
    one may first appear far down, and no header lists it. Anything wrong down there (a record
    that is not an Example, another kind, corruption) is left to the reader, which names it, or
    makes a dead letter of it when scoring. Returns the updated (sampled, read_bytes)."""
    import tensorflow as tf

    number = SAMPLE_ROWS
    try:
        for batch in records.take(SPARSE_SAMPLE_ROWS - sampled).batch(256).as_numpy_iterator():
            for record in batch:
                number += 1
                read_bytes += len(record)
                for name, kind in (_record_kinds(record) or {}).items():
                    if name not in kinds:
                        kinds[name] = kind
                        first_seen[name] = f"{path} record {number}"
            sampled += len(batch)
            if read_bytes >= SPARSE_SAMPLE_BYTES:
                break
    except tf.errors.OpError:
        pass
    return sampled, read_bytes


def _sample_tfrecord(files: Sequence[LogFile], required: Sequence[str] = REQUIRED_COLUMNS,
                     dead_letters: bool = False) -> tuple[list[str], dict[str, str]]:
    import tensorflow as tf

    kinds: dict[str, str] = {}
    first_seen: dict[str, str] = {}
    kind_counts: collections.Counter = collections.Counter()  # (feature, kind) -> records
    unreadable: InputError | None = None  # with `dead_letters`: the first record left out
    sampled = sparse_bytes = 0
    for index, log_file in enumerate(files):
        if index >= SAMPLE_FILES and sampled and index < len(files) - LAST_SAMPLE_FILES:
            continue
        dataset = tf.data.TFRecordDataset(log_file.path, "GZIP" if log_file.gzip else "")
        number = 0

        def sample(records, log_file=log_file):
            nonlocal number, unreadable
            for record in records:
                number += 1
                found = _record_kinds(record)
                if found is None:
                    error = InputError("is not a serialized tf.Example", file=log_file.path,
                                       row=number, row_kind="record")
                    if not dead_letters:
                        raise error
                    unreadable = unreadable or error
                    continue
                for name, kind in found.items():
                    previous = kinds.setdefault(name, kind)
                    first_seen.setdefault(name, f"{log_file.path} record {number}")
                    kind_counts[name, kind] += 1
                    if previous != kind and not dead_letters:
                        raise InputError(f"is {kind} here but {previous} in "
                                         f"{first_seen[name]}; a feature needs one type",
                                         file=log_file.path, row=number, column=name,
                                         row_kind="record")

        # Read in batches: a record at a time costs 70 us, parsing one 3 to 5.
        try:
            for records in dataset.take(SAMPLE_ROWS).batch(256).as_numpy_iterator():
                sample(records)
                sampled += len(records)
        except tf.errors.OpError as error:
            # The records before a break sample the kinds (the batch that held it is read
            # again a record at a time); the break is the reading's to report (an error, or
            # in scoring a dead letter from there on). A file without one is refused here,
            # except in scoring, whose reader makes it a dead letter.
            whole = []
            try:
                for record in dataset.skip(number).take(SAMPLE_ROWS - number):
                    whole.append(record.numpy())
            except tf.errors.OpError:
                pass
            if number == 0 and not whole:
                if not dead_letters:
                    raise tfrecord_damage(log_file, error.message) from None
                unreadable = unreadable or tfrecord_damage(log_file, error.message)
                continue
            sample(whole)
            sampled += len(whole)
            continue
        if number == SAMPLE_ROWS and sampled < SPARSE_SAMPLE_ROWS and \
                sparse_bytes < SPARSE_SAMPLE_BYTES:
            sampled, sparse_bytes = _sample_sparse_features(
                dataset.skip(SAMPLE_ROWS), log_file.path, kinds, first_seen, sampled,
                sparse_bytes)
    if not kinds and unreadable is not None:  # no record to take a schema from
        raise unreadable
    if sampled == 0:
        raise InputError(f"the input has no records: {files_text(files)}")
    if dead_letters:  # the kind most sampled records hold (a tie: the first seen)
        for name, first in kinds.items():
            held = [kind for (n, kind) in kind_counts if n == name]
            if held:
                kinds[name] = max(held, key=lambda k: (kind_counts[name, k], k == first))
    for name in required:
        if name not in kinds:
            raise InputError(f"missing required feature '{name}' in the first records (features: "
                             f"{', '.join(sorted(kinds))})", file=files[0].path)
    allowed = {"timestamp": ("int64",), "click": ("int64",), "dwell_time": ("float32", "int64"),
               "user_id": ("string", "int64"), "item_id": ("string", "int64"),
               "impression_id": ("string", "int64")}
    for name, ok in allowed.items():
        if name in kinds and kinds[name] not in ok:
            raise InputError(f"feature '{name}' is {kinds[name]}; expected "
                             f"{' or '.join(ok)}", file=first_seen[name].rsplit(" record ", 1)[0],
                             column=name)
    columns = ([c for c in REQUIRED_COLUMNS if c in kinds]
               + sorted(set(kinds) - set(REQUIRED_COLUMNS)))
    return columns, kinds
