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
The jobs' `warning:` and `note:` lines are passed on to stderr (each once, tagged with the run)
and kept beside each run (benchmark_notes.json); the runs' notes on their --eval logs (rows of
the training days, files shared with --train, its validation window or the stats artifact's
logs) head the section, so a table measured on rows its models learned from says so. The
section names the features ORCA masks (--post_click_features with a --feature_config's own
marks, as training marks them).

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
from orca_render import (  # noqa: E402
    PLOTTED_AUTHORS,
    ctr_auc,
    dt_gain,
    epochs_of,
    moderate_share,
    plot,
    render,
    summarize,
)

from common import (  # noqa: E402
    REPO,
    add_logs_flags,
    check_inputs_unchanged,
    check_logs_flags,
    check_reused_args,
    check_reused_eval,
    held_out_notes,
    logs_summary,
    module,
    seeds_of,
    simulated_days,
    split_flags,
    stats_of,
    train_model,
)
from orca_runs import AUTHORS_STATS, DEFAULT_RUNS, POST_CLICK, RUNS  # noqa: E402


def prepare(out, setting, sim_args):
    """Simulates the setting's world and computes the stats of its training days: (train glob,
    eval glob, {bins: stats directory}, simulation summary)."""
    sim = os.path.join(out, setting, "sim")
    if not os.path.exists(os.path.join(sim, "summary.json")):
        print(f"simulating {setting} into {sim}", flush=True)
        module("pipelines.simulate", f"--output_dir={sim}", f"--setting={setting}", *sim_args)
    with open(os.path.join(sim, "summary.json")) as handle:
        summary = json.load(handle)
    train, evaluate = simulated_days(sim, 3, train_days=2)  # selection holds one out
    return train, evaluate, both_stats(out, setting, train)[0], summary


def prepare_logs(out, name, train, evaluate, stats_args=(), post_click=""):
    """The same for a user's logs (`--train`, `--eval`): their two stats artifacts and a
    summary of the training logs (`common.logs_summary`); `post_click`, the
    --post_click_features names, checked against the logs' columns before the second."""
    check_inputs_unchanged(os.path.join(out, name), {"train": train, "eval": evaluate},
                           made=os.path.exists(os.path.join(out, name, "stats", "stats.json")))
    stats, project_stats = both_stats(out, name, train, stats_args, post_click)
    return train, evaluate, stats, logs_summary(project_stats, train, evaluate)


def both_stats(out, name, train, stats_args=(), post_click=""):
    """({bins: stats directory} of the training logs: this project's bins and the authors'
    (configs/orca_authors_stats.flags), each computed once (`common.stats_of`); the project
    bins' stats.json). `post_click` (comma-separated names) must be columns of the logs: a
    misspelt name is refused once the first artifact says what the columns are, not after
    both and the first training."""
    stats, project_stats = {}, None
    for bins, extra in (("project", []), ("authors", AUTHORS_STATS)):
        stats[bins] = os.path.join(out, name, "stats" if bins == "project" else "stats_authors")
        made = stats_of(train, stats[bins], *stats_args, *extra)
        project_stats = project_stats or made
        columns = made.get("schema", {}).get("dtypes", {})
        absent = [n for n in post_click.split(",") if n and columns and n not in columns]
        if absent:
            sys.exit(f"error: --post_click_features names {', '.join(absent)}, not a column of "
                     f"{train} (columns: {', '.join(columns)})")
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


def post_click_names(flag: str, feature_config: str | None) -> list[str]:
    """The features a run masks as post-click, sorted, as training marks them
    (`ranking.features`): the --post_click_features names (`flag`, comma-separated) with a
    feature config's own `post_click` marks over them, less the features it excludes."""
    from core.errors import InputError
    from ranking.features import load_feature_config

    if feature_config and not os.path.isabs(feature_config) and "://" not in feature_config:
        feature_config = os.path.join(REPO, feature_config)  # as the runs read it (their cwd)
    try:
        options = load_feature_config(feature_config).get("features", {})
    except InputError as error:
        sys.exit(f"error: orca_table: {error}")
    names = {n for n in flag.split(",") if n}
    for name, option in options.items():
        if not isinstance(option, dict):
            continue  # training refuses such a config before it trains
        if option.get("exclude") or not option.get("post_click", name in names):
            names.discard(name)
        else:
            names.add(name)
    return sorted(names)


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
    asked = _asked_config(run, project_args)
    wanted = post_click_names(post_click.split("=", 1)[1], asked.feature_config)
    if trained_post_click != wanted:
        sys.exit(f"error: {model_dir} was trained with post-click features "
                 f"{','.join(trained_post_click) or 'none'}, not {','.join(wanted)}: give the "
                 "table a new --out (or remove the run) to train it again")
    selection = training.get("selection", {})
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
            out, setting, args.train, args.eval, stats_args, args.post_click_features))
        results, summary = run_all(out, setting, seeds, runs, prepared, project_args,
                                   post_click)
        masked = {run.label: post_click_names(post_click.split("=", 1)[1],
                                              _asked_config(run, project_args).feature_config)
                  for run in runs}
        notes, unknown = held_out_notes([
            os.path.join(out, setting, "models", f"{run.name}-seed{seed}")
            for run in runs for seed in seeds])
        summary = dict(summary, post_click=masked, held_out_notes=notes,
                       runs_without_notes=unknown)
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
