"""The feature spec (SPEC §2): which log columns feed the model, and how each is encoded.

Defined once and stored with the model (`config.json` in the model directory), so training,
export and scoring encode a feature the same way.

Defaults, from the log schema and the stats artifact:

- every column except `impression_id`, `timestamp`, `click`, `dwell_time` and the label names
  is a feature;
- strings (and always `user_id`, `item_id`) are categorical: hashed with FarmHash
  (`tf.strings.to_hash_bucket_fast`) into `hash_buckets` buckets (ids 131,072, others 1,024)
  and embedded (ids 16 dimensions, others 8);
- numbers are numeric: log1p of the non-negative part, standardized with the stats window's
  mean and deviation of that value (`transform: "log1p_standardize"`). A signed feature (a time
  difference, a score centred on 0) takes `"standardize"`: (x - mean) / deviation of x itself,
  the stats window's too.

A JSON feature config overrides per feature (`--feature_config`):

    {"features": {
        "user_id":      {"hash_buckets": 262144, "embedding_dim": 32},
        "category":     {"vocabulary": ["news", "sports", "tech"], "post_click": true},
        "position":     {"type": "categorical"},
        "item_length":  {"transform": "identity", "post_click": true},
        "source":       {"exclude": true}}}

Keys: `type` (categorical | numeric), `hash_buckets`, `vocabulary` (a list: index 0 is for
values outside it; on a number column made categorical its entries are read as the column's
numbers, so 4.0 matches the value 4), `embedding_dim`, `transform` (log1p_standardize |
standardize | identity), `default` (the value a missing one reads as: an empty CSV field or a
feature a `tf.Example` leaves out, in training, evaluation, batch scoring and serving alike),
`post_click` and `exclude` (true or false). `hash_buckets`, `vocabulary` and `embedding_dim`
are categorical options, `transform` a numeric one: given to a feature of the other kind (a
vocabulary on a number column without `"type": "categorical"`) they are an error, as is a value
of the wrong JSON kind ("false" as a text, a vocabulary that is not a list). A categorical
number is hashed by its text: integers in decimal, decimals as C's %.9g of their float32
(exact: 4.5, 1e-07). Post-click features (mostly affecting dwell, such as category, length,
publish age; ORCA masks them) can also be named with `--post_click_features`.

Missing values: an empty CSV field or an absent `tf.Example` feature takes `default`, unless
set "" for strings (hashed like any other string) and 0 for numbers (log1p(0) = 0 before
standardizing). The statistics job has no feature config: its moments read a missing number as 0.
"""

from __future__ import annotations

import collections
import dataclasses
import decimal
import json
import math
import re
from typing import Mapping, Sequence

import numpy as np

from core.errors import InputError
from core.log_schema import FIXED_TYPES, LogSchema, fits_int64

ID_FEATURES = ("user_id", "item_id")
ID_HASH_BUCKETS = 1 << 17
HASH_BUCKETS = 1 << 10
ID_EMBEDDING_DIM = 16
EMBEDDING_DIM = 8
TRANSFORMS = ("log1p_standardize", "standardize", "identity")
DECIMAL_TEXTS = ("g9", "fixed")
_CONFIG_KEYS = {"type", "hash_buckets", "vocabulary", "embedding_dim", "transform", "default",
                "post_click", "exclude"}


