"""Model selection (ranking.selection): early stopping on scripted metric sequences, the
validation window by days, the best checkpoint in evaluation and export, the quality gate, and
regularization's penalties by hand."""

import dataclasses
import datetime
import glob
import gzip
import json
import math
import os
import re
import shutil
import types

import numpy as np
import pandas as pd
import pytest
import tensorflow as tf

from core import stats_artifact
from core.errors import InputError
from core.label_rules import SECONDS_PER_DAY
from core.stats_artifact import DwellTargets
from export import exporter
from ranking import (
    data,
    evaluation,
    features,
    models,
    regularization,
    selection,
    selection_files,
    training,
)
from ranking.models import ModelConfig
from ranking.regularization import RegularizationConfig
from ranking.selection import Selection, SelectionConfig

from conftest import POST_CLICK
from model_fixtures import tiny_batch, tiny_spec


def run_sequence(values, metric="auc_ctr", patience=2, min_delta=0.0, min_steps=0):
    """Feeds one validation per epoch of 10 steps; returns (epochs trained, best epoch, best
    value)."""
    state = Selection(metric, patience, min_delta, min_steps)
    for epoch, value in enumerate(values, start=1):
        state.update(value, step=10 * epoch, epoch=epoch)
        if state.stopped:
            break
    summary = state.summary()
    return epoch, summary["epoch"], summary["value"]


def test_early_stopping_stops_at_the_right_epoch():
    # Higher is better: best at epoch 3, two epochs without improvement, stop after epoch 5.
    assert run_sequence([0.60, 0.61, 0.63, 0.62, 0.625, 0.70]) == (5, 3, 0.63)
    # Patience 1 stops at the first epoch that does not improve.
    assert run_sequence([0.60, 0.61, 0.60, 0.70], patience=1) == (3, 2, 0.61)
    # Lower is better for losses.
    assert run_sequence([2.0, 1.9, 1.95, 1.8, 1.85, 1.86], metric="dwell_ce") == (6, 4, 1.8)
    # min_delta: an improvement must beat the best by more than it.
    assert run_sequence([0.60, 0.6005, 0.601, 0.65], min_delta=0.002) == (3, 1, 0.60)
    # A NaN (e.g. an AUC without positives) never improves; anything beats the first NaN.
    epochs, best, value = run_sequence([float("nan"), 0.6, float("nan"), float("nan")])
    assert (epochs, best, value) == (4, 2, 0.6)
    # Never stopping: every epoch improves.
    assert run_sequence([0.1, 0.2, 0.3]) == (3, 3, 0.3)


def test_min_steps_keeps_training_through_a_plateau():
    """The walk's curve (validation AUC by epoch of 38 steps, rounded to 3 digits, with two
    falling values added so that patience ends it): a plateau, then the rise. Patience 2
    stops in the plateau; --min_steps=100 (here 10 steps an epoch: 10 epochs) trains through
    it and serves the best, the rise's end."""
    curve = [0.528, 0.537, 0.539, 0.544, 0.541, 0.543, 0.546, 0.579, 0.633, 0.677, 0.717,
             0.735, 0.753, 0.752, 0.750]
    assert run_sequence(curve) == (6, 4, 0.544)
    assert run_sequence(curve, min_steps=100) == (15, 13, 0.753)
    # Past min_steps, patience decides again: stopped two validations after the best.
    assert run_sequence(curve[:13] + [0.70, 0.69, 0.80], min_steps=100) == (15, 13, 0.753)
    # Not before min_steps, even with patience long spent.
    assert run_sequence([0.6] + [0.5] * 8, patience=1, min_steps=50) == (5, 1, 0.6)
    # The warm-up's validations do not count against patience (Keras' start_from_epoch): a
    # flat metric to step 100, then patience 2 from there catches the rise at step 110.
    assert run_sequence([0.6] * 10 + [0.7, 0.69, 0.68], min_steps=100) == (13, 11, 0.7)


def test_a_run_stopped_early_on_small_logs_or_still_improving_is_noted():
    config = SelectionConfig(validation_days=1, max_epochs=10)
    stopped = Selection("auc_ctr", 2, 0.0)
    for epoch, value in enumerate([0.528, 0.537, 0.544, 0.541, 0.543], start=1):
        stopped.update(value, step=38 * epoch, epoch=epoch)
    assert stopped.stopped
    note = selection.stopping_note(config, stopped, 190, 5)
    assert note.startswith("note: early stopping ended training at step 190 (best step 114): "
                           "on small logs the validation metric can sit on a plateau"), note
    assert "in a new --model_dir, --min_steps=1000 trains that far (or to --max_epochs)" in note
    # Not with --min_steps given, nor past 1,000 steps.
    assert selection.stopping_note(dataclasses.replace(config, min_steps=100), stopped, 190,
                                   5) is None
    assert selection.stopping_note(config, stopped, 1000, 5) is None
    improving = Selection("auc_ctr", 2, 0.0)
    for epoch in range(1, 11):
        improving.update(0.5 + epoch / 100, step=38 * epoch, epoch=epoch)
    assert selection.stopping_note(config, improving, 380, 10) == (
        "note: --max_epochs=10 ended training while the validation metric was still improving "
        "(auc_ctr 0.60000 at the last validation, step 380): more epochs may serve a better "
        "model")
    assert selection.stopping_note(config, improving, 342, 9) is None  # epochs remain
    level = Selection("auc_ctr", 5, 0.0)
    for epoch, value in enumerate([0.6, 0.7, 0.65], start=1):
        level.update(value, step=10 * epoch, epoch=epoch)
    assert selection.stopping_note(dataclasses.replace(config, max_epochs=3), level, 30,
                                   3) is None  # its best was not the last validation
    # No validation at all (--validate_every past the run's steps): no note.
    assert selection.stopping_note(config, Selection("auc_ctr", 2, 0.0), 380, 10) is None


def test_the_default_metric_follows_what_the_preset_serves():
    def default(preset, **towers):
        from ranking.tasks import TowerConfig

        return selection.default_metric(ModelConfig(preset, towers=TowerConfig(**towers)))

    assert default("vr_ndt") == default("vr_logdt") == "auc_valid_read"
    assert default("single_ctr") == default("ctr_logdt") == default("deepfm") == "auc_ctr"
    assert default("ple") == default("mmoe_orca") == default("esmm") == "logloss_ctr+dwell_ce"
    assert default("autoint", single_task="dwell_bins") == "dwell_ce"


def test_raw_dwell_ce_reads_the_raw_head_and_is_dwell_ce_without_one():
    orca = {"dt_cross_entropy": 1.25, "raw_dwell": {"dt_cross_entropy": 1.5}}
    assert selection.metric_value("raw_dwell_ce", orca) == 1.5
    assert selection.metric_value("dwell_ce", orca) == 1.25
    assert selection.metric_value("raw_dwell_ce", {"dt_cross_entropy": 1.25}) == 1.25
    assert selection.METRICS["raw_dwell_ce"][0] == -1
    with pytest.raises(InputError, match="early_stopping_metric=raw_dwell_ce.*dt_cross_entropy"):
        selection.metric_value("raw_dwell_ce", {"auc_ctr": 0.6, "logloss_ctr": 0.4})


@pytest.mark.parametrize("preset, single_task, metric, refused", [
    ("single_ctr", "ctr", "dwell_ce", "dwell_probs"),
    ("single_ctr", "ctr", "raw_dwell_ce", "dwell_probs"),
    ("deepfm", "dwell_bins", "logloss_ctr", "ctr"),
    ("deepfm", "dwell_bins", "logloss_ctr+dwell_ce", "ctr"),
    ("ctr_logdt", "ctr", "dwell_ce", "dwell_probs"),
    ("single_ctr", "ctr", "auc_valid_read", None),
    ("deepfm", "dwell_bins", "dwell_ce", None),
    ("mmoe", "ctr", "logloss_ctr+dwell_ce", None),
    ("mmoe_orca", "ctr", "raw_dwell_ce", None),
])
def test_an_early_stopping_metric_without_its_head_is_refused_before_training(
        small_world, tmp_path, preset, single_task, metric, refused):
    """The metric's outputs are checked against what the model serves when the run starts:
    a refused run trains nothing and writes no model directory."""
    model = ModelConfig(preset, towers=models.TowerConfig(single_task=single_task))
    selection_config = SelectionConfig(validation_days=1, early_stopping_metric=metric)
    artifact = stats_artifact.load_artifact(small_world["stats"])
    if refused is None:
        selection.check_metric(selection_config, model, artifact.targets)
        return
    config = training.TrainConfig(
        train=small_world["train"], eval=small_world["eval"], stats=small_world["stats"],
        model=model, batch_size=512, progress="none", post_click_features=POST_CLICK,
        selection=selection_config)
    model_dir = tmp_path / "model"
    with pytest.raises(InputError, match=re.escape(
            f"--early_stopping_metric={metric} reads the model's {refused}, which "
            f"--model={preset} does not serve")):
        training.train_and_evaluate(config, str(model_dir))
    assert not model_dir.exists()


