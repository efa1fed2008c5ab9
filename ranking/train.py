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


import dataclasses

from absl import flags

from pipelines.errors import InputError
from ranking import distribute, training
from ranking.losses import DT_DENOMINATORS, NEGATIVE_WEIGHTINGS
from ranking.models import PRESETS, SINGLE_TASKS, ModelConfig

FLAGS = flags.FLAGS
# Defaults come from the config dataclasses: one place for each.
TRAIN = {f.name: f.default for f in dataclasses.fields(training.TrainConfig)
         if f.default is not dataclasses.MISSING}
MODEL = {f.name: f.default for f in dataclasses.fields(ModelConfig)}


def _units(values) -> list[str]:
    return [str(v) for v in values]


flags.DEFINE_enum("model", MODEL["preset"], list(PRESETS), "Model preset (SPEC §4).")
flags.DEFINE_string("train", None, "Comma-separated globs of raw training logs.")
flags.DEFINE_string("eval", None, "Comma-separated globs of raw evaluation logs.")
flags.DEFINE_string("stats", None, "Stats artifact of the training window (pipelines.stats).")
flags.DEFINE_string("model_dir", None, "Checkpoints, TensorBoard logs, config.json, "
                    "eval_metrics.json.")
flags.DEFINE_string("feature_config", None, "JSON feature config (see ranking/features.py).")
flags.DEFINE_list("post_click_features", [], "Features that mostly act on dwell time.")
flags.DEFINE_integer("epochs", TRAIN["epochs"], "Passes over the training logs.")
flags.DEFINE_integer("steps_per_epoch", None, "Cap on steps per epoch (default: all rows).")
flags.DEFINE_integer("batch_size", TRAIN["batch_size"], "Global batch size (rows).")
flags.DEFINE_enum("optimizer", TRAIN["optimizer"], list(training.OPTIMIZERS), "Optimizer.")
flags.DEFINE_float("learning_rate", TRAIN["learning_rate"], "Learning rate.")
flags.DEFINE_enum("embedding_optimizer", TRAIN["embedding_optimizer"],
                  ["same"] + list(training.OPTIMIZERS),
                  "Optimizer of the embedding tables (same: --optimizer for everything).")
flags.DEFINE_float("embedding_learning_rate", TRAIN["embedding_learning_rate"],
                   "Learning rate of --embedding_optimizer.")
flags.DEFINE_integer("seed", TRAIN["seed"], "Seed of initial weights and input order.")
flags.DEFINE_list("bottom_units", _units(MODEL["bottom_units"]),
                  "Widths of the shared bottom, the MLP backbone, the interaction models' DNN "
                  "and ESMM's and AITM's per-task networks.")
flags.DEFINE_list("tower_units", None, "Hidden widths of each tower (an output layer of the "
                  "task's width follows); default 64,32, and none for deepfm, dcn_v2, autoint.")
flags.DEFINE_float("dropout", MODEL["dropout"], "Dropout rate after each hidden layer.")
flags.DEFINE_float("embedding_init_std", MODEL["embedding_init_std"],
                   "Initial embeddings ~ N(0, std^2); 0 or less: Keras' uniform in "
                   "[-0.05, 0.05].")
flags.DEFINE_float("negative_weight", MODEL["negative_weight"],
                   "Weight of negatives in the weighted valid-read loss.")
flags.DEFINE_enum("negative_weighting", MODEL["negative_weighting"], list(NEGATIVE_WEIGHTINGS),
                  "unit: negatives weigh --negative_weight; ndt: --negative_weight x their NDT "
                  "(the paper's Eq. 3 literally: unclicked impressions weigh 0).")
flags.DEFINE_enum("single_task", MODEL["single_task"], list(SINGLE_TASKS),
                  "Task of the single-task presets deepfm, dcn_v2, autoint: ctr on every "
                  "impression, or dwell_bins on clicked ones.")
flags.DEFINE_integer("experts", MODEL["experts"], "MMoE: shared experts.")
flags.DEFINE_list("expert_units", _units(MODEL["expert_units"]), "MMoE and PLE: expert widths.")
flags.DEFINE_integer("levels", MODEL["levels"], "PLE: CGC levels.")
flags.DEFINE_integer("task_experts", MODEL["task_experts"], "PLE: experts per task and level.")
flags.DEFINE_integer("shared_experts", MODEL["shared_experts"], "PLE: shared experts per level.")
flags.DEFINE_integer("field_dim", MODEL["field_dim"],
                     "deepfm, autoint: width of each field's vector.")
