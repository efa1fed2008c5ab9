"""Serving latency and batch-scoring throughput of an exported model.

    .venv/bin/python benchmarks/bench_serving.py --saved_model=bench_out/serving/vr_ndt \\
        --logs='demo_out/sim/logs/day-*.csv.gz' [--rows=1000000 --engines=local,beam]

1. `serving_default` latency, in-process (tf.saved_model.load, the same graph TF Serving runs),
   after warmup: p50 and p99 over many requests at batch 1, 64 and 1024 of serialized
   tf.Examples built from real log rows.
2. `pipelines.score` rows/s over the first --rows rows of --logs (whole processes, imports
   included), for each engine.
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import core  # noqa: E402,F401  (selects Keras 2 before TensorFlow loads)


def latency(saved_model: str, logs_glob: str, requests: dict) -> None:
    import tensorflow as tf

    from core import log_schema, log_writers, logs
    from pipelines.score import scoring

    signature = scoring.read_signature(saved_model)
    source = logs.open_logs(logs_glob, column_types={
        k: v for k, v in signature.features.items() if k not in log_schema.FIXED_TYPES})
    batch = next(iter(source.dataset(1024, columns=tuple(signature.features), check_streams=False)))
    examples = log_writers.serialize_examples({n: batch[n].numpy() for n in signature.features})
    serve = tf.saved_model.load(signature.path).signatures["serving_default"]
    print(f"serving_default latency, in-process after warmup ({signature.path}):")
    for size, count in requests.items():
        payload = tf.constant(examples[:size])
        for _ in range(20):
            serve(examples=payload)
        times = []
        for _ in range(count):
            started = time.perf_counter()
            serve(examples=payload)["score"].numpy()
            times.append(time.perf_counter() - started)
        times = np.array(times) * 1000
        print(f"  batch {size:5d}: p50 {np.percentile(times, 50):7.2f} ms   p99 "
              f"{np.percentile(times, 99):7.2f} ms   ({size / np.median(times) * 1000:,.0f} "
              f"rows/s at p50; {count} requests)")


def scoring_throughput(saved_model, logs_glob, rows, engines) -> None:
    import pandas as pd

    files = sorted(glob.glob(logs_glob))
    work = tempfile.mkdtemp(prefix="bench-score-")
    taken, parts = 0, []
    for path in files:  # whole files until --rows is reached
        if taken >= rows:
            break
        parts.append(path)
        taken += len(pd.read_csv(path, usecols=["click"]))
    print(f"pipelines.score over {taken:,} rows ({len(parts)} files), whole processes:")
    env = dict(os.environ, PYTHONPATH=REPO)
    for engine in engines:
        out = os.path.join(work, engine)
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-m", "pipelines.score",
                               f"--saved_model={saved_model}", f"--input={','.join(parts)}",
                               f"--output={out}", f"--engine={engine}"],
                              cwd=REPO, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - started
        if done.returncode:
            sys.exit(done.stderr[-3000:])
        print(f"  engine {engine:5s}: {seconds:6.1f} s   {taken / seconds:,.0f} rows/s")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--saved_model", required=True)
    parser.add_argument("--logs", required=True)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--engines", default="local,beam")
    parser.add_argument("--skip_latency", action="store_true")
    args = parser.parse_args()
    if not args.skip_latency:
        latency(args.saved_model, sorted(glob.glob(args.logs))[0],
                {1: 2000, 64: 1000, 1024: 200})
    scoring_throughput(args.saved_model, args.logs, args.rows,
                       [e for e in args.engines.split(",") if e])


if __name__ == "__main__":
    main()
