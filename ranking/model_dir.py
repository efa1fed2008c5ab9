"""The model directory: what `ranking.train` writes, and the checks before it writes.

    config.json           what the model is (preset, sizes, losses, feature spec, the dwell
                          targets' scales and the stats artifact it was built with, training
                          options, the working directory): export rebuilds the model from it
    checkpoints/          tf.train.Checkpoint files, every --checkpoint_every steps and at each
                          epoch end (the newest --keep_checkpoints are kept)
    logs/train, logs/eval TensorBoard summaries (losses, examples/s; evaluation metrics)
    eval_metrics.json     SPEC §6 metrics on --eval (written at the end, atomically); with a
                          validation window, of final/ (after a refit) or else best/
    best/, best.json      with a validation window: the best checkpoint and what it is (step,
                          epoch, metric, value; for ORCA the debiased head's mean DT gain over
                          the raw head and, with --orca_serve=validated and --refit=none, the
                          head served) (`ranking.selection`)
    final/, final.json    after the refit pass (--refit=validation): the best checkpoint
                          trained one more pass over the validation window; what is served
                          while final.json's from_step is best.json's step (for ORCA, with
                          the head served); removed by a run started again with --refit=none
    history.json          with a validation window: each validation's metrics
    logs/validation       TensorBoard summaries of the validations

A model directory that holds another model (a different config.json, or files without one) is
refused; the same config resumes.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil

from core import atomic, log_files
from core.errors import InputError
from core.stats_artifact import DwellTargets, StatsArtifact
from ranking import features as features_lib
from ranking.models import ModelConfig

# 2: the model config nested by concern (backbone, towers, orca) and the dwell targets apart.
CONFIG_FORMAT_VERSION = 2


def model_description(config, spec: features_lib.FeatureSpec, artifact: StatsArtifact,
                      targets: DwellTargets) -> dict:
    """The content of config.json: what export and scoring need to rebuild the model."""
    description = {
        "format_version": CONFIG_FORMAT_VERSION,
        "model": dataclasses.asdict(config.model),
        "targets": targets.to_json(),
        "features": spec.to_json(),
        "stats": artifact.summary(),
        "training": {k: v for k, v in config.to_json().items() if k != "model"},
        # Where the run was started: its relative log globs are read from there by the
        # export (warmup rows, the quality gate's held-out logs), wherever that runs.
        "working_directory": os.getcwd(),
    }
    return json.loads(json.dumps(description))  # as it reads back from disk (lists, not tuples)


def recorded_globs(description: dict, globs: str) -> str:
    """`globs` of a model's config.json (its --train, --eval or --validation) as the training
    run read them: a relative local glob joined to the run's working directory, or to the
    current one when that directory is not here (a directory recorded before 2026-12-07, or
    training in a container whose paths this machine lacks)."""
    where = description.get("working_directory")
    return log_files.absolute_globs(globs, where if where and os.path.isdir(where) else None)


TRAINING_DAYS_JSON = "training_days.json"
# Present while a run trains (written before its loop, removed once its weights to serve are
# written): a directory that holds it was killed, or is being trained now.
TRAINING_MARK = "training.running"


def mark_training(model_dir: str, running: bool) -> None:
    """Writes (`running`) or removes the model directory's TRAINING_MARK."""
    path = os.path.join(model_dir, TRAINING_MARK)
    if running:
        with atomic.atomic_file(path) as handle:
            json.dump({"pid": os.getpid()}, handle)
    elif os.path.exists(path):
        os.remove(path)


def unfinished_training_note(model_dir: str, checkpoint: str) -> str | None:
    """A warning line when `model_dir` holds TRAINING_MARK (a run killed, or one still
    training): the export serves `checkpoint` (which it names) as it stands now."""
    if not os.path.exists(os.path.join(model_dir, TRAINING_MARK)):
        return None
    return (f"{model_dir}'s training has not finished (a run killed before its end, or one "
            f"still training): this export serves {checkpoint} as it stands; resume the run "
            "(the same command) and export again once it ends")


def write_training_days(model_dir: str, train: dict, validation_days: int,
                        validation: dict | None) -> None:
    """training_days.json: {UTC day: rows} of the training logs (`train`, the
    --validation_days window included) and of the --validation logs (`validation`), so that
    the export's quality gate can say when its logs hold days the model trained on."""
    learned = (read_training_days(model_dir) or {}).get("learned")  # kept across runs
    record = {"train": {str(d): int(n) for d, n in sorted(train.items())},
              "validation_days": int(validation_days),
              "validation": None if validation is None else
              {str(d): int(n) for d, n in sorted(validation.items())},
              **({"learned": learned} if learned is not None else {})}
    with atomic.atomic_file(os.path.join(model_dir, TRAINING_DAYS_JSON)) as handle:
        json.dump(record, handle, indent=2)


