"""LazyAdam against a NumPy Adam: dense variables as Adam, sparse rows lazily."""

import numpy as np
import tensorflow as tf

from ranking.optimizers import LazyAdam

B1, B2, EPS, LR = 0.9, 0.999, 1e-7, 0.01


def numpy_adam_rows(w, m, v, rows, grad, t):
    """One lazy Adam step on `rows` (unique) with gradient rows `grad`, step number t."""
    w, m, v = w.copy(), m.copy(), v.copy()
    m[rows] = B1 * m[rows] + (1 - B1) * grad
    v[rows] = B2 * v[rows] + (1 - B2) * grad ** 2
    lr = LR * np.sqrt(1 - B2 ** t) / (1 - B1 ** t)
    w[rows] -= lr * m[rows] / (np.sqrt(v[rows]) + EPS)
    return w, m, v


def test_sparse_rows_update_lazily_and_dense_variables_as_adam():
    rng = np.random.default_rng(0)
    table0 = rng.normal(size=(10, 3)).astype(np.float32)
    dense0 = rng.normal(size=(4,)).astype(np.float32)
    table, dense = tf.Variable(table0), tf.Variable(dense0)
    lazy = LazyAdam(LR)
    reference_dense = tf.Variable(dense0)
    adam = tf.keras.optimizers.legacy.Adam(LR, epsilon=EPS)
    w, m, v = table0.astype(np.float64), np.zeros((10, 3)), np.zeros((10, 3))
    batches = [np.array([1, 4, 4, 7]), np.array([4, 2])]
    for t, ids in enumerate(batches, start=1):
        weights = rng.normal(size=(len(ids), 3)).astype(np.float32)
        dense_weights = rng.normal(size=4).astype(np.float32)
        with tf.GradientTape(persistent=True) as tape:
            loss = (tf.reduce_sum(tf.gather(table, ids) * weights)
                    + tf.reduce_sum(dense * dense_weights) + tf.reduce_sum(dense ** 2))
            reference_loss = (tf.reduce_sum(reference_dense * dense_weights)
                              + tf.reduce_sum(reference_dense ** 2))
        gradients = tape.gradient(loss, [table, dense])
        assert isinstance(gradients[0], tf.IndexedSlices)
        lazy.apply_gradients(zip(gradients, [table, dense]))
        adam.apply_gradients([(tape.gradient(reference_loss, reference_dense), reference_dense)])
        # Repeated ids in a batch: their gradient rows are summed.
        rows = np.unique(ids)
        grad = np.stack([weights[ids == r].sum(axis=0) for r in rows]).astype(np.float64)
        w, m, v = numpy_adam_rows(w, m, v, rows, grad, t)
        np.testing.assert_allclose(table.numpy(), w, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(lazy.get_slot(table, "m").numpy(), m, rtol=1e-5, atol=1e-7)
        np.testing.assert_allclose(dense.numpy(), reference_dense.numpy(), rtol=1e-6)
    # Rows never seen keep their initial values and zero moments.
    unseen = [0, 3, 5, 6, 8, 9]
    np.testing.assert_array_equal(table.numpy()[unseen], table0[unseen])
    assert np.all(lazy.get_slot(table, "v").numpy()[unseen] == 0)


def test_embedding_optimizer_takes_the_encoders_tables_by_identity():
    from core.stats_artifact import DwellTargets
    from ranking import models, optimizers

    from model_fixtures import tiny_spec

    spec = tiny_spec()
    model = models.RankingModel(spec, models.ModelConfig("deepfm"), DwellTargets())
    composite = optimizers.make_optimizer(optimizers.OptimizerConfig(
        "lazy_adam", 1e-3, embedding_optimizer="sgd", embedding_learning_rate=0.1), model)
    (_, embeddings), (_, others) = composite._optimizers_and_vars
    tables = [layer.embeddings for layer in
              model.network.get_layer("features").embeddings.values()]
    assert {id(v) for v in embeddings()} == {id(v) for v in tables}
    # DeepFM's per-field maps (named "..._field") and everything else go to the other optimizer.
    assert len(embeddings()) + len(others()) == len(model.trainable_variables)
    assert not {id(v) for v in embeddings()} & {id(v) for v in others()}
