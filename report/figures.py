"""The report's pictures: the valid-read rules' shares and each model's training curves."""

from __future__ import annotations

import numpy as np


def rule_shares_figure(path: str, summary: dict) -> None:
    """Bar chart of the shares of T1/T2/T3 among valid reads, beside the paper's."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    shares = summary["rule_shares_of_valid_reads"]
    rules = ["T1", "T2", "T3"]
    x = np.arange(3)
    fig, ax = plt.subplots(figsize=(5, 3.4))
    ax.bar(x - 0.2, [100 * shares[r] for r in rules], 0.4, label="these logs")
    ax.bar(x + 0.2, [89.9, 2.9, 7.2], 0.4, label="the paper's system", color="0.6")
    ax.set_xticks(x)
    ax.set_xticklabels(["T1: dwell > x_l", "T2: light user", "T3: > item P10"])
    ax.set_ylabel("% of valid reads (first rule that holds)")
    ax.set_title(f"Valid reads: {100 * summary['valid_read_share_of_clicks']:.1f} % of clicks")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def training_curves(path: str, history: dict, name: str) -> None:
    """Training loss and the validation metric by step (history.json of `ranking.selection`),
    the selected step marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries, metric = history["validations"], history["metric"]
    steps = [e["step"] for e in entries]
    fig, left = plt.subplots(figsize=(6.4, 3.8))
    left.plot(steps, [e["train_loss"] for e in entries], "o-", color="#4c72b0", ms=3,
              label="training loss (mean since the last validation)")
    left.set_xlabel("global step")
    left.set_ylabel("training loss", color="#4c72b0")
    right = left.twinx()
    right.plot(steps, [e[metric] for e in entries], "s-", color="#c44e52", ms=3,
               label=f"validation {metric}")
    right.set_ylabel(f"validation {metric}", color="#c44e52")
    best = [e for e in entries if e.get("best")]
    if best:
        chosen = best[-1]
        right.axvline(chosen["step"], color="#55a868", ls="--", lw=1,
                      label="selected checkpoint")
        right.annotate(f"selected: step {chosen['step']}", (chosen["step"], chosen[metric]),
                       fontsize=8, xytext=(4, 6), textcoords="offset points")
    lines = left.get_lines() + right.get_lines()
    left.legend(lines, [line.get_label() for line in lines], fontsize=7, loc="best")
    left.set_title(f"{name}: training and validation")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
