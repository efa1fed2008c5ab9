"""Batch scoring at scale: peak memory of the local engine against input size, and rows/s of the
Beam engine against the local one on the same rows.

    .venv/bin/python benchmarks/bench_scoring.py [--out=bench_out/scoring --sizes=1,4
        --engines=local,beam,beam2 --skip_memory --skip_throughput --skip_dead_letters]

Data (made once under --out, reused afterwards): a simulated feed per size (10,000 users and
5,000 items per million rows, 14 days, so the 4 M-row feed has the 1 M-row feed's 14 files at
4x the rows each: memory that grows with a file's size shows), the stats of the 1 M-row feed's
first 10 days and a `vr_ndt` model trained briefly on them (20 steps of 1,024: scoring cost
does not depend on how well a model is trained), exported as a SavedModel.

Every measurement is one whole `python -m pipelines.score` process (imports and model loading
included), timed from start to exit, with the CPU time and peak resident memory of its whole
process tree (Beam's worker processes included): RUSAGE_CHILDREN of a wrapper process that
waits for it (`ru_utime + ru_stime`, the largest `ru_maxrss`).

1. Memory: `--engine=local` on every size (CSV.gz output).
2. Throughput on the 1 M-row feed: `--engine=local`, `--engine=beam` (DirectRunner, one
   worker) and `beam2` (`--direct_num_workers=2 --direct_running_mode=multi_processing`).
   Every engine may use both cores (TensorFlow's thread pools, Beam's workers): rows per
   CPU-second compares their cost per core, rows/s their speed on this machine.
3. Dead letters: `--engine=local` on the first 20,000 rows of one day, clean and with 1,000 of
   them made unreadable (four kinds in turn: an extra field, a word in an integer column, an
   infinite float, a line cut short), as plain CSV.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import module  # noqa: E402

ENGINES = {
    "local": ["--engine=local"],
    "beam": ["--engine=beam", "--direct_num_workers=1"],
    "beam2": ["--engine=beam", "--direct_num_workers=2", "--direct_running_mode=multi_processing"],
}


def prepare(out: str, sizes: list[int]) -> tuple[str, dict]:
    """Simulated feeds, stats, a briefly trained `vr_ndt` export; returns (export, {size: glob})."""
    feeds = {}
    for size in sorted(set(sizes) | {1}):
        sim = os.path.join(out, f"sim-{size}M")
        if not os.path.exists(os.path.join(sim, "summary.json")):
            print(f"simulating {size} M rows into {sim} ...", flush=True)
            module("pipelines.simulate", f"--output_dir={sim}", f"--num_users={size * 10_000}",
                   f"--num_items={size * 5_000}", "--days=14", "--plot=false")
        feeds[size] = os.path.join(sim, "logs", "day-*.csv.gz")
    train = os.path.join(out, "sim-1M", "logs", "day-0*.csv.gz")
    stats = os.path.join(out, "stats")
    if not os.path.exists(os.path.join(stats, "stats.json")):
        print("stats ...", flush=True)
        module("pipelines.stats", f"--input={train}", f"--output_dir={stats}")
    model_dir = os.path.join(out, "models", "vr_ndt")
    if not os.path.exists(os.path.join(model_dir, "config.json")):
        print("training vr_ndt briefly ...", flush=True)
        module("ranking.train", "--model=vr_ndt", f"--train={train}", f"--stats={stats}",
               f"--model_dir={model_dir}", "--epochs=1", "--steps_per_epoch=20",
               "--batch_size=1024")
    export = os.path.join(out, "serving", "vr_ndt")
    if not os.path.isdir(os.path.join(export, "1")):
        module("export.saved_model", f"--model_dir={model_dir}", f"--export_base={export}",
               "--version=1")
    return export, feeds


def rows_of(feed: str) -> int:
    return json.load(open(os.path.join(os.path.dirname(os.path.dirname(feed)),
                                       "summary.json")))["rows"]


def score(export: str, feed: str, output: str, engine: str) -> tuple[float, float, float]:
    """One pipelines.score process: (seconds, CPU seconds and peak RSS MB over the process
    tree)."""
    # A wrapper process waits for the scoring process (which waits for its Beam workers), so
    # its RUSAGE_CHILDREN maximum covers every process of the tree.
    wrapper = ("import resource, subprocess, sys, time\n"
               "started = time.perf_counter()\n"
               "done = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
               "seconds = time.perf_counter() - started\n"
               "usage = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
               "cpu = usage.ru_utime + usage.ru_stime\n"
               "sys.stderr.write(done.stderr)\n"
               "print(done.stdout + f'@@ {seconds} {cpu} {usage.ru_maxrss} {done.returncode}')\n")
    command = [sys.executable, "-c", wrapper, sys.executable, "-m", "pipelines.score",
               f"--saved_model={export}", f"--input={feed}", f"--output={output}",
               *ENGINES[engine]]
    env = dict(os.environ, PYTHONPATH=REPO)
    done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True)
    tail = done.stdout.rpartition("@@ ")[2]
    seconds, cpu, peak_kb, code = tail.split()
    if done.returncode or int(code):
        sys.exit(f"pipelines.score {engine} on {feed} failed:\n{done.stderr[-3000:]}")
    return float(seconds), float(cpu), int(peak_kb) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench_out/scoring")
    parser.add_argument("--sizes", default="1,4", help="millions of rows (memory)")
    parser.add_argument("--engines", default="local,beam,beam2", help="throughput, on 1 M rows")
    parser.add_argument("--skip_memory", action="store_true")
    parser.add_argument("--skip_throughput", action="store_true")
    parser.add_argument("--skip_dead_letters", action="store_true")
    parser.add_argument("--prepare_only", action="store_true")
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    export, feeds = prepare(out, sizes)
    if args.prepare_only:
        return
    scores = os.path.join(out, "scores")
    if not args.skip_memory:
        print("peak RSS of pipelines.score --engine=local (CSV.gz out), whole process:")
        for size in sizes:
            rows = rows_of(feeds[size])
            seconds, _, peak = score(export, feeds[size], os.path.join(scores, f"local-{size}M"),
                                     "local")
            print(f"  {rows:>10,} rows: {peak:7,.0f} MB   {seconds:6.1f} s   "
                  f"{rows / seconds:9,.0f} rows/s", flush=True)
    if not args.skip_throughput:
        rows = rows_of(feeds[1])
        print(f"pipelines.score over {rows:,} rows (14 CSV.gz files), whole processes:")
        for engine in [e for e in args.engines.split(",") if e]:
            seconds, cpu, peak = score(export, feeds[1], os.path.join(scores, engine), engine)
            print(f"  {engine:6s} {seconds:6.1f} s {rows / seconds:9,.0f} rows/s   CPU {cpu:6.1f} s "
                  f"{rows / cpu:9,.0f} rows per CPU-second   peak {peak:5,.0f} MB   "
                  f"({' '.join(ENGINES[engine])})", flush=True)
    if not args.skip_dead_letters:
        clean, dirty = dead_letter_inputs(out, feeds[1])
        print("pipelines.score --engine=local over 20,000 rows, whole processes:")
        for name, path in (("clean", clean), ("1,000 bad rows", dirty)):
            seconds, _, _ = score(export, path, os.path.join(scores, "dead_letters"), "local")
            print(f"  {name:15s} {seconds:6.1f} s", flush=True)
    print(f"machine: {os.cpu_count()} cores; {time.strftime('%Y-%m-%d')}")


def dead_letter_inputs(out: str, feed: str) -> tuple[str, str]:
    """20,000 rows of the feed's last day as plain CSV, and the same with 1,000 bad rows."""
    import glob
    import gzip

    import numpy as np

    clean, dirty = os.path.join(out, "rows-20k.csv"), os.path.join(out, "rows-20k-1000-bad.csv")
    if not os.path.exists(dirty):
        with gzip.open(sorted(glob.glob(feed))[-1], "rt") as handle:
            lines = [handle.readline().rstrip("\n") for _ in range(20_001)]
        header = lines[0].split(",")
        position, age = header.index("position"), header.index("publish_age_hours")
        with open(clean, "w") as handle:
            handle.write("\n".join(lines) + "\n")
        rows = np.sort(np.random.default_rng(0).choice(np.arange(1, 20_001), 1000, replace=False))
        for k, row in enumerate(rows.tolist()):
            fields = lines[row].split(",")
            if k % 4 == 0:
                fields.append("extra")
            elif k % 4 == 1:
                fields[position] = "x"
            elif k % 4 == 2:
                fields[age] = "inf"
            else:
                fields = fields[:3]
            lines[row] = ",".join(fields)
        with open(dirty, "w") as handle:
            handle.write("\n".join(lines) + "\n")
    return clean, dirty


if __name__ == "__main__":
    main()
