"""The labelling job (SPEC §3, §12): labelled shards of logs, by the in-graph `core.labeler`;
`labelling` is the local engine (and the shard writer both engines use), `labelling_beam` the
Apache Beam one; `python -m pipelines.label --engine=local|beam`."""
