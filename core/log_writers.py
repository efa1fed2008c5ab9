"""Writing logs: `write_csv` (CSV, plain or gzip), `serialize_examples` (rows as serialized
`tf.Example`s, protobuf wire format written directly) and `write_tfrecord`.

Written columns follow the log contract (`core.log_schema`, SPEC §2); ids are always
written as strings.
"""

from __future__ import annotations

import gzip
import io
import os
import re
from typing import Mapping

import numpy as np

from core.log_schema import FIXED_TYPES

# The name of an output shard of the label and scoring jobs: NNNNN (the input file's position),
# the input's stem, the format and, when compressed, .gz.
SHARD_PATTERN = r"\d{5}-.*\.(csv|tfrecord)(\.gz)?"


def shard_name(index: int, path: str, fmt: str, compress: bool) -> str:
    """The output shard of input file `path`, the `index`-th of the input: `NNNNN-<stem>.<fmt>`
    (`fmt` "csv" or "tfrecord") and `.gz` when `compress`; the stem is the file's name without
    its log suffix, in any case (`.csv`, `.tfrecord(s)`, `.tfr`, each with or without
    `.gz`/`.gzip`), so shards sort in input order and keep the input's name."""
    stem = re.sub(r"(\.(csv|tfrecords?|tfr))?(\.(gz|gzip))?$", "", os.path.basename(path),
                  flags=re.I)
    return f"{index:05d}-{stem}.{'csv' if fmt == 'csv' else 'tfrecord'}{'.gz' if compress else ''}"


def write_csv(path: str, columns: Mapping[str, np.ndarray], *, decimals: int | None = 3,
              compress: bool | None = None) -> None:
    """Writes columns (equal-length arrays, in mapping order) as CSV with a header.

    Floats are rounded to `decimals` (None: not rounded) and written in their shortest form
    ("0.0", "12.345"; the shortest text that reads back to the value of their dtype).
    Gzip when `path` ends in .gz (or `compress`); the gzip header has no name and no time, so the
    same columns always give the same bytes.
    """
    import pandas as pd

    # numpy's float-to-text is far faster than pandas' float_format.
    frame = pd.DataFrame({
        name: ((values if decimals is None else np.round(values, decimals)).astype(str)
               if np.issubdtype(np.asarray(values).dtype, np.floating) else values)
        for name, values in columns.items()})
    compress = path.endswith(".gz") if compress is None else compress
    with open(path, "wb") as raw:
        stream = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                   compresslevel=6) if compress else raw
        text = io.TextIOWrapper(stream, encoding="utf-8", newline="")
        frame.to_csv(text, index=False, lineterminator="\n")
        text.flush()
        text.detach()
        if compress:
            stream.close()


def _varint(value: int) -> bytes:
    """Protobuf base-128 varint of a non-negative int (negatives: as uint64, 10 bytes)."""
    value &= (1 << 64) - 1
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _length_delimited(field_tag: int, payload: bytes) -> bytes:
    return bytes([field_tag]) + _varint(len(payload)) + payload


def _varints(values: np.ndarray) -> tuple[bytes, np.ndarray]:
    """Varints of int64 values, vectorized: (10 bytes per value, row-major; byte counts)."""
    u = values.astype(np.int64).view(np.uint64)
    groups = np.stack([(u >> np.uint64(7 * k)) & np.uint64(0x7F) for k in range(10)], axis=1)
    count = np.maximum(1, 10 - np.argmax(groups[:, ::-1] != 0, axis=1))
    count = np.where((groups != 0).any(axis=1), count, 1)
    more = np.arange(10)[None, :] < (count[:, None] - 1)
    data = (groups | (more * 0x80).astype(np.uint64)).astype(np.uint8)
    return data.tobytes(), count


