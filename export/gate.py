"""The quality gate before serving: as TFX's Evaluator blesses a model before its Pusher.

    python -m export.saved_model --model_dir=models/vr_ndt --export_base=serving/vr_ndt \\
        --baseline=serving/vr_ndt --gate=auc_valid_read:0.002 [--gate_logs=GLOB]

The candidate (the model being exported, as it will be served) and the baseline (an export
base, whose newest version is used, or a version directory) score the same held-out logs; the
gate metric is computed on both with `ranking.metrics`. A candidate worse than the baseline by
more than MAX_DROP is refused: one error line with both figures, exit status 1, and no version
is written. Otherwise `quality_gate.json` (the metric, both figures, the logs, the decision)
is written into the new version directory, beside saved_model.pb.

Metrics: `auc_ctr` and `auc_valid_read` of the served `score`, or `OUTPUT.auc_ctr` /
`OUTPUT.auc_valid_read` of an output both models have (e.g. `ctr.auc_ctr`, a click tower).

The held-out logs are `--gate_logs`, or the candidate's validation window (its --validation
logs, or the last --validation_days days of its training logs as training held them out: the
days training_days.json records, not the last days the glob matches now) unless its refit
pass (`--refit=validation`, the default; `final/` in the model directory) trained on that
window, or else its --eval logs; a model with neither is refused, naming --gate_logs. They
are labelled with the candidate's stats artifact (its path is in config.json), so the
baseline is judged on the same labels.
"""

from __future__ import annotations

import dataclasses
import json
import typing

import numpy as np

from core.errors import InputError
from ranking import metrics

OUTCOMES = ("auc_ctr", "auc_valid_read")


@dataclasses.dataclass(frozen=True)
class Gate:
    output: str  # "score" or another output of both models
    label: str  # "click" or "valid_read"
    max_drop: float
    name: str  # as given, e.g. "auc_valid_read" or "ctr.auc_ctr"


def parse_gate(text: str) -> Gate:
    """METRIC:MAX_DROP (module docstring); InputError naming what is wrong."""
    metric, _, drop = text.partition(":")
    output, _, outcome = metric.rpartition(".")
    try:
        max_drop = float(drop)
    except ValueError:
        max_drop = float("nan")
    if outcome not in OUTCOMES or not max_drop >= 0:
        raise InputError(f"--gate: expected METRIC:MAX_DROP with METRIC one of "
                         f"{', '.join(OUTCOMES)} (of the score) or OUTPUT.auc_ctr / "
                         f"OUTPUT.auc_valid_read, and MAX_DROP >= 0; got {text!r}")
    return Gate(output or "score", "click" if outcome == "auc_ctr" else "valid_read",
                max_drop, metric)


def held_out_logs(description: dict, gate_logs: str | None, refitted: bool):
    """(glob, "validation_days" or None) of the logs the gate scores (module docstring);
    `refitted`: the model made its refit pass (`ranking.selection_files.read_final`), so it has
    trained on its validation window."""
    from ranking.model_dir import recorded_globs

    if gate_logs:
        return gate_logs, None
    training = description["training"]
    selection = training.get("selection") or {}
    window = selection.get("validation") or selection.get("validation_days")
    refit = window and refitted
    if window and not refit:
        if selection.get("validation"):
            return recorded_globs(description, selection["validation"]), None
        return recorded_globs(description, training["train"]), "validation_days"
    if training.get("eval"):
        return recorded_globs(description, training["eval"]), None
    if refit:
        raise InputError(f"the model's refit pass (--refit={selection.get('refit')}) trained "
                         "on its validation window and it has no --eval logs, so nothing it was "
                         "trained with is held out: give --gate_logs (logs neither model "
                         "trained on)")
    raise InputError("the model has no validation or evaluation logs to gate on: give "
                     "--gate_logs")


class HeldOut(typing.NamedTuple):
    """The gate's held-out rows: `pattern` (their logs), `features` (the feature columns, or
    what `labelled_rows`' `keep` kept of them) and `labels` ({name: NumPy [rows]}), `day_rows`
    ({UTC day: rows} of the rows read: for a validation window of the training logs, its
    days'), `window` (which rows of `pattern`, when not all of them)."""

    pattern: str
    features: dict
    labels: dict
    day_rows: dict
    window: str | None = None
    # Features no sampled record has a value of (`LogSource.absent_features`), read as their
    # default.
    absent_features: tuple = ()
    notes: tuple = ()  # `note:` lines on the rows read


