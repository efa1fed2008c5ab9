"""The ORCA paper's Table 1 and Fig. 4 on the simulator, with the model-selection protocol, ORCA
as this project trains it and as its authors do, an ablation per difference, and the collapse.

    .venv/bin/python benchmarks/orca_table.py --out=bench_out/orca [--settings=legacy,entangled
        --seeds=0,1,2 --num_users=6000 --num_items=3000 --days=14 --runs=mmoe,mmoe_orca]

For each simulator setting (`pipelines.simulate --setting`): simulate (unless OUT/SETTING/sim
exists), compute two stats artifacts of the training days (all but the last 3): this project's
bins (8 equal-width bins of ln dwell) and the authors' (configs/orca_authors_stats.flags: fixed
edges, midpoint values); train every run of RUNS (`benchmarks/orca_runs.py`) with each seed and
evaluate on the last 3 days. Finished runs (an eval_metrics.json) are reused, so an interrupted
benchmark continues.

On your own logs instead of a simulated world: `--train=GLOBS --eval=GLOBS
--post_click_features=a,b [--name=mine --stats_args='--column_types=...']` (globs as
ranking.train's; the evaluation logs later than the training logs, whose last UTC day is the
validation window): the same runs, stats of the training logs with both bins under OUT/NAME, the
section named after NAME. `--project_args` adds ranking.train flags to every run it trains: the
figures of docs/orca.md up to 2026-12-02 were trained with TensorFlow's default threads per op,
which `--project_args=--intra_op_threads=0` gives back (the default since is one thread per op,
whose float sums may run in another order). A finished run trained with other threads per op or
another refit setting than asked for is refused, not reused; so is one trained with any other
ranking.train flag (its flags are kept beside it, benchmark_args.json, since 2026-12-06), and,
on your logs, a table whose input files changed under the same globs (OUT/NAME/inputs.json).
The jobs' `warning:` and `note:` lines are passed on to stderr (each once, tagged with the run).

Protocol: every run but the one-epoch ones holds out the last training day for validation
(--validation_days=1), trains up to 10 epochs with early stopping and is evaluated after its
refit pass (`ranking.selection`); runs "as the authors" read configs/orca_authors.flags (their
optimizer, batch, regularization, sizes, masking, NDE head, loss scale, h_s, patience and
early-stopping metric, and since a6a8e18 no refit pass: they serve the best checkpoint) and the
authors' bins. Runs from before a6a8e18 made the pass: a table of the current flagfile over
them is refused (above); give it a new --out. The one-epoch runs (`*_1ep`)
are training as it was before model selection, for the collapse.

Columns, over clicked evaluation impressions with the predicted bin = argmax of the served
dwell distribution: MAEclass, RMSEclass (bin index), weighted F1, macro precision and recall,
MAE and RMSE in seconds (predicted bin's value against the true dwell), and the CTR AUC of the
model's ctr tower over all impressions. Each ORCA row's gain is against its own backbone row
(same protocol, bins and loss scale): the relative change of each DT metric, signed so that
better is positive, averaged over the five class metrics (the paper's primary ones) and over
all seven. A third mean leaves macro precision out of the five: a bin the backbone never predicts
has precision 0 by SPEC §6's definition, so a head that predicts it at all, however rarely,
raises the macro mean by that bin's precision over the number of classes (the bins, when each
occurs in the test clicks); the four other class metrics show whether a gain holds without
macro precision (and so without its changes on the other bins too).

The collapse (the paper's Fig. 1 and 4a): per model, the share of clicked test impressions
predicted in each bin against the truth, the raw and the debiased head of ORCA models side by
side, and the moderate-bin share (bins neither the two shortest nor the longest), predicted
against true.

Writes OUT/orca_table.md and .json, and per setting fig4a-<setting>.png (predicted against true
bin shares) and fig4bc-<setting>.png (mean predicted minus true dwell, in bins and seconds, by
decile of predicted CTR), the same two as fig4a-<setting>-authors.png and fig4bc-<setting>-authors.png
for the authors' protocol rows with --output_bias=prior when they ran, and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
# ranking imports core, which loads TensorFlow: quiet, as the CLIs are (core/cli.py).
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
from ranking.metrics import DT_CLASS_METRICS, DT_SECONDS_METRICS, dt_gains  # noqa: E402

from common import (  # noqa: E402
    add_logs_flags,
    check_inputs_unchanged,
    check_logs_flags,
    check_reused_args,
    check_reused_eval,
    logs_summary,
    mean_and_spread,
    module,
    seeds_of,
    split_flags,
    stats_of,
    train_model,
)
from orca_runs import AUTHORS_STATS, DEFAULT_RUNS, POST_CLICK, RUNS  # noqa: E402

CLASS_KEYS = tuple(DT_CLASS_METRICS)
DT_KEYS = CLASS_KEYS + tuple(DT_SECONDS_METRICS)
HEADERS = ("MAEclass ↓", "RMSEclass ↓", "F1 ↑", "Precision ↑", "Recall ↑", "MAE s ↓",
           "RMSE s ↓", "CTR AUC ↑", "epochs")


def prepare(out, setting, sim_args):
    """Simulates the setting's world and computes the stats of its training days: (train glob,
    eval glob, {bins: stats directory}, simulation summary)."""
    sim = os.path.join(out, setting, "sim")
    if not os.path.exists(os.path.join(sim, "summary.json")):
        print(f"simulating {setting} into {sim}", flush=True)
        module("pipelines.simulate", f"--output_dir={sim}", f"--setting={setting}", *sim_args)
    with open(os.path.join(sim, "summary.json")) as handle:
        summary = json.load(handle)
    days = sorted(f for f in os.listdir(os.path.join(sim, "logs")))
    train = ",".join(os.path.join(sim, "logs", f) for f in days[:-3])
    evaluate = ",".join(os.path.join(sim, "logs", f) for f in days[-3:])
    return train, evaluate, both_stats(out, setting, train)[0], summary


def prepare_logs(out, name, train, evaluate, stats_args=()):
    """The same for a user's logs (`--train`, `--eval`): their two stats artifacts and a
    summary of the training logs (`common.logs_summary`)."""
    check_inputs_unchanged(os.path.join(out, name), {"train": train, "eval": evaluate},
                           made=os.path.exists(os.path.join(out, name, "stats", "stats.json")))
    stats, project_stats = both_stats(out, name, train, stats_args)
    return train, evaluate, stats, logs_summary(project_stats, train, evaluate)


def both_stats(out, name, train, stats_args=()):
    """({bins: stats directory} of the training logs: this project's bins and the authors'
    (configs/orca_authors_stats.flags), each computed once (`common.stats_of`); the project
    bins' stats.json)."""
    stats, project_stats = {}, None
    for bins, extra in (("project", []), ("authors", AUTHORS_STATS)):
        stats[bins] = os.path.join(out, name, "stats" if bins == "project" else "stats_authors")
        made = stats_of(train, stats[bins], *stats_args, *extra)
        project_stats = project_stats or made
    return stats, project_stats


def _asked_config(run, project_args):
    """The ranking.train config the table asks `run` to train with (its protocol, its flags and
    `project_args`), built by the project's own flag definitions (`core.settings`); the
    required data flags get placeholders, as only the training settings are compared."""
    from absl import flags

    from core import settings
    from ranking.training import TrainConfig

    flag_values = flags.FlagValues()
    required = settings.define_flags(TrainConfig, flag_values)
    try:
        flag_values(["orca_table", *[f"--{name}=unused" for name in required],
                     f"--model={run.preset}", *run.protocol, *run.flags, *project_args])
    except flags.Error as error:
        sys.exit(f"error: orca_table: run {run.name}: {error}")
    return settings.from_flags(TrainConfig, flag_values)


def _check_reused(model_dir, run, project_args, evaluate, post_click) -> None:
    """Refuses to reuse a finished run trained otherwise than asked for in the settings that
    moved between runs of this table: threads per op (runs from before the setting used
    TensorFlow's, 0) and the refit pass (the authors' flagfile had it until 2026-12-04; runs
    from before model selection had none). One table, one setting."""
    with open(os.path.join(model_dir, "config.json")) as handle:
        description = json.load(handle)
    training = description["training"]
    with open(os.path.join(model_dir, "eval_metrics.json")) as handle:
        check_reused_eval(model_dir, json.load(handle), evaluate)
    trained_post_click = sorted(f["name"] for f in description["features"]
                                if f.get("post_click"))
    wanted = sorted(n for n in post_click.split("=", 1)[1].split(",") if n)
    if trained_post_click != wanted:
        sys.exit(f"error: {model_dir} was trained with post-click features "
                 f"{','.join(trained_post_click) or 'none'}, not {','.join(wanted)}: give the "
                 "table a new --out (or remove the run) to train it again")
    selection = training.get("selection", {})
    asked = _asked_config(run, project_args)
    checks = [("intra_op_threads", training.get("intra_op_threads", 0), asked.intra_op_threads),
              ("refit", selection.get("refit", "none"), asked.selection.refit)]
    if not (selection.get("validation") or selection.get("validation_days")):
        checks.pop()  # no validation window, no refit pass whatever the flag says
    for name, trained, wanted in checks:
        if trained != wanted:
            sys.exit(f"error: {model_dir} was trained with --{name}={trained}, not {wanted}: add "
                     f"--project_args=--{name}={trained} to reuse it, or give the table a new "
                     "--out (or remove the run) to train it again")


def train_run(out, setting, run, seed, train, evaluate, stats, project_args=(),
              post_click=POST_CLICK):
    """The run's eval_metrics.json (training it unless it is there, with `post_click` (the
    --post_click_features flag) and `project_args` added to its ranking.train flags), with its
    wall time."""
    model_dir = os.path.join(out, setting, "models", f"{run.name}-seed{seed}")
    metrics_path = os.path.join(model_dir, "eval_metrics.json")
    args = [f"--model={run.preset}", f"--train={train}", f"--eval={evaluate}",
            f"--stats={stats[run.stats]}", f"--model_dir={model_dir}", f"--seed={seed}",
            "--progress=none", post_click, *run.protocol, *run.flags, *project_args]
    reused = os.path.exists(metrics_path)
    if reused:
        _check_reused(model_dir, run, project_args, evaluate, post_click)
        check_reused_args(model_dir, args)
    else:
        train_model(model_dir, args, f"{setting} seed {seed} {run.name}")
    with open(metrics_path) as handle:
        metrics = json.load(handle)
    seconds_path = os.path.join(model_dir, "wall_seconds")
    metrics["wall_seconds"] = (float(open(seconds_path).read())
                               if os.path.exists(seconds_path) else float("nan"))
    metrics["reused"] = reused
    return metrics


def run_all(out, setting, seeds, runs, prepared, project_args=(), post_click=POST_CLICK):
    """Trains (or reuses) every run with every seed on `prepared` (`prepare` or
    `prepare_logs`): ({run name: {seed: metrics}}, summary)."""
    train, evaluate, stats, summary = prepared
    results = {}
    for seed in seeds:
        for run in runs:
            metrics = train_run(out, setting, run, seed, train, evaluate, stats, project_args,
                                post_click)
            if run.columns != "auc" and not np.isfinite(np.array(
                    metrics.get("dt_true_bin_distribution") or [np.nan], float)).all():
                sys.exit(f"error: {run.name}, seed {seed}: no clicked impression of {evaluate} has a "
                         "dwell bin, so the table's dwell-time metrics are undefined: give "
                         "evaluation logs with clicks")
            results.setdefault(run.name, {})[seed] = metrics
            print(f"{setting} seed {seed} {run.name}: ctr AUC {ctr_auc(metrics):.4f} "
                  f"MAEclass {metrics.get('dt_mae_class', float('nan')):.3f} "
                  f"F1 {metrics.get('dt_weighted_f1', float('nan')):.3f} "
                  f"moderate {moderate_share(metrics.get('dt_pred_bin_distribution')):.3f} "
                  f"epochs {epochs_of(metrics):.1f} ({metrics['wall_seconds']:.0f} s"
                  + (", reused)" if metrics["reused"] else ")")
                  + (f" served head {metrics['orca_served_head']}"
                     if "orca_served_head" in metrics else ""),
                  flush=True)
    return results, summary


def served_head(metrics):
    """The dwell head an ORCA run served: --orca_serve's choice (runs before that option
    served the debiased head)."""
    return metrics.get("orca_served_head", "debiased")


def ctr_auc(metrics):
    value = metrics.get("towers", {}).get("ctr", {}).get("auc_ctr")
    return float("nan") if value is None else value


def epochs_of(metrics):
    """Epochs the served model trained: the selected epoch (a refit pass after it is not
    counted), or 1 for a run without model selection that trained."""
    selection = metrics.get("selection")
    if not selection:
        return float(metrics.get("global_step", 0) > 0)
    return float(selection["epoch"])


def moderate_share(shares):
    """The share of predictions (or truths) in the moderate bins: neither of the two shortest
    nor the longest."""
    if shares is None:
        return float("nan")
    return float(np.sum(shares[2:-1]))


def _values(results, name, key, seeds):
    values = []
    for seed in seeds:
        metrics = results[name][seed]
        value = (ctr_auc(metrics) if key == "auc" else epochs_of(metrics) if key == "epochs"
                 else metrics.get(key))
        values.append(np.nan if value is None else value)
    return np.array(values, float)


def mean_std(values):
    return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def summarize(results, seeds, runs):
    """{run name: {column key: (mean, std)}} in RUNS order."""
    rows = {}
    for run in runs:
        row = rows.setdefault(run.name, {})
        keys = (DT_KEYS if run.columns in ("dt", "both") else ()) + (
            ("auc",) if run.columns in ("auc", "both") else ()) + ("epochs",)
        for key in keys:
            row[key] = mean_std(_values(results, run.name, key, seeds))
    return rows


def dt_gain(results, run, seeds):
    """ORCA's relative DT gain over its baseline (signed so that better is positive), per seed
    paired and then averaged: {class: (mean, std) over seeds of the five class metrics' mean,
    class_without_precision: the same without macro precision, all: the seven metrics',
    per_metric: [7 seed means], auc: the ctr tower's AUC change (mean, std)}."""
    per_seed_class, per_seed_without, per_seed_all, per_metric = [], [], [], []
    without_precision = [i for i, key in enumerate(CLASS_KEYS) if key != "dt_macro_precision"]
    for seed in seeds:
        base, orca = results[run.baseline][seed], results[run.name][seed]
        gains = dt_gains(orca, base, DT_KEYS)
        per_seed_class.append(np.mean(gains[:len(CLASS_KEYS)]))
        per_seed_without.append(np.mean([gains[i] for i in without_precision]))
        per_seed_all.append(np.mean(gains))
        per_metric.append(gains)
    auc = [ctr_auc(results[run.name][s]) - ctr_auc(results[run.baseline][s]) for s in seeds]
    return {"class": mean_std(per_seed_class),
            "class_without_precision": mean_std(per_seed_without), "all": mean_std(per_seed_all),
            "per_metric": np.mean(per_metric, axis=0).tolist(), "auc": mean_std(auc)}


def collapse(results, name, seeds):
    """Mean over seeds of the predicted bin shares of the served head, the raw head (ORCA
    models; else None) and the truth."""
    served = np.mean([results[name][s]["dt_pred_bin_distribution"] for s in seeds], axis=0)
    true = np.mean([results[name][s]["dt_true_bin_distribution"] for s in seeds], axis=0)
    raw = None
    if "raw_dwell" in results[name][seeds[0]]:
        raw = np.mean([results[name][s]["raw_dwell"]["dt_pred_bin_distribution"]
                       for s in seeds], axis=0)
    return served, raw, true


def decile_bias(results, name, seeds):
    """Mean over seeds of the DT bias by CTR decile: (bins [10], seconds [10])."""
    bins, seconds = [], []
    for seed in seeds:
        deciles = results[name][seed]["dt_bias_by_ctr_decile"]
        bins.append([d["bias_bins"] for d in deciles])
        seconds.append([d["bias_seconds"] for d in deciles])
    return np.mean(bins, axis=0), np.mean(seconds, axis=0)


def _signed(mean_std, seeds: int, digits: int, unit: str = "") -> str:
    """A signed gain cell: "+mean unit ± std" over several seeds, "+mean unit" for one."""
    mean, std = mean_std
    return f"{mean:+.{digits}f}{unit}" + (f" ± {std:.{digits}f}" if seeds > 1 else "")


def render(setting, rows, results, seeds, summary, runs):
    if summary.get("source") == "logs":
        title = f"### Logs `{setting}`"
        described = (f"Training `{summary['train']}` ({summary['rows']:,} impressions, CTR "
                     f"{100 * summary['ctr']:.1f} %), evaluation `{summary['eval']}`")
    else:
        title = f"### Setting `{setting}`"
        described = (f"{summary.get('rows', 0):,} impressions, CTR "
                     f"{100 * summary.get('ctr', 0):.1f} %")
    lines = [title, "", f"{described}; " + ("1 seed." if len(seeds) == 1 else
                                            f"{len(seeds)} seeds (mean ± std)."), "",
             "| model | " + " | ".join(HEADERS) + " |", "|---|" + "---|" * len(HEADERS)]
    for run in runs:
        row, cells = rows[run.name], []
        for key in DT_KEYS + ("auc", "epochs"):
            if key not in row:
                cells.append("–")
                continue
            mean, std = row[key]
            digits = 1 if key.endswith("seconds") or key == "epochs" else (
                4 if key == "auc" else 3)
            cells.append(mean_and_spread(mean, std, len(seeds), digits))
        lines.append(f"| {run.label} | " + " | ".join(cells) + " |")
    lines += ["", "DT gain of each ORCA row over its backbone row (relative, signed so that better "
              "is positive; paired by seed): mean over the five class metrics, over the four "
              "without macro precision (a bin never predicted has precision 0), over all seven, "
              "per metric; and the ctr tower's AUC change:", "",
              "| ORCA row | against | DT gain, 5 class metrics | without precision | DT gain, 7 "
              "metrics | per metric (MAEc RMSEc F1 P R MAE RMSE) | CTR AUC change | served head "
              "per seed |",
              "|---|---|---|---|---|---|---|---|"]
    labels = {r.name: r.label for r in runs}
    for run in runs:
        if run.baseline is None or run.baseline not in rows:
            continue
        gain = dt_gain(results, run, seeds)
        cells = [_signed(gain[key], len(seeds), digits, unit) for key, digits, unit in (
            ("class", 1, " %"), ("class_without_precision", 1, " %"), ("all", 1, " %"))]
        lines.append(f"| {run.label} | {labels[run.baseline]} | " + " | ".join(cells) + " | "
                     + " ".join(f"{g:+.1f}" for g in gain["per_metric"])
                     + f" | {_signed(gain['auc'], len(seeds), 4)} | "
                     + " ".join(served_head(results[run.name][s]) for s in seeds) + " |")
    lines += ["", "The collapse (Fig. 1, 4a): share of clicked test impressions predicted in each "
              "bin (argmax), the served head and, for ORCA, the raw one; the moderate-bin share "
              "(bins 2 to B-2) predicted against true:", "",
              "| model | head | predicted share per bin | moderate predicted | moderate true |",
              "|---|---|---|---|---|"]
    for run in runs:
        if run.columns == "auc":
            continue
        served, raw, true = collapse(results, run.name, seeds)
        heads = [("served" if raw is None else "served (" + "/".join(sorted(
            {served_head(results[run.name][s]) for s in seeds})) + ")", served)]
        if raw is not None:
            heads.append(("raw", raw))
        for head, shares in heads:
            lines.append(f"| {run.label} | {head} | " + " ".join(f"{s:.2f}" for s in shares)
                         + f" | {moderate_share(shares):.3f} | {moderate_share(true):.3f} |")
    for bins in ("project", "authors"):
        first = next((r for r in runs if r.stats == bins and r.columns != "auc"), None)
        if first is not None:
            _, _, true = collapse(results, first.name, seeds)
            lines.append(f"| truth ({bins} bins) | | " + " ".join(f"{s:.2f}" for s in true)
                         + f" | {moderate_share(true):.3f} | {moderate_share(true):.3f} |")
    lines += ["", "Over-reliance check: mean (predicted − true) bin of clicked impressions by "
              "decile of predicted CTR (lowest first), mean over seeds; the slope is the "
              "least-squares change per decile:", ""]
    for run in runs:
        if run.columns == "auc" or "dt_bias_by_ctr_decile" not in results[run.name][seeds[0]]:
            continue
        bins, _ = decile_bias(results, run.name, seeds)
        slope = np.polyfit(np.arange(len(bins)), bins, 1)[0]
        lines.append(f"- {run.label}: slope {slope:+.3f} bins/decile; "
                     + " ".join(f"{b:+.2f}" for b in bins))
    return "\n".join(lines) + "\n"


PLOTTED = (("mmoe", "MMoE"), ("mmoe_orca", "MMoE + ORCA"), ("ple", "PLE"),
           ("ple_orca", "PLE + ORCA"))
# The authors' protocol (their bins: a figure of its own), drawn as fig4a-SETTING-authors.png.
PLOTTED_AUTHORS = (("mmoe_authors_prior", "MMoE"), ("mmoe_orca_authors_prior", "MMoE + ORCA"),
                   ("ple_authors_prior", "PLE"), ("ple_orca_authors_prior", "PLE + ORCA"))


def plot(out, setting, results, seeds, plotted=PLOTTED, suffix="", protocol="with selection"):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pairs = [(n, label) for n, label in plotted if n in results]
    if not pairs:
        return []
    paths = []
    backbones = [b for b in ("mmoe", "ple") if any(n.startswith(b) for n, _ in pairs)]
    fig, axes = plt.subplots(1, len(backbones), figsize=(6 * len(backbones), 3.8), sharey=True,
                             squeeze=False)
    axes = axes[0]
    for ax, backbone in zip(axes, backbones):
        names = [(n, label) for n, label in pairs if n.startswith(backbone)]
        if not names:
            continue
        _, _, true = collapse(results, names[0][0], seeds)
        bars = [("ground truth", true)]
        for name, label in names:
            served, raw, _ = collapse(results, name, seeds)
            if raw is not None:
                bars.append((f"{label}: raw head", raw))
                bars.append((f"{label}: debiased head", served))
            else:
                bars.append((label, served))
        width = 0.8 / len(bars)
        x = np.arange(len(true))
        for k, (label, shares) in enumerate(bars):
            ax.bar(x + (k - (len(bars) - 1) / 2) * width, shares, width, label=label,
                   color="0.6" if k == 0 else None)
        ax.set_xlabel("dwell-time bin")
        ax.set_xticks(x)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("share of clicked impressions")
    fig.suptitle(f"Fig. 4a ({setting}): predicted (argmax) vs true bin shares, "
                 f"{len(seeds)} seeds, {protocol}")
    fig.tight_layout()
    paths.append(os.path.join(out, f"fig4a-{setting}{suffix}.png"))
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    deciles = np.arange(1, 11)
    for name, label in pairs:
        bins, seconds = decile_bias(results, name, seeds)
        axes[0].plot(deciles, bins, marker="o", label=label)
        axes[1].plot(deciles, seconds, marker="o", label=label)
    for ax, unit in zip(axes, ("bins", "seconds")):
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_xlabel("decile of predicted CTR (1 = lowest)")
        ax.set_ylabel(f"mean predicted − true ({unit})")
        ax.set_xticks(deciles)
        ax.legend(fontsize=7)
    fig.suptitle(f"Fig. 4b/c ({setting}): DT error by predicted CTR, clicked impressions, "
                 f"{len(seeds)} seeds")
    fig.tight_layout()
    paths.append(os.path.join(out, f"fig4bc-{setting}{suffix}.png"))
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench_out/orca")
    parser.add_argument("--settings", default="legacy,entangled")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--runs", default=",".join(DEFAULT_RUNS),
                        help="comma-separated run names (RUNS)")
    parser.add_argument("--num_users", type=int, default=6000)
    parser.add_argument("--num_items", type=int, default=3000)
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--sim_seed", type=int, default=0, help="the simulator's seed (another "
                        "world of the same setting: where options are chosen before the table)")
    parser.add_argument("--project_args", default="",
                        help="more ranking.train flags for every run trained, space-separated "
                        "(e.g. --intra_op_threads=0, TensorFlow's threads, as every figure "
                        "before 2026-12-03)")
    add_logs_flags(parser)
    parser.add_argument("--post_click_features", default=None,
                        help="with --train (required): your logs' post-click features, "
                        "comma-separated (ORCA masks them; ranking.train's flag); the "
                        "simulator's are " + POST_CLICK.split("=")[1])
    args = parser.parse_args()
    check_logs_flags(parser, args, {name: parser.get_default(name) for name in (
        "settings", "num_users", "num_items", "days", "sim_seed")})
    if args.train is not None and args.post_click_features is None:
        parser.error("--post_click_features is required with --train: your logs' post-click "
                     "features, comma-separated (ORCA masks them)")
    if args.train is None and args.post_click_features is not None:
        parser.error("--post_click_features is for --train (the simulated worlds' are "
                     + POST_CLICK.split("=")[1] + ")")
    project_args = split_flags(parser, "project_args", args.project_args)
    stats_args = split_flags(parser, "stats_args", args.stats_args)
    seeds = seeds_of(parser, args.seeds)
    wanted = args.runs.split(",")
    by_name = {r.name: r for r in RUNS}
    unknown = [n for n in wanted if n not in by_name]
    if unknown:
        parser.error(f"--runs: unknown run(s) {', '.join(unknown)} (RUNS: {', '.join(by_name)})")
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    runs = [r for r in RUNS if r.name in wanted]
    # A gain needs its baseline: add the baselines not asked for.
    for run in list(runs):
        if run.baseline and by_name[run.baseline] not in runs:
            runs.insert(runs.index(run), by_name[run.baseline])
    sim_args = [f"--num_users={args.num_users}", f"--num_items={args.num_items}",
                f"--days={args.days}", f"--seed={args.sim_seed}"]
    if args.train is None:
        source = (f"--settings={args.settings} --num_users={args.num_users} "
                  f"--num_items={args.num_items} --days={args.days} --sim_seed={args.sim_seed}")
        names, post_click = args.settings.split(","), POST_CLICK
    else:
        source = " ".join(shlex.quote(f"--{name}={getattr(args, name)}") for name in (
            "train", "eval", "name", "post_click_features") + (
            ("stats_args",) if args.stats_args else ()))
        names = [args.name]
        post_click = f"--post_click_features={args.post_click_features}"
    command = (f".venv/bin/python benchmarks/orca_table.py --out={args.out} {source} "
               f"--seeds={args.seeds} --runs={args.runs}"
               + (f" --project_args={shlex.quote(args.project_args)}" if project_args else ""))
    sections, everything = [], {"command": command, "settings": {}}
    for setting in names:
        prepared = (prepare(out, setting, sim_args) if args.train is None else prepare_logs(
            out, setting, args.train, args.eval, stats_args))
        results, summary = run_all(out, setting, seeds, runs, prepared, project_args,
                                   post_click)
        rows = summarize(results, seeds, runs)
        sections.append(render(setting, rows, results, seeds, summary, runs))
        figures = plot(out, setting, results, seeds) + plot(
            out, setting, results, seeds, PLOTTED_AUTHORS, "-authors",
            "the authors' protocol with --output_bias=prior, their bins")
        gains = {r.name: dt_gain(results, r, seeds) for r in runs if r.baseline}
        everything["settings"][setting] = {"rows": rows, "gains": gains, "figures": figures,
                                           "simulation" if args.train is None else "logs":
                                           summary}
    markdown = "\n".join(sections) + f"\nCommand: `{command}`\n"
    with open(os.path.join(out, "orca_table.md"), "w") as handle:
        handle.write(markdown)
    with open(os.path.join(out, "orca_table.json"), "w") as handle:
        json.dump(everything, handle, indent=2)
    print(markdown)


if __name__ == "__main__":
    main()
