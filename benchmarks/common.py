"""What the benchmarks share: running one of the project's modules as its own process, or
profiling its code inside this one; the flags and statistics of a benchmark run on a user's
logs instead of the simulator's."""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# What a benchmark's run was trained with, beside its model directory (`train_model`).
ARGS_FILE = "benchmark_args.json"
# The `warning:` and `note:` lines a run's training printed, beside its model directory.
NOTES_FILE = "benchmark_notes.json"
_RELAYED: set[str] = set()


def module(name: str, *args: str, label: str | None = None,
           notes: list | None = None) -> str:
    """Runs `python -m name args...` from the repository and returns its stdout. Its
    `warning:` and `note:` lines are passed on to stderr (each text once a process, tagged
    with `label`, default `name`) and, every one, appended to `notes` when given; on failure
    exits with its `error:` line (else the end of its stderr)."""
    env = dict(os.environ, PYTHONPATH=REPO)
    completed = subprocess.run([sys.executable, "-m", name, *args], cwd=REPO, env=env,
                               capture_output=True, text=True)
    label = label or name
    for line in (completed.stdout + "\n" + completed.stderr).splitlines():
        line = line.strip()
        # (a note may also end a line: the validation window's "...; note: a sliver of a day")
        if line.startswith(("warning:", "note:")) or "; note:" in line:
            if notes is not None:
                notes.append(line)
            if line not in _RELAYED:
                _RELAYED.add(line)
                print(f"{line} [{label}]", file=sys.stderr, flush=True)
    if completed.returncode:
        errors = [line for line in completed.stderr.splitlines() if line.startswith("error:")]
        if errors:
            sys.exit(f"error: {label}: {errors[-1][len('error:'):].strip()}")
        sys.exit(f"error: {name} {' '.join(args)} failed (status {completed.returncode}):\n"
                 f"{completed.stderr[-3000:]}")
    return completed.stdout


def train_model(model_dir: str, args: list[str], label: str) -> None:
    """Trains a benchmark's run: `python -m ranking.train args...` (`args` includes
    --model_dir=`model_dir`), then its wall seconds, its `warning:` and `note:` lines
    (`run_notes`) and `args` beside it (`check_reused_args`)."""
    started = time.perf_counter()
    notes: list[str] = []
    module("ranking.train", *args, label=label, notes=notes)
    with open(os.path.join(model_dir, "wall_seconds"), "w") as handle:
        handle.write(f"{time.perf_counter() - started:.1f}")
    with open(os.path.join(model_dir, NOTES_FILE), "w") as handle:
        json.dump(notes, handle, indent=1)
    with open(os.path.join(model_dir, ARGS_FILE), "w") as handle:
        json.dump(sorted(args), handle, indent=1)


def run_notes(model_dir: str) -> list[str] | None:
    """The `warning:` and `note:` lines a benchmark's run printed when it was trained
    (`train_model`); None for a run trained before they were kept."""
    path = os.path.join(model_dir, NOTES_FILE)
    if not os.path.exists(path):
        return None
    with open(path) as handle:
        return json.load(handle)


# Training's notes on --eval logs that hold rows it trained or was selected on, or whose
# labels' thresholds it learned (`ranking.input_notes`: files shared with --train, its
# validation window or the stats artifact's logs; rows of its days).
_HELD_OUT_OVERLAP = ("--eval file(s) are", "--eval rows fall on")


def held_out_notes(model_dirs: list[str]) -> tuple[list[str], int]:
    """(the distinct notes of runs (`run_notes`) that their --eval logs hold rows they trained
    or were selected on, or the statistics learned the labels' thresholds from; the number of
    runs trained before notes were kept): a table on such logs says so."""
    found: list[str] = []
    unknown = 0
    for model_dir in model_dirs:
        notes = run_notes(model_dir)
        unknown += notes is None
        for line in notes or ():
            if any(k in line for k in _HELD_OUT_OVERLAP) and line not in found:
                found.append(line)
    return found, unknown


