"""The Beam engine of batch scoring (`python -m pipelines.score --engine=beam`): `score_logs_beam`.

    Files -Reshuffle-> ReadBatches -> RunInference -> WriteParts --+
                            +-- dead letters, a marker per file ---+-> GroupByKey(file) -> WriteShard

- ReadBatches (a worker, one file): `read_scorable`'s batches of `batch_size` rows as NumPy
  columns (ids and features), keyed (file, batch number); the file's dead letters and a marker
  (so that every file gets a shard, even one without a readable row) on a second output.
- RunInference: Beam's transform with `PredictRawHandler`, a ModelHandler that loads the
  SavedModel once per worker process and calls its `predict_raw` signature on each batch of
  raw feature tensors: one element per batch of rows, no per-row protos.
- WriteParts: each scored batch's output rows, formatted as the shard's bytes (CSV text or
  serialized tf.Examples), go to a part file under the output's temporary directory; only
  (batch number, part path, rows) goes on.
- GroupByKey by file, needed to put a file's batches back in order in one shard, gathers
  those small records and the dead letters, never the rows. WriteShard streams the parts, in
  batch order, into the shard through the local engine's ShardWriter (so both engines write
  the same bytes) and deletes them.

Parallelism is per file: the Reshuffle spreads files over workers, and reading, inference and
part writing of a file are fused on its worker. Part files live beside the output, so on a
distributed runner the output directory must be on a file system every worker sees (as the
shards themselves must).

Bad input in a worker (an unreadable file, too many dead letters) reaches the driver as the
InputError it was (`log_diagnosis.input_errors_for_beam`, `errors.reraised_from_workers`): one line,
no traceback.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import struct
from typing import Any, Iterable, Sequence

from core import log_diagnosis, log_files, log_schema
from pipelines.score import scoring
from pipelines.score.dead_letters import DeadLetter
from pipelines.score.reading import read_scorable

try:
    from apache_beam.ml.inference.base import ModelHandler
except ImportError:  # Beam is needed by the beam engine only
    ModelHandler = object


class PredictRawHandler(ModelHandler):
    """RunInference's view of a scoring SavedModel: an example is one batch of rows, a dict of
    NumPy columns [rows] (every feature of `predict_raw`, plus `passthrough` columns such as
    ids); its prediction is a dict of the passthrough columns and every output ([rows] or
    [rows, m], float32)."""

    def __init__(self, signature: dict, passthrough: Sequence[str]):
        super().__init__()
        self._signature = signature
        self._passthrough = tuple(passthrough)

    def load_model(self):
        from export.versions import load_saved_model

        # (the launcher loaded it first: `scoring.read_signature`, so it loads here too)
        return load_saved_model(self._signature["path"], role="--saved_model ")

    def run_inference(self, batch: Sequence[dict], model: Any,
                      inference_args: dict | None = None) -> Iterable[dict]:
        signature = scoring.ModelSignature(**self._signature)
        predict = model.signatures["predict_raw"]
        results = []
        for columns in batch:
            result = {c: columns[c] for c in self._passthrough}
            result.update(scoring.predict_batch(predict, signature, columns))
            results.append(result)
        return results

    def batch_elements_kwargs(self):
        # Each element is already a batch of `batch_size` rows.
        return {"min_batch_size": 1, "max_batch_size": 1}

    def get_num_bytes(self, batch: Sequence[dict]) -> int:
        # (The default pickles the batch to measure it.)
        return sum(getattr(v, "nbytes", 0) for columns in batch for v in columns.values())

    def get_metrics_namespace(self) -> str:
        return "dwellrank_predict_raw"


def score_logs_beam(saved_model: str, pattern: str, output_dir: str,
                    config: scoring.ScoreConfig = scoring.ScoreConfig(),
                    beam_args: list | None = None) -> dict:
    """Scores every row of the logs `pattern` with `saved_model` on Apache Beam; the same
    output, bytes and summary as `scoring.score_logs`, with Beam pipeline options `beam_args`
    (--runner, --direct_num_workers, ...)."""
    return scoring.run_job(saved_model, pattern, output_dir, config, "beam",
                           lambda files, job, tmp: score_beam(files, job, tmp, beam_args or []))


def score_beam(files: list, job: dict, tmp: str, beam_args: list) -> list[dict]:
    """Scores `files` into shards in `tmp` on Beam; returns each file's summary entry (with its
    dead letters), in no particular order."""
    import apache_beam as beam
    from apache_beam.ml.inference.base import KeyedModelHandler, RunInference
    from apache_beam.options.pipeline_options import PipelineOptions

    from core.errors import reraised_from_workers

    results_path = os.path.join(tmp, ".results")
    parts_path = os.path.join(tmp, ".parts")
    os.makedirs(results_path)
    os.makedirs(parts_path)
    handler = KeyedModelHandler(PredictRawHandler(job["signature"], job["ids"]))
    paths = [f.path for f in files]
    with reraised_from_workers():
        with beam.Pipeline(options=PipelineOptions(beam_args)) as pipeline:
            read = (pipeline
                    | "Files" >> beam.Create(list(enumerate(paths)))
                    | "Reshuffle" >> beam.Reshuffle()
                    | "ReadBatches" >> beam.FlatMap(_read_batches, job).with_outputs(
                        "meta", main="batches"))
            parts = (read.batches
                     | "RunInference" >> RunInference(handler)
                     | "WriteParts" >> beam.Map(_write_part, job, parts_path))
            _ = ((parts, read.meta)
                 | "Events" >> beam.Flatten()
                 | "ByFile" >> beam.GroupByKey()
                 | "WriteShard" >> beam.Map(_write_shard, job, tmp, results_path, paths))
    results = []
    for name in sorted(n for n in os.listdir(results_path) if n.endswith(".json")):
        with open(os.path.join(results_path, name)) as handle:
            results.append(json.load(handle))
    shutil.rmtree(results_path)
    shutil.rmtree(parts_path)
    missing = sorted(set(range(len(files))) - {r["index"] for r in results})
    if missing:  # every file sends a marker, so this is the runner losing work, not the input
        raise RuntimeError(f"the Beam pipeline ended without a result for "
                           f"{files[missing[0]].path} ({len(missing)} file(s) in all); no "
                           "output was written")
    return results


def _read_batches(element, job):
    """Worker: one file -> ((file, batch number), {column: array [rows]}) per batch of readable
    rows, and on 'meta': (file, ('dead', DeadLetter dict)) per unreadable row, then
    (file, ('file',))."""
    from apache_beam import pvalue

    index, path = element
    schema = log_schema.LogSchema.from_json(job["schema"])
    names = tuple(job["columns"])
    dead: list = []
    with log_diagnosis.input_errors_for_beam():
        log_file = log_files.log_file(path)
        batches = read_scorable(log_file, schema, job["stored"], job["columns"],
                                job["config"]["batch_size"], dead,
                                job["config"]["max_dead_letters"])
        for number, batch in enumerate(batches):
            yield (index, number), {n: batch[n] for n in names}
    for letter in dead:
        yield pvalue.TaggedOutput("meta", (index, ("dead", dataclasses.asdict(letter))))
    yield pvalue.TaggedOutput("meta", (index, ("file",)))


# A part file: the batch's CSV text, or its records each prefixed by its length (8 bytes, LE).
_LENGTH = struct.Struct("<Q")


def _write_part(keyed, job, parts_path):
    """Worker: a scored batch -> its output rows formatted in a part file; returns
    (file, ('part', batch number, path, rows))."""
    (index, number), columns = keyed
    names = scoring.output_names(job["ids"], scoring.ModelSignature(**job["signature"]))
    columns = {n: columns[n] for n in names}
    rows = len(columns["score"])
    path = os.path.join(parts_path, f"{index:05d}-{number:09d}")
    with open(path + ".tmp", "wb") as handle:
        if job["config"]["fmt"] == "csv":
            handle.write(scoring.format_csv_rows(columns))
        else:
            for record in scoring.format_records(columns):
                handle.write(_LENGTH.pack(len(record)))
                handle.write(record)
    os.replace(path + ".tmp", path)  # a retried bundle rewrites the same part
    return index, ("part", number, path, rows)


def _part_records(path):
    with open(path, "rb") as handle:
        while True:
            head = handle.read(_LENGTH.size)
            if not head:
                return
            yield handle.read(_LENGTH.unpack(head)[0])


def _write_shard(keyed, job, tmp, results_path, paths):
    """Worker: one file's parts, in batch order, into its shard; its summary entry to
    `results_path`."""
    index, events = keyed
    result_file = os.path.join(results_path, f"{index:05d}.json")
    if os.path.exists(result_file):  # a retried bundle: this shard is done
        return
    parts = sorted(e[1:] for e in events if e[0] == "part")
    dead = [DeadLetter(**e[1]) for e in events if e[0] == "dead"]
    log_file = log_files.log_file(paths[index])
    csv_format = job["config"]["fmt"] == "csv"
    with scoring.open_shard(index, log_file, job, tmp) as writer:
        for _, part, rows in parts:
            if csv_format:
                with open(part, "rb") as handle:
                    writer.write_formatted(handle.read(), rows)
            else:
                writer.write_formatted(_part_records(part), rows)
    result = scoring.shard_result(index, log_file, writer, dead)
    with open(result_file + ".tmp", "w") as handle:
        json.dump(result, handle)
    os.replace(result_file + ".tmp", result_file)
    for _, part, _ in parts:
        os.remove(part)
