"""The report's tables: models compared on their eval_metrics.json (SPEC §6), the dwell-time
metrics, and a scoring run's summary."""

from __future__ import annotations

import glob
import json
import os

import numpy as np

from core.errors import InputError
from ranking import metrics
from ranking.metrics import metric_text


def model_names(model_dirs: list[str]) -> list[str]:
    """Each model directory's name in the report: its last path component, or as many last
    components as tell it from the others (`expA/vr_ndt`, `expB/vr_ndt`). InputError for a
    directory given twice."""
    parts = [os.path.abspath(d).strip(os.sep).split(os.sep) for d in model_dirs]
    seen = {}
    for directory, path in zip(model_dirs, parts):
        if tuple(path) in seen:
            raise InputError(f"--model_dirs gives {seen[tuple(path)]} twice")
        seen[tuple(path)] = directory
    names = []
    for path in parts:
        for k in range(1, len(path) + 1):
            tail = path[-k:]
            if sum(other[-k:] == tail for other in parts) == 1:
                break
        names.append("/".join(tail))
    return names


# What every table reads of an eval_metrics.json (`ranking.evaluation` writes them all).
REQUIRED_METRICS = ("preset", *metrics.COUNTS_AND_AUCS)


def load_metrics(model_dir: str) -> dict:
    """The model directory's eval_metrics.json, with `preset_shown`: its preset and what the
    run added to it (`preset_text`). InputError when it is missing, not JSON, or lacks one of
    REQUIRED_METRICS (a file cut short or edited by hand)."""
    path = os.path.join(model_dir, "eval_metrics.json")
    try:
        with open(path) as handle:
            metrics_ = json.load(handle)
    except OSError:
        raise InputError("no eval_metrics.json: train with --eval first", file=model_dir) from None
    except ValueError as error:
        raise InputError(f"cannot read eval_metrics.json ({error})", file=path) from None
    missing = ([k for k in REQUIRED_METRICS if k not in metrics_]
               if isinstance(metrics_, dict) else list(REQUIRED_METRICS))
    if missing:
        raise InputError("is not an eval_metrics.json of ranking.train: it has no "
                         f"{', '.join(missing)}", file=path)
    try:
        with open(os.path.join(model_dir, "config.json")) as handle:
            description = json.load(handle)
    except (OSError, ValueError):
        description = None  # an eval_metrics.json copied alone: its preset only
    metrics_["preset_shown"] = preset_text(metrics_.get("preset", "?"), description)
    return metrics_


def preset_text(preset: str, description: dict | None) -> str:
    """The preset as trained: `shared_bottom_dt + ORCA` (--orca), `mmoe + MetaBalance`,
    `deepfm (dwell_bins)` (--single_task), from the model directory's config.json
    (`description`; None: the preset alone)."""
    from ranking.presets import PRESETS

    if not description or preset not in PRESETS:
        return preset
    model = description.get("model", {})
    text = preset
    if PRESETS[preset].single_task:
        text += f" ({model.get('towers', {}).get('single_task', 'ctr')})"
    if model.get("orca", {}).get("enabled") and not PRESETS[preset].orca:
        text += " + ORCA"
    tasks = 1 if PRESETS[preset].single_task else len(PRESETS[preset].towers)
    balanced = tasks > 1 or model.get("orca", {}).get("enabled") or PRESETS[preset].orca
    if balanced and (description.get("training", {}).get("metabalance") or {}).get("enabled"):
        text += " + MetaBalance"  # with one task it has nothing to balance (a training note)
    return text




