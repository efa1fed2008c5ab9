"""The training rows in memory (`ranking.train_cache`): an epoch drawn from the cache is the
streamed epoch, batch for batch; tf.data's own interleave is the reference for the replayed
order; training with the cache ends at the model training without it ends at."""

import gzip
import shutil

import numpy as np
import pytest
import tensorflow as tf

from core import logs, stats_artifact
from core.labeler import labeler_for
from ranking import data, features, train_cache, training
from ranking.models import ModelConfig
from ranking.selection import SelectionConfig


@pytest.mark.parametrize("counts", [[3, 0, 5, 1, 2, 4], [0, 3, 0, 0, 2, 0], [1], [0, 0]])
def test_replayed_interleave_is_tf_datas(counts):
    """Files of uneven chunk counts (empty files first, in a row, last), two read at once: the
    order tf.data's deterministic parallel interleave gives (as `core.logs` reads files), chunk
    for chunk."""
    per_file = [[np.array([100 * f + j]) for j in range(n)] for f, n in enumerate(counts)]
    table = tf.constant(counts, tf.int64)
    streamed = tf.data.Dataset.range(len(counts)).interleave(
        lambda f: tf.data.Dataset.range(table[f]).map(lambda j: 100 * f + j),
        cycle_length=2, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    expected = [int(x) for x in streamed.as_numpy_iterator()]
    assert train_cache._interleave(per_file, 2).tolist() == expected  # noqa: SLF001
    assert sorted(expected) == sorted(100 * f + j for f, n in enumerate(counts)
                                      for j in range(n))


@pytest.fixture(scope="module")
def uneven_logs(small_world, tmp_path_factory):
    """The training days as files of uneven sizes: one gzip day, one plain day with blank
    lines inside, one header-only file, the other days split in two gzip files."""
    from glob import glob

    root = tmp_path_factory.mktemp("uneven")
    days = sorted(glob(small_world["train"]))
    shutil.copy(days[0], root / "a-day0.csv.gz")
    with gzip.open(days[1], "rt") as handle:
        lines = handle.read().splitlines()
    with_blanks = lines[:500] + ["", ""] + lines[500:1700] + [""] + lines[1700:]
    (root / "b-day1.csv").write_text("\n".join(with_blanks) + "\n")
    (root / "c-empty.csv").write_text(lines[0] + "\n")
    for k, day in enumerate(days[2:]):
        with gzip.open(day, "rt") as handle:
            lines = handle.read().splitlines()
        cut = len(lines) // 3
        for part, rows in (("1", lines[1:cut]), ("2", lines[cut:])):
            with gzip.open(root / f"d-day{k + 2}-{part}.csv.gz", "wt") as handle:
                handle.write("\n".join([lines[0]] + rows) + "\n")
    pattern = str(root / "*.csv*")
    artifact = stats_artifact.load_artifact(small_world["stats"])
    spec = features.build_feature_spec(data.open_source(pattern).schema,
                                       artifact.numeric_features)
    source = data.open_source(pattern, spec)
    return source, labeler_for(source, artifact), spec


def _batches(dataset):
    return [({k: v.numpy() for k, v in features_.items()}, {k: v.numpy() for k, v in labels.items()})
            for features_, labels in dataset]


@pytest.mark.parametrize("batch_size,shuffle_buffer,read_batch,whole_files", [
    (300, 0, None, True),     # no shuffle: read batches of 300 lines, many chunks per file
    (128, 1500, 700, True),   # the two-stage shuffle over read batches of 700 lines
    (128, 1500, 700, False),  # files streamed line by line (as files past 64 MB are)
])
def test_an_epoch_from_memory_is_the_streamed_epoch(uneven_logs, monkeypatch, batch_size,
                                                    shuffle_buffer, read_batch, whole_files):
    source, labeler, spec = uneven_logs
    if read_batch is not None:
        monkeypatch.setattr(data, "READ_BATCH", read_batch)
    if not whole_files:
        monkeypatch.setattr(logs, "WHOLE_FILE_BYTES", 0)
    cache = train_cache.load(source, labeler, spec, 1 << 30)
    assert cache.rows == sum(labeler.rows_per_file)
    last_day = int(cache.columns["timestamp"].numpy().max()) // 86400
    for epoch, days in ((0, None), (1, data.DayWindow(last=last_day - 1))):
        options = dict(seed=5, epoch=epoch, shuffle_buffer=shuffle_buffer, days=days)
        streamed = _batches(data.labelled_dataset(source, labeler, spec, batch_size, **options))
        cached = _batches(data.labelled_dataset(source, labeler, spec, batch_size, cache=cache,
                                                **options))
        assert len(cached) == len(streamed) > 10
        # Full batches but the last, with or without the shuffle (without it the day filter
        # left short and empty batches of the lines read before 2026-12-07).
        sizes = [len(labels["click"]) for _, labels in streamed]
        assert set(sizes[:-1]) == {batch_size} and 0 < sizes[-1] <= batch_size, sizes
        for (f_s, l_s), (f_c, l_c) in zip(streamed, cached):
            assert f_s.keys() == f_c.keys() and l_s.keys() == l_c.keys()
            for name in f_s:
                np.testing.assert_array_equal(f_c[name], f_s[name], err_msg=name)
            for name in l_s:
                np.testing.assert_array_equal(l_c[name], l_s[name], err_msg=name)


def test_rows_past_the_bound_are_not_kept(uneven_logs):
    source, labeler, spec = uneven_logs
    whole = train_cache.load(source, labeler, spec, 1 << 30)
    assert train_cache.load(source, labeler, spec, whole.nbytes - 1) is None
    assert train_cache.load(source, labeler, spec, whole.nbytes).rows == whole.rows
    # Its size is the sum of its columns' (strings: bytes + 32 each), counted independently.
    expected = 0
    for column in whole.columns.values():
        values = column.numpy()
        expected += (sum(len(v) + 32 for v in values) if column.dtype == tf.string
                     else values.nbytes)
    assert whole.nbytes == expected


def test_training_with_the_cache_ends_where_streaming_does(small_world, tmp_path, capsys):
    def train(cache_mb, name, batch_size=1024, steps=None):
        config = training.TrainConfig(
            train=small_world["train"], eval=small_world["eval"], stats=small_world["stats"],
            model=ModelConfig("vr_ndt"), batch_size=batch_size, epochs=2,
            steps_per_epoch=steps, seed=2, progress="epoch", deterministic=True,
            train_cache_mb=cache_mb)
        return training.train_and_evaluate(config, str(tmp_path / name))

    cached = train(64, "cached")
    assert "training rows in memory:" in capsys.readouterr().out
    streamed = train(0, "streamed")
    assert "training rows in memory" not in capsys.readouterr().out
    assert cached["global_step"] == streamed["global_step"]
    for key in ("auc_valid_read", "auc_ctr", "logloss_valid_read"):
        assert cached[key] == pytest.approx(streamed[key], rel=1e-6), key
    assert cached["phase_seconds"]["cache"] > 0
    assert "cache" not in streamed["phase_seconds"]
    too_small = train(1, "too_small", batch_size=8192)
    assert "not kept in memory: more than --train_cache_mb=1 MB" in capsys.readouterr().out
    assert "cache" in too_small["phase_seconds"]
    # Epochs capped to a few steps would not read the rows twice over: no cache.
    train(64, "capped", steps=3)
    assert "in memory" not in capsys.readouterr().out


def test_a_file_that_straddles_the_validation_window_is_counted_in_its_two_parts(
        small_world, tmp_path, capsys):
    """Days 2 and 3 in one file, day 3 held out: the cache holds the whole file, and the line
    says how many of its rows are training rows (counted with pandas)."""
    import glob

    import pandas as pd

    days = sorted(glob.glob(small_world["train"]))
    frames = [pd.read_csv(path, dtype=str, keep_default_na=False) for path in days]
    logs = tmp_path / "logs"
    logs.mkdir()
    for k, frame in enumerate(frames[:2]):
        frame.to_csv(logs / f"day-{k}.csv", index=False)
    pd.concat(frames[2:]).to_csv(logs / "day-2-3.csv", index=False)
    config = training.TrainConfig(
        train=str(logs / "*.csv"), stats=small_world["stats"], model=ModelConfig("vr_ndt"),
        batch_size=4096, seed=2, progress="epoch",
        selection=SelectionConfig(validation_days=1, max_epochs=2, refit="none"),
        train_cache_mb=64)
    training.train_and_evaluate(config, str(tmp_path / "model"))
    whole = sum(len(f) for f in frames)
    trained = sum(len(f) for f in frames[:3])
    assert (f"training rows in memory: {whole:,} rows ({trained:,} on training days; the "
            "rest, of the validation window in the same files, are filtered out as each epoch "
            "draws)") in capsys.readouterr().out