@dataclasses.dataclass(frozen=True)
class Feature:
    """One model input: `dtype` is how it is read ('string', 'int64', 'float32'); `kind` is
    'categorical' or 'numeric'."""

    name: str
    dtype: str
    kind: str
    hash_buckets: int = 0
    vocabulary: tuple[str, ...] = ()
    embedding_dim: int = 0
    transform: str = ""
    mean: float = 0.0
    std: float = 1.0
    default: str | float | int = ""
    post_click: bool = False
    # How a categorical decimal (a float32 categorical feature) is turned into text before
    # hashing or a vocabulary lookup: "g9" (C's %.9g of the float32, -0 and subnormals as 0:
    # exact, 4.5 -> "4.5"; every spec built now) or "fixed" (%f, six decimals: configs written
    # before d6bedd7 lack the field, so that a model trained then keeps the buckets it trained
    # with). Written to config.json for float32 categorical features only.
    decimal_text: str = "fixed"

    @property
    def is_categorical_decimal(self) -> bool:
        return self.kind == "categorical" and self.dtype == "float32"

    @property
    def num_embeddings(self) -> int:
        """Rows of the embedding table: the buckets (or vocabulary plus its OOV row 0) and one
        reserved row, the mask value of post-click features (ORCA's counterfactual masking)."""
        size = len(self.vocabulary) + 1 if self.vocabulary else self.hash_buckets
        return size + 1

    @property
    def mask_index(self) -> int:
        return self.num_embeddings - 1


@dataclasses.dataclass(frozen=True)
class FeatureSpec:
    """The model's inputs, in log column order."""

    features: tuple[Feature, ...]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features)

    @property
    def dtypes(self) -> dict[str, str]:
        return {f.name: f.dtype for f in self.features}

    @property
    def post_click(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.features if f.post_click)

    @property
    def defaults(self) -> dict[str, str | float | int]:
        """{feature: the value a missing one reads as}, in training, scoring and serving."""
        return {f.name: f.default for f in self.features}

    def __getitem__(self, name: str) -> Feature:
        for feature in self.features:
            if feature.name == name:
                return feature
        raise KeyError(name)

    def to_json(self) -> list[dict]:
        # decimal_text only where it means something: the config.json of every other feature
        # reads as it did before the field (a run started then resumes).
        return [{k: v for k, v in dataclasses.asdict(f).items()
                 if k != "decimal_text" or f.is_categorical_decimal} for f in self.features]

    @classmethod
    def from_json(cls, data: Sequence[Mapping]) -> "FeatureSpec":
        spec = cls(tuple(Feature(**{**f, "vocabulary": tuple(f.get("vocabulary", ()))})
                         for f in data))
        for feature in spec.features:
            if feature.decimal_text not in DECIMAL_TEXTS:
                raise InputError(f"feature '{feature.name}': decimal_text must be one of "
                                 f"{', '.join(DECIMAL_TEXTS)}, not {feature.decimal_text!r}")
        return spec


def load_feature_config(path: str | None) -> dict:
    """Reads a JSON feature config ({"features": {name: {...}}}); {} without a path."""
    if not path:
        return {}
    try:
        with open(path) as handle:
            config = json.load(handle)
    except OSError as error:
        raise InputError(f"cannot read the feature config ({error.strerror})", file=path) from None
    except ValueError as error:
        raise InputError(f"is not valid JSON ({error})", file=path) from None
    if not isinstance(config, dict) or not isinstance(config.get("features", {}), dict):
        raise InputError('expected an object {"features": {name: {...}}}', file=path)
    return config


# A feature's name as TensorFlow takes it for a layer's and a signature input's name (its node
# names: `^[A-Za-z0-9.][A-Za-z0-9_.\\/>-]*$`, without / and >, which nest name scopes). A
# name that is not a Python identifier (`publish-age`, `2device`) serves, under another
# keyword in a loaded SavedModel (`export.versions.signature_inputs`).
FEATURE_NAME_RE = re.compile(r"[A-Za-z0-9.][A-Za-z0-9_.-]*")


