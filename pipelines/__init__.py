"""pipelines: the jobs over logs, one sub-package per stage of the flow, each with its CLI
(`__main__.py`), its library and, where it has one, its Apache Beam variant.

    python -m pipelines.simulate            simulate/simulator.py: the causal log simulator,
                                            world_config.py (sizes, weights, named settings),
                                            writing.py (logs, ground truth, summary)
    python -m pipelines.validate            validate/validation.py: TFDV statistics, schema,
    python -m pipelines.validate.describe       anomalies, drift; describe.py: read and describe
    python -m pipelines.stats               stats/statistics.py: the stats artifact (Beam)
                                            stats/table_shards.py (its item, user-day tables)
    python -m pipelines.label               label/labelling.py (local engine),
                                            label/labelling_beam.py (Beam engine)
    python -m pipelines.score               score/scoring.py (local engine, shards, summary),
                                            score/scoring_beam.py (Beam RunInference),
                                            score/reading.py (reading, salvage),
                                            score/dead_letters.py (unreadable rows)

The foundation they share (the log contract and reader, the label rules, the stats artifact,
errors and CLI conventions) is the `core` package. Training is `ranking`, export `export`, the
online A/B evaluation `online`, reports `report`.
"""
import core  # noqa: F401  (selects Keras 2 before TensorFlow loads)
