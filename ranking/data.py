"""Training and evaluation input: raw logs -> labels on the fly -> (features, labels) batches.

The labels come from `pipelines.labels` (the same code as the labelling job), computed inside
the `tf.data` graph for every batch, so a model trains directly from raw logs.

Order: each epoch reads the files in an order permuted by (seed, epoch), two files at a time,
and shuffles rows in two stages seeded the same way: the rows of each read batch (8,192 rows) are
permuted, cut into chunks of 256 rows, and the chunks pass through a shuffle buffer of
`shuffle_buffer` rows before being joined into training batches. (A row-level shuffle buffer,
`unbatch().shuffle().batch()`, costs a tf.data element per row and reads several times slower (README);
with chunks, a training batch of 2,048 rows draws 8 random chunks of the buffer, each a random
sample of one read batch.) An epoch's batch sequence is therefore a
pure function of (files, seed, epoch): resuming at batch k of an epoch skips k batches and
continues with exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from core import logs
from core.errors import InputError
from core.label_rules import LABEL_KEYS
from core.labeler import Labeler
from ranking import distribute
from ranking.features import FeatureSpec

LABEL_INPUTS = ("user_id", "item_id", "timestamp", "click", "dwell_time")
# Rows per read batch before rows are shuffled and re-batched.
READ_BATCH = 8192


def open_source(patterns: str, spec: FeatureSpec | None = None) -> logs.LogSource:
    """Opens logs; with a spec, feature columns are read with the types the model was built
    with (an absent feature column is an error naming it)."""
    source = logs.open_logs(patterns, column_types=None if spec is None else {
        name: dtype for name, dtype in spec.dtypes.items()})
    if spec is not None:
        missing = [n for n in spec.names if n not in source.schema.dtypes]
        if missing:
            raise InputError(f"the logs lack the model's feature column(s) "
                                  f"{', '.join(missing)}", file=patterns)
    return source


def _split(spec: FeatureSpec):
    names = spec.names

    def split(batch):
        features = {n: batch[n] for n in names}
        labels = {k: batch[k] for k in LABEL_KEYS}
        return features, labels

    return tf.autograph.experimental.do_not_convert(split)


def labelled_dataset(source: logs.LogSource, labeler: Labeler, spec: FeatureSpec,
                     batch_size: int, *, seed: int | None = None, epoch: int = 0,
                     shuffle_buffer: int = 0, allow_unclicked_dwell: bool = False,
                     drop_remainder: bool = False, shard=None) -> tf.data.Dataset:
    """(features, labels) batches of `batch_size` rows.

    features: {feature: Tensor[batch]} in the spec's dtypes; labels: {click, valid_read, ndt,
    log_dwell, dwell_bin, dwell_time}. With `seed`, files and rows are shuffled as described in
    the module docstring; without, rows come in file order (evaluation, scoring).

    `shard` (a `ranking.distribute.Shard`) is one worker's part of the input: with mode
    "files", the files index, index + count, ... of the epoch's order (`batch_size` is then the
    worker's batch; index may be a Tensor); with mode "rows", every file, and rows
    [n * index / count, n * (index + 1) / count) of each batch of n rows (`batch_size` is the
    global batch, which every worker draws alike).
    """
    columns = tuple(dict.fromkeys(spec.names + LABEL_INPUTS))
    if seed is not None:
        order = distribute.epoch_file_order(len(source.files), seed, epoch)
        source = dataclasses.replace(source, files=[source.files[i] for i in order])
    read_batch = max(batch_size, READ_BATCH) if shuffle_buffer else batch_size
    file_shard = (shard.count, shard.index) if shard and shard.mode == "files" else None
    dataset = source.dataset(read_batch, allow_unclicked_dwell=allow_unclicked_dwell,
                             columns=columns, parallel_files=2 if seed is not None else 1,
                             file_shard=file_shard)
    dataset = dataset.map(tf.autograph.experimental.do_not_convert(labeler),
                          num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if seed is not None and shuffle_buffer:
        dataset = _shuffle_rows(dataset, batch_size, shuffle_buffer, seed, epoch, drop_remainder)
    if shard is not None and shard.mode == "rows":
        dataset = dataset.map(_row_slice(shard), deterministic=True)
    return dataset.map(_split(spec), num_parallel_calls=tf.data.AUTOTUNE,
                       deterministic=True).prefetch(tf.data.AUTOTUNE)


def _row_slice(shard):
    def take_slice(batch):
        rows = tf.shape(batch["click"], out_type=tf.int64)[0]
        start = rows * shard.index // shard.count
        end = rows * (shard.index + 1) // shard.count
        return {k: v[start:end] for k, v in batch.items()}

    return tf.autograph.experimental.do_not_convert(take_slice)


CHUNK_ROWS = 256


def _shuffle_rows(dataset, batch_size, shuffle_buffer, seed, epoch, drop_remainder):
    """Two-stage shuffle (module docstring); stateless seeds, so the order is reproducible."""

    def permute(index, batch):
        rows = tf.shape(batch["click"])[0]
        noise = tf.random.stateless_uniform([rows], seed=tf.stack(
            [tf.constant(seed * 1_000_003 + epoch, tf.int64), index]))
        order = tf.argsort(noise)
        return {k: tf.gather(v, order) for k, v in batch.items()}

    chunks = (dataset.enumerate()
              .map(tf.autograph.experimental.do_not_convert(permute),
                   num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
              .rebatch(CHUNK_ROWS))
    return (chunks.shuffle(max(1, shuffle_buffer // CHUNK_ROWS), seed=seed * 1_000_003 + epoch,
                           reshuffle_each_iteration=False)
            .rebatch(batch_size, drop_remainder=drop_remainder))
