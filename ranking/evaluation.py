"""Evaluation: run a model over labelled batches and compute SPEC §6's metrics.

`evaluation_metrics` is the one definition of `eval_metrics.json`, used by training, the Table 1
benchmark and reports; every number in it comes from `ranking.metrics`.

Keys:
- `auc_ctr`, `auc_valid_read`: AUC of the **served score** (the model's `score` output, the
  preset's fusion of its towers, `ranking.fusion`) against click and valid_read over all
  impressions (the paper's Table 1 reports `auc_valid_read`); the same two under `score`, with
  the fusion's formula, so that nobody takes them for a tower's;
- `logloss_<tower>` for each binary tower against its own label (`weighted_valid_read` against
  valid_read);
- `towers`: per binary tower, its probability's AUC against click and valid_read;
- for models with a log-dwell tower, over clicked impressions: `log_dwell_rmse` and the `dt_*`
  metrics, the predicted bin being the bin of the predicted dwell seconds; for dwell-bin models
  the `dt_*` metrics of the served `dwell_probs` (predicted bin = argmax); bias by decile of the
  model's CTR-like probability (the first binary tower's, when the model has one);
- `rel_impr` (percent) of `auc_ctr` and `auc_valid_read` against a baseline's metrics.
"""

from __future__ import annotations

import json
from typing import Mapping

import numpy as np

from core.errors import InputError
from core.stats_artifact import DwellTargets
from ranking import metrics
from ranking.models import ModelConfig, model_tasks, output_names

# The labels evaluation reads.
LABEL_KEYS = ("click", "valid_read", "dwell_bin", "dwell_time")


def evaluate(model, dataset, baseline_metrics: str | None = None, predictor=None) -> dict:
    """SPEC §6 metrics of `model` (a RankingModel) on `dataset`, labelled (features, labels)
    batches (any iterable of them); with `baseline_metrics` (an eval_metrics.json), also
    `rel_impr`. `predictor`: a `Predictor` of the model's network, already traced."""
    predictor = predictor or Predictor(model.network, model.config, model.targets)
    outputs, labels = predictor(dataset)
    result = evaluation_metrics(model.config, model.targets, outputs, labels)
    if baseline_metrics:
        baseline = read_baseline_metrics(baseline_metrics)
        add_rel_impr(result, baseline, baseline.get("preset", baseline_metrics))
    return result


def read_baseline_metrics(path: str) -> dict:
    """A baseline's eval_metrics.json (`--baseline_metrics`), with the counts and AUCs
    RelaImpr reads; InputError naming the file otherwise."""
    try:
        with open(path) as handle:
            baseline = json.load(handle)
    except (OSError, ValueError) as error:
        raise InputError(f"cannot read the baseline metrics ({error})", file=path) from None
    needed = metrics.COUNTS_AND_AUCS
    missing = ([k for k in needed if k not in baseline] if isinstance(baseline, dict)
               else list(needed))
    if missing:
        raise InputError(f"is not an eval_metrics.json of ranking.train: it has no "
                         f"{', '.join(missing)} (--baseline_metrics)", file=path)
    return baseline


class Predictor:
    """Runs a network over (features, labels) batches, its traced forward pass kept for a
    caller that predicts again and again with the same network (validation during training):
    tracing the model costs about as much as a pass over a day of validation rows."""

    def __init__(self, network, config: ModelConfig, targets: DwellTargets):
        import tensorflow as tf

        names = output_names(config, targets)

        @tf.function(reduce_retracing=True, autograph=False)
        def step(features):
            outputs = network(features, training=False)
            return {k: outputs[k] for k in names}

        self._step = step

    def trace(self, features_spec) -> None:
        """Traces the forward pass for `features_spec` ({feature: tf.TensorSpec}, a dataset's
        element_spec[0], batch dimension None) before the first batch is there: the one trace
        then serves every batch, the last short one included (traced on the first batch's
        shape, a short last batch would trace it again), and it can overlap the first read."""
        self._step.get_concrete_function(features_spec)

    def __call__(self, batches) -> tuple[dict, dict]:
        """(outputs, labels) of `batches`, an iterable of (features, labels) batches, as dicts
        of NumPy arrays ([rows] or [rows, bins]): the model's serving outputs (`output_names`)
        and the labels LABEL_KEYS. Not traced yet (`trace`), the forward pass is traced on the
        first batch with its batch dimension left open, so a short last batch (or the next
        call's) uses the same trace."""
        import tensorflow as tf

        outputs, labels = {}, {}
        for features, batch_labels in batches:
            if (not self._step.experimental_get_tracing_count()
                    and all(isinstance(v, tf.Tensor) for v in features.values())):
                self.trace({name: tf.TensorSpec([None, *value.shape[1:]], value.dtype)
                            for name, value in features.items()})
            for key, value in self._step(features).items():
                outputs.setdefault(key, []).append(value.numpy())
            for key in LABEL_KEYS:
                labels.setdefault(key, []).append(batch_labels[key].numpy())
        join = lambda parts: {k: np.concatenate(v) for k, v in parts.items()}  # noqa: E731
        return join(outputs), join(labels)


