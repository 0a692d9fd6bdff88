"""Lists of gradients (one tensor per variable) and their sums across `tf.distribute` replicas.

>>> import numpy as np
>>> float(gradient_dot([np.ones(3), np.ones((2, 2))], [np.full(3, 2.0), np.ones((2, 2))]))
10.0
>>> sum_over_replicas(3.0), num_replicas()     # no strategy: one replica, nothing to sum
(3.0, 1)
"""

from __future__ import annotations

import tensorflow as tf


def gradient_dot(a: list, b: list) -> tf.Tensor:
    """Σ over variables of the element-wise products of two lists of gradients (float32)."""
    return tf.add_n([tf.reduce_sum(tf.cast(x, tf.float32) * tf.cast(y, tf.float32)) for x, y in zip(a, b)])


def tape_gradient(tape: tf.GradientTape, target, variables) -> list[tf.Tensor]:
    """`tape.gradient` with zeros for the variables `target` does not depend on (TF's own
    unconnected_gradients="zero" fails on Keras variables: it reads their dtype as a string).

    >>> import keras
    >>> v, w = keras.Variable(2.0), keras.Variable(5.0)
    >>> with tf.GradientTape() as tape:
    ...     y = 3.0 * v.value
    >>> [float(g) for g in tape_gradient(tape, y, [v, w])]
    [3.0, 0.0]
    """
    grads = tape.gradient(target, variables)
    return [tf.zeros(v.shape, v.dtype) if g is None else g for g, v in zip(grads, variables)]


def num_replicas() -> int:
    """Replicas in sync under the current strategy (1 without one)."""
    return tf.distribute.get_strategy().num_replicas_in_sync


def sum_over_replicas(values):
    """All-reduce SUM across replicas (identity without a strategy or outside replica context)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return values
    return context.all_reduce(tf.distribute.ReduceOp.SUM, values)
