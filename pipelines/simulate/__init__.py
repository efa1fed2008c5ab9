"""Simulated logs (SPEC §10): the causal world model and its logging policy (`simulator`);
`python -m pipelines.simulate` writes a simulation."""
