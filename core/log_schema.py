"""The log contract (SPEC §2): column names and types.

`LogSchema` (columns in file order and their types); the schema inference (`infer_schema`)
samples the input files (`core.log_files`); `ReadConfig` is the --column_types setting
(of the statistics job, `pipelines.validate` and its `describe`; `parse_column_types` checks
its entries). The reader (`core.logs`), the writers
(`core.log_writers`) and error diagnosis (`core.log_diagnosis`) build on this module.

Column types follow SPEC §2: `user_id`, `item_id` and `impression_id` are always strings;
`timestamp` and `click` are int64; `dwell_time` is float64 (seconds); any other CSV column is
int64 if every sampled value is an integer int64 holds, a string if they are all integers but
some lie beyond int64, float32 if every sampled value is a number, else a string; numbers are
what TensorFlow's parser reads (no '+' on an integer, "inf" but not "Infinity"), and numbers
among which a missing-value marker (NULL, \\N, NA, ...), "Infinity" or a '+'-signed integer
would make the column text are refused (a missing value is an empty field). The sample is
the first `SAMPLE_ROWS` rows of each file (up to `SAMPLE_FILES` files; a column empty on all
of them, up to `SPARSE_SAMPLE_ROWS` rows of those files): a column that turns out
to hold another type further down is reported with its row, and its type can be given
instead (`ReadConfig`: --column_types of the statistics job, kept in its artifact for the
label and training jobs; `column_types` of `core.logs.open_logs`). Empty feature values take
the type's default (0, 0.0 or ""). In a `tf.Example` the same names and types apply
(int64_list, float_list, bytes_list); ids may be int64_list; `dwell_time` may be int64_list;
floats read as an int64 column must be whole. The features of TFRecords are the keys of the
first `SPARSE_SAMPLE_ROWS` records of the first `SAMPLE_FILES` files and of the last
`LAST_SAMPLE_FILES` (each file's first `SAMPLE_ROWS` at least, and past those at most
`SPARSE_SAMPLE_BYTES` of records): a tf.Example leaves a sparse feature out, so one may first
appear far down, and a feature a writer added later appears only in the later files.

CSV files have one record per line (quoted fields may contain commas but not line breaks), a
header line first, optional UTF-8 BOM and CRLF line ends; blank lines are skipped. Lines are
numbered as in a text editor: the header is line 1. TFRecord records are numbered from 1.
"""

from __future__ import annotations

import csv
import dataclasses
import re
import types
import zlib
from typing import Iterable, Mapping, Sequence

from core.errors import InputError
from core.log_files import LogFile, files_text, open_text, tfrecord_damage
from core.settings import setting

REQUIRED_COLUMNS = ("user_id", "item_id", "timestamp", "click", "dwell_time")
# Columns that are never model features (besides the reserved label names).
NON_FEATURE_COLUMNS = ("impression_id", "timestamp", "click", "dwell_time")
# Names the label job adds; input logs may not use them for anything else.
LABEL_COLUMNS = ("valid_read", "valid_read_rule", "ndt", "log_dwell", "dwell_bin")
# impression_id is passed through to scores as it is written (SPEC §2), so it is text: an id
# of 20 digits or with leading zeros comes out as it went in, and its values never decide
# whether a row can be scored.
FIXED_TYPES = {"user_id": "string", "item_id": "string", "timestamp": "int64", "click": "int64",
               "dwell_time": "float64", "impression_id": "string"}
DTYPES = ("int64", "float32", "float64", "string")
# The types --column_types may give a column (a float64 feature is read as float32 anyway).
FLAG_TYPES = ("int64", "float32", "string")
# The last second of 9999-12-31 UTC: a larger `timestamp` is not unix seconds (in milliseconds,
# every time after 1978 is larger), and its UTC day would be read as a date past year 9999.
MAX_TIMESTAMP = 253_402_300_799
# The first second of 1970-01-01 UTC: before it is no feed's impression (a missing time written
# as -1, or a time counted from another epoch), and its UTC day would be read as one before 1970.
MIN_TIMESTAMP = 0

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

# Python's csv module refuses fields over 128 KiB; logs may carry longer ones (article text).
csv.field_size_limit(1 << 30)

# What TensorFlow's reader (`tf.strings.to_number`) reads: no '+' on an integer, "inf" but not
# "Infinity". int64 holds every 18-digit number and some of 19 (`fits_int64`).
_INT = r"-?[0-9]{1,19}"
_FLOAT = r"(?i)[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)(e[+-]?[0-9]+)?|inf|nan)"
INT_RE, FLOAT_RE = re.compile(_INT + r"\Z"), re.compile(_FLOAT + r"\Z")


