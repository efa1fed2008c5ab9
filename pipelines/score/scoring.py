"""Batch scoring of logs through an exported SavedModel (SPEC §8).

Output directory (appears atomically; re-running replaces an earlier scoring output):

    NNNNN-<input name>.csv.gz | .tfrecord.gz   one shard per input file, rows in input order:
                                               impression_id (when the logs have it), user_id,
                                               item_id, score, then every tower output
                                               (a 2-D output such as dwell_probs: one CSV
                                               column per bin, dwell_probs_0 ...; a float
                                               list per row in TFRecord)
    dead_letter.csv                            file, row, reason, raw: rows that could not be
                                               read (header only when there are none)
    summary.json                               rows scored, dead letters, per-file counts

Input: logs or candidate rows. Only the model's feature columns are required (and read and
checked); `impression_id`, `user_id` and `item_id` are written out when present; outcome columns
(`click`, `dwell_time`, `timestamp`) may be absent and are never checked when present.

Every readable input row gives exactly one output row; an unreadable one (a wrong type in a
feature column, a wrong field count, a corrupt TFRecord) gives a dead letter naming its file,
line or record and the reason, and scoring goes on (`pipelines.score.dead_letters`: all of a file's
bad rows are found in one extra pass). A gzip or TFRecord stream that breaks off gets one dead
letter at its first lost row; the complete rows before it are scored. More than
`max_dead_letters` dead letters fail the job (something is wrong with the input as a whole):
the local engine stops as soon as the job's count passes it; Beam workers share no counter, so
each file stops past the limit on its own and the job's total is checked at the end. A job
that scored no row while it has dead letters fails too, whatever the limit; summary.json names
the input files that gave dead letters and no scored row (`files_without_a_scored_row`).

Memory does not grow with the input: files are read in batches of `batch_size` rows and each
shard is written as the batches are scored (appended to a temporary file in the output
directory, renamed when the file is done).

Engines (the CLI's `--engine` picks one): `score_logs` here runs the reader and `predict_raw`
inside this process, all files through one reader pipeline
(`pipelines.score.reading.read_scorable_files`);
`pipelines.score.scoring_beam.score_logs_beam` runs on Apache Beam
(DirectRunner unless `--runner` says otherwise): workers read files in batches of NumPy columns,
Beam's `RunInference` calls the SavedModel's `predict_raw` signature on each batch (the model
loaded once per worker process) and the shards are assembled per file. Both go through
`run_job` and give the same bytes.

The model's feature names and types come from the SavedModel's `predict_raw` signature, so any
export of this project can score logs without its model directory.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import queue
import re
import tempfile
import threading

import numpy as np

from core import atomic, log_files, log_schema, log_writers, logs
from core.atomic import atomic_directory
from core.errors import InputError
from core.settings import setting
from export.versions import (
    load_saved_model,
    read_feature_defaults,
    resolve_saved_model,
    signature_inputs,
)
from pipelines.score.dead_letters import (  # noqa: F401
    DEAD_LETTER,
    DEAD_LETTER_HEADER,
    DeadLetter,
    TooManyDeadLetters,
    write_dead_letters,
)
from pipelines.score.reading import read_scorable_files

ID_COLUMNS = ("impression_id", "user_id", "item_id")
# Scores go out as the model's float32 values, each in the shortest text that reads back to
# it (at most 9 significant digits): rounding to decimals tied the scores of a low-CTR feed
# (1.23e-4 and 1.24e-4 at 7 decimals keep 3 digits) and wrote every probability below 5e-8 as 0.
CSV_DECIMALS = None


@dataclasses.dataclass(frozen=True)
class ModelSignature:
    """What scoring needs to know of a SavedModel: feature types and output names."""

    path: str
    features: dict  # name -> 'string' | 'int64' | 'float32'
    outputs: tuple[str, ...]  # 'score' first
    widths: dict = dataclasses.field(default_factory=dict)  # 2-D output -> its columns
    defaults: dict = dataclasses.field(default_factory=dict)  # feature -> a missing one's value
    # feature -> its keyword in the loaded predict_raw, where the two differ (a name that is
    # not a Python identifier: `export.versions.signature_inputs`)
    keywords: dict = dataclasses.field(default_factory=dict)


def read_signature(path: str) -> ModelSignature:
    path = resolve_saved_model(path)
    loaded = _loaded(path)  # the local engine reuses this load
    raw = loaded.signatures["predict_raw"]
    inputs = signature_inputs(raw)
    features = {name: spec.dtype.name for name, (_, spec) in inputs.items()}
    keywords = {name: keyword for name, (keyword, _) in inputs.items() if keyword != name}
    outputs = sorted(raw.structured_outputs)
    outputs = ("score",) + tuple(o for o in outputs if o != "score")
    widths = {name: int(spec.shape[1]) for name, spec in raw.structured_outputs.items()
              if spec.shape.rank == 2 and spec.shape[1] is not None}
    defaults = {k: v for k, v in read_feature_defaults(path).items() if k in features}
    return ModelSignature(path, features, outputs, widths, defaults, keywords)


# Output shards ------------------------------------------------------------------------------------
def output_names(ids, signature: ModelSignature) -> tuple[str, ...]:
    """The columns of a shard: the ids, then the outputs (before splitting 2-D ones)."""
    return tuple(ids) + tuple(signature.outputs)


def csv_header(names, widths: dict) -> tuple[str, ...]:
    """CSV column names: a 2-D output of m columns (`widths`) is `name_0` ... `name_{m-1}`."""
    return tuple(column for name in names for column in
                 ([f"{name}_{k}" for k in range(widths[name])] if name in widths else [name]))


def flatten_columns(columns: dict) -> dict:
    """2-D columns [rows, m] split into m columns `name_0` ... `name_{m-1}`; others as they are."""
    flat = {}
    for name, values in columns.items():
        values = np.asarray(values)
        if values.ndim == 2:
            flat.update({f"{name}_{k}": values[:, k] for k in range(values.shape[1])})
        else:
            flat[name] = values
    return flat


_NEEDS_QUOTES = re.compile(rb'[",\r\n]')


def format_csv_rows(columns: dict) -> bytes:
    """CSV lines (no header, "\\n" line ends, UTF-8) of equal-length columns [rows] or
    [rows, m]: ids as text, floats in the shortest form of their float32 value (CSV_DECIMALS);
    the same text `log_writers.write_csv(..., decimals=CSV_DECIMALS)` writes for these rows.

    Fields are joined directly, as bytes: text ids (UTF-8 bytes, as the reader gives them) go
    out as they came in (pandas' `to_csv` took 3/4 of a scoring job's formatting time, decoding
    and encoding the ids a fifth of the rest). A batch with a text field that needs quoting (a
    comma, a quote or a line end in an id) goes through pandas, whose minimal quoting is the
    reference (tests/test_scoring.py)."""
    columns = flatten_columns(columns)
    fields = {}
    for name, values in columns.items():
        # Numbers' bytes are numpy's shortest text of their dtype (exact for float32).
        fields[name] = values.tolist() if values.dtype == object else values.astype(bytes).tolist()
    quoted = any(_NEEDS_QUOTES.search(v) for name, values in columns.items()
                 if values.dtype == object for v in fields[name])
    if quoted or len(fields) < 2 or not next(iter(fields.values())):
        import pandas as pd

        # surrogateescape: bytes that are not UTF-8 go out as they came in, as on the fast path.
        texts = {name: [v.decode("utf-8", "surrogateescape") for v in values]
                 for name, values in fields.items()}
        return pd.DataFrame(texts).to_csv(index=False, header=False, lineterminator="\n"
                                          ).encode("utf-8", "surrogateescape")
    return b"\n".join(map(b",".join, zip(*fields.values()))) + b"\n"


def format_records(columns: dict) -> list[bytes]:
    """One serialized tf.Example per row (a 2-D output: a float_list per row)."""
    return log_writers.serialize_examples(columns)


class ShardWriter:
    """Writes one output shard as it goes: `write(columns)` formats a batch of rows and appends
    it to a temporary file beside `path` (CSV: the header first; gzip without name or time, so
    the same rows give the same bytes however they are batched); `close()` renames it onto
    `path`, `abort()` removes it. Memory: one batch."""

    def __init__(self, path: str, fmt: str, compress: bool, header: tuple[str, ...]):
        self.path, self.fmt, self.rows = path, fmt, 0
        fd, self._tmp = tempfile.mkstemp(prefix=atomic.temporary_prefix(path),
                                         dir=os.path.dirname(path))
        os.close(fd)
        if fmt == "csv":
            import pandas as pd

            self._raw = open(self._tmp, "wb")
            self._stream = (gzip.GzipFile(filename="", mode="wb", fileobj=self._raw, mtime=0,
                                          compresslevel=1) if compress else self._raw)
            self._stream.write(pd.DataFrame(columns=list(header)).to_csv(
                index=False, lineterminator="\n").encode("utf-8"))
        else:
            import tensorflow as tf

            self._stream = tf.io.TFRecordWriter(self._tmp, tf.io.TFRecordOptions(
                compression_type="GZIP" if compress else ""))

    def write(self, columns: dict) -> None:
        """Appends equal-length output columns (ids, score, towers) of one batch."""
        rows = len(next(iter(columns.values()))) if columns else 0
        if not rows:
            return
        if self.fmt == "csv":
            self.write_formatted(format_csv_rows(columns), rows)
        else:
            self.write_formatted(format_records(columns), rows)

    def write_formatted(self, data, rows: int) -> None:
        """Appends rows already formatted: CSV bytes, or serialized records."""
        if self.fmt == "csv":
            self._stream.write(data)
        else:
            for record in data:
                self._stream.write(record)
        self.rows += rows

    def close(self) -> None:
        if self.fmt == "csv":
            # A sync flush before the end, as log_writers.write_csv's text layer does: the same bytes.
            self._stream.flush()
        self._stream.close()
        if self.fmt == "csv" and self._stream is not self._raw:
            self._raw.close()
        os.chmod(self._tmp, 0o644)
        os.replace(self._tmp, self.path)

    def abort(self) -> None:
        try:
            self._stream.close()
            if self.fmt == "csv" and self._stream is not self._raw:
                self._raw.close()
        finally:
            if os.path.exists(self._tmp):
                os.remove(self._tmp)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        if kind is None:
            self.close()
        else:
            self.abort()


class InBackground:
    """Calls `write(columns)` on one background thread, in call order, with at most `depth`
    batches waiting: formatting and compressing a batch (zlib releases the GIL) overlaps the
    reading and inference of the next ones, and memory stays a few batches. An error of `write`
    is raised at the next call or at exit; after one, the remaining batches are dropped."""

    def __init__(self, write, depth: int = 2):
        self._write, self._error = write, None
        self._queue: queue.Queue = queue.Queue(maxsize=depth)
        self._thread = threading.Thread(target=self._run, name="score-writer", daemon=True)
        self._thread.start()

    def _run(self):
        while (columns := self._queue.get()) is not None:
            if self._error is None:
                try:
                    self._write(columns)
                except BaseException as error:  # noqa: BLE001  (raised in the caller's thread)
                    self._error = error

    def __call__(self, columns: dict) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put(columns)

    def __enter__(self):
        return self

    def __exit__(self, kind, value, traceback):
        self._queue.put(None)
        self._thread.join()
        if kind is None and self._error is not None:
            raise self._error


# An earlier scoring output (replaced by a run into its directory): its shards, summary.json
# and dead letters alone.
_is_score_output = atomic.earlier_output(
    patterns=(log_writers.SHARD_PATTERN,), markers={"summary.json": "saved_model"},
    titles={DEAD_LETTER: ",".join(DEAD_LETTER_HEADER)})


@dataclasses.dataclass(frozen=True)
class ScoreConfig:
    """Options of a scoring job; each is a flag of `pipelines.score` (`core.settings`)."""

    fmt: str = setting("csv", "Output format.", flag="format", choices=("csv", "tfrecord"))
    compress: bool = setting(True, "Gzip the output shards.")
    batch_size: int = setting(4096, "Rows per read batch.", minimum=1)
    max_dead_letters: int = setting(1000, "Fail when more rows than this are unreadable.",
                                    minimum=0)


def score_logs(saved_model: str, pattern: str, output_dir: str,
               config: ScoreConfig = ScoreConfig()) -> dict:
    """Scores every row of the logs `pattern` with `saved_model` in this process (the local
    engine; `pipelines.score.scoring_beam.score_logs_beam` is the Beam one); returns
    summary.json's content."""

    return run_job(saved_model, pattern, output_dir, config, "local", _score_files_local)


