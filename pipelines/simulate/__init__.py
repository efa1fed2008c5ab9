"""Simulated logs (SPEC §10): the causal world model and its logging policy (`simulator`), its
sizes, weights and named settings (`world_config`), and writing a simulation to disk
(`writing`); `python -m pipelines.simulate` writes a simulation."""
