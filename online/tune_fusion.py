"""Tune the serving score's fusion weights of one export on the online simulator (SPEC §7).

    python -m online.tune_fusion --saved_model=serving/ple_orca \\
        --baseline=single_ctr=serving/single_ctr --sim=sim --stats=stats --output_dir=tuning \\
        [--objective=valid_reads --min_clicks=0.98 --grid=0,0.25,0.5,0.75,1,1.5,2,3
         --days=2 --tune_seed=1 --report_seed=2 --consequences=chosen]

The export's stored fusion (`ranking.fusion`, read from its `score_fusion` signature) names the
outputs and the space; the first output keeps its weight and every other one sweeps `--grid`
(a product over them when there are several). Each candidate weighting ranks the same sessions
(common random numbers) through the export's own outputs, computed once per candidate row
(`online.policies.OutputFusionPolicy`), beside the baseline policy. The chosen weights maximize
`--objective` per user subject to clicks per user at least `--min_clicks` times the baseline's.

Tuning and reporting use different sessions: the sweep runs on the sessions of `--tune_seed`,
and the chosen weights and the export's stored ones are then measured on those of
`--report_seed`, so the reported gain is not measured where it was chosen (the same seed for
both is run, with a warning, and frontier.md says the report is not held out).

Writes OUTPUT_DIR/frontier.md, frontier.json (every weighting with its per-user metrics and
intervals, the choice, and the report), frontier.png (clicks against the objective per user),
and prints the `--score_weights` for `python -m export.saved_model`.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
import time

from absl import flags

from core import cli, settings, stats_artifact  # cli first: it quiets TensorFlow before it loads
from core.atomic import atomic_directory
from core.errors import InputError
from online import metrics, simulation
from online.policies import OutputFusionPolicy, SavedModelPolicy, make_policies
from ranking.fusion import Fusion
from ranking.metrics import json_ready, metric_text

OBJECTIVES = ("valid_reads", "clicks", "dwell_seconds", "impressions")
FLAGS = flags.FLAGS
flags.DEFINE_string("saved_model", None, "Export (version directory or export base) to tune.")
flags.DEFINE_string("baseline", None, "NAME=SAVED_MODEL (or random, logging): the policy the "
                    "clicks floor and the changes are measured against.")
flags.DEFINE_string("sim", None, "Simulation directory (pipelines.simulate) whose world to use.")
flags.DEFINE_string("stats", None, "Stats artifact of the training window (valid-read rules).")
flags.DEFINE_string("output_dir", None, "Where frontier.md, frontier.json and frontier.png go.")
flags.DEFINE_enum("objective", "valid_reads", list(OBJECTIVES), "What to maximize per user.")
flags.DEFINE_float("min_clicks", 0.98, "Floor on clicks per user, as a fraction of the "
                   "baseline's.")
flags.DEFINE_list("grid", ["0", "0.25", "0.5", "0.75", "1", "1.5", "2", "3"],
                  "Weights swept for every output but the first.")
flags.DEFINE_integer("tune_seed", 1, "Seed of the sessions the weights are chosen on.",
                     lower_bound=0, upper_bound=2 ** 63 - 1)
flags.DEFINE_integer("report_seed", 2, "Seed of the sessions the choice is reported on.",
                     lower_bound=0, upper_bound=2 ** 63 - 1)
settings.define_flags(simulation.OnlineConfig, skip=("seed",))
flags.mark_flags_as_required(["saved_model", "baseline", "sim", "stats", "output_dir"])


def stored_fusion(model: SavedModelPolicy) -> Fusion:
    """The fusion an export's `score` uses (its `score_fusion` signature)."""
    import tensorflow as tf

    if "score_fusion" not in model.model.signatures:
        raise InputError(f"{model.path} has no score_fusion signature: export it again with "
                         "python -m export.saved_model")
    stored = model.model.signatures["score_fusion"](unused=tf.constant(0))
    names = [n.decode() for n in stored["outputs"].numpy()]
    weights = [float(w) for w in stored["weights"].numpy()]
    try:
        return Fusion(tuple(zip(names, weights)), stored["space"].numpy().decode())
    except ValueError as error:  # a non-finite weight, stored before exports refused one
        raise InputError(f"{model.path}'s stored score: {error}: export it again with finite "
                         "--score_weights") from None


def candidates(stored: Fusion, grid) -> list[Fusion]:
    """The stored fusion's first weight fixed, every other weight from `grid`."""
    first = stored.weights[0]
    others = [name for name, _ in stored.weights[1:]]
    return [Fusion((first,) + tuple(zip(others, values)), stored.space)
            for values in itertools.product(grid, repeat=len(others))]