def labelled_rows(description: dict, gate_logs: str | None, spec, refitted: bool,
                  batch_size: int = 8192, also: tuple = (), whose: str = "candidate",
                  window_rows: dict | None = None, keep=None) -> HeldOut:
    """Feature columns (the candidate's spec, and `also`: `ranking.features.Feature`s of the
    baseline the candidate does not read) and labels of the held-out logs, as NumPy.
    `whose`: "baseline" when `spec` is the baseline's (an absent column is named so).
    `window_rows`: {UTC day: rows} of the validation window training held out
    (`ranking.input_notes.validation_window_rows`): the gate reads those days of the training
    logs, not the last days they hold now (daily logs landing in the same directory).
    `keep`: ({feature: NumPy [rows]} -> {name: NumPy [rows]}) what to keep of each batch
    (the models' scores) in `features` instead of its columns, so that memory holds a few
    numbers a row, not every feature of every row."""
    from core import log_diagnosis, stats_artifact
    from core.labeler import day_rows_of, labeler_for
    from ranking import data
    from ranking.features import FeatureSpec

    spec = FeatureSpec(spec.features + tuple(also))

    pattern, window = held_out_logs(description, gate_logs, refitted)
    artifact = stats_artifact.load_artifact(description["stats"]["path"])
    # The artifact is read from its path: one rewritten since (a statistics job run again into
    # the same directory) would label the held-out logs with other rules than the model's.
    recorded, now = description["stats"], artifact.summary()
    changed = sorted(k for k in set(recorded) & set(now) - {"path"}
                     if json.dumps(recorded[k], sort_keys=True) != json.dumps(now[k],
                                                                              sort_keys=True))
    if changed:
        raise InputError(f"the stats artifact the model was trained with has changed since "
                         f"(its {', '.join(changed)} differ from the model's config.json): the "
                         "gate would label the held-out logs with other rules; give it back the "
                         "training's artifact, or train the candidate again with this one",
                         file=artifact.path)
    # The validation days are training logs, whose first rows set the spec's types.
    source = data.open_source(pattern, spec, artifact, training_logs=window == "validation_days",
                              baseline_only=tuple(f.name for f in (
                                  spec.features if whose == "baseline" else also)))
    # The training run's own reading of dwell on unclicked rows (--allow_unclicked_dwell).
    allow = bool(description["training"].get("allow_unclicked_dwell"))
    features, labels = {}, {}
    with log_diagnosis.input_errors_explained():  # bad rows as InputErrors, for the API too
        labeler = labeler_for(source, artifact, allow_unclicked_dwell=allow)
        days = None
        if window == "validation_days" and window_rows:
            days = data.DayWindow(min(window_rows), max(window_rows))
            kept = sorted({file for file, day in labeler.file_day_rows
                           if days.first <= day <= days.last})
            if not kept:
                raise InputError(f"the candidate's validation window ({_dates(window_rows)}) "
                                 "is no longer in its training logs: give --gate_logs (logs "
                                 "neither model trained on)", file=pattern)
            source = dataclasses.replace(source, files=[source.files[i] for i in kept])
        elif window == "validation_days":  # (a model directory without training_days.json)
            n = description["training"]["selection"]["validation_days"]
            (_, _, _), (source, days) = data.split_by_days(source, labeler.file_day_rows, n)
        dataset = data.labelled_dataset(source, labeler, spec, batch_size, days=days,
                                        allow_unclicked_dwell=allow)
        for batch_features, batch_labels in dataset.as_numpy_iterator():
            kept = batch_features if keep is None else keep(batch_features)
            for k, v in kept.items():
                features.setdefault(k, []).append(v)
            for k in ("click", "valid_read"):
                labels.setdefault(k, []).append(batch_labels[k])
    join = lambda parts: {k: np.concatenate(v) for k, v in parts.items()}  # noqa: E731
    # The days read, for the notes on models that trained on them (for a validation window,
    # its days: a baseline's refit pass or later training may have taken them in).
    day_rows = {day: rows for day, rows in day_rows_of(labeler.file_day_rows).items()
                if days is None or (days.first <= day and (days.last is None
                                                           or day <= days.last))}
    notes = ()
    if window == "validation_days":
        n = description["training"]["selection"]["validation_days"]
        window = f"their last {n} UTC day(s), the candidate's validation window"
        if window_rows and day_rows != window_rows:
            notes = (f"note: the candidate's validation window ({_dates(window_rows)}) held "
                     f"{sum(window_rows.values()):,} rows of its training logs when it "
                     f"trained and holds {sum(day_rows.values()):,} now: the gate's figure is "
                     "not the one its model selection saw",)
    return HeldOut(pattern, join(features), join(labels), day_rows, window,
                   source.absent_features, notes)


def _dates(day_rows: dict) -> str:
    from core.label_rules import utc_date

    first, last = utc_date(min(day_rows)), utc_date(max(day_rows))
    return first if first == last else f"{first} to {last}"


