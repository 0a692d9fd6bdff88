"""The heuristic (any n, unit costs): agglomeration, local search, and a MILP over the pool.

Agglomerative merging gives a first labelling of tasks to served sets; local search (move one task,
swap two tasks) drives it, and random restarts and random kicks of the best so far, to local
optima; a set-partitioning MILP then picks the best at most k served sets among all those of every
local optimum. Its bound comes from `tag_tf.selection.milp` (LP, n <= 22) or
`tag_tf.selection.bounds` (Lagrangian, any n).

>>> from tag_tf.selection.instance import _affinity_instance
>>> a = np.zeros((4, 4))
>>> a[0, 1], a[1, 0], a[2, 3], a[3, 2] = 0.9, 0.8, 0.7, 0.6   # blocks {0, 1} and {2, 3}
>>> sorted(_heuristic(_affinity_instance(a, np.zeros(4), 2, True, None), 4, scale=0.9, restarts=4))
[(3, 0), (12, 0)]
"""

from __future__ import annotations

import numpy as np
from absl import logging

from tag_tf.selection.instance import _Instance
from tag_tf.selection.milp import _Columns, _milp
from tag_tf.selection.scores import masks_of, members_of

_LOCAL_SEARCH_RESTARTS = 200
_POOL_MILP_SECONDS = 10.0


def _penalised(instance: _Instance, largest: int, penalty: float):
    """best(S) with infeasible served sets scored -penalty x (1 + oversize) instead of -inf."""
    def values(served):
        v = instance.values(served)[0]
        excess = np.maximum(served.sum(axis=1) - largest, 0)
        return np.where(np.isfinite(v), v, -penalty * (1.0 + excess))
    return values


def _local_search(labels: np.ndarray, value, slots: int) -> np.ndarray:
    """Best-improvement moves (one task to another set, then swaps of two tasks) to a local optimum."""
    n = len(labels)
    eye = np.eye(n, dtype=bool)
    labels = labels.copy()
    while True:
        sets = labels[None, :] == np.arange(slots)[:, None]
        current = value(sets)
        tol = 1e-12 * (1.0 + np.abs(current).sum())
        removed = sets[labels] & ~eye  # row t: t's set without t
        added = (sets[None, :, :] | eye[:, None, :]).reshape(n * slots, n)  # t joins set j
        gain = ((value(removed) - current[labels])[:, None]
                + (value(added).reshape(n, slots) - current[None, :]))
        gain[np.arange(n), labels] = -np.inf
        t, j = np.unravel_index(np.argmax(gain), gain.shape)
        if gain[t, j] > tol:
            labels[t] = j
            continue
        t_idx, u_idx = np.nonzero(labels[:, None] < labels[None, :])
        if len(t_idx) == 0:
            return labels
        a, b = labels[t_idx], labels[u_idx]
        first = sets[a] & ~eye[t_idx] | eye[u_idx]
        second = sets[b] & ~eye[u_idx] | eye[t_idx]
        swap_gain = value(first) + value(second) - current[a] - current[b]
        best = int(np.argmax(swap_gain))
        if swap_gain[best] <= tol:
            return labels
        labels[t_idx[best]], labels[u_idx[best]] = b[best], a[best]


def _agglomerate(value, n: int, slots: int) -> np.ndarray:
    """Start from singletons; merge the pair of sets losing least until <= slots sets and no gain."""
    sets = np.eye(n, dtype=bool)
    current = value(sets)
    while len(sets) > 1:
        i, j = np.triu_indices(len(sets), k=1)
        gain = value(sets[i] | sets[j]) - current[i] - current[j]
        best = int(np.argmax(gain))
        if len(sets) <= slots and gain[best] <= 0:
            break
        merged = sets[i[best]] | sets[j[best]]
        keep = np.ones(len(sets), dtype=bool)
        keep[[i[best], j[best]]] = False
        sets = np.vstack([sets[keep], merged])
        current = np.concatenate([current[keep], value(merged[None, :])])
    return np.argmax(sets, axis=0)


def _heuristic(instance: _Instance, largest: int, scale: float, *, restarts: int = _LOCAL_SEARCH_RESTARTS,
               seed: int = 0):
    """Local search over served sets, then the best combination of every set it met.

    Starts from greedy merging, then restarts alternately from random labellings and from random
    kicks of the best solution so far; each start is driven to a local optimum by `_local_search`.
    Every served set of every local optimum joins a pool, and a set-partitioning MILP over the pool
    picks the best at most k of them (never worse than the best local optimum). Unit costs only.
    `scale` bounds |score(t, g)|; infeasible sets are penalised far below any feasible total.
    Returns [(served mask, 0)].
    """
    n = instance.num_tasks
    slots = min(int(instance.budget), n)
    value = _penalised(instance, largest, penalty=1.0 + 10.0 * n * scale)
    rng = np.random.default_rng(seed)
    pool = {}

    def optimise(labels):
        labels = _local_search(labels, value, slots)
        sets = labels[None, :] == np.arange(slots)[:, None]
        sets = sets[sets.any(axis=1)]
        values = value(sets)
        pool.update(zip(masks_of(sets).tolist(), values.tolist()))
        return labels, float(values.sum())

    best, best_total = optimise(_agglomerate(value, n, slots))
    for restart in range(restarts):
        if restart % 2:
            start = rng.integers(0, slots, size=n)
        else:
            start = best.copy()
            moved = rng.choice(n, size=min(n, max(2, n // 8)), replace=False)
            start[moved] = rng.integers(0, slots, size=len(moved))
        labels, total = optimise(start)
        if total > best_total + 1e-12 * (1.0 + abs(best_total)):
            best, best_total = labels, total
    masks = np.array(list(pool), dtype=np.int64)
    values = np.array(list(pool.values()))
    feasible = np.isfinite(instance.values(members_of(masks, n))[0])
    columns = _Columns(masks[feasible], np.zeros(feasible.sum(), dtype=np.int64), values[feasible],
                       np.ones(feasible.sum()))
    chosen, total = None, -np.inf
    if feasible.any():
        chosen, total, _, _ = _milp(columns, n, float(slots), _POOL_MILP_SECONDS)
    logging.info("heuristic: %d restarts, pool of %d served sets, best local optimum %.6g, pool MILP %.6g",
                 restarts, len(masks), best_total, total)
    if chosen is not None and total >= best_total:
        return columns.served_sets(chosen)
    sets = best[None, :] == np.arange(slots)[:, None]
    sets = sets[sets.any(axis=1)]
    if not np.all(np.isfinite(instance.values(sets)[0])):
        raise RuntimeError("the heuristic found no feasible grouping; use method='exact'")
    return [(int(mask), 0) for mask in masks_of(sets)]
