"""Exporting a trained model directory as a versioned SavedModel for TF Serving (SPEC §7).

    <export_base>/<version>/saved_model.pb, variables/, assets.extra/tf_serving_warmup_requests
    <export_base>/models.config     an example TF Serving model config pointing at export_base

The version directory is written under a hidden temporary name in `export_base` and renamed
into place when complete: TF Serving only loads integer-named directories, so it never sees a
half-written model, and an interrupted export leaves no version directory. An existing version
is never overwritten.

Warmup requests: `PredictionLog` records (tensorflow-serving-api) of `serving_default` with 1
and 64 examples, made from the first rows of the model's training logs (or default-valued
examples when those logs are no longer readable), so TF Serving initializes the graph and its
lookup tables before the first real request.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
import tempfile

import numpy as np

from core import log_writers, logs
from core.atomic import atomic_file
from core.errors import InputError
from export.versions import (
    FEATURE_DEFAULTS_FILE,
    TRAINING_DAYS_FILE,
    existing_versions,
    foreign_entries,
)
from ranking import metrics, selection_files
from ranking import model_dir as model_dir_lib
from ranking.fusion import Fusion, parse_weights
from ranking.input_notes import trained_day_rows, validation_window_rows
from ranking.models import RankingModel

WARMUP_FILE = "tf_serving_warmup_requests"
FUSION_FILE = "score_fusion.json"
GATE_FILE = "quality_gate.json"
WARMUP_BATCHES = (1, 64)


@dataclasses.dataclass
class ExportResult:
    path: str
    version: int
    signatures: dict  # name -> {"inputs": {name: (dtype, shape)}, "outputs": {...}}
    warmup_records: int
    fusion: Fusion
    gate: dict | None = None
    # Said as `warning:` lines: serving inputs changed since the previous version, a
    # models.config edited by hand left as it is.
    warnings: tuple = ()


def load_trained(model_dir: str):
    """(RankingModel with the weights to serve, config.json contents): with a validation
    window (`ranking.selection`), the refit checkpoint's, else the best one's (InputError before
    its first validation); without a validation window, the newest checkpoint's."""
    import tensorflow as tf

    description = model_dir_lib.load_model_description(model_dir)
    spec, config, targets = model_dir_lib.build_from_description(description)
    model = RankingModel(spec, config, targets)
    model({f.name: tf.zeros([1], f.dtype) for f in spec.features})
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    if latest is None:
        raise InputError(f"{model_dir} has no checkpoint yet: train it first "
                         "(python -m ranking.train)")
    served = selection_files.served_checkpoint(model_dir)
    chosen = description["training"].get("selection") or {}
    if served is None and (chosen.get("validation") or chosen.get("validation_days")):
        # Its newest weights are not a selected model: training has not validated yet.
        raise InputError(f"{model_dir} was trained with a validation window but has no best "
                         "checkpoint yet (its training has not reached a validation: still in "
                         "its first epoch, or stopped before it): export it once ranking.train "
                         "has finished", file=os.path.join(model_dir, selection_files.BEST_DIR))
    checkpoint = tf.train.Checkpoint(model=model)
    if served is not None:
        model_dir_lib.read_checkpoint(checkpoint, served)
    else:
        model_dir_lib.read_checkpoint(checkpoint, latest, restore=True, partial=True)
    return model, description


def _refuse_diverged(model, model_dir: str) -> None:
    """InputError when a weight to serve is NaN or infinite: training diverged (too high a
    learning rate), and every score it served would be NaN, which scoring and serving would
    write without a word."""
    for variable in model.network.weights:
        values = variable.numpy()
        bad = int(values.size - np.isfinite(values).sum()) if values.dtype.kind == "f" else 0
        if bad:
            raise InputError(f"{model_dir}: {served_checkpoint_text(model_dir)} holds "
                             f"{bad:,} NaN or infinite value(s) in {variable.name}: training "
                             "diverged (too high a --learning_rate?); nothing exported")


def served_checkpoint_text(model_dir: str) -> str:
    """Which checkpoint `load_trained` serves, in words: "final/ (the refit pass of step N's
    best checkpoint)", "best/ (step N)" or "checkpoints/ckpt-N"."""
    import tensorflow as tf

    final, best = selection_files.read_final(model_dir), selection_files.read_best(model_dir)
    if final is not None:
        return f"final/ (the refit pass of step {final['from_step']}'s best checkpoint)"
    if best is not None and selection_files.served_checkpoint(model_dir) is not None:
        return f"best/ (step {best['step']})"
    latest = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints")) or ""
    return os.path.relpath(latest, model_dir) if latest else "its newest checkpoint"


