"""ORCA's dwell-time gain beside a decision rule that needs no training: what part of the gain a
backbone gets by predicting its rare bins more often.

    .venv/bin/python benchmarks/orca_decision.py --out=bench_out/orca_en11_norefit \\
        --setting=entangled [--runs=mmoe_orca_authors,ple_orca_authors --seeds=0,1,2]

For each ORCA run of `--runs` (model directories OUT/SETTING/models/RUN-seedS written by
`orca_table.py`) and its backbone (`orca_runs.RUNS`), every model's served dwell distribution
is predicted again on the clicked rows of its --eval logs and the predicted bin taken two ways:

- `argmax`: the most probable bin, as `eval_metrics.json` evaluates it (checked: the five class
  metrics must equal the file's, else the run is refused);
- `prior-adjusted`: the argmax of ln p(bin) - ln pi(bin), pi the share of clicks per bin in the
  model's --train logs (a held-out validation day included; add-one smoothed). For calibrated
  probabilities and test shares as the training ones, about the decision that maximises the
  mean recall over bins (balanced accuracy); it has no parameter and changes no weight
  (decided before any run was read: pi as counted, power 1).

It prints, per ORCA run and decision, the mean DT gain of the five class metrics
(`orca_render.dt_gain`: per seed, paired) over the backbone's `argmax`, seed mean and sample
std, the same without macro precision, and the share of predictions in the moderate bins
(neither the two shortest nor the longest), and writes OUT/orca_decision_SETTING.json. A run's
logs, stats and --allow_unclicked_dwell are read from its config.json, as training wrote them. If a backbone's
`prior-adjusted` gain matches ORCA's, what ORCA adds on these logs is a shift of its decisions
toward the bins the backbone under-predicts, which the rule gives without a second head.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import in_process  # noqa: E402

DECISIONS = ("argmax", "prior-adjusted")


def smoothed_prior(bin_counts) -> np.ndarray:
    """pi [bins]: (n_k + 1) / (N + bins) of the clicks per bin `bin_counts` [bins], so that a bin
    without a training click gets a finite log-prior."""
    counts = np.asarray(bin_counts, np.float64)
    return (counts + 1.0) / (counts.sum() + len(counts))


def prior_adjusted_scores(dwell_probs, prior) -> np.ndarray:
    """ln p - ln pi [rows, bins] of `dwell_probs` [rows, bins] and `prior` [bins]: its argmax is
    the prior-adjusted bin (a zero probability stays -inf: never chosen over a positive one)."""
    with np.errstate(divide="ignore"):
        return np.log(np.asarray(dwell_probs, np.float64)) - np.log(np.asarray(prior, np.float64))


class _Predictions:
    """Loads trained models and labels their logs, keeping what several models share (stats
    artifacts, and the training logs' clicks per bin)."""

    def __init__(self):
        self._artifacts, self._priors = {}, {}

    def _artifact(self, path):
        from core.stats_artifact import load_artifact

        if path not in self._artifacts:
            self._artifacts[path] = load_artifact(path)
        return self._artifacts[path]

    def _labelled(self, patterns: str, training: dict, spec):
        """(features, labels) batches of `patterns`, labelled as the run's training and
        evaluation labelled them (its stats artifact, --allow_unclicked_dwell)."""
        from core.labeler import labeler_for
        from ranking import data

        artifact = self._artifact(training["stats"])
        allow = bool(training.get("allow_unclicked_dwell"))
        source = data.open_source(patterns, spec, artifact)
        return data.labelled_dataset(
            source, labeler_for(source, artifact, allow_unclicked_dwell=allow), spec,
            int(training.get("eval_batch_size") or 8192), allow_unclicked_dwell=allow)

    def prior(self, training: dict, spec, num_bins: int) -> np.ndarray:
        """pi [num_bins]: `smoothed_prior` of the clicks per bin of the run's --train logs (all
        of them: a held-out validation day included)."""
        key = (training["train"], training["stats"], bool(training.get("allow_unclicked_dwell")))
        if key not in self._priors:
            counts = np.zeros(num_bins, np.int64)
            for _, labels in self._labelled(training["train"], training, spec):
                clicked = labels["click"].numpy() == 1
                counts += np.bincount(labels["dwell_bin"].numpy()[clicked].astype(np.int64),
                                      minlength=num_bins)
            self._priors[key] = smoothed_prior(counts)
        return self._priors[key]

    def served(self, model_dir: str):
        """The served head of a trained model directory on its --eval logs' clicked rows:
        (dwell_probs [clicks, bins], {label: [clicks]}, DwellTargets, eval_metrics.json's
        contents, pi [bins])."""
        from export import exporter
        from ranking import evaluation

        path = os.path.join(model_dir, "eval_metrics.json")
        try:
            with open(path) as handle:
                recorded = json.load(handle)
        except (OSError, ValueError) as error:
            raise SystemExit(f"error: {path}: not a finished run's metrics ({error})") from None
        model, description = exporter.load_trained(model_dir)
        training = description["training"]
        if not training.get("eval"):
            raise SystemExit(f"error: {model_dir} was trained without --eval logs")
        predictor = evaluation.Predictor(model.network, model.config, model.targets)
        outputs, labels = predictor(self._labelled(training["eval"], training,
                                                   model.feature_spec))
        if "dwell_probs" not in outputs:
            raise SystemExit(f"error: {model_dir}: its model ({model.config.preset}) serves no "
                             "dwell distribution")
        clicked = labels["click"] == 1
        prior = self.prior(training, model.feature_spec, model.targets.num_bins)
        return (outputs["dwell_probs"][clicked], {k: v[clicked] for k, v in labels.items()},
                model.targets, recorded, prior)


def decision_metrics(predictions: _Predictions, model_dir: str) -> dict:
    """{"argmax": dwell metrics, "prior-adjusted": dwell metrics, "prior": pi [bins]} of a
    model directory's served head on its --eval logs' clicks (`ranking.metrics.dwell_metrics`,
    bin errors in bins, seconds in seconds); refused when the argmax's class metrics differ
    from its eval_metrics.json (another model than the one evaluated)."""
    from ranking import metrics

    probs, labels, targets, recorded, prior = predictions.served(model_dir)

    def evaluated(scores):
        return metrics.dwell_metrics(labels["dwell_bin"], scores, labels["dwell_time"],
                                     np.asarray(targets.bin_values, float))

    result = {"argmax": evaluated(probs),
              "prior-adjusted": evaluated(prior_adjusted_scores(probs, prior)),
              "prior": prior.tolist()}
    for key in metrics.DT_CLASS_METRICS:
        again, before = np.float64(result["argmax"][key]), np.float64(recorded.get(key))
        if not np.isclose(again, before, rtol=1e-6, atol=1e-9, equal_nan=True):
            raise SystemExit(f"error: {model_dir}: {key} predicted again is {again}, its "
                             f"eval_metrics.json has {before}: not the model that was "
                             "evaluated")
    return result


def main():
    import types

    from orca_render import dt_gain, moderate_share

    from ranking.metrics import json_ready

    import orca_runs
    from common import seeds_of

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="an orca_table.py output directory")
    parser.add_argument("--setting", required=True, help="its setting (a directory in it)")
    parser.add_argument("--runs", default="mmoe_orca_authors,ple_orca_authors",
                        help="ORCA runs (orca_runs.RUNS names with a baseline)")
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    by_name = {run.name: run for run in orca_runs.RUNS}
    seeds = seeds_of(parser, args.seeds)
    models = os.path.join(args.out, args.setting, "models")
    predictions, decided, rows = _Predictions(), {}, []
    for name in args.runs.split(","):
        run = by_name.get(name)
        if run is None or run.baseline is None:
            parser.error(f"--runs: {name} is not an ORCA run of orca_runs.RUNS")
        for member in (run.baseline, name):
            for seed in seeds:
                directory = os.path.join(models, f"{member}-seed{seed}")
                if (member, seed) not in decided:
                    if not os.path.isdir(directory):
                        raise SystemExit(f"error: {directory}: no such run")
                    decided[(member, seed)] = decision_metrics(predictions, directory)
        # orca_render's per-seed paired gains, over the backbone's argmax.
        results = {f"{member} {decision}": {s: decided[(member, s)][decision] for s in seeds}
                   for member in (run.baseline, name) for decision in DECISIONS}
        for member in (run.baseline, name):
            for decision in DECISIONS:
                gain = dt_gain(results, types.SimpleNamespace(
                    name=f"{member} {decision}", baseline=f"{run.baseline} argmax"), seeds)
                by_seed = [dt_gain(results, types.SimpleNamespace(
                    name=f"{member} {decision}", baseline=f"{run.baseline} argmax"),
                    [s])["class"][0] for s in seeds]
                shares = [decided[(member, s)][decision] for s in seeds]
                rows.append({
                    "run": member, "against": f"{run.baseline} argmax", "decision": decision,
                    "gain": gain["class"], "gains_by_seed": by_seed,
                    "gain_without_precision": gain["class_without_precision"],
                    "moderate_predicted": float(np.mean([moderate_share(
                        r["dt_pred_bin_distribution"]) for r in shares])),
                    "moderate_true": float(np.mean([moderate_share(
                        r["dt_true_bin_distribution"]) for r in shares]))})
    print("| run | decision | gain over the backbone's argmax (5 class metrics) | by seed "
          "| without precision | moderate predicted / true |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        spread = f" ± {row['gain'][1]:.1f}" if len(seeds) > 1 else ""
        print(f"| {row['run']} | {row['decision']} | {row['gain'][0]:+.1f} %{spread} "
              f"| {', '.join(f'{g:+.1f}' for g in row['gains_by_seed'])} "
              f"| {row['gain_without_precision'][0]:+.1f} % "
              f"| {row['moderate_predicted']:.3f} / {row['moderate_true']:.3f} |")
    path = os.path.join(args.out, f"orca_decision_{args.setting}.json")
    with open(path + ".tmp", "w") as handle:
        json.dump(json_ready({"command": " ".join(sys.argv), "rows": rows,
                              "models": {f"{m}-seed{s}": r for (m, s), r in decided.items()}}),
                  handle, indent=1)
    os.replace(path + ".tmp", path)
    print(f"wrote {path}")


if __name__ == "__main__":
    in_process(main)
