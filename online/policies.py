"""Ranking policies of the online mode: `scores(world, requests, items) -> [n]`, higher shown first.

`requests` and `items` are aligned arrays of candidate rows (`simulator.Requests`: user,
timestamp, session key, position 0). Policies:

- `SavedModelPolicy(path)`: an export of `export.saved_model`, loaded with TensorFlow alone;
  candidates go through its `serving_default` signature as serialized `tf.Example`s (built by
  the same writer as the project's logs), as TF Serving would receive them, with `position` 0
  (the slot is what is being decided); its score is the one stored in the SavedModel;
- `OutputFusionPolicy(model, fusion)`: another fusion of a SavedModelPolicy's outputs (what
  `online.tune_fusion` sweeps), the outputs computed once per session;
- `RandomPolicy()`: uniform random order (a reference);
- `LoggingScorePolicy()`: a scorer built from the logging policy's preferences (freshness, item
  quality, the user's true category interests) with Gumbel noise; it sees latent traits no
  model sees, so it is a strong reference (it ranks one session's candidates, while the logging
  policy samples a category, then an item of it, from the whole pool);
- `ScoreFunctionPolicy(fn)`: any function of (world, requests, items), e.g. an oracle of the
  true click probability (tests).

The random policies draw their noise keyed by (seed, session, item) (`online.crn`), so the same
session's candidates get the same noise whatever else happens.
"""

from __future__ import annotations

import re
from typing import Callable, Sequence

import numpy as np

from core import log_writers
from core.errors import InputError
from core.label_rules import SECONDS_PER_DAY
from online import crn
from pipelines.simulate import simulator

_RANDOM, _GUMBEL = 17, 19  # key streams of the random policies


class RankingPolicy:
    """Scores candidates; `requests` and `items` are aligned arrays of [n] candidate rows."""

    def scores(self, world: simulator.World, requests: simulator.Requests,
               items: np.ndarray) -> np.ndarray:
        raise NotImplementedError


class SavedModelPolicy(RankingPolicy):
    def __init__(self, path: str, batch_size: int = 8192):
        from export.versions import load_saved_model, resolve_saved_model, signature_inputs

        self.path = resolve_saved_model(path)
        self.model = load_saved_model(self.path, ("serving_default", "predict_raw"))
        self.serve = self.model.signatures["serving_default"]
        # The model's features: every one must be a column the simulator observes, or
        # serving_default would score it as its default without a word.
        self.features = tuple(signature_inputs(self.model.signatures["predict_raw"]))
        self.batch_size = batch_size

    def outputs(self, world, requests, items, names: Sequence[str] = ("score",)) -> dict:
        """{output: [n]} of the candidates through serving_default."""
        import tensorflow as tf

        columns = world.observe(requests, items)
        columns["position"] = np.zeros(len(items), np.int64)  # the slot is being decided
        absent = [name for name in self.features if name not in columns]
        if absent:
            raise InputError(f"the model {self.path} reads feature(s) {', '.join(absent)}, "
                             "which the simulated world does not have (its columns: "
                             f"{', '.join(sorted(columns))}): the online mode ranks with "
                             "models trained on the simulator's logs")
        examples = log_writers.serialize_examples(columns)
        parts = {name: [] for name in names}
        for start in range(0, len(examples), self.batch_size):
            served = self.serve(examples=tf.constant(examples[start:start + self.batch_size]))
            for name in names:
                parts[name].append(served[name].numpy())
        return {name: (np.concatenate(p) if p else np.zeros(0, np.float32))
                for name, p in parts.items()}

    def scores(self, world, requests, items):
        return self.outputs(world, requests, items)["score"]


class OutputFusionPolicy(RankingPolicy):
    """Ranks by `fusion` (a `ranking.fusion.Fusion`) of a SavedModelPolicy's outputs. Outputs
    are cached per (session, item), so sweeping fusions over the same sessions scores each
    candidate with the model once."""

    def __init__(self, model: SavedModelPolicy, fusion, cache: dict | None = None):
        self.model, self.fusion = model, fusion
        self.cache = {} if cache is None else cache  # (session, item) -> tuple of outputs

    def scores(self, world, requests, items):
        names = self.fusion.outputs
        keys = list(zip(requests.session.tolist(), np.asarray(items).tolist()))
        missing = [i for i, key in enumerate(keys) if (key, names) not in self.cache]
        if missing:
            index = np.asarray(missing)
            part = simulator.Requests(user=requests.user[index],
                                      timestamp=requests.timestamp[index],
                                      session=requests.session[index],
                                      position=requests.position[index])
            got = self.model.outputs(world, part, np.asarray(items)[index], names)
            for row, i in enumerate(missing):
                self.cache[(keys[i], names)] = tuple(float(got[n][row]) for n in names)
        values = np.array([self.cache[(key, names)] for key in keys], np.float64)
        return self.fusion.apply({n: values[:, k] for k, n in enumerate(names)})


class RandomPolicy(RankingPolicy):
    def __init__(self, seed: int = 0):
        self.seed = seed

    def scores(self, world, requests, items):
        return crn.uniform(self.seed, _RANDOM, requests.session, items)


class LoggingScorePolicy(RankingPolicy):
    """The simulator's logging policy as a scorer: log of its sampling weight (freshness and
    quality) plus log of the user's category preference mix, plus Gumbel noise (sampling
    without replacement in proportion to the weights)."""

    def __init__(self, personalization: float = 0.5, seed: int = 0):
        self.personalization, self.seed = personalization, seed

    def scores(self, world, requests, items):
        age = (requests.timestamp - world.item_publish_time[items]) / SECONDS_PER_DAY
        category = world.item_category[items]
        shares = simulator.CATEGORY_SHARES / simulator.CATEGORY_SHARES.sum()
        mix = (self.personalization * world.user_interest[requests.user, category]
               + (1 - self.personalization) * shares[category])
        u = crn.uniform(self.seed, _GUMBEL, requests.session, items)
        gumbel = -np.log(-np.log(u + 1e-300) + 1e-300)
        return -age / 1.5 + 0.3 * world.item_quality[items] + np.log(mix + 1e-12) + gumbel


class ScoreFunctionPolicy(RankingPolicy):
    def __init__(self, function: Callable):
        self.function = function

    def scores(self, world, requests, items):
        return np.asarray(self.function(world, requests, items), float)


def make_policies(specs: Sequence[str], seed: int = 0, flag: str = "--policies") -> dict:
    """NAME=SAVED_MODEL pairs, or the built-in names `random` and `logging`; `flag` names the
    flag that gave them, for the errors."""
    if not specs:
        raise InputError(f"{flag}: give at least one policy (NAME=SAVED_MODEL, random or "
                         "logging)")
    policies = {}
    for spec in specs:
        name, _, path = spec.partition("=")
        name = name.strip()
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", name or "-/") or name in policies:
            raise InputError(f"{flag}: expected NAME=SAVED_MODEL or random or logging, each "
                             f"name once and made of letters, digits, '_', '.', '-'; got "
                             f"{spec!r}")
        if not path:
            if name == "random":
                policies[name] = RandomPolicy(seed)
            elif name == "logging":
                policies[name] = LoggingScorePolicy(seed=seed)
            else:
                raise InputError(f"{flag}: {name!r} is not a built-in policy (random, "
                                 "logging); give NAME=SAVED_MODEL")
        else:
            policies[name] = SavedModelPolicy(path)
    return policies
