"""Is training bound by its input or by its step? Examples/s of a preset read from the logs (as
`ranking.train` reads them: parse, label and shuffle in tf.data, beside the step) against the
same preset fed batches already in memory.

    .venv/bin/python benchmarks/profile_training.py --train='SIM/logs/day-0*.csv.gz' \\
        --stats=STATS [--presets=ple,single_ctr --steps=100 --out=bench_out/profile_training]

Each preset trains 3 epochs of `--steps` steps at batch `--batch_size`, twice, in this process:
once as `ranking.train` does, once with the training input replaced by its first `--steps`
batches cached in memory (`tf.data.Dataset.cache`, filled in the first epoch and read back in
the second and third). The printed figure is each epoch's examples/s after its first step (the
project's own definition); the second and third epochs of the cached run are the step alone.
When both runs' later epochs are about equal, the step is the bound and a faster input
pipeline cannot make training faster.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import in_process  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--train", required=True)
    parser.add_argument("--stats", required=True)
    parser.add_argument("--presets", default="ple,single_ctr")
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch_size", type=int, default=2048)
    parser.add_argument("--out", default="bench_out/profile_training")
    args = parser.parse_args()

    from ranking import data, loops, training
    from ranking.models import ModelConfig

    streamed = data.labelled_dataset

    def cached(*positional, **options):
        # Training's epochs (seeded) read one cached dataset; evaluation reads the logs.
        if options.get("seed") is None:
            return streamed(*positional, **options)
        if cached.dataset is None:
            cached.dataset = streamed(*positional, **options).take(args.steps).cache()
        return cached.dataset

    rates, recorded = {}, []
    train_synchronous = loops.train_synchronous

    def recording(run, say):  # each epoch's examples/s, as the loop returns them
        recorded.append(train_synchronous(run, say))
        return recorded[-1]

    loops.train_synchronous = recording
    for preset in args.presets.split(","):
        for mode in ("streamed", "cached"):
            cached.dataset = None
            loops.data.labelled_dataset = cached if mode == "cached" else streamed
            model_dir = os.path.join(args.out, f"{preset}-{mode}")
            shutil.rmtree(model_dir, ignore_errors=True)
            config = training.TrainConfig(
                train=args.train, stats=args.stats, model=ModelConfig(preset),
                batch_size=args.batch_size, epochs=3, steps_per_epoch=args.steps,
                progress="none")
            training.train_and_evaluate(config, model_dir)
            rates[preset, mode] = recorded[-1]
        loops.data.labelled_dataset = streamed
    print(f"examples/s after each epoch's first step, batch {args.batch_size}, "
          f"{args.steps} steps per epoch")
    print(f"{'preset':18s} {'input':9s} {'epoch 1':>9s} {'epoch 2':>9s} {'epoch 3':>9s}")
    for (preset, mode), by_epoch in rates.items():
        print(f"{preset:18s} {mode:9s} " + " ".join(f"{r:9,.0f}" for r in by_epoch))


if __name__ == "__main__":
    in_process(main)
