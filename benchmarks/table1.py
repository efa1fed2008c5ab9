"""The paper's Table 1 on the simulator: valid-read AUC and RelaImpr of the four presets.

    .venv/bin/python benchmarks/table1.py --out=bench_out/table1 [--setting=legacy
        --protocol=selection --seeds=0,1,2]

Simulates the default world of `--setting` (1M impressions, 14 days, simulator seed 0) unless
--sim exists, computes the statistics of its training days (all but the last 3: days 0-10 of
14), then trains every preset with each seed on them (raw logs, labels on the fly) and
evaluates on the last 3 (days 11-13). `vr_ndt` runs with both
negative weightings. `--protocol`: `one_epoch` (one epoch at --batch_size, as before model
selection) or `selection` (the last training day held out for validation, up to --max_epochs
epochs with early stopping on each preset's default metric, then the refit pass over it:
`ranking.selection`). RelaImpr is against `single_ctr` of the same seed. Writes
`table1-<setting>-<protocol>.md` and `.json` into --out and prints the table; each run's model
directory stays under OUT/SETTING/PROTOCOL/models.

On your own logs instead: `--train=GLOBS --eval=GLOBS [--name=mine --stats_args=...]` (globs as
ranking.train's; with `selection` the training logs' last UTC day is the validation window):
their statistics and models under OUT/NAME, the table as `table1-<name>-<protocol>`.

`--project_args` adds ranking.train flags to every run it trains.
Finished runs are reused, unless trained with other ranking.train flags (kept beside each run,
benchmark_args.json) or, on your logs, the input files changed under the same globs
(OUT/NAME/inputs.json): those are refused. The jobs' `warning:` and `note:` lines are passed on
to stderr (each once, tagged with the run).
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from ranking.metrics import metric_text, rel_impr  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
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
    simulated_days,
    split_flags,
    stats_of,
    train_model,
)

RUNS = [("single_ctr", "single_ctr", []), ("ctr_logdt", "ctr_logdt", []),
        ("vr_logdt", "vr_logdt", []),
        ("vr_ndt", "vr_ndt (negatives weigh 1)", ["--negative_weighting=unit"]),
        ("vr_ndt", "vr_ndt (negatives weigh NDT, Eq. 3 literally)", ["--negative_weighting=ndt"])]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench_out/table1")
    parser.add_argument("--sim", default=None, help="existing simulation (default: OUT/sim)")
    parser.add_argument("--setting", default="legacy", help="simulator setting")
    parser.add_argument("--protocol", choices=("one_epoch", "selection"), default="selection")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--epochs", type=int, default=1, help="one_epoch: epochs")
    parser.add_argument("--max_epochs", type=int, default=10, help="selection: most epochs")
    parser.add_argument("--batch_size", type=int, default=2048)
    parser.add_argument("--project_args", default="",
                        help="more ranking.train flags for every run trained, space-separated "
                        "(e.g. --allow_unclicked_dwell, with --stats_args giving it too)")
    add_logs_flags(parser)
    args = parser.parse_args()
    check_logs_flags(parser, args, {name: parser.get_default(name) for name in ("setting", "sim")})
    stats_args = split_flags(parser, "stats_args", args.stats_args)
    project_args = split_flags(parser, "project_args", args.project_args)
    seeds = seeds_of(parser, args.seeds)
    if args.epochs < 1 or args.max_epochs < 1 or args.batch_size < 1:
        parser.error("--epochs, --max_epochs and --batch_size are at least 1")
    out = os.path.abspath(args.out)
    if args.train is None:
        name = args.setting
        world = os.path.join(out, name)
        sim = os.path.abspath(args.sim or os.path.join(world, "sim"))
        os.makedirs(world, exist_ok=True)
        if not os.path.exists(os.path.join(sim, "summary.json")):
            print(f"simulating into {sim}", flush=True)
            module("pipelines.simulate", f"--output_dir={sim}", f"--setting={args.setting}")
        train, evaluate = simulated_days(sim, 3, 2 if args.protocol == "selection" else 1)
        source = f"--setting={args.setting}"
    else:
        name, train, evaluate = args.name, args.train, args.eval
        world = os.path.join(out, name)
        source = " ".join(shlex.quote(f"--{flag}={getattr(args, flag)}") for flag in (
            "train", "eval", "name") + (("stats_args",) if args.stats_args else ()))
    protocol = ([f"--epochs={args.epochs}"] if args.protocol == "one_epoch" else
                ["--validation_days=1", f"--max_epochs={args.max_epochs}"])
    stats = os.path.join(world, "stats")
    if args.train is not None:
        check_inputs_unchanged(world, {"train": train, "eval": evaluate},
                               made=os.path.exists(os.path.join(stats, "stats.json")))
    train_stats = stats_of(train, stats, *stats_args)
    results = {}
    for seed in seeds:
        for preset, label, extra in RUNS:
            model_dir = os.path.join(world, args.protocol, "models", f"{label.split(' (')[0]}"
                                     f"{'-' + extra[0].split('=')[1] if extra else ''}-seed{seed}")
            started = time.perf_counter()
            reused = os.path.exists(os.path.join(model_dir, "eval_metrics.json"))
            train_args = [f"--model={preset}", f"--train={train}", f"--eval={evaluate}",
                          f"--stats={stats}", f"--model_dir={model_dir}", f"--seed={seed}",
                          f"--batch_size={args.batch_size}", "--progress=none", *protocol,
                          *extra, *project_args]
            if reused:
                check_reused_args(model_dir, train_args)
            else:
                train_model(model_dir, train_args, f"seed {seed} {label}")
            with open(os.path.join(model_dir, "eval_metrics.json")) as handle:
                metrics = json.load(handle)
            if reused:
                check_reused_eval(model_dir, metrics, evaluate)
            results.setdefault(label, {})[seed] = metrics
            print(f"seed {seed} {label}: auc_valid_read "
                  f"{metric_text(metrics['auc_valid_read'], 4)} "
                  f"auc_ctr {metric_text(metrics['auc_ctr'], 4)} "
                  f"{'selected step' if args.protocol == 'selection' else 'steps'} "
                  f"{metrics.get('selected_step', metrics['global_step'])} "
                  + ("(reused)" if reused else f"({time.perf_counter() - started:.0f} s)"),
                  flush=True)
    table = summarize(results, seeds)
    command = (f".venv/bin/python benchmarks/table1.py --out={args.out} "
               f"{source} --protocol={args.protocol} --seeds={args.seeds} "
               + (f"--epochs={args.epochs}" if args.protocol == "one_epoch"
                  else f"--max_epochs={args.max_epochs}")
               + f" --batch_size={args.batch_size}"
               + (f" --project_args={shlex.quote(args.project_args)}" if project_args else ""))
    if args.train is None:
        described = f"The simulator's `{args.setting}` world ({sim})"
    else:
        logs = logs_summary(train_stats, train, evaluate)
        described = (f"Logs `{name}`: training `{train}` ({logs['rows']:,} impressions, CTR "
                     f"{100 * logs['ctr']:.1f} %), evaluation `{evaluate}`")
    markdown = (f"### Table 1 on {name}, protocol `{args.protocol}`\n\n{described}.\n\n"
                + render(table, command, len(seeds), args.protocol))
    table_name = f"table1-{name}-{args.protocol}"
    with open(os.path.join(out, table_name + ".md"), "w") as handle:
        handle.write(markdown)
    with open(os.path.join(out, table_name + ".json"), "w") as handle:
        json.dump({"command": command, "rows": table}, handle, indent=2)
    print(markdown)


def summarize(results, seeds):
    base = results["single_ctr"]
    rows = []
    for label, by_seed in results.items():
        # float: an undefined AUC (None in eval_metrics.json) is NaN here.
        auc = np.array([by_seed[s]["auc_valid_read"] for s in seeds], float)
        auc_ctr = np.array([by_seed[s]["auc_ctr"] for s in seeds], float)
        rel = np.array([rel_impr(by_seed[s]["auc_valid_read"], base[s]["auc_valid_read"])
                        for s in seeds])
        speed = np.array([by_seed[s].get("train_examples_per_second", np.nan) for s in seeds])
        steps = np.array([by_seed[s].get("selected_step", by_seed[s]["global_step"])
                          for s in seeds])
        std = (lambda x: float(np.std(x, ddof=1)) if len(x) > 1 else 0.0)  # noqa: E731
        rows.append({"model": label, "auc_valid_read_mean": float(auc.mean()),
                     "auc_valid_read_std": std(auc), "rel_impr_mean": float(rel.mean()),
                     "rel_impr_std": std(rel), "auc_ctr_mean": float(auc_ctr.mean()),
                     "auc_ctr_std": std(auc_ctr),
                     "examples_per_second": float(np.nanmean(speed)),
                     "served_step_mean": float(steps.mean()),
                     "per_seed_auc_valid_read": auc.tolist()})
    return rows


def render(rows, command, seeds, protocol="selection"):
    spread = f"mean ± std, {seeds} seeds" if seeds > 1 else "1 seed"
    steps = "selected step" if protocol == "selection" else "steps"
    lines = [f"| model | valid-read AUC ({spread}) | RelaImpr vs single_ctr | "
             f"click AUC | {steps} | per seed |", "|---|---|---|---|---|---|"]
    for r in rows:
        # (undefined where the base AUC is at or below 0.5, or a seed's AUC is undefined)
        rel = metric_text(r["rel_impr_mean"], 2, "+", "%") + (
            f" ± {r['rel_impr_std']:.2f}" if seeds > 1 and r["rel_impr_mean"] == r["rel_impr_mean"]
            else "")
        lines.append(f"| {r['model']} | "
                     f"{mean_and_spread(r['auc_valid_read_mean'], r['auc_valid_read_std'], seeds, 4)}"
                     f" | {rel} | "
                     f"{mean_and_spread(r['auc_ctr_mean'], r['auc_ctr_std'], seeds, 4)}"
                     f" | {r['served_step_mean']:.0f} | "
                     + " ".join(metric_text(a, 4) for a in r["per_seed_auc_valid_read"]) + " |")
    return "\n".join(lines) + f"\n\nCommand: `{command}`\n"


if __name__ == "__main__":
    main()
