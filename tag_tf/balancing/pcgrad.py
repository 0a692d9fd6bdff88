"""PCGrad (Yu et al. 2020): conflicting task gradients on the shared variables are projected off
each other.

Each task's shared gradient g_i is projected, in a random order of the other tasks j, off every
g_j it conflicts with: if g_i'·g_j < 0, g_i' ← g_i' − (g_i'·g_j / ‖g_j‖²)·g_j; the update is
Σ_i g_i'. Every g_i' is a combination of the original gradients, so the projections run on their
Gram matrix (k×k), never on parameter-sized vectors; task-specific variables get their own
task's gradient.

>>> import numpy as np
>>> # two conflicting gradients: each loses its component along the other
>>> gram = np.array([[1.0, -0.5], [-0.5, 1.0]])
>>> a, conflicts = pcgrad_coefficients(gram, orders=np.array([[0, 1], [1, 0]]))
>>> a.numpy().tolist(), int(conflicts)
([[1.0, 0.5], [0.5, 1.0]], 2)
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tag_tf.balancing.base import BalanceInputs, Balancer
from tag_tf.utils.gradients import gradient_dot


def pcgrad_coefficients(gram, orders) -> tuple[tf.Tensor, tf.Tensor]:
    """PCGrad in the span of the task gradients: A[i, m] with g_i' = Σ_m A[i, m]·g_m, and the
    number of projections made.

    Args:
      gram: [k, k] Gram matrix of the task gradients, gram[i, j] = g_i · g_j.
      orders: [k, k] int; row i is the order in which task i visits the tasks (i itself is skipped).
    """
    gram = tf.convert_to_tensor(gram, tf.float32)
    orders = tf.convert_to_tensor(orders, tf.int32)
    k = gram.shape[0]
    rows, conflicts = [], tf.constant(0.0)
    for i in range(k):
        a = tf.one_hot(i, k)
        for p in range(k):
            j = orders[i, p]
            dot = tf.tensordot(a, tf.gather(gram, j, axis=1), 1)
            conflict = tf.logical_and(dot < 0, tf.not_equal(j, i))
            step = tf.where(conflict, tf.math.divide_no_nan(dot, tf.gather_nd(gram, [j, j])), 0.0)
            a = a - step * tf.one_hot(j, k)
            conflicts += tf.cast(conflict, tf.float32)
        rows.append(a)
    return tf.stack(rows), conflicts


def conflicting_share(gram) -> tf.Tensor:
    """The share of task pairs i < j whose gradients conflict (g_i · g_j < 0).

    >>> float(conflicting_share([[1.0, -0.5, 0.2], [-0.5, 1.0, 0.1], [0.2, 0.1, 1.0]]))   # 1 of 3 pairs
    0.3333333432674408
    """
    gram = tf.convert_to_tensor(gram, tf.float32)
    k = gram.shape[0]
    upper = tf.linalg.band_part(tf.ones((k, k)), 0, -1) - tf.eye(k)
    return tf.reduce_sum(tf.where(gram < 0, upper, 0.0)) / max(k * (k - 1) / 2, 1)


class PCGrad(Balancer):
    """Yu et al. 2020 (see the module docstring), in a random order per task and step (seeded,
    the same on every replica). Logs `pcgrad_conflicts`: the epoch's mean share of task pairs
    whose gradients conflict.

    >>> PCGrad(seed=3).to_json()
    {'name': 'pcgrad', 'seed': 3}
    >>> PCGrad(seed=3).orders(3, step=0).numpy().shape
    (3, 3)
    """

    name = "pcgrad"
    supports_jit = False  # XLA draws other numbers from a stateless RNG whose seed is no constant (the step)

    def __init__(self, seed: int = 0):
        self.seed = int(seed)

    def get_config(self) -> dict:
        return {"seed": self.seed}

    def build(self, model) -> None:
        super().build(model)
        self.conflicts = keras.metrics.Mean(name="pcgrad_conflicts")

    @property
    def metrics(self) -> list:
        return [self.conflicts]

    def task_gradient_variables(self, model) -> list:
        return model.shared_variables

    def orders(self, k: int, step) -> tf.Tensor:
        """[k, k]: a random permutation of the tasks per task, from (seed, step)."""
        noise = tf.random.stateless_uniform((k, k), seed=tf.stack([tf.constant(self.seed, tf.int64),
                                                                   tf.cast(step, tf.int64)]))
        return tf.cast(tf.argsort(noise, axis=1), tf.int32)

    def combine(self, inputs: BalanceInputs) -> tf.Tensor:
        grads = inputs.task_gradients
        gram = tf.stack([tf.stack([gradient_dot(a, b) for b in grads]) for a in grads])
        coefficients, _ = pcgrad_coefficients(gram, self.orders(self.num_tasks, inputs.step))
        self.conflicts.update_state(conflicting_share(gram))
        return tf.reduce_sum(coefficients, axis=0)

    def logs(self) -> dict:
        return {"pcgrad_conflicts": self.conflicts.result()}
