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
  model's --train logs (add-one smoothed). For calibrated probabilities this is the decision
  that maximises the mean recall over bins (balanced accuracy); it has no parameter and
  changes no weight (decided before any run was read: pi as counted, power 1).

It prints, per ORCA run and decision, the mean DT gain of the five class metrics
(`ranking.metrics.dt_class_gain`) over the backbone's `argmax`, seed mean and sample std (as
`orca_render.py`), the same
without macro precision, and the share of predictions in the moderate bins (neither the two
shortest nor the longest), and writes OUT/orca_decision_SETTING.json. If a backbone's
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

# The class metrics' gain without macro precision (a bin a model never predicts has precision
# 0, so a head that predicts it at all raises that metric).
WITHOUT_PRECISION = ("dt_mae_class", "dt_rmse_class", "dt_weighted_f1", "dt_macro_recall")
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


def class_gain(candidate: dict, reference: dict, keys=None) -> float:
    """Mean DT gain (percent) of `candidate` over `reference` over the class metrics `keys`
    (default: the five of the ORCA issue's figure of merit)."""
    from ranking import metrics

    if keys is None:
        return metrics.dt_class_gain(candidate, reference)
    return float(np.mean(metrics.dt_gains(candidate, reference, keys)))


def _flag(args_file: str, name: str) -> str:
    """The value of ranking.train's --`name` in a run's benchmark_args.json."""
    try:
        with open(args_file) as handle:
            flags = json.load(handle)
    except (OSError, ValueError) as error:
        raise SystemExit(f"error: {args_file}: cannot read what the run was trained with "
                         f"({error}); was it trained by orca_table.py?") from None
    for flag in flags:
        if flag.startswith(f"--{name}="):
            return flag.split("=", 1)[1]
    raise SystemExit(f"error: {args_file} has no --{name}")


class _Predictions:
    """Loads models and labels logs, keeping what several models share (a stats artifact and
    the training logs' clicks per bin)."""

    def __init__(self):
        self._artifacts, self._priors = {}, {}

    def artifact(self, path):
        from core.stats_artifact import load_artifact

        if path not in self._artifacts:
            self._artifacts[path] = load_artifact(path)
        return self._artifacts[path]

    def _clicked_labels(self, patterns, stats, spec, batches_of=None):
        from core.labeler import labeler_for
        from ranking import data

        artifact = self.artifact(stats)
        source = data.open_source(patterns, spec, artifact)
        dataset = data.labelled_dataset(source, labeler_for(source, artifact), spec, 8192)
        return dataset if batches_of is None else batches_of(dataset)

    def prior(self, train, stats, spec, num_bins) -> np.ndarray:
        """The smoothed share of the --train logs' clicks per bin of `stats`' bins."""
        key = (train, stats)
        if key not in self._priors:
            counts = np.zeros(num_bins, np.int64)
            for _, labels in self._clicked_labels(train, stats, spec):
                clicked = labels["click"].numpy() == 1
                counts += np.bincount(labels["dwell_bin"].numpy()[clicked].astype(np.int64),
                                      minlength=num_bins)
            self._priors[key] = smoothed_prior(counts)
        return self._priors[key]

    def served(self, model_dir):
        """(dwell_probs [clicked, bins], labels of the clicked rows, targets, eval_metrics.json,
        prior [bins]) of a model directory on its --eval logs."""
        from export import exporter
        from ranking import evaluation
        from ranking import model_dir as model_dir_lib

        args_file = os.path.join(model_dir, "benchmark_args.json")
        stats = _flag(args_file, "stats")
        model, description = exporter.load_trained(model_dir)
        spec, config, targets = model_dir_lib.build_from_description(description)
        predictor = evaluation.Predictor(model.network, config, targets)
        outputs, labels = self._clicked_labels(_flag(args_file, "eval"), stats, spec, predictor)
        clicked = labels["click"] == 1
        with open(os.path.join(model_dir, "eval_metrics.json")) as handle:
            recorded = json.load(handle)
        prior = self.prior(_flag(args_file, "train"), stats, spec, targets.num_bins)
        return (outputs["dwell_probs"][clicked], {k: v[clicked] for k, v in labels.items()},
                targets, recorded, prior)


