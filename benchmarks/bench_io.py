"""Simulator and log-reader throughput on this machine (a benchmark, not a test).

    .venv/bin/python benchmarks/bench_io.py [--num_users=10000 --days=14 --batch_size=4096]

Prints rows/s for: generating the default world's logs in memory, simulating and writing them
(CSV.gz, GZIP TFRecord), and reading them back with `core.logs.read_logs` (CSV.gz, plain
CSV, GZIP TFRecord), each read a full pass over every row.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
import time

from absl import app, flags

from core import cli, logs  # noqa: F401  (cli: quiets TensorFlow before it loads)
from pipelines.simulate import simulator, world_config, writing

FLAGS = flags.FLAGS
flags.DEFINE_integer("num_users", world_config.SimConfig.num_users, "Users of the simulated world.")
flags.DEFINE_integer("days", world_config.SimConfig.days, "Days of logs.")
flags.DEFINE_integer("batch_size", 4096, "Reader batch size.")


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


def read_pass(pattern: str, batch_size: int) -> int:
    rows = 0
    for batch in logs.read_logs(pattern, batch_size):
        rows += int(batch["click"].shape[0])
    return rows


def main(argv):
    del argv
    config = dataclasses.replace(world_config.SimConfig(), num_users=FLAGS.num_users, days=FLAGS.days)
    world = simulator.World(config)
    policy = simulator.LoggingPolicy()
    days, seconds = timed(lambda: [simulator.simulate_day(world, policy, d)
                                   for d in range(config.days)])
    rows = sum(len(d[0]["click"]) for d in days)
    print(f"{'step':<44} {'rows':>10} {'seconds':>8} {'rows/s':>10}")
    print(f"{'simulate in memory':<44} {rows:>10,} {seconds:>8.1f} {rows / seconds:>10,.0f}")
    with tempfile.TemporaryDirectory() as tmp:
        for fmt in ("csv", "tfrecord"):
            _, seconds = timed(lambda fmt=fmt: writing.write_simulation(
                config, os.path.join(tmp, fmt), fmt, plot=False))
            print(f"{'simulate + write ' + fmt:<44} {rows:>10,} {seconds:>8.1f} "
                  f"{rows / seconds:>10,.0f}")
        # A plain-CSV copy of the same logs.
        import gzip
        import shutil
        os.makedirs(os.path.join(tmp, "plain"))
        for name in os.listdir(os.path.join(tmp, "csv", "logs")):
            with gzip.open(os.path.join(tmp, "csv", "logs", name)) as src, \
                    open(os.path.join(tmp, "plain", name[:-3]), "wb") as dst:
                shutil.copyfileobj(src, dst)
        for label, pattern in (("read CSV.gz", "csv/logs/*.csv.gz"),
                               ("read CSV (plain)", "plain/*.csv"),
                               ("read TFRecord (GZIP)", "tfrecord/logs/*.tfrecord.gz")):
            count, seconds = timed(lambda pattern=pattern: read_pass(os.path.join(tmp, pattern),
                                                                     FLAGS.batch_size))
            print(f"{label + f' (batch {FLAGS.batch_size})':<44} {count:>10,} {seconds:>8.1f} "
                  f"{count / seconds:>10,.0f}")
    print(f"machine: {os.cpu_count()} cores")


if __name__ == "__main__":
    app.run(main)
