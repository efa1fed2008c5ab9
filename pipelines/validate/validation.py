"""Data validation with TensorFlow Data Validation (SPEC §9).

Statistics come from TFDV's Beam-based generators, fed by this project's own log reader: one
parsing path for every job, so a malformed row or a SPEC §11 value error (click outside {0, 1},
negative or non-finite dwell, dwell on an unclicked row) is the same error, naming file, line
and column, in validation as in statistics, labelling and training. TFDV then finds what is
wrong with the data as a whole: missing columns, unexpected categorical values, drift.

The schema is inferred on first use and curated (`curate_schema`): required columns always
present, `click` in {0, 1}, `dwell_time` >= 0, string domains for small categorical features,
and drift comparators: L-infinity distance for categorical features with a domain,
Jensen-Shannon divergence for `click`, `dwell_time`, numeric features and the one column the
statistics derive, `log_dwell_of_clicks` (ln(1 + dwell) of clicks: the dwell check that sees a
shrink). Ids, timestamps and
impression ids are not drift-checked (they change every day by design); impression ids are not
profiled at all (`UNPROFILED`: a key unique on every row). Users then edit schema.pbtxt and
pass it back with --schema.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Mapping

import numpy as np

from core import log_diagnosis, log_files, log_schema, logs
from core.atomic import earlier_output
from core.errors import InputError, reraised_from_workers
from core.settings import setting


def tfdv():
    """tensorflow_data_validation, imported without its note about IPython (only its notebook
    views need IPython; the HTML report does not)."""
    import contextlib
    import io

    with contextlib.redirect_stderr(io.StringIO()):
        import tensorflow_data_validation
    return tensorflow_data_validation


# Columns never compared for drift: they differ between any two days by design.
NO_DRIFT = ("impression_id", "timestamp", "user_id", "item_id")
# Open sets of values: no domain either (a new item, or a user id with letters after digits
# only, is not an anomaly), whatever TFDV infers from the statistics' few values.
ID_COLUMNS = ("impression_id", "user_id", "item_id")
# Columns TFDV does not profile: `impression_id` is a key, unique on every row, so its exact
# uniques and top-k grow validation's memory and time with the rows and say nothing (3.36 M
# rows: 125 s and 2.67 GB with it, 66 s and 1.44 GB without). A schema made when it was
# profiled is read without it.
UNPROFILED = ("impression_id",)
# A column the statistics derive from the logs (a name logs may not use here): the label
# rules' log dwell, ln(1 + dwell_time), of clicked rows alone, missing on the others. Its
# drift is the dwell check: `dwell_time` itself is a 0 on every unclicked row, so its histogram
# is mostly the CTR, and TFDV's equal-width histograms put the clicks' heavy tail in a bucket or
# two (a dwell halved or quartered on every click moved `dwell_time`'s divergence by nothing
# seen); on a log scale a shrink of every dwell is a shift across its buckets.
LOG_DWELL_OF_CLICKS = "log_dwell_of_clicks"


@dataclasses.dataclass(frozen=True)
class ValidationConfig:
    """Options of the validation job; each is a flag of `pipelines.validate` (`core.settings`).
    A distance is never below 0, so neither is a threshold; one at or above the largest
    distance there can be turns its check off."""

    categorical_drift: float = setting(
        0.05, "L-infinity drift threshold for categorical features (inferred schemas).",
        minimum=0)
    click_drift: float = setting(
        0.01, "Jensen-Shannon drift threshold for click, i.e. the CTR (inferred schemas).",
        minimum=0)
    # Jensen-Shannon thresholds for other numeric features. TFDV approximates the divergence on
    # equal-width histograms, which move with each day's extremes: two pairs of days of the same
    # simulated traffic differ by up to ~0.05 on item_length and ~0.3 on the heavy-tailed
    # dwell_time, whose check therefore only catches gross shifts.
    numeric_drift: float = setting(
        0.1, "Jensen-Shannon drift threshold for other numeric features (inferred schemas).",
        minimum=0)
    dwell_drift: float = setting(
        0.5, "Jensen-Shannon drift threshold for dwell_time (inferred schemas).", minimum=0)
    log_dwell_drift: float = setting(
        0.05, f"Jensen-Shannon drift threshold for {LOG_DWELL_OF_CLICKS}, ln(1 + dwell_time) "
        "of clicked rows (inferred schemas).", minimum=0)
    # TFDV hands the size to C++ as a 32-bit int (a larger one is a TypeError inside it).
    max_domain_size: int = setting(
        100, "String features with at most this many values get a domain.", minimum=0,
        maximum=2**31 - 1)
    allow_unclicked_dwell: bool = setting(
        False, "Treat dwell > 0 on unclicked rows as 0 instead of failing (as the stats, label "
        "and training jobs with the same flag).")
    batch_size: int = 8192


def _record_batches(path: str, schema_json: dict, batch_size: int,
                    allow_unclicked_dwell: bool = False):
    """Reads one log file with the project's reader; yields Arrow RecordBatches of list columns,
    as TFDV expects: a row without a value (an empty CSV field, a feature its tf.Example leaves
    out) is a null list, which TFDV counts as missing, not as a 0 or "". With
    `allow_unclicked_dwell`, dwell > 0 on an unclicked row reads as 0 (as in the statistics,
    labelling and training jobs with that flag)."""
    import pyarrow as pa

    schema = log_schema.LogSchema.from_json(schema_json)
    source = logs.LogSource([log_files.log_file(path)], schema,
                            schema_json.get("stored", {}),
                            type_origins=schema_json.get("type_origins", {}))
    with log_diagnosis.input_errors_for_beam():
        for batch in source.dataset(batch_size, allow_unclicked_dwell=allow_unclicked_dwell,
                                    with_missing=True).as_numpy_iterator():
            arrays, names = [], []
            for name in schema.columns:
                if name in UNPROFILED:
                    continue
                values = batch[name]
                # dwell_time has no mask: an empty one is an unclicked row's 0 (the contract).
                missing = batch.get(logs.MISSING + name)
                if missing is not None and missing.any():
                    values = values[~missing]
                    offsets = pa.array(np.r_[0, np.cumsum(~missing)].astype(np.int32))
                    mask = pa.array(missing)
                else:
                    offsets = pa.array(np.arange(len(values) + 1, dtype=np.int32))
                    mask = None
                if values.dtype == object:
                    flat = pa.array(values.tolist(), type=pa.binary())
                else:
                    flat = pa.array(values)
                arrays.append(pa.ListArray.from_arrays(offsets, flat, mask=mask))
                names.append(name)
            arrays.append(_log_dwell_of_clicks(batch["click"], batch["dwell_time"]))
            names.append(LOG_DWELL_OF_CLICKS)
            yield pa.RecordBatch.from_arrays(arrays, names)


def _log_dwell_of_clicks(click: np.ndarray, dwell: np.ndarray):
    """The LOG_DWELL_OF_CLICKS list column of a batch (`click`, `dwell_time`: shape [n]):
    ln(1 + dwell seconds) on clicked rows (the label rules' `log_dwell`), missing on the
    others."""
    import pyarrow as pa

    clicked = click == 1
    offsets = pa.array(np.r_[0, np.cumsum(clicked)].astype(np.int32))
    return pa.ListArray.from_arrays(offsets, pa.array(np.log1p(dwell[clicked])),
                                    mask=pa.array(~clicked))


def generate_statistics(pattern: str, output_path: str, beam_args: list[str] | None = None,
                        config: ValidationConfig = ValidationConfig(),
                        column_types: Mapping[str, str] | None = None, given_by: str = "flag"):
    """TFDV statistics of the logs matching `pattern`, written to `output_path` (binary
    DatasetFeatureStatisticsList) and returned; the config's `allow_unclicked_dwell` as in
    `_record_batches`; `column_types` ({column: type}) read so, given by
    `given_by` ("flag": this job's --column_types; "artifact": the statistics job's, as
    `core.logs.open_logs`)."""
    import apache_beam as beam
    tfdv = globals()['tfdv']()
    from apache_beam.options.pipeline_options import PipelineOptions

    source = logs.open_logs(pattern, column_types=column_types, given_by=given_by)
    if LOG_DWELL_OF_CLICKS in source.schema.columns:
        raise InputError(f"the logs have a column named {LOG_DWELL_OF_CLICKS}, the name of the "
                         "log dwell validation derives from dwell_time; rename the column",
                         file=source.files[0].path)
    schema_json = dict(source.schema.to_json(), stored=source.stored_types,
                       type_origins=dict(source.type_origins))
    paths = [f.path for f in source.files]
    with reraised_from_workers(), beam.Pipeline(options=PipelineOptions(beam_args or [])) as pipeline:
        _ = (pipeline
             | "Files" >> beam.Create(paths)
             | "Reshuffle" >> beam.Reshuffle()
             | "Read" >> beam.FlatMap(_record_batches, schema_json, config.batch_size,
                                     config.allow_unclicked_dwell)
             | "Statistics" >> tfdv.GenerateStatistics(tfdv.StatsOptions())
             | "Write" >> tfdv.WriteStatisticsToBinaryFile(output_path))
    statistics = in_column_order(tfdv.load_stats_binary(output_path),
                                 statistics_columns(source.schema.columns))
    with open(output_path, "wb") as handle:
        handle.write(statistics.SerializeToString())
    return statistics


def statistics_columns(columns) -> list[str]:
    """The order of the statistics' features for logs of `columns`: theirs, with
    LOG_DWELL_OF_CLICKS beside the column it is derived from."""
    columns = list(columns)
    columns.insert(columns.index("dwell_time") + 1, LOG_DWELL_OF_CLICKS)
    return columns


def feature_name(feature) -> str:
    """The column name of a TFDV statistics feature (by path, or by name in older protos)."""
    return feature.path.step[0] if feature.path.step else feature.name


def in_column_order(statistics, columns):
    """`statistics` (TFDV's, changed in place and returned) with each dataset's features in
    the order of `columns` (others after, by name). TFDV's order follows its merge of the
    workers' partial statistics, so two runs on the same logs with several Beam workers wrote
    the stats, the schema inferred from them and the report in different orders."""
    order = {name: k for k, name in enumerate(columns)}
    for dataset in statistics.datasets:
        features = sorted(dataset.features, key=lambda f: (order.get(feature_name(f),
                                                                     len(order)),
                                                           feature_name(f)))
        copies = [type(f)() for f in features]
        for copy, feature in zip(copies, features):
            copy.CopyFrom(feature)
        del dataset.features[:]
        dataset.features.extend(copies)
    return statistics


def curate_schema(schema, config: ValidationConfig = ValidationConfig()):
    """Adds the project's expectations to an inferred schema (in place) and returns it."""
    tfdv = globals()['tfdv']()
    from tensorflow_metadata.proto.v0 import schema_pb2

    names = {f.name for f in schema.feature}
    for name in log_schema.REQUIRED_COLUMNS:
        if name not in names:
            raise InputError(f"the statistics have no column '{name}'")
        feature = tfdv.get_feature(schema, name)
        feature.presence.min_fraction = 1.0
        feature.presence.min_count = 1
    click = tfdv.get_feature(schema, "click")
    click.int_domain.CopyFrom(schema_pb2.IntDomain(min=0, max=1))  # replaces a bool domain
    dwell = tfdv.get_feature(schema, "dwell_time")
    dwell.float_domain.CopyFrom(schema_pb2.FloatDomain(min=0.0, disallow_nan=True,
                                                        disallow_inf=True))
    for feature in schema.feature:
        if feature.name not in log_schema.REQUIRED_COLUMNS and feature.HasField("shape"):
            # A fixed shape (one value on every row, as TFDV infers a column it saw on every
            # row) is refused by a row without one ("Feature shape dropped") whatever its
            # presence allows: a feature column holds one value where present.
            feature.ClearField("shape")
            feature.value_count.min = feature.value_count.max = 1
        if feature.name in ID_COLUMNS:
            _drop_domain(schema, feature)
        if feature.name == LOG_DWELL_OF_CLICKS:
            # Absent when no row is a click, which the click's own checks report.
            feature.presence.min_count = 0
        if feature.name in NO_DRIFT:
            continue
        if feature.HasField("domain") or feature.type == schema_pb2.BYTES:
            if feature.HasField("domain"):
                feature.drift_comparator.infinity_norm.threshold = config.categorical_drift
        else:
            feature.drift_comparator.jensen_shannon_divergence.threshold = {
                "click": config.click_drift, "dwell_time": config.dwell_drift,
                LOG_DWELL_OF_CLICKS: config.log_dwell_drift,
            }.get(feature.name, config.numeric_drift)
    return schema


def _drop_domain(schema, feature) -> None:
    """Removes `feature`'s domain (and the schema's string domain it names, if any)."""
    if feature.HasField("domain"):
        named = [d for d in schema.string_domain if d.name == feature.domain]
        for domain in named:
            schema.string_domain.remove(domain)
    feature.ClearField("domain_info")


def _text_domains(schema, statistics, max_domain_size: int) -> None:
    """A text column whose sampled values are all digits (a region code, a zip code, given
    as string by --column_types) gets an empty `int_domain` from TFDV's inference, not a
    string domain, so no drift comparator: it gets the string domain of its values, as text
    columns of that size have (at most `max_domain_size` values; else no domain)."""
    from tensorflow_metadata.proto.v0 import schema_pb2

    by_name = {feature_name(f): f for f in statistics.datasets[0].features}
    for feature in schema.feature:
        if feature.type != schema_pb2.BYTES or not feature.HasField("int_domain") \
                or feature.name in ID_COLUMNS:
            continue
        stats = by_name.get(feature.name)
        feature.ClearField("domain_info")
        if stats is None or not stats.HasField("string_stats"):
            continue
        values = [b.label for b in stats.string_stats.rank_histogram.buckets]
        if 0 < stats.string_stats.unique <= max_domain_size and \
                len(values) == stats.string_stats.unique:
            domain = schema.string_domain.add(name=feature.name, value=sorted(values))
            feature.domain = domain.name


def infer_schema(statistics, config: ValidationConfig = ValidationConfig()):
    """A curated schema inferred from `statistics`."""
    tfdv = globals()['tfdv']()

    schema = tfdv.infer_schema(statistics, max_string_domain_size=config.max_domain_size)
    _text_domains(schema, statistics, config.max_domain_size)
    return curate_schema(schema, config)


# What a presence anomaly means since the reader's missing values reach TFDV (2026-12-06).
SPARSE_REMEDY = ("an empty field or a feature a tf.Example leaves out is missing; if the "
                 "column may be empty, lower its presence.min_fraction in the schema (a schema "
                 "inferred before 2026-12-07 also gives the column a `shape`, one value on "
                 "every row: delete it, or infer the schema again; one inferred before "
                 "2026-12-06, when an empty field counted as a 0 or \"\", requires every "
                 "column it saw on every row: infer it again, and make baseline statistics "
                 "made then again)")


def anomaly_lines(anomalies) -> list[str]:
    """One readable line per anomaly: feature, short and long description (a column present
    on too few rows says what counts as missing and how to allow it)."""
    from tensorflow_metadata.proto.v0 import anomalies_pb2

    sparse = {anomalies_pb2.AnomalyInfo.FEATURE_TYPE_LOW_FRACTION_PRESENT,
              anomalies_pb2.AnomalyInfo.FEATURE_TYPE_LOW_NUMBER_PRESENT,
              anomalies_pb2.AnomalyInfo.INVALID_FEATURE_SHAPE}
    lines = []
    for name, info in sorted(anomalies.anomaly_info.items()):
        reasons = "; ".join(r.description or r.short_description for r in info.reason)
        line = (f"{name}: {info.short_description} ({reasons})" if reasons
                else f"{name}: {info.short_description}")
        if name not in log_schema.REQUIRED_COLUMNS and any(r.type in sparse
                                                           for r in info.reason):
            line += f" — {SPARSE_REMEDY}"
        lines.append(line)
    if anomalies.HasField("dataset_anomaly_info"):
        info = anomalies.dataset_anomaly_info
        lines.append(f"(dataset): {info.short_description}")
    return lines


def validate(statistics, schema, baseline=None):
    """TFDV anomalies of `statistics` against `schema` (its `UNPROFILED` columns left out), with
    drift against `baseline`. A schema without LOG_DWELL_OF_CLICKS (one inferred before
    2026-12-08) validates the statistics without it: it is no column of the logs; a baseline
    without it (statistics made before) gives that column no drift check
    (`derived_column_notes` says so)."""
    tfdv = globals()['tfdv']()

    profiled = type(schema)()
    profiled.CopyFrom(schema)
    for index in reversed(range(len(profiled.feature))):
        if profiled.feature[index].name in UNPROFILED:
            del profiled.feature[index]
    predates = _derived_column_predated_by(schema, baseline)
    if predates == "schema":
        statistics, baseline = (without_feature(s, LOG_DWELL_OF_CLICKS) if s is not None
                                else None for s in (statistics, baseline))
    elif predates == "baseline":
        # (TFDV would report "previous data missing" for a column the baseline cannot have)
        tfdv.get_feature(profiled, LOG_DWELL_OF_CLICKS).ClearField("drift_comparator")
    return tfdv.validate_statistics(statistics, profiled, previous_statistics=baseline)


def _derived_column_predated_by(schema, baseline=None) -> str | None:
    """"schema" when `schema` has no LOG_DWELL_OF_CLICKS (inferred before it existed),
    "baseline" when the baseline statistics have none (made before), else None."""
    if not any(f.name == LOG_DWELL_OF_CLICKS for f in schema.feature):
        return "schema"
    if baseline is not None and not any(feature_name(f) == LOG_DWELL_OF_CLICKS
                                        for d in baseline.datasets for f in d.features):
        return "baseline"
    return None


def derived_column_notes(schema, baseline=None) -> list[str]:
    """`note:` lines for a validation whose schema or baseline predates LOG_DWELL_OF_CLICKS:
    its drift, the dwell check that sees a shrink, is not checked then (none without a
    baseline)."""
    predates = _derived_column_predated_by(schema, baseline) if baseline is not None else None
    if predates == "schema":
        return [f"note: the schema has no {LOG_DWELL_OF_CLICKS} (inferred before 2026-12-08): "
                "the log dwell of clicks is not drift-checked; infer the schema again to check "
                "it"]
    if predates == "baseline":
        return [f"note: the baseline statistics have no {LOG_DWELL_OF_CLICKS} (made before "
                "2026-12-08): the log dwell of clicks is not drift-checked; make them again "
                "to check it"]
    return []


def without_feature(statistics, name: str):
    """A copy of TFDV `statistics` without feature `name` in any dataset."""
    copy = type(statistics)()
    copy.CopyFrom(statistics)
    for dataset in copy.datasets:
        for index in reversed(range(len(dataset.features))):
            feature = dataset.features[index]
            if feature_name(feature) == name:
                del dataset.features[index]
    return copy


def load_schema(path: str):
    """The curated schema in `path` (schema.pbtxt); InputError naming the file if there is none
    or it is not one."""
    tfdv = globals()['tfdv']()
    if not os.path.isfile(path):
        raise InputError("no such schema file (make one with python -m pipelines.validate)",
                         file=path)
    try:
        return tfdv.load_schema_text(path)
    except Exception as error:  # a text-format parse error
        message = (str(error).splitlines() or [type(error).__name__])[0]
        raise InputError(f"is not a schema.pbtxt ({message})", file=path) from None


def load_statistics(path: str):
    """TFDV statistics in `path` (a stats.pb this job wrote); InputError naming the file if there
    are none or it holds something else."""
    tfdv = globals()['tfdv']()
    if not os.path.isfile(path):
        raise InputError("no such statistics file (a stats.pb of python -m pipelines.validate)",
                         file=path)
    try:
        statistics = tfdv.load_stats_binary(path)
    except Exception as error:  # a protobuf decode error
        message = (str(error).splitlines() or [type(error).__name__])[0]
        raise InputError(f"is not a stats.pb of python -m pipelines.validate ({message})",
                         file=path) from None
    if not statistics.datasets:
        raise InputError("holds no statistics (expected a stats.pb of python -m "
                         "pipelines.validate)", file=path)
    # This job writes one dataset of logs; a proto that parses as several (slices of another
    # tool's statistics, or a schema.pb read as statistics) would fail inside TFDV's check.
    if len(statistics.datasets) != 1:
        raise InputError(f"holds {len(statistics.datasets)} datasets, not the one dataset of "
                         "logs that python -m pipelines.validate writes", file=path)
    if not statistics.datasets[0].num_examples or not any(
            f.HasField("num_stats") or f.HasField("string_stats")
            for f in statistics.datasets[0].features):
        raise InputError("holds no rows or no feature's statistics (expected a stats.pb of "
                         "python -m pipelines.validate)", file=path)
    return statistics


def check_input(pattern: str, schema_path: str, beam_args: list[str] | None = None,
                allow_unclicked_dwell: bool = False,
                column_types: Mapping[str, str] | None = None, given_by: str = "flag",
                say: bool = False) -> None:
    """Refuses (InputError listing the anomalies) logs that do not match a curated schema; used
    by the --schema flag of the stats, label and training jobs, which pass their
    --allow_unclicked_dwell and the column types they read with: the statistics job its
    --column_types (`given_by` "flag"), the others its artifact's ("artifact"). `say`: print
    the check's wall time once it passes (a TFDV pass over the input)."""
    import tempfile
    import time

    started = time.perf_counter()

    schema = load_schema(schema_path)
    with tempfile.TemporaryDirectory() as tmp:
        stats = generate_statistics(pattern, os.path.join(tmp, "stats.pb"), beam_args,
                                    ValidationConfig(allow_unclicked_dwell=allow_unclicked_dwell),
                                    column_types=column_types, given_by=given_by)
    lines = anomaly_lines(validate(stats, schema))
    if lines:
        raise InputError(f"{pattern} does not match the schema {schema_path}:\n  "
                         + "\n  ".join(lines))
    if say:
        print(f"checked {pattern} against {schema_path} in "
              f"{time.perf_counter() - started:.1f} s (TFDV)", flush=True)


REPORT_TITLE = "# Validation of"
# What a run writes into --output_dir: an earlier run's output (these files alone, its report
# titled as this job titles it) may be replaced, a directory holding anything else may not.
OUTPUTS = ("stats.pb", "schema.pbtxt", "anomalies.pbtxt", "report.md", "stats.html")


is_validation_output = earlier_output(names=OUTPUTS, titles={"report.md": REPORT_TITLE})


def write_report(path: str, pattern: str, statistics, lines: list[str], schema_note: str,
                 baseline_path: str | None) -> None:
    """A Markdown report: what was checked, the anomalies, and per-feature statistics."""
    from tensorflow_metadata.proto.v0 import statistics_pb2

    dataset = statistics.datasets[0]
    out = [f"{REPORT_TITLE} `{pattern}`", "",
           f"- rows: {dataset.num_examples:,}",
           f"- schema: {schema_note}",
           f"- drift baseline: {baseline_path or 'none'}", "",
           f"## Anomalies ({len(lines)})", ""]
    out += [f"- {line}" for line in lines] or ["None."]
    out += ["", "## Features", "", "| feature | type | missing | mean / unique | min | max |",
            "|---|---|---|---|---|---|"]
    for feature in dataset.features:
        name = feature_name(feature)
        if name == LOG_DWELL_OF_CLICKS:
            name += " (derived: ln(1 + dwell_time) of clicks)"
        kind = statistics_pb2.FeatureNameStatistics.Type.Name(feature.type)
        if feature.HasField("num_stats"):
            s = feature.num_stats
            missing = s.common_stats.num_missing
            if s.common_stats.num_non_missing == 0:  # TFDV leaves mean, min, max at 0
                out.append(f"| {name} | {kind} | {missing} | – | – | – |")
            else:
                out.append(f"| {name} | {kind} | {missing} | {s.mean:.4g} | {s.min:.4g} | "
                           f"{s.max:.4g} |")
        elif feature.HasField("string_stats"):
            s = feature.string_stats
            out.append(f"| {name} | {kind} | {s.common_stats.num_missing} | {s.unique} "
                       "unique | | |")
    with open(path, "w") as handle:
        handle.write("\n".join(out) + "\n")
