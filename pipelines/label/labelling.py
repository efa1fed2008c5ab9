"""The labelling job: adds valid_read, valid_read_rule, ndt, log_dwell, dwell_bin to logs.

One output shard per input file, rows in input order: `NNNNN-<input name>.csv.gz` (CSV with a
header: every input column, then the five labels) or `NNNNN-<input name>.tfrecord.gz` (GZIP
TFRecord of tf.Example). Input columns are passed through unchanged: a CSV line keeps its text and
gains the label fields; a tf.Example keeps its bytes and gains the label features (protobuf
messages merge when concatenated). The whole output directory appears atomically.

Labels are computed by `pipelines.Labeler` inside tf.data, the code training uses.
"""

from __future__ import annotations

import dataclasses
import gc
import gzip
import os
import queue
import threading

import numpy as np

from core import atomic, label_rules, log_diagnosis, log_files, log_schema, log_writers, logs, stats_artifact
from core.atomic import atomic_directory
from core.errors import InputError
from core.labeler import Labeler, labeler_for

# The label columns, in output order: defined once, in core.log_schema.
LABEL_COLUMNS = log_schema.LABEL_COLUMNS
ID_FEATURES = ("user_id", "item_id")
# Bins of ln(dwell seconds) for labels.png: 0.05 s to 6 hours in steps of 0.1.
LOG_DWELL_EDGES = np.round(np.arange(-3.0, 10.0 + 1e-9, 0.1), 6)


@dataclasses.dataclass
class LabelSummary:
    """Counts of a labelling run."""

    rows: int = 0
    clicks: int = 0
    valid_reads: int = 0
    rule_counts: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(4, np.int64))
    bin_counts: np.ndarray | None = None
    unclicked_dwell_zeroed: int = 0
    # Clicks with dwell > 0 per bin of ln(dwell seconds) (LOG_DWELL_EDGES; the ends take what
    # lies beyond): labels.png's histogram, in memory that does not grow with the input.
    log_dwell_counts: np.ndarray = dataclasses.field(
        default_factory=lambda: np.zeros(len(LOG_DWELL_EDGES) - 1, np.int64))
    files: list = dataclasses.field(default_factory=list)
    # {UTC day: (input rows, artifact rows)}: days the input holds fewer rows of than the
    # artifact, whose T2 counts are the larger of the two (`core.labeler.held_days`); one
    # decision for the whole input, the same in every part.
    t2_days_from_artifact: dict = dataclasses.field(default_factory=dict)
    # {UTC day: (input rows, artifact rows)}: days the artifact saw whole yet fewer rows of
    # than the input holds (`core.labeler.short_artifact_days`).
    short_artifact_days: dict = dataclasses.field(default_factory=dict)
    # UTC days rule T2's windows reach that neither the input nor the artifact holds
    # (`core.labeler.t2_gap_days`), ascending.
    t2_gap_days: list = dataclasses.field(default_factory=list)

    def as_dict(self) -> dict:
        valid = max(self.valid_reads, 1)
        return {
            "rows": self.rows, "clicks": self.clicks, "valid_reads": self.valid_reads,
            "valid_read_share_of_clicks": self.valid_reads / max(self.clicks, 1),
            "rule_shares_of_valid_reads": {f"T{k}": int(self.rule_counts[k]) / valid
                                           for k in (1, 2, 3)},
            "dwell_bin_counts": [] if self.bin_counts is None else self.bin_counts.tolist(),
            "unclicked_dwell_treated_as_zero": self.unclicked_dwell_zeroed,
            "files": self.files,
        }

    def add(self, other: "LabelSummary") -> None:
        """Adds the counts of `other` (e.g. one file's, from a Beam worker) to these."""
        self.rows += other.rows
        self.clicks += other.clicks
        self.valid_reads += other.valid_reads
        self.rule_counts = self.rule_counts + other.rule_counts
        if other.bin_counts is not None:
            self.bin_counts = (other.bin_counts.copy() if self.bin_counts is None
                               else self.bin_counts + other.bin_counts)
        self.unclicked_dwell_zeroed += other.unclicked_dwell_zeroed
        self.log_dwell_counts = self.log_dwell_counts + other.log_dwell_counts
        self.files.extend(other.files)
        self.t2_days_from_artifact.update(other.t2_days_from_artifact)
        self.short_artifact_days.update(other.short_artifact_days)
        self.t2_gap_days = sorted(set(self.t2_gap_days) | set(other.t2_gap_days))


def _csv_text(tensor):
    """CSV field text of a string tensor: quoted when it holds a comma, quote or line break."""
    import tensorflow as tf

    needs = tf.strings.regex_full_match(tensor, '(?s).*[,"\r\n].*')
    quoted = tf.strings.join(['"', tf.strings.regex_replace(tensor, '"', '""'), '"'])
    return tf.where(needs, quoted, tensor)


