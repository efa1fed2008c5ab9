"""Are the training defaults right for small and large logs alike? Click AUC of presets under
named flag sets, on simulator settings of two sizes.

    .venv/bin/python benchmarks/defaults.py --out=bench_out/defaults [--settings=legacy,entangled
        --sizes=small,large --presets=single_ctr,ple --variants=previous,current --seeds=0,1]

Sizes: `small` (1,700 users, 900 items, 14 days: about 170 k impressions, one epoch about 64
steps of 2,048 on the 11 training days, like the public logs the issue describes) and `large`
(the simulator's default, about 1 M impressions, about 395 steps). Each run trains one epoch at
batch 2,048 on all days but the last 3 and reports the ctr tower's AUC on the last 3 (the
AUC of the served score for presets whose score is the ctr). Variants are named flag sets
(VARIANTS); `current` is the defaults as they are now. Finished runs are reused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from orca_table import prepare  # noqa: E402

from common import module  # noqa: E402

SIZES = {"small": ["--num_users=1700", "--num_items=900", "--days=14"],
         "large": ["--num_users=10000", "--num_items=5000", "--days=14"]}
# Flag sets. `previous`: the defaults before this change (Keras' Adam at 1e-3 on every variable,
# embeddings uniform in [-0.05, 0.05]).
VARIANTS = {
    "previous": ["--optimizer=adam", "--embedding_init_std=-1", "--learning_rate=0.001"],
    "current": [],
    "adam_normal_init": ["--optimizer=adam", "--embedding_init_std=0.0001"],
    "lazy_adam_uniform_init": ["--optimizer=lazy_adam", "--embedding_init_std=-1"],
    "lazy_adam_normal_init": ["--optimizer=lazy_adam", "--embedding_init_std=0.0001"],
    "lazy_adam_normal_init_lr_3e-3": ["--optimizer=lazy_adam", "--embedding_init_std=0.0001",
                                      "--learning_rate=0.003"],
    "lazy_adam_normal_init_lr_1e-2": ["--optimizer=lazy_adam", "--embedding_init_std=0.0001",
                                      "--learning_rate=0.01"],
}


def auc_of(metrics):
    return metrics.get("towers", {}).get("ctr", {}).get("auc_ctr", metrics["auc_ctr"])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench_out/defaults")
    parser.add_argument("--settings", default="legacy,entangled")
    parser.add_argument("--sizes", default="small,large")
    parser.add_argument("--presets", default="single_ctr,ple")
    parser.add_argument("--variants", default="previous,current")
    parser.add_argument("--seeds", default="0,1")
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for size in args.sizes.split(","):
        for setting in args.settings.split(","):
            world = os.path.join(out, size)
            train, evaluate, stats, summary = prepare(world, setting, SIZES[size])
            for preset in args.presets.split(","):
                for variant in args.variants.split(","):
                    aucs, speeds = [], []
                    for seed in seeds:
                        model_dir = os.path.join(world, setting, "models",
                                                 f"{preset}-{variant}-seed{seed}")
                        path = os.path.join(model_dir, "eval_metrics.json")
                        if not os.path.exists(path):
                            module("ranking.train", f"--model={preset}", f"--train={train}",
                                   f"--eval={evaluate}", f"--stats={stats}",
                                   f"--model_dir={model_dir}", f"--seed={seed}", "--epochs=1",
                                   "--batch_size=2048", "--progress=none",
                                   *VARIANTS[variant])
                        with open(path) as handle:
                            metrics = json.load(handle)
                        aucs.append(auc_of(metrics))
                        speeds.append(metrics.get("train_examples_per_second", np.nan))
                    row = {"size": size, "setting": setting, "rows": summary["rows"],
                           "preset": preset, "variant": variant,
                           "auc_mean": float(np.mean(aucs)),
                           "auc_std": float(np.std(aucs, ddof=1)) if len(aucs) > 1 else 0.0,
                           "examples_per_second": float(np.nanmean(speeds))}
                    rows.append(row)
                    print(f"{size:5s} {setting:9s} {preset:10s} {variant:22s} click AUC "
                          f"{row['auc_mean']:.4f} ± {row['auc_std']:.4f}  "
                          f"{row['examples_per_second']:,.0f} examples/s", flush=True)
    with open(os.path.join(out, "defaults.json"), "w") as handle:
        json.dump({"variants": {k: VARIANTS[k] for k in args.variants.split(",")},
                   "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