flags.DEFINE_integer("cross_layers", MODEL["cross_layers"], "dcn_v2: cross layers.")
flags.DEFINE_integer("attention_layers", MODEL["attention_layers"],
                     "autoint: interacting layers.")
flags.DEFINE_integer("attention_heads", MODEL["attention_heads"], "autoint: attention heads.")
flags.DEFINE_enum("dt_denominator", MODEL["dt_denominator"], list(DT_DENOMINATORS),
                  "Dwell-bin losses (clicked rows) divided by the batch size, or by the clicks "
                  "(their mean over clicked rows).")
flags.DEFINE_bool("orca", MODEL["orca"], "ORCA on shared_bottom_dt (mmoe_orca and ple_orca "
                  "have it by preset).")
flags.DEFINE_float("mask_prob", MODEL["mask_prob"], "ORCA: probability that an example's "
                   "post-click features are masked in the NDE path (training only).")
flags.DEFINE_float("alpha", MODEL["alpha"], "ORCA: weight of the raw dwell-bin loss.")
flags.DEFINE_float("beta", MODEL["beta"], "ORCA: weight of the debiased (NDE) loss.")
flags.DEFINE_bool("instance_weights", MODEL["instance_weights"],
                  "ORCA: weigh the NDE loss by relu(l_ctr^a l_dt^b + c) (else 1).")
flags.DEFINE_float("iw_a", MODEL["iw_a"], "ORCA instance weights: exponent a of l_ctr.")
flags.DEFINE_float("iw_b", MODEL["iw_b"], "ORCA instance weights: exponent b of l_dt.")
flags.DEFINE_float("iw_c", MODEL["iw_c"], "ORCA instance weights: offset c.")
flags.DEFINE_integer("scd_heads", MODEL["scd_heads"], "ORCA: heads of the SCD attention.")
flags.DEFINE_bool("metabalance", TRAIN["metabalance"], "Scale auxiliary tasks' gradients on "
                  "shared parameters to --metabalance_ratio x the main (first) task's norm.")
flags.DEFINE_float("metabalance_ratio", TRAIN["metabalance_ratio"], "MetaBalance: r.")
flags.DEFINE_float("metabalance_beta", TRAIN["metabalance_beta"],
                   "MetaBalance: moving-average factor of the gradient norms.")
flags.DEFINE_integer("shuffle_buffer", TRAIN["shuffle_buffer"], "Rows in the shuffle buffer.")
flags.DEFINE_integer("checkpoint_every", TRAIN["checkpoint_every"], "Steps between checkpoints.")
flags.DEFINE_integer("keep_checkpoints", TRAIN["keep_checkpoints"], "Checkpoints kept.")
flags.DEFINE_integer("log_every", TRAIN["log_every"], "Steps between TensorBoard summaries.")
flags.DEFINE_integer("eval_batch_size", TRAIN["eval_batch_size"], "Rows per evaluation batch.")
flags.DEFINE_string("baseline_metrics", None, "eval_metrics.json of a baseline model: adds "
                    "rel_impr.")
flags.DEFINE_enum("strategy", TRAIN["strategy"], list(training.STRATEGIES),
                  "tf.distribute strategy; multi-worker strategies read the cluster from "
                  "TF_CONFIG (BUILD.md). parameter_server: run this command on every task; "
                  "the chief trains, workers and ps tasks serve.")
flags.DEFINE_enum("input_sharding", TRAIN["input_sharding"], list(distribute.INPUT_SHARDINGS),
                  "multi_worker_mirrored: each worker reads its own files (files), or every "
                  "file and its slice of each global batch (rows: exactly one process's "
                  "batches).")
flags.DEFINE_string("schema", None, "Curated schema.pbtxt: refuse anomalous input.")
flags.DEFINE_bool("allow_unclicked_dwell", TRAIN["allow_unclicked_dwell"],
                  "Treat dwell > 0 on unclicked rows as 0.")
flags.DEFINE_bool("deterministic", TRAIN["deterministic"],
                  "Enable TensorFlow's op determinism (slower).")
flags.DEFINE_enum("progress", TRAIN["progress"], ["auto", "bar", "epoch", "none"],
                  "Keras progress bars (auto: on a terminal), one line per epoch, or nothing.")
flags.mark_flags_as_required(["train", "stats", "model_dir"])


