"""Reading logs to score, with dead letters: rows that cannot be read, found in one extra pass.

`read_scorable` reads one file with the fast reader (`logs.LogSource.dataset`, batches of NumPy
columns); `read_scorable_files` reads many through one pipeline and hands a file to
`read_scorable` at its first error. That reader stops at the first row it cannot parse; the
file's rest is then salvaged:

1. One streaming pass over the rows after the last one scored (CSV lines or TFRecord records,
   read in Python, never the whole file in memory). A cheap test of each row flags those the
   reader might reject (a wrong field count, quotes or a carriage return, a value that is not
   a plain number of its column's type, a non-finite or float32-overflowing float, an empty
   `timestamp` or `click` when those are read; a record that does not parse as a `tf.Example`,
   a feature of another kind, several values or a missing id). Each flagged row then goes
   through the reader's own parsing and checks of that one row (the same TensorFlow ops,
   traced once per file), so a row is a dead letter exactly when the reader rejects it, with
   the reader's reason. The other rows are copied, in order, to a plain temporary file.
2. The fast reader reads that clean copy; its rows are mapped back to the original line or
   record numbers.

A file with any number of bad rows thus costs one Python pass and one read of the copy (before:
one read of the file's remainder per bad row). Should the reader still fail on the copy (a
problem the cheap test does not flag), the row it names becomes a dead letter and the copy is
made again without it: correct, at the old cost for each such row.

A stream that cannot be read to its end (a corrupt or truncated gzip or TFRecord file) gets one
dead letter at its first lost row, "unreadable from here to the end of the file: <reason>"; the
complete rows before that point are scored. Each gzip file is checked first
(`log_files.gzip_damage`): TensorFlow's reader takes a stream cut after a flush as whole, its
last line cut short, so a cut one is salvaged (its complete rows scored, one letter at the
cut); and it reads the bytes of a corrupt one until inflate happens to fail, so a corrupt one
gets one letter at its first row and none of its rows is scored. More
than `max_dead_letters` dead letters in a file stop the job (TooManyDeadLetters), as soon as
the limit is passed.

The dead letters themselves, the row check and the pass that makes the clean copy are in
`pipelines.score.dead_letters`.
"""

from __future__ import annotations

import os
import tempfile
from typing import Iterator

import numpy as np

from core import log_diagnosis, log_files, log_schema, logs
from core.errors import InputError
from pipelines.score.dead_letters import (
    LOST,
    DeadLetter,
    RowCheck,
    check_count,
    clean_copy,
    reason_of,
    unit_text,
)


def read_scorable_files(files: list[log_files.LogFile], schema: log_schema.LogSchema,
                        stored: dict, columns: tuple[str, ...], batch_size: int,
                        dead_letters: list, max_dead_letters: int) -> Iterator[tuple[int, dict]]:
    """Yields (i, batch) for the readable rows of every file in `files`, in file then row
    order, `batch` being what `read_scorable` yields for file i alone: the same rows in the
    same batches, so a model scores them to the same bits.

    All files go through one reader pipeline: opening one per file cost about 0.4 s a file,
    more than reading it (docs/BENCHMARKS.md). At the first error, the file being read is read
    again on its own from its last yielded row on (`read_scorable`, which salvages it; one
    more fast read of that file) and the pipeline restarts at the next file; so the rows and
    the dead letters are those of reading each file alone."""
    damages = log_files.gzip_damages(files) + [None]
    start = 0
    for index, log_file in enumerate(files + [None]):
        if log_file is not None and damages[index] is None:
            continue
        # The undamaged files before it, through one pipeline; then it alone.
        for i, batch in _read_undamaged(files[start:index], schema, stored, columns,
                                        batch_size, dead_letters, max_dead_letters):
            yield start + i, batch
        if log_file is not None:
            for batch in read_scorable(log_file, schema, stored, columns, batch_size,
                                       dead_letters, max_dead_letters):
                yield index, batch
        start = index + 1


def _read_undamaged(files, schema, stored, columns, batch_size, dead_letters,
                    max_dead_letters):
    import tensorflow as tf

    first = 0
    while first < len(files) - 1:
        source = logs.LogSource(files[first:], schema, stored, outcomes=False)
        current, last_done = first, 0  # the file and row last yielded
        try:
            for batch in _streamed(source, batch_size, columns, batches_span_files=False
                                   ).as_numpy_iterator():
                index = batch.pop(logs.SOURCE_INDEX)
                if len(index):
                    current = first + int(index[0])
                    last_done = int(batch[logs.SOURCE_ROW][-1])
                    yield current, batch
            return
        except tf.errors.OpError:
            pass  # read_scorable meets the error again and salvages the file
        for batch in read_scorable(files[current], schema, stored, columns, batch_size,
                                   dead_letters, max_dead_letters, after_row=last_done):
            yield current, batch
        first = current + 1
    if first == len(files) - 1:  # one file left: read alone from the start
        for batch in read_scorable(files[first], schema, stored, columns, batch_size,
                                   dead_letters, max_dead_letters):
            yield first, batch