def _served(call, inputs: dict, outputs, features: dict, output: str,
            batch_size: int = 8192) -> np.ndarray:
    """`output` of `call` ({feature: Tensor} -> {output: Tensor}; its `inputs`: name ->
    TensorSpec, its `outputs`: names) over the feature columns (cast to its dtypes)."""
    import tensorflow as tf

    from core import logs

    missing = [name for name in inputs if name not in features]
    if missing:
        raise InputError(f"the baseline needs feature(s) {', '.join(missing)} that the held-out "
                         "logs do not have")
    if output not in outputs:
        raise InputError(f"--gate names output {output!r}, which a model does not have "
                         f"(outputs: {', '.join(sorted(outputs))})")
    rows = len(next(iter(features.values())))
    parts = []
    for lo in range(0, rows, batch_size):
        args = {}
        for name, spec in inputs.items():
            value = tf.constant(features[name][lo:lo + batch_size])
            if spec.dtype == tf.string and value.dtype != tf.string:
                value = logs.as_text(value)  # as the reader makes text of a number
            args[name] = tf.cast(value, spec.dtype) if spec.dtype != tf.string else value
        part = call(args)[output].numpy()
        if part.ndim > 1 and part.shape[-1] != 1:
            raise InputError(f"--gate names output {output!r}, which has {part.shape[-1]} values "
                             "a row (a distribution); an AUC ranks by one value a row: gate on "
                             "the score or an output such as ctr")
        parts.append(part.reshape(len(part)))
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def _as_kind(value, dtype: str):
    """A default in the type a column is read as (the baseline's may be another): a number as
    its text in a string column (0 as ""), a text as its number in a numeric one (0 if none)."""
    if dtype == "string":
        return "" if value in (0, "") else str(value)
    try:
        return float(value) if dtype == "float32" else int(float(value))
    except (TypeError, ValueError):
        return 0


