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
line or record and the reason, and scoring goes on. A TFRecord cut short or corrupt gets one dead letter
from its first lost record (the records before it are scored); after a corrupt gzip stream
nothing more of that file is read (one dead letter from the first unscored row). More than `max_dead_letters` dead
letters fail the job (something is wrong with the input as a whole).

Engines: `beam` (default) runs tfx_bsl's `RunInference` on Apache Beam (DirectRunner unless
`--runner` says otherwise): files are read by workers with the project's reader, rows become
serialized `tf.Example`s and go through the SavedModel's `serving_default`. `local` runs the
SavedModel's `predict_raw` signature inside this process on the reader's batches: no
per-row protos, several times faster for inputs one machine can handle.

The model's feature names and types come from the SavedModel's `predict_raw` signature, so any
export of this project can score logs without its model directory.
"""

from __future__ import annotations

import csv
import dataclasses
import gzip
import json
import os
import re
import tempfile
import typing
import zlib

import numpy as np

from pipelines import logs
from pipelines.atomic import atomic_directory
from pipelines.errors import InputError

ID_COLUMNS = ("impression_id", "user_id", "item_id")
DEAD_LETTER = "dead_letter.csv"
DEAD_LETTER_HEADER = ("file", "row", "reason", "raw")


@dataclasses.dataclass(frozen=True)
class ModelSignature:
    """What scoring needs to know of a SavedModel: feature types and output names."""

    path: str
    features: dict  # name -> 'string' | 'int64' | 'float32'
    outputs: tuple[str, ...]  # 'score' first


def resolve_saved_model(path: str) -> str:
    """A SavedModel directory, or the newest integer version under an export base."""
    if os.path.isfile(os.path.join(path, "saved_model.pb")):
        return path
    versions = sorted(int(n) for n in (os.listdir(path) if os.path.isdir(path) else [])
                      if re.fullmatch(r"\d+", n)
                      and os.path.isfile(os.path.join(path, n, "saved_model.pb")))
    if not versions:
        raise InputError(f"{path} is neither a SavedModel nor an export base with versions "
                         "(make one with python -m export.saved_model)")
    return os.path.join(path, str(versions[-1]))


def read_signature(path: str) -> ModelSignature:
    path = resolve_saved_model(path)
    loaded = _loaded(path)  # the local engine reuses this load
    if "predict_raw" not in loaded.signatures:
        raise InputError(f"{path} has no predict_raw signature: export it with "
                         "python -m export.saved_model")
    raw = loaded.signatures["predict_raw"]
    features = {name: spec.dtype.name for name, spec in raw.structured_input_signature[1].items()}
    outputs = sorted(raw.structured_outputs)
    outputs = ("score",) + tuple(o for o in outputs if o != "score")
    return ModelSignature(path, features, outputs)


@dataclasses.dataclass
class DeadLetter:
    file: str
    row: int | None
    reason: str
    raw: str


class TooManyDeadLetters(InputError):
    pass


# Reading with dead letters ----------------------------------------------------------------------
def read_scorable(log_file: logs.LogFile, schema: logs.LogSchema, stored: dict,
                  columns: tuple[str, ...], batch_size: int, dead_letters: list,
                  max_dead_letters: int):
    """Yields numpy batch dicts of `columns` (+ `_source_row`) of one file; rows that fail to
    read are appended to `dead_letters` and skipped.

    The fast reader runs on the file; when it stops at a bad row, the rest of the file (minus
    that row and the rows already yielded) is copied to a temporary file and read again, its
    rows mapped back to the original line or record numbers. Costs one extra pass of the file's
    remainder per bad row, nothing when there is none.
    """
    import tensorflow as tf

    units = _FileUnits(log_file)
    current, row_map = log_file, None  # row_map: remainder row -> original row
    last_done = 0  # original row number of the last row yielded
    with tempfile.TemporaryDirectory(prefix="dwellrank-score-") as tmpdir:
        while True:
            source = logs.LogSource([current], schema, stored, outcomes=False)
            dataset = source.dataset(batch_size, columns=columns, with_source=True)
            try:
                for batch in dataset.as_numpy_iterator():
                    rows = batch[logs.SOURCE_ROW]
                    if row_map is not None:
                        rows = row_map[rows - units.first_row]
                    batch[logs.SOURCE_ROW] = rows
                    last_done = int(rows[-1]) if len(rows) else last_done
                    yield batch
                return
            except tf.errors.OpError as error:
                problem = logs.translate_error(error)
                if problem is None:
                    raise
            bad = problem.row
            if bad is not None and row_map is not None:
                bad = int(row_map[bad - units.first_row])
            if bad is None or _corrupt(problem) or not units.has(bad):
                # A corrupt stream: nothing after the failure point can be read. The rows
                # before it that Python could still read are scored from a clean copy.
                remaining = row_map if row_map is not None else units.rows()
                readable = remaining[remaining > last_done] if units.cut_short else remaining[:0]
                first_lost = (units.first_row + len(units.units) if units.cut_short
                              else last_done + 1 if last_done else units.first_row)
                dead_letters.append(DeadLetter(
                    log_file.path, first_lost,
                    f"unreadable from here to the end of the file: {problem.reason}", ""))
                _check_count(dead_letters, max_dead_letters)
                if not len(readable):
                    return
                row_map = readable
                current = units.write(row_map, os.path.join(tmpdir, f"readable-{len(row_map)}"))
                continue
            reason = problem.reason + (f" (column '{problem.column}')" if problem.column else "")
            dead_letters.append(DeadLetter(log_file.path, bad, reason, units.text(bad)))
            _check_count(dead_letters, max_dead_letters)
            remaining = row_map if row_map is not None else units.rows()
            row_map = remaining[(remaining > last_done) & (remaining != bad)]
            if not len(row_map):
                return
            current = units.write(row_map, os.path.join(tmpdir, f"remainder-{len(row_map)}"))


def _corrupt(problem: InputError) -> bool:
    lowered = problem.reason.lower()
    return any(k in lowered for k in ("corrupt", "truncated", "not gzip", "data loss"))


class _FileUnits:
    """A log file's rows as bytes, read in Python on the error path only: CSV data lines
    (without line ends; `first_row` = 2, line 1 being the header) or TFRecord records
    (`first_row` = 1; a corrupt tail is cut off)."""

    def __init__(self, log_file: logs.LogFile):
        self.log_file = log_file
        self.first_row = 2 if log_file.format == "csv" else 1
        self._units: list | None = None
        self._header = b""
        self.cut_short = False  # the Python read stopped at a corrupt tail

    @property
    def units(self) -> list:
        if self._units is None:
            self._units = self._read()
        return self._units

    def _read(self) -> list:
        if self.log_file.format == "csv":
            with logs._open_binary(self.log_file.path) as handle:
                data = handle.read()
            try:
                data = gzip.decompress(data) if self.log_file.gzip else data
            except (OSError, EOFError, zlib.error):
                return []  # corrupt gzip: nothing is re-read (a partial salvage is not tried)
            lines = data.split(b"\n")
            if lines and lines[-1] == b"":
                lines.pop()
            lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
            self._header = lines[0] if lines else b""
            return lines[1:]
        import tensorflow as tf

        records = []
        try:
            for record in tf.data.TFRecordDataset(self.log_file.path,
                                                  "GZIP" if self.log_file.gzip else ""):
                records.append(record.numpy())
        except tf.errors.OpError:
            self.cut_short = True
        return records

    def has(self, row: int) -> bool:
        return self.first_row <= row < self.first_row + len(self.units)

    def rows(self) -> np.ndarray:
        return np.arange(self.first_row, self.first_row + len(self.units), dtype=np.int64)

    def text(self, row: int) -> str:
        return _raw_text(self.units[row - self.first_row])

    def write(self, rows: np.ndarray, stem: str) -> logs.LogFile:
        """A plain file holding `rows` (original numbers), in this file's format."""
        if self.log_file.format == "csv":
            path = stem + ".csv"
            with open(path, "wb") as handle:
                handle.write(self._header + b"\n")
                for row in rows.tolist():
                    handle.write(self.units[row - self.first_row] + b"\n")
        else:
            import tensorflow as tf

            path = stem + ".tfrecord"
            with tf.io.TFRecordWriter(path) as writer:
                for row in rows.tolist():
                    writer.write(self.units[row - self.first_row])
        return logs.expand_inputs([path])[0]


