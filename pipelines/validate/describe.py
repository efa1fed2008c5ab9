"""Reads logs end to end and describes them: inferred column types, rows, CTR, dwell quantiles,
the UTC days they cover, and the rows that repeat an earlier row or impression id.

    python -m pipelines.validate.describe --input='sim/logs/*.csv.gz' [--allow_unclicked_dwell]
        [--column_types=zip_code:string]

A quick check that a log is readable (every value passes the reader's checks) before it goes to
the statistics, labelling or training jobs; also a throughput figure for the reader.
"""

from __future__ import annotations

import time

import numpy as np
from absl import flags

from core import cli, log_schema, logs, settings  # cli first: it quiets TensorFlow
from core.label_rules import SECONDS_PER_DAY, utc_date

FLAGS = flags.FLAGS
flags.DEFINE_string("input", None, "Comma-separated globs of CSV(.gz) or TFRecord log files.")
flags.DEFINE_integer("batch_size", 4096, "Rows per batch while reading.", lower_bound=1)
flags.DEFINE_bool("allow_unclicked_dwell", False,
                  "Treat dwell > 0 on unclicked rows as 0 (and count them) instead of failing.")
settings.define_flags(log_schema.ReadConfig)
flags.mark_flag_as_required("input")


def describe(pattern: str, batch_size: int = 4096, allow_unclicked_dwell: bool = False,
             column_types: dict[str, str] | None = None) -> dict:
    """Reads every row of `pattern` (`column_types`, {column: type}, read so); returns counts
    (`zero_dwell_clicks`: clicks with dwell 0; `duplicate_rows`: rows equal to an earlier one,
    byte for byte; `repeated_impression_ids`: rows whose non-empty `impression_id` an earlier
    row has, None without the column), dwell quantiles of clicks (s), the UTC days with rows
    (`days`: sorted day numbers, unix seconds // 86400) and rows/s. The duplicates are counted
    by 64-bit fingerprints, 8 bytes a row (16 with `impression_id`) held to the end, where
    sorting them takes about as much again."""
    import tensorflow as tf

    def fingerprints(strings):  # 64 bits of FarmHash a string
        return tf.bitcast(tf.fingerprint(strings), tf.int64).numpy()

    source = logs.open_logs(pattern, column_types=column_types, given_by="flag")
    dataset = source.dataset(batch_size, allow_unclicked_dwell=allow_unclicked_dwell,
                             with_raw=True)
    has_ids = "impression_id" in source.schema.dtypes
    started = time.perf_counter()
    rows = clicks = zeroed = 0
    dwell_parts, days, row_prints, id_prints = [], set(), [], []
    for batch in dataset:
        # A log written twice, or replayed, trains as separate impressions: say so.
        row_prints.append(fingerprints(batch[logs.RAW]))
        if has_ids:  # an empty id is no id: not a repeat
            ids = batch["impression_id"]
            id_prints.append(fingerprints(tf.boolean_mask(ids, tf.not_equal(ids, ""))))
        click = batch["click"].numpy()
        days.update(np.unique(batch["timestamp"].numpy() // SECONDS_PER_DAY).tolist())
        rows += len(click)
        clicks += int(click.sum())
        dwell_parts.append(batch["dwell_time"].numpy()[click == 1])
        if allow_unclicked_dwell:
            zeroed += int(batch[logs.DWELL_ZEROED].numpy().sum())
    duplicates = rows - len(np.unique(np.concatenate(row_prints))) if rows else 0
    repeated_ids = None
    if has_ids:
        id_prints = np.concatenate(id_prints)
        repeated_ids = len(id_prints) - len(np.unique(id_prints))
    seconds = time.perf_counter() - started
    dwell = np.concatenate(dwell_parts) if dwell_parts else np.zeros(0)
    quantiles = (dict(zip(("p10", "p50", "p90"), np.percentile(dwell, [10, 50, 90]).tolist()))
                 if len(dwell) else {})
    return {"files": len(source.files), "format": source.format, "schema": source.schema,
            "rows": rows, "clicks": clicks, "unclicked_dwell_zeroed": zeroed,
            "zero_dwell_clicks": int(np.count_nonzero(dwell == 0)),
            "dwell_quantiles": quantiles, "seconds": seconds,
            "days": sorted(days), "duplicate_rows": duplicates,
            "repeated_impression_ids": repeated_ids,
            "rows_per_second": rows / seconds if seconds else float("nan")}


def main(argv):
    del argv
    result = describe(FLAGS.input, FLAGS.batch_size, FLAGS.allow_unclicked_dwell,
                      settings.from_flags(log_schema.ReadConfig).types)
    print(f"{result['files']} {result['format']} file(s), {result['rows']:,} rows, "
          f"{result['clicks']:,} clicks (CTR {result['clicks'] / max(result['rows'], 1):.2%})")
    if result["dwell_quantiles"]:
        q = result["dwell_quantiles"]
        zero = result["zero_dwell_clicks"]
        print(f"dwell of clicks (s): p10 {q['p10']:.1f}  p50 {q['p50']:.1f}  p90 {q['p90']:.1f}; "
              f"{zero:,} clicks ({zero / result['clicks']:.1%}) with dwell 0")
    if result["days"]:
        days = result["days"]
        print(f"days (UTC): {utc_date(days[0])} to {utc_date(days[-1])}, {len(days)} with rows "
              f"of {days[-1] - days[0] + 1}")
    if FLAGS.allow_unclicked_dwell:
        print(f"unclicked rows with dwell > 0, treated as 0: {result['unclicked_dwell_zeroed']:,}")
    line = (f"duplicates: {result['duplicate_rows']:,} rows repeat an earlier row exactly "
            f"({result['duplicate_rows'] / max(result['rows'], 1):.2%})")
    if result["repeated_impression_ids"] is not None:
        line += f"; {result['repeated_impression_ids']:,} rows repeat an earlier impression_id"
    print(line + (" (each row is read as its own impression: drop duplicates before the "
                  "statistics job if they are copies)" if result["duplicate_rows"] or
                  result["repeated_impression_ids"] else ""))
    print("columns:")
    schema = result["schema"]
    features = set(schema.feature_columns())
    for name in schema.columns:
        role = "feature" if name in features else ("label" if name in log_schema.LABEL_COLUMNS else "log")
        print(f"  {name:<24} {schema.dtypes[name]:<8} {role}")
    print(f"read in {result['seconds']:.1f} s ({result['rows_per_second']:,.0f} rows/s)")


if __name__ == "__main__":
    cli.run(main)