def measure(world, artifact, config, baseline, model, fusions, calibration) -> list[dict]:
    """Per fusion: its online metrics against the baseline on `config`'s sessions."""
    base = simulation.simulate(world, {"baseline": baseline}, artifact, config, calibration)
    cache: dict = {}  # the model's outputs per (session, item), shared by every fusion
    rows = []
    for fusion in fusions:
        policy = OutputFusionPolicy(model, fusion, cache)
        got = simulation.simulate(world, {"fusion": policy}, artifact, config, calibration)
        table = metrics.online_metrics({"baseline": base["baseline"], "fusion": got["fusion"]},
                                       world.config.num_users)
        rows.append({"fusion": fusion.to_json(), "metrics": table["fusion"],
                     "baseline": table["baseline"]})
    return rows


def choose(rows: list[dict], objective: str, min_clicks: float) -> int | None:
    """Index of the row with the most `objective` per user among those whose clicks per user
    reach `min_clicks` x the baseline's; None if none does."""
    eligible = [i for i, r in enumerate(rows) if r["metrics"]["clicks_per_user"]
                >= min_clicks * r["baseline"]["clicks_per_user"]]
    if not eligible:
        return None
    return max(eligible, key=lambda i: rows[i]["metrics"][f"{objective}_per_user"])