def read_scorable(log_file: log_files.LogFile, schema: log_schema.LogSchema, stored: dict,
                  columns: tuple[str, ...], batch_size: int, dead_letters: list,
                  max_dead_letters: int, after_row: int = 0) -> Iterator[dict]:
    """Yields the readable rows of one file after row `after_row` in order, as dicts of NumPy
    columns [rows] of `columns` plus `logs.SOURCE_ROW` (the original line or record numbers),
    at most `batch_size` rows each; unreadable rows are appended to `dead_letters` (see the
    module docstring). Raises TooManyDeadLetters past `max_dead_letters`, and the reader's
    error when it is not about the input."""
    import tensorflow as tf

    damage = log_files.gzip_damage(log_file)
    if damage is not None and damage != log_files.GZIP_CUT:
        # A corrupt stream: TensorFlow's reader would score its bytes until inflate happens to
        # fail, so none of its rows is.
        dead_letters.append(DeadLetter(log_file.path, _first_row(log_file), f"{LOST}is corrupt or "
                                       f"truncated ({damage}); none of its rows is scored", ""))
        check_count(dead_letters, max_dead_letters)
        return
    source = logs.LogSource([log_file], schema, stored, outcomes=False)
    last_done = after_row  # the last row yielded (or skipped)
    if damage is not None:  # cut short: TensorFlow's reader would read it as whole
        yield from _salvage(source, columns, batch_size, last_done, None, dead_letters,
                            max_dead_letters)
        return
    try:
        for batch in _streamed(source, batch_size, columns).as_numpy_iterator():
            rows = batch[logs.SOURCE_ROW]
            if after_row and len(rows) and rows[0] <= after_row:
                batch = {k: v[rows > after_row] for k, v in batch.items()}
            if len(batch[logs.SOURCE_ROW]):
                last_done = int(batch[logs.SOURCE_ROW][-1])
                yield batch
        return
    except tf.errors.OpError as error:
        failure = error
    yield from _salvage(source, columns, batch_size, last_done, failure, dead_letters,
                        max_dead_letters)


def _first_row(log_file: log_files.LogFile) -> int:
    """The number of a file's first row: CSV lines count the header as line 1."""
    return 2 if log_file.format == "csv" else 1


def _streamed(source: logs.LogSource, batch_size: int, columns, batches_span_files=True):
    """The reader's dataset of `source` with CSV lines streamed, never a whole file in memory.

    The reader decompresses and splits a CSV file of up to `logs.WHOLE_FILE_BYTES` on disk in
    one op: faster for labelling, but it holds the file's text (a 64 MB .csv.gz is several
    hundred MB of text and strings). Scoring's time goes to inference, and streaming costs it
    nothing measurable (docs/BENCHMARKS.md), so its memory stays flat whatever the file's
    size."""
    import tensorflow as tf

    # tf.data's autotuner ran this reader at one of two speeds from run to run on 2 cores
    # (about 3 or 5.5 s per million rows); with its fixed defaults (parallel calls: the
    # cores) it runs at the faster one every time (docs/BENCHMARKS.md).
    options = tf.data.Options()
    options.autotune.enabled = False
    # (Gzip streams are checked by the callers: a damaged one is a dead letter, not an error.)
    return source.dataset(batch_size, columns=columns, with_source=True, whole_files=False,
                          batches_span_files=batches_span_files,
                          check_streams=False).with_options(options)


def _salvage(source, columns, batch_size, last_done, error, dead_letters, limit):
    """The rows after `last_done` of a file whose reading failed with `error`."""
    import tensorflow as tf

    log_file = source.files[0]
    check = RowCheck(source, columns)
    first_row = _first_row(log_file)
    skipped: set[int] = set()  # original rows given a dead letter here
    lost_noted = False
    failed_copy = None  # the clean copy whose reading raised `error` (None: the original)
    with tempfile.TemporaryDirectory(prefix="dwellrank-score-") as tmpdir:
        attempt = 0
        while True:
            attempt += 1
            start = max(first_row, last_done + 1)
            before = len(skipped)
            copy = clean_copy(log_file, check, start, skipped,
                              os.path.join(tmpdir, f"clean-{attempt}"), dead_letters, limit)
            progress = len(skipped) > before
            if copy.lost is not None and not lost_noted:
                lost_noted = progress = True
                dead_letters.append(DeadLetter(log_file.path, copy.end_row, LOST + copy.lost, ""))
                check_count(dead_letters, limit)
            if not progress:
                if error is None:  # (a stream `gzip_damage` found cut, read whole here)
                    dead_letters.append(DeadLetter(log_file.path, start, f"{LOST}is corrupt "
                                                   f"or truncated ({log_files.GZIP_CUT})", ""))
                    check_count(dead_letters, limit)
                    return
                # Every row passed, yet the reader failed: the reader's own account decides.
                problem = log_diagnosis.translate_error(error)
                if problem is None:
                    raise error
                row = _original_row(problem, failed_copy, log_file)
                if row is None or row < start or row in skipped:
                    dead_letters.append(DeadLetter(log_file.path, start,
                                                   LOST + problem.reason, ""))
                    check_count(dead_letters, limit)
                    return
                dead_letters.append(DeadLetter(log_file.path, row, reason_of(problem),
                                               unit_text(log_file, row)))
                check_count(dead_letters, limit)
                skipped.add(row)
                continue  # a new copy without that row
            if copy.file is None:
                return
            reader = logs.LogSource([copy.file], source.schema, source.stored_types,
                                    outcomes=False)
            try:
                for batch in _streamed(reader, batch_size, columns).as_numpy_iterator():
                    rows = copy.original(batch[logs.SOURCE_ROW])
                    batch[logs.SOURCE_ROW] = rows
                    batch[logs.SOURCE_FILE] = np.full(len(rows), log_file.path.encode(),
                                                      dtype=object)
                    if len(rows):
                        last_done = int(rows[-1])
                    yield batch
                return
            except tf.errors.OpError as copy_error:
                error, failed_copy = copy_error, copy


def _original_row(problem: InputError, failed_copy, log_file) -> int | None:
    if problem.row is None:
        return None
    if failed_copy is None:
        return problem.row if problem.file in (None, log_file.path) else None
    if problem.file not in (None, failed_copy.file.path):
        return None
    return int(failed_copy.original(np.array([problem.row]))[0])