def _as_text(tensor):
    import tensorflow as tf

    if tensor.dtype == tf.string:
        return _csv_text(tensor)
    if tensor.dtype.is_floating:  # exact for float32 (shortest=True alone keeps 6 digits)
        return tf.strings.as_string(tensor, precision=9, shortest=True)
    return tf.strings.as_string(tensor)


def _feature_text(tensor):
    """A TFRecord input's column as CSV text: a float32 feature as the reader makes text of it
    ("5.6", `logs.as_text`), so the CSV and the TFRecord read alike as a string column; the
    rest (the label columns, dwell_time in float64) as `_as_text`, exact and cheaper."""
    import tensorflow as tf

    return logs.as_text(tensor) if tensor.dtype == tf.float32 else _as_text(tensor)


def _read_header_line(log_file: log_files.LogFile) -> str:
    with log_files.open_text(log_file) as text:  # noqa: SLF001 (same package)
        return text.readline().rstrip("\r\n")


def open_input(pattern: str, fmt: str, stats_dir: str) -> logs.LogSource:
    """The logs to label, checked: a known output format and no reserved label column; columns
    given a type by the statistics job (--column_types, kept in its artifact at `stats_dir`)
    are read so."""
    if fmt not in ("csv", "tfrecord"):
        raise InputError(f"--format must be csv or tfrecord, not {fmt}")
    source = logs.open_logs(pattern, column_types=stats_artifact.given_column_types(stats_dir),
                            given_by="artifact", unseen_types=stats_artifact.log_types(stats_dir))
    reserved = [c for c in source.schema.columns if c in LABEL_COLUMNS]
    if reserved:
        raise InputError(f"the input already has label column(s) {', '.join(reserved)}; label "
                         "raw logs (these names are reserved)", file=source.files[0].path)
    return source


def shard_names(files: list, fmt: str, compress: bool) -> dict[str, str]:
    """Output shard name of each input file (path -> name, `log_writers.shard_name`)."""
    return {f.path: log_writers.shard_name(index, f.path, fmt, compress)
            for index, f in enumerate(files)}


def output_directory(output_dir: str, inputs=()):
    """The atomic output directory of a labelling run (an earlier label output is replaced;
    one holding an input file is refused)."""
    return atomic_directory(output_dir, may_replace=_is_label_output, what="--output_dir",
                            inputs=inputs)


def check_output_directory(output_dir: str, inputs=()) -> None:
    """`output_directory`'s checks alone, before a long step that precedes the labelling."""
    atomic.check_output_directory(output_dir, may_replace=_is_label_output,
                                  what="--output_dir", inputs=inputs)


def label_logs(pattern: str, stats_dir: str, output_dir: str, *, fmt: str = "tfrecord",
               rules: label_rules.RuleConfig | None = None, allow_unclicked_dwell: bool = False,
               batch_size: int = 8192, compress: bool = True, finish=None) -> LabelSummary:
    """Labels the logs of `pattern` with the stats artifact `stats_dir` into `output_dir`, in
    this process (the local engine; `pipelines.label.labelling_beam` is the Beam one).

    `rules` overrides the artifact's rule thresholds; `finish(directory, summary)` may add
    files to the output before it appears. Returns the run's counts.
    """
    source = open_input(pattern, fmt, stats_dir)
    artifact = stats_artifact.load_artifact(stats_dir)
    labeler = labeler_for(source, artifact, rules, batch_size=batch_size,
                                 allow_unclicked_dwell=allow_unclicked_dwell)
    # The tables and counts are long-lived: keep them out of the garbage collector's full
    # passes, which otherwise rescan them while millions of per-batch objects come and go.
    gc.collect()
    gc.freeze()
    summary = LabelSummary(bin_counts=np.zeros(artifact.num_bins, np.int64),
                           t2_days_from_artifact=dict(labeler.t2_days_from_artifact or {}),
                           short_artifact_days=dict(labeler.short_artifact_days),
                           t2_gap_days=list(labeler.t2_gap_days))
    with output_directory(output_dir, [f.path for f in source.files]) as tmp:
        write_shards(source, labeler, tmp, shard_names(source.files, fmt, compress), summary,
                     fmt=fmt, compress=compress, allow_unclicked_dwell=allow_unclicked_dwell,
                     batch_size=batch_size)
        summary.files.sort()
        if finish is not None:
            finish(tmp, summary)
    return summary