def build_feature_spec(schema: LogSchema, numeric_stats: Mapping[str, Mapping[str, float]],
                       config: Mapping | None = None, post_click: Sequence[str] = (),
                       config_path: str | None = None,
                       embedding_dim: int | None = None) -> FeatureSpec:
    """The feature spec for logs of `schema`.

    `numeric_stats`: the stats artifact's `numeric_features` ({name: {mean, std}} of
    log1p(max(x, 0))); `config`: a parsed feature config; `post_click`: names marked post-click
    in addition to the config's; `embedding_dim`: every categorical feature's width unless the
    config gives one (default: ids 16, others 8). Raises InputError for a config or flag naming
    an absent column, an unknown key or a value of the wrong kind.
    """
    where = config_path or "feature config"
    unknown = sorted(set(config or {}) - {"features"})
    if unknown:  # a misspelt "features" would leave every default in place without a word
        raise InputError(f"unknown key(s) {', '.join(unknown)}: a feature config is an object "
                         '{"features": {name: {...}}}', file=where)
    overrides = dict((config or {}).get("features", {}))
    candidates = schema.feature_columns()
    for name, options in overrides.items():
        if name not in candidates:
            raise InputError(f"names feature '{name}', which is not a feature column of the "
                             f"logs (feature columns: {', '.join(candidates)})", file=where)
        if not isinstance(options, dict):
            raise InputError(f"feature '{name}': expected an object of options", file=where)
        unknown = set(options) - _CONFIG_KEYS
        if unknown:
            raise InputError(f"feature '{name}': unknown option(s) {', '.join(sorted(unknown))} "
                             f"(known: {', '.join(sorted(_CONFIG_KEYS))})", file=where)
        _check_option_values(name, options, where)
    for name in post_click:
        if name not in candidates:
            raise InputError(f"--post_click_features names '{name}', which is not a feature "
                             f"column of the logs (feature columns: {', '.join(candidates)})")
        if overrides.get(name, {}).get("exclude"):
            raise InputError(f"--post_click_features names '{name}', which the feature config "
                             "excludes", file=where)
    features = []
    for name in candidates:
        options = overrides.get(name, {})
        if options.get("exclude"):
            continue
        if not FEATURE_NAME_RE.fullmatch(name):
            raise InputError(
                f"column {name!r} cannot be a model feature as named: TensorFlow names the "
                "model's layers and its serving inputs after it, which takes letters, digits "
                "and . _ - (not first: _ -); rename the column, or leave it out with "
                f"{json.dumps({'features': {name: {'exclude': True}}})} in a --feature_config "
                "file",
                file=config_path)
        features.append(_feature(name, schema.dtypes[name], options, numeric_stats,
                                 name in post_click, where, embedding_dim))
    if not features:
        raise InputError("no feature columns are left: the model needs at least one", file=where)
    return FeatureSpec(tuple(features))


def _check_option_values(name: str, options: Mapping, where: str) -> None:
    """InputError for an option value of the wrong JSON kind, which Python would otherwise
    read its own way: "false" (a string) as true, "tech" as the vocabulary t, e, c, h, null as
    the entry "None", 8.5 buckets as 8."""
    def shown(value):
        return json.dumps(value)

    for key in ("post_click", "exclude"):
        if key in options and not isinstance(options[key], bool):
            raise InputError(f"feature '{name}': {key} must be true or false, not "
                             f"{shown(options[key])}", file=where)
    for key in ("hash_buckets", "embedding_dim"):
        value = options.get(key)
        if key in options and (isinstance(value, bool) or not isinstance(value, (int, float))
                               or not math.isfinite(value) or value != int(value)):
            raise InputError(f"feature '{name}': {key} must be a whole number, not "
                             f"{shown(value)}", file=where)
    entries = options.get("vocabulary", [])
    if not isinstance(entries, list) or not all(
            isinstance(v, (str, int, float)) and not isinstance(v, bool) for v in entries):
        raise InputError(f"feature '{name}': vocabulary must be a list of the column's values "
                         f"(texts or numbers), not {shown(entries)}", file=where)
    for key in ("type", "transform"):
        if key in options and not isinstance(options[key], str):
            raise InputError(f"feature '{name}': {key} must be a text, not "
                             f"{shown(options[key])}", file=where)
    default = options.get("default", "")
    if not isinstance(default, (str, int, float)):  # (true: `_typed` says what the column holds)
        raise InputError(f"feature '{name}': default must be a text or a number, not "
                         f"{shown(default)}", file=where)


