"""Export bases and their versions: `<export_base>/<version>/` with integer versions, as TF
Serving reads them. Light on purpose (TensorFlow only inside `load_saved_model`): scoring, the
quality gate and the online mode resolve and load SavedModels with it."""

from __future__ import annotations

import json
import os
import re

from core.errors import InputError


def load_saved_model(path: str, signatures=("predict_raw",), role: str = "") -> object:
    """`tf.saved_model.load(path)` of a SavedModel directory, checked to hold `signatures`;
    InputError naming the directory when it is damaged (a saved_model.pb cut short, its
    variables/ missing) or lacks one of them (a SavedModel of another tool). `role` names it
    in the message (e.g. "the baseline ")."""
    import tensorflow as tf
    from google.protobuf.message import DecodeError

    try:
        loaded = tf.saved_model.load(path)
    except (OSError, ValueError, RuntimeError, DecodeError, tf.errors.OpError) as error:
        why = (str(error).strip().splitlines() or [type(error).__name__])[0][:300]
        raise InputError(f"{role}{path} cannot be loaded as a SavedModel ({why}): it is "
                         "damaged or incomplete; export it again with python -m "
                         "export.saved_model") from None
    lacking = [name for name in signatures if name not in loaded.signatures]
    if lacking:
        raise InputError(f"{role}{path} is not an export of this project (it has no "
                         f"{' and '.join(lacking)} signature{'s' if len(lacking) > 1 else ''}): "
                         "export a model with python -m export.saved_model")
    return loaded


def signature_inputs(function) -> dict:
    """{column: (keyword, TensorSpec)} of a loaded signature's inputs. Loading a SavedModel
    makes each input's keyword a Python identifier (`publish-age` -> `publish_age`, `2device`
    -> `arg_2device`); the column it reads keeps its exported name as the spec's `name`."""
    return {(spec.name or keyword): (keyword, spec)
            for keyword, spec in function.structured_input_signature[1].items()}


def resolve_saved_model(path: str) -> str:
    """A SavedModel directory, or the newest integer version under an export base; absolute
    (Beam workers may run in another directory)."""
    path = os.path.abspath(path)
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = sorted(int(n) for n in (os.listdir(path) if os.path.isdir(path) else [])
                      if re.fullmatch(r"\d+", n)
                      and os.path.isfile(os.path.join(path, n, "saved_model.pb")))
    if not versions:
        raise InputError(f"{path} is neither a SavedModel nor an export base with versions "
                         "(make one with python -m export.saved_model)")
    return os.path.join(path, str(versions[-1]))


# {feature: default}: the value a missing feature reads as (the feature config's `default`), so
# that batch scoring reads a missing value as training and `serving_default` do.
FEATURE_DEFAULTS_FILE = os.path.join("assets.extra", "feature_defaults.json")


def read_feature_defaults(saved_model: str) -> dict:
    """{feature: default} of a SavedModel directory: its feature_defaults.json, or for one
    exported before that file, the values its `serving_default` parsing fills a missing
    feature with (`serving_defaults`: exports since 2026-11-23 served a feature config's
    `default`, though their training read 0 or "")."""
    path = os.path.join(saved_model, FEATURE_DEFAULTS_FILE)
    if not os.path.isfile(path):
        return serving_defaults(saved_model)
    with open(path) as handle:
        return json.load(handle)