def warmup_examples(description: dict, spec, rows: int = max(WARMUP_BATCHES),
                    problems: list | None = None) -> list[bytes]:
    """Serialized tf.Examples for warmup: the first `rows` rows of the training logs, or
    examples of default values (empty examples) when those logs cannot be read, said in a
    line appended to `problems`."""
    import tensorflow as tf

    train = model_dir_lib.recorded_globs(description, description["training"]["train"])
    try:
        source = logs.open_logs(train, column_types=spec.dtypes)
        source = dataclasses.replace(source, schema=source.schema.with_missing(spec.defaults))
        allow = bool(description["training"].get("allow_unclicked_dwell"))
        batch = next(iter(source.dataset(rows, columns=spec.names, allow_unclicked_dwell=allow,
                                         check_streams=False)))  # its first rows only
        columns = {name: batch[name].numpy() for name in spec.names}
        return log_writers.serialize_examples(columns)
    except (InputError, StopIteration, OSError, tf.errors.OpError) as error:
        if problems is not None:
            why = (str(error).strip().splitlines() or ["they hold no rows"])[0][:300]
            problems.append(f"the warmup requests are examples of default values: the training "
                            f"logs {train} cannot be read here "
                            f"({why}), so TF Serving warms up on rows unlike the served ones")
        return [b""] * rows