def test_the_auto_early_stopping_metric_is_served_by_every_preset(small_world):
    """`auto` picks a metric of what the preset serves, so no preset is refused for it."""
    targets = stats_artifact.load_artifact(small_world["stats"]).targets
    for preset in models.PRESETS:
        for single_task in ("ctr", "dwell_bins"):
            model = ModelConfig(preset, towers=models.TowerConfig(single_task=single_task))
            selection.check_metric(SelectionConfig(validation_days=1), model, targets)


def test_orca_stopped_on_its_raw_head_stops_where_its_backbone_stops(small_world, tmp_path):
    """--early_stopping_metric=raw_dwell_ce: the ORCA model's validations of its raw head are its
    backbone's validations (same seed), so it stops and is served at the backbone's step with
    the backbone's click tower; its served (debiased) head is another distribution."""
    def train(preset):
        config = training.TrainConfig(
            train=small_world["train"], eval=small_world["eval"], stats=small_world["stats"],
            model=ModelConfig(preset), batch_size=512, seed=5, progress="none",
            post_click_features=POST_CLICK,
            selection=SelectionConfig(validation_days=1, validate_every=6, patience=1,
                                      max_epochs=2, early_stopping_metric="raw_dwell_ce",
                                      refit="none"))
        model_dir = str(tmp_path / preset)
        metrics = training.train_and_evaluate(config, model_dir)
        history = json.load(open(os.path.join(model_dir, "history.json")))["validations"]
        return metrics, history

    plain, plain_history = train("mmoe")
    orca_metrics, orca_history = train("mmoe_orca")
    np.testing.assert_allclose([e["raw_dwell_ce"] for e in orca_history],
                               [e["raw_dwell_ce"] for e in plain_history], rtol=1e-5)
    assert [e["best"] for e in orca_history] == [e["best"] for e in plain_history]
    assert orca_metrics["selected_step"] == plain["selected_step"]
    assert orca_metrics["global_step"] == plain["global_step"]
    # The backbone's own dwell cross-entropy is its raw one; the ORCA model's served head is
    # the debiased one, which differs.
    assert all(e["raw_dwell_ce"] == e["dt_cross_entropy"] for e in plain_history)
    assert abs(orca_history[-1]["dt_cross_entropy"] - orca_history[-1]["raw_dwell_ce"]) > 1e-4
    assert orca_metrics["towers"]["ctr"]["auc_ctr"] == pytest.approx(
        plain["towers"]["ctr"]["auc_ctr"], abs=1e-4)
    assert len(plain_history) >= 2


def test_validation_days_split_by_timestamp(small_world):
    artifact = stats_artifact.load_artifact(small_world["stats"])
    source = data.open_source(small_world["train"])
    spec = features.build_feature_spec(source.schema, artifact.numeric_features)
    source = data.open_source(small_world["train"], spec)
    from core.labeler import labeler_for

    labeler = labeler_for(source, artifact)
    (train, train_days, rows), (held_out, days) = data.split_by_days(
        source, labeler.file_day_rows, 1)
    frame = pd.concat([pd.read_csv(f) for f in sorted(glob.glob(small_world["train"]))])
    day = frame["timestamp"] // SECONDS_PER_DAY
    last = int(day.max())
    assert train_days.last == last - 1 and days.first == last
    assert int(rows.sum()) == int((day < last).sum())

    def rows(dataset):
        return sum(len(labels["click"]) for _, labels in dataset.as_numpy_iterator())

    # Every row of the last day is held out, every earlier row trains (pandas counts them).
    kept = data.labelled_dataset(held_out, labeler, spec, 1024, days=days)
    assert rows(kept) == int((day == last).sum())
    trained = data.labelled_dataset(train, labeler, spec, 1024, days=train_days)
    assert rows(trained) == int((day < last).sum())
    with pytest.raises(InputError, match="--validation_days=4 leaves no training rows: the "
                                         "training input covers 4 UTC day") as refused:
        data.split_by_days(source, labeler.file_day_rows, 4)
    assert refused.value.file.endswith(" and 1 more")  # four files: three named, one counted


def test_the_validation_window_is_read_once_when_it_fits_the_bound():
    """CachedBatches keeps the first pass's batches when they total at most the bound (sizes
    by hand: float32 [4] is 16 bytes, strings "ab" and "c" are 3 bytes plus 32 each) and
    reads the window again at every pass when they do not."""
    batch = ({"x": tf.constant([1.0, 2.0, 3.0, 4.0])}, {"id": tf.constant(["ab", "c"])})
    reads = []

    def make_dataset():
        reads.append(1)
        return tf.data.Dataset.from_tensors(batch).repeat(2)

    def passes(cache):
        return [[(f["x"].numpy().tolist(), lab["id"].numpy().tolist()) for f, lab in cache]
                for _ in range(3)]

    expected = [[([1.0, 2.0, 3.0, 4.0], [b"ab", b"c"])] * 2] * 3
    for bound, kept in ((2 * 83, True), (2 * 83 - 1, False), (0, False)):
        reads.clear()
        cache = data.CachedBatches(make_dataset, bound)
        assert passes(cache) == expected, bound
        assert cache.kept is kept and len(reads) == (1 if kept else 3), bound
    with pytest.raises(InputError, match="--validation_cache_mb must be >= 0"):
        SelectionConfig(validation_days=1, validation_cache_mb=-1).check()


def test_a_window_without_training_rows_is_one_error_line(small_world, run, tmp_path):
    model_dir = tmp_path / "model"
    done = run("ranking.train", "--model=single_ctr", f"--train={small_world['train']}",
               f"--stats={small_world['stats']}", f"--model_dir={model_dir}",
               "--validation_days=9", "--progress=none")
    assert done.returncode == 1
    assert done.stderr.startswith("error: ") and done.stderr.count("\n") == 1, done.stderr
    assert "leaves no training rows" in done.stderr
    assert not model_dir.exists()


def test_a_bad_validation_row_fails_like_eval_and_leaves_nothing(small_world, run, tmp_path):
    lines = gzip.open(sorted(glob.glob(small_world["eval"]))[0], "rt").read().splitlines()
    lines[7] = lines[7].replace(",0,", ",2,", 1) if ",0," in lines[7] else lines[7] + ",x"
    bad = tmp_path / "validation.csv"
    bad.write_text("\n".join(lines) + "\n")
    model_dir = tmp_path / "model"
    done = run("ranking.train", "--model=single_ctr", f"--train={small_world['train']}",
               f"--stats={small_world['stats']}", f"--model_dir={model_dir}",
               f"--validation={bad}", "--progress=none")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert done.stderr.startswith(f"error: {bad}, line 8") and done.stderr.count("\n") == 1
    assert not model_dir.exists()


def stopping_config(small_world, refit):
    """A min_delta no change can beat makes the first validation the best and stops two
    validations later."""
    return training.TrainConfig(
        train=small_world["train"], eval=small_world["eval"], stats=small_world["stats"],
        model=ModelConfig("single_ctr"), batch_size=256, seed=3, progress="none",
        selection=SelectionConfig(validation_days=1, validate_every=4, patience=2,
                                  min_delta=1.0, max_epochs=3, refit=refit))


def first_eval_day_as(small_world, path, click: str, dwell: str):
    """The small world's first evaluation day with every row's click and dwell_time set so,
    written to `path`; returns it as read (text columns)."""
    day = sorted(glob.glob(small_world["eval"]))[0]
    frame = pd.read_csv(day, dtype=str, keep_default_na=False)
    frame["click"], frame["dwell_time"] = click, dwell
    frame.to_csv(path, index=False)
    return frame


def test_a_validation_window_without_a_click_is_refused_before_training(small_world,
                                                                        tmp_path):
    # Its metrics (but the click log loss) are undefined there: the counting pass knows it
    # before an epoch is trained. As --validation logs, and as the held-out last day.
    frame = first_eval_day_as(small_world, tmp_path / "no_clicks.csv", click="0", dwell="0")
    logs = tmp_path / "train"
    logs.mkdir()
    days = sorted(glob.glob(small_world["train"]))
    for path in days[:-1]:
        shutil.copy(path, logs)
    shutil.copy(tmp_path / "no_clicks.csv", logs / "zz-last-day.csv")  # after the others
    for name, window in (
            ("logs", SelectionConfig(validation=str(tmp_path / "no_clicks.csv"), max_epochs=1)),
            ("days", SelectionConfig(validation_days=1, max_epochs=1))):
        config = training.TrainConfig(
            train=small_world["train"] if name == "logs" else f"{logs}/*",
            stats=small_world["stats"], model=ModelConfig("single_ctr"), batch_size=256, seed=3,
            progress="none", selection=window)
        with pytest.raises(InputError, match=re.escape(
                f"the validation window has {len(frame):,} rows and no click, so "
                "--early_stopping_metric=auc_ctr is undefined there")):
            training.train_and_evaluate(config, str(tmp_path / name))
        assert not (tmp_path / name).exists()  # refused before anything is written
    # The click log loss is defined without clicks: not refused.
    selection.check_validation_clicks(
        SelectionConfig(validation_days=1, early_stopping_metric="logloss_ctr"),
        ModelConfig("single_ctr"), rows=10, clicks=0)


