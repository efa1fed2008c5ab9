"""core.lookup_tables: lookups against a dict, the empty table, a SavedModel round trip."""

import numpy as np
import tensorflow as tf

from core.lookup_tables import static_table


def test_lookups_match_a_dict_and_missing_keys_get_the_default():
    reference = {"a": 0.5, "b": 2.0, "é": -1.0}
    table = static_table(list(reference), list(reference.values()), tf.string, tf.float64,
                         np.nan)
    queries = ["b", "x", "é", "", "a"]
    got = table.lookup(tf.constant(queries)).numpy()
    np.testing.assert_array_equal(got, [reference.get(q, np.nan) for q in queries])
    assert table.size().numpy() == 3


def test_empty_keys_give_the_default_for_every_key():
    table = static_table(np.zeros(0, np.int64), np.zeros(0, np.int64), tf.int64, tf.int64, -1)
    assert table.lookup(tf.constant([0, 7, -3], tf.int64)).numpy().tolist() == [-1, -1, -1]


def test_tables_of_equal_contents_are_distinct_resources_and_save(tmp_path):
    first = static_table([1, 2], [10, 20], tf.int64, tf.int64, 0)
    second = static_table([1, 2], [30, 40], tf.int64, tf.int64, 0)
    keys = tf.constant([2, 1, 3], tf.int64)
    assert first.lookup(keys).numpy().tolist() == [20, 10, 0]
    assert second.lookup(keys).numpy().tolist() == [40, 30, 0]

    module = tf.Module()
    module.table = second
    module.lookup = tf.function(lambda k: module.table.lookup(k),
                                input_signature=[tf.TensorSpec([None], tf.int64)])
    tf.saved_model.save(module, str(tmp_path / "saved"))
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    assert loaded.lookup(keys).numpy().tolist() == [40, 30, 0]
