"""Export bases and their versions: `<export_base>/<version>/` with integer versions, as TF
Serving reads them. Light on purpose (no TensorFlow): scoring and the online mode resolve
SavedModels with it."""

from __future__ import annotations

import json
import os
import re

from core.errors import InputError


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
    """{feature: default} of a SavedModel directory; {} for one exported before the file
    (its training read a missing value as 0 or "")."""
    path = os.path.join(saved_model, FEATURE_DEFAULTS_FILE)
    if not os.path.isfile(path):
        return {}
    with open(path) as handle:
        return json.load(handle)


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
