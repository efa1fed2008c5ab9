"""DeepCTR's PLE on CSV logs, one whole process: the peer side of
`benchmarks/bench_deepctr.py`, which runs this file with the deepctr directory on PYTHONPATH
and times it. It imports only the standard library, numpy, pandas, scikit-learn, TensorFlow and
deepctr, never the project.

    python benchmarks/deepctr_ple.py --train=GLOBS --eval=GLOBS --batch_size=2048 --epochs=1 \\
        --seed=0 --result=OUT.json --autograph=skip_tf_keras

Data: pandas reads the CSVs; the features are the project's defaults: every column but
impression_id, timestamp, click, dwell_time (and the label names); user_id, item_id and string
columns are `SparseFeat`s, label-encoded with the training vocabulary (index 0 is reserved for
values unseen in training), embedded with the project's widths (ids 16, other categoricals 8:
DeepCTR's PLE concatenates the embeddings, so it needs no common width); number columns are
`DenseFeat`s, log1p(max(x, 0)) standardized with the training mean and (population) deviation,
the project's transform (a deviation of 0 counts as 1); empty values are "" and 0, as in the
project's reader. This fit of the encoders on the training frame is inside DeepCTR's process
time. PLE needs at least two tasks (it raises for one) and supports only binary and regression
tasks (no masked multiclass dwell bins, which is what the project's `ple` learns as its second
task): the tasks are `ctr` (click) and `long_read` (click and dwell_time above the median dwell
of the training clicks), both binary cross-entropy on every impression, weight 1. Everything
else is DeepCTR's default `PLE(...)` (see below). `compile('adam')` (lr 1e-3), `fit(batch_size,
epochs, shuffle=True)`, `predict(batch_size=8192)` (the project's eval batch); the CTR AUC is
the exact Mann-Whitney AUC (`roc_auc`: NumPy, equal to scikit-learn's `roc_auc_score`, which
the timed process does not import). Steady-state examples/s is the project's definition:
rows after the first step over the time after the first step, of the last epoch (a Keras
callback).

DeepCTR's PLE defaults (deepctr/models/multitask/ple.py, 0.9.4), kept: shared_expert_num=1,
specific_expert_num=1, num_levels=2, expert_dnn_hidden_units=(256,), tower_dnn_hidden_units=(64,)
then Dense(1, no bias) + a bias and sigmoid (PredictionLayer), gate_dnn_hidden_units=() (each
gate is Dense(n_experts, no bias, softmax) on its input), l2_reg_embedding=1e-5 (a Keras
embeddings_regularizer on each whole table), l2_reg_dnn=0, dnn_dropout=0, relu, no batch norm,
seed=1024 (every DNN kernel is glorot_normal(seed=1024), a stateless seeded initializer, so all
experts of a level start identical and so do the towers; only the gates, Keras' unseeded
glorot_uniform, differ; biases zeros); embeddings are initialized RandomNormal(0, 1e-4,
seed=2020) (SparseFeat's default; same-shaped tables start identical too).

Shims: none is needed; deepctr 0.9.4 imports and trains with TF 2.16 + tf_keras 2.16 as is
(its `tensorflow.python...` imports all resolve; `tensorflow.keras` is tf_keras under
TF_USE_LEGACY_KERAS=1). deepctr's files are not modified. Two changes in this process,
neither touching the math:
- `deepctr/__init__.py` calls `deepctr.utils.check_version`, which starts a non-daemon thread
  doing an HTTP request to PyPI (without a timeout) on every import; this process preloads
  `deepctr.utils` with that function replaced by a no-op, so the timed process never waits on
  the network.
- `--autograph=skip_tf_keras` (`bench_deepctr.py --deepctr_autograph`, default): TF 2.16's
  autograph skips modules named `keras` but not `tf_keras`, so tracing any tf_keras model
  converts Keras' own internals (thousands of functions): on this 2-core VM the first `fit`
  step of DeepCTR's PLE takes 11-16 s and model construction 3-5 s, against 2.4 s and 0.4 s
  when `tf_keras` is added to autograph's do-not-convert rules. The default adds it (DeepCTR's
  best case, the harder target; DeepCTR's own layers and lambdas are still converted);
  `stock` measures TF as installed.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import sys
import time

NON_FEATURES = ("impression_id", "timestamp", "click", "dwell_time",
                "valid_read", "valid_read_rule", "ndt", "log_dwell", "dwell_bin")
IDS = ("user_id", "item_id")
ID_DIM, DIM = 16, 8
EVAL_BATCH = 8192
RESULT_TAG = "DEEPCTR_RESULT "
AUTOGRAPH = ("skip_tf_keras", "stock")


def _expand(globs):
    files = []
    for pattern in (g for g in globs.split(",") if g):
        matched = sorted(glob.glob(pattern))
        if not matched:
            sys.exit(f"error: {pattern}: no file matches")
        files.extend(matched)
    return files


def _read_csv(files):
    import pandas as pd

    frames = []
    for path in files:
        with open(path, "rb") as handle:
            magic = handle.read(2)
        if magic != b"\x1f\x8b" and path.endswith((".tfrecord", ".tfrecord.gz")):
            sys.exit(f"error: {path}: the DeepCTR side reads CSV logs only")
        frames.append(pd.read_csv(path, compression="gzip" if magic == b"\x1f\x8b" else None,
                                  dtype={c: str for c in IDS}, keep_default_na=False,
                                  na_values=[""], low_memory=False))
    columns = list(frames[0].columns)
    for path, frame in zip(files, frames):
        if list(frame.columns) != columns:
            sys.exit(f"error: {path}: header differs from {files[0]}")
    return pd.concat(frames, ignore_index=True) if len(frames) > 1 else frames[0]


def _disable_version_check():
    """Preloads deepctr.utils with check_version a no-op (it would start a thread doing an HTTP
    request to PyPI at import); nothing else of deepctr changes."""
    import importlib.util

    package = importlib.util.find_spec("deepctr")
    if package is None:
        sys.exit("error: deepctr is not on PYTHONPATH")
    path = os.path.join(os.path.dirname(package.origin), "utils.py")
    spec = importlib.util.spec_from_file_location("deepctr.utils", path)
    utils = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(utils)
    utils.check_version = lambda version: None
    sys.modules["deepctr.utils"] = utils


def _skip_tf_keras_autograph():
    """Adds tf_keras to autograph's do-not-convert rules, beside the `keras` already there."""
    from tensorflow.python.autograph.core import config

    config.CONVERSION_RULES = (config.DoNotConvert("tf_keras"),) + tuple(config.CONVERSION_RULES)