def write_shards(source: logs.LogSource, labeler: Labeler, directory: str,
                 names: dict[str, str], summary: LabelSummary, *, fmt: str, compress: bool,
                 allow_unclicked_dwell: bool, batch_size: int) -> None:
    """Labels every file of `source` with `labeler` into `directory/names[path]` (one shard per
    file, rows in input order; a file without rows gets an empty shard) and adds the counts to
    `summary`. Both engines write through here: the local one with all files in one `source`,
    the Beam one with one file per call."""
    import tensorflow as tf

    columns = source.schema.columns

    def to_output(batch):
        labelled = labeler(batch)
        out = {logs.SOURCE_INDEX: batch[logs.SOURCE_INDEX],
               "click": labelled["click"], "valid_read": labelled["valid_read"],
               "valid_read_rule": labelled["valid_read_rule"],
               "dwell_bin": labelled["dwell_bin"], "dwell_time": labelled["dwell_time"]}
        if allow_unclicked_dwell:
            out[logs.DWELL_ZEROED] = labelled[logs.DWELL_ZEROED]
        label_text = [_as_text(labelled[c]) for c in LABEL_COLUMNS]
        if fmt == "csv":
            if source.format == "csv":
                base = batch[logs.RAW]
            else:
                # A feature the tf.Example left out is an empty field, as a CSV log holds it
                # (its value was read as 0 or ""): training then reads the feature's default.
                # Input columns pass through: an unclicked row's dwell as it was read
                # (--allow_unclicked_dwell zeroes it for the labels only).
                values = {c: batch[c] for c in columns}
                if logs.DWELL_AS_READ in batch:
                    values["dwell_time"] = batch[logs.DWELL_AS_READ]
                # A CSV log holds no line break in a field (the reader's contract): a text
                # feature with one is refused, naming its record, not written unreadable.
                checks = [logs.row_check(
                    ~tf.strings.regex_full_match(values[c], "(?s).*[\r\n].*"),
                    batch[logs.SOURCE_FILE], batch[logs.SOURCE_ROW], c,
                    "a line break, which a CSV log cannot hold (quoted fields may hold commas, "
                    "not line breaks): label to --format=tfrecord", row_kind="record")
                    for c in columns if values[c].dtype == tf.string]
                with tf.control_dependencies(checks):
                    base = tf.strings.reduce_join(tf.stack(
                        [tf.where(batch[logs.MISSING + c], "", _feature_text(values[c]))
                         if logs.MISSING + c in batch else _feature_text(values[c])
                         for c in columns], axis=1), axis=1, separator=",")
            # One element-wise join: base,label1,...,label5.
            pieces = [base]
            for text in label_text:
                pieces += [",", text]
            out["line"] = tf.strings.join(pieces)
        else:
            for c in LABEL_COLUMNS:
                out[c] = labelled[c]
            if source.format == "tfrecord":
                out[logs.RAW] = batch[logs.RAW]
                for c in ID_FEATURES:  # read as strings, written again as bytes
                    out[c] = batch[c]
            else:  # CSV to tf.Example: every parsed column
                for c in columns:
                    out.setdefault(c, batch[c])
                    if logs.MISSING + c in batch and c not in log_schema.REQUIRED_COLUMNS:
                        # An empty field is an empty value list (not a 0 or "", which reads
                        # as a value): the reader's missing value, the column kept.
                        out[logs.MISSING + c] = batch[logs.MISSING + c]
                # As read (module docstring: input columns pass through unchanged).
                out["dwell_time"] = batch.get(logs.DWELL_AS_READ, labelled["dwell_time"])
        return out

    # One pipeline over all files (tracing one per file costs more than labelling a small
    # file); rows arrive file after file, so each shard is opened once, when its rows begin.
    # CSV to CSV passes the input line through: only the labeller's columns are parsed.
    needed = label_rules.LABEL_INPUTS if (fmt == "csv" and source.format == "csv") else None
    dataset = source.dataset(batch_size, allow_unclicked_dwell=allow_unclicked_dwell,
                             with_raw=True, with_source=True, columns=needed,
                             with_missing=fmt != source.format,
                             dwell_as_read=fmt != source.format).map(
        tf.autograph.experimental.do_not_convert(to_output),
        num_parallel_calls=tf.data.AUTOTUNE)
    written = set()

    def open_shard(log_file: log_files.LogFile) -> _ShardWriter:
        header = None
        if fmt == "csv":
            first = (_read_header_line(log_file) if source.format == "csv"
                     else ",".join(columns))
            header = ",".join([first, *LABEL_COLUMNS])
        summary.files.append(names[log_file.path])
        written.add(log_file.path)
        return _ShardWriter(os.path.join(directory, names[log_file.path]), log_file.path, fmt,
                            compress, header, source.format, columns)

    writer = None
    try:
        for batch in dataset.as_numpy_iterator():
            _account(summary, batch)
            sources = batch[logs.SOURCE_INDEX]
            starts = np.flatnonzero(np.r_[True, sources[1:] != sources[:-1]])
            for start, end in zip(starts, np.r_[starts[1:], len(sources)]):
                log_file = source.files[sources[start]]
                if writer is None or writer.source != log_file.path:
                    if writer is not None:
                        writer.close()
                    writer = open_shard(log_file)
                writer.write({k: v[start:end] for k, v in batch.items()})
    except tf.errors.OpError as error:
        raise (log_diagnosis.translate_error(error) or error) from None
    finally:
        if writer is not None:
            writer.close()
    # Input files without rows (a header only) still get their (empty) shard.
    for log_file in source.files:
        if log_file.path not in written:
            open_shard(log_file).close()


