"""What the benchmarks share: running one of the project's modules as its own process, or
profiling its code inside this one; the flags and statistics of a benchmark run on a user's
logs instead of the simulator's."""

from __future__ import annotations

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def module(name: str, *args: str) -> str:
    """Runs `python -m name args...` from the repository; exits with its stderr on failure;
    returns its stdout."""
    env = dict(os.environ, PYTHONPATH=REPO)
    completed = subprocess.run([sys.executable, "-m", name, *args], cwd=REPO, env=env,
                               capture_output=True, text=True)
    if completed.returncode:
        sys.exit(f"{name} {' '.join(args)} failed:\n{completed.stderr[-3000:]}")
    return completed.stdout


def in_process(main) -> None:
    """Runs `main()` of a benchmark that imports the project's code into its own process: the
    repository on sys.path, TensorFlow quiet and Keras 2 selected before TensorFlow loads (the
    CLIs' set-up), and bad logs, stats or models ending in one `error:` line and status 1."""
    sys.path.insert(0, REPO)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import core  # noqa: F401  (Keras 2 before TensorFlow)
    from core.errors import InputError

    try:
        main()
    except InputError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(1)


def stats_of(train: str, stats_dir: str, *extra: str) -> dict:
    """The stats artifact of the logs `train` (comma-separated globs) in `stats_dir`, computed
    by `pipelines.stats --input=train extra...` unless it is there; one made from other inputs
    or with other flags (kept beside it in STATS_DIR.flags.json) is refused rather than reused
    (a table of one log set, not two). Returns its stats.json."""
    path = os.path.join(stats_dir, "stats.json")
    flags_path = stats_dir.rstrip("/") + ".flags.json"
    if not os.path.exists(path):
        module("pipelines.stats", f"--input={train}", f"--output_dir={stats_dir}", *extra)
        with open(flags_path, "w") as handle:
            json.dump(list(extra), handle)
    with open(path) as handle:
        stats = json.load(handle)
    made_with = None
    if os.path.exists(flags_path):
        with open(flags_path) as handle:
            made_with = json.load(handle)
    if stats.get("inputs") != train or made_with not in (None, list(extra)):
        sys.exit(f"{stats_dir} holds the statistics of {stats.get('inputs')} (flags "
                 f"{' '.join(made_with or []) or 'none'}), not of {train} (flags "
                 f"{' '.join(extra) or 'none'}): give the benchmark a new --out (or remove "
                 "that directory)")
    return stats


def check_reused_eval(model_dir: str, metrics: dict, evaluate: str) -> None:
    """Exits when a finished run's eval_metrics.json (`metrics`) was evaluated on other logs
    than `evaluate`: a table of one evaluation, not two."""
    if metrics.get("eval") != evaluate:
        sys.exit(f"{model_dir} was evaluated on {metrics.get('eval')}, not {evaluate}: give the "
                 "benchmark a new --out (or remove the run) to train it again")


def logs_summary(stats: dict, train: str, evaluate: str) -> dict:
    """What a table says of a user's logs (`--train`, `--eval`): the training logs' rows and
    CTR from their stats artifact (`stats`, its stats.json) and both inputs as given."""
    rows = int(stats["rows"])
    return {"source": "logs", "train": train, "eval": evaluate, "rows": rows,
            "ctr": stats["clicks"] / rows if rows else float("nan")}


def add_logs_flags(parser, name_default: str = "logs") -> None:
    """The flags that run a simulator benchmark on a user's own logs instead: --train, --eval
    (comma-separated globs, as ranking.train's), --name (the results' directory and section
    name) and --stats_args (more pipelines.stats flags, e.g. --column_types=...)."""
    parser.add_argument("--train", default=None,
                        help="your training logs (comma-separated globs, as ranking.train's "
                        "--train): the table on them instead of on a simulated world; its last "
                        "UTC day is the validation window of the model-selection runs")
    parser.add_argument("--eval", default=None,
                        help="your evaluation logs (with --train): later days than --train's")
    parser.add_argument("--name", default=name_default,
                        help="with --train: the section's name and OUT's subdirectory")
    parser.add_argument("--stats_args", default="",
                        help="with --train: more pipelines.stats flags, space-separated (e.g. "
                        "--column_types=user_id:string)")


def check_logs_flags(parser, args, simulator_flags: dict) -> None:
    """Exits through `parser` when --train and --eval come apart, or when simulator flags
    (`simulator_flags`: {flag name: default}, any changed) are given with --train."""
    if (args.train is None) != (args.eval is None):
        parser.error("--train and --eval go together: your training and evaluation logs")
    if args.train is None:
        if args.stats_args:
            parser.error("--stats_args is for --train (the simulated worlds' statistics are "
                         "the benchmark's own)")
        return
    given = [f"--{name}" for name, default in simulator_flags.items()
             if getattr(args, name) != default]
    if given:
        parser.error(f"{', '.join(given)}: a simulator flag, and --train runs the table on "
                     "your logs instead of a simulated world")
