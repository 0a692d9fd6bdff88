"""The exact MILP path (n <= 22): column generation, reduced-cost fixing, a HiGHS MILP.

The set-partitioning LP over served sets (each task covered once, total cost within the budget) is
solved by column generation, priced exactly over the ``2^n`` table. With its duals ``(y, mu)`` every
grouping scoring at least the incumbent ``LB`` uses only served sets whose reduced cost is at most
``UB - LB``; a MILP over those proves optimality.

>>> from tag_tf.selection.instance import _affinity_instance, _served_table
>>> a = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
>>> instance = _affinity_instance(a, np.zeros(3), 2, True, None)
>>> served, bound, proven = _solve_milp(instance, _served_table(instance), None, exact=True)
>>> sorted(served), round(bound, 6), proven     # served sets {0, 1} and {2}, total 2
([(3, 0), (4, 0)], 2.0, True)
"""

from __future__ import annotations

import dataclasses

import numpy as np
from absl import logging
from scipy import optimize, sparse

from tag_tf.selection.instance import _Instance
from tag_tf.selection.scores import members_of, subset_sums

_AUTO_MAX_FIXED_COLUMNS = 200_000
_AUTO_MILP_SECONDS = 30.0


@dataclasses.dataclass
class _Columns:
    """Served-set columns (mask, level) with their values and costs, for the LP and the MILP."""

    masks: np.ndarray
    levels: np.ndarray
    values: np.ndarray
    costs: np.ndarray

    def members(self, num_tasks: int) -> sparse.csr_matrix:
        return sparse.csr_matrix(members_of(self.masks, num_tasks).T.astype(float))

    def served_sets(self, index) -> list[tuple[int, int]]:
        return list(zip(self.masks[index].tolist(), self.levels[index].tolist()))

    def __add__(self, other: "_Columns") -> "_Columns":
        return _Columns(*(np.concatenate([getattr(self, f.name), getattr(other, f.name)])
                          for f in dataclasses.fields(self)))


def _columns(table: np.ndarray, costs: np.ndarray, flat_index: np.ndarray) -> _Columns:
    levels, masks = np.divmod(flat_index, table.shape[1])
    return _Columns(masks, levels, table[levels, masks], costs[levels])


def _master_lp(columns: _Columns, num_tasks: int, budget: float):
    """LP over the columns: max sum v x, each task covered once, total cost <= budget.

    Returns (LP value, y, mu) with the duals as a maximisation reads them (mu >= 0).
    """
    res = optimize.linprog(-columns.values, A_ub=columns.costs[None, :], b_ub=[budget],
                           A_eq=columns.members(num_tasks), b_eq=np.ones(num_tasks),
                           bounds=(0, None), method="highs")
    if res.status != 0:
        raise RuntimeError(f"column-generation master LP failed: {res.message}")
    return -res.fun, -res.eqlin.marginals, max(0.0, -res.ineqlin.marginals[0])


def _column_generation(table: np.ndarray, costs: np.ndarray, budget: float, seed: _Columns,
                       *, batch: int = 200, max_rounds: int = 1000):
    """LP relaxation over all served sets, priced exactly over `table`.

    Starts from `seed` plus one penalised artificial column per task (so the master is always
    feasible). Returns (bound, y, mu, generated columns): (y, mu) are adjusted so every reduced
    value is <= 0, which makes ``bound = sum(y) + budget * mu`` a proven upper bound.
    """
    n = table.shape[1].bit_length() - 1
    finite = table[np.isfinite(table)]
    penalty = 1.0 + 4.0 * n * (np.abs(finite).max() if finite.size else 1.0)
    artificial = _Columns(1 << np.arange(n), np.full(n, -1), np.full(n, -penalty), np.zeros(n))
    columns = seed
    best = (np.inf, None, None)
    for round_ in range(max_rounds):
        _, y, mu = _master_lp(artificial + columns, n, budget)
        reduced = table - subset_sums(y)[None, :] - costs[:, None] * mu
        worst = float(reduced.max())
        adjusted_mu = mu + max(worst, 0.0) / costs.min()
        bound = float(y.sum() + budget * adjusted_mu)
        if bound < best[0]:
            best = (bound, y, adjusted_mu)
        if worst <= 1e-9 * (1.0 + abs(bound)):
            break
        flat = reduced.ravel()
        take = min(batch, int((flat > 0).sum()))
        index = np.argpartition(-flat, take - 1)[:take]
        columns = columns + _columns(table, costs, index[flat[index] > 0])
    logging.info("column generation: %d rounds, %d columns, LP bound %.6g", round_ + 1,
                 len(columns.masks), best[0])
    return best[0], best[1], best[2], columns