def add_learned_days(model_dir: str, days: dict) -> None:
    """Adds {UTC day: rows} a run trained on (steps or the refit pass) to training_days.json's
    `learned`, the days any run in this directory learned from (per day the larger count), so
    that a resumed run whose glob matches other files since keeps the days the epochs done
    learned from, and a run that trained nothing adds none."""
    record = read_training_days(model_dir)
    if record is None:
        return
    learned = {int(d): int(n) for d, n in (record.get("learned") or {}).items()}
    for day, rows in days.items():
        learned[int(day)] = max(learned.get(int(day), 0), int(rows))
    record["learned"] = {str(d): n for d, n in sorted(learned.items())}
    with atomic.atomic_file(os.path.join(model_dir, TRAINING_DAYS_JSON)) as handle:
        json.dump(record, handle, indent=2)


def read_training_days(model_dir: str) -> dict | None:
    """training_days.json's record, or None (a model directory from before it)."""
    return atomic.read_json_if_present(os.path.join(model_dir, TRAINING_DAYS_JSON))


def load_model_description(model_dir: str) -> dict:
    """Reads `model_dir/config.json`; InputError if it is missing or of another version."""
    path = os.path.join(model_dir, "config.json")
    if not os.path.isfile(path):
        raise InputError(f"{model_dir} is not a model directory (no config.json); train one "
                         "with python -m ranking.train")
    with open(path) as handle:
        description = json.load(handle)
    if description.get("format_version") != CONFIG_FORMAT_VERSION:
        raise InputError(f"has format_version {description.get('format_version')!r}; this "
                         f"dwellrank reads version {CONFIG_FORMAT_VERSION} (the model directory "
                         "was made by another version: train it again in an empty directory, "
                         "or use the version that made it; its exports still serve and score)",
                         file=path)
    return description


def read_checkpoint(checkpoint, path: str, *, restore: bool = False,
                    partial: bool = False) -> None:
    """Reads a `tf.train.Checkpoint` from prefix `path` (`restore`: with its deferred
    restorations, as a resumed run's optimizer needs; `partial`: what it holds beyond the
    model may go unused), every object the checkpoint's owner tracks matched. A checkpoint that
    lacks one (written by another version of dwellrank, e.g. an ORCA model's before its
    served-head gate, or for another model) is an InputError naming it, not a traceback."""
    status = checkpoint.restore(path) if restore else checkpoint.read(path)
    if partial:
        status = status.expect_partial()
    try:
        status.assert_existing_objects_matched()
    except AssertionError as error:
        found = " ".join(str(error).split())
        raise InputError("the checkpoint does not hold every variable of this model (written "
                         "by another version of dwellrank, or for another model; retrain it): "
                         + (found[:300] + " ..." if len(found) > 300 else found),
                         file=path) from None


def build_from_description(description: dict):
    """(FeatureSpec, ModelConfig, DwellTargets) of a model directory's config.json."""
    return (features_lib.FeatureSpec.from_json(description["features"]),
            ModelConfig.from_json(description["model"]),
            DwellTargets.from_json(description["targets"]))


def in_stored_order(model_dir: str, spec):
    """`spec` (a FeatureSpec) with its features in the order of `model_dir`'s config.json when
    that holds the same features in another order, else `spec`: a directory trained on
    TFRecord input before its columns followed the stats artifact's logs (2026-12-06) listed
    them by name, and resuming it keeps the model it made."""
    path = os.path.join(model_dir, "config.json")
    if not os.path.isfile(path):
        return spec
    try:
        stored = [f["name"] for f in load_model_description(model_dir)["features"]]
    except Exception:  # noqa: BLE001 (`prepare` names what is wrong with it)
        return spec
    if stored == list(spec.names) or sorted(stored) != sorted(spec.names):
        return spec
    return dataclasses.replace(spec, features=tuple(spec[name] for name in stored))


