"""Evaluation metrics of SPEC §6, defined once for training, benchmarks and reports.

All functions take NumPy arrays and return plain floats (or lists), so that
`eval_metrics.json` can hold them. scikit-learn is the test-time reference, not a runtime
dependency: every metric here equals scikit-learn's on the same arrays (tests/test_metrics.py).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np


def auc(labels: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve of binary `labels` [n] ranked by `scores` [n]; ties count one
    half (the Mann-Whitney statistic). NaN when only one class is present, or when a score is
    NaN (a diverged model: sorting would rank NaNs as one tie above every number, and
    scikit-learn refuses them)."""
    labels = np.asarray(labels).astype(bool).ravel()
    scores = np.asarray(scores, float).ravel()
    positives = int(labels.sum())
    negatives = len(labels) - positives
    if positives == 0 or negatives == 0 or np.isnan(scores).any():
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), float)
    ranks[order] = np.arange(1, len(scores) + 1)
    # Average the ranks of tied scores.
    _, inverse, counts = np.unique(scores, return_inverse=True, return_counts=True)
    rank_sums = np.bincount(inverse, weights=ranks)
    ranks = (rank_sums / counts)[inverse]
    return float((ranks[labels].sum() - positives * (positives + 1) / 2) / (positives * negatives))


def logloss(labels: np.ndarray, probs: np.ndarray) -> float:
    """Mean binary cross-entropy (nats) of probabilities `probs` [n] for binary `labels` [n];
    probabilities are clipped to [eps, 1 - eps], eps the machine epsilon of `probs`' own type
    when float16 or float32 (else float64's), as scikit-learn's log_loss clips: a model's
    float32 output of exactly 0 or 1 costs -ln(2^-23) ≈ 15.9 nats, not -ln(2^-52) ≈ 36.0."""
    labels = np.asarray(labels, float).ravel()
    probs = np.asarray(probs)
    # scikit-learn keeps float16 and float32 and reads everything else as float64.
    eps = np.finfo(probs.dtype if probs.dtype in (np.float16, np.float32) else np.float64).eps
    p = np.clip(probs.astype(np.float64).ravel(), eps, 1 - eps)
    return float(-np.mean(labels * np.log(p) + (1 - labels) * np.log(1 - p)))


def dwell_cross_entropy(true_bin: np.ndarray, dwell_probs: np.ndarray) -> float:
    """Mean cross-entropy (nats) of a predicted distribution over dwell bins, dwell_probs
    [n, bins], against the true bins [n]: -mean log p(true bin) in float64, probabilities
    floored at 1e-12 (scikit-learn's log_loss with the bins as labels, except for that floor:
    it clips at the input dtype's epsilon, 2^-23 for float32, so the two differ where a true
    bin's probability is below that)."""
    true_bin = np.asarray(true_bin, np.int64).ravel()
    probs = np.asarray(dwell_probs, np.float64)
    if len(true_bin) == 0:
        return float("nan")
    picked = probs[np.arange(len(true_bin)), true_bin]
    return float(-np.mean(np.log(np.maximum(picked, 1e-12))))


def rel_impr(model_auc: float | None, base_auc: float | None) -> float:
    """RelaImpr of an AUC against a baseline's, in percent: ((AUC - 0.5) / (base - 0.5) - 1) x 100;
    NaN when either is undefined (NaN, or None as `json_ready` writes it) and when the
    baseline's AUC is 0.5 or below: the lift over random it divides by is then none or negative
    (a rise from 0.49 to 0.63 would read as -2,251 %)."""
    if model_auc is None or base_auc is None or not base_auc > 0.5:
        return float("nan")
    return float(((model_auc - 0.5) / (base_auc - 0.5) - 1.0) * 100.0)


# What every eval_metrics.json holds and its readers compare (RelaImpr, the report's tables).
COUNTS_AND_AUCS = ("rows", "clicks", "valid_reads", "auc_ctr", "auc_valid_read")