def _feature_entries(name: str, values: np.ndarray) -> list[bytes]:
    """The serialized `Features.feature` map entry {name: Feature} of each value, one per row.

    Wire format (tensorflow/core/example/feature.proto): entry = {1: key, 2: Feature}; Feature
    = {1: BytesList | 2: FloatList | 3: Int64List}; each list holds one (packed) value.
    """
    key = _length_delimited(0x0A, name.encode())
    if values.ndim == 2 and np.issubdtype(values.dtype, np.floating):
        # A float vector per row: entry = 0A len (key, 12 len (12 len (0A len <floats LE>))).
        width = 4 * values.shape[1]
        float_list = bytes([0x0A]) + _varint(width)
        feature = bytes([0x12]) + _varint(len(float_list) + width) + float_list
        head = key + bytes([0x12]) + _varint(len(feature) + width) + feature
        prefix = bytes([0x0A]) + _varint(len(head) + width) + head
        raw = np.ascontiguousarray(values, "<f4").tobytes()
        return [prefix + raw[i:i + width] for i in range(0, len(raw), width)]
    if np.issubdtype(values.dtype, np.integer) or values.dtype == np.bool_:
        # entry = 0A L key 12 (k+4) 1A (k+2) 0A k <varint of k bytes>: lengths depend on k only.
        prefix = [b""] + [_length_delimited(0x0A, key + bytes([0x12, k + 4, 0x1A, k + 2, 0x0A, k])
                                            + b"\x00" * k)[: -k] for k in range(1, 11)]
        raw, count = _varints(values)
        return [prefix[k] + raw[10 * i: 10 * i + k] for i, k in enumerate(count.tolist())]
    if np.issubdtype(values.dtype, np.floating):
        # Fixed size: entry = 0A len (key, 12 08 (12 06 (0A 04 <float32 LE>))).
        head = key + b"\x12\x08\x12\x06\x0a\x04"
        prefix = bytes([0x0A]) + _varint(len(head) + 4) + head
        raw = np.asarray(values, "<f4").tobytes()
        return [prefix + raw[i:i + 4] for i in range(0, len(raw), 4)]
    cache: dict = {}
    entries = []
    for v in values.tolist():
        entry = cache.get(v)
        if entry is None:
            data = v if isinstance(v, bytes) else str(v).encode()
            feature = _length_delimited(0x0A, _length_delimited(0x0A, data))
            entry = _length_delimited(0x0A, key + _length_delimited(0x12, feature))
            if len(cache) < 1 << 20:
                cache[v] = entry
        entries.append(entry)
    return entries


def _empty_entry(name: str, dtype: np.dtype) -> bytes:
    """The `Features.feature` map entry {name: Feature} with an empty value list of the kind
    `_feature_entries` stores `dtype` as (Feature = {1: BytesList | 2: FloatList | 3:
    Int64List}, the list of length 0: the kind is kept, there is no value)."""
    if np.issubdtype(dtype, np.integer) or dtype == np.bool_:
        kind = 0x1A
    elif np.issubdtype(dtype, np.floating):
        kind = 0x12
    else:
        kind = 0x0A
    return _length_delimited(0x0A, _length_delimited(0x0A, name.encode())
                             + _length_delimited(0x12, bytes([kind, 0])))


def _ids_as_text(name: str, values: np.ndarray) -> np.ndarray:
    """Ids (`user_id`, `item_id`, and `impression_id`, read as text: `log_schema.FIXED_TYPES`)
    are strings wherever the project writes them (SPEC §7): integer ids become their decimal
    text, so serving parses every example the same way."""
    if FIXED_TYPES.get(name) == "string" and np.issubdtype(values.dtype, np.integer):
        return values.astype(str).astype(object)
    return values


def serialize_examples(columns: Mapping[str, np.ndarray],
                       absent: Mapping[str, np.ndarray] | None = None) -> list[bytes]:
    """One serialized `tf.Example` per row of `columns` (equal-length arrays): ids (and
    impression_id) as bytes_list always (integer ids as their decimal text), other integers as int64_list,
    floats as float_list (float32; a 2-D float array [rows, m] gives a float_list of m values
    per row), anything else (str or bytes) as bytes_list. `absent` ({column: bool [rows]})
    gives the rows marked True an empty value list of the column's kind instead of their
    value in `columns` (a placeholder): a row without a value, which readers read as missing
    (the feature's default), while the column and its kind stay in every record, so a
    reader that samples records still finds a column that is empty there.

    Writes the protobuf wire format directly (much faster than building tf.train.Example
    objects); tests check that protobuf parses it back to the same message."""
    per_column = []
    for name, values in columns.items():
        values = _ids_as_text(name, np.asarray(values))
        entries = _feature_entries(name, values)
        left_out = None if absent is None or name not in absent else np.asarray(absent[name])
        if left_out is not None and left_out.any():
            empty = _empty_entry(name, values.dtype)
            for row in np.flatnonzero(left_out).tolist():
                entries[row] = empty
        per_column.append(entries)
    records = []
    for entries in zip(*per_column):
        features = b"".join(entries)
        records.append(_length_delimited(0x0A, features))
    return records


def write_tfrecord(path: str, columns: Mapping[str, np.ndarray], *, compress: bool = True) -> None:
    """Writes one `tf.Example` per row (see `serialize_examples`), GZIP unless `compress` is
    False."""
    import tensorflow as tf

    options = tf.io.TFRecordOptions(compression_type="GZIP" if compress else "")
    with tf.io.TFRecordWriter(path, options) as writer:
        for record in serialize_examples(columns):
            writer.write(record)
