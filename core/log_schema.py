"""The log contract (SPEC §2): column names and types.

`LogSchema` (columns in file order and their types); `ReadConfig` is the --column_types setting
(of the statistics job, `pipelines.validate` and its `describe`; `parse_column_types` checks
its entries); what TensorFlow's reader reads as a number (`FLOAT_RE`, `fits_int64`) and why
text people mean as a number is not one (`unreadable_number`). The schema inference
(`core.schema_inference`, which samples the input files), the reader (`core.logs`), the writers
(`core.log_writers`) and error diagnosis (`core.log_diagnosis`) build on this module.

Column types follow SPEC §2: `user_id`, `item_id` and `impression_id` are always strings;
`timestamp` and `click` are int64; `dwell_time` is float64 (seconds); any other column's type is
inferred from a sample of the logs (`core.schema_inference`) or given (`ReadConfig`: the
statistics job keeps it in its artifact for the label and training jobs; `column_types` of
`core.logs.open_logs`). Empty feature values take the type's default (0, 0.0 or ""). In a
`tf.Example` the same names and types apply (int64_list, float_list, bytes_list); ids may be
int64_list; `dwell_time` may be int64_list; floats read as an int64 column must be whole.

CSV files have one record per line (quoted fields may contain commas but not line breaks), a
header line first, optional UTF-8 BOM and CRLF line ends; blank lines are skipped. Lines are
numbered as in a text editor: the header is line 1. TFRecord records are numbered from 1.
"""

from __future__ import annotations

import csv
import dataclasses
import re
import types
from typing import Mapping, Sequence

from core.errors import InputError
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

# Python's csv module refuses fields over 128 KiB; logs may carry longer ones (article text).
csv.field_size_limit(1 << 30)

# What TensorFlow's reader (`tf.strings.to_number`) reads: no '+' on an integer, "inf" but not
# "Infinity", spaces or tabs around the number (a "a, b, c" export: " 21" reads as 21). int64
# holds every 18-digit number and some of 19 (`fits_int64`).
_INT = r"[ \t]*-?[0-9]{1,19}[ \t]*"
_FLOAT = r"(?i)[ \t]*[+-]?(([0-9]+\.?[0-9]*|\.[0-9]+)(e[+-]?[0-9]+)?|inf|nan)[ \t]*"
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


# Numbers as TensorFlow's reader reads them ----------------------------------------------------
ANY_INT_RE = re.compile(r"[ \t]*[+-]?[0-9]+[ \t]*\Z")  # an integer of any size


def fits_int64(value: str) -> bool:
    """Whether CSV text `value` is an integer that int64 holds (what the reader accepts)."""
    return INT_RE.match(value) is not None and -(1 << 63) <= int(value) < (1 << 63)


# A matcher like FLOAT_RE (`match(text)`, truthy when it fits) for int64 columns: INT_RE takes
# 19 digits, some of which int64 does not hold.
INT64_TEXT = types.SimpleNamespace(match=fits_int64)


# Text that databases, spreadsheets and dataframes write for a missing value (Hive and
# MySQL's \N, SQL's NULL, pandas' None and NA, Excel's #N/A), lower-cased.
MISSING_TOKENS = frozenset({"null", "none", "na", "n/a", "#n/a", "nil", "\\n",
                            # spreadsheets' and survey exports' placeholders
                            "-", "--", "?", "."})
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
