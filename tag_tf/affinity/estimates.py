"""Inter-task affinity from losses (TAG, Fifty et al. 2021): pure functions.

At a training step with batch X, shared parameters θs and task-specific parameters θj, with Δi
the step the optimizer would take on θs from task i's loss alone (`tag_tf.affinity.lookahead`):

    Z[i, j] = 1 − L_j(X; θs − Δi, θj) / L_j(X; θs, θj)              (mode="exact")
    Z[i, j] ≈ (∇θs L_j · Δi) / L_j(X; θs, θj)                        (mode="first_order")

The first-order form is the Taylor expansion of the exact one (L_j(θ − Δ) ≈ L_j − ∇L_j · Δ) and
needs no extra forward pass. `A[source, target]`, the run's affinity, is the mean of Z over the
affinity steps (`mean_affinity`).

>>> import numpy as np
>>> z = exact_affinity(before=np.array([1.0, 2.0]), after=np.array([[0.9, 2.0], [1.0, 1.5]]))
>>> np.round(np.float64(z), 3).tolist()
[[0.1, 0.0], [0.0, 0.25]]
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf


def exact_affinity(before, after):
    """Z[i, j] = 1 − after[i, j] / before[j]: `after[i, j]` is L_j after the lookahead on task i."""
    before = tf.cast(before, tf.float32)
    return 1.0 - tf.cast(after, tf.float32) / before[None, :]


def first_order_affinity(before, gradient_dots):
    """Z[i, j] ≈ (∇L_j · Δi) / L_j, with `gradient_dots[i, j]` = ∇L_j · Δi.

    >>> np.round(first_order_affinity([1.0, 2.0], [[0.5, 1.0], [0.0, -0.5]]).numpy(), 3).tolist()
    [[0.5, 0.5], [0.0, -0.25]]
    """
    return tf.cast(gradient_dots, tf.float32) / tf.cast(before, tf.float32)[None, :]


def valid_samples(before, after, z, labelled):
    """Which Z[i, j] count: both tasks labelled in the batch, losses finite and non-zero.

    Returns (valid [n, n] bool, skipped [n, n] bool): `skipped` marks labelled pairs rejected for a
    zero or non-finite loss (counted, never averaged in).

    >>> valid, skipped = valid_samples([1.0, 0.0], np.ones((2, 2)), np.zeros((2, 2)), [True, True])
    >>> valid.numpy().tolist(), skipped.numpy().tolist()      # task 1's loss is 0: no Z onto it
    ([[True, False], [True, False]], [[False, True], [False, True]])
    """
    labelled = tf.cast(labelled, tf.bool)
    both = tf.logical_and(labelled[:, None], labelled[None, :])
    before = tf.cast(before, tf.float32)
    finite = tf.logical_and(tf.math.is_finite(before), tf.not_equal(before, 0.0))[None, :]
    finite = tf.logical_and(finite, tf.math.is_finite(tf.cast(after, tf.float32)))
    finite = tf.logical_and(finite, tf.math.is_finite(z))
    return tf.logical_and(both, finite), tf.logical_and(both, tf.logical_not(finite))


def mean_affinity(total, count):
    """Element-wise total / count, NaN where there was no sample.

    >>> mean_affinity(np.array([[2.0, 0.0]]), np.array([[4.0, 0.0]])).tolist()
    [[0.5, nan]]
    """
    total, count = np.asarray(total, np.float64), np.asarray(count, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.where(count > 0, count, 1.0), np.nan)
