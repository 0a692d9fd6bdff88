"""The math: pure functions over bitmasks and membership matrices.

A group is a row of a boolean (groups, tasks) membership matrix, or an integer bitmask (bit ``t`` =
task ``t``). ``A[source, target]`` is the affinity; a task's score reads its column.

>>> a = np.array([[0.0, 1.0], [3.0, 0.0]])
>>> group_scores(a, members_of(np.array([3]), 2), singleton_scores("zero", 2)).tolist()
[[3.0, 1.0]]
"""

from __future__ import annotations

import numpy as np

from tag_tf.selection.checks import _check_choice

SINGLETON_POLICIES = ("zero", "forbid")


def singleton_scores(singleton, num_tasks: int) -> np.ndarray:
    """Per-task score of a task alone in its group; ``-inf`` where that is forbidden.

    >>> singleton_scores("zero", 2), singleton_scores("forbid", 2), singleton_scores(-0.5, 2)
    (array([0., 0.]), array([-inf, -inf]), array([-0.5, -0.5]))
    """
    if isinstance(singleton, str):
        policy = _check_choice(singleton, SINGLETON_POLICIES, "singleton")
        return np.full(num_tasks, 0.0 if policy == "zero" else -np.inf)
    if isinstance(singleton, bool):
        raise ValueError(f"singleton={singleton!r}: expected one of {SINGLETON_POLICIES}, a float, "
                         f"or one float per task")
    values = np.asarray(singleton, dtype=float)
    if values.ndim == 0:
        values = np.full(num_tasks, float(values))
    if values.shape != (num_tasks,) or not np.all(np.isfinite(values)):
        raise ValueError(f"singleton={singleton!r}: expected one of {SINGLETON_POLICIES}, a finite "
                         f"float, or {num_tasks} finite floats (one per task)")
    return values


def group_scores(matrix: np.ndarray, members: np.ndarray, singleton: np.ndarray) -> np.ndarray:
    """``score[g, t]``: the mean of ``A[o, t]`` over the other members ``o`` of group ``g``.

    `members` is a boolean (groups, tasks) matrix; non-members score ``-inf``; a task alone in its
    group scores ``singleton[t]``. `matrix` is ``A[source, target]``; a task reads its column.

    >>> a = np.array([[0.0, 1.0, 2.0], [3.0, 0.0, 4.0], [5.0, 6.0, 0.0]])
    >>> group_scores(a, np.array([[True, True, True], [False, False, True]]), np.zeros(3))
    array([[ 4. ,  3.5,  3. ],
           [-inf, -inf,  0. ]])
    """
    members = np.asarray(members, dtype=bool)
    size = members.sum(axis=1, keepdims=True)
    into = members.astype(float) @ matrix - np.diag(matrix)  # sum of A[o, t] over o in g, o != t
    with np.errstate(divide="ignore", invalid="ignore"):
        scores = np.where(size >= 2, into / np.maximum(size - 1, 1), singleton[None, :])
    return np.where(members, scores, -np.inf)


def measured_group_scores(group_affinity, matrix, tasks) -> dict:
    """{group: {t: (Z[G→t] − A[t, t]) / (|G| − 1)}}: per member t of each measured group G (groups
    of 2 or more tasks), the gain onto t of the lookahead on the group's summed loss over t's own
    lookahead, per other member. When the members' effects add up (first order) it equals
    `group_scores`' mean of A[o, t] over the other members o, up to a constant per target (the
    optimizer's momentum, which every step onto t carries once); measured, it also holds how the
    other members' steps interact. `matrix` is A[source, target]; `group_affinity`
    {group (task names): {member: mean Z[G→member]}} (`TaskAffinity.group_affinity`).

    >>> measured_group_scores({("a", "b", "c"): {"a": 3.0, "b": 2.0, "c": 1.0}}, np.eye(3), ["a", "b", "c"])
    {('a', 'b', 'c'): {'a': 1.0, 'b': 0.5, 'c': 0.0}}
    """
    index = {t: i for i, t in enumerate(tasks)}
    return {tuple(group): {t: (float(z) - float(matrix[index[t], index[t]])) / (len(group) - 1)
                           for t, z in values.items()}
            for group, values in group_affinity.items() if len(group) > 1}