def _raw_text(unit: bytes) -> str:
    if isinstance(unit, bytes):
        try:
            return unit.decode("utf-8")
        except UnicodeDecodeError:
            return unit.hex()
    return str(unit)


def _check_count(dead_letters, limit):
    if len(dead_letters) > limit:
        last = dead_letters[-1]
        raise TooManyDeadLetters(f"more than {limit} unreadable rows (the last: {last.reason}); "
                                 "raise --max_dead_letters if that many are expected",
                                 file=last.file, row=last.row)


# Output shards ------------------------------------------------------------------------------------
def shard_name(index: int, log_file: logs.LogFile, fmt: str, compress: bool) -> str:
    stem = os.path.basename(log_file.path)
    for suffix in logs.CSV_SUFFIXES + logs.TFRECORD_SUFFIXES:
        if stem.endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return f"{index:05d}-{stem}.{'csv' if fmt == 'csv' else 'tfrecord'}{'.gz' if compress else ''}"


def write_shard(path: str, columns: dict, fmt: str, compress: bool) -> None:
    """Writes output columns (ids, score, towers; equal-length arrays) as CSV or TFRecord.

    A 2-D output (`dwell_probs` [rows, bins]) is one column per bin in CSV (`dwell_probs_0`,
    ...) and one float_list of `bins` values in TFRecord."""
    if fmt == "csv":
        columns = flatten_columns(columns)
        # Ids come from TensorFlow as bytes; CSV gets their text.
        columns = {k: (np.char.decode(v.astype(bytes), "utf-8") if v.dtype == object else v)
                   for k, v in columns.items()}
        logs.write_csv(path, columns, decimals=7, compress=compress)
    else:
        logs.write_tfrecord(path, columns, compress=compress)


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


