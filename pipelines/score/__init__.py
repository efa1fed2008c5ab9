"""Batch scoring (SPEC §8) through an exported SavedModel: `scoring` (shards, summary, the local
engine), `scoring_beam` (Beam RunInference), `reading` (the reader, a file's salvage),
`dead_letters` (unreadable rows);
`python -m pipelines.score --engine=beam|local`."""
