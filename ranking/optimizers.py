"""Optimizers: Adam with lazy (row-wise) updates of embedding tables.

Keras' Adam applies a sparse gradient (an embedding lookup's `IndexedSlices`) densely: it decays
both moments of every row of the table and moves every row whose moment is not zero, at every
step. For the two 131,072 x 16 id tables that is most of a training step on 2 CPUs.

`LazyAdam` (the update of TF Addons' LazyAdam and of TensorFlow 1's `LazyAdamOptimizer`) does
exactly Adam on dense gradients, and on a sparse gradient updates only the rows in the batch:

    m[rows] <- beta_1 m[rows] + (1 - beta_1) g
    v[rows] <- beta_2 v[rows] + (1 - beta_2) g^2
    w[rows] <- w[rows] - lr sqrt(1 - beta_2^t) / (1 - beta_1^t) m[rows] / (sqrt(v[rows]) + eps)

(repeated indices in a batch are summed first). A row's moments therefore decay only when it is
seen: a rarely seen id keeps its last moments instead of drifting with zero gradients, which is
what large, sparse id tables want; on dense variables it is Adam.
"""

from __future__ import annotations

import tensorflow as tf


class LazyAdam(tf.keras.optimizers.legacy.Adam):
    """Adam; sparse gradients update only the rows they touch (module docstring)."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7,
                 name="LazyAdam", **kwargs):
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2,
                         epsilon=epsilon, amsgrad=False, name=name, **kwargs)

    def _resource_apply_sparse(self, grad, var, indices, apply_state=None):
        var_device, var_dtype = var.device, var.dtype.base_dtype
        coefficients = (apply_state or {}).get(
            (var_device, var_dtype)) or self._fallback_apply_state(var_device, var_dtype)
        m = self.get_slot(var, "m")
        v = self.get_slot(var, "v")
        m_rows = (coefficients["beta_1_t"] * tf.gather(m, indices)
                  + coefficients["one_minus_beta_1_t"] * grad)
        v_rows = (coefficients["beta_2_t"] * tf.gather(v, indices)
                  + coefficients["one_minus_beta_2_t"] * tf.square(grad))
        update_m = self._resource_scatter_update(m, indices, m_rows)
        update_v = self._resource_scatter_update(v, indices, v_rows)
        step = coefficients["lr"] * m_rows / (tf.sqrt(v_rows) + coefficients["epsilon"])
        update_var = self._resource_scatter_add(var, indices, -step)
        return tf.group(update_var, update_m, update_v)