def evaluation_metrics(config: ModelConfig, targets: DwellTargets,
                       outputs: Mapping[str, np.ndarray],
                       labels: Mapping[str, np.ndarray]) -> dict:
    """SPEC §6 metrics of one model's predictions; see the module docstring. Each task adds
    its own (`ranking.tasks.Task.evaluate`)."""
    click = np.asarray(labels["click"]).astype(np.int64)
    valid_read = np.asarray(labels["valid_read"]).astype(np.int64)
    score = np.asarray(outputs["score"], np.float64)
    result = {
        "preset": config.preset,
        "rows": int(len(click)), "clicks": int(click.sum()), "valid_reads": int(valid_read.sum()),
        "auc_ctr": metrics.auc(click, score),
        "auc_valid_read": metrics.auc(valid_read, score),
        "towers": {},
    }
    result["score"] = {"fusion": config.fusion.formula(), "auc_ctr": result["auc_ctr"],
                       "auc_valid_read": result["auc_valid_read"]}
    tasks = model_tasks(config, targets)
    binary = [t for t in tasks if t.binary]
    # The model's click-like probability orders the DT bias by decile (ORCA's Fig. 4).
    context = {"bin_edges": np.asarray(targets.bin_edges, float),
               "bin_values": np.asarray(targets.bin_values, float),
               "p_ctr": outputs[binary[0].serving_output] if binary else None}
    labels = {**labels, "click": click, "valid_read": valid_read}
    for task in tasks:
        for key, value in task.evaluate(outputs, labels, context).items():
            if key == "towers":
                result["towers"].update(value)
            else:
                result[key] = value
    return result


def add_rel_impr(result: dict, baseline: Mapping, baseline_name: str) -> dict:
    """Adds `rel_impr` {baseline, auc_ctr, auc_valid_read} (percent) to `result`; when the
    baseline was evaluated on other logs (`metrics.other_evaluation`), both are undefined (None) and
    `not_comparable` says why."""
    result["rel_impr"] = {"baseline": baseline_name}
    reason = metrics.other_evaluation(result, baseline)
    for key in ("auc_ctr", "auc_valid_read"):
        result["rel_impr"][key] = (None if reason else
                                   metrics.rel_impr(result[key], baseline[key]))
    if reason:
        result["rel_impr"]["not_comparable"] = reason
    return result


def summary_lines(result: Mapping) -> list[str]:
    """What `ranking.train` prints of an evaluation `result` (`evaluate`'s, or eval_metrics.json
    read back): the counts, the served score's and each tower's AUCs, the loglosses, the dwell
    metrics and RelaImpr; a metric the eval logs leave undefined (NaN, or null) is
    "undefined"."""
    text = metrics.metric_text  # "undefined" for NaN or null
    lines = [f"eval ({result['rows']:,} rows, {result['clicks']:,} clicks, "
             f"{result['valid_reads']:,} valid reads)",
             f"  served score ({result['score']['fusion']}): auc_valid_read "
             f"{text(result['auc_valid_read'], 4)}  auc_ctr {text(result['auc_ctr'], 4)}"]
    for tower, aucs in result["towers"].items():
        lines.append(f"  {tower} tower: auc_valid_read {text(aucs['auc_valid_read'], 4)}  "
                     f"auc_ctr {text(aucs['auc_ctr'], 4)}")
    losses = [f"{k} {text(v, 4)}" for k, v in result.items() if k.startswith("logloss")]
    if losses:
        lines.append("  " + "  ".join(losses))
    if "dt_mae_class" in result:
        lines.append("  dwell (clicked rows): " + "  ".join(
            f"{k[3:]} {text(result[k], 4)}" for k in (
                "dt_mae_class", "dt_rmse_class", "dt_weighted_f1", "dt_macro_precision",
                "dt_macro_recall", "dt_mae_seconds", "dt_rmse_seconds")))
    if "rel_impr" in result:
        rel = result["rel_impr"]
        if rel.get("not_comparable"):
            lines.append(f"  RelaImpr vs {rel['baseline']}: not computed, the baseline was "
                         f"{rel['not_comparable']}")
        else:
            lines.append(f"  RelaImpr vs {rel['baseline']}: auc_valid_read "
                         f"{text(rel['auc_valid_read'], 2, '+', '%')}  auc_ctr "
                         f"{text(rel['auc_ctr'], 2, '+', '%')}")
    return lines