class _ShardWriter:
    """Writes one output shard: CSV lines or tf.Example records."""

    def __init__(self, path, source, fmt, compress, header, input_format, columns):
        import tensorflow as tf

        self.source, self.fmt, self.input_format, self.columns = source, fmt, input_format, columns
        if fmt == "csv":
            self.raw = open(path, "wb")
            self.stream = (gzip.GzipFile(filename="", mode="wb", fileobj=self.raw, mtime=0,
                                         compresslevel=1) if compress else self.raw)
            self.stream.write(header.encode() + b"\n")
            # Compression runs on its own thread (zlib releases the GIL), beside TensorFlow's.
            self.queue: queue.Queue = queue.Queue(maxsize=4)
            self.failure: BaseException | None = None
            self.thread = threading.Thread(target=self._drain, daemon=True)
            self.thread.start()
        else:
            self.records = tf.io.TFRecordWriter(
                path, tf.io.TFRecordOptions(compression_type="GZIP" if compress else ""))

    def _drain(self) -> None:
        while True:
            data = self.queue.get()
            if data is None:
                return
            if self.failure is None:
                try:
                    self.stream.write(data)
                except BaseException as error:  # reported by write() or close()
                    self.failure = error

    def write(self, batch: dict) -> None:
        if self.fmt == "csv":
            if self.failure is not None:
                raise self.failure
            if len(batch["line"]):
                self.queue.put(b"\n".join(batch["line"].tolist()) + b"\n")
        elif self.input_format == "tfrecord":
            # Concatenated serialized messages merge: the input's features plus the labels,
            # and the ids again as bytes (a repeated key's last value wins: an input that
            # stored ids as int64 comes out with the bytes ids serving parses).
            suffix = log_writers.serialize_examples(
                {c: batch[c] for c in ID_FEATURES + LABEL_COLUMNS})
            for record, extra in zip(batch[logs.RAW], suffix):
                self.records.write(record + extra)
        else:
            for record in log_writers.serialize_examples(
                    {c: batch[c] for c in tuple(self.columns) + LABEL_COLUMNS},
                    absent={c: batch[logs.MISSING + c] for c in self.columns
                            if logs.MISSING + c in batch}):
                self.records.write(record)

    def close(self) -> None:
        if self.fmt == "csv":
            self.queue.put(None)
            self.thread.join()
            if self.failure is not None:
                raise self.failure
            if self.stream is not self.raw:
                self.stream.close()
            self.raw.close()
        else:
            self.records.close()


# An earlier label output (replaced by a run into its directory): its shards alone, and the
# label CLI's summary.json (as it writes it) and labels.png beside them.
_is_label_output = atomic.earlier_output(
    names=("labels.png", "summary.json"), patterns=(log_writers.SHARD_PATTERN,),
    check=lambda path: not os.path.exists(os.path.join(path, "summary.json")) or atomic.json_has(
        os.path.join(path, "summary.json"), "rule_shares_of_valid_reads"))


def _account(summary: LabelSummary, batch: dict) -> None:
    click = batch["click"] == 1
    summary.rows += len(click)
    summary.clicks += int(click.sum())
    summary.valid_reads += int(batch["valid_read"].sum())
    summary.rule_counts += np.bincount(batch["valid_read_rule"], minlength=4)[:4]
    bins = batch["dwell_bin"][click]
    summary.bin_counts += np.bincount(bins, minlength=len(summary.bin_counts))[
        :len(summary.bin_counts)]
    dwell = batch["dwell_time"][click]
    dwell = dwell[dwell > 0]
    if len(dwell):
        where = np.searchsorted(LOG_DWELL_EDGES, np.log(dwell), side="right") - 1
        summary.log_dwell_counts += np.bincount(
            np.clip(where, 0, len(summary.log_dwell_counts) - 1),
            minlength=len(summary.log_dwell_counts))
    if logs.DWELL_ZEROED in batch:
        summary.unclicked_dwell_zeroed += int(batch[logs.DWELL_ZEROED].sum())
