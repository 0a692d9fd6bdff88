"""The problem as the solvers see it: candidate networks through their served-set values.

An `_Instance` hides what the candidates are: every group of an affinity matrix
(`_affinity_instance`), or explicitly listed measured networks with costs (`_candidate_instance`).
`_served_table` tabulates ``best_c(S)`` for every served set ``S``, the input of the exact solvers.

>>> a = np.array([[0.0, 1.0], [3.0, 0.0]])    # A[source, target]
>>> instance = _affinity_instance(a, np.zeros(2), 1, True, None)
>>> _served_table(instance).tolist()           # S = {}, {0}, {1}, {0, 1}
[[-inf, 3.0, 1.0, 4.0]]
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from tag_tf.selection.bounds import relaxed_upper_bound
from tag_tf.selection.scores import group_scores, members_of, served_set_values


@dataclasses.dataclass(frozen=True)
class _Instance:
    """Everything a solver needs, whatever the candidates are (all groups, or measured networks).

    `values(served)` -> (levels, rows) array of best_c(S); `group(served_mask, level)` -> the
    maximising network's membership; `scores(members)` -> per-task values of given networks;
    `costs[level]` is the cost of a network at that level; `budget` bounds the total cost.
    """

    num_tasks: int
    costs: np.ndarray
    budget: float
    values: Callable[[np.ndarray], np.ndarray]
    group: Callable[[int, int], np.ndarray]
    scores: Callable[[np.ndarray], np.ndarray]
    relaxed_bound: Callable[[], float] | None = None


def _affinity_instance(matrix, singleton, num_groups, overlap, max_group_size) -> _Instance:
    def values(served):
        return served_set_values(matrix, served, singleton, overlap=overlap,
                                 max_group_size=max_group_size)[None, :]

    def group(mask, level):
        served = members_of(np.array([mask]), len(matrix))
        return served_set_values(matrix, served, singleton, overlap=overlap,
                                 max_group_size=max_group_size, return_groups=True)[1][0]

    return _Instance(num_tasks=len(matrix), costs=np.ones(1), budget=float(num_groups), values=values,
                     group=group, scores=lambda members: group_scores(matrix, members, singleton),
                     relaxed_bound=lambda: relaxed_upper_bound(matrix, singleton, num_groups, overlap=overlap,
                                                               max_group_size=max_group_size))


def _candidate_instance(members, values, levels, costs, budget) -> _Instance:
    """Explicit candidate networks: `members` (G, n), per-task `values` (G, n), cost `levels` (G,)."""
    outside = (~members).astype(np.float32)
    contribution = np.where(members, values, 0.0)

    def sums(served):  # (rows, G): sum of values over S, -inf unless S is inside the candidate
        inside = (served.astype(np.float32) @ outside.T) == 0
        return np.where(inside, served.astype(float) @ contribution.T, -np.inf)

    def best(served):
        totals = sums(served)
        return np.stack([totals[:, levels == level].max(axis=1) for level in range(len(costs))])

    def group(mask, level):
        totals = sums(members_of(np.array([mask]), members.shape[1]))[0]
        return members[int(np.argmax(np.where(levels == level, totals, -np.inf)))]

    def scores(chosen):
        index = [int(np.flatnonzero((members == row).all(axis=1))[0]) for row in chosen]
        return np.where(members[index], values[index], -np.inf)

    return _Instance(num_tasks=members.shape[1], costs=np.asarray(costs, dtype=float),
                     budget=float(budget), values=best, group=group, scores=scores)


def _served_table(instance: _Instance) -> np.ndarray:
    """(levels, 2^n) table of best_c(S) over every served set S (``-inf`` for the empty set)."""
    n = instance.num_tasks
    size = 1 << n
    chunk = 1 << max(0, min(n, 16))
    table = np.empty((len(instance.costs), size))
    for start in range(0, size, chunk):
        table[:, start:start + chunk] = instance.values(members_of(np.arange(start, start + chunk), n))
    table[:, 0] = -np.inf
    return table
