"""Training throughput: examples/s of each preset at batch 2048, and of the input alone.

    .venv/bin/python benchmarks/bench_train.py --sim=demo_out/sim --stats=demo_out/stats \\
        [--steps=300 --batch_size=2048 --presets=single_ctr,vr_ndt,mmoe,mmoe_orca,ple,ple_orca
         --project_args=--intra_op_threads=0]

Each preset trains for --steps steps in its own process (`ranking.train`, raw CSV.gz logs of
days 0-10 labelled on the fly); the rate is measured after the first step (which includes
tracing). The input pipeline alone (read, label, shuffle, batch) is timed in this process.
Every run names the simulator's post-click features (ORCA masks them; other presets ignore
the flag). For each `<preset>_orca` measured beside `<preset>`, ORCA's overhead is printed: the
extra time per example, in percent of the backbone's.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
import core  # noqa: E402,F401  (selects Keras 2 before TensorFlow loads)

from common import simulated_days  # noqa: E402  (this file's folder is on sys.path)


def input_rate(train, stats, batch_size, steps):
    from core import stats_artifact
    from core.labeler import labeler_for
    from ranking import data, features

    artifact = stats_artifact.load_artifact(stats)
    source = data.open_source(train)
    spec = features.build_feature_spec(source.schema, artifact.numeric_features)
    labeler = labeler_for(source, artifact)
    dataset = data.labelled_dataset(source, labeler, spec, batch_size, seed=0,
                                    shuffle_buffer=65536).take(steps)
    iterator = iter(dataset)
    next(iterator)
    started, rows = time.perf_counter(), 0
    for _, batch_labels in iterator:
        rows += int(batch_labels["click"].shape[0])
    return rows / (time.perf_counter() - started)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sim", default="demo_out/sim")
    parser.add_argument("--stats", default="demo_out/stats")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch_size", type=int, default=2048)
    parser.add_argument("--presets", default="single_ctr,ctr_logdt,vr_logdt,vr_ndt,"
                        "shared_bottom_dt,mmoe,mmoe_orca,ple,ple_orca,esmm,aitm,deepfm,dcn_v2,"
                        "autoint")
    parser.add_argument("--project_args", default="", help="more ranking.train flags for every "
                        "preset, space-separated (e.g. --intra_op_threads=0)")
    args = parser.parse_args()
    train, _ = simulated_days(args.sim, 3)  # the days before the last 3, as the tables train
    print(f"training examples/s at batch {args.batch_size}, {args.steps} steps, "
          f"{os.cpu_count()} CPUs{', ' + args.project_args if args.project_args else ''}:")
    print(f"  input pipeline alone (read + label + shuffle): "
          f"{input_rate(train, args.stats, args.batch_size, args.steps):,.0f} examples/s")
    env = dict(os.environ, PYTHONPATH=REPO)
    rates = {}
    for preset in args.presets.split(","):
        model_dir = tempfile.mkdtemp(prefix=f"bench-{preset}-")
        done = subprocess.run(
            [sys.executable, "-m", "ranking.train", f"--model={preset}", f"--train={train}",
             f"--stats={args.stats}", f"--model_dir={model_dir}", "--epochs=1",
             f"--steps_per_epoch={args.steps}", f"--batch_size={args.batch_size}",
             "--progress=epoch", f"--checkpoint_every={10 * args.steps}",
             "--post_click_features=category,item_length,publish_age_hours",
             *shlex.split(args.project_args)],
            cwd=REPO, env=env, capture_output=True, text=True)
        if done.returncode:
            sys.exit(done.stderr[-3000:])
        rate = re.search(r"\(([\d,]+) examples/s after the first step\)", done.stdout)
        print(f"  {preset:16s} {rate.group(1) if rate else '?':>8s} examples/s", flush=True)
        if rate:
            rates[preset] = float(rate.group(1).replace(",", ""))
    for preset, rate in rates.items():
        base = preset[:-len("_orca")] if preset.endswith("_orca") else None
        if base in rates:
            print(f"  ORCA's overhead on {base}: {100 * (rates[base] / rate - 1):+.0f} % time per "
                  f"example ({rates[base]:,.0f} -> {rate:,.0f} examples/s)")


if __name__ == "__main__":
    main()
