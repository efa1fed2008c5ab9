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

import numpy as np
import tensorflow as tf

from core import log_files, log_schema, logs, threads
from core.errors import InputError
from core.label_rules import LABEL_INPUTS, LABEL_KEYS, SECONDS_PER_DAY, utc_date
from core.labeler import Labeler
from ranking import distribute
from ranking.features import FeatureSpec

# Rows per read batch before rows are shuffled and re-batched.
READ_BATCH = 8192
# Files a training epoch reads at once (`ranking.train_cache` replays their interleave).
PARALLEL_FILES = 2


def open_source(patterns: str, spec: FeatureSpec | None = None, artifact=None, *,
                training_logs: bool = False, baseline_only: tuple = ()) -> logs.LogSource:
    """Opens logs. With a spec, its feature columns are read with the types the model was built
    with (an absent one is an error naming it); without, these are the training logs a spec is
    built from: the types given to the statistics job (`artifact.column_types`,
    --column_types) apply, the others are inferred.

    For the errors (`LogSource.type_origins`): `artifact` says which types came from
    --column_types; `training_logs` marks the training logs, whose own first rows set the spec's
    other types, so a value that does not fit is explained as such, not as the model's type.
    `baseline_only`: names of spec features only the quality gate's baseline reads, named as
    the baseline's when absent."""
    given = {} if artifact is None else artifact.column_types
    if spec is None:
        # A column these logs hold no value of is typed as in the stats job's logs.
        unseen = {} if artifact is None else artifact.log_types
        return _in_artifact_order(logs.open_logs(patterns, column_types=given,
                                                 given_by="artifact", unseen_types=unseen),
                                  artifact)
    try:
        source = logs.open_logs(patterns, column_types=dict(spec.dtypes))
    except log_schema.AbsentTypedColumns as absent:
        ours = [n for n in absent.names if n not in baseline_only]
        theirs = [n for n in absent.names if n in baseline_only]
        lacking = ([f"the model's feature column(s) {', '.join(ours)}"] if ours else []) + (
            [f"the baseline's feature column(s) {', '.join(theirs)}"] if theirs else [])
        raise InputError(f"the logs lack {' and '.join(lacking)} (the training logs had them)",
                         file=patterns) from None
    origins = {name: "artifact" if name in given else "model" for name in spec.dtypes
               if name in given or not training_logs}
    # A missing value reads as the feature config's `default`, as serving reads it.
    return dataclasses.replace(source, schema=source.schema.with_missing(spec.defaults),
                               type_origins=origins)


def _in_artifact_order(source: logs.LogSource, artifact) -> logs.LogSource:
    """`source` with a TFRecord input's columns in the order of the logs the stats artifact was
    computed from (others after, as sampled). A tf.Example's features have no order (the reader
    puts the required ones first, then the others by name), and the model's features follow
    its input's columns: the label job's TFRecord shards of a CSV log then build the model the
    CSV builds, with the same initial weights at the same seed."""
    order = list((getattr(artifact, "schema", None) or {}).get("columns", ()))
    if source.format != "tfrecord" or not order:
        return source
    place = {name: index for index, name in enumerate(order)}
    columns = tuple(sorted(source.schema.columns,
                           key=lambda name: (place.get(name, len(order)),
                                             source.schema.columns.index(name))))
    return dataclasses.replace(source, schema=dataclasses.replace(source.schema, columns=columns))


@dataclasses.dataclass(frozen=True)
class DayWindow:
    """The rows of UTC days `first` .. `last` (day numbers: unix seconds // 86400; None: open)."""

    first: int | None = None
    last: int | None = None

    def filter(self):
        """A batch -> batch map keeping the window's rows (its `timestamp` column decides)."""
        first, last = self.first, self.last

        def keep_rows(batch):
            day = tf.math.floordiv(batch["timestamp"], SECONDS_PER_DAY)
            keep = tf.ones_like(day, tf.bool)
            if first is not None:
                keep &= day >= first
            if last is not None:
                keep &= day <= last
            return {k: tf.boolean_mask(v, keep) for k, v in batch.items()}

        return tf.autograph.experimental.do_not_convert(keep_rows)


