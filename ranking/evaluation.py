"""Evaluation: run a model over labelled batches and compute SPEC §6's metrics.

`evaluation_metrics` is the one definition of `eval_metrics.json`, used by training, the Table 1
benchmark and reports; every number in it comes from `ranking.metrics`.

Keys:
- `auc_ctr`, `auc_valid_read`: AUC of the serving `score` against click and valid_read over all
  impressions (the paper's Table 1 reports `auc_valid_read`);
- `logloss_<tower>` for each binary tower against its own label (`weighted_valid_read` against
  valid_read);
- `towers`: per binary tower, its probability's AUC against click and valid_read;
- for models with a log-dwell tower, over clicked impressions: `log_dwell_rmse` and the `dt_*`
  metrics, the predicted bin being the bin of the predicted dwell seconds (bin models use the
  argmax), bias by decile of the model's CTR-like probability;
- `rel_impr` (percent) of `auc_ctr` and `auc_valid_read` against a baseline's metrics.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from pipelines import labels as labels_lib
from ranking import metrics
from ranking.models import PRESETS
from ranking.tasks import BINARY_TASKS

OUTPUT_KEYS = ("score", "ctr", "valid_read", "weighted_valid_read", "log_dwell", "dwell_seconds")
LABEL_KEYS = ("click", "valid_read", "dwell_bin", "dwell_time")


def predict(network, dataset) -> tuple[dict, dict]:
    """Runs `network` over a (features, labels) dataset; returns (outputs, labels) as dicts of
    NumPy arrays [rows] (only the keys of OUTPUT_KEYS / LABEL_KEYS that exist)."""
    import tensorflow as tf

    @tf.function(reduce_retracing=True)
    def step(features):
        outputs = network(features, training=False)
        return {k: v for k, v in outputs.items() if k in OUTPUT_KEYS}

    outputs, labels = {}, {}
    for features, batch_labels in dataset:
        for key, value in step(features).items():
            outputs.setdefault(key, []).append(value.numpy())
        for key in LABEL_KEYS:
            labels.setdefault(key, []).append(batch_labels[key].numpy())
    join = lambda parts: {k: np.concatenate(v) for k, v in parts.items()}  # noqa: E731
    return join(outputs), join(labels)


def evaluation_metrics(preset: str, outputs: Mapping[str, np.ndarray],
                       labels: Mapping[str, np.ndarray], bin_edges: np.ndarray,
                       bin_medians: np.ndarray) -> dict:
    """SPEC §6 metrics of one model's predictions (arrays [rows]); see the module docstring."""
    click = np.asarray(labels["click"]).astype(np.int64)
    valid_read = np.asarray(labels["valid_read"]).astype(np.int64)
    score = np.asarray(outputs["score"], np.float64)
    result = {
        "preset": preset,
        "rows": int(len(click)), "clicks": int(click.sum()), "valid_reads": int(valid_read.sum()),
        "auc_ctr": metrics.auc(click, score),
        "auc_valid_read": metrics.auc(valid_read, score),
    }
    towers = [t for t in PRESETS[preset].towers if t in BINARY_TASKS]
    own_label = {"ctr": click, "valid_read": valid_read, "weighted_valid_read": valid_read}
    for tower in towers:
        result[f"logloss_{tower}"] = metrics.logloss(own_label[tower], outputs[tower])
    result["towers"] = {t: {"auc_ctr": metrics.auc(click, outputs[t]),
                            "auc_valid_read": metrics.auc(valid_read, outputs[t])}
                        for t in towers}
    if "log_dwell" in outputs:
        clicked = click == 1
        seconds = np.asarray(labels["dwell_time"], np.float64)[clicked]
        predicted = np.asarray(outputs["log_dwell"], np.float64)[clicked]
        result["log_dwell_rmse"] = float(np.sqrt(np.mean((predicted - np.log1p(seconds)) ** 2)))
        pred_bin = labels_lib.assign_bins(np.asarray(outputs["dwell_seconds"],
                                                     np.float64)[clicked], bin_edges)
        one_hot = np.eye(len(bin_medians))[pred_bin]
        p_ctr = outputs[towers[0]][clicked]
        result.update(metrics.dwell_metrics(np.asarray(labels["dwell_bin"])[clicked], one_hot,
                                            seconds, bin_medians, p_ctr=p_ctr))
    return result


def add_rel_impr(result: dict, baseline: Mapping, baseline_name: str) -> dict:
    """Adds `rel_impr` {baseline, auc_ctr, auc_valid_read} (percent) to `result`."""
    result["rel_impr"] = {"baseline": baseline_name}
    for key in ("auc_ctr", "auc_valid_read"):
        result["rel_impr"][key] = metrics.rel_impr(result[key], baseline[key])
    return result
