"""Export a trained model as a versioned SavedModel for TF Serving (SPEC §7).

    python -m export.saved_model --model_dir=models/vr_ndt --export_base=serving/vr_ndt \\
        [--version=N --score_weights=valid_read=1,weighted_valid_read=0.5 --score_space=linear
         --model_name=feed --baseline=serving/vr_ndt --gate=auc_valid_read:0.002]

Writes <export_base>/<version>/ atomically (default version: newest + 1; an existing one is
refused), with warmup requests and score_fusion.json in assets.extra/, and
<export_base>/models.config; prints the signatures and the score's formula. The SavedModel runs
with TensorFlow alone (see export/serving.py). The score is the preset's default fusion of the
model's outputs (`ranking.fusion`) unless --score_weights / --score_space say otherwise. With
--baseline and --gate, the quality gate (export/gate.py) decides whether the version is written.
A model trained with a validation window is exported from final/ (after the refit pass of its
best checkpoint) or best/ (its best checkpoint); before its first validation it is refused.
"""

from __future__ import annotations

import time

from absl import flags

from core import cli  # sets TF_CPP_MIN_LOG_LEVEL before TensorFlow loads
from export import exporter
from ranking.fusion import SPACES

FLAGS = flags.FLAGS
flags.DEFINE_string("model_dir", None, "Model directory written by ranking.train.")
flags.DEFINE_string("export_base", None, "Base directory of the versioned exports.")
flags.DEFINE_integer("version", None, "Version number (default: newest existing + 1).")
flags.DEFINE_list("score_weights", [], "output=weight pairs of the serving score, e.g. "
                  "ctr=1,expected_dwell_seconds=1 (default: the preset's).")
flags.DEFINE_enum("score_space", None, list(SPACES), "linear: score = sum w * output; log: "
                  "score = sum w * log(output), a product of the outputs (default: the "
                  "preset's).")
flags.DEFINE_string("baseline", None, "Export base or version the quality gate compares with "
                    "(export/gate.py).")
flags.DEFINE_string("gate", None, "METRIC:MAX_DROP, e.g. auc_valid_read:0.002: refuse to "
                    "write a version whose METRIC is below the baseline's by more than MAX_DROP.")
flags.DEFINE_string("gate_logs", None, "Held-out logs of the gate, comma-separated globs "
                    "(default: the model's "
                    "validation window unless its refit pass trained on it, else its --eval "
                    "logs).")
flags.DEFINE_string("model_name", None, "Model name in models.config and the warmup requests "
                    "(default: the export_base directory's name).")
flags.mark_flags_as_required(["model_dir", "export_base"])


def main(argv):
    del argv
    started = time.perf_counter()
    result = exporter.export_saved_model(FLAGS.model_dir, FLAGS.export_base, FLAGS.version,
                                         FLAGS.score_weights, FLAGS.score_space,
                                         FLAGS.model_name, FLAGS.baseline, FLAGS.gate,
                                         FLAGS.gate_logs)
    print(f"exported {FLAGS.model_dir} to {result.path} (version {result.version}) in "
          f"{time.perf_counter() - started:.1f} s; {result.warmup_records} warmup requests; "
          f"TF Serving config {FLAGS.export_base}/models.config")
    print(f"  {result.fusion.formula()} ({result.fusion.space} space)")
    for warning in result.warnings:
        cli.warn(warning)
    if result.gate:
        g = result.gate
        print(f"  quality gate passed: {g['metric']} {g['candidate']:.4f} against the "
              f"baseline's {g['baseline']:.4f} (allowed drop {g['max_drop']:g}) on "
              f"{g['rows']:,} rows of {g['logs']}"
              + (f" ({g['window']})" if g.get("window") else ""))
    for name, signature in result.signatures.items():
        print(f"  signature '{name}':")
        print("    inputs:  " + ", ".join(f"{k} {d}{s}" for k, (d, s) in
                                           signature["inputs"].items()))
        print("    outputs: " + ", ".join(f"{k} {d}{s}" for k, (d, s) in
                                           signature["outputs"].items()))


if __name__ == "__main__":
    cli.run(main)
