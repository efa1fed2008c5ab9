"""Static lookup tables (keys -> values) whose names no other table can take.

TensorFlow names a table made eagerly after a per-process counter, and a named table is shared
by name in the resource manager of the process that holds it. On a parameter-server cluster the
workers hold a copy of each table of the chief's and outlive it: a restarted or a new chief
counted the same names, met the previous chief's tables on the workers, and read their contents
(same size) or failed ("Table was already initialized with different data"). So:

- a table that stays in this process (the labeller's item P10, user index and T2 windows) is
  anonymous: reached only through its handle and freed with it (a named table stays in the
  resource manager until the process ends: 30 tables of 200 k int64 entries made and dropped
  kept 217 MB, anonymous ones 14 MB; a labelling worker or the online simulation makes a
  labeller per job or day). The price: a dataset mapped with the labeller cannot be serialized
  whole (`Dataset.save`, the tf.data service); tf.data's own rewrites (optimizations,
  auto-sharding) pass tables by handle and work, and nothing here serializes a dataset;
- a table that goes into a SavedModel (the feature encoder's vocabularies) is named by a random
  UUID, as TensorFlow names a table made in a graph: a loader that runs the SavedModel in a
  session (TF Serving, `saved_model_cli run`) initializes its tables by name, and fails on an
  anonymous one ("Table not initialized").
"""

from __future__ import annotations

import functools


def static_table(keys, values, key_dtype, value_dtype, default_value, *, exported: bool = False,
                 name: str | None = None):
    """A `tf.lookup.StaticHashTable` from `keys` [n] to `values` [n] (array-likes, converted to
    `key_dtype` and `value_dtype`), `default_value` for a missing key. `exported`: the table
    goes into a SavedModel (named by a UUID; else anonymous: module docstring). Empty `keys` give
    a table of one entry (a zero or empty-string key mapped to `default_value`): TensorFlow
    refuses an empty initializer."""
    import tensorflow as tf

    keys, values = tf.constant(keys, key_dtype), tf.constant(values, value_dtype)
    if keys.shape[0] == 0:
        keys = tf.zeros([1], keys.dtype)
        values = tf.fill([1], tf.constant(default_value, values.dtype))
    if not exported:
        return tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(keys, values), default_value=default_value,
            name=name, experimental_is_anonymous=True)
    return tf.lookup.StaticHashTable(_uuid_named_initializer()(keys, values),
                                     default_value=default_value, name=name)


@functools.cache
def _uuid_named_initializer():
    import tensorflow as tf

    class UuidNamed(tf.lookup.KeyValueTensorInitializer):
        """An initializer that gives its table no name of its own: `StaticHashTable` then
        names it `hash_table_<uuid4>`, a new one for each table (and for each worker's copy)."""

        @property
        def _shared_name(self):
            return ""

    return UuidNamed
