"""Error diagnosis for log reading: from a failed read to an `InputError` naming the file, row
and column.

The reader's in-graph checks (`core.logs`) carry their message in the TensorFlow error;
`translate_error` turns such an error into an `InputError`, and for TensorFlow's own parse
failures (the CSV fast path has no per-field checks) `diagnose` finds the first bad line in
Python and `locate_corruption` the first corrupt file. `input_errors_for_beam` does the same on
Beam workers. The reader (`core.logs`) registers each `LogSource` it opens here
(`remember_source`), so that an error raised deep inside tf.data can be traced back.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import math
import re
import threading
import zlib
from typing import Mapping, Sequence

from core.errors import MARKER, InputError, from_tf_error, quiet_input_error_logs
from core.log_files import LogFile, damage_reason, open_binary, open_text, tfrecord_damage
from core.log_schema import (
    ANY_INT_RE,
    FIXED_TYPES,
    FLOAT_RE,
    INFINITY_RE,
    INT64_TEXT,
    MISSING_TOKENS,
    unreadable_number,
)

# The most recent reader of each thread, so that a parse error raised deep inside tf.data
# (possibly inside Keras' fit) can be traced back to its file and line (see `diagnose`). Per
# thread: training counts its evaluation logs in a thread while the main thread opens the
# training input, and each error must be explained against its own reader.
_recent = threading.local()


def remember_source(source) -> None:
    """Makes `source` the reader that `diagnose` and `locate_corruption` explain by default in
    this thread (None: none, as at a command's start)."""
    _recent.source = source


def _last_source():
    return getattr(_recent, "source", None)


def diagnose(source=None) -> InputError | None:
    """Explains a TensorFlow parse failure of `source` (default: this thread's last reader's):
    the first corrupt file, or the first CSV line with a wrong field count or a value that does
    not fit its column's type. Returns None if nothing is found. Runs only after a failure."""
    source = source or _last_source()
    if source is None:
        return None
    corrupt = locate_corruption(source.files)
    if corrupt is not None or source.format != "csv":
        return corrupt
    columns, dtypes = source.schema.columns, source.schema.dtypes
    checked = set(source.checked or columns)
    typed = [(i, n, INT64_TEXT if dtypes[n] == "int64" else FLOAT_RE, dtypes[n])
             for i, n in enumerate(columns) if dtypes[n] != "string" and n in checked]
    keeps_cr = getattr(source, "keeps_cr", False)
    for log_file in source.files:
        with open_text(log_file, newline="\n") as text:  # lines as the reader counts them
            for number, line in enumerate(text, 1):
                if number == 1 or not line.strip():
                    continue
                found = csv_line_problem(line, columns, typed, log_file.path, number,
                                         source.type_origins, keeps_cr=keeps_cr)
                if found is not None:
                    return found
    return None


# "1728061688.0": what pandas writes for an integer column that once held a NaN.
_INTEGRAL_FLOAT = re.compile(r"^\s*[-+]?\d+\.0*\s*$")
_FLOAT32_MAX = 3.4028234663852886e38


def _type_that_reads(value: str) -> str | None:
    """The type to give a column whose inferred int64 or float32 refused CSV text `value`:
    float32 for a decimal float32 holds; string for text, an integer past int64 (which float32
    would merge with its neighbours) or a number past float32; None for nan or inf (no type
    reads them: a missing value is an empty field)."""
    if INFINITY_RE.match(value.strip()):
        return None  # (TensorFlow reads no "Infinity"; no column takes an infinite value)
    if not FLOAT_RE.match(value):
        return "string"
    if not math.isfinite(float(value)):
        return None
    if ANY_INT_RE.match(value) or abs(float(value)) > _FLOAT32_MAX:
        return "string"
    return "float32"


def csv_line_problem(line: str, columns: Sequence[str], typed, path: str, number: int,
                     given: Mapping[str, str] | None = None,
                     keeps_cr: bool = False) -> InputError | None:
    """What is wrong with one CSV data line (`number` in the file at `path`) for TensorFlow's
    parser, or None: its quoting, its field count against `columns`, or a value of `typed`
    ((index, name, pattern, dtype) of the checked non-string columns) that does not fit;
    `given` ({column: "model" | "flag" | "artifact"}, `LogSource.type_origins`): columns whose
    type came from a model, this command's --column_types or the statistics job's (kept in its
    artifact), not from this input's first rows; `keeps_cr`: the reader kept a CR before the
    line's LF (`quoting_problem`)."""
    given = given or {}
    problem = quoting_problem(line, keeps_cr)
    if problem is not None:
        index, what = problem
        return InputError(what, file=path, row=number,
                          column=columns[index] if index < len(columns) else None)
    try:
        fields = next(csv.reader([line]))
    except csv.Error as error:
        return InputError(f"is not valid CSV: {error}", file=path, row=number)
    if len(fields) != len(columns):
        return InputError(f"expected {len(columns)} fields as in the header, found "
                          f"{len(fields)}", file=path, row=number)
    if [f.strip().lstrip("\ufeff") for f in fields] == list(columns):
        return InputError("is the header again (files joined with cat, or a writer that "
                          "appended with a header each time?): one header a file, at its top",
                          file=path, row=number)
    for index, name, pattern, kind in typed:
        value = fields[index]
        if value and not pattern.match(value):
            what = "an integer" if kind == "int64" else "a number"
            if name in FIXED_TYPES:  # ('+1', 'Infinity' said; a missing value is not theirs)
                why = unreadable_number(value)
                guess = (f" ({why})" if why and value.strip().lower() not in MISSING_TOKENS
                         else "")
            elif given.get(name) == "model":
                guess = (f" (the model reads this feature as {kind}, its type in the training "
                         "logs: write the column so, or train on logs that have it as this "
                         "input does)")
            elif given.get(name) == "flag":
                guess = f" (its type is given as {kind} by --column_types)"
            elif given.get(name) == "artifact":
                guess = (f" (its type is given as {kind} by the statistics job's --column_types, "
                         "kept in its artifact: run that job with the type these values need)")
            elif (why := unreadable_number(value)) is not None:
                guess = f" ({why})"
            elif (fits := _type_that_reads(value)) is None:
                guess = (" (a missing value is an empty field, which reads as the type's "
                         "default)")
            else:
                fix = f"--column_types={name}:{fits}"
                guess = (" (type inferred from the sampled first rows, which all fit it: give "
                         f"{fix} to the statistics job, which keeps it for the label and "
                         "training jobs, or write the column so that its first rows show its "
                         "type, e.g. 2.0 for decimals)")
            hint = ""
            if name in FIXED_TYPES and kind == "int64" and _INTEGRAL_FLOAT.match(value):
                hint = ("; an integer written as a float: write the column as integers (pandas: "
                        "drop or fill its NaN, then .astype('int64') before to_csv)")
            elif name in FIXED_TYPES and kind == "int64" and value.strip().lower() in (
                    "true", "false"):
                hint = ("; a boolean written as text: write the column as 0 and 1 (pandas: "
                        ".astype('int64') before to_csv)")
            return InputError(f"expected {what}{guess}, found '{value[:80]}'{hint}",
                              file=path, row=number, column=name)
    return None


def text_ids(ids, column: str, files: Sequence[LogFile]) -> list[str]:
    """`ids` (bytes, as the reader yields them) as text; an id that is not UTF-8 is an
    InputError naming the first line of `files` that holds it (SPEC §2: ids are strings). The
    reader checks the sampled first rows' encoding; this catches a stray byte further down."""
    try:
        return [value.decode() for value in ids]
    except UnicodeDecodeError:
        pass

    def reason(value: bytes) -> str:
        return (f"expected UTF-8 text, found {value[:80]!r} (re-encode the file as UTF-8, e.g. "
                "iconv -f latin1 -t utf-8)")

    for log_file in files:  # the first line whose field in `column` is not UTF-8
        if log_file.format != "csv":
            continue
        with open_binary(log_file.path) as raw:
            lines = gzip.GzipFile(fileobj=raw, mode="rb") if log_file.gzip else raw
            index = None
            for number, line in enumerate(lines, 1):
                try:
                    fields = next(csv.reader([line.decode("utf-8", "surrogateescape")]), [])
                except csv.Error:  # a line the reader refuses anyway; not this column's problem
                    continue
                if index is None:
                    names = [name.strip().lstrip("\ufeff") for name in fields]
                    if column not in names:
                        break
                    index = names.index(column)
                    continue
                if index < len(fields):
                    value = fields[index].encode("utf-8", "surrogateescape")
                    if not _is_utf8(value):
                        raise InputError(reason(value), file=log_file.path, row=number,
                                         column=column)
    bad = next(value for value in ids if not _is_utf8(value))
    raise InputError(reason(bad), file=files[0].path if len(files) == 1 else None, column=column)


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode()
        return True
    except UnicodeDecodeError:
        return False


def quoting_problem(line: str, keeps_cr: bool = False) -> tuple[int, str] | None:
    """What TensorFlow's CSV parser (`tf.io.decode_csv`) refuses in `line` though Python's
    `csv` module reads it, as (0-based field index, what is wrong), or None: a quote or a CR
    inside an unquoted field (`a 5" screen`), text after a field's closing quote, or a quoted
    field left open at the line's end (a line break inside a field: the reader takes one line a
    row). The line's LF, and a CR before it, end it as the reader strips them; another CR
    (CR CR LF, or a file's last line ending in CR) stays in the line, as for the reader. With
    `keeps_cr` (a file read whole whose first lines end with LF alone: `LogSource.keeps_cr`)
    the reader keeps the CR of a CR LF: line ends that differ within a file."""
    if keeps_cr and line.endswith("\r\n"):
        try:
            last = len(next(csv.reader([line[:-2]]))) - 1  # the field the CR stays in
        except csv.Error:
            last = line.count(",")
        return last, ("the line ends with CR LF where the file's first lines end with LF "
                      "alone: end every line alike (LF, or CR LF)")
    if line.endswith("\n"):
        line = line[:-2] if line.endswith("\r\n") else line[:-1]
    at, field = 0, 0
    while True:
        if line.startswith('"', at):
            at += 1
            while True:
                close = line.find('"', at)
                if close < 0:
                    return field, ("a quote opens that does not close on this line (line "
                                   "breaks inside fields are not supported: remove them from "
                                   "text columns)")
                if line.startswith('"', close + 1):  # "" is an escaped quote
                    at = close + 2
                    continue
                at = close + 1
                break
            if at < len(line) and line[at] != ",":
                return field, ("text after the field's closing quote; quote the whole field "
                               "and double the quotes inside it")
        else:
            end = line.find(",", at)
            end = len(line) if end < 0 else end
            if '"' in line[at:end]:
                return field, (f"a quote inside an unquoted field ('{line[at:end][:80]}'); "
                               "quote the whole field and double the quotes inside it")
            if line.endswith("\r") and end == len(line):
                return field, ("the line ends with a carriage return (CR) and no line feed "
                               "(LF) after it; end every line with LF or CRLF")
            if "\r" in line[at:end] or "\n" in line[at:end]:
                return field, ("a line break (CR) inside an unquoted field; remove line breaks "
                               "from text columns")
            at = end
        if at >= len(line):
            return None
        at += 1  # the comma
        field += 1


def translate_error(error: Exception) -> InputError | None:
    """The InputError behind a TensorFlow error raised while reading logs, or None if the error
    is not about the input. Use around code that iterates a `read_logs` dataset:

        try:
            model.fit(read_logs(...))
        except tf.errors.OpError as e:
            raise (translate_error(e) or e)
    """
    import tensorflow as tf

    if not isinstance(error, tf.errors.OpError):
        return None
    found = from_tf_error(error)
    if found is not None:
        return found
    found = diagnose()
    if found is not None:
        return found
    lowered = error.message.lower()
    if any(k in lowered for k in ("corrupt", "data_loss", "truncated", "header check",
                                  "invalid block", "unexpected end", "inflate")):
        return InputError(f"corrupt or truncated input ({damage_reason(error.message)})")
    return None


@contextlib.contextmanager
def input_errors_for_beam():
    """Worker side of a Beam pipeline: bad input (an InputError, or a TensorFlow error that
    `translate_error` explains) is re-raised with the marker, so that the driver can recover the
    readable text through the runner's own wrapping (`errors.reraised_from_workers`). Beam's
    log of the failed bundle is filtered out in this process (`errors.quiet_input_error_logs`):
    the tool prints the error once, without a traceback."""
    quiet_input_error_logs()
    try:
        with input_errors_explained():
            yield
    except InputError as error:
        raise RuntimeError(MARKER + str(error)) from None


@contextlib.contextmanager
def input_errors_explained():
    """Re-raises an error of reading logs as the InputError behind it (an InputError as it is,
    a TensorFlow error by `translate_error`, against this thread's last reader); any other
    error as it is."""
    try:
        yield
    except Exception as error:
        translated = error if isinstance(error, InputError) else translate_error(error)
        if translated is None:
            raise
        raise translated from None


def locate_corruption(files: Sequence[LogFile] | None = None) -> InputError | None:
    """Finds the first file among `files` (default: the last reader's) whose compressed or
    TFRecord stream is corrupt; returns an InputError naming it, or None."""
    import tensorflow as tf

    if files is None:
        last = _last_source()
        files = last.files if last is not None else []
    for log_file in files:
        try:
            if log_file.format == "csv":
                with open_binary(log_file.path) as raw:
                    handle = gzip.GzipFile(fileobj=raw, mode="rb") if log_file.gzip else raw
                    while handle.read(1 << 20):
                        pass
            else:
                for _ in tf.data.TFRecordDataset(log_file.path,
                                                 "GZIP" if log_file.gzip else "").batch(4096):
                    pass
        except (OSError, EOFError, zlib.error) as error:
            return InputError(f"is corrupt or truncated ({error})", file=log_file.path)
        except tf.errors.OpError as error:
            return tfrecord_damage(log_file, error.message)
    return None