def write_warmup(path: str, examples: list[bytes], model_name: str) -> int:
    """Writes PredictionLog records of `serving_default` for each batch size of
    WARMUP_BATCHES; returns the number of records."""
    import tensorflow as tf
    from tensorflow_serving.apis import model_pb2, predict_pb2, prediction_log_pb2

    from export.serving import EXAMPLES_INPUT, SIGNATURE_EXAMPLES

    count = 0
    with tf.io.TFRecordWriter(path) as writer:
        for size in WARMUP_BATCHES:
            batch = (examples * (size // max(len(examples), 1) + 1))[:size]
            request = predict_pb2.PredictRequest(model_spec=model_pb2.ModelSpec(
                name=model_name, signature_name=SIGNATURE_EXAMPLES))
            request.inputs[EXAMPLES_INPUT].CopyFrom(tf.make_tensor_proto(batch, dtype=tf.string))
            log = prediction_log_pb2.PredictionLog(
                predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
            count += 1
    return count


def models_config(export_base: str, model_name: str) -> str:
    """A TF Serving model config (text proto) serving the newest version under export_base."""
    return ("model_config_list {\n  config {\n"
            f"    name: \"{model_name}\"\n    base_path: \"{os.path.abspath(export_base)}\"\n"
            "    model_platform: \"tensorflow\"\n"
            "    model_version_policy { latest { num_versions: 1 } }\n  }\n}\n")


def _hand_edited(text: str, export_base: str) -> bool:
    """Whether a models.config's `text` is other than the one this module writes for
    `export_base` (a rollback pinned with `specific { versions: ... }`, a container's
    `base_path`, or a base moved since: each is left to the user, with a warning)."""
    name = re.search(r'name: "([^"]*)"', text)
    return name is None or text != models_config(export_base, name.group(1))


def _base_paths(text: str) -> list[str]:
    """The `base_path`s a models.config's `text` names."""
    return re.findall(r'base_path\s*:\s*"([^"]*)"', text)


def _other_base(text: str, export_base: str) -> str | None:
    """The base_path of a models.config's `text` that is the one this module writes, but for
    another base than `export_base`; else None."""
    name, bases = re.search(r'name: "([^"]*)"', text), _base_paths(text)
    if name is None or len(bases) != 1 or bases[0] == os.path.abspath(export_base):
        return None
    return bases[0] if text == models_config(bases[0], name.group(1)) else None


def _pinned(text: str) -> list[int]:
    """The versions a models.config's `text` pins with `specific { versions: ... }`, sorted
    (empty for another version policy)."""
    return sorted({int(v) for block in re.findall(r"specific\s*\{([^}]*)\}", text)
                   for v in re.findall(r"versions\s*:\s*(\d+)", block)})


def pinned_versions(path: str) -> list[int]:
    """The versions the models.config at `path` pins (`_pinned`)."""
    with open(path) as handle:
        return _pinned(handle.read())


def _config_warnings(text: str, config_path: str, export_base: str, version: int,
                     previous_version: int | None, contract: tuple) -> list[str]:
    """What a models.config this export leaves as it is (`text`, hand-edited or for another
    base) means for the new version: which base TF Serving reads, whether it serves the
    version, and the serving contract's changes from each pinned version (what clients meet
    today; versions with the same changes named together)."""
    here = os.path.abspath(export_base)
    moved = _other_base(text, export_base)
    if moved:  # the tool's config, for another base: a base copied or moved since
        return [f"{config_path} is this tool's config for another base_path, {moved} (a base "
                f"copied or moved since, or a container's path): left as it is, so TF Serving "
                f"reads versions from {moved}, not from {here}; "
                "remove the file to have the next export write it for this base"]
    pinned, bases = _pinned(text), _base_paths(text)
    pins = ", ".join(map(str, pinned))
    serves = (f"TF Serving serves version {version} only if its model_version_policy "
              "allows it" if not pinned else
              f"it pins version(s) {pins}, so TF Serving serves version {version}"
              if version in pinned else
              f"it pins version(s) {pins}, so TF Serving does not serve version "
              f"{version} until you add it")
    elsewhere = ("; its base_path is " + ", ".join(bases) + f", not {here}: TF Serving "
                 "reads versions from there"
                 if bases and here not in {os.path.normpath(b) for b in bases} else "")
    warnings = [f"{config_path} was edited by hand (not the config this tool "
                f"writes): left as it is; {serves}{elsewhere}"]
    changed = {}
    for served in pinned:
        path = os.path.join(here, str(served))
        if served in (version, previous_version) or not os.path.isfile(
                os.path.join(path, "saved_model.pb")):
            continue
        pinned_contract = serving_contract(path)
        if pinned_contract is None:
            warnings.append(f"version {served}, which {config_path} pins, has a saved_model.pb "
                            "that cannot be read (damaged or cut short): TF Serving cannot "
                            "load it")
            continue
        changes = contract_changes(pinned_contract, contract) if pinned_contract[0] else []
        if changes:
            changed.setdefault(tuple(changes), []).append(served)
    for changes, served in changed.items():
        which = (f"version {served[0]}, which" if len(served) == 1 else
                 f"versions {', '.join(map(str, served))}, which")
        warnings.append(f"the serving signature changed from {which} {config_path} pins: "
                        + "; ".join(changes))
    return warnings


def serving_contract(saved_model: str) -> tuple[dict, tuple] | None:
    """({feature: dtype name} of a SavedModel's predict_raw inputs, its serving_default output
    names), read from saved_model.pb without loading it (({}, ()) without predict_raw; None
    when saved_model.pb cannot be read or parsed: a damaged version)."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    try:
        with open(os.path.join(saved_model, "saved_model.pb"), "rb") as handle:
            proto.ParseFromString(handle.read())
    except (OSError, DecodeError):
        return None
    signatures = proto.meta_graphs[0].signature_def if proto.meta_graphs else {}
    if "predict_raw" not in signatures:
        return {}, ()
    inputs = {name: tf.dtypes.as_dtype(info.dtype).name
              for name, info in signatures["predict_raw"].inputs.items()}
    served = signatures.get("serving_default")
    return inputs, tuple(sorted(served.outputs)) if served is not None else ()


def served_formula(saved_model: str) -> str | None:
    """The score's formula an export of this tool serves (its assets.extra/score_fusion.json),
    or None for a SavedModel without one."""
    try:
        with open(os.path.join(saved_model, "assets.extra", FUSION_FILE)) as handle:
            return Fusion.from_json(json.load(handle)).formula()
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def contract_changes(before: tuple, after: tuple) -> list[str]:
    """What a serving client must change between two `serving_contract`s, in words."""
    (inputs, outputs), (new_inputs, new_outputs) = before, after
    changes = [f"{name} {inputs[name]} -> {new_inputs[name]} (a client sending "
               f"{inputs[name]} is refused)" for name in sorted(set(inputs) & set(new_inputs))
               if inputs[name] != new_inputs[name]]
    changes += [f"{name} ({new_inputs[name]}) added: a client that leaves it out gets its "
                "default" for name in sorted(set(new_inputs) - set(inputs))]
    changes += [f"{name} removed" for name in sorted(set(inputs) - set(new_inputs))]
    if outputs and new_outputs:  # (a SavedModel without serving_default: nothing to compare)
        changes += [f"output {name} removed: a client reading it fails"
                    for name in sorted(set(outputs) - set(new_outputs))]
        changes += [f"output {name} added" for name in sorted(set(new_outputs) - set(outputs))]
    return changes


def describe_signatures(module) -> dict:
    result = {}
    for name, function in module.signatures().items():
        inputs = {spec.name: (spec.dtype.name, list(spec.shape))
                  for spec in function.structured_input_signature[1].values()} or {
            spec.name: (spec.dtype.name, list(spec.shape))
            for spec in function.structured_input_signature[0]}
        outputs = {key: (spec.dtype.name, list(spec.shape))
                   for key, spec in function.structured_outputs.items()}
        result[name] = {"inputs": inputs, "outputs": outputs}
    return result


def resolve_fusion(default: Fusion, score_weights=(), score_space: str | None = None) -> Fusion:
    """The serving score of `--score_weights` (output=weight pairs) and `--score_space`; what is
    not given is the preset's `default`."""
    if not score_weights and score_space is None:
        return default
    pairs = score_weights or [f"{n}={w:g}" for n, w in default.weights]
    return parse_weights(pairs, score_space or default.space)


def export_saved_model(model_dir: str, export_base: str, version: int | None = None,
                       score_weights=(), score_space: str | None = None,
                       model_name: str | None = None, baseline: str | None = None,
                       gate: str | None = None, gate_logs: str | None = None) -> ExportResult:
    """Exports the newest checkpoint of `model_dir` to `export_base/<version>` atomically.

    `version`: default newest existing + 1 (1 for a new base); an existing version is refused.
    `score_weights` ('output=weight' pairs) and `score_space` ('linear' or 'log'): the serving
    score (default: the preset's, `ranking.fusion`), stored in the SavedModel (the
    `score_fusion` signature and assets.extra/score_fusion.json); a weight on an output the
    model does not have is refused.

    With `baseline` (an export base or version) and `gate` (METRIC:MAX_DROP), the quality gate
    of `export.gate` runs first: a candidate worse than the baseline by more than MAX_DROP is
    refused (InputError) and nothing is written; otherwise the decision goes into the version
    as quality_gate.json.
    """
    import tensorflow as tf

    from export.serving import ServingModule

    foreign = foreign_entries(export_base)
    if foreign:
        shown = ", ".join(foreign[:4]) + (", ..." if len(foreign) > 4 else "")
        raise InputError(f"--export_base {export_base} holds {shown}: an export base holds only "
                         "numbered versions and models.config (is it a model directory, a "
                         "stats artifact or a version?); give a new or empty directory, or "
                         "an existing export base")
    versions = existing_versions(export_base)
    if version is None:
        version = (versions[-1] + 1) if versions else 1
    # Versions holding a model; the newest earlier one's serving inputs are compared with the
    # new one's, and TF Serving's latest policy serves the newest.
    served = [v for v in versions
              if os.path.isfile(os.path.join(export_base, str(v), "saved_model.pb"))]
    previous_version = max((v for v in served if v < version), default=None)
    previous = (None if previous_version is None
                else os.path.join(os.path.abspath(export_base), str(previous_version)))
    if version < 0:
        raise InputError(f"--version must be a non-negative integer, not {version}")
    target = os.path.join(os.path.abspath(export_base), str(version))
    if os.path.exists(target):
        raise InputError(f"export version {version} exists already ({target}); versions are "
                         "never overwritten: choose another --version or leave it out for "
                         f"{versions[-1] + 1 if versions else 1}")
    if (baseline is None) != (gate is None):
        raise InputError("--baseline and --gate go together: the gate compares the candidate "
                         "with the baseline")
    if gate_logs is not None and gate is None:
        raise InputError("--gate_logs are the quality gate's logs: give --gate (and --baseline) "
                         "too, or leave --gate_logs out")
    named = model_name or os.path.basename(os.path.normpath(export_base)) or "dwellrank"
    for what, text in (("--model_name", named), ("--export_base", os.path.abspath(export_base))):
        if re.search(r'["\\\x00-\x1f]', text):
            raise InputError(f"{what} {text!r} holds a quote, a backslash or a control "
                             "character, which models.config (TF Serving's text format, "
                             "written as name: \"...\") cannot hold as written")
    model, description = load_trained(model_dir)
    _refuse_diverged(model, model_dir)
    fusion = resolve_fusion(model.config.fusion, score_weights, score_space)
    module = ServingModule(model.network, model.feature_spec, model.config, model.targets,
                           fusion)
    gate_record = None
    # The days the model learned from: for its own gate, and kept in the export for the gates
    # that later take it as their baseline.
    refitted = selection_files.read_final(model_dir) is not None
    days_record = model_dir_lib.read_training_days(model_dir)
    trained_days = trained_day_rows(days_record, refitted)
    unfinished = model_dir_lib.unfinished_training_note(model_dir,
                                                       served_checkpoint_text(model_dir))
    if gate is not None:
        from export import gate as gate_lib

        try:
            gate_record = gate_lib.judge(
                gate_lib.parse_gate(gate), module, baseline, description, gate_logs,
                model.feature_spec, refitted=refitted, trained_days=trained_days,
                window_rows=validation_window_rows(days_record))
        except InputError as refused:  # said with the refusal too
            if unfinished:
                refused.warnings = (unfinished,) + tuple(refused.warnings)
            raise
    model_name = named
    os.makedirs(export_base, exist_ok=True)
    warmup_problems: list = []  # (a line when the warmup cannot read the training logs)
    tmp = tempfile.mkdtemp(prefix=f".{version}.tmp-", dir=export_base)
    try:
        staged = os.path.join(tmp, str(version))
        tf.saved_model.save(module, staged, signatures=module.signatures())
        os.makedirs(os.path.join(staged, "assets.extra"))
        records = write_warmup(os.path.join(staged, "assets.extra", WARMUP_FILE),
                               warmup_examples(description, model.feature_spec,
                                               problems=warmup_problems), model_name)
        with open(os.path.join(staged, "assets.extra", FUSION_FILE), "w") as handle:
            json.dump(module.fusion.to_json(), handle, indent=2)
        with open(os.path.join(staged, FEATURE_DEFAULTS_FILE), "w") as handle:
            json.dump(model.feature_spec.defaults, handle, indent=2)
        if trained_days is not None:
            with open(os.path.join(staged, TRAINING_DAYS_FILE), "w") as handle:
                json.dump({str(day): rows for day, rows in sorted(trained_days.items())},
                          handle, indent=2)
        if gate_record is not None:
            with open(os.path.join(staged, GATE_FILE), "w") as handle:
                # Strict JSON: an undefined baseline figure (a diverged model) is null.
                json.dump(metrics.json_ready(gate_record), handle, indent=2, allow_nan=False)
        if os.path.exists(target):
            raise InputError(f"export version {version} appeared while exporting ({target}); "
                             "not overwriting it")
        os.rename(staged, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    warnings = [note.removeprefix("note: ") for note in (gate_record or {}).get("notes", ())]
    warnings += warmup_problems
    if unfinished:
        warnings.insert(0, unfinished)
    before = serving_contract(previous) if previous is not None else ({}, ())
    contract = serving_contract(target)
    if before is None:
        warnings.append(f"version {previous_version}'s saved_model.pb cannot be read (damaged "
                        f"or cut short: {previous}): its serving signature was not compared "
                        "with this version's, and TF Serving cannot load it")
    elif before[0]:  # (a SavedModel of another tool, without predict_raw: nothing to compare)
        changes = contract_changes(before, contract)
        if changes:
            warnings.append(f"the serving signature changed from version {previous_version}: "
                            + "; ".join(changes))
    before_formula = served_formula(previous) if previous is not None else None
    if before_formula and before_formula != fusion.formula():
        warnings.append(f"the score's formula changed from version {previous_version}: "
                        f"{before_formula} -> {fusion.formula()}: its values are on another "
                        "scale (and may rank otherwise), so thresholds, calibrations and logged "
                        f"scores of version {previous_version} do not carry over")
    config_path = os.path.join(export_base, "models.config")
    text = None
    if os.path.isfile(config_path):
        with open(config_path) as handle:
            text = handle.read()
    if text is not None and _hand_edited(text, export_base):
        warnings += _config_warnings(text, config_path, export_base, version, previous_version,
                                     contract)
    else:
        with atomic_file(config_path) as handle:
            handle.write(models_config(export_base, model_name))
        newest = max(served, default=None)
        if newest is not None and version < newest:
            # The policy written (TF Serving's default too) serves the newest version only; a
            # hand-edited models.config is judged by `_config_warnings` above.
            warnings.append(f"version {version} is below the newest, {newest}: TF Serving "
                            f"serves {newest} (models.config: latest {{ num_versions: 1 }}), "
                            f"not this one; export it above {newest} to serve it")
    return ExportResult(target, version, describe_signatures(module), records, fusion,
                        gate_record, tuple(warnings))
