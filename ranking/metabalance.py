"""MetaBalance (He et al., WWW 2022): auxiliary gradients on shared parameters scaled to the
main task's (SPEC §4, `--metabalance`).

The main task is the model's first tower (`ctr` for the dwell-bin presets); every other task
is auxiliary. The shared parameters are those of the feature encoder and the backbone that the
main task and at least one auxiliary task reach (a task's own gate or expert is not shared).
Each step:

    m_main <- beta m_main + (1 - beta) ||g_main||,  m_aux <- beta m_aux + (1 - beta) ||g_aux||
    g_shared = g_main + sum_aux g_aux * r * m_main / m_aux

where the norms are global norms over the shared parameters (of the global batch's gradient:
replicas' gradients are summed before the norm), and r is `--metabalance_ratio` (SPEC §4:
"to r times the main task's gradient norm"; the paper's relax factor would instead mix
r·scaled + (1 − r)·g_aux). Task-specific parameters (towers, a task's own gates and experts,
ORCA's NDE) get their own tasks' gradients unchanged. The moving averages are variables of
this module, kept in the checkpoint, so a resumed run continues with the same averages.
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import tensorflow as tf

from core.settings import setting


@dataclasses.dataclass(frozen=True)
class MetaBalanceConfig:
    enabled: bool = setting(False, "Scale auxiliary tasks' gradients on shared parameters to "
                            "--metabalance_ratio x the main (first) task's norm.",
                            flag="metabalance")
    ratio: float = setting(1.0, "MetaBalance: r.", flag="metabalance_ratio")
    beta: float = setting(0.9, "MetaBalance: moving-average factor of the gradient norms.",
                          flag="metabalance_beta")


def _scale(gradient, factor):
    if isinstance(gradient, tf.IndexedSlices):
        return tf.IndexedSlices(gradient.values * factor, gradient.indices, gradient.dense_shape)
    return gradient * factor


def add_gradients(a, b):
    """Sum of two gradients of one variable (either may be None or IndexedSlices)."""
    if a is None:
        return b
    if b is None:
        return a
    if isinstance(a, tf.IndexedSlices) and isinstance(b, tf.IndexedSlices):
        return tf.IndexedSlices(tf.concat([a.values, b.values], 0),
                                tf.concat([a.indices, b.indices], 0), a.dense_shape)
    return tf.convert_to_tensor(a) + tf.convert_to_tensor(b)


def _summed_rows(gradient):
    """An IndexedSlices gradient's rows with repeated indices summed (the dense gradient's
    non-zero rows); a dense gradient as it is."""
    if not isinstance(gradient, tf.IndexedSlices):
        return gradient
    unique, position = tf.unique(gradient.indices)
    return tf.math.unsorted_segment_sum(gradient.values, position, tf.size(unique))


def _global_norm(gradients) -> tf.Tensor:
    """Norm of the global batch's gradient over `gradients` (None: not reached)."""
    present = [g for g in gradients if g is not None]
    if not present:
        return tf.constant(0.0)
    context = tf.distribute.get_replica_context()
    if context is not None and context.num_replicas_in_sync > 1:
        present = context.all_reduce(tf.distribute.ReduceOp.SUM, present)
    return tf.linalg.global_norm([_summed_rows(g) for g in present])


class MetaBalance(tf.Module):
    """Moving averages of the main and auxiliary gradient norms, and the balanced gradients."""

    def __init__(self, main_task: str, auxiliary_tasks: Sequence[str], ratio: float = 1.0,
                 beta: float = 0.9):
        super().__init__(name="metabalance")
        self.main_task = main_task
        self.auxiliary_tasks = tuple(auxiliary_tasks)
        self.ratio, self.beta = float(ratio), float(beta)
        aggregation = tf.VariableAggregation.ONLY_FIRST_REPLICA
        self.norms = {t: tf.Variable(0.0, trainable=False, name=f"norm_{t}",
                                     aggregation=aggregation)
                      for t in (main_task,) + self.auxiliary_tasks}
        self.steps = tf.Variable(0, dtype=tf.int64, trainable=False, name="steps",
                                 aggregation=aggregation)

    def _average(self, task: str, norm: tf.Tensor) -> tf.Tensor:
        # The first step takes the norm itself (no zero-initialization bias).
        first = tf.equal(self.steps, 0)
        value = tf.where(first, norm, self.beta * self.norms[task] + (1 - self.beta) * norm)
        return self.norms[task].assign(value)

    def gradients(self, tape: tf.GradientTape, task_losses: dict, candidates: Sequence[tf.Variable],
                  others: Sequence[tf.Variable]):
        """(gradients of `candidates`, gradients of `others`) for one step; `tape` must be
        persistent and have recorded `task_losses`.

        `candidates` are the encoder's and backbone's variables; those the main task and at
        least one auxiliary task reach are the shared parameters that get balanced gradients.
        A candidate only one task reaches (a task's own gate or expert) gets that task's plain
        gradient, like the towers in `others`."""
        per_task = {task: tape.gradient(task_losses[task], candidates)
                    for task in (self.main_task,) + self.auxiliary_tasks}
        main = per_task[self.main_task]
        shared = [g is not None and any(per_task[t][i] is not None
                                        for t in self.auxiliary_tasks)
                  for i, g in enumerate(main)]
        main_norm = self._average(self.main_task,
                                  _global_norm([g for g, s in zip(main, shared) if s]))
        balanced = list(main)
        for task in self.auxiliary_tasks:
            auxiliary = per_task[task]
            reaches = [g for g, s in zip(auxiliary, shared) if s and g is not None]
            factor = None
            if reaches:
                norm = self._average(task, _global_norm(reaches))
                factor = self.ratio * tf.math.divide_no_nan(main_norm, norm)
            for i, g in enumerate(auxiliary):
                if g is not None:
                    balanced[i] = add_gradients(balanced[i], _scale(g, factor) if shared[i] else g)
        self.steps.assign_add(1)
        # Every task's plain gradient on the other variables (a list of targets sums them;
        # a sum formed here, outside the tape, would have no gradient at all).
        return balanced, tape.gradient(list(task_losses.values()), others)
