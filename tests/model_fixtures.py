"""A tiny feature spec and batch for model tests (no logs needed)."""

import numpy as np
import tensorflow as tf

from core.log_schema import LogSchema
from ranking import features

SCHEMA = LogSchema(
    columns=("impression_id", "user_id", "item_id", "timestamp", "click", "dwell_time",
             "position", "category", "item_length", "publish_age_hours"),
    dtypes={"impression_id": "int64", "user_id": "string", "item_id": "string",
            "timestamp": "int64", "click": "int64", "dwell_time": "float64", "position": "int64",
            "category": "string", "item_length": "int64", "publish_age_hours": "float32"})
NUMERIC_STATS = {"position": {"mean": 1.0, "std": 0.5}, "item_length": {"mean": 6.5, "std": 0.6},
                 "publish_age_hours": {"mean": 3.5, "std": 0.6}}


def tiny_spec(config=None, post_click=()):
    return features.build_feature_spec(SCHEMA, NUMERIC_STATS, config, post_click)


def tiny_batch(spec, rows, seed=0):
    rng = np.random.default_rng(seed)
    batch = {}
    for f in spec.features:
        if f.dtype == "string":
            batch[f.name] = tf.constant([f"{f.name}-{rng.integers(50)}" for _ in range(rows)])
        elif f.dtype == "int64":
            batch[f.name] = tf.constant(rng.integers(0, 1000, rows), tf.int64)
        else:
            batch[f.name] = tf.constant(rng.uniform(0, 100, rows), tf.float32)
    return batch
