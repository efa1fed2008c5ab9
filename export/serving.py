"""The serving graph: a SavedModel that TF Serving, `saved_model_cli` and `RunInference` load
with TensorFlow alone (SPEC §7).

Signatures (the first two return the same outputs):

- `serving_default`: input `examples`, string [batch] of serialized `tf.Example`s, parsed in the
  graph (`tf.io.parse_example`);
- `predict_raw`: one input per feature, named as the feature, [batch] of its type (string,
  int64 or float32), for callers that do not build `tf.Example`s;
- `score_fusion`: what `score` is: `formula` (string), `space` (string), `outputs` (string
  [k]) and `weights` (float32 [k]), the constants the other signatures compute `score` with.
  Its one input, `unused` (an int32 scalar), is ignored: it is there because `saved_model_cli
  run` needs an input (`saved_model_cli run --dir V --tag_set serve --signature_def
  score_fusion --input_exprs unused=0` prints the fusion).

Outputs (`ranking.models.output_names`, each task's `serving_outputs`), float32: `score`
[batch] (the fusion of `ranking.fusion`: the preset's default, or the weights and space given
at export), and
every tower's output by name: `ctr`, `valid_read`, `weighted_valid_read` (probabilities)
[batch]; `log_dwell` (predicted log(1 + seconds)) and `dwell_seconds` (its expm1) [batch] for
log-dwell towers; `dwell_probs` [batch, num_bins], `expected_dwell_seconds` and
`expected_ndt` [batch] for dwell-bin towers.

Missing features: an absent feature in a `tf.Example`, or one with an empty value list, takes
the feature's default from the feature spec ("" for strings, 0 for numbers, as an empty CSV
field or an empty list does in training); two or more values fail the request, naming the
feature, and so does a NaN or infinite float (both signatures). A feature
stored with the wrong kind (e.g. `float_list` for an int64 feature) fails the request with
TensorFlow's parse error, which names the feature (`Key: position`). Ids must be `bytes_list`.

All preprocessing (FarmHash bucketing, vocabulary lookups, log1p and standardization) is part
of the graph; the variables are the trained weights.
"""

from __future__ import annotations

from typing import Mapping

import tensorflow as tf

from core.stats_artifact import DwellTargets
from ranking.features import FeatureSpec
from ranking.fusion import Fusion
from ranking.models import ModelConfig, output_names

SIGNATURE_EXAMPLES = "serving_default"
SIGNATURE_RAW = "predict_raw"
SIGNATURE_FUSION = "score_fusion"
EXAMPLES_INPUT = "examples"
_DTYPES = {"string": tf.string, "int64": tf.int64, "float32": tf.float32}


def parse_examples(examples: tf.Tensor, spec: FeatureSpec) -> dict:
    """{feature: Tensor [batch] of its dtype} of serialized `tf.Example`s [batch], read as the
    log reader reads them: an absent feature or an empty value list takes the feature's
    default (a log written by a converter may hold `bytes_list {}` for a missing tag); more
    than one value fails the request, naming the feature."""
    parsed = tf.io.parse_example(examples, {
        f.name: tf.io.RaggedFeature(_DTYPES[f.dtype], row_splits_dtype=tf.int64)
        for f in spec.features})
    features = {}
    for f in spec.features:
        ragged = parsed[f.name]
        check = tf.debugging.assert_less_equal(
            ragged.row_lengths(), tf.constant(1, tf.int64),
            message=f"feature {f.name}: expected at most one value per example")
        with tf.control_dependencies([check]):
            features[f.name] = tf.identity(
                ragged.to_tensor(default_value=f.default, shape=[None, 1])[:, 0])
    return features


class ServingModule(tf.Module):
    """Wraps a trained network with the two serving signatures."""

    def __init__(self, network: tf.keras.Model, spec: FeatureSpec, config: ModelConfig,
                 targets: DwellTargets, fusion: Fusion | None = None):
        super().__init__(name="dwellrank")
        # The Keras network is captured by the signature functions, not tracked as an
        # attribute: the SavedModel then holds plain variables, lookup tables and graphs (no
        # Keras layer metadata, nothing to deserialize), and saving skips Keras' per-layer
        # tracing.
        self._call_network = lambda features: network(features, training=False)
        self.model_variables = list(network.variables)
        self.lookup_tables = [table for layer in network.submodules
                              for table in getattr(layer, "vocabularies", {}).values()]
        self._spec = spec
        self._outputs = output_names(config, targets)
        self.fusion = fusion or config.fusion
        # Outputs the score may fuse: one value per row (not dwell_probs).
        fusable = [n for n in self._outputs if n != "score"
                   and len(network.output[n].shape) == 1]
        self.fusion.check(fusable, f"{config.preset}")
        # autograph=False: every function here is straight-line (no Python branch on a tensor);
        # converting Keras' internals while tracing took seconds per signature.
        self.serve_examples = tf.function(
            self._serve_examples, autograph=False,
            input_signature=[tf.TensorSpec([None], tf.string, name=EXAMPLES_INPUT)])
        names = spec.names
        self.serve_raw = tf.function(
            lambda *values: self.outputs(dict(zip(names, values))), autograph=False,
            input_signature=[tf.TensorSpec([None], _DTYPES[f.dtype], name=f.name)
                             for f in spec.features])

    @property
    def output_names(self) -> tuple[str, ...]:
        return self._outputs

    def outputs(self, features: Mapping[str, tf.Tensor]) -> dict[str, tf.Tensor]:
        """Serving outputs of raw feature Tensors [batch]. A NaN or infinite number fails the
        request, naming the feature: the network would read it as no number it was trained on
        (NaN scores one fixed value, near the top), and training, statistics and batch scoring
        refuse it too."""
        features = dict(features)
        for f in self._spec.features:
            if f.dtype == "float32":
                features[f.name] = tf.debugging.assert_all_finite(
                    features[f.name], f"feature {f.name}: expected a finite number")
        raw = self._call_network(features)
        result = {name: raw[name] for name in self._outputs if name != "score"}
        result["score"] = self.fusion.apply(raw)
        return result

    def _describe_fusion(self, unused):
        del unused
        return {"formula": tf.constant(self.fusion.formula()),
                "space": tf.constant(self.fusion.space),
                "outputs": tf.constant(list(self.fusion.outputs)),
                "weights": tf.constant([w for _, w in self.fusion.weights], tf.float32)}

    def _serve_examples(self, examples):
        return self.outputs(parse_examples(examples, self._spec))

    def signatures(self) -> dict:
        return {SIGNATURE_EXAMPLES: self.serve_examples.get_concrete_function(),
                SIGNATURE_RAW: self.serve_raw.get_concrete_function(),
                SIGNATURE_FUSION: tf.function(self._describe_fusion, autograph=False,
                                              input_signature=[
                    tf.TensorSpec([], tf.int32, name="unused")]).get_concrete_function()}
