"""core.lookup_tables: lookups against a dict, the empty table, tables kept apart, a SavedModel
loaded by TensorFlow 2 and run in a TensorFlow 1 session (as TF Serving and saved_model_cli
run it)."""

import numpy as np
import pytest
import tensorflow as tf

from core.lookup_tables import static_table


@pytest.mark.parametrize("exported", [False, True])
def test_lookups_match_a_dict_and_missing_keys_get_the_default(exported):
    reference = {"a": 0.5, "b": 2.0, "é": -1.0}
    table = static_table(list(reference), list(reference.values()), tf.string, tf.float64,
                         np.nan, exported=exported)
    queries = ["b", "x", "é", "", "a"]
    got = table.lookup(tf.constant(queries)).numpy()
    np.testing.assert_array_equal(got, [reference.get(q, np.nan) for q in queries])
    assert table.size().numpy() == 3


@pytest.mark.parametrize("exported", [False, True])
def test_empty_keys_give_the_default_for_every_key(exported):
    table = static_table(np.zeros(0, np.int64), np.zeros(0, np.int64), tf.int64, tf.int64, -1,
                         exported=exported)
    assert table.lookup(tf.constant([0, 7, -3], tf.int64)).numpy().tolist() == [-1, -1, -1]


def _saved(table, path) -> str:
    module = tf.Module()
    module.table = table
    lookup = tf.function(lambda keys: {"values": module.table.lookup(keys)},
                         input_signature=[tf.TensorSpec([None], tf.int64, name="keys")])
    tf.saved_model.save(module, path, signatures={"serving_default": lookup})
    return path


def _run_in_session(path, keys):
    with tf.Graph().as_default(), tf.compat.v1.Session() as session:
        meta = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
        signature = meta.signature_def["serving_default"]
        return session.run(signature.outputs["values"].name,
                           {signature.inputs["keys"].name: keys}).tolist()


def test_equal_contents_stay_apart_and_an_exported_table_runs_in_a_session(tmp_path):
    keys = [2, 1, 3]
    tables = [static_table([1, 2], [10 * k, 20 * k], tf.int64, tf.int64, 0, exported=exported)
              for k, exported in ((1, False), (2, False), (3, True), (4, True))]
    assert [t.lookup(tf.constant(keys, tf.int64)).numpy().tolist() for t in tables] == [
        [20, 10, 0], [40, 20, 0], [60, 30, 0], [80, 40, 0]]
    for k, table in ((2, tables[1]), (4, tables[3])):
        path = _saved(table, str(tmp_path / f"saved{k}"))
        assert tf.saved_model.load(path).signatures["serving_default"](
            keys=tf.constant(keys, tf.int64))["values"].numpy().tolist() == [20 * k, 10 * k, 0]
    assert _run_in_session(str(tmp_path / "saved4"), keys) == [80, 40, 0]
    # Why the exported tables are named: a session cannot initialize an anonymous one.
    with pytest.raises(tf.errors.FailedPreconditionError, match="not initialized"):
        _run_in_session(str(tmp_path / "saved2"), keys)