def serving_defaults(saved_model: str) -> dict:
    """{feature: value} a SavedModel's `tf.Example` parsing gives a feature an example leaves
    out, read from saved_model.pb without loading it: in each traced function holding one
    `ParseExampleV2`, its `dense_defaults` (exports before 2026-12-05 13:26 parsed each feature
    as a `FixedLenFeature` with its default) and the `default_value` of the
    `RaggedTensorToTensor` densifying each ragged feature (`export.serving.parse_examples`
    since). float32 values as their shortest text (0.1, not 0.10000000149). {} when there is
    none (a SavedModel of another tool)."""
    import numpy as np
    from tensorflow.core.protobuf import saved_model_pb2
    from tensorflow.python.framework import tensor_util

    proto = saved_model_pb2.SavedModel()
    with open(os.path.join(saved_model, "saved_model.pb"), "rb") as handle:
        proto.ParseFromString(handle.read())

    def constant(nodes: dict, reference: str):
        """The value of the Const node `reference` ("name:output:0") names, through Reshape
        and Identity nodes (a dense default is reshaped to its shape), or None."""
        node = nodes.get(reference.split(":")[0])
        while node is not None and node.op in ("Reshape", "Identity"):
            node = nodes.get(node.input[0].split(":")[0])
        if node is None or node.op != "Const":
            return None
        array = tensor_util.MakeNdarray(node.attr["value"].tensor)
        if array.dtype == np.float32:  # float32's shortest text, as a Python float
            return [float(x) for x in array.astype(str).ravel()] if array.ndim else float(
                str(array.astype(str)))
        return array.tolist() if array.ndim else array.item()

    def text(value):
        return value.decode() if isinstance(value, bytes) else value

    defaults = {}
    for function in (proto.meta_graphs[0].graph_def.library.function
                     if proto.meta_graphs else []):
        nodes = {node.name: node for node in function.node_def}
        [parse, *more] = [n for n in function.node_def if n.op == "ParseExampleV2"] or [None]
        inputs = [] if parse is None else [i for i in parse.input if not i.startswith("^")]
        if more or len(inputs) < 5:  # (control inputs left out)
            continue
        dense = constant(nodes, inputs[3]) or []
        for name, reference in zip(dense, inputs[5:]):
            value = constant(nodes, reference)
            if value is not None and not isinstance(value, list):
                defaults.setdefault(text(name), text(value))
        ragged = constant(nodes, inputs[4]) or []
        for node in function.node_def:
            source = node.input[1].split(":") if node.op == "RaggedTensorToTensor" else []
            if source[:2] != [parse.name, "ragged_values"] or int(source[2]) >= len(ragged):
                continue
            value = constant(nodes, node.input[2])
            if value is not None and not isinstance(value, list):
                defaults.setdefault(text(ragged[int(source[2])]), text(value))
    return defaults


# {UTC day: rows} the exported model trained on (`ranking.input_notes.trained_day_rows`), so that
# a later export's quality gate can say when its logs hold days this version, as the baseline,
# learned from.
TRAINING_DAYS_FILE = os.path.join("assets.extra", "training_days.json")


def read_export_training_days(saved_model: str) -> dict | None:
    """{UTC day: rows} a SavedModel directory's model trained on; None for one exported before
    the file or from a model directory without training_days.json."""
    path = os.path.join(saved_model, TRAINING_DAYS_FILE)
    if not os.path.isfile(path):
        return None
    with open(path) as handle:
        return {int(day): int(rows) for day, rows in json.load(handle).items()}


def existing_versions(export_base: str) -> list[int]:
    if not os.path.isdir(export_base):
        return []
    return sorted(int(name) for name in os.listdir(export_base) if re.fullmatch(r"\d+", name))


# What only another thing's directory holds: a model directory (ranking.train), a stats
# artifact (pipelines.stats), a SavedModel version given as the base.
FOREIGN_MARKERS = ("config.json", "eval_metrics.json", "checkpoints", "stats.json",
                   "saved_model.pb", "saved_model.pbtxt", "variables")


def foreign_entries(export_base: str) -> list[str]:
    """The entries of an existing `export_base` that say it is another thing's directory
    (`FOREIGN_MARKERS`), not an export base; other files beside the versions (TF Serving's
    monitoring or batching configs, lost+found, a version set aside) are left alone."""
    if not os.path.isdir(export_base):
        return []
    return sorted(name for name in os.listdir(export_base) if name in FOREIGN_MARKERS)