def test_validation_logs_of_clicks_only_are_refused_at_the_first_validation(small_world,
                                                                            tmp_path):
    # Page-view logs (every row a click) leave the click AUC undefined: the run says so at its
    # first validation, with the logs' counts, instead of ending without a best checkpoint.
    frame = first_eval_day_as(small_world, tmp_path / "all_clicks.csv", click="1",
                              dwell="30.0")
    config = training.TrainConfig(
        train=small_world["train"], stats=small_world["stats"], model=ModelConfig("single_ctr"),
        batch_size=256, seed=3, progress="none",
        selection=SelectionConfig(validation=str(tmp_path / "all_clicks.csv"), validate_every=4,
                                  max_epochs=1))
    with pytest.raises(InputError, match=re.escape(
            f"--early_stopping_metric=auc_ctr is undefined (NaN) on the validation logs, and no "
            f"validation before had a value; they have {len(frame):,} rows, {len(frame):,} "
            "clicks")):
        training.train_and_evaluate(config, str(tmp_path / "model"))
    assert not (tmp_path / "model").exists()  # a new model directory is removed on bad input


def export_and_compare(small_world, model_dir, tmp_path):
    """Exports `model_dir`, scores 256 evaluation rows through `predict_raw`, and checks the
    ctr output equals the Keras model the exporter loads (the served checkpoint's). Returns
    (that model, the inputs, the exported ctr)."""
    model, _ = exporter.load_trained(model_dir)
    served = exporter.export_saved_model(model_dir, str(tmp_path / "serving"))
    loaded = tf.saved_model.load(served.path).signatures["predict_raw"]
    source = data.open_source(small_world["eval"], model.feature_spec)
    batch = next(iter(source.dataset(256, columns=model.feature_spec.names)))
    inputs = {n: batch[n] for n in model.feature_spec.names}
    exported = loaded(**inputs)["ctr"].numpy()
    np.testing.assert_allclose(exported, model.network(inputs)["ctr"].numpy(), rtol=1e-5)
    return model, inputs, exported


def test_the_best_checkpoint_is_evaluated_and_exported_not_the_last(small_world, tmp_path):
    """--refit=none: eval_metrics.json and the export are the first validation's weights."""
    model_dir = str(tmp_path / "model")
    metrics = training.train_and_evaluate(stopping_config(small_world, "none"), model_dir)
    best = json.load(open(os.path.join(model_dir, "best.json")))
    history = json.load(open(os.path.join(model_dir, "history.json")))
    assert best == {**best, "step": 4, "epoch": 1, "metric": "auc_ctr"}
    assert [e["step"] for e in history["validations"]] == [4, 8, 12]
    assert [e["best"] for e in history["validations"]] == [True, False, False]
    assert metrics["selected_step"] == 4 and metrics["global_step"] == 12

    model, inputs, exported = export_and_compare(small_world, model_dir, tmp_path)
    last = tf.train.latest_checkpoint(os.path.join(model_dir, "checkpoints"))
    tf.train.Checkpoint(model=model).restore(last).expect_partial()
    assert np.max(np.abs(exported - model.network(inputs)["ctr"].numpy())) > 1e-4
    assert metrics["refit"] is None and not os.path.exists(os.path.join(model_dir, "final"))


