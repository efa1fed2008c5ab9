"""Log validation (SPEC §9): TFDV statistics, schema, anomalies and drift (`validation`;
`python -m pipelines.validate`), and reading logs end to end to describe them (`describe`;
`python -m pipelines.validate.describe`)."""