# Options of one kind of feature only: on the other they would be dropped without a word.
_CATEGORICAL_OPTIONS = ("vocabulary", "hash_buckets", "embedding_dim")
_NUMERIC_OPTIONS = ("transform",)


def _feature(name, dtype, options, numeric_stats, post_click, where,
             embedding_dim=None) -> Feature:
    is_id = name in ID_FEATURES
    kind = options.get("type", "categorical" if is_id or dtype == "string" else "numeric")
    if kind not in ("categorical", "numeric"):
        raise InputError(f"feature '{name}': type must be 'categorical' or 'numeric', not "
                         f"{kind!r}", file=where)
    misplaced = [k for k in (_CATEGORICAL_OPTIONS if kind == "numeric" else _NUMERIC_OPTIONS)
                 if k in options]
    if misplaced:
        why = ("its type" if "type" in options else
               "a number column is numeric unless its \"type\" is \"categorical\""
               if kind == "numeric" else "a text column and the ids are categorical")
        raise InputError(f"feature '{name}' is {kind} ({why}): {', '.join(misplaced)} "
                         f"appl{'ies' if len(misplaced) == 1 else 'y'} to "
                         f"{'categorical' if kind == 'numeric' else 'numeric'} features only",
                         file=where)
    if is_id:
        dtype = FIXED_TYPES[name]
        if kind != "categorical":
            raise InputError(f"feature '{name}' is always categorical", file=where)
    if kind == "numeric" and dtype == "string":
        raise InputError(f"feature '{name}' holds strings and cannot be numeric", file=where)
    if dtype == "float64":
        dtype = "float32"
    post_click = bool(options.get("post_click", post_click))
    if kind == "categorical":
        vocabulary = tuple(value_text(v, dtype, name, where)
                           for v in options.get("vocabulary", ()))
        repeated = sorted(v for v, n in collections.Counter(vocabulary).items() if n > 1)
        if repeated:
            raise InputError(f"feature '{name}': the vocabulary lists {', '.join(repeated)} "
                             "more than once (as the column's values read)", file=where)
        buckets = int(options.get("hash_buckets", ID_HASH_BUCKETS if is_id else HASH_BUCKETS))
        default_dim = embedding_dim or (ID_EMBEDDING_DIM if is_id else EMBEDDING_DIM)
        dim = int(options.get("embedding_dim", default_dim))
        if buckets < 1 or dim < 1:
            raise InputError(f"feature '{name}': hash_buckets and embedding_dim must be >= 1",
                             file=where)
        default = options.get("default", "" if dtype == "string" else 0)
        return Feature(name, dtype, "categorical", hash_buckets=0 if vocabulary else buckets,
                       vocabulary=vocabulary, embedding_dim=dim,
                       decimal_text="g9" if dtype == "float32" else "fixed",
                       default=_typed(default, dtype, name, where), post_click=post_click)
    transform = options.get("transform", "log1p_standardize")
    if transform not in TRANSFORMS:
        raise InputError(f"feature '{name}': transform must be one of {', '.join(TRANSFORMS)}",
                         file=where)
    mean, std = 0.0, 1.0
    if transform != "identity":
        # log1p_standardize: the moments of log1p(max(x, 0)); standardize: those of x.
        keys = ("mean", "std") if transform == "log1p_standardize" else ("raw_mean", "raw_std")
        if name not in numeric_stats:
            raise InputError(f"feature '{name}': the stats artifact has no moments for it (the "
                             "logs of its stats window lack the column, or hold it as text): "
                             "compute the statistics on logs like these, or use transform "
                             "'identity'")
        moments = numeric_stats[name]
        if keys[0] not in moments:
            raise InputError(f"feature '{name}': the stats artifact has no moments for transform "
                             f"'{transform}' (made by an earlier version: recompute the "
                             "statistics, or use transform 'identity')")
        mean = float(moments[keys[0]])
        std = float(moments[keys[1]])
        # A constant column (std 0, written so by `stats_artifact.mean_and_deviation`, or
        # rounding up to ~1e-8 x the mean in a log1p moment of an artifact made before it)
        # reads as 0 when at its value, not as (x - mean) / 1e-8 when it is not;
        # log1p_standardize computes in float32, which resolves no finer than its epsilon.
        if transform == "log1p_standardize" and std <= float(
                np.finfo(np.float32).eps) * max(1.0, abs(mean)):
            std = 0.0
        std = std or 1.0
    return Feature(name, dtype, "numeric", transform=transform, mean=mean, std=std,
                   default=_typed(options.get("default", 0), dtype, name, where),
                   post_click=post_click)


