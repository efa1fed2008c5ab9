"""Where the local scoring engine's time goes: one process, each part timed on its own.

    .venv/bin/python benchmarks/profile_scoring.py --saved_model=EXPORT \\
        --input='demo_out/sim/logs/day-*.csv.gz' [--out=bench_out/profile_scoring]

Prints, on the same rows (`--input`, any logs `pipelines.score` accepts):

- import: TensorFlow and the scoring module; load: the SavedModel (its first load);
- the whole job as `pipelines.score --engine=local` runs it (`scoring.score_logs`, CSV.gz out),
  rows/s after import and load (the steady state), then the same job with one part replaced by
  nothing: the CSV formatting (`format_csv_rows` returns no bytes) and the inference
  (`predict_batch` returns zeros), so what each part adds to the job shows;
- the reader alone, batches of NumPy columns: as the job reads (all files through one tf.data
  pipeline, `reading.read_scorable_files`), and file by file with one pipeline each (how
  the job read before, and how the Beam engine's workers read).

Each variant runs `--repeats` times (default 2; the minimum is printed): single runs on this
2-core VM swing by ±15 %.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import in_process  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--saved_model", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--out", default="bench_out/profile_scoring")
    parser.add_argument("--batch_size", type=int, default=4096)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    started = time.perf_counter()
    import numpy as np
    import tensorflow  # noqa: F401  (its import is part of the time printed)

    from core import log_schema, logs
    from pipelines.score import reading, scoring
    imported = time.perf_counter()
    signature = scoring.read_signature(args.saved_model)
    loaded = time.perf_counter()
    print(f"import {imported - started:.1f} s, SavedModel load {loaded - imported:.1f} s")

    config = scoring.ScoreConfig(batch_size=args.batch_size)

    def job(name, **replaced):
        saved = {k: getattr(scoring, k) for k in replaced}
        times = []
        try:
            for k, v in replaced.items():
                setattr(scoring, k, v)
            for _ in range(args.repeats):
                out = os.path.join(args.out, name)
                shutil.rmtree(out, ignore_errors=True)
                t = time.perf_counter()
                summary = scoring.score_logs(args.saved_model, args.input, out, config)
                times.append(time.perf_counter() - t)
        finally:
            for k, v in saved.items():
                setattr(scoring, k, v)
        rows = summary["rows"]
        print(f"{name:34s} {min(times):6.1f} s  {rows / min(times):9,.0f} rows/s  ({rows:,} rows, "
              f"runs {', '.join(f'{t:.1f}' for t in times)} s)")

    job("whole job (steady state)")
    job("without CSV formatting", format_csv_rows=lambda columns: b"")
    job("without inference", predict_batch=lambda predict, sig, batch: {
        o: np.zeros(len(batch[logs.SOURCE_ROW]), np.float32) for o in sig.outputs})

    source = logs.open_logs(args.input, column_types={
        k: v for k, v in signature.features.items() if k not in log_schema.FIXED_TYPES},
        candidates=tuple(signature.features))
    ids = tuple(c for c in scoring.ID_COLUMNS if c in source.schema.dtypes)
    columns = tuple(dict.fromkeys(ids + tuple(signature.features)))

    def read(name, batches):
        times = []
        for _ in range(args.repeats):
            t, rows = time.perf_counter(), 0
            for batch in batches():
                rows += len(batch[logs.SOURCE_ROW])
            times.append(time.perf_counter() - t)
        print(f"{name:34s} {min(times):6.1f} s  {rows / min(times):9,.0f} rows/s  "
              f"(runs {', '.join(f'{t:.1f}' for t in times)} s)")

    read_args = (source.schema, source.stored_types, columns, args.batch_size, [], 0)
    read("reader as the job reads", lambda: (
        batch for _, batch in reading.read_scorable_files(source.files, *read_args)))
    read("reader, one pipeline per file", lambda: (
        batch for f in source.files for batch in reading.read_scorable(f, *read_args)))


if __name__ == "__main__":
    in_process(main)