def run_job(saved_model: str, pattern: str, output_dir: str, config: ScoreConfig, engine: str,
            score_files) -> dict:
    """What both engines share: the model's signature, the input, the atomic output directory,
    the dead letters and summary.json; `score_files(files, job, directory)` scores the input
    files into shards in `directory` and returns each file's summary entry (`shard_result`)."""
    if config.fmt not in ("csv", "tfrecord"):
        raise InputError(f"--format must be csv or tfrecord, not {config.fmt!r}")
    signature = read_signature(saved_model)
    # Candidates: only the model's features are required; outcome columns (click,
    # dwell_time, timestamp), when present, pass unread and unchecked.
    source = logs.open_logs(pattern, column_types={
        k: v for k, v in signature.features.items() if k not in log_schema.FIXED_TYPES},
        candidates=tuple(signature.features))
    # A missing value reads as the model's feature config `default`, as in training and serving.
    source = dataclasses.replace(source, schema=source.schema.with_missing(signature.defaults))
    ids = tuple(c for c in ID_COLUMNS if c in source.schema.dtypes)
    columns = tuple(dict.fromkeys(ids + tuple(signature.features)))
    job = dict(schema=source.schema.to_json(), stored=source.stored_types, columns=columns,
               ids=ids, signature=dataclasses.asdict(signature), config=dataclasses.asdict(config))
    with atomic_directory(output_dir, may_replace=_is_score_output, what="--output",
                          inputs=[f.path for f in source.files]) as tmp:
        results = score_files(source.files, job, tmp)
        results.sort(key=lambda r: r["index"])
        dead = [DeadLetter(**d) for r in results for d in r.pop("dead_letters")]
        write_dead_letters(os.path.join(tmp, DEAD_LETTER), dead)
        summary = {"saved_model": signature.path, "inputs": pattern, "engine": engine,
                   "rows": sum(r["rows"] for r in results), "dead_letters": len(dead),
                   "outputs": list(signature.outputs), "files": results}
        if len(dead) > config.max_dead_letters:
            raise TooManyDeadLetters(f"{len(dead)} unreadable rows, more than "
                                     f"--max_dead_letters={config.max_dead_letters}",
                                     file=dead[-1].file, row=dead[-1].row)
        if dead and not summary["rows"]:
            # Nothing scored is a failed job, whatever the limit: the input does not fit the
            # model (a small candidate file with a feature written as another type, say).
            raise InputError(f"no row could be scored: every row read is a dead letter "
                             f"({len(dead):,} letter{'s' if len(dead) != 1 else ''}; the first: "
                             f"{dead[0].reason}); nothing was written",
                             file=dead[0].file, row=dead[0].row)
        unread = {d.file for d in dead}
        summary["files_without_a_scored_row"] = [
            r["input"] for r in results if not r["rows"] and r["input"] in unread]
        # Model features no sampled record has a value of, scored as their default.
        summary["features_in_no_sampled_record"] = list(source.absent_features)
        with open(os.path.join(tmp, "summary.json"), "w") as handle:
            json.dump(summary, handle, indent=2)
    return summary