@dataclasses.dataclass(frozen=True)
class LogSchema:
    """Column names in file order and their types ('int64', 'float32', 'float64', 'string').

    `missing`: {column: value} an empty CSV field or a feature a `tf.Example` leaves out reads
    as, in the column's type; a column not in it reads as 0 or "". A model's feature config
    `default` (`ranking.features`) sets it, so training, scoring and serving read a missing
    value alike."""

    columns: tuple[str, ...]
    dtypes: Mapping[str, str]
    missing: Mapping[str, str | int | float] = dataclasses.field(default_factory=dict)

    def feature_columns(self) -> tuple[str, ...]:
        """Columns that are model features by default (SPEC §2)."""
        skip = set(NON_FEATURE_COLUMNS) | set(LABEL_COLUMNS)
        return tuple(c for c in self.columns if c not in skip)

    def to_json(self) -> dict:
        data = {"columns": list(self.columns), "dtypes": dict(self.dtypes)}
        if self.missing:
            data["missing"] = dict(self.missing)
        return data

    @classmethod
    def from_json(cls, data: dict) -> "LogSchema":
        return cls(tuple(data["columns"]), dict(data["dtypes"]), dict(data.get("missing", {})))

    def with_missing(self, values: Mapping[str, str | int | float]) -> "LogSchema":
        """This schema with `values` read for missing values of those of its columns (a value
        equal to the type's own default, 0 or "", is left out)."""
        kept = {name: value for name, value in values.items()
                if name in self.dtypes and value not in (0, "")}
        return dataclasses.replace(self, missing=kept)


def parse_column_types(entries: Sequence[str] | None) -> tuple[str, ...]:
    """--column_types' entries ('name:type', type one of `FLAG_TYPES`), checked; an InputError
    names a malformed entry, a fixed column (SPEC §2) given another type, or a column given two."""
    given: dict[str, str] = {}
    for entry in entries or ():
        name, colon, kind = (part.strip() for part in entry.rpartition(":"))
        if not colon or not name or kind not in FLAG_TYPES:
            raise InputError(f"--column_types: '{entry}' is not name:type with a type among "
                             f"{', '.join(FLAG_TYPES)} (e.g. zip_code:string,rating:float32)")
        if FIXED_TYPES.get(name, kind) != kind:
            raise InputError(f"--column_types: column '{name}' is always {FIXED_TYPES[name]} "
                             "(SPEC §2)")
        if name in LABEL_COLUMNS:
            raise InputError(f"--column_types: '{name}' is a label the label job writes, not "
                             "a log column")
        if given.get(name, kind) != kind:
            raise InputError(f"--column_types gives column '{name}' two types: {given[name]} "
                             f"and {kind}")
        given[name] = kind
    return tuple(f"{name}:{kind}" for name, kind in given.items())


@dataclasses.dataclass(frozen=True)
class ReadConfig:
    """How the jobs that read logs before any stats artifact exists (the statistics and
    validation jobs) type their columns; a flag each (`core.settings`). The statistics job
    records the given types in its artifact, and the label and training jobs read their logs
    with them (`stats_artifact.StatsArtifact.column_types`)."""

    column_types: tuple[str, ...] = setting(
        (), "Log columns' types as name:type (int64, float32 or string), comma-separated, "
        "instead of inferring them from the first rows: e.g. zip_code:string (codes with "
        "leading zeros), rating:float32 (decimals that appear only further down). The "
        "statistics job also keeps them in its artifact, for the label and training jobs.",
        parse=parse_column_types)

    def __post_init__(self):  # built in Python, not from the flag: checked and read alike
        object.__setattr__(self, "column_types", parse_column_types(self.column_types))

    @property
    def types(self) -> dict[str, str]:
        """{column: type} of `column_types`."""
        return dict(entry.rsplit(":", 1) for entry in self.column_types)



class AbsentTypedColumns(InputError):
    """Columns given a type (`column_types`, e.g. a model's features) that the logs lack."""

    def __init__(self, names: list[str], columns: list[str], path: str):
        self.names, self.columns, self.path = names, columns, path
        quoted = ", ".join(f"'{name}'" for name in names)
        super().__init__(f"a type is given for column(s) {quoted}, which the logs do not have "
                         f"(columns: {', '.join(columns)})", file=path)

    def __reduce__(self):  # picklable, as InputErrors crossing to Beam's driver must be
        return AbsentTypedColumns, (self.names, self.columns, self.path)