def _milp(columns: _Columns, num_tasks: int, budget: float, time_limit: float | None):
    """Binary choice of columns covering each task once within budget: (chosen, value, bound, proven).

    `chosen` is None when no solution was found; `bound` is HiGHS' dual bound.
    """
    scale = max(1.0, float(np.abs(columns.values).max()))  # HiGHS' 1e-6 absolute gap, made relative
    constraints = optimize.LinearConstraint(
        sparse.vstack([columns.members(num_tasks), sparse.csr_matrix(columns.costs[None, :])]),
        np.concatenate([np.ones(num_tasks), [-np.inf]]), np.concatenate([np.ones(num_tasks), [budget]]))
    options = {"mip_rel_gap": 1e-9}
    if time_limit is not None:
        options["time_limit"] = time_limit
    res = optimize.milp(-columns.values / scale, integrality=np.ones(len(columns.values)),
                        bounds=optimize.Bounds(0, 1), constraints=constraints, options=options)
    if res.status == 2:  # infeasible
        return None, -np.inf, -np.inf, True
    bound = -res.mip_dual_bound * scale if res.mip_dual_bound is not None else np.inf
    if res.x is None:
        return None, -np.inf, bound, False
    chosen = np.flatnonzero(res.x > 0.5)
    return chosen, float(columns.values[chosen].sum()), bound, res.status == 0


def _meets(value: float, bound: float) -> bool:
    """Whether `value` reaches the proven `bound`, to the relative 1e-6 that optimality claims."""
    return value >= bound - 1e-6 * (1.0 + abs(bound))


def _solve_milp(instance: _Instance, table: np.ndarray, incumbent, *, exact: bool):
    """Column generation + reduced-cost fixing + MILP.

    `incumbent` is a list of (served mask, level) or None. Returns (served sets, bound, proven);
    served sets is None when nothing fits the budget. With ``exact=False`` the MILP is skipped
    when too many columns survive the fixing, and time-limited.
    """
    n, costs, budget = instance.num_tasks, instance.costs, instance.budget
    seed = _columns(table, costs, np.array([level * table.shape[1] + mask for mask, level in incumbent or []],
                                           dtype=np.int64))
    lower = float(seed.values.sum()) if incumbent else -np.inf
    bound, y, mu, generated = _column_generation(table, costs, budget, seed)
    if _meets(lower, bound):
        return incumbent, bound, True
    time_limit = None if exact else _AUTO_MILP_SECONDS
    chosen, value, _, _ = _milp(generated, n, budget, time_limit)  # price and branch: a quick incumbent
    if chosen is not None and value > lower:
        incumbent, lower = generated.served_sets(chosen), value
        if _meets(lower, bound):
            return incumbent, bound, True
    slack = (subset_sums(y)[None, :] + costs[:, None] * mu - table).ravel()
    keep = np.flatnonzero(np.isfinite(slack) & (slack <= bound - lower + 1e-6 * (1.0 + abs(bound))))
    logging.info("reduced-cost fixing: %d of %d served sets can beat %.6g (bound %.6g)",
                 len(keep), table.size, lower, bound)
    if not exact and len(keep) > _AUTO_MAX_FIXED_COLUMNS:
        return incumbent, bound, False
    fixed = _columns(table, costs, keep)
    chosen, value, milp_bound, proven = _milp(fixed, n, budget, time_limit)
    if chosen is not None and value > lower:
        incumbent, lower = fixed.served_sets(chosen), value
    if proven:
        return incumbent, lower, True
    return incumbent, min(bound, max(milp_bound, lower)), False
