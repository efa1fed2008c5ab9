"""This project's `ple` against DeepCTR's PLE on the same logs: wall time, examples/s, CTR AUC.

    .venv/bin/python benchmarks/bench_deepctr.py [--out=bench_out/deepctr --model=ple]
    .venv/bin/python benchmarks/bench_deepctr.py --train='logs/day-0*.csv.gz' \\
        --eval='logs/day-1*.csv.gz' --out=bench_out/deepctr_real      # any logs of SPEC §2 (CSV)
    .venv/bin/python benchmarks/bench_deepctr.py --out=bench_out/deepctr_small --model=single_ctr \\
        --sim_args='--num_users=2000 --num_items=1000 --days=6' --eval_days=2

The peer is DeepCTR 0.9.4 (`deepctr.models.PLE`), the library a user would pick instead. It is
installed only for this benchmark, never in the project's requirements:
`pip install --no-deps --target DIR deepctr==0.9.4` with the venv's pip (DIR is --deepctr_dir,
default bench_out/peers/deepctr, reused when it holds 0.9.4), and it runs in a child process
with that directory on PYTHONPATH and TF_USE_LEGACY_KERAS=1 (TF 2.16 + tf_keras 2.16).

Data: `--train`/`--eval` (comma-separated globs of CSV logs, plain or gzip, SPEC §2), or a
simulation (`--sim`, default OUT/sim, made with `python -m pipelines.simulate` and
`--sim_args` unless it exists): the last `--eval_days` day files are the evaluation logs, the
rest the training logs (default world: days 0-10 and 11-13, as benchmarks/table1.py).

Each side is timed as one whole process: load, train `--epochs` epochs at `--batch_size`,
evaluate. With `--validation_days=N` both sides follow the selection protocol on the same
split: the last N UTC days of the training logs are held out, each side trains up to
`--epochs` epochs with early stopping (patience `--patience`) and is evaluated with its best
weights: the project by its own `--validation_days --max_epochs --patience` (its default
early-stopping metric for the preset), DeepCTR by Keras' `fit(validation_data=...)` with
`EarlyStopping(monitor="val_loss", patience, restore_best_weights=True)` (val_loss: the sum of
its two tasks' validation losses). With `--refit=validation` (the default, as the project's)
both sides then train the selected weights one more pass over the held-out days (DeepCTR: one
`fit` epoch on them; its AUC before that pass is reported too).

- Project: `python -m ranking.train --model=MODEL --batch_size --epochs --seed --progress=epoch`
  (+ `--project_args`) in a fresh model directory. It needs the stats artifact of the training
  logs (`python -m pipelines.stats`), a preprocessing job timed on its own and reported beside
  the training process (and added to it in the second ratio); the same job with
  `--engine=local` (no Beam, the same artifact) is timed before it (so the default runs with
  the warmer page cache) and gives a third ratio (the project trains on the default engine's
  artifact). Its figures come from
  eval_metrics.json: `auc_ctr` (the AUC of the served score against click; for `ple` the
  score is ctr + expected NDT, so the ctr tower's own AUC, `towers.ctr.auc_ctr`, is printed
  too, and it is the one the goal's "at a click AUC at least as high" compares with DeepCTR's
  ctr output: like for like) and `train_examples_per_second` (after the first step).
- DeepCTR: `benchmarks/deepctr_ple.py`, one whole process (its docstring: the features,
  the tasks, DeepCTR's PLE defaults kept, and the two changes made in that process).

Output: a table (model, wall time s, steady examples/s, CTR AUC), the wall-time ratios, and
OUT/bench_deepctr.json; the runs' directories stay under --out.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

from common import simulated_days  # this file's folder is on sys.path
from deepctr_ple import AUTOGRAPH, RESULT_TAG

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEEPCTR_VERSION = "0.9.4"


# ---------------------------------------------------------------------------------------------
# Data, stats, the two timed processes, the table (DeepCTR's side: deepctr_ple.py).

def module(name, *args, env=None):
    """Runs `python -m name args` from the repository (table1.py's helper); returns stdout and
    the whole process's wall time."""
    env = env or dict(os.environ, PYTHONPATH=REPO)
    started = time.perf_counter()
    completed = subprocess.run([sys.executable, "-m", name, *args], cwd=REPO, env=env,
                               capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if completed.returncode:
        sys.exit(f"{name} failed:\n{completed.stderr[-3000:]}")
    return completed.stdout, seconds


def ensure_deepctr(target):
    """deepctr==0.9.4 in `target` (pip --no-deps --target with the venv's pip), reused when
    present."""
    init = os.path.join(target, "deepctr", "__init__.py")
    if os.path.exists(init):
        with open(init) as handle:
            if f"__version__ = '{DEEPCTR_VERSION}'" in handle.read():
                return
        sys.exit(f"{target} holds another deepctr version; remove it or pass --deepctr_dir")
    tmp = target + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"installing deepctr=={DEEPCTR_VERSION} into {target}", flush=True)
    completed = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps",
                                "--disable-pip-version-check", "--target", tmp,
                                f"deepctr=={DEEPCTR_VERSION}"], capture_output=True, text=True)
    if completed.returncode:
        sys.exit(f"pip install deepctr=={DEEPCTR_VERSION} failed:\n{completed.stderr[-3000:]}")
    os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)