def input_files(globs: str) -> list[str]:
    """The files comma-separated globs match, as sorted real paths (a glob and the list of
    the files it matches are the same input); a URL glob stays as it is."""
    files = set()
    for pattern in (g for g in globs.split(",") if g):
        matched = [] if "://" in pattern else glob.glob(pattern)
        if matched:
            files.update(os.path.realpath(f) for f in matched)
        else:
            files.add(pattern)
    return sorted(files)


_INPUT_FLAGS = ("--train=", "--eval=", "--validation=")


def _as_files(args: list[str]) -> list[str]:
    """`args` with each input flag's globs replaced by the files they match."""
    return sorted(next((flag + ",".join(input_files(a[len(flag):])) for flag in _INPUT_FLAGS
                        if a.startswith(flag)), a) for a in args)


def check_reused_args(model_dir: str, args: list[str]) -> None:
    """Exits when a finished run (`train_model`) was trained with other ranking.train flags
    than `args` (the benchmark's flags changed since, e.g. --max_epochs or --project_args): a
    table of one protocol, not two. Runs from before the file was written are not checked
    here."""
    path = os.path.join(model_dir, ARGS_FILE)
    if not os.path.exists(path):
        return
    with open(path) as handle:
        trained = json.load(handle)
    if trained != sorted(args) and _as_files(trained) != _as_files(args):
        then = [a for a in trained if a not in args]
        now = [a for a in sorted(args) if a not in trained]
        if not then and not now:  # the same flags, one given twice
            then, now = trained, sorted(args)
        sys.exit(f"error: {model_dir} was trained with {' '.join(then) or 'no such flag'}, "
                 f"not {' '.join(now) or 'without it'}: give the benchmark a new --out (or "
                 "remove the run) to train it again")


def _file_statuses(globs: str) -> list | None:
    """[[real path, bytes, mtime_ns]] of the local files of `globs` (comma-separated), sorted;
    None when one is a URL (not checked)."""
    statuses = []
    for pattern in globs.split(","):
        if "://" in pattern:
            return None
        for path in glob.glob(pattern):
            status = os.stat(path)
            statuses.append([os.path.realpath(path), int(status.st_size),
                             int(status.st_mtime_ns)])
    return sorted(statuses)


def check_inputs_unchanged(directory: str, inputs: dict[str, str], made: bool) -> None:
    """Exits when the files of `inputs` ({flag: comma-separated globs}) are not those a
    benchmark's results in `directory` were made from under the same globs
    (DIRECTORY/inputs.json, {flag: {globs: [[real path, size, mtime_ns]]}}, every globs a flag
    was given with): logs rewritten in place would otherwise be credited with the old results.
    Other globs are left to the checks that name them (`stats_of`, `check_reused_eval`).
    `made`: results exist (without any, the record of these globs is written again)."""
    path = os.path.join(directory, "inputs.json")
    record = {}
    if os.path.exists(path):
        with open(path) as handle:
            record = json.load(handle)
    for flag, globs in inputs.items():
        files = _file_statuses(globs)
        then = record.get(flag, {}).get(globs)
        if made and then is not None and then != files:
            old = {f[0]: f for f in then or []}
            new = {f[0]: f for f in files or []}
            changed = sorted(set(old) ^ set(new)) or sorted(f for f in new if new[f] != old[f])
            sys.exit(f"error: the files of --{flag}={globs} changed since {directory} was made "
                     f"from them ({', '.join(changed[:2])}{', ...' if len(changed) > 2 else ''}"
                     ": added, removed or rewritten): give the benchmark a new --out (or remove "
                     "that directory)")
        if then is None or not made:
            record.setdefault(flag, {})[globs] = files
    os.makedirs(directory, exist_ok=True)
    with open(path, "w") as handle:
        json.dump(record, handle)