def _ints(values, flag: str) -> tuple[int, ...]:
    try:
        return tuple(int(v) for v in values)
    except ValueError:
        raise InputError(f"--{flag} must be comma-separated integers, not "
                         f"{','.join(values)!r}") from None


def config_from_flags() -> training.TrainConfig:
    model = ModelConfig(
        preset=FLAGS.model, bottom_units=_ints(FLAGS.bottom_units, "bottom_units"),
        tower_units=(None if FLAGS.tower_units is None
                     else _ints(FLAGS.tower_units, "tower_units")),
        dropout=FLAGS.dropout,
        embedding_init_std=(FLAGS.embedding_init_std
                            if FLAGS.embedding_init_std and FLAGS.embedding_init_std > 0
                            else None),
        negative_weight=FLAGS.negative_weight,
        negative_weighting=FLAGS.negative_weighting, single_task=FLAGS.single_task,
        experts=FLAGS.experts, expert_units=_ints(FLAGS.expert_units, "expert_units"), levels=FLAGS.levels,
        task_experts=FLAGS.task_experts, shared_experts=FLAGS.shared_experts,
        field_dim=FLAGS.field_dim, cross_layers=FLAGS.cross_layers,
        attention_layers=FLAGS.attention_layers, attention_heads=FLAGS.attention_heads,
        dt_denominator=FLAGS.dt_denominator, orca=FLAGS.orca, mask_prob=FLAGS.mask_prob, alpha=FLAGS.alpha, beta=FLAGS.beta,
        instance_weights=FLAGS.instance_weights, iw_a=FLAGS.iw_a, iw_b=FLAGS.iw_b,
        iw_c=FLAGS.iw_c, scd_heads=FLAGS.scd_heads)
    return training.TrainConfig(
        train=FLAGS.train, stats=FLAGS.stats, eval=FLAGS.eval, model=model,
        feature_config=FLAGS.feature_config,
        post_click_features=tuple(FLAGS.post_click_features), batch_size=FLAGS.batch_size,
        epochs=FLAGS.epochs, steps_per_epoch=FLAGS.steps_per_epoch, optimizer=FLAGS.optimizer,
        learning_rate=FLAGS.learning_rate, embedding_optimizer=FLAGS.embedding_optimizer,
        embedding_learning_rate=FLAGS.embedding_learning_rate, seed=FLAGS.seed,
        shuffle_buffer=FLAGS.shuffle_buffer, checkpoint_every=FLAGS.checkpoint_every,
        keep_checkpoints=FLAGS.keep_checkpoints, log_every=FLAGS.log_every,
        eval_batch_size=FLAGS.eval_batch_size, baseline_metrics=FLAGS.baseline_metrics,
        strategy=FLAGS.strategy, input_sharding=FLAGS.input_sharding, schema=FLAGS.schema,
        allow_unclicked_dwell=FLAGS.allow_unclicked_dwell, deterministic=FLAGS.deterministic,
        progress=FLAGS.progress, metabalance=FLAGS.metabalance,
        metabalance_ratio=FLAGS.metabalance_ratio, metabalance_beta=FLAGS.metabalance_beta)


def main(argv):
    del argv
    metrics = training.train_and_evaluate(config_from_flags(), FLAGS.model_dir)
    if metrics:
        print(f"eval ({metrics['rows']:,} rows, {metrics['clicks']:,} clicks, "
              f"{metrics['valid_reads']:,} valid reads): auc_valid_read "
              f"{metrics['auc_valid_read']:.4f}  auc_ctr {metrics['auc_ctr']:.4f}"
              + "".join(f"  {k} {v:.4f}" for k, v in metrics.items() if k.startswith("logloss")))
        if "dt_mae_class" in metrics:
            print("  dwell (clicked rows): " + "  ".join(
                f"{k[3:]} {metrics[k]:.4f}" for k in (
                    "dt_mae_class", "dt_rmse_class", "dt_weighted_f1", "dt_macro_precision",
                    "dt_macro_recall", "dt_mae_seconds", "dt_rmse_seconds")))
        if "rel_impr" in metrics:
            rel = metrics["rel_impr"]
            print(f"  RelaImpr vs {rel['baseline']}: auc_valid_read {rel['auc_valid_read']:+.2f}%"
                  f"  auc_ctr {rel['auc_ctr']:+.2f}%")
        print(f"  wrote {FLAGS.model_dir}/eval_metrics.json")


if __name__ == "__main__":
    cli.run(main)