def _load(path):
    with open(path) as handle:
        return json.load(handle)


def simulated_logs(args, out):
    """(train glob, eval glob, sim dir) of a simulation, made when absent."""
    sim = os.path.abspath(args.sim or os.path.join(out, "sim"))
    sim_args = shlex.split(args.sim_args)
    marker = os.path.join(out, "sim.args.json")  # which arguments made OUT/sim
    made_here = args.sim is None
    stale = made_here and (not os.path.exists(marker) or _load(marker) != sim_args)
    if stale or not os.path.exists(os.path.join(sim, "summary.json")):
        print(f"simulating into {sim} {' '.join(sim_args)}", flush=True)
        _, seconds = module("pipelines.simulate", f"--output_dir={sim}", *sim_args)
        print(f"  {seconds:.1f} s", flush=True)
        if made_here:
            with open(marker, "w") as handle:
                json.dump(sim_args, handle)
    if not glob.glob(os.path.join(sim, "logs", "day-*.csv.gz")):
        sys.exit(f"{sim}/logs has no CSV day files (a TFRecord simulation cannot be read by the "
                 "DeepCTR side)")
    train, evaluate = simulated_days(sim, args.eval_days)  # in day order, by number
    return train, evaluate, sim


def run_project(args, out, train, evaluate, stats):
    model_dir = os.path.join(out, "models", f"{args.model}-seed{args.seed}")
    shutil.rmtree(model_dir, ignore_errors=True)  # a finished model directory would resume
    protocol = ([f"--validation_days={args.validation_days}", f"--max_epochs={args.epochs}",
                 f"--patience={args.patience}", f"--refit={args.refit}"]
                if args.validation_days else [])
    stdout, seconds = module(
        "ranking.train", f"--model={args.model}", f"--train={train}", f"--eval={evaluate}",
        f"--stats={stats}", f"--model_dir={model_dir}", f"--batch_size={args.batch_size}",
        f"--epochs={args.epochs}", f"--seed={args.seed}", "--progress=epoch", *protocol,
        *shlex.split(args.project_args), env=child_env(REPO))
    with open(os.path.join(model_dir, "eval_metrics.json")) as handle:
        metrics = json.load(handle)
    with open(os.path.join(model_dir, "config.json")) as handle:
        config = json.load(handle)
    features = _project_features(config)
    ctr_tower = (metrics.get("towers") or {}).get("ctr", {}).get("auc_ctr")
    return {"model": f"dwellrank {args.model}", "wall_seconds": seconds,
            "steady_examples_per_second": metrics.get("train_examples_per_second"),
            "auc_ctr": metrics["auc_ctr"], "auc_ctr_ctr_tower": ctr_tower,
            "auc_valid_read": metrics.get("auc_valid_read"),
            "training_seconds": metrics.get("training_seconds_this_run"),
            "global_step": metrics.get("global_step"),
            "selected_step": metrics.get("selected_step"), "features": features,
            "model_dir": model_dir, "stdout": stdout.strip().splitlines()}


def _project_features(config):
    """{name: kind} from a model directory's config.json (wherever it keeps the spec)."""
    def find(node):
        if isinstance(node, list) and node and all(isinstance(f, dict) and "name" in f
                                                   and "kind" in f for f in node):
            return node
        children = node.values() if isinstance(node, dict) else (
            node if isinstance(node, list) else [])
        for child in children:
            found = find(child)
            if found:
                return found
        return None
    spec = find(config) or []
    return {f["name"]: f["kind"] for f in spec}