def served_set_values(matrix: np.ndarray, served: np.ndarray, singleton: np.ndarray, *,
                      overlap: bool = True, max_group_size: int | None = None,
                      return_groups: bool = False):
    """``best(S)`` for each row ``S`` of the boolean matrix `served`, and optionally the group.

    ``best(S)`` is the most that tasks ``S`` can score together in one group containing them (just
    ``S`` when ``overlap=False``); ``-inf`` when no allowed group serves ``S``, 0 for empty ``S``.
    `matrix` is ``A[source, target]``: a served task reads its column, extra members their rows.
    With ``return_groups`` also returns the boolean (rows, tasks) matrix of the maximising groups.

    >>> a = np.array([[0.0, 1.0, 2.0], [3.0, 0.0, 4.0], [5.0, 6.0, 0.0]])
    >>> served = np.array([[True, False, False], [True, True, False]])
    >>> values, groups = served_set_values(a, served, np.zeros(3), return_groups=True)
    >>> values.tolist(), groups.astype(int).tolist()   # task 0 is best served with task 2 alone
    ([5.0, 7.5], [[1, 0, 1], [1, 1, 1]])
    >>> served_set_values(a, served, np.zeros(3), overlap=False).tolist()
    [0.0, 4.0]
    """
    served = np.atleast_2d(np.asarray(served, dtype=bool))
    rows, n = served.shape
    largest = n if max_group_size is None else min(max_group_size, n)
    size = served.sum(axis=1)
    x = served.astype(float)
    reach = x @ matrix.T  # reach[i, o] = r_S[o] = sum over t in S of A[o, t]
    inner = np.einsum("io,io->i", reach, x) - x @ np.diag(matrix)
    alone = np.where(size == 1, singleton[np.argmax(served, axis=1)], -np.inf)
    if not overlap:
        with np.errstate(divide="ignore", invalid="ignore"):
            values = np.where((size >= 2) & (size <= largest), inner / np.maximum(size - 1, 1), alone)
        values = np.where(size == 0, 0.0, values)
        return (values, served.copy()) if return_groups else values
    outside = np.where(served, -np.inf, reach)
    if return_groups:
        order = np.argsort(-outside, axis=1, kind="stable")
        top = np.take_along_axis(outside, order, axis=1)
    else:
        top = np.sort(outside, axis=1)[:, ::-1]
    top_sums = np.concatenate([np.zeros((rows, 1)), np.cumsum(top, axis=1)], axis=1)
    extra = np.arange(n + 1)[None, :]  # j extra members: group size m = |S| + j
    m = size[:, None] + extra
    valid = (m >= 2) & (m <= largest) & (extra <= n - size[:, None])
    with np.errstate(invalid="ignore"):
        totals = np.where(valid, (inner[:, None] + top_sums) / np.where(valid, m - 1, 1), -np.inf)
    best_extra = np.argmax(totals, axis=1)
    values = totals[np.arange(rows), best_extra]
    use_alone = alone >= values
    values = np.where(size == 0, 0.0, np.where(use_alone, alone, values))
    if not return_groups:
        return values
    groups = served.copy()
    take = (extra < best_extra[:, None]) & ~use_alone[:, None]
    r, c = np.nonzero(take)
    groups[r, order[r, c]] = True
    return values, groups


def members_of(masks: np.ndarray, num_tasks: int) -> np.ndarray:
    """Boolean (len(masks), num_tasks) membership of integer bitmasks (bit t = task t).

    >>> members_of(np.array([5]), 3).astype(int).tolist()
    [[1, 0, 1]]
    """
    return ((np.asarray(masks, dtype=np.int64)[:, None] >> np.arange(num_tasks)) & 1).astype(bool)


def masks_of(members: np.ndarray) -> np.ndarray:
    """Integer bitmasks of the rows of a boolean membership matrix (inverse of `members_of`).

    >>> masks_of(np.array([[True, False, True]])).tolist()
    [5]
    """
    members = np.atleast_2d(members)
    return members.astype(np.int64) @ (np.int64(1) << np.arange(members.shape[1], dtype=np.int64))


def subset_sums(weights: np.ndarray) -> np.ndarray:
    """``out[mask] = sum of weights[t] over the bits t of mask``, for all ``2^n`` masks.

    >>> subset_sums(np.array([1.0, 10.0])).tolist()
    [0.0, 1.0, 10.0, 11.0]
    """
    out = np.zeros(1 << len(weights))
    for bit, w in enumerate(weights):
        out[1 << bit: 2 << bit] = out[: 1 << bit] + w
    return out