def open_shard(index: int, log_file: log_files.LogFile, job: dict, directory: str) -> ShardWriter:
    """The ShardWriter of input file `index` in `directory` (the job's format and columns)."""
    signature = ModelSignature(**job["signature"])
    config = job["config"]
    name = log_writers.shard_name(index, log_file.path, config["fmt"], config["compress"])
    header = csv_header(output_names(job["ids"], signature), signature.widths)
    return ShardWriter(os.path.join(directory, name), config["fmt"], config["compress"], header)


def shard_result(index: int, log_file: log_files.LogFile, writer: ShardWriter, dead: list) -> dict:
    """A file's entry of summary.json (with its dead letters, in row order, to collect)."""
    return {"index": index, "input": log_file.path, "output": os.path.basename(writer.path),
            "rows": int(writer.rows),
            "dead_letters": [dataclasses.asdict(d) for d in
                             sorted(dead, key=lambda d: -1 if d.row is None else d.row)]}


def predict_batch(predict, signature: ModelSignature, batch: dict) -> dict:
    """`predict_raw` on one batch of NumPy feature columns [rows]: output name -> array [rows]
    or [rows, m], float32."""
    import tensorflow as tf

    outputs = predict(**{signature.keywords.get(n, n): tf.constant(batch[n])
                         for n in signature.features})
    return {o: outputs[o].numpy() for o in signature.outputs}


