"""The statistics job (SPEC §3) on Apache Beam, or the same steps in one process with
`--engine=local` (`statistics`; `python -m pipelines.stats`); the artifact's layout and reader
are `core.stats_artifact`."""