def simulated_days(sim: str, eval_days: int = 3, train_days: int = 1) -> tuple[str, str]:
    """(training files, evaluation files), comma-separated, of a simulation's logs: the last
    `eval_days` UTC days are the evaluation logs, the days before them the training logs (in
    day order, by the number in `day-N`). Exits with a one-line error when fewer than
    `train_days` days are left to train on (2 when the last is held out for validation)."""
    logs = os.path.join(sim, "logs")
    named = [(re.fullmatch(r"day-(\d+)\..*", name), name) for name in os.listdir(logs)]
    days = [os.path.join(logs, n) for _, n in sorted((int(m[1]), n) for m, n in named if m)]
    if len(days) < eval_days + train_days:
        sys.exit(f"error: {logs} has {len(days)} day file(s) and the last {eval_days} are the "
                 f"evaluation logs: simulate at least {eval_days + train_days} days (--days)")
    return ",".join(days[:-eval_days]), ",".join(days[-eval_days:])


def absolute_globs(globs: str) -> str:
    """Comma-separated globs with each local one made absolute: the benchmarks run their jobs
    from the repository, so a glob relative to the user's directory must not be read there."""
    from core.log_files import absolute_globs as absolute

    return absolute(",".join(os.path.expanduser(g) for g in globs.split(",")))


def seeds_of(parser, text: str) -> list[int]:
    """--seeds as integers, or exits through `parser` naming the flag."""
    try:
        return [int(seed) for seed in text.split(",")]
    except ValueError:
        parser.error(f"--seeds={text}: comma-separated integers (e.g. 0,1,2)")


def split_flags(parser, name: str, text: str) -> list[str]:
    """A space-separated flags option (--stats_args, --project_args) split as a shell would,
    or exits through `parser` naming the option."""
    try:
        return shlex.split(text)
    except ValueError as error:
        parser.error(f"--{name}={text!r}: {error} (space-separated flags, quoted as in a "
                     "shell)")


def mean_and_spread(mean: float, std: float, seeds: int, digits: int) -> str:
    """A table cell: "mean ± std" over several seeds, the value alone for one; "undefined" for
    a NaN mean (a seed's metric undefined: an AUC on logs of one class)."""
    if mean is None or mean != mean:  # (None: json_ready's NaN)
        return "undefined"
    return f"{mean:.{digits}f}" + (f" ± {std:.{digits}f}" if seeds > 1 else "")


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
    if (stats.get("inputs") != train and input_files(stats.get("inputs") or "")
            != input_files(train)) or made_with not in (None, list(extra)):
        sys.exit(f"error: {stats_dir} holds the statistics of {stats.get('inputs')} (flags "
                 f"{' '.join(made_with or []) or 'none'}), not of {train} (flags "
                 f"{' '.join(extra) or 'none'}): give the benchmark a new --out (or remove "
                 "that directory)")
    return stats


def check_reused_eval(model_dir: str, metrics: dict, evaluate: str) -> None:
    """Exits when a finished run's eval_metrics.json (`metrics`) was evaluated on other logs
    than `evaluate`: a table of one evaluation, not two."""
    if metrics.get("eval") != evaluate and input_files(metrics.get("eval") or "") != input_files(
            evaluate):
        sys.exit(f"error: {model_dir} was evaluated on {metrics.get('eval')}, not {evaluate}: give the "
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
    (`simulator_flags`: {flag name: default}, any changed) are given with --train; makes
    --train's and --eval's local globs absolute (`absolute_globs`)."""
    if (args.train is None) != (args.eval is None):
        parser.error("--train and --eval go together: your training and evaluation logs")
    if args.train is None:
        if args.stats_args:
            parser.error("--stats_args is for --train (the simulated worlds' statistics are "
                         "the benchmark's own)")
        return
    args.train, args.eval = absolute_globs(args.train), absolute_globs(args.eval)
    given = [f"--{name}" for name, default in simulator_flags.items()
             if getattr(args, name) != default]
    if given:
        parser.error(f"{', '.join(given)}: a simulator flag, and --train runs the table on "
                     "your logs instead of a simulated world")
