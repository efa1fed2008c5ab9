"""Train a ranking model from raw logs, labelled on the fly (SPEC §5).

    python -m ranking.train --model=vr_ndt --train='sim/logs/day-0*.csv.gz' \
        --eval='sim/logs/day-1[1-3].csv.gz' --stats=stats --model_dir=models/vr_ndt \
        [--epochs=1 --batch_size=2048 --learning_rate=1e-3 --seed=0 --feature_config=features.json
         --post_click_features=category,item_length --negative_weighting=unit|ndt
         --baseline_metrics=models/single_ctr/eval_metrics.json --flagfile=train.flags]

Re-running the same command after a crash resumes from the newest checkpoint in --model_dir.
"""

from __future__ import annotations

from pipelines import cli  # sets TF_CPP_MIN_LOG_LEVEL before TensorFlow loads


from absl import flags

from ranking import training
from ranking.losses import NEGATIVE_WEIGHTINGS
from ranking.models import PRESETS, ModelConfig

FLAGS = flags.FLAGS
flags.DEFINE_enum("model", "vr_ndt", list(PRESETS), "Model preset (SPEC §4).")
flags.DEFINE_string("train", None, "Comma-separated globs of raw training logs.")
flags.DEFINE_string("eval", None, "Comma-separated globs of raw evaluation logs.")
flags.DEFINE_string("stats", None, "Stats artifact of the training window (pipelines.stats).")
flags.DEFINE_string("model_dir", None, "Checkpoints, TensorBoard logs, config.json, "
                    "eval_metrics.json.")
flags.DEFINE_string("feature_config", None, "JSON feature config (see ranking/features.py).")
flags.DEFINE_list("post_click_features", [], "Features that mostly act on dwell time.")
flags.DEFINE_integer("epochs", 1, "Passes over the training logs.")
flags.DEFINE_integer("steps_per_epoch", None, "Cap on steps per epoch (default: all rows).")
flags.DEFINE_integer("batch_size", 2048, "Global batch size (rows).")
flags.DEFINE_enum("optimizer", "adam", list(training.OPTIMIZERS), "Optimizer.")
flags.DEFINE_float("learning_rate", 1e-3, "Learning rate.")
flags.DEFINE_enum("embedding_optimizer", "same", ["same"] + list(training.OPTIMIZERS),
                  "Optimizer of the embedding tables (same: --optimizer for everything).")
flags.DEFINE_float("embedding_learning_rate", 0.05, "Learning rate of --embedding_optimizer.")
flags.DEFINE_integer("seed", 0, "Seed of initial weights and input order.")
flags.DEFINE_list("bottom_units", ["256", "128"], "Shared-bottom (or MLP backbone) layer widths.")
flags.DEFINE_list("tower_units", ["64", "32"], "Hidden widths of each tower (a 1-unit output "
                  "layer follows).")
flags.DEFINE_float("dropout", 0.0, "Dropout rate after each hidden layer.")
flags.DEFINE_float("negative_weight", 1.0, "Weight of negatives in the weighted valid-read loss.")
flags.DEFINE_enum("negative_weighting", "unit", list(NEGATIVE_WEIGHTINGS),
                  "unit: negatives weigh --negative_weight; ndt: --negative_weight x their NDT "
                  "(the paper's Eq. 3 literally: unclicked impressions weigh 0).")
flags.DEFINE_integer("shuffle_buffer", 65536, "Rows in the shuffle buffer.")
flags.DEFINE_integer("checkpoint_every", 500, "Steps between checkpoints.")
flags.DEFINE_integer("keep_checkpoints", 3, "Checkpoints kept.")
flags.DEFINE_integer("log_every", 100, "Steps between TensorBoard summaries.")
flags.DEFINE_integer("eval_batch_size", 8192, "Rows per evaluation batch.")
flags.DEFINE_string("baseline_metrics", None, "eval_metrics.json of a baseline model: adds "
                    "rel_impr.")
flags.DEFINE_enum("strategy", "default", list(training.STRATEGIES),
                  "tf.distribute strategy (multi-worker reads TF_CONFIG).")
flags.DEFINE_string("schema", None, "Curated schema.pbtxt: refuse anomalous input.")
flags.DEFINE_bool("allow_unclicked_dwell", False, "Treat dwell > 0 on unclicked rows as 0.")
flags.DEFINE_bool("deterministic", False, "Enable TensorFlow's op determinism (slower).")
flags.DEFINE_enum("progress", "auto", ["auto", "bar", "epoch", "none"],
                  "Keras progress bars (auto: on a terminal), one line per epoch, or nothing.")
flags.mark_flags_as_required(["train", "stats", "model_dir"])


def config_from_flags() -> training.TrainConfig:
    model = ModelConfig(preset=FLAGS.model, bottom_units=tuple(map(int, FLAGS.bottom_units)),
                        tower_units=tuple(map(int, FLAGS.tower_units)), dropout=FLAGS.dropout,
                        negative_weight=FLAGS.negative_weight,
                        negative_weighting=FLAGS.negative_weighting)
    return training.TrainConfig(
        train=FLAGS.train, stats=FLAGS.stats, eval=FLAGS.eval, model=model,
        feature_config=FLAGS.feature_config,
        post_click_features=tuple(FLAGS.post_click_features), batch_size=FLAGS.batch_size,
        epochs=FLAGS.epochs, steps_per_epoch=FLAGS.steps_per_epoch, optimizer=FLAGS.optimizer,
        learning_rate=FLAGS.learning_rate, embedding_optimizer=FLAGS.embedding_optimizer,
        embedding_learning_rate=FLAGS.embedding_learning_rate, seed=FLAGS.seed, shuffle_buffer=FLAGS.shuffle_buffer,
        checkpoint_every=FLAGS.checkpoint_every, keep_checkpoints=FLAGS.keep_checkpoints,
        log_every=FLAGS.log_every, eval_batch_size=FLAGS.eval_batch_size,
        baseline_metrics=FLAGS.baseline_metrics, strategy=FLAGS.strategy, schema=FLAGS.schema,
        allow_unclicked_dwell=FLAGS.allow_unclicked_dwell, deterministic=FLAGS.deterministic,
        progress=FLAGS.progress)


def main(argv):
    del argv
    metrics = training.train_and_evaluate(config_from_flags(), FLAGS.model_dir)
    if metrics:
        print(f"eval ({metrics['rows']:,} rows, {metrics['clicks']:,} clicks, "
              f"{metrics['valid_reads']:,} valid reads): auc_valid_read "
              f"{metrics['auc_valid_read']:.4f}  auc_ctr {metrics['auc_ctr']:.4f}"
              + "".join(f"  {k} {v:.4f}" for k, v in metrics.items() if k.startswith("logloss")))
        if "rel_impr" in metrics:
            rel = metrics["rel_impr"]
            print(f"  RelaImpr vs {rel['baseline']}: auc_valid_read {rel['auc_valid_read']:+.2f}%"
                  f"  auc_ctr {rel['auc_ctr']:+.2f}%")
        print(f"  wrote {FLAGS.model_dir}/eval_metrics.json")


if __name__ == "__main__":
    cli.run(main)
