"""Batch scoring at scale: peak memory of each engine against input size, and rows/s of the
Beam engine against the local one on the same rows.

    .venv/bin/python benchmarks/bench_scoring.py [--out=bench_out/scoring --sizes=1,4
        --memory_engines=local,beam,beam2 --engines=local,beam,beam2 --skip_memory
        --skip_throughput --skip_dead_letters]

Data (made once under --out, reused afterwards): a simulated feed per size (10,000 users and
5,000 items per million rows, 14 days, so the 4 M-row feed has the 1 M-row feed's 14 files at
4x the rows each: memory that grows with a file's size shows), the stats of the 1 M-row feed's
first 10 days and a `vr_ndt` model trained briefly on them (20 steps of 1,024: scoring cost
does not depend on how well a model is trained), exported as a SavedModel.

Every measurement is one whole `python -m pipelines.score` process (imports and model loading
included), timed from start to exit, with the CPU time and peak resident memory of its whole
process tree (Beam's worker processes included):

- CPU time and the largest process's peak RSS (exact): RUSAGE_CHILDREN of a wrapper process
  that waits for it (`ru_utime + ru_stime`; `ru_maxrss` is the peak of the single largest
  process of the tree, not a sum).
- For a tree of several processes (`beam2`'s SDK workers), sampled from /proc every 0.2 s
  while it runs (the wrapper itself excluded): the sum over the processes of each one's own
  peak (`VmHWM` as last read, so growth in a process's last 0.2 s can be missed; peaks of
  different processes need not coincide, and shared pages count once per process), and the
  largest simultaneous total of the tree's proportional set size (`Pss` of
  /proc/PID/smaps_rollup: shared pages divided among every process mapping them, other
  TensorFlow processes on the machine included, so it is below RSS even for one process and
  depends on what else runs; the tree's share of memory at once, at sampled instants).

1. Memory: every engine of `--memory_engines` on every size (CSV.gz output).
2. Throughput on the 1 M-row feed: `--engine=local`, `--engine=beam` (DirectRunner, one
   worker) and `beam2` (`--direct_num_workers=2 --direct_running_mode=multi_processing`).
   Every engine may use both cores (TensorFlow's thread pools, Beam's workers): rows per
   CPU-second compares their cost per core, rows/s their speed on this machine. An engine
   measured on 1 M rows by the memory step is not run again (the same command).
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
import threading
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


def _children() -> dict[int, list[int]]:
    """{parent pid: [child pids]} of every process now in /proc."""
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                ppid = int(handle.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        tree.setdefault(ppid, []).append(int(entry))
    return tree


def _kb(path: str, field: str) -> int:
    with open(path) as handle:
        for line in handle:
            if line.startswith(field):
                return int(line.split()[1])
    return 0


class TreeSampler(threading.Thread):
    """Samples the descendants of `root` (not `root` itself) every `interval` seconds until
    stopped: each process's last-read VmHWM (its own peak RSS) and command, and the largest sum
    of the tree's Pss over the samples."""

    def __init__(self, root: int, interval: float = 0.2):
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.hwm_kb: dict[int, int] = {}
        self.names: dict[int, str] = {}
        self.pss_peak_kb = 0
        self.samples = 0
        self._halt = threading.Event()

    def run(self):
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def stop(self):
        self._halt.set()
        self.join()

    def sample(self):
        tree = _children()
        pending, descendants = list(tree.get(self.root, [])), []
        while pending:
            pid = pending.pop()
            descendants.append(pid)
            pending.extend(tree.get(pid, []))
        pss = 0
        for pid in descendants:
            try:
                hwm = _kb(f"/proc/{pid}/status", "VmHWM:")
                pss += _kb(f"/proc/{pid}/smaps_rollup", "Pss:")
                if pid not in self.names:
                    with open(f"/proc/{pid}/cmdline", "rb") as handle:
                        argv = handle.read().split(b"\0")
                    self.names[pid] = _process_name(argv)
            except (OSError, ValueError):
                continue  # exited meanwhile
            if hwm:
                self.hwm_kb[pid] = max(hwm, self.hwm_kb.get(pid, 0))
        self.pss_peak_kb = max(self.pss_peak_kb, pss)
        self.samples += 1


def _process_name(argv: list[bytes]) -> str:
    words = [a.decode(errors="replace") for a in argv if a]
    if "-m" in words[:-1]:
        return words[words.index("-m") + 1].rpartition(".")[2]
    return os.path.basename(words[0]) if words else "?"