def _identity(description: dict) -> dict:
    # What must match for a run to continue in an existing model directory.
    training = description["training"]
    return {"model": description["model"], "targets": description["targets"],
            "features": description["features"], "stats": description["stats"],
            "training": {k: training.get(k) for k in (
                "train", "batch_size", "seed", "optimizer",
                "shuffle_buffer", "steps_per_epoch", "metabalance")},
            # What would change the validation already recorded (--patience and --max_epochs
            # may change: they only say when to stop).
            "selection": {k: (training.get("selection") or {}).get(k) for k in (
                "validation", "validation_days", "validate_every", "early_stopping_metric",
                "min_delta")}}


def differences(before, after, path: str = "") -> list[str]:
    """Dotted paths of the values that differ between two JSON-like values (a feature of the
    `features` list by its name: `features.item_length.default`)."""
    if isinstance(before, dict) and isinstance(after, dict):
        return [d for key in sorted(set(before) | set(after), key=str)
                for d in differences(before.get(key), after.get(key),
                                     f"{path}.{key}" if path else str(key))]
    if (isinstance(before, list) and isinstance(after, list)
            and all(isinstance(x, dict) and "name" in x for x in before + after)):
        names = list(dict.fromkeys([x["name"] for x in before + after]))
        by_name = [{x["name"]: x for x in side} for side in (before, after)]
        shared = [name for name in names if all(name in side for side in by_name)]
        order = ([x["name"] for x in before if x["name"] in shared]
                 != [x["name"] for x in after if x["name"] in shared])
        return ([f"{path} (order)"] if order else []) + [
            d for name in names
            for d in differences(by_name[0].get(name), by_name[1].get(name), f"{path}.{name}")]
    return [] if before == after else [path]


def check_as_other_task(model_dir: str, description: dict) -> None:
    """A non-chief task's check of the model directory (the chief makes and writes it): the
    same refusal as the chief's when config.json holds another model, so every task of a
    cluster stops on it rather than waiting for the chief in a collective op."""
    if os.path.isfile(os.path.join(model_dir, "config.json")):
        existing = load_model_description(model_dir)
        if _identity(existing) != _identity(description):
            raise InputError(f"--model_dir {model_dir} holds another model; choose an empty "
                             "directory to train a new model",
                             file=os.path.join(model_dir, "config.json"))


LAYOUT_KEYS = ("strategy", "input_sharding", "input_workers")


def layout_change(model_dir: str, description: dict) -> str | None:
    """A note when the run being resumed was trained with another cluster layout: the epoch in
    progress then continues over other batches than an uninterrupted run's."""
    path = os.path.join(model_dir, "config.json")
    if not os.path.isfile(path):
        return None
    with open(path) as handle:
        before = json.load(handle).get("training", {})
    now = description["training"]
    defaults = {"strategy": "default", "input_sharding": "files", "input_workers": 1}
    was = {k: before.get(k, defaults[k]) for k in LAYOUT_KEYS}
    if all(was[k] == now.get(k) for k in LAYOUT_KEYS):
        return None
    was = ", ".join(f"{k} {v}" for k, v in was.items())
    return (f"note: resuming with another cluster layout (was {was}): the epoch in progress "
            "continues after the batches done, but not with exactly the batches left")


def defaults_change(model_dir: str, description: dict) -> str | None:
    """A note when the run resumes a model directory trained before a missing value read as the
    feature config's `default` in training (2026-12-06; such a directory has checkpoints but no
    training_days.json, which training has written since) and the model sets a `default`
    other than 0 or "": its checkpoints learned from a missing value read as 0 or "", this run
    and its evaluation read it as the default."""
    if os.path.isfile(os.path.join(model_dir, TRAINING_DAYS_JSON)) or not os.path.isdir(
            os.path.join(model_dir, "checkpoints")) or not os.listdir(
            os.path.join(model_dir, "checkpoints")):
        return None
    defaulted = [f["name"] for f in description["features"]
                 if f.get("default") not in (0, "", None)]
    if not defaulted:
        return None
    return (f"note: {model_dir} was trained before a missing value read as the feature "
            f"config's default in training: its checkpoints read a missing "
            f"{', '.join(defaulted)} as 0 or \"\", this run and its evaluation read the default (as "
            "its exports serve); train in an empty directory for one reading throughout")