def write_dead_letters(path: str, dead_letters: list) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(DEAD_LETTER_HEADER)
        for letter in dead_letters:
            writer.writerow([letter.file, "" if letter.row is None else letter.row,
                             letter.reason, letter.raw])


def _is_score_output(path: str) -> bool:
    names = set(os.listdir(path))
    return not names or "summary.json" in names and DEAD_LETTER in names


@dataclasses.dataclass(frozen=True)
class ScoreConfig:
    fmt: str = "csv"  # csv | tfrecord
    compress: bool = True
    engine: str = "beam"  # beam | local
    batch_size: int = 4096
    max_dead_letters: int = 1000


def score_logs(saved_model: str, pattern: str, output_dir: str, config: ScoreConfig = ScoreConfig(),
               beam_args: list | None = None) -> dict:
    """Scores every row of the logs `pattern` with `saved_model`; returns summary.json's content.
    """
    if config.fmt not in ("csv", "tfrecord"):
        raise InputError(f"--format must be csv or tfrecord, not {config.fmt!r}")
    if config.engine not in ("beam", "local"):
        raise InputError(f"--engine must be beam or local, not {config.engine!r}")
    signature = read_signature(saved_model)
    # Candidates: only the model's features are required; outcome columns (click,
    # dwell_time, timestamp), when present, pass unread and unchecked.
    source = logs.open_logs(pattern, column_types={
        k: v for k, v in signature.features.items() if k not in logs.FIXED_TYPES},
        candidates=tuple(signature.features))
    ids = tuple(c for c in ID_COLUMNS if c in source.schema.dtypes)
    columns = tuple(dict.fromkeys(ids + tuple(signature.features)))
    job = dict(schema=source.schema.to_json(), stored=source.stored_types, columns=columns,
               ids=ids, signature=dataclasses.asdict(signature), config=dataclasses.asdict(config))
    with atomic_directory(output_dir, may_replace=_is_score_output, what="--output") as tmp:
        if config.engine == "local":
            results = [_score_file_local(i, f, job, tmp) for i, f in enumerate(source.files)]
        else:
            results = _score_beam(source.files, job, tmp, beam_args or [])
        results.sort(key=lambda r: r["index"])
        dead = [DeadLetter(**d) for r in results for d in r.pop("dead_letters")]
        write_dead_letters(os.path.join(tmp, DEAD_LETTER), dead)
        summary = {"saved_model": signature.path, "inputs": pattern, "engine": config.engine,
                   "rows": sum(r["rows"] for r in results), "dead_letters": len(dead),
                   "outputs": list(signature.outputs), "files": results}
        if len(dead) > config.max_dead_letters:
            raise TooManyDeadLetters(f"{len(dead)} unreadable rows, more than "
                                     f"--max_dead_letters={config.max_dead_letters}",
                                     file=dead[-1].file, row=dead[-1].row)
        with open(os.path.join(tmp, "summary.json"), "w") as handle:
            json.dump(summary, handle, indent=2)
    return summary


