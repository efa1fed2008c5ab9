"""The ORCA paper's Table 1 and Fig. 4 on the simulator, for every simulator setting asked.

    .venv/bin/python benchmarks/orca_table.py --out=bench_out/orca [--settings=legacy,entangled
        --seeds=0,1,2 --num_users=6000 --num_items=3000 --days=14 --runs=mmoe,mmoe_orca]

For each simulator setting (`pipelines.simulate --setting`): simulate (unless OUT/SETTING/sim
exists), compute the statistics of the training days (all but the last 3), train every run of
RUNS on them with each seed (one epoch, batch 2,048, raw logs labelled on the fly, post-click
features category, item_length, publish_age_hours) and evaluate on the last 3 days. Finished
runs (an eval_metrics.json) are reused, so an interrupted benchmark continues where it stopped.

Columns, over clicked evaluation impressions with the predicted bin = argmax of the served
dwell distribution: MAEclass, RMSEclass (bin index), weighted F1, macro precision and recall,
MAE and RMSE in seconds (predicted bin's median against the true dwell), and the CTR AUC of the
model's ctr tower over all impressions. Single-task models are trained once per task: their DT
columns come from the dwell_bins run, their AUC from the ctr run. Mean ± std over seeds.

Writes OUT/orca_table.md and .json, and per setting fig4a-<setting>.png (predicted against true
bin distribution of MMoE and MMoE+ORCA) and fig4bc-<setting>.png (mean predicted minus true
dwell, in bins and seconds, by decile of predicted CTR), and prints the tables.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import module  # noqa: E402

POST_CLICK = "--post_click_features=category,item_length,publish_age_hours"

# (row label, run name, preset, extra flags, which columns the run gives: dt, auc or both)
RUNS = [
    ("DeepFM", "deepfm_ctr", "deepfm", ["--single_task=ctr"], "auc"),
    ("DeepFM", "deepfm_dt", "deepfm", ["--single_task=dwell_bins"], "dt"),
    ("DCN-V2", "dcn_v2_ctr", "dcn_v2", ["--single_task=ctr"], "auc"),
    ("DCN-V2", "dcn_v2_dt", "dcn_v2", ["--single_task=dwell_bins"], "dt"),
    ("AutoInt", "autoint_ctr", "autoint", ["--single_task=ctr"], "auc"),
    ("AutoInt", "autoint_dt", "autoint", ["--single_task=dwell_bins"], "dt"),
    ("Shared bottom", "shared_bottom_dt", "shared_bottom_dt", [], "both"),
    ("ESMM", "esmm", "esmm", [], "both"),
    ("AITM", "aitm", "aitm", [], "both"),
    ("MMoE", "mmoe", "mmoe", [], "both"),
    ("MMoE + ORCA", "mmoe_orca", "mmoe_orca", [], "both"),
    ("PLE", "ple", "ple", [], "both"),
    ("PLE + ORCA", "ple_orca", "ple_orca", [], "both"),
    ("PLE + MetaBalance", "ple_mb", "ple", ["--metabalance"], "both"),
    ("PLE + MetaBalance + ORCA", "ple_orca_mb", "ple_orca", ["--metabalance"], "both"),
    # Ablations of ORCA on MMoE (the paper's Fig. 3 variants, in part).
    ("MMoE + ORCA, no instance weights", "mmoe_orca_noiw", "mmoe_orca",
     ["--instance_weights=false"], "both"),
    ("MMoE + ORCA, no masking", "mmoe_orca_nomask", "mmoe_orca", ["--mask_prob=0"], "both"),
]
DT_KEYS = ("dt_mae_class", "dt_rmse_class", "dt_weighted_f1", "dt_macro_precision",
           "dt_macro_recall", "dt_mae_seconds", "dt_rmse_seconds")
HEADERS = ("MAEclass ↓", "RMSEclass ↓", "F1 ↑", "Precision ↑", "Recall ↑", "MAE s ↓",
           "RMSE s ↓", "CTR AUC ↑")
ORCA_PAIRS = (("MMoE", "MMoE + ORCA"), ("PLE", "PLE + ORCA"),
              ("PLE + MetaBalance", "PLE + MetaBalance + ORCA"),
              ("MMoE", "MMoE + ORCA, no instance weights"), ("MMoE", "MMoE + ORCA, no masking"))


def prepare(out, setting, sim_args):
    """Simulates the setting's world and computes the stats of its training days."""
    sim = os.path.join(out, setting, "sim")
    if not os.path.exists(os.path.join(sim, "summary.json")):
        print(f"simulating {setting} into {sim}", flush=True)
        module("pipelines.simulate", f"--output_dir={sim}", f"--setting={setting}", *sim_args)
    with open(os.path.join(sim, "summary.json")) as handle:
        summary = json.load(handle)
    days = sorted(f for f in os.listdir(os.path.join(sim, "logs")))
    train = ",".join(os.path.join(sim, "logs", f) for f in days[:-3])
    evaluate = ",".join(os.path.join(sim, "logs", f) for f in days[-3:])
    stats = os.path.join(out, setting, "stats")
    if not os.path.exists(os.path.join(stats, "stats.json")):
        module("pipelines.stats", f"--input={train}", f"--output_dir={stats}")
    return train, evaluate, stats, summary


