"""Inter-task affinity from losses (TAG, Fifty et al. 2021): pure functions.

At a training step with batch X, shared parameters θs and task-specific parameters θj, with Δi
the step the optimizer would take on θs from task i's loss alone (`tag_tf.affinity.lookahead`):

    Z[i, j] = 1 − L_j(X; θs − Δi, θj) / L_j(X; θs, θj)              (mode="exact")
    Z[i, j] ≈ (∇θs L_j · Δi) / L_j(X; θs, θj)                        (mode="first_order")
    Z[i, j] = (g_i · g_j) / (|g_i| |g_j|),  g_i = ∇θs L_i             (mode="cosine", symmetric)
    Z[G, j] = 1 − L_j(X; θs − Δ_G, θj) / L_j(X; θs, θj),  j in G     (mode="group_lookahead")

with Δ_G the step the optimizer would take from the summed loss Σ_{i in G} L_i (its gradient is
the sum of the members' per-task gradients; `tag_tf.affinity.groups`).

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


def cosine_affinity(gram):
    """Z[i, j] = gram[i, j] / sqrt(gram[i, i] · gram[j, j]), `gram[i, j]` = g_i · g_j: the cosine
    similarity of the tasks' gradients (NaN where a gradient is zero).

    >>> g = np.array([[1.0, 0.0], [1.0, 1.0]])            # two tasks' gradients, one row each
    >>> np.round(np.float64(cosine_affinity(g @ g.T)), 4).tolist()
    [[1.0, 0.7071], [0.7071, 1.0]]
    """
    gram = tf.cast(gram, tf.float32)
    norms = tf.sqrt(tf.linalg.diag_part(gram))
    return gram / (norms[:, None] * norms[None, :])


def valid_samples(before, after, z, labelled, source_labelled=None):
    """Which Z[i, j] count: source and target labelled in the batch, losses finite and non-zero.

    `labelled[j]`: task j has labelled examples in the batch; `source_labelled[i]`: the source i
    (a task, or a group with all its tasks labelled) does; default `labelled`. Returns
    (valid [sources, n] bool, skipped [sources, n] bool): `skipped` marks labelled pairs rejected
    for a zero or non-finite loss (counted, never averaged in).

    >>> valid, skipped = valid_samples([1.0, 0.0], np.ones((2, 2)), np.zeros((2, 2)), [True, True])
    >>> valid.numpy().tolist(), skipped.numpy().tolist()      # task 1's loss is 0: no Z onto it
    ([[True, False], [True, False]], [[False, True], [False, True]])
    """
    labelled = tf.cast(labelled, tf.bool)
    source_labelled = labelled if source_labelled is None else tf.cast(source_labelled, tf.bool)
    both = tf.logical_and(source_labelled[:, None], labelled[None, :])
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
