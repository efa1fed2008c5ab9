"""The ORCA table's figures (`orca_table.py`): per-run summaries over seeds, the mean DT gain
over a backbone (`ranking.metrics.dt_gains`), the collapse onto the extreme bins (the paper's
Fig. 1 and 4a), the error by CTR decile (Fig. 4b/c), the Markdown section of a setting and its
pictures.
"""

from __future__ import annotations

import os

import numpy as np

from ranking.metrics import DT_CLASS_METRICS, DT_SECONDS_METRICS, dt_gains

from common import mean_and_spread

CLASS_KEYS = tuple(DT_CLASS_METRICS)
DT_KEYS = CLASS_KEYS + tuple(DT_SECONDS_METRICS)
HEADERS = ("MAEclass ↓", "RMSEclass ↓", "F1 ↑", "Precision ↑", "Recall ↑", "MAE s ↓",
           "RMSE s ↓", "CTR AUC ↑", "epochs")


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
    masked = summary.get("post_click") or {}  # {run label: the features ORCA masks}
    if len({tuple(names) for names in masked.values()}) == 1:
        described += ("; post-click features (ORCA masks them) "
                      + ", ".join(next(iter(masked.values()))))
    elif masked:
        described += "; post-click features (ORCA masks them): " + "; ".join(
            f"{label} {', '.join(names)}" for label, names in masked.items())
    notes = [f"- {note}" for note in summary.get("held_out_notes") or ()]
    if notes:  # the evaluation logs hold rows the models trained or were selected on
        notes = ["**The runs' notes on the evaluation logs** (rows the models trained or were "
                 "selected on, or the statistics learned the labels' thresholds from):", "",
                 *notes, ""]
    if summary.get("runs_without_notes"):
        notes += [f"({summary['runs_without_notes']} of the runs were trained before their "
                  "notes were kept: what they noted of the evaluation logs is not known here.)",
                  ""]
    lines = [title, "", f"{described}; " + ("1 seed." if len(seeds) == 1 else
                                            f"{len(seeds)} seeds (mean ± std)."), "", *notes,
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