def value_text(value, dtype: str, name: str, where: str) -> str:
    """A vocabulary entry as the encoder sees a value of a `dtype` column: text as is, integers
    in decimal (exact; "007" -> "7"), decimals as the "g9" text of their float32
    (`tf.strings.as_string(x, precision=9, shortest=True)`, C's %.9g: 4.5 -> "4.5", 4.0 -> "4";
    -0 and subnormals as "0"), so `[4.0, 4.5]` matches a float column's values as `[4, 4.5]`
    does. InputError for an entry that is not a value of the column (text in a numeric
    column, a fraction or a number past int64 in an int64 one, a non-finite decimal)."""
    if dtype == "string":
        return str(value)
    try:
        if isinstance(value, bool):
            raise ValueError
        if dtype == "int64":
            # Exactly (Decimal, not float: 9007199254740993.0 stays itself); 4.0 is 4.
            number = decimal.Decimal(str(value).strip())
            if not number.is_finite() or number != number.to_integral_value():
                raise ValueError
            text = str(int(number))
            if not fits_int64(text):
                raise ValueError
            return text
        number = np.float32(float(value))
        if not np.isfinite(number):
            raise ValueError
        if abs(number) < np.finfo(np.float32).tiny:  # -0 and subnormals read as 0
            number = np.float32(0.0)
        return f"{number:.9g}"
    except (TypeError, ValueError, OverflowError, decimal.InvalidOperation):
        raise InputError(f"feature '{name}': vocabulary entry {value!r} is not a value of the "
                         f"column, which holds {'integers' if dtype == 'int64' else 'numbers'}",
                         file=where) from None


def _typed(value, dtype, name, where):
    """The feature config's `default` in the feature's type: training, scoring and serving read
    a missing value as it, so it must be a value the logs could hold (a finite float32; for
    int64 a whole number in range, read exactly). Ids take none: a missing id is no one's."""
    kind = {"float32": "finite float32 number", "int64": "whole number in int64's range"}
    try:
        if isinstance(value, bool):  # JSON true: not a number, nor a text
            raise ValueError
        if dtype == "string":
            typed = str(value)
        else:
            number = decimal.Decimal(str(value).strip())
            if not number.is_finite():
                raise ValueError
            if dtype == "int64":
                if number != number.to_integral_value() or not (
                        -2 ** 63 <= number <= 2 ** 63 - 1):
                    raise ValueError
                typed = int(number)
            else:
                typed = float(number)
                if abs(typed) > float(np.finfo(np.float32).max):
                    raise ValueError
    except (TypeError, ValueError, ArithmeticError):
        raise InputError(f"feature '{name}': default {value!r} is not a "
                         f"{kind.get(dtype, dtype)}", file=where) from None
    if name in ("user_id", "item_id") and typed != "":
        raise InputError(f"feature '{name}': an id takes no default (a missing id reads as "
                         "\"\", as the statistics job counted it)", file=where)
    return typed