def plot_frontier(path: str, rows: list[dict], chosen: int | None, objective: str,
                  min_clicks: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.8, 4.8))
    x = [r["metrics"]["clicks_per_user"] for r in rows]
    y = [r["metrics"][f"{objective}_per_user"] for r in rows]
    xe = [r["metrics"]["clicks_per_user_ci95"] for r in rows]
    ye = [r["metrics"][f"{objective}_per_user_ci95"] for r in rows]
    ax.errorbar(x, y, xerr=xe, yerr=ye, fmt="o", color="#4c72b0", ms=4, lw=0.8,
                label="weightings")
    for r, xi, yi in zip(rows, x, y):
        label = ", ".join(f"{n}={w:g}" for n, w in list(r["fusion"]["weights"].items())[1:])
        ax.annotate(label, (xi, yi), fontsize=6, xytext=(3, 3), textcoords="offset points")
    base = rows[0]["baseline"]
    ax.plot([base["clicks_per_user"]], [base[f"{objective}_per_user"]], "s", color="#c44e52",
            label="baseline")
    ax.axvline(min_clicks * base["clicks_per_user"], color="#c44e52", ls="--", lw=0.8,
               label=f"clicks floor ({min_clicks:g} x baseline)")
    if chosen is not None:
        ax.plot([x[chosen]], [y[chosen]], "*", color="#55a868", ms=14, label="chosen")
    ax.set_xlabel("clicks per user")
    ax.set_ylabel(f"{objective.replace('_', ' ')} per user")
    ax.set_title("Fusion weights on the online simulator (tuning sessions)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def render(rows, chosen, report, objective, stored, held_out: bool = True) -> str:
    lines = [f"Space {stored.space}; first output {stored.weights[0][0]} at weight "
             f"{stored.weights[0][1]:g}. Tuning sessions:", "",
             "| weights | clicks / user | valid reads / user | dwell s / user | impressions / "
             "user | clicks vs baseline |", "|---|---|---|---|---|---|"]
    for i, r in enumerate(rows):
        m = r["metrics"]
        weights = ", ".join(f"{n}={w:g}" for n, w in r["fusion"]["weights"].items())
        mark = " (chosen)" if i == chosen else ""
        lines.append(f"| {weights}{mark} | {m['clicks_per_user']:.3f} | "
                     f"{m['valid_reads_per_user']:.3f} | {m['dwell_seconds_per_user']:.1f} | "
                     f"{m['impressions_per_user']:.2f} | "
                     f"{metric_text(m['relative_change']['clicks']['percent'], 1, '+', ' %')} |")
    if report:
        seed = "another seed" if held_out else "the tuning seed: not held out"
        lines += ["", f"Report sessions ({seed}), against the baseline (objective "
                  f"{objective}):", "", "| weights | " + " | ".join(metrics.CHANGES) + " |",
                  "|---|" + "---|" * len(metrics.CHANGES)]
        for label, r in report.items():
            change = r["metrics"]["relative_change"]
            lines.append(f"| {label} | " + " | ".join(
                metrics.change_text(change[c]) for c in metrics.CHANGES) + " |")
    return "\n".join(lines) + "\n"


def main(argv):
    del argv
    started = time.perf_counter()
    try:
        grid = [float(w) for w in FLAGS.grid]
    except ValueError:
        raise InputError(f"--grid must be comma-separated numbers, not {FLAGS.grid}") from None
    if not grid or not all(math.isfinite(w) for w in grid):
        raise InputError(f"--grid must be one or more finite weights, not "
                         f"{','.join(FLAGS.grid) or 'none'}")
    if not (math.isfinite(FLAGS.min_clicks) and FLAGS.min_clicks >= 0):
        raise InputError(f"--min_clicks must be a finite multiple >= 0 of the baseline's clicks "
                         f"per user, not {FLAGS.min_clicks}")
    config = settings.from_flags(simulation.OnlineConfig, skip=("seed",))
    simulation.check_config(config)
    if FLAGS.tune_seed == FLAGS.report_seed:
        cli.warn(f"--tune_seed and --report_seed are both {FLAGS.tune_seed}: the report's "
                 "sessions are those the weights were chosen on, so its changes are not "
                 "held out")
    for seed in (FLAGS.tune_seed, FLAGS.report_seed):
        simulation.check_config(dataclasses.replace(config, seed=seed))
    world = simulation.world_of(FLAGS.sim)
    for warning in simulation.check_world(world, config):
        cli.warn(warning)
    artifact = stats_artifact.load_artifact(FLAGS.stats)
    simulation.check_artifact(FLAGS.sim, artifact)

    def baseline_of(seed: int):
        return list(make_policies([FLAGS.baseline], seed, flag="--baseline").values())[0]

    # A built-in baseline (random, logging) draws its noise keyed by the measurement's seed,
    # as `online.ab_test`'s policies do: the report's draws are not the tuning's. A SavedModel
    # baseline has no noise: loaded once.
    tune_baseline = baseline_of(FLAGS.tune_seed)
    report_baseline = (baseline_of(FLAGS.report_seed) if hasattr(tune_baseline, "seed")
                       else tune_baseline)
    model = SavedModelPolicy(FLAGS.saved_model)
    stored = stored_fusion(model)
    if len(stored.weights) < 2:
        raise InputError(f"{model.path} scores with one output ({stored.formula()}): nothing to "
                         "weigh")
    with atomic_directory(FLAGS.output_dir, what="--output_dir",
                          may_replace=simulation.is_tuning_output) as tmp:
        tune = dataclasses.replace(config, seed=FLAGS.tune_seed)
        rows = measure(world, artifact, tune, tune_baseline, model,
                       candidates(stored, grid),
                       simulation.calibrate(world, artifact, tune))
        chosen = choose(rows, FLAGS.objective, FLAGS.min_clicks)
        report_config = dataclasses.replace(config, seed=FLAGS.report_seed)
        to_report = {"stored (" + stored.formula() + ")": stored}
        if chosen is not None:
            to_report["chosen"] = Fusion.from_json(rows[chosen]["fusion"])
        reported = measure(world, artifact, report_config, report_baseline, model,
                           list(to_report.values()),
                           simulation.calibrate(world, artifact, report_config))
        report = dict(zip(to_report, reported))
        plot_frontier(os.path.join(tmp, "frontier.png"), rows, chosen, FLAGS.objective,
                      FLAGS.min_clicks)
        text = render(rows, chosen, report, FLAGS.objective, stored,
                      held_out=FLAGS.tune_seed != FLAGS.report_seed)
        with open(os.path.join(tmp, "frontier.md"), "w") as handle:
            handle.write(text)
        with open(os.path.join(tmp, "frontier.json"), "w") as handle:
            json.dump(json_ready({"saved_model": model.path, "baseline": FLAGS.baseline,
                       "objective": FLAGS.objective, "min_clicks": FLAGS.min_clicks,
                       "config": dataclasses.asdict(config), "tune_seed": FLAGS.tune_seed,
                       "report_seed": FLAGS.report_seed, "stored": stored.to_json(),
                       "rows": rows, "chosen": chosen, "report": report}), handle, indent=2,
                      allow_nan=False)
    print(text)
    if chosen is None:
        print(f"no weighting keeps clicks per user at {FLAGS.min_clicks:g} x the baseline's; "
              f"wrote {FLAGS.output_dir}")
        return
    weights = ",".join(f"{n}={w:g}" for n, w in rows[chosen]["fusion"]["weights"].items())
    print(f"chosen in {time.perf_counter() - started:.0f} s: --score_weights={weights} "
          f"--score_space={stored.space}   (wrote {FLAGS.output_dir})")


if __name__ == "__main__":
    cli.run(main)