def split_by_days(source: logs.LogSource, file_day_rows: dict, validation_days: int):
    """Holds out the last `validation_days` UTC days of `source` (whose rows per (file index,
    day) the labeller's counting pass found): returns ((training source, its DayWindow, its
    rows per file), (validation source, its DayWindow)); each source keeps only the files
    with rows in its window. InputError when no training day is left."""
    days = sorted({day for _, day in file_day_rows})
    cutoff = days[-1] - validation_days + 1
    if cutoff <= days[0]:
        raise InputError(f"--validation_days={validation_days} leaves no training rows: the "
                         f"training input covers {len(days)} UTC day(s), {utc_date(days[0])} to "
                         f"{utc_date(days[-1])}", file=log_files.files_text(source.files))
    parts = []
    for window, inside in ((DayWindow(last=cutoff - 1), lambda d: d < cutoff),
                           (DayWindow(first=cutoff), lambda d: d >= cutoff)):
        rows = {}
        for (file, day), n in file_day_rows.items():
            if inside(day):
                rows[file] = rows.get(file, 0) + n
        kept = sorted(rows)
        parts.append((dataclasses.replace(source, files=[source.files[i] for i in kept]),
                      window, np.array([rows[i] for i in kept], np.int64)))
    (train, train_window, train_rows), (validation, validation_window, _) = parts
    return (train, train_window, train_rows), (validation, validation_window)


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
                     drop_remainder: bool = False, shard=None,
                     days: DayWindow | None = None, cache=None) -> tf.data.Dataset:
    """(features, labels) batches of `batch_size` rows.

    features: {feature: Tensor[batch]} in the spec's dtypes; labels: {click, valid_read, ndt,
    log_dwell, dwell_bin, dwell_time}. With `seed`, files and rows are shuffled as described in
    the module docstring; without, rows come in file order (evaluation, scoring).

    `shard` (a `ranking.distribute.Shard`) is one worker's part of the input: with mode
    "files", the files index, index + count, ... of the epoch's order (`batch_size` is then the
    worker's batch; index may be a Tensor); with mode "rows", every file, and rows
    [n * index / count, n * (index + 1) / count) of each batch of n rows (`batch_size` is the
    global batch, which every worker draws alike).

    `days` keeps only the rows of a window of UTC days (a held-out validation split).

    `cache` (a `ranking.train_cache.TrainingCache` of `source`'s rows): a seeded epoch of one
    worker reads its rows from memory instead of the logs, in the same batches (unseeded or
    sharded reads ignore it).
    """
    columns = tuple(dict.fromkeys(spec.names + LABEL_INPUTS))
    if seed is not None:
        order = distribute.epoch_file_order(len(source.files), seed, epoch)
        source = dataclasses.replace(source, files=[source.files[i] for i in order])
    read_batch = max(batch_size, READ_BATCH) if shuffle_buffer else batch_size
    if cache is not None and seed is not None and shard is None:
        dataset = cache.read_batches(order, read_batch)
    else:
        file_shard = (shard.count, shard.index) if shard and shard.mode == "files" else None
        dataset = source.dataset(read_batch, allow_unclicked_dwell=allow_unclicked_dwell,
                                 columns=columns,
                                 parallel_files=PARALLEL_FILES if seed is not None else 1,
                                 file_shard=file_shard)
        dataset = dataset.map(tf.autograph.experimental.do_not_convert(labeler),
                              num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if days is not None:
        dataset = dataset.map(days.filter(), num_parallel_calls=tf.data.AUTOTUNE,
                              deterministic=True)
        if seed is not None and not shuffle_buffer:
            # The shuffle's rebatch makes the filtered batches whole again; without it a batch
            # of lines read would train short, or empty (a step on nothing, and NaN moving
            # statistics in batch normalization), and the steps counted for the window's rows
            # would leave rows out.
            dataset = dataset.rebatch(batch_size, drop_remainder=drop_remainder)
    if seed is not None and shuffle_buffer:
        dataset = _shuffle_rows(dataset, batch_size, shuffle_buffer, seed, epoch, drop_remainder)
    if shard is not None and shard.mode == "rows":
        dataset = dataset.map(_row_slice(shard))
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


# Bytes a string element is counted at when sizing the read-ahead buffer: TensorFlow's tstring
# (32 bytes, short text inline) plus as much again for the text of ids and categories.
STRING_ELEMENT_BYTES = 64


def read_ahead_batches(element_spec, batch_rows: int, max_bytes: int) -> int:
    """How many batches of `batch_rows` rows of `element_spec` (a dataset's nested TensorSpecs,
    [batch] or [batch, k]; an unknown rank counts one element a row) fit in `max_bytes`, at
    least 1: numbers at their dtype's width, strings at STRING_ELEMENT_BYTES."""
    row_bytes = 0
    for spec in tf.nest.flatten(element_spec):
        shape = spec.shape
        per_row = 1 if shape.rank is None else int(np.prod([d or 1 for d in shape[1:]],
                                                           dtype=np.int64))
        width = STRING_ELEMENT_BYTES if spec.dtype == tf.string else spec.dtype.size
        row_bytes += per_row * width
    return max(1, max_bytes // max(1, row_bytes * batch_rows))


def read_ahead(dataset: tf.data.Dataset, batch_rows: int, max_bytes: int) -> tf.data.Dataset:
    """`dataset` (training batches) with up to `max_bytes` of its batches read ahead of the
    step (`read_ahead_batches`), by a thread pool of every CPU but one (`--read_ahead_mb`).

    tf.data's own prefetch (AUTOTUNE) keeps a few batches: while the model is built and its
    step traced, Python on one CPU for 1.5-2 s, the input pipeline would wait. With a deep
    buffer it reads, parses and labels ahead meanwhile, and the epoch's steps then find most of
    their batches ready instead of sharing the CPUs with the parsing. The pool leaves one CPU
    to the main thread, so the read-ahead does not slow the build it overlaps (on 2 CPUs: one
    thread). `max_bytes` 0: `dataset` unchanged. Same batches, same order."""
    if max_bytes <= 0:
        return dataset
    options = tf.data.Options()
    options.threading.private_threadpool_size = max(1, threads.available_cpus() - 1)
    batches = read_ahead_batches(dataset.element_spec, batch_rows, max_bytes)
    return dataset.prefetch(batches).with_options(options)


class ReadAhead:
    """An iterator whose first element is fetched in a background thread from the moment this
    is made: a first batch costs reading files, labelling and (in training) the shuffle buffer's
    fill, in tf.data's threads outside the GIL, which then overlap what the main thread does
    meanwhile (building the model, tracing a step). Later elements come from `iterator` as they
    would; an error of the fetch is raised by the first `next`. (Making the input pipeline in the
    thread too was not faster: it is Python, and competes with the main thread for the GIL.)"""

    _END = object()

    def __init__(self, iterator):
        self._iterator = iterator
        self._first = threads.read_in_background(lambda: next(iterator, self._END))

    def __iter__(self):
        return self

    def __next__(self):
        if self._first is not None:
            first, self._first = self._first.result(), None
            if first is self._END:
                raise StopIteration
            return first
        return next(self._iterator)


@dataclasses.dataclass
class Inputs:
    """A training run's labelled inputs: the training logs (with their labeller, rows per file
    and, under --validation_days, the days they keep), and the validation and evaluation logs
    as (source, labeller, DayWindow or None)."""

    train: logs.LogSource
    labeler: Labeler
    rows_per_file: np.ndarray
    train_days: DayWindow | None = None
    validation: tuple | None = None
    evaluation: tuple | None = None
    # `ranking.train_cache.TrainingCache` of `train`, when its rows are kept in memory.
    train_cache: object = None
    # The first epoch's batches, read ahead while the model is built (`ReadAhead`).
    first_epoch: object = None
    # The evaluation labeller's counting pass, when it runs in the background (`prepare_inputs`).
    evaluation_counting: object = None

    def wait_for_counts(self) -> None:
        """Waits for a counting pass made in the background; its bad input is raised here."""
        if self.evaluation_counting is not None:
            pending, self.evaluation_counting = self.evaluation_counting, None
            self.evaluation = pending.result()

    def labellers(self):
        """(input, labeller): train, validation (when it has its own logs), eval."""
        named = [("train", self.labeler)]
        if self.validation and self.validation[1] is not self.labeler:
            named.append(("validation", self.validation[1]))
        if self.evaluation:
            named.append(("eval", self.evaluation[1]))
        return named


def validation_counts(inputs: Inputs) -> tuple[int, int]:
    """(rows, clicks) of the validation window of `inputs`, from its labeller's counting pass:
    the held-out days of the training logs (--validation_days), or the --validation logs."""
    _, labeler, window = inputs.validation
    first = -np.inf if window is None or window.first is None else window.first
    last = np.inf if window is None or window.last is None else window.last
    rows = sum(n for (_, day), n in labeler.file_day_rows.items() if first <= day <= last)
    clicks = sum(n for day, n in (labeler.day_clicks or {}).items() if first <= day <= last)
    return int(rows), int(clicks)


def prepare_inputs(config, spec: FeatureSpec, artifact, train_scope=None,
                   count_evaluation_in_background: bool = False) -> Inputs:
    """Opens and labels the inputs of `config` (a TrainConfig). The labellers' counting passes
    read every row, so bad input is refused here (or, for the evaluation logs counted in the
    background, by `Inputs.wait_for_counts`), before a model directory is touched.
    `train_scope`: a context for the training labeller's tables (a parameter-server strategy's
    scope gives every worker its own copy). `count_evaluation_in_background`: the evaluation
    logs' counting pass (rule T2) runs in a thread, beside what the caller does next (building
    the model), until `Inputs.wait_for_counts`."""
    import contextlib

    from core.labeler import labeler_for

    def labelled(source, scope=None):
        with scope or contextlib.nullcontext():
            return labeler_for(source, artifact,
                               allow_unclicked_dwell=config.allow_unclicked_dwell)

    train = open_source(config.train, spec, artifact, training_logs=True)
    labeler = labelled(train, train_scope)
    inputs = Inputs(train, labeler, labeler.rows_per_file)
    selection = config.selection
    if selection.validation_days:
        (inputs.train, inputs.train_days, inputs.rows_per_file), (validation, days) = \
            split_by_days(train, labeler.file_day_rows, selection.validation_days)
        inputs.validation = (validation, labeler, days)
    elif selection.validation:
        validation = open_source(selection.validation, spec, artifact)
        inputs.validation = (validation, labelled(validation), None)
    if config.eval:
        evaluation = open_source(config.eval, spec, artifact)
        if count_evaluation_in_background:
            def count():
                from core.log_diagnosis import input_errors_explained

                # A failed read is explained here, against this thread's reader (the
                # evaluation logs), not against what the main thread reads meanwhile.
                with input_errors_explained():
                    return evaluation, labelled(evaluation)

            inputs.evaluation_counting = threads.read_in_background(count)
        else:
            inputs.evaluation = (evaluation, labelled(evaluation))
    return inputs


class CachedBatches:
    """The batches of `make_dataset()`, kept in memory after the first full pass when they
    total at most `max_bytes` (0: never kept), so that a window validated again and again is
    read, parsed and labelled once. A window larger than the bound is read again at each pass;
    `kept` says which. Sizes count each tensor's elements (strings: their bytes plus 32)."""

    def __init__(self, make_dataset, max_bytes: int):
        self._make, self._max_bytes = make_dataset, max_bytes
        self._batches: list | None = None
        self._too_large = max_bytes <= 0

    @property
    def kept(self) -> bool:
        return self._batches is not None

    def __iter__(self):
        if self._batches is not None:
            yield from self._batches
            return
        batches, size = [], 0
        for batch in self._make():
            if not self._too_large:
                size += sum(tensor_bytes(t) for part in batch for t in part.values())
                if size > self._max_bytes:
                    self._too_large, batches = True, []
                else:
                    batches.append(batch)
            yield batch
        if not self._too_large:
            self._batches = batches


def tensor_bytes(tensor) -> int:
    """Bytes of a Tensor's elements; a string counts its bytes plus 32."""
    if tensor.dtype == tf.string:
        return int(tf.reduce_sum(tf.strings.length(tensor))) + 32 * int(tf.size(tensor))
    return int(tf.size(tensor)) * tensor.dtype.size
