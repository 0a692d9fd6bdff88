"""The exact subset dynamic programme (n <= 15) over bitmasks and integer budget units ``b``:

    f_b(M) = max(f_{b-1}(M),  max over S in M with lowbit(M) in S, cost c:  best_c(S) + f_{b-c}(M - S)),

``O(B 3^n / 2)`` work, vectorised over all (mask, submask) pairs, every budget at once.

>>> from tag_tf.selection.instance import _affinity_instance, _served_table
>>> a = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
>>> instance = _affinity_instance(a, np.zeros(3), 2, True, None)
>>> sorted(_solve_dp(instance, _served_table(instance)))   # served sets {0, 1} and {2}
[(3, 0), (4, 0)]
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from tag_tf.selection.instance import _Instance


@functools.lru_cache(maxsize=2)
def _submask_pairs(num_tasks: int):
    """All (mask, submask) pairs whose submask holds the lowest bit of mask, grouped by mask.

    Returns (sub, rest = mask - sub, start of each mask 1..2^n-1's run), read-only.
    """
    masks = np.zeros(1, dtype=np.int32)
    subs = np.zeros(1, dtype=np.int32)
    for bit in range(num_tasks):  # bits in increasing order: a mask's first bit goes into sub
        started = masks != 0
        masks = np.concatenate([masks, masks[started] | (1 << bit), masks | (1 << bit)])
        subs = np.concatenate([subs, subs[started], subs | (1 << bit)])
    order = np.argsort(masks, kind="stable")[1:]  # drop the (0, 0) pair
    masks, subs = masks[order], subs[order]
    counts = 1 << (np.bitwise_count(np.arange(1, 1 << num_tasks)).astype(np.int64) - 1)
    starts = np.concatenate([np.zeros(1, dtype=np.int64), np.cumsum(counts)[:-1]])
    out = (subs, masks ^ subs, starts)
    for array in out:
        array.setflags(write=False)
    return out


def _submasks_with_lowbit(mask: int, num_tasks: int) -> np.ndarray:
    bits = [b for b in range(num_tasks) if mask >> b & 1]
    index = np.arange(1 << (len(bits) - 1))
    subs = np.full(len(index), 1 << bits[0], dtype=np.int64)
    for j, bit in enumerate(bits[1:]):
        subs |= ((index >> j) & 1) << bit
    return subs


def partition_dp(tables: np.ndarray, units: Sequence[int], budget: int) -> np.ndarray:
    """``f[b, M]``: the best total of served sets partitioning mask ``M`` within ``b`` budget units.

    `tables[level, S]` is ``best(S)`` with a network of cost ``units[level]`` (``-inf`` if none).

    >>> tables = np.array([[-np.inf, 1.0, 1.0, 3.0]])   # two tasks: apart 1 + 1, together 3
    >>> partition_dp(tables, [1], 2)[:, 3].tolist()
    [-inf, 3.0, 3.0]
    """
    size = tables.shape[1]
    subs, rest, starts = _submask_pairs(size.bit_length() - 1)
    f = np.full((budget + 1, size), -np.inf)
    f[:, 0] = 0.0
    gathered = [table[subs] for table in tables]
    for b in range(1, budget + 1):
        f[b] = f[b - 1]
        for level, unit in enumerate(units):
            if unit <= b:
                best = np.maximum.reduceat(gathered[level] + f[b - unit][rest], starts)
                np.maximum(f[b, 1:], best, out=f[b, 1:])
    return f


def _dp_served_sets(f: np.ndarray, tables: np.ndarray, units: Sequence[int], budget: int):
    """Walk `partition_dp`'s table back from the full mask: [(served mask, level), ...]."""
    num_tasks = tables.shape[1].bit_length() - 1
    mask, b, chosen = tables.shape[1] - 1, budget, []
    while mask:
        while b > 0 and f[b - 1, mask] == f[b, mask]:
            b -= 1
        subs = _submasks_with_lowbit(mask, num_tasks)
        best = (-np.inf, 0, 0)
        for level, unit in enumerate(units):
            if unit <= b:
                totals = tables[level][subs] + f[b - unit][mask ^ subs]
                i = int(np.argmax(totals))
                if totals[i] > best[0]:
                    best = (totals[i], int(subs[i]), level)
        _, sub, level = best
        chosen.append((sub, level))
        mask ^= sub
        b -= units[level]
    return chosen


def _budget_units(costs: np.ndarray, budget: float, max_denominator: int = 64):
    """Integer cost units and budget when all costs are multiples of a common unit, else None."""
    fractions = [Fraction(float(c)).limit_denominator(max_denominator) for c in costs]
    if any(abs(float(f) - c) > 1e-9 * max(1.0, c) for f, c in zip(fractions, costs)):
        return None
    denominator = math.lcm(*(f.denominator for f in fractions))
    units = [int(f * denominator) for f in fractions]
    return units, int(math.floor(budget * denominator + 1e-9))


def _solve_dp(instance: _Instance, table: np.ndarray):
    """Exact: [(served mask, level)] of an optimal partition, or None when none fits the budget."""
    units, budget = _budget_units(instance.costs, instance.budget)
    budget = min(budget, instance.num_tasks * max(units))  # never more than n served sets
    f = partition_dp(table, units, budget)
    if not np.isfinite(f[budget, -1]):
        return None
    return _dp_served_sets(f, table, units, budget)