def _score_files_local(files, job, tmp):
    """Local engine: every file through one reader (`read_scorable_files`) and `predict_raw`
    in this process; each file's shard written as it goes (an empty file: a header-only
    shard), on one background thread. Returns each file's summary entry."""
    signature = ModelSignature(**job["signature"])
    predict = _loaded(signature.path).signatures["predict_raw"]
    schema = log_schema.LogSchema.from_json(job["schema"])
    dead: list = []  # one list across files: --max_dead_letters bounds the job, and its memory
    writers: list[ShardWriter] = []  # one per file, opened in file order
    try:
        with InBackground(_write_or_close) as write:
            def open_through(index):  # the shards of files up to `index`, earlier ones closed
                while len(writers) <= index:
                    if writers:
                        write((writers[-1], None))
                    writers.append(open_shard(len(writers), files[len(writers)], job, tmp))

            for index, batch in read_scorable_files(
                    files, schema, job["stored"], job["columns"], job["config"]["batch_size"],
                    dead, job["config"]["max_dead_letters"]):
                open_through(index)
                part = {c: batch[c] for c in job["ids"]}
                part.update(predict_batch(predict, signature, batch))
                write((writers[-1], part))
            open_through(len(files) - 1)
            write((writers[-1], None))
    except BaseException:
        for writer in writers:
            writer.abort()
        raise
    by_file: dict = {}
    for letter in dead:
        by_file.setdefault(letter.file, []).append(letter)
    return [shard_result(i, f, w, by_file.get(f.path, []))
            for i, (f, w) in enumerate(zip(files, writers))]


def _write_or_close(task) -> None:
    """(writer, columns): appends a batch; (writer, None): closes the shard."""
    writer, columns = task
    if columns is None:
        writer.close()
    else:
        writer.write(columns)


_MODELS: dict = {}


def _loaded(path):
    if path not in _MODELS:
        _MODELS[path] = load_saved_model(path, role="--saved_model ")
    return _MODELS[path]
