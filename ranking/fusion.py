"""The serving score: a fusion of a model's outputs (SPEC §7).

    linear:  score = sum_t w_t * s_t
    log:     score = sum_t w_t * log(s_t)       (a product of the outputs: prod_t s_t ** w_t)

over named outputs s_t of the model (`ctr`, `valid_read`, `weighted_valid_read`,
`expected_dwell_seconds`, `expected_ndt`, ...). In log space an output is floored at 1e-12
before the log. Log space is what makes outputs of different units comparable: log p_ctr +
log E[dwell | click] = log E[dwell per impression], the watch-time objective of industrial
rankers, while p_ctr + E[ndt] would add a probability near 0.1 to a number up to 1.6 and rank by
dwell alone.

Defaults (`default_fusion`): the click-reweighting presets serve P + P' in linear space (the
paper: both are probabilities of a valid read); CTR-only presets the click probability; the
dwell-bin and ORCA presets the expected dwell per impression, log ctr + log
expected_dwell_seconds (a dwell-only model: log expected_dwell_seconds). `export.saved_model`
may store other weights and space (`--score_weights`, `--score_space`); `online.tune_fusion`
chooses them on the simulator.

The same definition serves the model's `score` output (training's evaluation), the exported
signature (TensorFlow tensors) and the online tuning (NumPy arrays).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Mapping, Sequence

import numpy as np

from core.errors import InputError

SPACES = ("linear", "log")
LOG_FLOOR = 1e-12
FLOAT32_MAX = float(np.finfo(np.float32).max)


@dataclasses.dataclass(frozen=True)
class Fusion:
    """Weights over named outputs and the space they are summed in."""

    weights: tuple[tuple[str, float], ...]
    space: str = "linear"

    def __post_init__(self):
        if self.space not in SPACES:
            raise ValueError(f"score space must be one of {', '.join(SPACES)}, not "
                             f"{self.space!r}")
        if not self.weights:
            raise ValueError("a score needs at least one weighted output")
        for name, weight in self.weights:
            # A nan or inf weight ranks nothing, at every request; the export stores and serves
            # the weights as float32, where a weight past its range is inf.
            if not (math.isfinite(weight) and abs(weight) <= FLOAT32_MAX):
                raise ValueError(f"the weight of {name} must be a finite number of float32's "
                                 f"range (|w| <= {FLOAT32_MAX:.4g}), not {weight}")

    @property
    def outputs(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.weights)

    def formula(self) -> str:
        """The score's formula in words, e.g. 'score = 1*log(ctr) + 1*log(expected_dwell_seconds)'."""
        term = "{w:g}*log({n})" if self.space == "log" else "{w:g}*{n}"
        return "score = " + " + ".join(term.format(w=w, n=n) for n, w in self.weights)

    def apply(self, outputs: Mapping):
        """The score of `outputs` ({name: Tensor [batch] or ndarray [n]}): a Tensor for
        Tensors, an ndarray for arrays."""
        first = outputs[self.weights[0][0]]
        if isinstance(first, np.ndarray):
            values = [np.asarray(outputs[n], np.float64) for n in self.outputs]
            if self.space == "log":
                values = [np.log(np.maximum(v, LOG_FLOOR)) for v in values]
            return sum(w * v for (_, w), v in zip(self.weights, values))
        import tensorflow as tf

        values = [tf.cast(outputs[n], tf.float32) for n in self.outputs]
        if self.space == "log":
            values = [tf.math.log(tf.maximum(v, LOG_FLOOR)) for v in values]
        return tf.add_n([tf.constant(w, tf.float32) * v
                         for (_, w), v in zip(self.weights, values)])

    def check(self, available: Sequence[str], what: str = "the model") -> None:
        """InputError naming a weighted output that `available` lacks."""
        missing = [n for n in self.outputs if n not in available]
        if missing:
            raise InputError(f"--score_weights names {', '.join(missing)}, which {what} does "
                             f"not output (outputs: {', '.join(available)})")

    def to_json(self) -> dict:
        return {"space": self.space, "weights": {n: w for n, w in self.weights},
                "formula": self.formula()}

    @classmethod
    def from_json(cls, data: Mapping) -> "Fusion":
        return cls(tuple((n, float(w)) for n, w in data["weights"].items()), data["space"])


def parse_weights(pairs: Sequence[str], space: str) -> Fusion:
    """A Fusion from 'name=weight' pairs (the flags' form); InputError for a bad pair."""
    weights = []
    for pair in pairs:
        name, _, value = pair.partition("=")
        try:
            weights.append((name.strip(), float(value)))
        except ValueError:
            raise InputError(f"--score_weights: expected output=number, got {pair!r}") from None
    if not weights or any(not n for n, _ in weights):
        raise InputError("--score_weights: expected output=number pairs, e.g. "
                         "ctr=1,expected_dwell_seconds=1")
    if len({n for n, _ in weights}) < len(weights):
        raise InputError("--score_weights names an output twice")
    try:
        return Fusion(tuple(weights), space)
    except ValueError as error:
        raise InputError(str(error)) from None


EXPECTED_DWELL_PER_IMPRESSION = Fusion((("ctr", 1.0), ("expected_dwell_seconds", 1.0)), "log")


def default_fusion(serving: Sequence[str]) -> Fusion:
    """The preset default for a model whose towers serve `serving` (their serving outputs):
    a dwell distribution (expected_ndt) makes it the expected dwell per impression (with the
    click probability when the model has one), otherwise the sum of the probabilities."""
    serving = tuple(serving)
    if "expected_ndt" in serving:
        if "ctr" in serving:
            return EXPECTED_DWELL_PER_IMPRESSION
        return Fusion((("expected_dwell_seconds", 1.0),), "log")
    return Fusion(tuple((name, 1.0) for name in serving), "linear")
