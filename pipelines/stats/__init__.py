"""The statistics job (SPEC §3) on Apache Beam (`statistics`; `python -m pipelines.stats`); the
artifact's layout and reader are `core.stats_artifact`."""