def other_evaluation(result: Mapping, baseline: Mapping) -> str | None:
    """Why two evaluations (`evaluate` results or eval_metrics.json) are not of the same
    labelled logs, or None when they are: their rows, clicks and valid reads differ (other
    logs, or the same logs labelled with another stats artifact). RelaImpr compares AUCs on
    the same rows and labels only."""
    counts = ("rows", "clicks", "valid_reads")
    if all(result.get(k) == baseline.get(k) for k in counts):
        return None
    def count(v):
        return f"{v:,}" if isinstance(v, int) else str(v)

    return ("evaluated on other logs or labels (" + ", ".join(
        f"{count(result.get(k))} {k.replace('_', ' ')}" for k in counts)
        + " against the baseline's " + ", ".join(count(baseline.get(k)) for k in counts) + ")")


def metric_text(value, digits: int, sign: str = "", unit: str = "") -> str:
    """`value` with `digits` decimals ("+" in `sign`: signed) and `unit`, or "undefined" for a
    metric that is NaN (or None, as `json_ready` writes it): an AUC on logs of one class."""
    if value is None or value != value:
        return "undefined"
    return f"{value:{sign}.{digits}f}{unit}"


def json_ready(value):
    """`value` (nested dicts, lists, tuples, numbers) with every NaN or infinite float replaced
    by None, for strict JSON: an undefined metric (an AUC on logs of one class, a mean over no
    clicked rows) is written as null, which every JSON parser reads; Python's NaN token is
    not JSON (RFC 8259) and strict parsers (jq, JavaScript, Go, `json.loads` with
    `parse_constant`) refuse the whole file."""
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, (float, np.floating)) and not np.isfinite(value):
        return None
    return value


def _per_class(true_bin: np.ndarray, pred_bin: np.ndarray):
    """Classes present in either array, and per-class true positives, predicted and true counts."""
    classes = np.union1d(true_bin, pred_bin)
    tp = np.array([np.sum((true_bin == c) & (pred_bin == c)) for c in classes], float)
    predicted = np.array([np.sum(pred_bin == c) for c in classes], float)
    actual = np.array([np.sum(true_bin == c) for c in classes], float)
    return classes, tp, predicted, actual


