"""report: the end of the flow; `python -m report` compares trained models (their
eval_metrics.json) and gathers the label job's, scoring's and the online test's outputs into
one report directory with pictures."""
import core  # noqa: F401  (selects Keras 2 before TensorFlow loads)
