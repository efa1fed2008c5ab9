"""Static lookup tables (keys -> values) that belong to the object that made them.

Every static table of the project (the labeller's item P10 and T2 window tables, the feature
encoder's vocabularies) is made here, as an anonymous `tf.lookup.StaticHashTable`: a resource
reached only through its handle and freed with it. A named table would be shared by name in the
resource manager of the process that holds it, and the name TensorFlow gives one made eagerly is
a per-process counter: on a parameter-server cluster the workers outlive their chief, so a
restarted or a new chief's table could meet the previous chief's table of the same name on a
worker and fail ("Table was already initialized with different data"), or read its contents.
"""

from __future__ import annotations


def static_table(keys, values, key_dtype, value_dtype, default_value, name: str | None = None):
    """A `tf.lookup.StaticHashTable` from `keys` [n] to `values` [n] (array-likes, converted to
    `key_dtype` and `value_dtype`), `default_value` for a missing key. Empty `keys` give a table
    of one entry (a zero or empty-string key mapped to `default_value`): TensorFlow refuses an
    empty initializer."""
    import tensorflow as tf

    keys, values = tf.constant(keys, key_dtype), tf.constant(values, value_dtype)
    if keys.shape[0] == 0:
        keys = tf.zeros([1], keys.dtype)
        values = tf.fill([1], tf.constant(default_value, values.dtype))
    return tf.lookup.StaticHashTable(
        tf.lookup.KeyValueTensorInitializer(keys, values), default_value=default_value,
        name=name, experimental_is_anonymous=True)
