"""Are the training defaults right for small and large logs alike? Test-day metrics of presets
under named flag sets, on simulator settings of two sizes.

    .venv/bin/python benchmarks/defaults.py --out=bench_out/defaults [--settings=legacy,entangled
        --sizes=small,large --presets=single_ctr,ple --variants=one_epoch,protocol --seeds=0,1]

Sizes: `small` (1,700 users, 900 items, 14 days: about 170 k impressions, like the public logs
the issues describe) and `large` (the simulator's default, about 1 M impressions). Training
uses all days but the last 3, which are the test days. Variants are named flag sets
(VARIANTS): `one_epoch` is training as it was before model selection (one epoch, no
validation); the `protocol` variants hold out the last training day (--validation_days=1),
train up to 10 epochs with early stopping and are tested after the refit pass over the
held-out day (`protocol_norefit`: with the best checkpoint as selected). Printed per
(size, setting, preset, variant): the ctr tower's click AUC (the served score's for presets
without a ctr tower), the served score's valid-read AUC, the dwell MAEclass where there is one,
the selected step and the wall time, mean ± std over seeds. Finished runs are reused.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from orca_table import prepare  # noqa: E402

from common import module  # noqa: E402

SIZES = {"small": ["--num_users=1700", "--num_items=900", "--days=14"],
         "large": ["--num_users=10000", "--num_items=5000", "--days=14"]}
PROTOCOL = ["--validation_days=1", "--max_epochs=10"]
VARIANTS = {
    "one_epoch": ["--epochs=1"],
    "protocol": PROTOCOL,
    "protocol_norefit": PROTOCOL + ["--refit=none"],
    "protocol_patience1": PROTOCOL + ["--patience=1"],
    "protocol_lr1e-3": PROTOCOL + ["--learning_rate=0.001"],
    "protocol_batch512": PROTOCOL + ["--batch_size=512"],
    "protocol_batch512_lr1e-3": PROTOCOL + ["--batch_size=512", "--learning_rate=0.001"],
    "protocol_l2emb1e-5": PROTOCOL + ["--l2_embedding=1e-5"],
    "protocol_l2emb1e-4": PROTOCOL + ["--l2_embedding=1e-4"],
    "protocol_l2dense1e-6": PROTOCOL + ["--l2_dense=1e-6"],
    "protocol_dropout0.1": PROTOCOL + ["--dropout=0.1"],
    "protocol_batch_norm": PROTOCOL + ["--batch_norm"],
}


def auc_of(metrics):
    return metrics.get("towers", {}).get("ctr", {}).get("auc_ctr", metrics["auc_ctr"])


def stats_of(values):
    values = np.asarray(values, float)
    return float(np.nanmean(values)), (float(np.nanstd(values, ddof=1)) if len(values) > 1
                                       else 0.0)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="bench_out/defaults")
    parser.add_argument("--settings", default="legacy,entangled")
    parser.add_argument("--sizes", default="small,large")
    parser.add_argument("--presets", default="single_ctr,ple")
    parser.add_argument("--variants", default="one_epoch,protocol")
    parser.add_argument("--seeds", default="0,1")
    args = parser.parse_args()
    out = os.path.abspath(args.out)
    seeds = [int(s) for s in args.seeds.split(",")]
    rows = []
    for size in args.sizes.split(","):
        for setting in args.settings.split(","):
            world = os.path.join(out, size)
            train, evaluate, all_stats, summary = prepare(world, setting, SIZES[size])
            stats = all_stats["project"]
            for preset in args.presets.split(","):
                for variant in args.variants.split(","):
                    found = {k: [] for k in ("auc", "auc_vr", "mae", "step", "seconds")}
                    for seed in seeds:
                        model_dir = os.path.join(world, setting, "models",
                                                 f"{preset}-{variant}-seed{seed}")
                        path = os.path.join(model_dir, "eval_metrics.json")
                        started = time.perf_counter()
                        if not os.path.exists(path):
                            module("ranking.train", f"--model={preset}", f"--train={train}",
                                   f"--eval={evaluate}", f"--stats={stats}",
                                   f"--model_dir={model_dir}", f"--seed={seed}",
                                   "--progress=none", *VARIANTS[variant])
                            with open(os.path.join(model_dir, "wall_seconds"), "w") as handle:
                                handle.write(str(time.perf_counter() - started))
                        with open(path) as handle:
                            metrics = json.load(handle)
                        with open(os.path.join(model_dir, "wall_seconds")) as handle:
                            found["seconds"].append(float(handle.read()))
                        found["auc"].append(auc_of(metrics))
                        found["auc_vr"].append(metrics["auc_valid_read"])
                        found["mae"].append(metrics.get("dt_mae_class", np.nan))
                        found["step"].append(metrics.get("selected_step",
                                                         metrics["global_step"]))
                    row = {"size": size, "setting": setting, "rows": summary["rows"],
                           "preset": preset, "variant": variant}
                    for key, values in found.items():
                        row[f"{key}_mean"], row[f"{key}_std"] = stats_of(values)
                    rows.append(row)
                    print(f"{size:5s} {setting:9s} {preset:10s} {variant:26s} click AUC "
                          f"{row['auc_mean']:.4f} ± {row['auc_std']:.4f}  valid-read AUC "
                          f"{row['auc_vr_mean']:.4f} ± {row['auc_vr_std']:.4f}  MAEclass "
                          f"{row['mae_mean']:.3f}  step {row['step_mean']:.0f}  "
                          f"{row['seconds_mean']:.0f} s", flush=True)
    with open(os.path.join(out, "defaults.json"), "w") as handle:
        json.dump({"variants": {k: VARIANTS[k] for k in args.variants.split(",")},
                   "seeds": seeds, "rows": rows}, handle, indent=2)


if __name__ == "__main__":
    main()