def prepare(model_dir: str, description: dict) -> bool:
    """Creates or checks the model directory, taken for this process (`lock`); returns True
    when resuming."""
    config_path = os.path.join(model_dir, "config.json")
    existed = os.path.isdir(model_dir)
    os.makedirs(model_dir, exist_ok=True)
    lock(model_dir)  # before anything in it is read or removed
    entries = os.listdir(model_dir)
    # A run killed while writing its first config.json leaves only that write's temporary
    # file: the directory is as new (else a re-run, an auto-resume loop's, is refused).
    if entries and all(e.startswith(".config.json.tmp-") for e in entries):
        for entry in entries:
            path = os.path.join(model_dir, entry)
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        entries = []
    if entries:
        if not os.path.isfile(config_path):
            raise InputError(f"--model_dir {model_dir} is not empty and holds no config.json: "
                             "it is not a dwellrank model directory; choose an empty directory")
        existing = load_model_description(model_dir)
        if _identity(existing) != _identity(description):
            changed = differences(_identity(existing), _identity(description))
            shown = ", ".join(changed[:6]) + (f" and {len(changed) - 6} more"
                                              if len(changed) > 6 else "")
            raise InputError(f"--model_dir {model_dir} holds another model (its config.json "
                             f"differs in: {shown}); to resume it, run again with the settings "
                             "it was trained with; choose an empty directory to train a new "
                             "model", file=config_path)
        resuming = True
        if _LOCKS.get(os.path.realpath(model_dir)) is not None:  # (held with a real flock)
            _remove_leftovers(model_dir)
    else:
        resuming = False
        _NEW_HERE[os.path.realpath(model_dir)] = not existed
    with atomic.atomic_file(config_path) as handle:
        json.dump(description, handle, indent=2)
    return resuming


# {real path: open descriptor of the directory, flock'ed, or None where the file system has no
# flock}: the model directories this process trains (`lock`, `unlock`).
_LOCKS: dict = {}
# {real path: whether this run created it}: the directories `prepare` took as new, which a run
# that then meets bad input empties (`taken_as_new`).
_NEW_HERE: dict = {}


def lock(model_dir: str) -> None:
    """Takes the model directory for this process until `unlock` (an exclusive flock on the
    directory, which the system drops with the process however it ends); InputError when
    another process trains it now: two runs would rotate each other's checkpoints away, and
    the last writer's files would win. Taken twice in one process, it is refused the same."""
    import fcntl

    path = os.path.realpath(model_dir)
    busy = InputError(f"--model_dir {model_dir} is being trained by another process now; wait "
                      "for it to end (or stop it), or train in another directory")
    if path in _LOCKS:
        raise busy
    descriptor = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise busy from None
    except OSError:  # a file system without flock (some network mounts): held, unguarded
        os.close(descriptor)
        descriptor = None
    _LOCKS[path] = descriptor


def taken_as_new(model_dir: str) -> bool | None:
    """For a directory this process's `prepare` took as new: whether it created it; else
    None (a resumed one, or one not prepared yet)."""
    return _NEW_HERE.get(os.path.realpath(model_dir))


def _remove_leftovers(model_dir: str) -> None:
    """Removes what runs killed mid-write left (the directory is this process's: `lock`): the
    hidden temporaries `.NAME.tmp-*` and `.NAME.old-*` of best/, final/ and the JSON files
    beside a NAME that exists (without it, a kill between the write's two renames may have left
    the only copy), and the `ckpt-N_temp` directories of a checkpoint write a full disk or a
    kill broke off. None is ever read; at production sizes each is as large as the model."""
    for name in os.listdir(model_dir):
        found = re.match(r"\.(.+)\.(?:tmp|old)-", name)
        if found and os.path.exists(os.path.join(model_dir, found[1])):
            path = os.path.join(model_dir, name)
            shutil.rmtree(path, ignore_errors=True) if os.path.isdir(path) else os.remove(path)
    checkpoints = os.path.join(model_dir, "checkpoints")
    if os.path.isdir(checkpoints):
        for name in os.listdir(checkpoints):
            if name.startswith("ckpt-") and name.endswith("_temp"):
                shutil.rmtree(os.path.join(checkpoints, name), ignore_errors=True)


def is_locked_here(model_dir: str) -> bool:
    """Whether this process holds the model directory (`lock`)."""
    return os.path.realpath(model_dir) in _LOCKS


def unlock(model_dir: str) -> None:
    """Gives the model directory back (`lock`); nothing when this process does not hold it."""
    path = os.path.realpath(model_dir)
    _NEW_HERE.pop(path, None)
    descriptor = _LOCKS.pop(path, None)
    if descriptor is not None:
        os.close(descriptor)  # (closing the descriptor drops its flock)
