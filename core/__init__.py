"""core: the foundation every stage stands on (no command-line tools of its own).

    errors.py          InputError: bad input named by file, row and column
    atomic.py          outputs that appear whole or not at all
    cli.py             what every command-line tool shares (quiet TensorFlow, one-line errors)
    settings.py        config dataclass fields -> absl flags (each setting defined once)
    phases.py          where a job's time goes (its `time:` line)
    log_files.py       log files (SPEC §2): globs to files, their format, opening, damage
    log_schema.py      the log contract (SPEC §2): columns, types, numbers as read
    schema_inference.py  the columns and types of logs, from a sample of them
    logs.py            the reader (tf.data): open_logs, read_logs, LogSource
    log_writers.py     write_csv, serialize_examples (tf.Example), write_tfrecord
    log_diagnosis.py   from a failed read to an InputError (also on Beam workers)
    label_rules.py     the label rules of SPEC §3: valid read, NDT, log dwell, dwell bins
    stats_artifact.py  the stats artifact: layout, stats.json, the typed StatsArtifact
    data_doubts.py     what looks wrong in logs, read from their statistics (warnings)
    lookup_tables.py   static lookup tables under names no other table takes (a cluster's
                       workers outlive their chief)
    labeler.py         the in-graph Labeler (training, the label job, the online evaluation)
    threads.py         how many threads one TensorFlow op may use (--intra_op_threads);
                       reads in a background thread (read_in_background)
    optional_imports.py  TensorFlow's import without its unused scipy and Google API
                       client integrations (0.3-0.4 s of every process's start)

Importing any package of the project imports this one first, which selects Keras 2 and leaves
TensorFlow's unused optional integrations out of its import (below).
"""
import os

# tensorflow-recommenders needs Keras 2: select tf-keras before TensorFlow is first imported.
# The one place this is set; every other package imports `core` before anything else.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

# Before TensorFlow's first import too: its optional scipy and Google API client integrations,
# which no tool uses, are left out of it (core/optional_imports.py).
from core.optional_imports import skip_while_tensorflow_imports  # noqa: E402

skip_while_tensorflow_imports()
