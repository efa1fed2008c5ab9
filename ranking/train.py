"""Train a ranking model from raw logs, labelled on the fly (SPEC §5).

    python -m ranking.train --model=vr_ndt --train='sim/logs/day-0*.csv.gz' \\
        --eval='sim/logs/day-1[1-3].csv.gz' --stats=stats --model_dir=models/vr_ndt \\
        [--epochs=1 --batch_size=2048 --learning_rate=1e-3 --seed=0 --feature_config=features.json
         --post_click_features=category,item_length --negative_weighting=unit|ndt
         --baseline_metrics=models/single_ctr/eval_metrics.json --flagfile=train.flags]

Every setting of `ranking.training.TrainConfig` (and of the configs nested in it: the model's
backbone, towers and ORCA, the optimizer, MetaBalance) is a flag, defined once with its default
and help in that config (`core.settings`); `--helpfull` lists them. Re-running the same command
after a crash resumes from the newest checkpoint in --model_dir.
"""

from __future__ import annotations

from absl import flags

from core import cli, phases, settings  # cli first: it quiets TensorFlow before it loads
from ranking import preemption

preemption.end_at_once_on_sigterm()  # before TensorFlow's import, a few seconds

from core.errors import InputError  # noqa: E402
from ranking import evaluation, training  # noqa: E402

FLAGS = flags.FLAGS
settings.define_flags(training.TrainConfig)
flags.DEFINE_string("model_dir", None, "Checkpoints, TensorBoard logs, config.json, "
                    "eval_metrics.json.")
flags.mark_flag_as_required("model_dir")


def main(argv):
    del argv
    config = settings.from_flags(training.TrainConfig)
    if FLAGS["orca"].present and not FLAGS.orca and config.model.spec.orca:
        # ORCA is what these presets are: --noorca would be recorded and not be true.
        backbone = config.model.preset.removesuffix("_orca")
        raise InputError(f"--noorca: {config.model.preset} is {backbone} with ORCA; for "
                         f"{backbone} without it, train --model={backbone}")
    metrics = training.train_and_evaluate(config, FLAGS.model_dir)
    if metrics:
        for line in evaluation.summary_lines(metrics):
            print(line)
        if "phase_seconds" in metrics:
            print("  " + phases.describe(metrics["phase_seconds"]))
        print(f"  wrote {FLAGS.model_dir}/eval_metrics.json")


if __name__ == "__main__":
    cli.run(main)