def _gather(batches, names):
    return {n: np.concatenate([b[n] for b in batches]) if batches else np.zeros(0)
            for n in names}


def _score_file_local(index, log_file, job, tmp):
    """Local engine: one file through `predict_raw`, in this process."""
    import tensorflow as tf

    signature = ModelSignature(**job["signature"])
    model = _loaded(signature.path)
    predict = model.signatures["predict_raw"]
    dead: list = []
    parts = []
    schema = logs.LogSchema.from_json(job["schema"])
    for batch in read_scorable(log_file, schema, job["stored"], job["columns"],
                               job["config"]["batch_size"], dead,
                               job["config"]["max_dead_letters"]):
        outputs = predict(**{n: tf.constant(batch[n]) for n in signature.features})
        part = {c: batch[c] for c in job["ids"]}
        part.update({o: outputs[o].numpy() for o in signature.outputs})
        parts.append(part)
    return _finish_shard(index, log_file, job, tmp, parts, dead)


def _finish_shard(index, log_file, job, tmp, parts, dead):
    signature = ModelSignature(**job["signature"])
    names = tuple(job["ids"]) + signature.outputs
    columns = _gather(parts, names)
    config = job["config"]
    name = shard_name(index, log_file, config["fmt"], config["compress"])
    write_shard(os.path.join(tmp, name), columns, config["fmt"], config["compress"])
    return {"index": index, "input": log_file.path, "output": name,
            "rows": int(len(columns["score"])),
            "dead_letters": [dataclasses.asdict(d) for d in
                             sorted(dead, key=lambda d: -1 if d.row is None else d.row)]}


_MODELS: dict = {}


def _loaded(path):
    import tensorflow as tf

    if path not in _MODELS:
        _MODELS[path] = tf.saved_model.load(path)
    return _MODELS[path]


