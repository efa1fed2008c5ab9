"""Online A/B test of ranking policies on the simulator (SPEC §10; `online.simulation`).

    python -m online.ab_test --sim=demo_out/sim --stats=demo_out/stats \\
        --policies=single_ctr=demo_out/serving/single_ctr,vr_ndt=demo_out/serving/vr_ndt,random \\
        --days=3 --output_dir=demo_out/online [--consequences=none|chosen|strong --candidates=50
         --seed=0]

The simulation's world (its summary.json): the same users and items, new sessions, on the
calendar of the simulation's last --days days (or from --start_day). Every policy
(NAME=SAVED_MODEL, or the built-ins `random` and `logging`) ranks the same candidates for the
same sessions, and the same random draws decide the outcome of each slot (common random
numbers). What users do next depends on what they were shown (`--consequences`, defined in
online/consequences.py: leaving a session after each slot, coming back the next day). The first
policy is the baseline of the relative changes and of the dwell-migration heat map (one PNG per
other policy).

Writes OUTPUT_DIR/online.json, online.md and migration-<policy>.png (written to a temporary
directory, then renamed).
"""

from __future__ import annotations

import dataclasses
import json
import os
import time

from absl import flags

from core import cli, settings, stats_artifact  # cli first: it quiets TensorFlow before it loads
from core.atomic import atomic_directory
from online import metrics, simulation
from online.policies import make_policies
from ranking.metrics import json_ready

FLAGS = flags.FLAGS
flags.DEFINE_string("sim", None, "Simulation directory (pipelines.simulate) whose world to use.")
flags.DEFINE_string("stats", None, "Stats artifact of the training window (valid-read rules).")
flags.DEFINE_list("policies", None, "NAME=SAVED_MODEL, random or logging; the first is the "
                  "baseline.")
settings.define_flags(simulation.OnlineConfig)
flags.DEFINE_string("output_dir", None, "Where online.json, online.md and the PNGs go.")
flags.mark_flags_as_required(["sim", "stats", "policies", "output_dir"])




def main(argv):
    del argv
    started = time.perf_counter()
    config = settings.from_flags(simulation.OnlineConfig)
    simulation.check_config(config)
    world = simulation.world_of(FLAGS.sim)
    warnings = simulation.check_world(world, config)
    artifact = stats_artifact.load_artifact(FLAGS.stats)
    simulation.check_artifact(FLAGS.sim, artifact)
    policies = make_policies(FLAGS.policies, config.seed)
    for warning in warnings:
        cli.warn(warning)
    names = list(policies)
    # The output directory is checked (and refused if foreign) before the simulation runs.
    with atomic_directory(FLAGS.output_dir, may_replace=simulation.is_ab_test_output,
                          what="--output_dir") as tmp:
        calibration = simulation.calibrate(world, artifact, config)
        results = simulation.simulate(world, policies, artifact, config, calibration)
        table = metrics.online_metrics(results, world.config.num_users)
        figures = []
        for name in names[1:]:
            change, edges = metrics.dwell_migration(world, results[names[0]], results[name])
            path = os.path.join(tmp, f"migration-{name}.png")
            metrics.plot_migration(path, change, edges,
                                   f"Clicks by dwell: {name} vs {names[0]}")
            figures.append(os.path.basename(path))
        markdown = metrics.render(table, names[0])
        with open(os.path.join(tmp, "online.md"), "w") as handle:
            handle.write(markdown)
        with open(os.path.join(tmp, "online.json"), "w") as handle:
            json.dump(json_ready({"policies": FLAGS.policies,
                       # Which version of an export base each policy ranked with.
                       "saved_models": {name: policy.path for name, policy in policies.items()
                                        if hasattr(policy, "path")},
                       "sim": FLAGS.sim, "stats": FLAGS.stats,
                       "config": dataclasses.asdict(config),
                       "calibration": dataclasses.asdict(calibration), "metrics": table,
                       "figures": figures}), handle, indent=2, allow_nan=False)
    rows = sum(len(r["click"]) for r in results.values())
    seconds = time.perf_counter() - started
    print(f"online: {len(names)} policies x {config.days} days, consequences "
          f"{config.consequences}, {rows:,} impressions in {seconds:.1f} s "
          f"({rows / max(seconds, 1e-9):,.0f} impressions/s)")
    if config.consequences != "none":  # with none nothing is calibrated
        print(f"  calibrated on the logging policy: leave offset "
              f"{calibration.leave_offset:+.3f}, reference outcome score "
              f"{calibration.reference_score:+.3f}")
    print(markdown)
    print(f"wrote {FLAGS.output_dir}/online.md, online.json and "
          f"{', '.join(figures) or 'no heat map'}")


if __name__ == "__main__":
    cli.run(main)