def run_deepctr(args, out, train, evaluate):
    result_path = os.path.join(out, "deepctr_result.json")
    if os.path.exists(result_path):
        os.remove(result_path)
    command = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                               "deepctr_ple.py"), f"--train={train}",
               f"--eval={evaluate}", f"--batch_size={args.batch_size}",
               f"--epochs={args.epochs}", f"--seed={args.seed}", f"--result={result_path}",
               f"--autograph={args.deepctr_autograph}",
               f"--validation_days={args.validation_days}", f"--patience={args.patience}",
               f"--refit={args.refit}"]
    started = time.perf_counter()
    completed = subprocess.run(command, cwd=REPO, env=child_env(args.deepctr_dir),
                               capture_output=True, text=True)
    seconds = time.perf_counter() - started
    if completed.returncode:
        sys.exit(f"DeepCTR child failed:\n{completed.stderr[-4000:]}")
    with open(result_path) as handle:
        result = json.load(handle)
    # (an evaluation before the refit pass, reported as auc_ctr_before_refit, is the peer's
    # diagnostic alone: left out of the time compared)
    result["wall_seconds"] = seconds - result.get("diagnostic_seconds", 0.0)
    result["stdout"] = [line for line in completed.stdout.strip().splitlines()
                        if not line.startswith(RESULT_TAG)]
    return result


def child_env(pythonpath):
    """The same environment for both timed processes but PYTHONPATH."""
    return dict(os.environ, PYTHONPATH=pythonpath, TF_USE_LEGACY_KERAS="1",
                TF_CPP_MIN_LOG_LEVEL=os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2"))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench_out/deepctr")
    parser.add_argument("--sim", default=None, help="a simulation (default: OUT/sim)")
    parser.add_argument("--sim_args", default="", help="flags for pipelines.simulate")
    parser.add_argument("--eval_days", type=int, default=3,
                        help="last day files of a simulation evaluated on")
    parser.add_argument("--train", default=None, help="comma-separated globs of CSV logs")
    parser.add_argument("--eval", default=None, help="comma-separated globs of CSV logs")
    parser.add_argument("--model", default="ple", help="this project's preset")
    parser.add_argument("--project_args", default="", help="more ranking.train flags")
    parser.add_argument("--batch_size", type=int, default=2048)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--validation_days", type=int, default=0,
                        help="hold out the last N days of the training logs: early stopping "
                        "on both sides (module docstring)")
    parser.add_argument("--patience", type=int, default=2)
    parser.add_argument("--refit", choices=("validation", "none"), default="validation",
                        help="with --validation_days: after early stopping, one pass over the "
                        "held-out days from the best weights, on both sides (validation), or "
                        "the best weights as selected (none)")
    parser.add_argument("--deepctr_dir", default="bench_out/peers/deepctr")
    parser.add_argument("--deepctr_autograph", choices=AUTOGRAPH, default="skip_tf_keras",
                        help="skip_tf_keras: autograph leaves tf_keras' internals alone, as it "
                        "does keras' (DeepCTR's best case); stock: TF 2.16 as installed")
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    args.deepctr_dir = os.path.abspath(args.deepctr_dir)
    os.makedirs(out, exist_ok=True)
    ensure_deepctr(args.deepctr_dir)

    if (args.train is None) != (args.eval is None):
        sys.exit("give both --train and --eval, or neither (then a simulation is used)")
    if args.train is not None:
        train, evaluate, sim = args.train, args.eval, None
    else:
        train, evaluate, sim = simulated_logs(args, out)

    # The job on its local engine (no Beam; the same artifact) first, then on the default
    # engine, whose artifact the project trains on: the second run finds the logs and
    # TensorFlow's libraries in the page cache, an advantage for the default, not the local.
    stats_local = os.path.join(out, "stats_local")
    shutil.rmtree(stats_local, ignore_errors=True)
    _, stats_seconds_local = module("pipelines.stats", f"--input={train}",
                                    f"--output_dir={stats_local}", "--engine=local",
                                    env=child_env(REPO))
    stats = os.path.join(out, "stats")
    shutil.rmtree(stats, ignore_errors=True)
    _, stats_seconds = module("pipelines.stats", f"--input={train}", f"--output_dir={stats}",
                              env=child_env(REPO))
    print(f"pipelines.stats on the training logs: {stats_seconds:.1f} s (whole process; "
          f"--engine=local {stats_seconds_local:.1f} s)", flush=True)

    project = run_project(args, out, train, evaluate, stats)
    print("\n".join(f"  {line}" for line in project["stdout"]), flush=True)
    deepctr = run_deepctr(args, out, train, evaluate)
    print("\n".join(f"  {line}" for line in deepctr["stdout"]), flush=True)

    mismatch = {name: (project["features"].get(name), deepctr["features"].get(name))
                for name in set(project["features"]) | set(deepctr["features"])
                if project["features"].get(name) != deepctr["features"].get(name)}
    ratio = project["wall_seconds"] / deepctr["wall_seconds"]
    ratio_with_stats = (project["wall_seconds"] + stats_seconds) / deepctr["wall_seconds"]
    ratio_with_local_stats = ((project["wall_seconds"] + stats_seconds_local)
                              / deepctr["wall_seconds"])
    # Like for like: the project's click output (the ctr tower where the model has one; the
    # served score of a multi-task preset also weighs expected dwell) against DeepCTR's ctr.
    project_click_auc = (project["auc_ctr"] if project.get("auc_ctr_ctr_tower") is None
                         else project["auc_ctr_ctr_tower"])
    goal = ratio <= 0.5 and project_click_auc >= deepctr["auc_ctr"]
    command = " ".join([".venv/bin/python", "benchmarks/bench_deepctr.py"]
                       + [shlex.quote(a) for a in sys.argv[1:]])
    report = {"command": command, "out": out, "train": train, "eval": evaluate, "sim": sim,
              "batch_size": args.batch_size, "epochs": args.epochs, "seed": args.seed,
              "cpus": os.cpu_count(), "stats_seconds": stats_seconds,
              "stats_seconds_local": stats_seconds_local,
              "wall_ratio_with_local_stats": ratio_with_local_stats,
              "project": project, "deepctr": deepctr, "wall_ratio": ratio,
              "wall_ratio_with_stats": ratio_with_stats, "feature_mismatch": mismatch,
              "deepctr_autograph": args.deepctr_autograph, "goal_met": goal}
    with open(os.path.join(out, "bench_deepctr.json"), "w") as handle:
        json.dump(report, handle, indent=2, allow_nan=True)
    print(render(report))