def test_refit_trains_the_best_checkpoint_one_pass_over_the_validation_day(small_world,
                                                                           tmp_path, capsys):
    """--refit=validation (the default): from the best checkpoint, one pass over every row of
    the held-out day (counted here with pandas); that model is evaluated and exported."""
    import glob

    import pandas as pd

    model_dir = str(tmp_path / "model")
    metrics = training.train_and_evaluate(stopping_config(small_world, "validation"), model_dir)
    last_day = sorted(glob.glob(small_world["train"]))[-1]
    day_rows = len(pd.read_csv(last_day))
    assert metrics["selected_step"] == 4 and metrics["global_step"] == 12
    assert metrics["refit"] == {"from_step": 4, "from_epoch": 1, "steps": -(-day_rows // 256),
                                "rows": day_rows, "window": "validation", "after_step": 12}
    model, inputs, exported = export_and_compare(small_world, model_dir, tmp_path)
    # Not the best checkpoint's weights: the pass moved them.
    tf.train.Checkpoint(model=model).read(os.path.join(model_dir, "best", "model")).expect_partial()
    assert np.max(np.abs(exported - model.network(inputs)["ctr"].numpy())) > 1e-4

    # Started again with --refit=none: the refit pass is not served any more (its final/ and
    # final.json removed); evaluation and export are the best checkpoint's, as in a fresh
    # --refit=none run (the test above).
    capsys.readouterr()
    again = training.train_and_evaluate(stopping_config(small_world, "none"), model_dir)
    assert again["refit"] is None and again["selected_step"] == 4
    assert ("early stopping ended this run's training at step 12 (best step 4): no more "
            "epochs" in capsys.readouterr().out)
    assert not os.path.exists(os.path.join(model_dir, "final"))
    assert not os.path.exists(os.path.join(model_dir, "final.json"))
    assert again["auc_ctr"] != metrics["auc_ctr"]
    best_model, best_inputs, best_exported = export_and_compare(small_world, model_dir,
                                                                tmp_path / "again")
    tf.train.Checkpoint(model=best_model).read(
        os.path.join(model_dir, "best", "model")).expect_partial()
    np.testing.assert_allclose(best_exported, best_model.network(best_inputs)["ctr"].numpy(),
                               rtol=1e-6)


def test_eval_logs_of_training_days_are_noted_under_progress_none(small_world, tmp_path,
                                                                  capsys):
    """--eval given the first training day and the validation window's day: training says so
    (under --progress=none too), naming the refit pass; the day note counts both days' rows
    (pandas)."""
    days = sorted(glob.glob(small_world["train"]))
    first, last = days[0], days[-1]
    config = dataclasses.replace(stopping_config(small_world, "validation"),
                                 eval=f"{first},{last}", epochs=3)
    config = dataclasses.replace(config, selection=dataclasses.replace(
        config.selection, max_epochs=1, patience=1))
    capsys.readouterr()
    training.train_and_evaluate(config, str(tmp_path / "model"))
    out = capsys.readouterr().out
    assert ("note: --epochs=3 does not apply: with a validation window --max_epochs=1 bounds "
            "the epochs and early stopping ends sooner (--patience); it is not used") in out
    assert (f"note: 1 --eval file(s) are --train files too ({first}): their metrics measure "
            "rows the model trained on") in out
    assert (f"note: 1 --eval file(s) are in --train's validation window ({last}): their "
            "metrics measure rows the model was selected on and the refit pass trained on") in out
    both = len(pd.read_csv(first)) + len(pd.read_csv(last))  # the window's whole day too
    assert f"note: {both:,} --eval rows fall on 2 UTC day(s) of --train's days or before" in out
    # Stopped by --patience at a few steps, without --min_steps: the plateau note.
    assert re.search(r"note: early stopping ended training at step \d+ \(best step 4\): on "
                     "small logs the validation metric can sit on a plateau", out), out


def test_a_copy_of_a_small_last_training_day_in_eval_is_noted(small_world, tmp_path, capsys):
    """--eval given a copy, under another name, of the last training day when that day holds
    half the rows of the others (below the 75 % of the fullest day that a day's count alone
    needs): training finds the copy by its rows per day and bytes, and says so."""
    days = sorted(glob.glob(small_world["train"]))
    train_dir, eval_dir = tmp_path / "train", tmp_path / "eval"
    train_dir.mkdir()
    eval_dir.mkdir()
    for day in days[:-1]:
        shutil.copy(day, train_dir)
    last = pd.read_csv(days[-1], dtype=str, keep_default_na=False)
    half = last.iloc[: len(last) // 2]
    half.to_csv(train_dir / os.path.basename(days[-1]), index=False)
    copy = eval_dir / f"reexport-{os.path.basename(days[-1])}"
    shutil.copy(train_dir / os.path.basename(days[-1]), copy)
    fullest = max(len(pd.read_csv(day)) for day in days[:-1])
    assert len(half) < 0.75 * fullest  # the count alone would not find it
    config = dataclasses.replace(stopping_config(small_world, "validation"),
                                 train=str(train_dir / "*"), eval=f"{copy},{small_world['eval']}")
    config = dataclasses.replace(config, selection=dataclasses.replace(
        config.selection, max_epochs=1, patience=1))
    capsys.readouterr()
    training.train_and_evaluate(config, str(tmp_path / "model"))
    out = capsys.readouterr().out
    assert (f"note: {len(half):,} --eval rows fall on 1 UTC day(s) of --train's days or before"
            in out), out


def test_a_refit_of_an_earlier_best_is_not_served(tmp_path):
    """final/ serves only while final.json's from_step is best.json's step (a run resumed with
    a larger --max_epochs may find a later best after its refit pass)."""
    model_dir = tmp_path / "model"
    (model_dir / "final").mkdir(parents=True)
    (model_dir / "best").mkdir()
    (model_dir / "final" / "model.index").write_text("")
    (model_dir / "best" / "model.index").write_text("")
    (model_dir / "final.json").write_text(json.dumps({"from_step": 36, "steps": 4}))
    (model_dir / "best.json").write_text(json.dumps({"step": 36, "epoch": 1}))
    assert selection_files.read_final(str(model_dir)) == {"from_step": 36, "steps": 4}
    assert selection_files.served_checkpoint(str(model_dir)) == str(model_dir / "final" / "model")
    (model_dir / "best.json").write_text(json.dumps({"step": 56, "epoch": 2}))
    assert selection_files.read_final(str(model_dir)) is None
    assert selection_files.served_checkpoint(str(model_dir)) == str(model_dir / "best" / "model")
    # A pass made before training went on (final.json's after_step below the newest rolling
    # checkpoint's step): not served, though it refitted the same best checkpoint.
    (model_dir / "best.json").write_text(json.dumps({"step": 36, "epoch": 1}))
    (model_dir / "final.json").write_text(json.dumps({"from_step": 36, "after_step": 40}))
    (model_dir / "checkpoints").mkdir()
    state = 'model_checkpoint_path: "ckpt-{}"\nall_model_checkpoint_paths: "ckpt-20"\n'
    (model_dir / "checkpoints" / "checkpoint").write_text(state.format(40))
    assert selection_files.newest_checkpoint_step(str(model_dir)) == 40
    assert selection_files.read_final(str(model_dir)) == {"from_step": 36, "after_step": 40}
    (model_dir / "checkpoints" / "checkpoint").write_text(state.format(60))
    assert selection_files.read_final(str(model_dir)) is None
    selection_files.remove_final(str(model_dir))
    assert not (model_dir / "final").exists() and not (model_dir / "final.json").exists()
    selection_files.remove_final(str(model_dir))  # nothing to remove: no error


def test_raising_max_epochs_on_a_finished_run_makes_its_refit_pass_again(small_world, tmp_path):
    """A run that ran out of epochs, resumed with a larger --max_epochs, trains on and makes
    the refit pass again from the optimizer as training now leaves it: its final/ equals a
    run trained with that --max_epochs from the start (exact resume), not the first pass."""
    def config(max_epochs):
        return dataclasses.replace(stopping_config(small_world, "validation"), eval=None,
                                   batch_size=1024, selection=SelectionConfig(
                                       validation_days=1, validate_every=16, patience=10,
                                       min_delta=1.0, max_epochs=max_epochs,
                                       refit="validation"))

    resumed, fresh = str(tmp_path / "resumed"), str(tmp_path / "fresh")
    training.train_and_evaluate(config(1), resumed)
    first = selection_files.read_final(resumed)
    training.train_and_evaluate(config(2), resumed)
    again = selection_files.read_final(resumed)
    assert again is not None and again["after_step"] == 2 * first["after_step"]
    assert again["from_step"] == first["from_step"] == 16  # the same best (min_delta: 1)
    training.train_and_evaluate(config(2), fresh)
    assert selection_files.read_final(fresh) == again
    for name, shape in tf.train.list_variables(os.path.join(fresh, "final", "model")):
        if shape:
            np.testing.assert_array_equal(
                tf.train.load_variable(os.path.join(resumed, "final", "model"), name),
                tf.train.load_variable(os.path.join(fresh, "final", "model"), name), name)


@pytest.fixture(scope="module")
def stopped_early(small_world, tmp_path_factory):
    """The model directory of one `stopping_config` run (--refit=none, no --eval); the tests
    work on copies."""
    model_dir = str(tmp_path_factory.mktemp("stopped_early") / "model")
    training.train_and_evaluate(dataclasses.replace(
        stopping_config(small_world, "none"), eval=None), model_dir)
    return model_dir


def test_a_model_trained_with_validation_but_not_yet_validated_is_not_exported(stopped_early,
                                                                              tmp_path):
    """Its newest rolling checkpoint is not a selected model: export refuses it, naming best/."""
    model_dir = str(tmp_path / "model")
    shutil.copytree(stopped_early, model_dir)
    shutil.rmtree(os.path.join(model_dir, "best"))  # as before the first validation
    os.remove(os.path.join(model_dir, "best.json"))
    with pytest.raises(InputError, match="was trained with a validation window but has no best "
                       "checkpoint yet") as refused:
        exporter.export_saved_model(model_dir, str(tmp_path / "serving"))
    assert refused.value.file == os.path.join(model_dir, "best")
    assert not os.path.exists(tmp_path / "serving" / "1")


@pytest.fixture(scope="module")
def learned(small_world, tmp_path_factory):
    """A single_ctr that learned something (click AUC well above 0.5 on the eval days)."""
    model_dir = str(tmp_path_factory.mktemp("learned") / "single_ctr")
    metrics = training.train_and_evaluate(training.TrainConfig(
        train=small_world["train"], eval=small_world["eval"], stats=small_world["stats"],
        model=ModelConfig("single_ctr"), batch_size=256, steps_per_epoch=60, seed=1,
        progress="none"), model_dir)
    assert metrics["auc_ctr"] > 0.55
    return model_dir


def test_the_quality_gate_refuses_a_worse_candidate_and_passes_an_equal_one(
        small_world, learned, run, tmp_path, monkeypatch):
    base = tmp_path / "serving"
    held_out = small_world["eval"]
    exporter.export_saved_model(learned, str(base))
    worse = run("export.saved_model", f"--model_dir={learned}", f"--export_base={base}",
                f"--baseline={base}", "--gate=auc_ctr:0.01", f"--gate_logs={held_out}",
                "--score_weights=ctr=-1")  # the same model, its ranking reversed
    assert worse.returncode == 1 and worse.stderr.count("\n") == 1, worse.stderr
    assert "quality gate: the candidate's auc_ctr" in worse.stderr
    assert "below the baseline's" in worse.stderr and "no version was written" in worse.stderr
    assert sorted(os.listdir(base)) == ["1", "models.config"]
    equal = exporter.export_saved_model(learned, str(base), baseline=str(base),
                                        gate="auc_ctr:0", gate_logs=held_out)
    record = json.load(open(os.path.join(equal.path, "quality_gate.json")))
    assert record["decision"] == "passed" and record["rows"] > 0
    assert record["candidate"] == pytest.approx(record["baseline"], abs=1e-6)
    # A gate on a tower output of both models, and a malformed gate.
    tower = exporter.export_saved_model(learned, str(base), baseline=str(base),
                                        gate="ctr.auc_valid_read:0", gate_logs=held_out)
    assert tower.gate["metric"] == "ctr.auc_valid_read"
    with pytest.raises(InputError, match="--gate: expected METRIC:MAX_DROP"):
        exporter.export_saved_model(learned, str(base), baseline=str(base), gate="precision:0.1")
    # A baseline whose AUC is undefined (its scores NaN, a diverged model): the candidate
    # passes with a note, and quality_gate.json stays strict JSON (null, not NaN).
    from export import gate

    real_auc, calls = gate.metrics.auc, []

    def auc(label, scores):  # the candidate's figure first, then the baseline's: NaN
        calls.append(None)
        return real_auc(label, scores) if len(calls) % 2 else float("nan")

    monkeypatch.setattr(gate.metrics, "auc", auc)
    undefined = exporter.export_saved_model(learned, str(base), baseline=str(base),
                                            gate="auc_ctr:0", gate_logs=held_out)
    text = open(os.path.join(undefined.path, "quality_gate.json")).read()
    record = json.loads(text, parse_constant=lambda token: pytest.fail(f"{token} in JSON"))
    assert record["decision"] == "passed" and record["baseline"] is None
    assert any("the baseline's auc_ctr is undefined" in n for n in record["notes"])
    assert any("the baseline's auc_ctr is undefined" in w for w in undefined.warnings)


def test_the_gates_decision_by_hand_and_with_a_diverged_model():
    from export import gate

    rule = gate.parse_gate("auc_ctr:0.002")
    assert gate.decide(rule, 0.6085, 0.61, "base") == (None, None)  # 0.0015 below: allowed
    assert gate.decide(rule, 0.61 - 0.002 - 5e-7, 0.61, "base") == (None, None)  # rounding
    refusal, note = gate.decide(rule, 0.6050, 0.61, "base")
    assert note is None and refusal == (
        "quality gate: the candidate's auc_ctr 0.6050 is 0.0050 below the baseline's 0.6100 "
        "(base), more than the allowed 0.002; no version was written")
    assert gate.decide(rule, 0.61 - 0.002 - 2e-6, 0.61, "base")[0] is not None
    # A candidate whose scores hold a NaN (its AUC undefined) is refused, saying so.
    refusal, _ = gate.decide(rule, float("nan"), 0.61, "base")
    assert refusal.startswith("quality gate: the candidate's auc_ctr is undefined")
    # A baseline whose scores hold a NaN ranks nothing: the candidate passes, with a note
    # (before, every candidate was refused as "nan below the baseline's nan").
    refusal, note = gate.decide(rule, 0.55, float("nan"), "serving/vr_ndt/3")
    assert refusal is None and "the baseline's auc_ctr is undefined" in note
    assert "serving/vr_ndt/3" in note

def test_the_gate_reads_one_value_a_row_and_refuses_a_distribution():
    from export import gate

    features = {"x": np.arange(5, dtype=np.float32)}
    inputs = {"x": tf.TensorSpec([None], tf.float32)}

    def call(args):  # a [rows, 1] tower output and a [rows, 3] distribution
        return {"ctr": args["x"][:, None], "dwell_probs": tf.stack([args["x"]] * 3, axis=1)}

    served = gate._served(call, inputs, ["ctr", "dwell_probs"], features, "ctr", batch_size=2)
    np.testing.assert_array_equal(served, np.arange(5))
    with pytest.raises(InputError, match="--gate names output 'dwell_probs', which has 3 values "
                       "a row"):
        gate._served(call, inputs, ["ctr", "dwell_probs"], features, "dwell_probs")


def test_eval_logs_without_a_click_give_null_metrics_and_a_gate_that_says_why(
        small_world, learned, tmp_path):
    # Eval logs of one class leave the AUCs and the dwell metrics undefined: eval_metrics.json
    # writes them as null (strict JSON, no NaN token), the report prints "undefined", and the
    # quality gate names the counts instead of comparing two NaNs.
    from report import tables

    day = sorted(glob.glob(small_world["eval"]))[0]
    frame = pd.read_csv(day, dtype=str, keep_default_na=False)
    frame["click"], frame["dwell_time"] = "0", "0"
    no_clicks = str(tmp_path / "no_clicks.csv")
    frame.to_csv(no_clicks, index=False)
    model_dir = str(tmp_path / "mmoe")
    returned = training.train_and_evaluate(training.TrainConfig(
        train=small_world["train"], eval=no_clicks, stats=small_world["stats"],
        model=ModelConfig("mmoe"), batch_size=256, steps_per_epoch=2, seed=1,
        progress="none"), model_dir)

    def refuse(token):
        raise ValueError(f"not JSON: {token}")

    with open(os.path.join(model_dir, "eval_metrics.json")) as handle:
        result = json.loads(handle.read(), parse_constant=refuse)
    assert result["rows"] == len(frame) and result["clicks"] == 0
    assert result["auc_ctr"] is None and result["auc_valid_read"] is None
    assert result["towers"]["ctr"] == {"auc_ctr": None, "auc_valid_read": None}
    assert result["dt_mae_class"] is None
    assert isinstance(result["logloss_ctr"], float) and math.isfinite(result["logloss_ctr"])
    table = tables.comparison_table([("mmoe", result), ("learned", tables.load_metrics(learned))])
    assert "| mmoe | mmoe |" in table and "| undefined | undefined |" in table
    assert "nan" not in table.lower()
    # What ranking.train prints of it, from the run's own result (NaN) and from the file (null).
    assert math.isnan(returned["auc_ctr"]) and math.isnan(returned["towers"]["ctr"]["auc_ctr"])
    for metrics in (returned, result):
        lines = evaluation.summary_lines(metrics)
        assert lines[1].endswith("auc_valid_read undefined  auc_ctr undefined"), lines
        assert "  ctr tower: auc_valid_read undefined  auc_ctr undefined" in lines
        assert "mae_class undefined" in lines[-1] and "nan" not in " ".join(lines).lower()

    base = tmp_path / "serving"
    exporter.export_saved_model(learned, str(base))
    with pytest.raises(InputError, match=rf"held-out logs have 0 clicks in {len(frame):,} rows, "
                                         "so auc_ctr is undefined"):
        exporter.export_saved_model(learned, str(base), baseline=str(base), gate="auc_ctr:0",
                                    gate_logs=no_clicks)
    assert sorted(os.listdir(base)) == ["1", "models.config"]


def test_the_gate_never_defaults_to_a_window_the_refit_pass_trained_on(tmp_path):
    from export import gate

    def described(eval_logs=None, **selection):
        return {"training": {"train": "train/*.csv", "eval": eval_logs,
                             "selection": selection}, "working_directory": str(tmp_path)}

    # (The model's relative globs, read from the directory training ran in.)
    # No refit pass made (--refit=none, or a run killed before it: best/ is served): the
    # validation window (its own logs, or the training logs' last days).
    assert gate.held_out_logs(described(validation="val/*.csv", refit="none"), None,
                              refitted=False) == (f"{tmp_path}/val/*.csv", None)
    assert gate.held_out_logs(described("ev/*.csv", validation_days=1, refit="validation"),
                              None, refitted=False) == (f"{tmp_path}/train/*.csv",
                                                        "validation_days")
    # After a refit pass over it, the window is training data: the --eval logs, or a refusal.
    assert gate.held_out_logs(described("ev/*.csv", validation_days=1, refit="validation"),
                              None, refitted=True) == (f"{tmp_path}/ev/*.csv", None)
    assert gate.held_out_logs(described("ev/*.csv", validation="val/*.csv",
                                        refit="validation"), None, refitted=True) == (
        f"{tmp_path}/ev/*.csv", None)
    with pytest.raises(InputError, match=r"refit pass \(--refit=validation\) trained on its "
                                         "validation window and it has no --eval logs"):
        gate.held_out_logs(described(validation_days=1, refit="validation"), None, True)
    # --gate_logs always wins; a model without any held-out logs names it.
    assert gate.held_out_logs(described(validation_days=1, refit="validation"), "g/*.csv",
                              True) == ("g/*.csv", None)
    with pytest.raises(InputError, match="no validation or evaluation logs to gate on"):
        gate.held_out_logs(described(), None, False)


def test_the_gate_reads_unclicked_dwell_as_its_training_run_did(small_world, learned,
                                                                tmp_path):
    # A model trained with --allow_unclicked_dwell is gated on logs like its own: dwell on
    # unclicked rows reads as 0, so the gate's labels are those of the same logs without it.
    from export import gate
    from ranking import model_dir as model_dir_lib

    day = sorted(glob.glob(small_world["eval"]))[0]
    frame = pd.read_csv(day, dtype=str, keep_default_na=False)
    unclicked = frame.index[frame["click"] == "0"][:9]
    frame.loc[unclicked, "dwell_time"] = "31.0"
    frame.to_csv(tmp_path / "autoplay.csv", index=False)
    description = model_dir_lib.load_model_description(learned)
    spec = exporter.load_trained(learned)[0].feature_spec
    with pytest.raises(InputError, match=f"line {unclicked[0] + 2}, column 'dwell_time'"):
        gate.labelled_rows(description, str(tmp_path / "autoplay.csv"), spec, False)
    description["training"]["allow_unclicked_dwell"] = True
    labels = gate.labelled_rows(description, str(tmp_path / "autoplay.csv"), spec,
                                False).labels
    clean_labels = gate.labelled_rows(description, day, spec, False).labels
    for name in ("click", "valid_read"):
        np.testing.assert_array_equal(labels[name], clean_labels[name])
    assert len(labels["click"]) == len(frame) and labels["valid_read"].sum() > 0


def test_regularization_penalties_by_hand():
    tf.keras.utils.set_random_seed(0)
    spec = tiny_spec()
    model = models.RankingModel(spec, ModelConfig("single_ctr"), DwellTargets())
    batch = tiny_batch(spec, 8)
    model(batch)
    config = RegularizationConfig(l2_dense=0.01, l2_embedding=0.1)
    got = float(regularization.penalty(model, batch, config))
    matrices = regularization.dense_matrices(model)
    assert matrices and all(len(v.shape) == 2 for v in matrices)
    dense = 0.01 * sum(float(np.sum(np.square(v.numpy()))) for v in matrices)
    encoder = model.network.get_layer("features")
    touched = 0.0
    for feature in spec.features:
        if feature.kind == "categorical":
            rows = np.unique(encoder.indices(feature, batch[feature.name]).numpy())
            table = encoder.embeddings[feature.name].embeddings.numpy()
            touched += float(np.sum(np.square(table[rows])))
    assert got == pytest.approx(dense + 0.1 * touched, rel=1e-5)
    # Only the touched rows get a gradient from the embedding penalty.
    with tf.GradientTape() as tape:
        value = regularization.penalty(model, batch, RegularizationConfig(l2_embedding=1.0))
    table = encoder.embeddings["user_id"].embeddings
    gradient = tape.gradient(value, table)
    assert isinstance(gradient, tf.IndexedSlices)
    rows = np.unique(encoder.indices(spec["user_id"], batch["user_id"]).numpy())
    assert set(np.unique(gradient.indices.numpy())) == set(rows)


def test_weight_decay_is_torchs_coupled_decay_on_every_variable():
    """--weight_decay=wd adds wd * w to the gradient of every trainable variable (torch's Adam
    weight_decay): biases, batch-norm scales and offsets, and every row of every embedding
    table, read by the batch or not; ORCA's NDE-only step decays its own variables alike."""
    tf.keras.utils.set_random_seed(0)
    spec = tiny_spec()
    config = ModelConfig("mmoe", regularization=RegularizationConfig(batch_norm=True,
                                                                    weight_decay=0.01))
    model = models.RankingModel(spec, config, DwellTargets(bin_values=(1.0, 5.0, 20.0),
                                                           bin_ndt=(0.0, 0.2, 0.9)))
    batch = tiny_batch(spec, 8)
    model(batch)
    variables = model.trainable_variables
    with tf.GradientTape() as tape:
        value = regularization.penalty(model, batch, config.regularization)
    gradients = tape.gradient(value, variables)
    assert float(value) == pytest.approx(
        0.005 * sum(float(np.sum(np.square(v.numpy()))) for v in variables), rel=1e-5)
    for v, g in zip(variables, gradients):
        np.testing.assert_allclose(tf.convert_to_tensor(g).numpy(), 0.01 * v.numpy(),
                                   rtol=1e-5, atol=1e-12, err_msg=v.name)
    names = [v.name for v in variables]
    assert any("bias" in n for n in names) and any("gamma" in n for n in names)
    assert any("beta" in n for n in names)
    # Every row of a table has its decay, the rows the batch does not read included.
    encoder = model.network.get_layer("features")
    table = encoder.embeddings["user_id"].embeddings
    read = np.unique(encoder.indices(spec["user_id"], batch["user_id"]).numpy())
    gradient = tf.convert_to_tensor(gradients[[id(v) for v in variables].index(id(table))])
    unread = np.setdiff1d(np.arange(table.shape[0]), read)
    assert unread.size and np.all(np.abs(gradient.numpy()[unread]).sum(axis=1) > 0)
    # The training step adds it (and reports it).
    from ranking import loops

    labels = {"click": tf.constant([1, 0] * 4, tf.int64),
              "dwell_bin": tf.constant([0, -1, 1, -1, 2, -1, 1, -1], tf.int64)}
    run = types.SimpleNamespace(model=model, optimizer=tf.keras.optimizers.SGD(0.0),
                                balance=None, config=types.SimpleNamespace(model=config))
    step = loops.make_replica_step(run)((batch, labels))
    assert float(step["regularization"]) == pytest.approx(float(value), rel=1e-5)
    assert float(step["loss"]) == pytest.approx(
        float(step["regularization"] + step["ctr"] + step["dwell_bins"]), rel=1e-5)
    # Off, nothing is added; and the NDE-only step's penalty: l2_dense on matrices, the decay
    # on every one of its variables.
    assert float(regularization.penalty(model, batch, RegularizationConfig())) == 0.0
    kernel, bias = tf.Variable([[1.0, -2.0]]), tf.Variable([3.0])
    with tf.GradientTape() as tape:
        value = regularization.variables_penalty(
            [kernel, bias], RegularizationConfig(l2_dense=0.1, weight_decay=0.01))
    g_kernel, g_bias = tape.gradient(value, [kernel, bias])
    assert float(value) == pytest.approx(0.1 * 5.0 + 0.005 * 14.0)
    np.testing.assert_allclose(g_kernel.numpy(), [[0.21, -0.42]], rtol=1e-6)
    np.testing.assert_allclose(g_bias.numpy(), [0.03], rtol=1e-6)


def test_batch_norm_puts_a_normalization_in_every_hidden_layer():
    tf.keras.utils.set_random_seed(0)
    spec = tiny_spec()
    config = ModelConfig("mmoe", regularization=RegularizationConfig(batch_norm=True))
    network = models.build_network(spec, config, DwellTargets(bin_values=(1.0, 5.0, 20.0),
                                                              bin_ndt=(0.0, 0.2, 0.9)))
    norms = [layer for layer in network.submodules
             if isinstance(layer, tf.keras.layers.BatchNormalization)]
    # 4 experts of 2 layers and 2 towers of 2 hidden layers.
    assert len(norms) == 4 * 2 + 2 * 2
    moving = [float(tf.reduce_sum(n.moving_mean)) for n in norms]
    network(tiny_batch(spec, 16), training=False)
    assert [float(tf.reduce_sum(n.moving_mean)) for n in norms] == moving
    network(tiny_batch(spec, 16), training=True)
    assert [float(tf.reduce_sum(n.moving_mean)) for n in norms] != moving
    assert math.isfinite(moving[0])


def test_the_gate_refuses_a_stats_artifact_changed_since_training(small_world, learned):
    """The gate labels with the artifact at the path config.json names: one rewritten since
    (another statistics run into the same directory) would change the labels, so it is
    refused, naming what differs."""
    from export import gate
    from ranking import model_dir as model_dir_lib

    description = model_dir_lib.load_model_description(learned)
    spec = exporter.load_trained(learned)[0].feature_spec
    labels = gate.labelled_rows(description, small_world["eval"], spec, False).labels
    assert labels["valid_read"].sum() > 0
    description["stats"]["x_l"] += 1.0  # as if the artifact's x_l had moved since training
    with pytest.raises(InputError, match=r"has changed since \(its x_l differ"):
        gate.labelled_rows(description, small_world["eval"], spec, False)


def test_a_candidate_without_a_feature_the_baseline_reads_is_gated(small_world, learned,
                                                                    tmp_path):
    """A candidate trained with `source` excluded, gated against a baseline that reads it: the
    held-out logs' `source` column is read for the baseline, whose AUC is the one it has on
    those logs alone."""
    from export import gate

    config = tmp_path / "features.json"
    config.write_text(json.dumps({"features": {"source": {"exclude": True}}}))
    candidate = str(tmp_path / "without_source")
    training.train_and_evaluate(training.TrainConfig(
        train=small_world["train"], stats=small_world["stats"], model=ModelConfig("single_ctr"),
        batch_size=256, steps_per_epoch=5, progress="none", feature_config=str(config)),
        candidate)
    assert "source" not in exporter.load_trained(candidate)[0].feature_spec.names
    base = tmp_path / "serving"
    exporter.export_saved_model(learned, str(base))
    result = exporter.export_saved_model(candidate, str(base), baseline=str(base),
                                         gate="auc_ctr:1", gate_logs=small_world["eval"])
    # The baseline's AUC as the gate computes it alone on the same logs and labels.
    from ranking import model_dir as model_dir_lib

    spec = exporter.load_trained(learned)[0].feature_spec
    held = gate.labelled_rows(model_dir_lib.load_model_description(learned),
                              small_world["eval"], spec, False)
    features, labels = held.features, held.labels
    loaded = tf.saved_model.load(str(base / "1")).signatures["predict_raw"]
    scores = loaded(**{k: tf.constant(v) for k, v in features.items()})["score"].numpy()
    from sklearn.metrics import roc_auc_score

    assert result.gate["baseline"] == pytest.approx(
        roc_auc_score(labels["click"], scores.reshape(-1)), abs=1e-6)
    # The serving contract changed: said, naming the feature.
    assert result.warnings == ("the serving signature changed from version 1: source removed",)
    # Gate logs without `source`: the column is the baseline's, and named so.
    frame = pd.concat([pd.read_csv(f, dtype=str, keep_default_na=False)
                       for f in sorted(glob.glob(small_world["eval"]))])
    without = tmp_path / "no_source.csv"
    frame.drop(columns=["source"]).to_csv(without, index=False)
    with pytest.raises(InputError) as refused:
        exporter.export_saved_model(candidate, str(base), baseline=str(base / "1"),
                                    gate="auc_ctr:1", gate_logs=str(without))
    assert str(refused.value) == (f"{without}: the logs lack the baseline's feature column(s) "
                                  "source (the training logs had them)")
    # Version 1 pinned by hand (a rollback): the next export's contract is compared with it
    # too, since clients meet version 1 today, not version 2.
    config_path = base / "models.config"
    config_path.write_text(config_path.read_text().replace(
        "latest { num_versions: 1 }", "specific { versions: 1 }"))
    assert exporter.pinned_versions(str(config_path)) == [1]
    third = exporter.export_saved_model(candidate, str(base))
    assert third.version == 3 and third.warnings[1:] == (
        f"the serving signature changed from version 1, which {config_path} pins: "
        "source removed",)
    config_path.write_text(config_path.read_text().replace(
        "specific { versions: 1 }", "specific {\n versions: 3\n versions:2 }"))
    assert exporter.pinned_versions(str(config_path)) == [2, 3]
    # Two pinned versions that read `source` (1 and 4), a newest one that does too (5): the
    # candidate's export names both pinned versions in one warning.
    assert exporter.export_saved_model(learned, str(base)).version == 4
    config_path.write_text(config_path.read_text().replace(
        "specific {\n versions: 3\n versions:2 }", "specific { versions: 1 versions: 4 }"))
    assert exporter.export_saved_model(learned, str(base)).version == 5
    sixth = exporter.export_saved_model(candidate, str(base))
    assert sixth.warnings[0] == "the serving signature changed from version 5: source removed"
    assert "was edited by hand" in sixth.warnings[1]
    assert sixth.warnings[2:] == (
        f"the serving signature changed from versions 1, 4, which {config_path} pins: "
        "source removed",)


def test_an_export_of_a_run_that_has_not_finished_says_so(small_world, learned, tmp_path,
                                                           monkeypatch):
    """A run killed mid-training (or one still training) leaves training.running: its export
    says which checkpoint it serves as it stands; a finished run's leaves nothing."""
    from ranking import loops
    from ranking import model_dir as model_dir_lib

    assert not os.path.exists(os.path.join(learned, model_dir_lib.TRAINING_MARK))
    model_dir = str(tmp_path / "killed")
    shutil.copytree(learned, model_dir)

    def killed(run, say):
        raise KeyboardInterrupt  # as a signal would end the loop

    monkeypatch.setattr(loops, "train_synchronous", killed)
    with pytest.raises(KeyboardInterrupt):
        training.train_and_evaluate(training.TrainConfig(
            train=small_world["train"], eval=small_world["eval"], stats=small_world["stats"],
            model=ModelConfig("single_ctr"), batch_size=256, steps_per_epoch=60, seed=1,
            epochs=2, progress="none"), model_dir)
    assert os.path.exists(os.path.join(model_dir, model_dir_lib.TRAINING_MARK))
    result = exporter.export_saved_model(model_dir, str(tmp_path / "serving"))
    assert result.warnings == (
        f"{model_dir}'s training has not finished (a run killed before its end, or one still "
        "training): this export serves checkpoints/ckpt-60 as it stands; resume the run (the "
        "same command) and export again once it ends",)
    assert exporter.export_saved_model(learned, str(tmp_path / "done")).warnings == ()


def test_a_new_score_formula_is_said(learned, tmp_path):
    """Another --score_space or --score_weights than the previous version's: a warning with
    both formulas (scores of the two versions are on other scales); the same one: none."""
    base = tmp_path / "serving"
    first = exporter.export_saved_model(learned, str(base))
    assert first.warnings == () and first.fusion.formula() == "score = 1*ctr"
    same = exporter.export_saved_model(learned, str(base), score_weights=["ctr=1"])
    assert same.warnings == ()
    logged = exporter.export_saved_model(learned, str(base), score_space="log")
    assert logged.warnings == (
        "the score's formula changed from version 2: score = 1*ctr -> score = 1*log(ctr): its "
        "values are on another scale (and may rank otherwise), so thresholds, calibrations "
        "and logged scores of version 2 do not carry over",)
    # A SavedModel without score_fusion.json before (another tool's): nothing to compare.
    os.remove(base / "3" / "assets.extra" / "score_fusion.json")
    assert exporter.export_saved_model(learned, str(base)).warnings == ()


def test_a_models_config_edited_by_hand_is_left_as_it_is(learned, tmp_path, run):
    """A rollback pinned in models.config survives the next export, which says so; the config
    this tool writes is rewritten as before, and an unchanged model changes no serving input."""
    base = tmp_path / "serving"
    first = exporter.export_saved_model(learned, str(base))
    assert first.warnings == ()
    written = (base / "models.config").read_text()
    assert "latest { num_versions: 1 }" in written
    second = exporter.export_saved_model(learned, str(base))
    assert second.warnings == () and (base / "models.config").read_text() == written
    pinned = written.replace("latest { num_versions: 1 }", "specific { versions: 1 }")
    (base / "models.config").write_text(pinned)
    done = run("export.saved_model", f"--model_dir={learned}", f"--export_base={base}")
    assert done.returncode == 0, done.stderr
    assert (base / "models.config").read_text() == pinned
    assert "warning: " in done.stderr and "was edited by hand" in done.stderr
    assert (f"{base / 'models.config'} was edited by hand (not the config this tool writes): "
            "left as it is; it pins version(s) 1, so TF Serving does not serve version 3 until "
            "you add it") in " ".join(done.stderr.split())
    # Pinned by hand and copied elsewhere: the path TF Serving reads is named too.
    copy = tmp_path / "copied"
    shutil.copytree(base, copy)
    copied = exporter.export_saved_model(learned, str(copy))
    assert copied.warnings[-1].endswith(
        f"it pins version(s) 1, so TF Serving does not serve version {copied.version} until you "
        f"add it; its base_path is {base}, not {copy}: TF Serving reads versions from there")
    latest = pinned.replace("specific { versions: 1 }", "latest { num_versions: 2 }")
    (copy / "models.config").write_text(latest)
    assert exporter.export_saved_model(learned, str(copy)).warnings[-1].endswith(
        "TF Serving serves version 5 only if its model_version_policy allows it; its "
        f"base_path is {base}, not {copy}: TF Serving reads versions from there")
    # A base_path edited for a container (or a base moved since) is the user's too.
    container = written.replace(f'base_path: "{base}"', 'base_path: "/models/vr_ndt"')
    assert container != written
    (base / "models.config").write_text(container)
    fourth = exporter.export_saved_model(learned, str(base))
    assert fourth.version == 4 and fourth.warnings == (
        f"{base / 'models.config'} is this tool's config for another base_path, /models/vr_ndt "
        "(a base copied or moved since, or a container's path): left as it is, so TF Serving "
        f"reads versions from /models/vr_ndt, not from {base}; remove the file to have the "
        "next export write it for this base",)
    assert (base / "models.config").read_text() == container
    # Removed: the next export writes it for this base again.
    (base / "models.config").unlink()
    fifth = exporter.export_saved_model(learned, str(base))
    assert fifth.warnings == () and (base / "models.config").read_text() == written


def test_the_days_learned_include_the_refit_window_once_it_is_trained(small_world, tmp_path):
    """With --refit=validation the refit pass trains on the window: its day is learned. A
    finished run started again with one more day under its glob trains nothing, so the new day
    is not among the days learned (the gate's candidate notes)."""
    import shutil

    from ranking import model_dir as model_dir_lib
    from ranking.input_notes import trained_day_rows

    files = sorted(glob.glob(small_world["train"]))
    logs = tmp_path / "logs"
    logs.mkdir()
    for path in files[:-1]:
        shutil.copy(path, logs)
    config = training.TrainConfig(
        train=str(logs / "*"), stats=small_world["stats"], model=ModelConfig("vr_ndt"),
        batch_size=512, seed=5, progress="none",
        selection=SelectionConfig(validation_days=1, max_epochs=1, refit="validation"))
    model_dir = str(tmp_path / "m")
    training.train_and_evaluate(config, model_dir)
    days = {int(t) // SECONDS_PER_DAY: None for f in files[:-1]
            for t in pd.read_csv(f, usecols=["timestamp"])["timestamp"]}
    learned = trained_day_rows(model_dir_lib.read_training_days(model_dir), True)
    assert sorted(learned) == sorted(days)  # the window's day too: the refit pass trained on it
    shutil.copy(files[-1], logs)
    training.train_and_evaluate(config, model_dir)  # finished: trains nothing
    assert trained_day_rows(model_dir_lib.read_training_days(model_dir), True) == learned


def test_trained_days_and_the_gates_note_by_hand():
    from ranking.input_notes import gate_days_note, trained_day_rows

    record = {"train": {"10": 100, "11": 100, "12": 90}, "validation_days": 1,
              "validation": None}
    assert trained_day_rows(record, refitted=False) == {10: 100, 11: 100}
    assert trained_day_rows(record, refitted=True) == {10: 100, 11: 100, 12: 90}
    with_logs = dict(record, validation_days=0, validation={"13": 50})
    assert trained_day_rows(with_logs, refitted=True) == {10: 100, 11: 100, 12: 90, 13: 50}
    assert trained_day_rows(with_logs, refitted=False) == {10: 100, 11: 100, 12: 90}
    assert trained_day_rows(None, refitted=True) is None
    trained = {10: 100, 11: 100}
    assert gate_days_note(trained, {12: 80, 13: 70}) is None  # later days
    # The share of the last day that logs cut at a local midnight hold: not noted.
    assert gate_days_note(trained, {11: 60, 12: 80}) is None
    note = gate_days_note(trained, {11: 90, 12: 80})  # the whole day
    assert note.startswith("note: 90 rows of the gate's logs fall on 1 UTC day(s) the "
                           "candidate trained on")
    assert "1 rows of the gate's logs fall on 1 UTC day(s)" in gate_days_note(trained,
                                                                              {10: 1, 11: 60})
    assert gate_days_note(trained, {9: 50}) is None  # before training: not trained on


def test_a_gate_on_days_the_candidate_trained_on_says_so(small_world, learned, tmp_path):
    base = tmp_path / "serving"
    exporter.export_saved_model(learned, str(base))
    later = exporter.export_saved_model(learned, str(base), baseline=str(base),
                                        gate="auc_ctr:0", gate_logs=small_world["eval"])
    assert "notes" not in later.gate and later.warnings == ()
    train_day = sorted(glob.glob(small_world["train"]))[-2]
    trained = exporter.export_saved_model(learned, str(base), baseline=str(base),
                                          gate="auc_ctr:0", gate_logs=train_day)
    rows = len(pd.read_csv(train_day))
    # The baseline is the same model, exported with the days it trained on: both are said.
    note, baseline_note = trained.gate["notes"]
    assert note.startswith(f"note: {rows:,} rows of the gate's logs fall on 1 "
                                           "UTC day(s) the candidate trained on")
    assert baseline_note.startswith(f"note: {rows:,} rows of the gate's logs fall on 1 UTC "
                                    "day(s) the baseline trained on")
    assert baseline_note.endswith("its figure measures rows it learned from, which favours "
                                  "it; gate on later days")
    assert trained.warnings == (note.removeprefix("note: "),
                                baseline_note.removeprefix("note: "))
    record = json.load(open(os.path.join(trained.path, "quality_gate.json")))
    assert record["notes"] == [note, baseline_note]
    # The export keeps the days: {UTC day: rows} of the model's training_days.json.
    from ranking import model_dir as model_dir_lib
    from ranking.input_notes import trained_day_rows

    kept = json.load(open(os.path.join(trained.path, "assets.extra", "training_days.json")))
    assert {int(d): n for d, n in kept.items()} == trained_day_rows(
        model_dir_lib.read_training_days(learned), False)
    assert sum(kept.values()) == sum(len(pd.read_csv(f)) for f in glob.glob(small_world["train"]))
    # A candidate that trained on other days than the baseline: only the baseline's note (the
    # two notes read each model's own days, not one model's twice).
    elsewhere = tmp_path / "trained_elsewhere"
    shutil.copytree(learned, elsewhere)
    record = json.loads((elsewhere / "training_days.json").read_text())
    record["train"] = record["learned"] = {"100": 5}  # 1970-04-11
    (elsewhere / "training_days.json").write_text(json.dumps(record))
    only_baseline = exporter.export_saved_model(str(elsewhere), str(base), baseline=str(base),
                                                gate="auc_ctr:1", gate_logs=train_day)
    assert only_baseline.gate["notes"] == [baseline_note]
    # A candidate trained before training_days.json: the gate says it cannot tell.
    older = tmp_path / "older_model"
    shutil.copytree(learned, older)
    (older / "training_days.json").unlink()
    unknown = exporter.export_saved_model(str(older), str(base), baseline=str(base),
                                          gate="auc_ctr:0", gate_logs=small_world["eval"])
    assert unknown.gate["notes"] == [
        "note: the candidate's model directory records no training days (trained before "
        "training_days.json, 2026-12-06): the gate cannot say whether its logs hold days the "
        "candidate learned from; gate on days after its --train logs"]
    assert not os.path.exists(os.path.join(unknown.path, "assets.extra", "training_days.json"))
    # A baseline exported before its training days were kept: said too.
    old_baseline = tmp_path / "old_baseline" / "1"
    shutil.copytree(trained.path, old_baseline)
    os.remove(old_baseline / "assets.extra" / "training_days.json")
    unknown_baseline = exporter.export_saved_model(
        learned, str(base), baseline=str(old_baseline), gate="auc_ctr:1",
        gate_logs=small_world["eval"])
    assert unknown_baseline.gate["notes"] == [
        "note: the baseline export records no training days (exported before "
        "assets.extra/training_days.json, 2026-12-06, or from a model directory without them): "
        "the gate cannot say whether its logs hold days the baseline learned from, which would "
        "favour it"]


def test_the_gate_on_a_validation_window_says_which_days_it_read(small_world, learned):
    from export import gate
    from ranking import model_dir as model_dir_lib

    description = model_dir_lib.load_model_description(learned)
    description["training"]["selection"] = {"validation_days": 1}
    spec = exporter.load_trained(learned)[0].feature_spec
    held = gate.labelled_rows(description, None, spec, refitted=False)
    last_day = sorted(glob.glob(small_world["train"]))[-1]
    assert held.pattern == description["training"]["train"]
    assert len(held.labels["click"]) == len(pd.read_csv(last_day))
    assert held.window == "their last 1 UTC day(s), the candidate's validation window"
    days = pd.read_csv(last_day)["timestamp"] // 86400
    assert held.day_rows == {int(day): int(n) for day, n in days.value_counts().items()}
    # What the gate keeps of each batch (its scores) instead of every feature column.
    kept = gate.labelled_rows(description, None, spec, refitted=False,
                              keep=lambda batch: {"item_length": batch["item_length"] * 2})
    assert set(kept.features) == {"item_length"}
    np.testing.assert_array_equal(kept.features["item_length"],
                                  held.features["item_length"] * 2)


def test_a_gate_on_the_validation_window_names_a_baseline_trained_on_it(small_world, learned,
                                                                          stopped_early, run,
                                                                          tmp_path):
    """The default gate logs, the candidate's validation window (its last training day), are
    rows the baseline (`learned`, trained on every training day) learned from, which favours
    it: said when the gate passes, and before its error line when it refuses."""
    model_dir = str(tmp_path / "model")
    shutil.copytree(stopped_early, model_dir)
    base = tmp_path / "serving"
    exporter.export_saved_model(learned, str(base))
    last_day = pd.read_csv(sorted(glob.glob(small_world["train"]))[-1])
    date = (datetime.datetime.fromtimestamp(int(last_day["timestamp"].iloc[0]) // 86400 * 86400,
                                            datetime.timezone.utc).strftime("%Y-%m-%d"))
    note = (f"note: {len(last_day):,} rows of the gate's logs fall on 1 UTC day(s) the baseline "
            f"trained on ({date}): its figure measures rows it learned from, which favours it; "
            "gate on later days")
    passed = exporter.export_saved_model(model_dir, str(base), baseline=str(base),
                                         gate="auc_ctr:1")
    assert passed.gate["window"] == "their last 1 UTC day(s), the candidate's validation window"
    assert passed.gate["notes"] == [note]
    refused = run("export.saved_model", f"--model_dir={model_dir}", f"--export_base={base}",
                  f"--baseline={base / '1'}", "--gate=auc_ctr:0", "--score_weights=ctr=-1")
    lines = refused.stderr.splitlines()
    assert refused.returncode == 1 and len(lines) == 2, refused.stderr
    assert lines[0] == "warning: " + note.removeprefix("note: ")
    assert lines[1].startswith("error: quality gate: the candidate's auc_ctr")
    assert sorted(os.listdir(base)) == ["1", "2", "models.config"]


def test_serving_contract_changes_in_words():
    before = ({"item_length": "int64", "source": "string", "user_id": "string"},
              ("score", "valid_read", "weighted_valid_read"))
    after = ({"item_length": "float32", "user_id": "string", "tag": "string"}, ("ctr", "score"))
    assert exporter.contract_changes(before, after) == [
        "item_length int64 -> float32 (a client sending int64 is refused)",
        "tag (string) added: a client that leaves it out gets its default",
        "source removed",
        "output valid_read removed: a client reading it fails",
        "output weighted_valid_read removed: a client reading it fails",
        "output ctr added"]
    assert exporter.contract_changes(before, before) == []
    # A predecessor without serving_default: its outputs are not compared.
    assert exporter.contract_changes((before[0], ()), after)[-1] == "source removed"


def test_the_gate_reads_the_validation_window_training_held_out_not_the_newest_days(
        small_world, tmp_path):
    """Daily logs landing in the training glob's directory after training: the default gate
    re-split the logs it matched at export, and so scored the newest day under the name "the
    candidate's validation window". It reads the window training recorded (and its figure is
    the one the model selection saw); a window whose rows changed since is said in a note."""
    logs = tmp_path / "logs"
    logs.mkdir()
    days = sorted(glob.glob(small_world["train"]))
    for path in days:
        shutil.copy(path, logs)
    model_dir = str(tmp_path / "model")
    training.train_and_evaluate(training.TrainConfig(
        train=str(logs / "*.csv.gz"), stats=small_world["stats"],
        model=ModelConfig("single_ctr"), batch_size=256, steps_per_epoch=4, seed=1,
        progress="none", selection=SelectionConfig(validation_days=1, refit="none")),
        model_dir)
    selected = json.load(open(os.path.join(model_dir, "best.json")))
    base = tmp_path / "serving"
    exporter.export_saved_model(model_dir, str(base))
    shutil.copy(sorted(glob.glob(small_world["eval"]))[0], logs)  # the next day lands
    gated = exporter.export_saved_model(model_dir, str(base), baseline=str(base),
                                        gate="auc_ctr:0")
    last_day = pd.read_csv(days[-1])
    assert gated.gate["rows"] == len(last_day)
    assert gated.gate["window"] == "their last 1 UTC day(s), the candidate's validation window"
    assert selected["metric"] == "auc_ctr"
    assert gated.gate["candidate"] == pytest.approx(selected["value"], abs=1e-6)
    assert "notes" not in gated.gate

    # The window's own file rewritten since, with rows lost: read, and said.
    last_day.iloc[: len(last_day) // 2].to_csv(logs / os.path.basename(days[-1]), index=False)
    noted = exporter.export_saved_model(model_dir, str(base), baseline=str(base),
                                        gate="auc_ctr:0")
    assert noted.gate["rows"] == len(last_day) // 2
    date = pd.to_datetime(int(last_day["timestamp"].iloc[0]) // 86400, unit="D").date()
    assert noted.gate["notes"][0] == (
        f"note: the candidate's validation window ({date}) held {len(last_day):,} rows of its "
        f"training logs when it trained and holds {len(last_day) // 2:,} now: the gate's "
        "figure is not the one its model selection saw")
    # The window's file gone: refused, naming the window.
    os.remove(logs / os.path.basename(days[-1]))
    with pytest.raises(InputError, match=re.escape(
            f"the candidate's validation window ({date}) is no longer in its training logs: "
            "give --gate_logs")):
        exporter.export_saved_model(model_dir, str(base), baseline=str(base), gate="auc_ctr:0")