def run_all(out, setting, seeds, runs, batch_size, sim_args):
    train, evaluate, stats, summary = prepare(out, setting, sim_args)
    results = {}
    for seed in seeds:
        for _label, name, preset, extra, _columns in runs:
            model_dir = os.path.join(out, setting, "models", f"{name}-seed{seed}")
            metrics_path = os.path.join(model_dir, "eval_metrics.json")
            started = time.perf_counter()
            if not os.path.exists(metrics_path):
                module("ranking.train", f"--model={preset}", f"--train={train}",
                       f"--eval={evaluate}", f"--stats={stats}", f"--model_dir={model_dir}",
                       f"--seed={seed}", "--epochs=1", f"--batch_size={batch_size}",
                       "--progress=none", POST_CLICK, *extra)
            with open(metrics_path) as handle:
                metrics = json.load(handle)
            results.setdefault(name, {})[seed] = metrics
            auc = metrics.get("towers", {}).get("ctr", {}).get("auc_ctr", float("nan"))
            print(f"{setting} seed {seed} {name}: ctr AUC {auc:.4f} "
                  f"MAEclass {metrics.get('dt_mae_class', float('nan')):.3f} "
                  f"F1 {metrics.get('dt_weighted_f1', float('nan')):.3f} "
                  f"{metrics.get('train_examples_per_second', float('nan')):,.0f} ex/s "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)
    return results, summary


def _values(results, name, key, seeds):
    values = []
    for seed in seeds:
        metrics = results[name][seed]
        value = (metrics.get("towers", {}).get("ctr", {}).get("auc_ctr") if key == "auc"
                 else metrics.get(key))
        values.append(np.nan if value is None else value)
    return np.array(values, float)


def summarize(results, seeds, runs):
    """{row label: {column key: (mean, std)}} in RUNS order."""
    rows = {}
    for label, name, _, _, columns in runs:
        row = rows.setdefault(label, {})
        keys = (DT_KEYS if columns in ("dt", "both") else ()) + (
            ("auc",) if columns in ("auc", "both") else ())
        for key in keys:
            v = _values(results, name, key, seeds)
            row[key] = (float(np.mean(v)), float(np.std(v, ddof=1)) if len(v) > 1 else 0.0)
    return rows


def decile_bias(results, name, seeds):
    """Mean over seeds of the DT bias by CTR decile: (bins [10], seconds [10])."""
    bins, seconds = [], []
    for seed in seeds:
        deciles = results[name][seed]["dt_bias_by_ctr_decile"]
        bins.append([d["bias_bins"] for d in deciles])
        seconds.append([d["bias_seconds"] for d in deciles])
    return np.mean(bins, axis=0), np.mean(seconds, axis=0)


def render(setting, rows, results, seeds, summary):
    lines = [f"### Setting `{setting}`", "",
             f"{summary.get('rows', 0):,} impressions, CTR {100 * summary.get('ctr', 0):.1f} %.",
             "", "| model | " + " | ".join(HEADERS) + " |",
             "|---|" + "---|" * len(HEADERS)]
    for label, row in rows.items():
        cells = []
        for key in DT_KEYS + ("auc",):
            if key not in row:
                cells.append("–")
                continue
            mean, std = row[key]
            digits = 1 if key.endswith("seconds") else 4 if key == "auc" else 3
            cells.append(f"{mean:.{digits}f} ± {std:.{digits}f}")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", "DT gain of ORCA over its backbone (relative, mean over the seven DT metrics, "
              "sign so that better is positive), and CTR AUC change:", ""]
    for base, orca in ORCA_PAIRS:
        if base not in rows or orca not in rows:
            continue
        gains = []
        for key in DT_KEYS:
            b, o = rows[base][key][0], rows[orca][key][0]
            better_high = key in ("dt_weighted_f1", "dt_macro_precision", "dt_macro_recall")
            gains.append(((o - b) if better_high else (b - o)) / abs(b) * 100)
        lines.append(f"- {orca} vs {base}: DT {np.mean(gains):+.1f} % (per metric: "
                     + ", ".join(f"{g:+.1f}" for g in gains) + f"); CTR AUC "
                     f"{rows[orca]['auc'][0] - rows[base]['auc'][0]:+.4f}")
    lines += ["", "Over-reliance check: mean (predicted − true) bin of clicked impressions by "
              "decile of predicted CTR (lowest decile first), mean over seeds; the slope is "
              "the least-squares change per decile:", ""]
    for label, name in (("MMoE", "mmoe"), ("MMoE + ORCA", "mmoe_orca"), ("PLE", "ple"),
                        ("PLE + ORCA", "ple_orca"), ("Shared bottom", "shared_bottom_dt")):
        if name not in results:
            continue
        bins, _ = decile_bias(results, name, seeds)
        slope = np.polyfit(np.arange(len(bins)), bins, 1)[0]
        lines.append(f"- {label}: slope {slope:+.3f} bins/decile; "
                     + " ".join(f"{b:+.2f}" for b in bins))
    return "\n".join(lines) + "\n"