def dwell_metrics(true_bin: np.ndarray, dwell_probs: np.ndarray, true_seconds: np.ndarray,
                  bin_values: np.ndarray, p_ctr: np.ndarray | None = None) -> dict:
    """Dwell-time metrics over clicked impressions.

    true_bin [n] int, dwell_probs [n, num_bins] (the predicted bin is the argmax), true_seconds
    [n], bin_values [num_bins] seconds (each bin's representative dwell), p_ctr [n] optional
    predicted CTR. Returns `dt_mae_class`, `dt_rmse_class` (bin index errors),
    `dt_weighted_f1`, `dt_macro_precision`, `dt_macro_recall` (over the classes present in the
    true or predicted bins; a class never predicted has precision 0), `dt_mae_seconds`,
    `dt_rmse_seconds` (predicted bin's median vs true seconds), `dt_pred_bin_distribution`,
    `dt_true_bin_distribution` (shares per bin) and, with `p_ctr`, `dt_bias_by_ctr_decile`:
    per decile of predicted CTR (lowest first), the mean of predicted minus true bin and of
    predicted minus true seconds (ORCA's view of CTR-induced dwell bias).
    """
    true_bin = np.asarray(true_bin, np.int64).ravel()
    dwell_probs = np.asarray(dwell_probs, float)
    num_bins = dwell_probs.shape[1]
    # Undefined without clicked impressions, and for a model whose outputs are not all numbers
    # (a diverged one): the argmax of a NaN row is bin 0, which would score it like any other
    # model, where its AUC and losses are NaN. (Scores of -inf, a log of 0, are ranked.)
    if len(true_bin) == 0 or np.isnan(dwell_probs).any():
        undefined = {k: float("nan") for k in (*DT_CLASS_METRICS, *DT_SECONDS_METRICS)}
        undefined["dt_pred_bin_distribution"] = [float("nan")] * num_bins
        undefined["dt_true_bin_distribution"] = [float("nan")] * num_bins
        if p_ctr is not None:
            undefined["dt_bias_by_ctr_decile"] = []
        return undefined
    pred_bin = np.argmax(dwell_probs, axis=1)
    medians = np.asarray(bin_values, float)
    error = (pred_bin - true_bin).astype(float)
    seconds_error = medians[pred_bin] - np.asarray(true_seconds, float).ravel()
    classes, tp, predicted, actual = _per_class(true_bin, pred_bin)
    precision = np.divide(tp, predicted, out=np.zeros_like(tp), where=predicted > 0)
    recall = np.divide(tp, actual, out=np.zeros_like(tp), where=actual > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros_like(tp),
                   where=(precision + recall) > 0)
    result = {
        "dt_mae_class": float(np.mean(np.abs(error))),
        "dt_rmse_class": float(np.sqrt(np.mean(error ** 2))),
        "dt_weighted_f1": float(np.sum(f1 * actual) / actual.sum()),
        "dt_macro_precision": float(precision.mean()),
        "dt_macro_recall": float(recall.mean()),
        "dt_mae_seconds": float(np.mean(np.abs(seconds_error))),
        "dt_rmse_seconds": float(np.sqrt(np.mean(seconds_error ** 2))),
        "dt_pred_bin_distribution": (np.bincount(pred_bin, minlength=num_bins)
                                     / len(pred_bin)).tolist(),
        "dt_true_bin_distribution": (np.bincount(true_bin, minlength=num_bins)
                                     / len(true_bin)).tolist(),
    }
    if p_ctr is not None:
        p_ctr = np.asarray(p_ctr, float).ravel()
        # Deciles by rank, so ties and skewed CTRs still give ten groups of near-equal size.
        decile = np.minimum((np.argsort(np.argsort(p_ctr, kind="mergesort")) * 10)
                            // len(p_ctr), 9)
        result["dt_bias_by_ctr_decile"] = [
            {"decile": d, "mean_p_ctr": float(p_ctr[decile == d].mean()),
             "bias_bins": float(error[decile == d].mean()),
             "bias_seconds": float(seconds_error[decile == d].mean())}
            for d in range(10) if np.any(decile == d)]
    return result


# The dwell metrics of predicted bins (the ORCA paper's primary ones) and in seconds, each with
# its direction: +1 when higher is better.
DT_CLASS_METRICS = {"dt_mae_class": -1, "dt_rmse_class": -1, "dt_weighted_f1": +1,
                    "dt_macro_precision": +1, "dt_macro_recall": +1}
DT_SECONDS_METRICS = {"dt_mae_seconds": -1, "dt_rmse_seconds": -1}


def dt_gains(candidate: dict, reference: dict, keys=tuple(DT_CLASS_METRICS)) -> list[float]:
    """Percent change of each DT metric in `keys` of `candidate` against `reference` (two
    `dwell_metrics` results), signed so that better is positive: direction x (c - r) / |r| x
    100 (inf or NaN when the reference is 0; NaN when either is undefined: NaN, or None as
    `json_ready` writes it to eval_metrics.json)."""
    directions = {**DT_CLASS_METRICS, **DT_SECONDS_METRICS}
    with np.errstate(divide="ignore", invalid="ignore"):
        # np.float64(None) is NaN: an undefined metric gives an undefined gain, not a TypeError.
        return [float(directions[k] * (np.float64(candidate[k]) - np.float64(reference[k]))
                      / abs(np.float64(reference[k])) * 100) for k in keys]


def dt_class_gain(candidate: dict, reference: dict) -> float:
    """The mean DT gain (percent) of `candidate` over `reference`: the mean of `dt_gains` over
    the five class metrics (the ORCA issue's figure of merit)."""
    return float(np.mean(dt_gains(candidate, reference)))
