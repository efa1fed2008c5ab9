"""pipelines package: everything around the model that reads or writes logs.

    logs.py            the reader (tf.data): open_logs, read_logs, LogSource; re-exports the
                       log contract's public names below, so `logs.<name>` keeps working
    log_schema.py      the log contract (SPEC §2): columns, types, LogSchema, LogFile,
                       expand_inputs and schema inference
    log_writers.py     write_csv, serialize_examples (tf.Example wire format), write_tfrecord
    log_diagnosis.py   from a failed read to an InputError: translate_error, diagnose,
                       locate_corruption, input_errors_for_beam, the reader's in-graph checks
    errors.py          InputError: bad input named by file, row and column
    atomic.py          outputs that appear whole or not at all
    cli.py             what every command-line tool shares
    describe.py        CLI: reads logs end to end and describes them
    validation.py      TFDV statistics, schema, anomalies, drift; CLI validate.py
    statistics.py      the stats artifact (Beam); CLI stats.py
    labels.py          the label rules (SPEC §3), once
    labelling.py       the labelling job; labelling_beam.py its Beam engine; CLI label.py
    scoring.py         batch scoring (SPEC §8): shards, summary, the local engine; CLI score.py
    scoring_beam.py    batch scoring's Beam engine (batched RunInference on predict_raw)
    dead_letters.py    scoring's reader: unreadable rows as dead letters, in one extra pass
    simulator.py       the log simulator (SPEC §10); CLI simulate.py
    online.py          online A/B evaluation on the simulator; CLI simulate_online.py
"""
import os

# tensorflow-recommenders needs Keras 2: select tf-keras before TensorFlow is first imported.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
