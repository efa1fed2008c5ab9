"""Where a training step's time goes, by TensorFlow op type: the TensorFlow profiler's trace of
`--steps` steps of a preset on batches already in memory, summed per op type over the
executor's threads (thread-milliseconds per step; on 2 CPUs a step's wall time is about half
the total when both threads are busy).

    .venv/bin/python benchmarks/profile_step.py --train='SIM/logs/day-0*.csv.gz' \\
        --stats=STATS [--preset=ple --steps=20 --batch_size=2048 --out=bench_out/profile_step
        --intra_op_threads=0]

It also prints the step's wall time, the forward pass alone and the gradient alone (no update),
each the mean over the same in-memory batches after a warm-up. Ops of the backward pass are
marked `bwd` (their names start with gradient_tape/).
"""

from __future__ import annotations

import argparse
import collections
import glob
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import in_process  # noqa: E402


def _mean_ms(function, batches) -> float:
    import tensorflow as tf

    for batch in batches[:2]:  # trace and warm up
        function(batch)
    started = time.perf_counter()
    for batch in batches:
        result = function(batch)
    for tensor in tf.nest.flatten(result):  # wait for the last step's values
        if tensor is not None:
            getattr(tensor, "values", tensor).numpy()
    return (time.perf_counter() - started) / len(batches) * 1000


def op_times(trace_dir: str) -> collections.Counter:
    """{(pass, op type): thread-ms} summed over the executor threads of the trace in
    `trace_dir` (the TensorFlow profiler's XSpace)."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    space = xplane_pb2.XSpace()
    with open(glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True)[0],
              "rb") as handle:
        space.ParseFromString(handle.read())
    totals = collections.Counter()
    for plane in space.planes:
        names = {key: meta.name for key, meta in plane.event_metadata.items()}
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            for event in line.events:
                name = names.get(event.metadata_id, "")
                if ":" not in name or "::" in name:  # executor bookkeeping, not an op
                    continue
                kind = "bwd" if name.startswith("gradient_tape") else "fwd"
                totals[kind, name.rsplit(":", 1)[1]] += event.duration_ps / 1e9
    return totals


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", required=True)
    parser.add_argument("--stats", required=True)
    parser.add_argument("--preset", default="ple")
    parser.add_argument("--intra_op_threads", type=int, default=None,
                        help="threads per op (default: ranking.train's; 0: TensorFlow's)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--batch_size", type=int, default=2048)
    parser.add_argument("--top", type=int, default=20)
    parser.add_argument("--out", default="bench_out/profile_step")
    args = parser.parse_args()

    import tensorflow as tf

    from ranking import loops, training
    from ranking.models import ModelConfig

    def profile(run, say):
        batches = list(loops.epoch_dataset(run.config, run.inputs, run.spec, 0,
                                           args.batch_size).take(args.steps))
        model, variables = run.model, run.model.trainable_variables
        step = tf.function(loops.make_replica_step(run), autograph=False)

        def gradient(batch):
            with tf.GradientTape() as tape:
                loss = tf.add_n(list(model.task_losses(batch, training=True).values()))
            return tape.gradient(loss, variables)

        forward = tf.function(lambda batch: model.task_losses(batch, training=True),
                              autograph=False)
        timings = {"step": _mean_ms(step, batches),
                   "forward": _mean_ms(forward, batches),
                   "gradient": _mean_ms(tf.function(gradient, autograph=False), batches)}
        trace = os.path.join(args.out, "trace")
        shutil.rmtree(trace, ignore_errors=True)
        tf.profiler.experimental.start(trace)
        _mean_ms(step, batches)
        tf.profiler.experimental.stop()
        totals = op_times(trace)
        print(f"{args.preset}, batch {args.batch_size}, {len(batches)} in-memory batches: "
              + ", ".join(f"{k} {v:.1f} ms" for k, v in timings.items()) + " (wall, per step)")
        steps = len(batches) + 2  # the profiled pass warms up on two batches first
        print(f"ops in the profiled steps: {sum(totals.values()) / steps:.1f} thread-ms per step")
        print(f"{'pass':4s} {'op':36s} {'thread-ms/step':>15s}")
        for (kind, op), ms in totals.most_common(args.top):
            print(f"{kind:4s} {op:36s} {ms / steps:15.2f}")
        return [float("nan")]

    loops.train_synchronous = profile
    model_dir = os.path.join(args.out, "model")
    shutil.rmtree(model_dir, ignore_errors=True)
    training.train_and_evaluate(training.TrainConfig(
        train=args.train, stats=args.stats, model=ModelConfig(args.preset),
        batch_size=args.batch_size, epochs=1, progress="none",
        **({} if args.intra_op_threads is None else {"intra_op_threads": args.intra_op_threads})),
        model_dir)


if __name__ == "__main__":
    in_process(main)
