"""Train a ranking model from raw logs, labelled on the fly (SPEC §5).

    python -m ranking.train --model=vr_ndt --train='sim/logs/day-0*.csv.gz' \
        --eval='sim/logs/day-1[1-3].csv.gz' --stats=stats --model_dir=models/vr_ndt \
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
from ranking import training

FLAGS = flags.FLAGS
settings.define_flags(training.TrainConfig)
flags.DEFINE_string("model_dir", None, "Checkpoints, TensorBoard logs, config.json, "
                    "eval_metrics.json.")
flags.mark_flag_as_required("model_dir")


def main(argv):
    del argv
    metrics = training.train_and_evaluate(settings.from_flags(training.TrainConfig),
                                          FLAGS.model_dir)
    if metrics:
        print(f"eval ({metrics['rows']:,} rows, {metrics['clicks']:,} clicks, "
              f"{metrics['valid_reads']:,} valid reads)")
        print(f"  served score ({metrics['score']['fusion']}): auc_valid_read "
              f"{metrics['auc_valid_read']:.4f}  auc_ctr {metrics['auc_ctr']:.4f}")
        for tower, aucs in metrics["towers"].items():
            print(f"  {tower} tower: auc_valid_read {aucs['auc_valid_read']:.4f}  auc_ctr "
                  f"{aucs['auc_ctr']:.4f}")
        losses = [f"{k} {v:.4f}" for k, v in metrics.items() if k.startswith("logloss")]
        if losses:
            print("  " + "  ".join(losses))
        if "dt_mae_class" in metrics:
            print("  dwell (clicked rows): " + "  ".join(
                f"{k[3:]} {metrics[k]:.4f}" for k in (
                    "dt_mae_class", "dt_rmse_class", "dt_weighted_f1", "dt_macro_precision",
                    "dt_macro_recall", "dt_mae_seconds", "dt_rmse_seconds")))
        if "rel_impr" in metrics:
            rel = metrics["rel_impr"]
            print(f"  RelaImpr vs {rel['baseline']}: auc_valid_read {rel['auc_valid_read']:+.2f}%"
                  f"  auc_ctr {rel['auc_ctr']:+.2f}%")
        if "phase_seconds" in metrics:
            print("  " + phases.describe(metrics["phase_seconds"]))
        print(f"  wrote {FLAGS.model_dir}/eval_metrics.json")


if __name__ == "__main__":
    cli.run(main)