def decision_metrics(predictions: _Predictions, model_dir: str) -> dict:
    """{decision: dwell metrics} of a model directory's served head (`DECISIONS`)."""
    from ranking import metrics

    probs, labels, targets, recorded, prior = predictions.served(model_dir)

    def evaluated(scores):
        return metrics.dwell_metrics(labels["dwell_bin"], scores, labels["dwell_time"],
                                     np.asarray(targets.bin_values, float))

    result = {"argmax": evaluated(probs),
              "prior-adjusted": evaluated(prior_adjusted_scores(probs, prior)),
              "prior": prior.tolist()}
    for key in metrics.DT_CLASS_METRICS:
        if not np.isclose(result["argmax"][key], recorded[key], rtol=1e-6, atol=1e-9):
            raise SystemExit(f"error: {model_dir}: {key} predicted again is "
                             f"{result['argmax'][key]}, eval_metrics.json has {recorded[key]}: "
                             "not the model that was evaluated")
    return result


def _moderate(shares) -> float:
    return float(np.sum(np.asarray(shares)[2:-1]))


def main():
    import orca_runs

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, help="an orca_table.py output directory")
    parser.add_argument("--setting", required=True, help="its setting (a directory in it)")
    parser.add_argument("--runs", default="mmoe_orca_authors,ple_orca_authors",
                        help="ORCA runs (orca_runs.RUNS names with a baseline)")
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    by_name = {run.name: run for run in orca_runs.RUNS}
    seeds = [int(s) for s in args.seeds.split(",")]
    models = os.path.join(args.out, args.setting, "models")
    predictions, results, rows = _Predictions(), {}, []
    for name in args.runs.split(","):
        run = by_name.get(name)
        if run is None or run.baseline is None:
            raise SystemExit(f"error: --runs: {name} is not an ORCA run of orca_runs.RUNS")
        for member in (run.baseline, name):
            for seed in seeds:
                directory = os.path.join(models, f"{member}-seed{seed}")
                if (member, seed) not in results:
                    if not os.path.exists(os.path.join(directory, "eval_metrics.json")):
                        raise SystemExit(f"error: {directory} holds no finished run")
                    results[(member, seed)] = decision_metrics(predictions, directory)
        for member in (run.baseline, name):
            for decision in DECISIONS:
                gains = [class_gain(results[(member, s)][decision],
                                    results[(run.baseline, s)]["argmax"]) for s in seeds]
                without = [class_gain(results[(member, s)][decision],
                                      results[(run.baseline, s)]["argmax"], WITHOUT_PRECISION)
                           for s in seeds]
                moderate = np.mean([_moderate(results[(member, s)][decision][
                    "dt_pred_bin_distribution"]) for s in seeds])
                true_moderate = np.mean([_moderate(results[(member, s)][decision][
                    "dt_true_bin_distribution"]) for s in seeds])
                rows.append({"run": member, "against": run.baseline, "decision": decision,
                             "gain": float(np.mean(gains)), "gain_std": (float(np.std(gains, ddof=1))
                                          if len(gains) > 1 else 0.0),
                             "gains_by_seed": gains,
                             "gain_without_precision": float(np.mean(without)),
                             "moderate_predicted": float(moderate),
                             "moderate_true": float(true_moderate)})
    print("| run | decision | gain over the backbone's argmax (5 class metrics) | by seed "
          "| without precision | moderate predicted / true |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['run']} | {row['decision']} | {row['gain']:+.1f} % ± {row['gain_std']:.1f} "
              f"| {', '.join(f'{g:+.1f}' for g in row['gains_by_seed'])} "
              f"| {row['gain_without_precision']:+.1f} % "
              f"| {row['moderate_predicted']:.3f} / {row['moderate_true']:.3f} |")
    path = os.path.join(args.out, f"orca_decision_{args.setting}.json")
    with open(path + ".tmp", "w") as handle:
        json.dump({"command": " ".join(sys.argv), "rows": rows,
                   "models": {f"{m}-seed{s}": r for (m, s), r in results.items()}},
                  handle, indent=1)
    os.replace(path + ".tmp", path)
    print(f"wrote {path}")


if __name__ == "__main__":
    in_process(main)