def comparison_table(named: list[tuple[str, dict]]) -> str:
    """Markdown rows: the served score's AUCs and RelaImpr against the first model (only for
    models evaluated on the same labelled logs: `metrics.other_evaluation`; else "other
    logs"), each tower's own AUCs beside them, loglosses."""
    base = named[0][1]
    lines = ["| model | preset | served score | valid-read AUC | RelaImpr (valid read) | "
             "click AUC | RelaImpr (click) | towers' own AUCs (click / valid read) | logloss |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, m in named:
        loss = ", ".join(f"{k[8:]} {metric_text(v, 4)}" for k, v in m.items()
                         if k.startswith("logloss_"))
        towers = ", ".join(f"{t} {metric_text(a['auc_ctr'], 4)} / {metric_text(a['auc_valid_read'], 4)}"
                           for t, a in m.get("towers", {}).items()) or "–"
        fusion = m.get("score", {}).get("fusion", "score").removeprefix("score = ")
        other = metrics.other_evaluation(m, base) is not None

        def rel(key, m=m, other=other):
            return "other logs" if other else metric_text(
                metrics.rel_impr(m[key], base[key]), 2, "+", "%")

        lines.append(
            f"| {name} | {m.get('preset_shown', m['preset'])} | `{fusion}` | "
            f"{metric_text(m['auc_valid_read'], 4)} | "
            f"{rel('auc_valid_read')} | {metric_text(m['auc_ctr'], 4)} | {rel('auc_ctr')} | "
            f"{towers} | {loss} |")
    return "\n".join(lines)


DT_COLUMNS = (("dt_mae_class", "MAEclass", 3), ("dt_rmse_class", "RMSEclass", 3),
              ("dt_weighted_f1", "F1", 3), ("dt_macro_precision", "precision", 3),
              ("dt_macro_recall", "recall", 3), ("dt_mae_seconds", "MAE s", 1),
              ("dt_rmse_seconds", "RMSE s", 1))


def dwell_table(named: list[tuple[str, dict]]) -> str | None:
    """Markdown rows of the dwell-time metrics (clicked impressions) of the models that have
    them, with the ctr tower's own click AUC; None when no model has them."""
    rows = [(name, m) for name, m in named if "dt_mae_class" in m]
    if not rows:
        return None
    lines = ["Dwell time over clicked impressions (predicted bin = argmax of the served "
             "distribution; SPEC §6):", "",
             "| model | " + " | ".join(title for _, title, _ in DT_COLUMNS)
             + " | ctr tower's click AUC |", "|---|" + "---|" * (len(DT_COLUMNS) + 1)]
    for name, m in rows:
        ctr = m.get("towers", {}).get("ctr")  # None: no ctr tower; its AUC None: undefined
        lines.append(f"| {name} | " + " | ".join(metric_text(m[k], d) for k, _, d in DT_COLUMNS)
                     + f" | {'–' if ctr is None else metric_text(ctr['auc_ctr'], 4)} |")
    return "\n".join(lines)


def _tfrecord_scores(path: str) -> np.ndarray:
    """The `score` feature of a `pipelines.score --format=tfrecord` shard, float32 [rows]."""
    import tensorflow as tf

    spec = {"score": tf.io.FixedLenFeature([], tf.float32)}
    records = tf.data.TFRecordDataset(path, "GZIP" if path.endswith(".gz") else None)
    parts = [tf.io.parse_example(batch, spec)["score"].numpy() for batch in records.batch(8192)]
    return np.concatenate(parts) if parts else np.zeros(0, np.float32)


def scores_summary(directory: str) -> str:
    import pandas as pd

    summary = read_json(directory, "summary.json", "--scores")
    if not {"rows", "saved_model", "dead_letters", "outputs"} <= set(summary):
        raise InputError("is not a pipelines.score summary",
                         file=os.path.join(directory, "summary.json"))
    # Shards by their exact ending: an input named `x.tfrecord-00000-of-00004` scored to CSV
    # is `00000-x.tfrecord-00000-of-00004.csv.gz`.
    shards = sorted(glob.glob(os.path.join(glob.escape(directory), "[0-9]*")))
    frames = [pd.read_csv(p, usecols=["score"])["score"].to_numpy()
              for p in shards if p.endswith((".csv", ".csv.gz"))]
    frames += [_tfrecord_scores(p) for p in shards if p.endswith((".tfrecord", ".tfrecord.gz"))]
    lines = [f"Scored {summary['rows']:,} rows with `{summary['saved_model']}` "
             f"({summary['dead_letters']} dead letters); outputs: {', '.join(summary['outputs'])}."]
    if frames:
        score = np.concatenate(frames)
        q = np.percentile(score, [1, 25, 50, 75, 99])
        lines.append("Score quantiles (1 / 25 / 50 / 75 / 99 %): "
                     + " / ".join(f"{v:.4f}" for v in q))
    return "\n\n".join(lines)


def selection_table(named: list[tuple[str, dict]]) -> str | None:
    """Markdown rows of the selected checkpoint of the models trained with a validation window;
    None when no model was."""
    rows = [(name, m) for name, m in named if "selection" in m]
    if not rows:
        return None
    lines = ["| model | early-stopping metric | best value | selected step | epoch | steps "
             "trained |", "|---|---|---|---|---|---|"]
    for name, m in rows:
        s = m["selection"]
        lines.append(f"| {name} | {s['metric']} | {s['value']:.5f} | {s['step']} | {s['epoch']} "
                     f"| {m.get('global_step', '–')} |")
    return "\n".join(lines)


def read_json(directory: str, name: str, flag: str) -> dict:
    path = os.path.join(directory, name)
    try:
        with open(path) as handle:
            return json.load(handle)
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read {name} of {flag} ({error})", file=path) from None