def plot(out, setting, results, seeds):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if "mmoe" not in results or "mmoe_orca" not in results:
        return []
    paths = []
    fig, ax = plt.subplots(figsize=(7, 3.6))
    true = np.mean([results["mmoe"][s]["dt_true_bin_distribution"] for s in seeds], axis=0)
    width = 0.27
    x = np.arange(len(true))
    ax.bar(x - width, true, width, label="ground truth", color="0.6")
    for offset, (name, label) in zip((0, width), (("mmoe", "MMoE"), ("mmoe_orca", "MMoE + ORCA"))):
        pred = np.mean([results[name][s]["dt_pred_bin_distribution"] for s in seeds], axis=0)
        ax.bar(x + offset, pred, width, label=label)
    ax.set_xlabel("dwell-time bin")
    ax.set_ylabel("share of clicked impressions")
    ax.set_title(f"Fig. 4a ({setting}): predicted vs true bin distribution, {len(seeds)} seeds")
    ax.set_xticks(x)
    ax.legend()
    fig.tight_layout()
    paths.append(os.path.join(out, f"fig4a-{setting}.png"))
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    deciles = np.arange(1, 11)
    for name, label in (("mmoe", "MMoE"), ("mmoe_orca", "MMoE + ORCA")):
        bins, seconds = decile_bias(results, name, seeds)
        axes[0].plot(deciles, bins, marker="o", label=label)
        axes[1].plot(deciles, seconds, marker="o", label=label)
    for ax, unit in zip(axes, ("bins", "seconds")):
        ax.axhline(0, color="0.5", lw=0.8)
        ax.set_xlabel("decile of predicted CTR (1 = lowest)")
        ax.set_ylabel(f"mean predicted − true ({unit})")
        ax.set_xticks(deciles)
        ax.legend()
    fig.suptitle(f"Fig. 4b/c ({setting}): DT error by predicted CTR, clicked impressions, "
                 f"{len(seeds)} seeds")
    fig.tight_layout()
    paths.append(os.path.join(out, f"fig4bc-{setting}.png"))
    fig.savefig(paths[-1], dpi=110)
    plt.close(fig)
    return paths


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench_out/orca")
    parser.add_argument("--settings", default="legacy,entangled")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--runs", default="", help="comma-separated run names (default all)")
    parser.add_argument("--batch_size", type=int, default=2048)
    parser.add_argument("--num_users", type=int, default=6000)
    parser.add_argument("--num_items", type=int, default=3000)
    parser.add_argument("--days", type=int, default=14)
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    seeds = [int(s) for s in args.seeds.split(",")]
    wanted = set(filter(None, args.runs.split(",")))
    runs = [r for r in RUNS if not wanted or r[1] in wanted]
    sim_args = [f"--num_users={args.num_users}", f"--num_items={args.num_items}",
                f"--days={args.days}"]
    command = (f".venv/bin/python benchmarks/orca_table.py --out={args.out} "
               f"--settings={args.settings} --seeds={args.seeds} --num_users={args.num_users} "
               f"--num_items={args.num_items} --days={args.days}"
               + (f" --runs={args.runs}" if args.runs else ""))
    sections, everything = [], {"command": command, "settings": {}}
    for setting in args.settings.split(","):
        results, summary = run_all(out, setting, seeds, runs, args.batch_size, sim_args)
        rows = summarize(results, seeds, runs)
        sections.append(render(setting, rows, results, seeds, summary))
        figures = plot(out, setting, results, seeds)
        everything["settings"][setting] = {"rows": rows, "figures": figures,
                                           "simulation": summary}
    markdown = "\n".join(sections) + f"\nCommand: `{command}`\n"
    with open(os.path.join(out, "orca_table.md"), "w") as handle:
        handle.write(markdown)
    with open(os.path.join(out, "orca_table.json"), "w") as handle:
        json.dump(everything, handle, indent=2)
    print(markdown)


if __name__ == "__main__":
    main()
