"""A Lagrangian upper bound on the best total score, for instances too large for the LP (n > 22).

For duals ``y`` and ``mu >= 0`` with ``sum_{t in S} y_t + mu >= best(S)`` for every served set
``S``, ``sum(y) + k mu`` bounds the optimum. The pricing problem is relaxed by letting each task of a
size-``m`` group take its own ``m - 1`` best sources, and ``y`` is chosen by a small LP. The bound
is valid and close on block-structured matrices but loose (2-4x the score) on unstructured ones.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import optimize, sparse


def relaxed_upper_bound(matrix: np.ndarray, singleton: np.ndarray, num_groups: int, *,
                        overlap: bool = True, max_group_size: int | None = None) -> float:
    """A Lagrangian upper bound on the best total score with at most `num_groups` groups.

    For duals ``y`` (one per task) and ``mu >= 0`` with ``sum_{t in S} y_t + mu >= best(S)`` for every
    served set ``S``, ``sum(y) + k mu`` bounds the optimum (LP duality for the partition form). The
    pricing problem ``max_S best(S) - y(S)`` is relaxed: in a group of size ``m`` each task scores at
    most ``c_t(m)``, the mean of its ``m - 1`` largest incoming affinities ``A[o, t]`` (a column of
    ``A``), so ``mu >= max_m (sum of the m largest (c_t(m) - y_t)^+)`` suffices. With
    ``overlap=False`` the served set is the whole group, so exactly ``m`` terms count (no positive
    parts), and the group total is also the same with ``A`` replaced by ``(A + A.T) / 2``: both
    readings bound it and the smaller is taken. ``y`` is chosen by a small LP; the bound is then
    re-evaluated exactly at that ``y``. It is at most the trivial bound ``sum_t max_g score(t, g)``.

    >>> a = np.array([[0.0, 1.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0],
    ...               [0.0, 0.0, 0.0, 1.0], [0.0, 0.0, 1.0, 0.0]])
    >>> round(relaxed_upper_bound(a, np.zeros(4), 2), 6), round(relaxed_upper_bound(a, np.zeros(4), 1), 6)
    (4.0, 1.333333)
    """
    largest = len(matrix) if max_group_size is None else min(max_group_size, len(matrix))
    tables = [_best_incoming(matrix, singleton, largest)]
    if not overlap:
        tables.append(_best_incoming((matrix + matrix.T) / 2, singleton, largest))
    exact_size = not overlap
    return min(float(y.sum() + num_groups * _relaxed_pricing(tables, y, exact_size=exact_size))
               for y in (_relaxed_duals(table, num_groups, exact_size=exact_size) for table in tables))


def _best_incoming(matrix: np.ndarray, singleton: np.ndarray, largest: int) -> np.ndarray:
    """c_t(m): the most task t can score in a group of m tasks (m = 1 alone), shape (largest, n)."""
    n = len(matrix)
    incoming = np.sort(np.where(np.eye(n, dtype=bool), -np.inf, matrix), axis=0)[::-1]  # per column
    means = np.cumsum(incoming[: n - 1], axis=0) / np.arange(1, n)[:, None]
    return np.vstack([singleton[None, :], means])[:largest]


def _relaxed_duals(best_in: np.ndarray, num_groups: int, *, exact_size: bool) -> np.ndarray:
    """y minimising sum(y) + k max_m top_m(c(m) - y): an LP, using top_m(v) = min_l m l + sum (v - l)^+.

    Variables: y (free), mu >= 0, l_m (>= 0 when positive parts are taken, else free), s_{m,t} >= 0.
    """
    largest, n = best_in.shape
    rows = [(m, t) for m in range(largest) for t in range(n) if np.isfinite(best_in[m, t])]
    num_vars = n + 1 + largest + len(rows)
    objective = np.zeros(num_vars)
    objective[:n], objective[n] = 1.0, float(num_groups)
    a_ub = sparse.lil_matrix((largest + len(rows), num_vars))
    b_ub = np.zeros(largest + len(rows))
    for m in range(largest):  # (m + 1) l_m + sum_t s_{m,t} - mu <= 0
        a_ub[m, n] = -1.0
        a_ub[m, n + 1 + m] = m + 1
    for r, (m, t) in enumerate(rows):  # s_{m,t} >= c_t(m) - y_t - l_m
        a_ub[m, n + 1 + largest + r] = 1.0
        a_ub[largest + r, [t, n + 1 + m, n + 1 + largest + r]] = -1.0
        b_ub[largest + r] = -best_in[m, t]
    lambda_bounds = (None, None) if exact_size else (0, None)
    bounds = [(None, None)] * n + [(0, None)] + [lambda_bounds] * largest + [(0, None)] * len(rows)
    res = optimize.linprog(objective, A_ub=a_ub.tocsr(), b_ub=b_ub, bounds=bounds, method="highs")
    if res.status != 0:
        raise RuntimeError(f"relaxed bound LP failed: {res.message}")
    return res.x[:n]


def _relaxed_pricing(tables: Sequence[np.ndarray], y: np.ndarray, *, exact_size: bool) -> float:
    """max(0, max_m min over tables of top_m(c(m) - y)): bounds max_S best(S) - y(S) from above.

    Without `exact_size` the terms are positive parts (a served set may be smaller than its group).
    """
    per_size = []
    for best_in in tables:
        gains = best_in - y[None, :]
        if not exact_size:
            gains = np.maximum(gains, 0.0)
        top = np.cumsum(np.sort(gains, axis=1)[:, ::-1], axis=1)
        per_size.append(np.diagonal(top))  # size m + 1: the m + 1 largest
    return float(max(0.0, np.min(per_size, axis=0).max()))