# Schema inference -------------------------------------------------------------------------------
ANY_INT_RE = re.compile(r"[+-]?[0-9]+\Z")  # an integer of any size


def fits_int64(value: str) -> bool:
    """Whether CSV text `value` is an integer that int64 holds (what the reader accepts)."""
    return INT_RE.match(value) is not None and -(1 << 63) <= int(value) < (1 << 63)


# A matcher like FLOAT_RE (`match(text)`, truthy when it fits) for int64 columns: INT_RE takes
# 19 digits, some of which int64 does not hold.
INT64_TEXT = types.SimpleNamespace(match=fits_int64)


# Text that databases, spreadsheets and dataframes write for a missing value (Hive and
# MySQL's \N, SQL's NULL, pandas' None and NA, Excel's #N/A), lower-cased.
MISSING_TOKENS = frozenset({"null", "none", "na", "n/a", "#n/a", "nil", "\\n"})
_PLUS_INT = re.compile(r"\+[0-9]+\Z")
INFINITY_RE = re.compile(r"(?i)[+-]?infinity\Z")


def unreadable_number(value: str, integers: bool = True) -> str | None:
    """Why CSV text `value`, in a column of numbers (`integers`: of integers, where a '+' sign
    is not read; float32 reads it), is not one TensorFlow's reader reads, for the values people
    mean as numbers or as missing: a missing-value marker (MISSING_TOKENS), "Infinity", an
    integer with a '+' sign; else None."""
    text = value.strip()
    if text.lower() in MISSING_TOKENS:
        return ("a missing value is an empty field here (pandas' to_csv writes NaN so by "
                "default: leave na_rep alone)")
    if INFINITY_RE.match(text):
        return "TensorFlow's reader does not read 'Infinity', and no value here may be infinite"
    if integers and _PLUS_INT.match(text):
        return "TensorFlow's reader takes no '+' sign on an integer: write it without one"
    return None


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
                 unseen_types: Mapping[str, str] | None = None
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
    column and the --column_types remedy, as for a type inferred here.

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
                raise InputError(
                    f"the sampled first rows of {files_text(files[:SAMPLE_FILES])} hold numbers "
                    f"and '{odd[0][:80]}': {odd[1]}; or, if the column is text, give "
                    f"--column_types={name}:string to the statistics job (which keeps it for "
                    "the label and training jobs) or to validation", column=name)
        stored = {}
    else:
        columns, inferred = _sample_tfrecord(files, required)
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


def _sample_tfrecord(files: Sequence[LogFile], required: Sequence[str] = REQUIRED_COLUMNS
                     ) -> tuple[list[str], dict[str, str]]:
    import tensorflow as tf

    kinds: dict[str, str] = {}
    first_seen: dict[str, str] = {}
    sampled = sparse_bytes = 0
    for index, log_file in enumerate(files):
        if index >= SAMPLE_FILES and sampled and index < len(files) - LAST_SAMPLE_FILES:
            continue
        dataset = tf.data.TFRecordDataset(log_file.path, "GZIP" if log_file.gzip else "")
        number = 0

        def sample(records, log_file=log_file):
            nonlocal number
            for record in records:
                number += 1
                found = _record_kinds(record)
                if found is None:
                    raise InputError("is not a serialized tf.Example", file=log_file.path,
                                     row=number, row_kind="record")
                for name, kind in found.items():
                    previous = kinds.setdefault(name, kind)
                    first_seen.setdefault(name, f"{log_file.path} record {number}")
                    if previous != kind:
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
            # in scoring a dead letter from there on). A file without one is refused here.
            whole = []
            try:
                for record in dataset.skip(number).take(SAMPLE_ROWS - number):
                    whole.append(record.numpy())
            except tf.errors.OpError:
                pass
            if number == 0 and not whole:
                raise tfrecord_damage(log_file, error.message) from None
            sample(whole)
            sampled += len(whole)
            continue
        if number == SAMPLE_ROWS and sampled < SPARSE_SAMPLE_ROWS and \
                sparse_bytes < SPARSE_SAMPLE_BYTES:
            sampled, sparse_bytes = _sample_sparse_features(
                dataset.skip(SAMPLE_ROWS), log_file.path, kinds, first_seen, sampled,
                sparse_bytes)
    if sampled == 0:
        raise InputError(f"the input has no records: {files_text(files)}")
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
