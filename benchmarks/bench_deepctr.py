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
- DeepCTR (this file run with `--child`): pandas reads the CSVs; the features are the
  project's defaults: every column but impression_id, timestamp, click, dwell_time (and the
  label names); user_id, item_id and string columns are `SparseFeat`s, label-encoded with the
  training vocabulary (index 0 is reserved for values unseen in training), embedded with the
  project's widths (ids 16, other categoricals 8: DeepCTR's PLE concatenates the embeddings,
  so it needs no common width); number columns are `DenseFeat`s, log1p(max(x, 0))
  standardized with the training mean and (population) deviation, the project's transform
  (a deviation of 0 counts as 1); empty values are "" and 0, as in the project's reader. This
  fit of the encoders on the training frame is inside DeepCTR's process time.
  PLE needs at least two tasks (it raises for one) and supports only binary and regression
  tasks (no masked multiclass dwell bins, which is what the project's `ple` learns as its
  second task): the tasks are `ctr` (click) and `long_read` (click and dwell_time above the
  median dwell of the training clicks), both binary cross-entropy on every impression, weight 1.
  Everything else is DeepCTR's default `PLE(...)` (see below). `compile('adam')` (lr 1e-3),
  `fit(batch_size, epochs, shuffle=True)`, `predict(batch_size=8192)` (the project's eval
  batch); the CTR AUC is sklearn's `roc_auc_score(click, p_ctr)`. Steady-state examples/s
  is the project's definition: rows after the first step over the time after the first step,
  of the last epoch (a Keras callback).