# Beam engine ------------------------------------------------------------------------------------
def _score_beam(files, job, tmp, beam_args):
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions
    from tfx_bsl.public.beam import RunInference
    from tfx_bsl.public.proto import model_spec_pb2

    from pipelines.errors import reraised_from_workers

    signature = ModelSignature(**job["signature"])
    spec = model_spec_pb2.InferenceSpecType(saved_model_spec=model_spec_pb2.SavedModelSpec(
        model_path=signature.path, signature_name=["serving_default"]))
    results_path = os.path.join(tmp, ".results")
    os.makedirs(results_path)
    with reraised_from_workers():
        with beam.Pipeline(options=PipelineOptions(beam_args)) as pipeline:
            read = (pipeline
                    | "Files" >> beam.Create([(i, f.path) for i, f in enumerate(files)])
                    | "Reshuffle" >> beam.Reshuffle()
                    | "ReadRows" >> beam.FlatMap(_beam_read, job).with_outputs("dead", main="rows"))
            scored = (read.rows
                      # Keyed input: RunInference then returns (key, PredictionLog) pairs.
                      | "Keyed" >> beam.Map(lambda kv: kv).with_output_types(
                          typing.Tuple[typing.Tuple, bytes])
                      | "RunInference" >> RunInference(spec)
                      | "Outputs" >> beam.Map(_prediction_row, signature.outputs)
                      | "ByFile" >> beam.GroupByKey())
            dead = read.dead | "DeadByFile" >> beam.GroupByKey()
            _ = ({"rows": scored, "dead": dead}
                 | "Join" >> beam.CoGroupByKey()
                 | "WriteShard" >> beam.Map(_beam_write, job, tmp, results_path,
                                            [f.path for f in files]))
    results = []
    for name in sorted(os.listdir(results_path)):
        with open(os.path.join(results_path, name)) as handle:
            results.append(json.load(handle))
    import shutil

    shutil.rmtree(results_path)
    seen = {r["index"] for r in results}
    for index, log_file in enumerate(files):  # files that yielded nothing at all
        if index not in seen:
            results.append(_finish_shard(index, log_file, job, tmp, [], []))
    return results


def _beam_read(element, job):
    """Worker: one file -> ((file, row, ids...), serialized tf.Example) per readable row, and
    ('dead', (file, DeadLetter dict)) per unreadable one."""
    from apache_beam import pvalue

    index, path = element
    log_file = logs.expand_inputs([path])[0]
    schema = logs.LogSchema.from_json(job["schema"])
    features = tuple(job["signature"]["features"])
    dead: list = []
    with logs.input_errors_for_beam():
        for batch in read_scorable(log_file, schema, job["stored"], job["columns"],
                                   job["config"]["batch_size"], dead,
                                   job["config"]["max_dead_letters"]):
            examples = logs.serialize_examples({n: batch[n] for n in features})
            rows = batch[logs.SOURCE_ROW].tolist()
            ids = [batch[c].tolist() for c in job["ids"]]
            for k, example in enumerate(examples):
                yield (index, rows[k], *(v[k] for v in ids)), example
    for letter in dead:
        yield pvalue.TaggedOutput("dead", (index, dataclasses.asdict(letter)))
    if not dead:
        yield pvalue.TaggedOutput("dead", (index, None))  # every file reaches the writer


def _prediction_row(keyed_log, outputs):
    import tensorflow as tf

    key, log = keyed_log
    response = log.predict_log.response.outputs
    # An output is [1] or [1, bins] for the one example of the request.
    values = tuple(tf.make_ndarray(response[o])[0] for o in outputs)
    return key[0], (key[1],) + tuple(key[2:]) + values


def _beam_write(keyed, job, tmp, results_path, paths):
    index, grouped = keyed
    rows = sorted(r for group in grouped["rows"] for r in group)
    dead = [DeadLetter(**d) for group in grouped["dead"] for d in group if d is not None]
    signature = ModelSignature(**job["signature"])
    ids = tuple(job["ids"])
    parts = []
    if rows:
        transposed = list(zip(*rows))
        part = {}
        for k, name in enumerate(ids):
            values = transposed[1 + k]
            part[name] = np.asarray(values, dtype=object if isinstance(values[0], bytes)
                                    else None)
        for k, name in enumerate(signature.outputs):
            part[name] = np.stack(transposed[1 + len(ids) + k]).astype(np.float32)
        parts.append(part)
    log_file = logs.expand_inputs([paths[index]])[0]
    result = _finish_shard(index, log_file, job, tmp, parts, dead)
    with open(os.path.join(results_path, f"{index:05d}.json"), "w") as handle:
        json.dump(result, handle)