def roc_auc(labels, scores) -> float:
    """The exact ROC AUC of `scores` [n] for binary `labels` [n], ties counted one half: the
    Mann-Whitney U of the positives' average ranks. NumPy alone, this process's own (importing
    scikit-learn for it cost 0.7-0.9 s of the peer's timed process, which DeepCTR itself never
    imports); tests/test_benchmark_tables.py checks it against scikit-learn."""
    import numpy as np

    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, np.float64)
    order = np.argsort(scores, kind="mergesort")
    _, first, counts = np.unique(scores[order], return_index=True, return_counts=True)
    ranks = np.empty(len(scores))
    ranks[order] = np.repeat(first + (counts + 1) / 2.0, counts)  # 1-based, ties averaged
    positives = int(labels.sum())
    negatives = len(labels) - positives
    return float((ranks[labels].sum() - positives * (positives + 1) / 2)
                 / (positives * negatives))


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--train", required=True)
    parser.add_argument("--eval", required=True)
    parser.add_argument("--batch_size", type=int, required=True)
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--result", required=True)
    parser.add_argument("--autograph", choices=AUTOGRAPH, required=True)
    parser.add_argument("--validation_days", type=int, default=0)
    parser.add_argument("--refit", default="validation")
    parser.add_argument("--patience", type=int, default=2)
    args = parser.parse_args(argv)
    phases, mark = {}, time.perf_counter()

    def phase(name):
        nonlocal mark
        now = time.perf_counter()
        phases[name] = now - mark
        mark = now

    import numpy as np
    import pandas as pd
    import tensorflow as tf

    if args.autograph == "skip_tf_keras":
        _skip_tf_keras_autograph()
    _disable_version_check()
    import deepctr
    from deepctr.feature_column import DenseFeat, SparseFeat
    from deepctr.models import PLE
    phase("import")

    train = _read_csv(_expand(args.train))
    evaluate = _read_csv(_expand(args.eval))
    for frame, name in ((train, "--train"), (evaluate, "--eval")):
        missing = [c for c in ("user_id", "item_id", "timestamp", "click", "dwell_time")
                   if c not in frame.columns]
        if missing:
            sys.exit(f"error: {name} logs lack the required column(s) {', '.join(missing)}")
    phase("read")

    # Encoders fitted on the training frame (part of DeepCTR's process time).
    features, columns, x_train, x_eval = {}, [], {}, {}
    for name in train.columns:
        if name in NON_FEATURES:
            continue
        column, other = train[name], evaluate[name]
        if name in IDS or not pd.api.types.is_numeric_dtype(column.dtype):
            column, other = column.fillna("").astype(str), other.fillna("").astype(str)
            vocabulary = pd.Index(pd.unique(column))
            # 0: values unseen in training; 1..n: the training vocabulary.
            x_train[name] = (vocabulary.get_indexer(column) + 1).astype(np.int32)
            x_eval[name] = (vocabulary.get_indexer(other) + 1).astype(np.int32)
            columns.append(SparseFeat(name, vocabulary_size=len(vocabulary) + 1,
                                      embedding_dim=ID_DIM if name in IDS else DIM))
            features[name] = "categorical"
        else:
            other = pd.to_numeric(other)
            raw = np.log1p(np.maximum(column.fillna(0).to_numpy(np.float64), 0.0))
            mean, std = float(raw.mean()), float(raw.std())
            std = std or 1.0
            raw_eval = np.log1p(np.maximum(other.fillna(0).to_numpy(np.float64), 0.0))
            x_train[name] = ((raw - mean) / std).astype(np.float32)
            x_eval[name] = ((raw_eval - mean) / std).astype(np.float32)
            columns.append(DenseFeat(name, 1))
            features[name] = "numeric"
    # The validation split: the last --validation_days UTC days of the training frame.
    day = train["timestamp"].to_numpy(np.int64) // 86_400
    held = (day > day.max() - args.validation_days) if args.validation_days else np.zeros(
        len(day), bool)
    click = train["click"].to_numpy(np.float32)
    dwell = train["dwell_time"].fillna(0).to_numpy(np.float64)
    threshold = float(np.median(dwell[click == 1])) if (click == 1).any() else 0.0
    long_read = ((click == 1) & (dwell > threshold)).astype(np.float32)
    eval_click = evaluate["click"].to_numpy(np.float32)
    eval_dwell = evaluate["dwell_time"].fillna(0).to_numpy(np.float64)
    eval_long = ((eval_click == 1) & (eval_dwell > threshold)).astype(np.float32)
    fit_rows = ~held
    x_val = {k: v[held] for k, v in x_train.items()}
    y_val = [click[held], long_read[held]]
    x_train = {k: v[fit_rows] for k, v in x_train.items()}
    click, long_read = click[fit_rows], long_read[fit_rows]
    train_rows, eval_rows = int(fit_rows.sum()), len(evaluate)
    del train, evaluate
    phase("preprocess")

    np.random.seed(args.seed)
    tf.random.set_seed(args.seed)
    model = PLE(columns, task_types=("binary", "binary"), task_names=("ctr", "long_read"))
    model.compile("adam", loss=["binary_crossentropy", "binary_crossentropy"])
    phase("build")

    class Steady(tf.keras.callbacks.Callback):
        """Examples/s of an epoch after its first step (which includes tracing)."""

        def on_epoch_begin(self, epoch, logs=None):
            self.warm = None

        def on_train_batch_end(self, batch, logs=None):
            if self.warm is None:
                self.warm = (time.perf_counter(), min(args.batch_size, train_rows))
                if self.first_step is None:  # from the fit() call: data adapter, tracing
                    self.first_step = self.warm[0] - fit_started

        def on_epoch_end(self, epoch, logs=None):
            rows = train_rows - self.warm[1]
            self.rate = rows / (time.perf_counter() - self.warm[0]) if rows else float("nan")

    steady = Steady()
    steady.first_step = None
    callbacks, validation = [steady], None
    if args.validation_days:
        stopper = tf.keras.callbacks.EarlyStopping(monitor="val_loss", patience=args.patience,
                                                   restore_best_weights=True)
        callbacks.append(stopper)
        validation = (x_val, y_val)
    fit_started = time.perf_counter()
    history = model.fit(x_train, [click, long_read], batch_size=args.batch_size,
                        epochs=args.epochs, shuffle=True, verbose=2, callbacks=callbacks,
                        validation_data=validation)
    epochs_run = len(history.history["loss"])
    auc_selected, diagnostic_seconds = None, 0.0
    if args.validation_days and args.refit == "validation":
        # The project's refit pass, given to the peer too: the restored best weights train
        # one more pass over the held-out days (its vocabulary already holds their ids). The
        # evaluation before it is a diagnostic the project does not make: its seconds are
        # reported apart and left out of the compared wall time (bench_deepctr.py).
        before = time.perf_counter()
        auc_selected = float(roc_auc(eval_click, model.predict(
            x_eval, batch_size=EVAL_BATCH, verbose=0)[0].ravel()))
        diagnostic_seconds = time.perf_counter() - before
        model.fit(x_val, y_val, batch_size=args.batch_size, epochs=1, shuffle=True, verbose=2)
    phase("train")

    p_ctr, p_long = model.predict(x_eval, batch_size=EVAL_BATCH, verbose=0)
    auc_ctr = float(roc_auc(eval_click, p_ctr.ravel()))
    auc_long = (float(roc_auc(eval_long, p_long.ravel()))
                if 0 < eval_long.sum() < len(eval_long) else float("nan"))
    phase("evaluate")

    result = {"model": f"DeepCTR {deepctr.__version__} PLE", "auc_ctr": auc_ctr,
              "auc_ctr_before_refit": auc_selected, "diagnostic_seconds": diagnostic_seconds,
              "auc_long_read": auc_long, "steady_examples_per_second": steady.rate,
              "first_step_seconds": steady.first_step,
              "train_rows": train_rows, "eval_rows": eval_rows, "features": features,
              "long_read_threshold_seconds": threshold, "params": int(model.count_params()),
              "epochs_run": epochs_run,
              "best_epoch": (int(stopper.best_epoch) + 1 if args.validation_days
                             and stopper.best_weights is not None else None),
              "validation_rows": int(held.sum()),
              "vocabulary_sizes": {c.name: c.vocabulary_size for c in columns
                                   if isinstance(c, SparseFeat)},
              "phases": phases, "tensorflow": tf.__version__,
              "keras": tf.keras.__name__ if hasattr(tf.keras, "__name__") else str(tf.keras)}
    with open(args.result, "w") as handle:
        json.dump(result, handle, indent=2, allow_nan=True)
    print(f"DeepCTR PLE: train {train_rows:,} rows in {phases['train']:.1f} s "
          f"({steady.rate:,.0f} examples/s after the first step), eval auc_ctr {auc_ctr:.4f} "
          f"auc_long_read {auc_long:.4f} (long read: click and dwell > {threshold:.1f} s)")
    print(RESULT_TAG + json.dumps(result, allow_nan=True), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