def render(r):
    p, d = r["project"], r["deepctr"]
    fmt = (lambda x, f: "n/a" if x is None else format(x, f))  # noqa: E731
    rows = [("model", "wall time s", "steady examples/s", "CTR AUC"),
            (p["model"], fmt(p["wall_seconds"], ".1f"),
             fmt(p["steady_examples_per_second"], ",.0f"),
             fmt(p["auc_ctr"], ".4f") + (f" (ctr tower {p['auc_ctr_ctr_tower']:.4f})"
                                         if p.get("auc_ctr_ctr_tower") is not None else "")),
            ("  + pipelines.stats (preprocessing)", fmt(r["stats_seconds"], ".1f"), "", ""),
            ("  (pipelines.stats --engine=local)", fmt(r.get("stats_seconds_local"), ".1f"),
             "", ""),
            (f"DeepCTR {DEEPCTR_VERSION} PLE", fmt(d["wall_seconds"], ".1f"),
             fmt(d["steady_examples_per_second"], ",.0f"), fmt(d["auc_ctr"], ".4f"))]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    lines = [f"\nbatch {r['batch_size']}, {r['epochs']} epoch(s), seed {r['seed']}, "
             f"{r['cpus']} CPUs; train {d['train_rows']:,} rows, eval {d['eval_rows']:,} rows"]
    for i, row in enumerate(rows):
        lines.append("  ".join(c.ljust(w) if j == 0 else c.rjust(w)
                               for j, (c, w) in enumerate(zip(row, widths))))
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    lines.append(f"wall time ratio dwellrank / DeepCTR: {r['wall_ratio']:.3f} "
                 f"(with the stats job: {r['wall_ratio_with_stats']:.3f}; with its local "
                 f"engine: {fmt(r.get('wall_ratio_with_local_stats'), '.3f')}); goal <= 0.5 at "
                 "a click AUC at least as high (the ctr tower's, where the model has one, "
                 f"against DeepCTR's ctr output): {'met' if r['goal_met'] else 'NOT met'}")
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in d["phases"].items())
    lines.append(f"DeepCTR process phases: {phases} (first step of fit, with tracing, "
                 f"{d['first_step_seconds']:.1f} s; autograph {r['deepctr_autograph']}); "
                 f"long_read AUC {d['auc_long_read']:.4f}")
    if d.get("validation_rows"):
        lines.append(f"early stopping on the last days of the training logs "
                     f"({d['validation_rows']:,} rows): dwellrank selected step "
                     f"{p.get('selected_step')} of {p.get('global_step')}; DeepCTR the weights "
                     f"of epoch {d.get('best_epoch')} of {d.get('epochs_run')}")
    if p.get("training_seconds") is not None:
        lines.append(f"dwellrank training loop {p['training_seconds']:.1f} s of its process, "
                     f"{p['global_step']} steps")
    if r["feature_mismatch"]:
        lines.append(f"WARNING: features differ (name: (dwellrank, DeepCTR)): "
                     f"{r['feature_mismatch']}")
    else:
        lines.append(f"same features on both sides: {', '.join(sorted(d['features']))}")
    lines.append(f"wrote {os.path.join(r['out'], 'bench_deepctr.json')}")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
