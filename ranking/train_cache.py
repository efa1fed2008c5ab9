"""The training rows in memory: read, parsed and labelled once, then drawn in each epoch's order.

Streaming an epoch (`ranking.data.labelled_dataset`) decompresses, parses and labels every row
again, beside the training step on the same CPUs: on 2 CPUs about a third of an epoch's CPU time
for `ple`. With more than one epoch to train, `--train_cache_mb` keeps the labelled columns of
the training rows in memory (one tensor per column, files in input order) when they fit, and
every epoch reads its batches from there.

An epoch from memory is the same batch sequence as the streamed one, row for row: the stream's
read batches are the rows of its files in the epoch's file order, read `read_batch` lines at a
time from two files at once (`core.logs`, an interleave of cycle 2), and cut into read batches
of `read_batch` rows. `read_order` replays that interleave on the cached rows' (file, line)
numbers, so the read batches gather the same rows in the same order; the day filter, the
two-stage shuffle and the split into features and labels then run as for the stream. Resuming
therefore stays exact, and a run may switch between the two (tests/test_train_cache.py checks
the batches are identical).
"""

from __future__ import annotations

import dataclasses
import time

import numpy as np
import tensorflow as tf

from core import log_files, logs
from core.errors import InputError
from core.label_rules import LABEL_KEYS
from core.labeler import Labeler
from ranking import data
from ranking.features import FeatureSpec

# Rows per batch of the loading pass (its batches are concatenated: the size only sets speed).
LOAD_BATCH = 65536


@dataclasses.dataclass
class TrainingCache:
    """Labelled training rows in memory: `columns` {name: Tensor[rows]} (the features, the
    labels and `timestamp`), with each row's file (its position in the source's `files`) and
    line or record number (`file_index`, `source_row`: int64 [rows], files in order, rows in
    file order)."""

    columns: dict
    file_index: np.ndarray
    source_row: np.ndarray
    first_row: int  # the number of a file's first row: 2 for CSV (after the header), 1 for TFRecord
    nbytes: int
    seconds: float

    @property
    def rows(self) -> int:
        return len(self.file_index)

    def read_order(self, file_order: np.ndarray, read_batch: int) -> np.ndarray:
        """int64 [rows]: the cached rows in the order the stream reads them, for the files in
        `file_order` (positions in `files`) read `read_batch` lines per chunk (module
        docstring)."""
        per_file = []
        for f in file_order:
            start, end = np.searchsorted(self.file_index, [f, f + 1])
            chunk = (self.source_row[start:end] - self.first_row) // read_batch
            # A chunk's rows are consecutive: split where the chunk number changes.
            cuts = np.flatnonzero(np.diff(chunk)) + 1
            per_file.append(np.split(np.arange(start, end, dtype=np.int64), cuts)
                            if end > start else [])
        return _interleave(per_file, data.PARALLEL_FILES)

    def read_batches(self, file_order: np.ndarray, read_batch: int) -> tf.data.Dataset:
        """The stream's read batches ({column: Tensor[<= read_batch]}, `columns`' keys) for an
        epoch whose files come in `file_order`."""
        order = tf.constant(self.read_order(file_order, read_batch))
        columns = self.columns
        batches = (self.rows + read_batch - 1) // read_batch

        def gather(k):
            rows = order[k * read_batch:(k + 1) * read_batch]
            return {name: tf.gather(column, rows) for name, column in columns.items()}

        return tf.data.Dataset.range(batches).map(
            tf.autograph.experimental.do_not_convert(gather),
            num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)


def _interleave(per_file: list, cycle: int) -> np.ndarray:
    """The order of tf.data's deterministic interleave (block length 1) of `cycle` files at a
    time, each file a list of chunks (int64 row arrays): one chunk from each open file in turn;
    a finished file's slot takes the next file when its turn comes."""
    pending, slots, parts = iter(per_file), [None] * cycle, []
    index, open_files, input_done = 0, 0, False
    while not input_done or open_files:
        if slots[index] is not None:
            chunk = next(slots[index], None)
            if chunk is not None:
                parts.append(chunk)
            else:
                slots[index], open_files = None, open_files - 1
            index = (index + 1) % cycle
        elif not input_done:
            chunks = next(pending, None)
            if chunks is None:
                input_done = True
                index = (index + 1) % cycle
            else:  # the new file gives its first chunk in this same turn
                slots[index], open_files = iter(chunks), open_files + 1
        else:
            index = (index + 1) % cycle
    return np.concatenate(parts) if parts else np.zeros(0, np.int64)


def load(source: logs.LogSource, labeler: Labeler, spec: FeatureSpec, max_bytes: int, *,
         allow_unclicked_dwell: bool = False) -> TrainingCache | None:
    """Reads and labels every row of `source` into memory; None (and nothing kept) as soon as
    the columns pass `max_bytes` (tensor elements; strings count their bytes plus 32).
    InputError when the logs have no row."""
    started = time.perf_counter()
    keys = tuple(dict.fromkeys(spec.names + LABEL_KEYS + ("timestamp",)))
    columns = tuple(dict.fromkeys(spec.names + data.LABEL_INPUTS))

    def labelled(batch):
        labels = labeler(batch)
        return ({k: labels[k] for k in keys},
                (batch[logs.SOURCE_INDEX], batch[logs.SOURCE_ROW]))

    dataset = source.dataset(LOAD_BATCH, allow_unclicked_dwell=allow_unclicked_dwell,
                             with_source=True, columns=columns).map(
        tf.autograph.experimental.do_not_convert(labelled),
        num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    parts, size = {k: [] for k in keys}, 0
    file_index, source_row = [], []
    for batch, (files, rows) in dataset:
        size += sum(data.tensor_bytes(batch[k]) for k in keys)
        if size > max_bytes:
            return None
        for k in keys:
            parts[k].append(batch[k])
        file_index.append(files.numpy())
        source_row.append(rows.numpy())
    if not file_index:  # as the streamed epoch would say
        raise InputError("the training input yielded no batch",
                         file=log_files.files_text(source.files))
    # One column at a time, its batches dropped as it is joined: the peak stays near the bound.
    return TrainingCache(
        columns={k: tf.concat(parts.pop(k), axis=0) for k in keys},
        file_index=np.concatenate(file_index), source_row=np.concatenate(source_row),
        first_row=2 if source.format == "csv" else 1, nbytes=size,
        seconds=time.perf_counter() - started)