def judge(gate: Gate, candidate, baseline_path: str, description: dict,
          gate_logs: str | None, spec, refitted: bool, trained_days: dict | None = None,
          window_rows: dict | None = None) -> dict:
    """Scores the candidate (an `export.serving.ServingModule`) and the baseline SavedModel on
    the held-out logs; returns the record, or raises InputError when the candidate is worse by
    more than the allowed drop. `refitted`: the candidate made its refit pass; `trained_days`:
    {UTC day: rows} it trained on (`ranking.input_notes.trained_day_rows`), for the record's
    `note` when the held-out logs hold rows of them; `window_rows`: its validation window's
    (`labelled_rows`)."""
    from export.versions import (
        load_saved_model,
        read_export_training_days,
        read_feature_defaults,
        resolve_saved_model,
        signature_inputs,
    )
    from ranking.features import Feature, FeatureSpec

    baseline_path = resolve_saved_model(baseline_path)
    baseline = load_saved_model(baseline_path, role="--baseline ").signatures["predict_raw"]
    baseline_inputs = signature_inputs(baseline)  # {column: (keyword, TensorSpec)}
    # The baseline's features as it serves them: a missing value as its own default (an export
    # from before feature_defaults.json: the one its serving_default graph fills in).
    defaults = read_feature_defaults(baseline_path)
    ours = spec.dtypes
    # Each column is read with the type the candidate reads it as (the logs' own, which the
    # baseline's may no longer be: `_served` casts), a feature only the baseline reads with
    # the baseline's.
    baseline_features = tuple(
        Feature(name, ours.get(name, tensor.dtype.name),
                "categorical" if ours.get(name, tensor.dtype.name) == "string" else "numeric",
                default=_as_kind(defaults.get(name, 0), ours.get(name, tensor.dtype.name)))
        for name, (_, tensor) in baseline_inputs.items())
    # (Both defaults in the candidate's type: 600 == 600.0.)
    shared_alike = all(f.default == spec.defaults[f.name]
                       for f in baseline_features if f.name in ours)
    # One read when the shared features' defaults agree (the features the candidate dropped
    # read beside them); else the baseline's features in a read of their own.
    also = tuple(f for f in baseline_features if f.name not in ours) if shared_alike else ()
    # Each batch is scored by both models as it is read: the scores are kept, not the rows.
    candidate_specs = {s.name: s for s in
                       candidate.signatures()["predict_raw"].structured_input_signature[0]}
    baseline_specs = {name: spec for name, (_, spec) in baseline_inputs.items()}
    keywords = {name: keyword for name, (keyword, _) in baseline_inputs.items()}

    def candidate_scores(batch):
        return _served(candidate.outputs, candidate_specs, candidate.output_names, batch,
                       gate.output)

    def baseline_scores(batch):
        return _served(lambda args: baseline(**{keywords[k]: v for k, v in args.items()}),
                       baseline_specs, baseline.structured_outputs, batch, gate.output)

    pattern, scores, labels, day_rows, window, absent, read_notes = labelled_rows(
        description, gate_logs, spec, refitted, also=also, window_rows=window_rows,
        keep=lambda batch: {"candidate": candidate_scores(batch), **(
            {"baseline": baseline_scores(batch)} if shared_alike else {})})
    if not shared_alike:
        second = labelled_rows(description, gate_logs, FeatureSpec(baseline_features), refitted,
                               whose="baseline", window_rows=window_rows,
                               keep=lambda batch: {"baseline": baseline_scores(batch)})
        scores["baseline"] = second.features["baseline"]
        absent = tuple(dict.fromkeys(absent + second.absent_features))
        if len(second.labels["click"]) != len(labels["click"]) or not np.array_equal(
                second.labels["click"], labels["click"]):
            raise RuntimeError("the gate's two reads of the held-out logs differ")  # a bug
    label = labels[gate.label]
    positives = int(np.sum(label))
    if positives in (0, len(label)):  # an AUC needs both classes
        what = "clicks" if gate.label == "click" else "valid reads"
        raise InputError(f"quality gate: the held-out logs have {positives:,} {what} in "
                         f"{len(label):,} rows, so {gate.name} is undefined (an AUC needs both "
                         "classes); give --gate_logs with both, or gate on another metric",
                         file=pattern)
    value = metrics.auc(label, scores["candidate"])
    base_value = metrics.auc(label, scores["baseline"])
    record = {"metric": gate.name, "max_drop": gate.max_drop, "candidate": value,
              "baseline": base_value, "baseline_path": baseline_path, "logs": pattern,
              "rows": int(len(label))}
    if window:
        record["window"] = window
    from ranking.input_notes import absent_features_note, gate_days_note

    baseline_days = read_export_training_days(baseline_path)
    unknown = (None if trained_days is not None else
               "note: the candidate's model directory records no training days (trained "
               "before training_days.json, 2026-12-06): the gate cannot say whether its logs "
               "hold days the candidate learned from; gate on days after its --train logs")
    unknown_baseline = (None if baseline_days is not None else
                        "note: the baseline export records no training days (exported before "
                        "assets.extra/training_days.json, 2026-12-06, or from a model directory "
                        "without them): the gate cannot say whether its logs hold days the "
                        "baseline learned from, which would favour it")
    notes = [*read_notes] + [note for note in (gate_days_note(trained_days, day_rows)
                               if trained_days and day_rows else None, unknown,
                               gate_days_note(baseline_days, day_rows, "baseline")
                               if baseline_days and day_rows else None, unknown_baseline,
                               absent_features_note("gate's", absent)) if note]
    refusal, note = decide(gate, value, base_value, baseline_path)
    if note:
        notes.append(note)
    if notes:
        record["notes"] = notes
    if refusal:
        # The notes said with the refusal: a baseline that trained on the gate's rows is
        # favoured, which bears on a refusal most.
        raise InputError(refusal, warnings=[n.removeprefix("note: ") for n in notes])
    record["decision"] = "passed"
    return record


def decide(gate: Gate, value: float, base_value: float,
           baseline_path: str) -> tuple[str | None, str | None]:
    """(refusal message or None, note or None) for the candidate's and the baseline's gate
    metric (AUCs; NaN where a model's served scores are not all numbers, `metrics.auc`).

    A candidate below the baseline by more than `gate.max_drop` is refused; 1e-6 of slack, as
    the in-memory candidate and a loaded SavedModel agree to about 1e-6, so an equal model is
    never refused on rounding. An undefined candidate is refused; an undefined baseline (a
    diverged model, ranking nothing) cannot be fallen below: the candidate passes, with a note.
    """
    if np.isnan(value):
        return (f"quality gate: the candidate's {gate.name} is undefined: its served "
                f"{gate.output} is not a number on every row (a diverged model); no version "
                "was written"), None
    if np.isnan(base_value):
        return None, (f"note: the baseline's {gate.name} is undefined: its served "
                      f"{gate.output} is not a number on every row ({baseline_path}); there is "
                      "nothing to fall below, so the candidate passes")
    if not value >= base_value - gate.max_drop - 1e-6:
        return (f"quality gate: the candidate's {gate.name} {value:.4f} is "
                f"{base_value - value:.4f} below the baseline's {base_value:.4f} "
                f"({baseline_path}), more than the allowed {gate.max_drop:g}; no "
                "version was written"), None
    return None, None
