"""The files of model selection in a model directory (`ranking.selection` decides what they hold).

    best/, best.json     the best checkpoint (the model's variables) and what it is (step,
                         epoch, metric, value, ...)
    final/, final.json   the best checkpoint after the refit pass (--refit=validation), while
                         final.json's from_step is best.json's step and no later training
                         made it stale (`read_final`)
    history.json         each validation's metrics
    .worker-N-scratch/   what a non-chief task of a cluster writes and only the chief keeps

`served_checkpoint` says which checkpoint a model directory serves: the refit one, else the
best one. Each file appears whole (written under a temporary name and renamed).
"""

from __future__ import annotations

import json
import os
import re
import shutil

from core import atomic
from core.errors import InputError
from ranking import metrics

BEST_DIR, BEST_JSON, HISTORY_JSON = "best", "best.json", "history.json"
FINAL_DIR, FINAL_JSON = "final", "final.json"


def write_best(model_dir: str, model, summary: dict, scratch: str | None = None) -> None:
    """The best checkpoint: `model_dir/best/` (the model's variables) and best.json, each
    appearing whole. A task that is not the chief writes into `scratch` (collective saving
    needs every task; only the chief's is kept)."""
    import tensorflow as tf

    checkpoint = tf.train.Checkpoint(model=model)
    if scratch is not None:
        checkpoint.write(os.path.join(scratch, "best", "model"))
        return
    with atomic.atomic_directory(os.path.join(model_dir, BEST_DIR),
                                 may_replace=lambda _: True, what="best checkpoint") as tmp:
        checkpoint.write(os.path.join(tmp, "model"))
    with atomic.atomic_file(os.path.join(model_dir, BEST_JSON)) as handle:
        json.dump(metrics.json_ready(summary), handle, indent=2, allow_nan=False)


def best_checkpoint(model_dir: str) -> str | None:
    """The best checkpoint's path prefix in `model_dir`, or None without one."""
    prefix = os.path.join(model_dir, BEST_DIR, "model")
    return prefix if os.path.exists(prefix + ".index") else None


def require_best_checkpoint(model_dir: str, scratch: str | None = None) -> str:
    """The best checkpoint's path prefix: the copy in `scratch` (a non-chief task's) when there
    is one, else `model_dir`'s (a finished run started again has no scratch copies left).
    InputError when training ended without a validation."""
    best = (scratch and best_checkpoint(scratch)) or best_checkpoint(model_dir)
    if best is None:
        raise InputError("training ended without a validation (no best checkpoint)",
                         file=os.path.join(model_dir, BEST_DIR))
    return best


def write_final(model_dir: str, model, summary: dict) -> None:
    """The refit model (`ranking.selection`'s docstring): `model_dir/final/` and final.json, each whole."""
    import tensorflow as tf

    with atomic.atomic_directory(os.path.join(model_dir, FINAL_DIR),
                                 may_replace=lambda _: True, what="refit checkpoint") as tmp:
        tf.train.Checkpoint(model=model).write(os.path.join(tmp, "model"))
    with atomic.atomic_file(os.path.join(model_dir, FINAL_JSON)) as handle:
        json.dump(metrics.json_ready(summary), handle, indent=2, allow_nan=False)


def read_final(model_dir: str) -> dict | None:
    """final.json of `model_dir` (with the refit checkpoint), or None without one, or when it
    is the refit of an earlier best checkpoint than best.json's, or was made before training
    went on (its `after_step` below the newest rolling checkpoint's step: the run was resumed
    with a larger --max_epochs, and the pass starts from the optimizer as training leaves it,
    so the same best checkpoint's pass is made again)."""
    path = os.path.join(model_dir, FINAL_JSON)
    if not os.path.isfile(path) or not os.path.exists(
            os.path.join(model_dir, FINAL_DIR, "model.index")):
        return None
    with open(path) as handle:
        final = json.load(handle)
    best = read_best(model_dir)
    if best is None or best.get("step") != final.get("from_step"):
        return None
    newest = newest_checkpoint_step(model_dir)
    if "after_step" in final and newest is not None and newest > final["after_step"]:
        return None
    return final


def newest_checkpoint_step(model_dir: str) -> int | None:
    """The step of the newest rolling checkpoint (`checkpoints/ckpt-<step>`, as the
    checkpoint state file names it), or None without one."""
    state = os.path.join(model_dir, "checkpoints", "checkpoint")
    if not os.path.isfile(state):
        return None
    with open(state) as handle:
        found = re.search(r'^model_checkpoint_path: ".*?ckpt-(\d+)"', handle.read(), re.M)
    return int(found[1]) if found else None


def read_best(model_dir: str) -> dict | None:
    """best.json of `model_dir` (what best/ holds: step, epoch, metric, value), or None."""
    return atomic.read_json_if_present(os.path.join(model_dir, BEST_JSON))


def remove_final(model_dir: str) -> None:
    """Removes a refit checkpoint (`final/`, final.json) that a run with --refit=none must not
    serve: one left by an earlier run of the model directory with the default refit pass.
    final.json goes first, so a run killed in between leaves no final.json to read."""
    path = os.path.join(model_dir, FINAL_JSON)
    if os.path.exists(path):
        os.remove(path)
    shutil.rmtree(os.path.join(model_dir, FINAL_DIR), ignore_errors=True)


def served_checkpoint(model_dir: str) -> str | None:
    """The checkpoint a model directory serves: the refit one (`final/`, while it is the refit
    of best.json's step: `read_final`), else the best one, else None (a run without a
    validation window serves its newest rolling checkpoint; export refuses one with a window)."""
    if read_final(model_dir) is not None:
        return os.path.join(model_dir, FINAL_DIR, "model")
    return best_checkpoint(model_dir)


def read_history(model_dir: str, validated_step: int) -> list[dict]:
    """history.json's entries up to `validated_step` (later ones belong to a run that was
    killed before its checkpoint recorded them: they are validated again)."""
    path = os.path.join(model_dir, HISTORY_JSON)
    if not os.path.isfile(path):
        return []
    with open(path) as handle:
        entries = json.load(handle).get("validations", [])
    return [e for e in entries if e["step"] <= validated_step]


def write_history(model_dir: str, entries: list[dict], metric: str, direction: int) -> None:
    """history.json: the validations' `entries`, on `metric` (`direction` +1: higher is
    better, -1: lower is), written whole."""
    with atomic.atomic_file(os.path.join(model_dir, HISTORY_JSON)) as handle:
        json.dump(metrics.json_ready({"metric": metric, "direction": direction,
                                      "validations": entries}), handle, indent=2, allow_nan=False)


def scratch_directory(model_dir: str, task_id: int) -> str:
    """Where a non-chief task writes what only the chief keeps (removed at the end)."""
    path = os.path.join(model_dir, f".worker-{task_id}-scratch")
    os.makedirs(path, exist_ok=True)
    return path


def remove_scratch(path: str | None) -> None:
    """Removes a non-chief task's scratch directory (`scratch_directory`), if any."""
    if path:
        shutil.rmtree(path, ignore_errors=True)
