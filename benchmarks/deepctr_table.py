"""The click-AUC table of several `bench_deepctr.py` runs: mean ± sd over seeds, per setting,
protocol and model, this project beside DeepCTR's PLE on the same logs.

    .venv/bin/python benchmarks/deepctr_table.py bench_out/deepctr_*/bench_deepctr.json

Each file is one run of `benchmarks/bench_deepctr.py` (one seed, one model of this project,
DeepCTR's PLE beside it). Rows are grouped by (logs, protocol, model, the project's
optimizer): the logs are the run's `--sim` directory (or its --train glob); the protocol is
"selection" when the run held out validation days (`--validation_days`: early stopping on both
sides; the project's run then reports its selected step) and "one epoch" otherwise; the
optimizer, its rate and the embeddings' initial distribution come from the project's model
directory (runs with `--project_args` that change them form their own rows).
Printed per group: the seeds, this project's click AUC (the click tower's; for a multi-task
preset the served score's too), DeepCTR's, the difference (project − DeepCTR, mean ± sd over
seeds, each seed's difference taken within its own run), and the mean whole-process wall times.
Wall times are only comparable within one run (both sides run one after the other); the AUCs
do not depend on what else the machine ran.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys


def _optimizer(run: dict) -> str:
    """The project's optimizer, rate and embedding start, from its model directory's
    config.json (runs made with other --project_args than the defaults differ here)."""
    try:
        with open(os.path.join(run["project"]["model_dir"], "config.json")) as handle:
            config = json.load(handle)
    except (OSError, ValueError, KeyError):
        return "?"
    optimizer = config["training"]["optimizer"]
    std = config["model"].get("embedding_init_std")
    start = f"N(0, {std:g}²)" if std else "uniform ±0.05"
    return f"{optimizer['optimizer']} {optimizer['learning_rate']:g}, {start}"


def _group(run: dict) -> tuple[str, str, str, str]:
    logs = run.get("sim") or run.get("train", "")
    # A run with a validation window reports the step its early stopping selected.
    protocol = "one epoch" if run["project"].get("selected_step") is None else "selection"
    model = run["project"]["model"].replace("dwellrank ", "")
    return logs, protocol, model, _optimizer(run)


def _short(logs: str) -> str:
    """The last two parts of a simulation's path (`entangled/sim`), or the glob as given."""
    parts = logs.rstrip("/").split("/")
    return "/".join(parts[-2:]) if "*" not in logs else logs


def _mean_sd(values) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def table(runs: list[dict]) -> str:
    """Markdown table of the runs' click AUCs, one row per (logs, protocol, model)."""
    groups: dict = {}
    for run in runs:
        groups.setdefault(_group(run), []).append(run)
    lines = ["| logs | protocol | model | project's optimizer | seeds | project click AUC (click "
             "tower) | served score | DeepCTR PLE | project − DeepCTR | wall s, project / "
             "DeepCTR |", "|---|---|---|---|---|---|---|---|---|---|"]
    for (logs, protocol, model, optimizer), group in sorted(groups.items()):
        group.sort(key=lambda r: r["seed"])
        tower = [r["project"].get("auc_ctr_ctr_tower", r["project"]["auc_ctr"]) for r in group]
        served = [r["project"]["auc_ctr"] for r in group]
        peer = [r["deepctr"]["auc_ctr"] for r in group]
        gap = [t - p for t, p in zip(tower, peer)]
        walls = (statistics.mean(r["project"]["wall_seconds"] for r in group),
                 statistics.mean(r["deepctr"]["wall_seconds"] for r in group))
        lines.append(
            f"| {_short(logs)} | {protocol} | {model} | {optimizer} | "
            f"{','.join(str(r['seed']) for r in group)} | {_mean_sd(tower)} | "
            f"{_mean_sd(served) if served != tower else '='} | {_mean_sd(peer)} | "
            f"{_mean_sd(gap)} | {walls[0]:.0f} / {walls[1]:.0f} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("results", nargs="+", help="bench_deepctr.json files")
    args = parser.parse_args(argv)
    runs = []
    for path in args.results:
        try:
            with open(path) as handle:
                run = json.load(handle)
            # What the table reads, read once here: a file of another shape is one line.
            _ = (_group(run), run["seed"], run["deepctr"]["auc_ctr"],
                 run["deepctr"]["wall_seconds"], run["project"]["wall_seconds"])
        except (OSError, ValueError) as error:
            print(f"error: {path}: {error}", file=sys.stderr)
            return 1
        except (KeyError, TypeError) as error:
            print(f"error: {path}: not a bench_deepctr.json (no {error})", file=sys.stderr)
            return 1
        runs.append(run)
    print(table(runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