DeepCTR's PLE defaults (deepctr/models/multitask/ple.py, 0.9.4), kept: shared_expert_num=1,
specific_expert_num=1, num_levels=2, expert_dnn_hidden_units=(256,), tower_dnn_hidden_units=(64,)
then Dense(1, no bias) + a bias and sigmoid (PredictionLayer), gate_dnn_hidden_units=() (each
gate is Dense(n_experts, no bias, softmax) on its input), l2_reg_embedding=1e-5 (a Keras
embeddings_regularizer on each whole table), l2_reg_dnn=0, dnn_dropout=0, relu, no batch norm,
seed=1024 (every DNN kernel is glorot_normal(seed=1024), a stateless seeded initializer, so all
experts of a level start identical and so do the towers; only the gates, Keras' unseeded
glorot_uniform, differ; biases zeros); embeddings are initialized RandomNormal(0, 1e-4,
seed=2020) (SparseFeat's default; same-shaped tables start identical too).

Shims: none is needed; deepctr 0.9.4 imports and trains with TF 2.16 + tf_keras 2.16 as is
(its `tensorflow.python...` imports all resolve; `tensorflow.keras` is tf_keras under
TF_USE_LEGACY_KERAS=1). deepctr's files are not modified. Two changes in the child process,
neither touching the math:
- `deepctr/__init__.py` calls `deepctr.utils.check_version`, which starts a non-daemon thread
  doing an HTTP request to PyPI (without a timeout) on every import; the child preloads
  `deepctr.utils` with that function replaced by a no-op, so the timed process never waits on
  the network.
- `--deepctr_autograph=skip_tf_keras` (default): TF 2.16's autograph skips modules named
  `keras` but not `tf_keras`, so tracing any tf_keras model converts Keras' own internals
  (thousands of functions): on this 2-core VM the first `fit` step of DeepCTR's PLE takes
  11-16 s and model construction 3-5 s, against 2.4 s and 0.4 s when `tf_keras` is added to
  autograph's do-not-convert rules. The default adds it (DeepCTR's best case, the harder target;
  DeepCTR's own layers and lambdas are still converted); `--deepctr_autograph=stock` measures
  TF as installed.

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

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEEPCTR_VERSION = "0.9.4"
NON_FEATURES = ("impression_id", "timestamp", "click", "dwell_time",
                "valid_read", "valid_read_rule", "ndt", "log_dwell", "dwell_bin")
IDS = ("user_id", "item_id")
ID_DIM, DIM = 16, 8
EVAL_BATCH = 8192
RESULT_TAG = "DEEPCTR_RESULT "
AUTOGRAPH = ("skip_tf_keras", "stock")


# ---------------------------------------------------------------------------------------------
# Parent: data, stats, the two timed processes, the table.

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
    files = sorted(glob.glob(os.path.join(sim, "logs", "day-*.csv.gz")))
    if len(files) <= args.eval_days:
        sys.exit(f"{sim}/logs has {len(files)} CSV day files: need more than --eval_days="
                 f"{args.eval_days} (a TFRecord simulation cannot be read by the DeepCTR side)")
    return ",".join(files[:-args.eval_days]), ",".join(files[-args.eval_days:]), sim


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
    command = [sys.executable, os.path.abspath(__file__), "--child", f"--train={train}",
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
    result["wall_seconds"] = seconds
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


# ---------------------------------------------------------------------------------------------
# Child: DeepCTR's PLE, one whole process (only the standard library, numpy, pandas,
# scikit-learn, TensorFlow and deepctr: never the project).

def _expand(globs):
    files = []
    for pattern in (g for g in globs.split(",") if g):
        matched = sorted(glob.glob(pattern))
        if not matched:
            sys.exit(f"error: {pattern}: no file matches")
        files.extend(matched)
    return files


def _read_csv(files):
    import pandas as pd

    frames = []
    for path in files:
        with open(path, "rb") as handle:
            magic = handle.read(2)
        if magic != b"\x1f\x8b" and path.endswith((".tfrecord", ".tfrecord.gz")):
            sys.exit(f"error: {path}: the DeepCTR side reads CSV logs only")
        frames.append(pd.read_csv(path, compression="gzip" if magic == b"\x1f\x8b" else None,
                                  dtype={c: str for c in IDS}, keep_default_na=False,
                                  na_values=[""], low_memory=False))
    columns = list(frames[0].columns)
    for path, frame in zip(files, frames):
        if list(frame.columns) != columns:
            sys.exit(f"error: {path}: header differs from {files[0]}")
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _disable_version_check():
    """Preloads deepctr.utils with check_version a no-op (it would start a thread doing an HTTP
    request to PyPI at import); nothing else of deepctr changes."""
    import importlib.util

    package = importlib.util.find_spec("deepctr")
    if package is None:
        sys.exit("error: deepctr is not on PYTHONPATH")
    path = os.path.join(os.path.dirname(package.origin), "utils.py")
    spec = importlib.util.spec_from_file_location("deepctr.utils", path)
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    utils.check_version = lambda version: None
    sys.modules["deepctr.utils"] = utils


def _skip_tf_keras_autograph():
    """Adds tf_keras to autograph's do-not-convert rules, beside the `keras` already there."""
    from tensorflow.python.autograph.core import config

    config.CONVERSION_RULES = (config.DoNotConvert("tf_keras"),) + tuple(config.CONVERSION_RULES)


def child(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", required=True)
    parser.add_argument("--eval", required=True)
    parser.add_argument("--batch_size", type=int, required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--result", required=True)
    parser.add_argument("--autograph", choices=AUTOGRAPH, required=True)
    parser.add_argument("--validation_days", type=int, default=0)
    parser.add_argument("--refit", default="validation")
    parser.add_argument("--patience", type=int, default=2)
    args = parser.parse_args(argv)
    phases, mark = {}, time.perf_counter()

    def phase(name):
        nonlocal mark
        now = time.perf_counter()
        phases[name] = now - mark
        mark = now

    import numpy as np
    import pandas as pd
    import tensorflow as tf
    from sklearn.metrics import roc_auc_score

    if args.autograph == "skip_tf_keras":
        _skip_tf_keras_autograph()
    _disable_version_check()
    import deepctr
    from deepctr.feature_column import DenseFeat, SparseFeat
    from deepctr.models import PLE
    phase("import")

    train = _read_csv(_expand(args.train))
    evaluate = _read_csv(_expand(args.eval))
    for frame, name in ((train, "--train"), (evaluate, "--eval")):
        missing = [c for c in ("user_id", "item_id", "timestamp", "click", "dwell_time")
                   if c not in frame.columns]
        if missing:
            sys.exit(f"error: {name} logs lack the required column(s) {', '.join(missing)}")
    phase("read")

    # Encoders fitted on the training frame (part of DeepCTR's process time).
    features, columns, x_train, x_eval = {}, [], {}, {}
    for name in train.columns:
        if name in NON_FEATURES:
            continue
        column, other = train[name], evaluate[name]
        if name in IDS or not pd.api.types.is_numeric_dtype(column.dtype):
            column, other = column.fillna("").astype(str), other.fillna("").astype(str)
            vocabulary = pd.Index(pd.unique(column))
            # 0: values unseen in training; 1..n: the training vocabulary.
            x_train[name] = (vocabulary.get_indexer(column) + 1).astype(np.int32)
            x_eval[name] = (vocabulary.get_indexer(other) + 1).astype(np.int32)
            columns.append(SparseFeat(name, vocabulary_size=len(vocabulary) + 1,
                                      embedding_dim=ID_DIM if name in IDS else DIM))
            features[name] = "categorical"
        else:
            other = pd.to_numeric(other)
            raw = np.log1p(np.maximum(column.fillna(0).to_numpy(np.float64), 0.0))
            mean, std = float(raw.mean()), float(raw.std())
            std = std or 1.0
            raw_eval = np.log1p(np.maximum(other.fillna(0).to_numpy(np.float64), 0.0))
            x_train[name] = ((raw - mean) / std).astype(np.float32)
            x_eval[name] = ((raw_eval - mean) / std).astype(np.float32)
            columns.append(DenseFeat(name, 1))
            features[name] = "numeric"
    # The validation split: the last --validation_days UTC days of the training frame.
    day = train["timestamp"].to_numpy(np.int64) // 86_400
    held = (day > day.max() - args.validation_days) if args.validation_days else np.zeros(
        len(day), bool)
    click = train["click"].to_numpy(np.float32)
    dwell = train["dwell_time"].fillna(0).to_numpy(np.float64)
    threshold = float(np.median(dwell[click == 1])) if (click == 1).any() else 0.0
    long_read = ((click == 1) & (dwell > threshold)).astype(np.float32)
    eval_click = evaluate["click"].to_numpy(np.float32)
    eval_dwell = evaluate["dwell_time"].fillna(0).to_numpy(np.float64)
    eval_long = ((eval_click == 1) & (eval_dwell > threshold)).astype(np.float32)
    fit_rows = ~held
    x_val = {k: v[held] for k, v in x_train.items()}
    y_val = [click[held], long_read[held]]
    x_train = {k: v[fit_rows] for k, v in x_train.items()}
    click, long_read = click[fit_rows], long_read[fit_rows]
    train_rows, eval_rows = int(fit_rows.sum()), len(evaluate)
    del train, evaluate
    phase("preprocess")

    np.random.seed(args.seed)
    tf.random.set_seed(args.seed)
    model = PLE(columns, task_types=("binary", "binary"), task_names=("ctr", "long_read"))
    model.compile("adam", loss=["binary_crossentropy", "binary_crossentropy"])
    phase("build")

    class Steady(tf.keras.callbacks.Callback):
        """Examples/s of an epoch after its first step (which includes tracing)."""

        def on_epoch_begin(self, epoch, logs=None):
            self.warm = None

        def on_train_batch_end(self, batch, logs=None):
            if self.warm is None:
                self.warm = (time.perf_counter(), min(args.batch_size, train_rows))
                if self.first_step is None:  # from the fit() call: data adapter, tracing
                    self.first_step = self.warm[0] - fit_started

        def on_epoch_end(self, epoch, logs=None):
            rows = train_rows - self.warm[1]
            self.rate = rows / (time.perf_counter() - self.warm[0]) if rows else float("nan")

    steady = Steady()
    steady.first_step = None
    callbacks, validation = [steady], None
    if args.validation_days:
        stopper = tf.keras.callbacks.EarlyStopping(monitor="val_loss", patience=args.patience,
                                                   restore_best_weights=True)
        callbacks.append(stopper)
        validation = (x_val, y_val)
    fit_started = time.perf_counter()
    history = model.fit(x_train, [click, long_read], batch_size=args.batch_size,
                        epochs=args.epochs, shuffle=True, verbose=2, callbacks=callbacks,
                        validation_data=validation)
    epochs_run = len(history.history["loss"])
    auc_selected = None
    if args.validation_days and args.refit == "validation":
        # The project's refit pass, given to the peer too: the restored best weights train
        # one more pass over the held-out days (its vocabulary already holds their ids).
        auc_selected = float(roc_auc_score(eval_click, model.predict(
            x_eval, batch_size=EVAL_BATCH, verbose=0)[0].ravel()))
        model.fit(x_val, y_val, batch_size=args.batch_size, epochs=1, shuffle=True, verbose=2)
    phase("train")

    p_ctr, p_long = model.predict(x_eval, batch_size=EVAL_BATCH, verbose=0)
    auc_ctr = float(roc_auc_score(eval_click, p_ctr.ravel()))
    auc_long = (float(roc_auc_score(eval_long, p_long.ravel()))
                if 0 < eval_long.sum() < len(eval_long) else float("nan"))
    phase("evaluate")

    result = {"model": f"DeepCTR {deepctr.__version__} PLE", "auc_ctr": auc_ctr,
              "auc_ctr_before_refit": auc_selected,
              "auc_long_read": auc_long, "steady_examples_per_second": steady.rate,
              "first_step_seconds": steady.first_step,
              "train_rows": train_rows, "eval_rows": eval_rows, "features": features,
              "long_read_threshold_seconds": threshold, "params": int(model.count_params()),
              "epochs_run": epochs_run,
              "best_epoch": (int(stopper.best_epoch) + 1 if args.validation_days
                             and stopper.best_weights is not None else None),
              "validation_rows": int(held.sum()),
              "vocabulary_sizes": {c.name: c.vocabulary_size for c in columns
                                   if isinstance(c, SparseFeat)},
              "phases": phases, "tensorflow": tf.__version__,
              "keras": tf.keras.__name__ if hasattr(tf.keras, "__name__") else str(tf.keras)}
    with open(args.result, "w") as handle:
        json.dump(result, handle, indent=2, allow_nan=True)
    print(f"DeepCTR PLE: train {train_rows:,} rows in {phases['train']:.1f} s "
          f"({steady.rate:,.0f} examples/s after the first step), eval auc_ctr {auc_ctr:.4f} "
          f"auc_long_read {auc_long:.4f} (long read: click and dwell > {threshold:.1f} s)")
    print(RESULT_TAG + json.dumps(result, allow_nan=True), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(sys.argv[2:])
    else:
        main()