def score(export: str, feed: str, output: str, engine: str) -> dict:
    """One pipelines.score process: seconds; CPU seconds and the largest process's peak RSS MB
    over the process tree (exact); from /proc samples, each process's peak MB by name and the
    tree's largest simultaneous Pss MB."""
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
    process = subprocess.Popen(command, cwd=REPO, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    sampler = TreeSampler(process.pid)
    sampler.start()
    stdout, stderr = process.communicate()
    sampler.stop()
    tail = stdout.rpartition("@@ ")[2]
    if process.returncode or not tail.strip() or int(tail.split()[3]):
        sys.exit(f"pipelines.score {engine} on {feed} failed:\n{stderr[-3000:]}")
    seconds, cpu, peak_kb, _ = tail.split()
    processes = sorted(((sampler.names.get(pid, "?"), kb / 1024)
                        for pid, kb in sampler.hwm_kb.items()), key=lambda p: -p[1])
    return {"seconds": float(seconds), "cpu": float(cpu), "peak": int(peak_kb) / 1024,
            "processes": processes, "pss_peak": sampler.pss_peak_kb / 1024,
            "samples": sampler.samples}


def tree_memory(result: dict) -> str:
    """Each sampled process's peak (largest first), their sum and the tree's Pss peak."""
    big = [(name, mb) for name, mb in result["processes"] if mb >= 50]
    small = len(result["processes"]) - len(big)
    parts = " + ".join(f"{name} {mb:,.0f}" for name, mb in big)
    more = f" (+{small} small)" if small else ""
    total = sum(mb for _, mb in result["processes"])
    return (f"per process {parts}{more} = {total:,.0f} MB; tree Pss peak "
            f"{result['pss_peak']:,.0f} MB ({result['samples']} samples)")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench_out/scoring")
    parser.add_argument("--sizes", default="1,4", help="millions of rows (memory)")
    parser.add_argument("--engines", default="local,beam,beam2", help="throughput, on 1 M rows")
    parser.add_argument("--memory_engines", default="local,beam,beam2",
                        help="engines whose peak memory is measured on every size")
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
    measured: dict[tuple[str, int], dict] = {}
    if not args.skip_memory:
        for engine in [e for e in args.memory_engines.split(",") if e]:
            print(f"peak RSS of pipelines.score {' '.join(ENGINES[engine])} (CSV.gz out), "
                  f"whole process tree; largest process exact (ru_maxrss), the rest sampled "
                  f"every 0.2 s:")
            for size in sizes:
                rows = rows_of(feeds[size])
                result = score(export, feeds[size],
                               os.path.join(scores, f"{engine}-{size}M"), engine)
                measured[engine, size] = result
                print(f"  {engine:6s} {rows:>10,} rows: largest process {result['peak']:7,.0f} MB"
                      f"   {result['seconds']:6.1f} s   {rows / result['seconds']:9,.0f} rows/s\n"
                      f"         {tree_memory(result)}", flush=True)
            if len(sizes) > 1 and all((engine, size) in measured for size in sizes):
                low, high = measured[engine, sizes[0]], measured[engine, sizes[-1]]
                print(f"  {engine}: {sizes[-1]} M rows against {sizes[0]} M: largest process "
                      f"{high['peak'] / low['peak'] - 1:+.1%}, tree Pss peak "
                      f"{high['pss_peak'] / low['pss_peak'] - 1:+.1%}", flush=True)
    if not args.skip_throughput:
        rows = rows_of(feeds[1])
        print(f"pipelines.score over {rows:,} rows (14 CSV.gz files), whole processes:")
        for engine in [e for e in args.engines.split(",") if e]:
            reused = (engine, 1) in measured
            result = measured.get((engine, 1)) or score(export, feeds[1],
                                                       os.path.join(scores, f"{engine}-1M"),
                                                       engine)
            seconds, cpu, peak = result["seconds"], result["cpu"], result["peak"]
            print(f"  {engine:6s} {seconds:6.1f} s {rows / seconds:9,.0f} rows/s   "
                  f"CPU {cpu:6.1f} s {rows / cpu:9,.0f} rows per CPU-second   peak {peak:5,.0f} MB   "
                  f"({' '.join(ENGINES[engine])}){'  [the memory run]' if reused else ''}",
                  flush=True)
    if not args.skip_dead_letters:
        clean, dirty = dead_letter_inputs(out, feeds[1])
        print("pipelines.score --engine=local over 20,000 rows, whole processes:")
        for name, path in (("clean", clean), ("1,000 bad rows", dirty)):
            result = score(export, path, os.path.join(scores, "dead_letters"), "local")
            print(f"  {name:15s} {result['seconds']:6.1f} s", flush=True)
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
