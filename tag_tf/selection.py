"""Network selection: which groups of tasks to train, and which network serves each task.

The problem
-----------
The affinity matrix ``A[source, target]`` says how much one step on task ``source`` lowers the
loss of task ``target``. Selection reads the affinity *onto* a task, i.e. a column of ``A``: the
score of task ``t`` in a group ``g`` (a set of tasks trained together, ``t`` in ``g``) is

    score(t, g)   = mean of A[o, t] over the other members o of g      (|g| >= 2)
    score(t, {t}) = singleton[t]        (0, a given value, or forbidden)

Given a budget of ``k`` networks, choose at most ``k`` groups (they may overlap) that cover every
task; each task is served by the chosen group that scores it best; maximise the total of the served
scores. The official TAG notebook enumerates every set of up to ``k`` groups; HOA (Standley et al.
2020) instead minimises measured per-task losses of trained networks, each costing 1 (full size)
or 0.5 (half size) against a budget. Both are the same problem over *candidate groups*, each with
a per-task value vector and a cost, which is what the solvers here work on.

The reduction
-------------
Fix which tasks each chosen group *serves*: the served sets ``S_1 .. S_m`` partition the tasks,
``m <= k``, and ``S_i`` is a subset of its group ``g_i``. Once they are fixed the groups no longer
interact, so

    OPT(k)  = max over partitions {S_1 .. S_m}, m <= k, of  best(S_1) + ... + best(S_m)
    best(S) = max over groups g containing S (|g| <= max_group_size) of  sum_{t in S} score(t, g).

For affinity scores ``best(S)`` has a closed form. With ``g = S + R`` and ``|g| = m``,

    sum_{t in S} score(t, g) = (inner(S) + sum_{o in R} r_S[o]) / (m - 1),
    inner(S) = sum of A[o, t] over o != t in S,      r_S[o] = sum_{t in S} A[o, t],

so for each size ``m`` the best extra members ``R`` are the ``m - |S|`` largest entries of ``r_S``
outside ``S``: one sort per served set, ``O(2^n n log n)`` for the whole table. With
``overlap=False`` the group *is* the served set and ``best(S) = inner(S) / (|S| - 1)``. For
measured networks (``select_from_costs``) ``best_c(S)`` is the best candidate of cost ``c``
containing ``S``. One served set never needs two networks, so the partition view loses nothing.

Solvers
-------
``dp`` (exact, n <= 15): a subset dynamic programme over bitmasks and budget units ``b``,

    f_b(M) = max(f_{b-1}(M),  max over S in M with lowbit(M) in S, cost c:  best_c(S) + f_{b-c}(M - S)),

``O(B 3^n / 2)`` work, vectorised over all (mask, submask) pairs, every budget at once.

``milp`` (exact, n <= 22): the set-partitioning LP over served sets by column generation, priced
exactly over the ``2^n`` table, then reduced-cost fixing: with LP duals ``(y, mu)`` every grouping
scoring at least the incumbent ``LB`` uses only served sets whose reduced cost is at most
``UB - LB``, and a HiGHS MILP over those proves optimality.

``heuristic`` (any n): agglomerative merging, then local search over served sets (move one task,
swap two tasks) from random restarts and random kicks; a set-partitioning MILP then picks the best
at most k served sets among all those of every local optimum. Its ``upper_bound`` is the LP bound
above when the table fits (n <= 22), else a Lagrangian bound: for duals ``y`` and ``mu >= 0`` with
``sum_{t in S} y_t + mu >= best(S)`` for every ``S``, ``sum(y) + k mu`` bounds the optimum; the
pricing problem is relaxed by letting each task of a size-``m`` group take its own ``m - 1`` best
sources, and ``y`` is chosen by a small LP (`relaxed_upper_bound`). That bound is valid and close
on block-structured matrices but loose (2-4x the score) on unstructured ones; the gap is reported
as is, and ``optimal`` is True only when score and bound meet.

``method="auto"``: dp up to 15 tasks, milp up to 22 (falling back to the heuristic and its LP
bound when the MILP would be too large), the heuristic beyond.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import time
from collections.abc import Callable, Mapping, Sequence
from fractions import Fraction

import numpy as np
from absl import logging
from scipy import optimize, sparse

from tag_tf.io import read_json, write_json_atomic

METHODS = ("auto", "exact", "heuristic", "brute_force")
SINGLETON_POLICIES = ("zero", "forbid")
SENSES = ("maximize", "minimize")
DP_MAX_TASKS = 15  # (mask, submask) pairs: 3^15 / 2 = 7M
TABLE_MAX_TASKS = 22  # served-set table of 2^22 values
AUTO_EXACT_MAX_TASKS = 22  # beyond this `auto` runs the heuristic with a bound
BRUTE_FORCE_MAX_SETS = 50_000_000
_AUTO_MAX_FIXED_COLUMNS = 200_000
_AUTO_MILP_SECONDS = 30.0
_LOCAL_SEARCH_RESTARTS = 200
_POOL_MILP_SECONDS = 10.0


@dataclasses.dataclass(frozen=True)
class Grouping:
    """A selection of networks and the network serving each task.

    Attributes:
      groups: the chosen groups, each a tuple of task names in task order.
      assignment: task name -> index into `groups` of the group serving it.
      score: total served score (`select_groups`) or total loss (`select_from_costs`).
      optimal: True when `score` is proven optimal (to a relative 1e-6 for the MILP).
      upper_bound: a proven bound on the best achievable score: no grouping scores above it
        (for sense "minimize", no grouping's total loss is below it).
      method: the solver that produced it: "dp", "milp", "heuristic" or "brute_force".
      seconds: wall-clock time of the selection.
      budget: the number of networks (or the cost budget for `select_from_costs`).
      sense: "maximize" (affinity scores) or "minimize" (losses).

    >>> g = Grouping(groups=(("a", "b"), ("c",)), assignment={"a": 0, "b": 0, "c": 1},
    ...              score=1.5, optimal=True, upper_bound=1.5, method="dp", seconds=0.0, budget=2)
    >>> Grouping.from_json(g.to_json()) == g
    True
    >>> g.served_by("c")
    ('c',)
    """

    groups: tuple[tuple[str, ...], ...]
    assignment: dict[str, int]
    score: float
    optimal: bool
    upper_bound: float
    method: str
    seconds: float
    budget: float
    sense: str = "maximize"

    @property
    def gap(self) -> float:
        """Distance from `score` to `upper_bound` (0 when optimal)."""
        return abs(self.upper_bound - self.score)

    def served_by(self, task: str) -> tuple[str, ...]:
        """The group serving `task`."""
        return self.groups[self.assignment[task]]

    def to_json(self) -> dict:
        return {
            "groups": [list(g) for g in self.groups],
            "assignment": dict(self.assignment),
            "score": self.score,
            "optimal": self.optimal,
            "upper_bound": self.upper_bound,
            "method": self.method,
            "seconds": self.seconds,
            "budget": self.budget,
            "sense": self.sense,
        }

    @classmethod
    def from_json(cls, data: Mapping) -> "Grouping":
        groups = tuple(tuple(str(t) for t in g) for g in data["groups"])
        assignment = {str(t): int(i) for t, i in data["assignment"].items()}
        for task, index in assignment.items():
            if not 0 <= index < len(groups) or task not in groups[index]:
                raise ValueError(f"assignment {task!r} -> {index} does not name a group holding {task!r}")
        sense = _check_choice(data.get("sense", "maximize"), SENSES, "sense")
        return cls(groups=groups, assignment=assignment, score=float(data["score"]),
                   optimal=bool(data["optimal"]), upper_bound=float(data["upper_bound"]),
                   method=str(data["method"]), seconds=float(data["seconds"]),
                   budget=data["budget"], sense=sense)


def save_selection(path: str, tasks: Sequence[str], groupings: Sequence[Grouping]) -> None:
    """Write `selection.json` atomically: ``{"tasks": [...], "selections": [grouping, ...]}``.

    >>> import os, tempfile
    >>> g = select_groups([[0.0, 1.0], [1.0, 0.0]], 1, tasks=["a", "b"])
    >>> path = os.path.join(tempfile.mkdtemp(), "selection.json")
    >>> save_selection(path, ["a", "b"], [g])
    >>> load_selection(path)[1][0].groups
    (('a', 'b'),)
    """
    write_json_atomic(path, {"tasks": list(tasks), "selections": [g.to_json() for g in groupings]})


def load_selection(path: str) -> tuple[list[str], list[Grouping]]:
    """Read a `selection.json` written by `save_selection`: (tasks, groupings).

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "selection.json")
    >>> save_selection(path, ["a"], [select_groups([[0.0]], 1, tasks=["a"])])
    >>> tasks, groupings = load_selection(path)
    >>> tasks, groupings[0].assignment
    (['a'], {'a': 0})
    """
    data = read_json(path)
    return list(data["tasks"]), [Grouping.from_json(g) for g in data["selections"]]


# ----------------------------------------------------------------------------------------------
# The math: pure functions over bitmasks and membership matrices.


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


# ----------------------------------------------------------------------------------------------
# The solver core: candidate networks seen through their served-set values.


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


def _brute_force(instance: _Instance, largest: int, overlap: bool):
    """Every set of at most k allowed groups, as the official TAG notebook does (no pruning)."""
    n, k = instance.num_tasks, int(instance.budget)
    masks = np.arange(1, 1 << n)
    masks = masks[np.bitwise_count(masks) <= largest]
    members = members_of(masks, n)
    scores = instance.scores(members)
    count = sum(math.comb(len(masks), j) for j in range(1, min(k, len(masks)) + 1))
    if count > BRUTE_FORCE_MAX_SETS:
        raise ValueError(f"method='brute_force' would enumerate {count} sets of groups "
                         f"(limit {BRUTE_FORCE_MAX_SETS}); use method='exact' or 'auto'")
    best, best_total = None, -np.inf
    for j in range(1, min(k, len(masks)) + 1):
        combos = itertools.combinations(range(len(masks)), j)
        while chunk := list(itertools.islice(combos, 200_000)):
            index = np.array(chunk)
            totals = scores[index].max(axis=1).sum(axis=1)
            if not overlap:
                totals = np.where((members[index].sum(axis=1) == 1).all(axis=1), totals, -np.inf)
            i = int(np.argmax(totals))
            if totals[i] > best_total:
                best, best_total = [int(m) for m in masks[index[i]]], totals[i]
    return best


def _finish(instance: _Instance, groups: np.ndarray, names: Sequence[str], *, method: str,
            bound: float, optimal: bool, start: float, sense: str, budget) -> Grouping:
    """Serve every task from its best chosen group; drop groups serving nobody; name everything."""
    groups = np.unique(groups, axis=0)
    groups = groups[np.lexsort(groups.T[::-1])[::-1]]  # task order: the group holding task 0 first
    scores = instance.scores(groups)
    serving = np.argmax(scores, axis=0)
    used = np.unique(serving)
    groups, scores = groups[used], scores[used]
    serving = np.searchsorted(used, serving)
    total = float(scores[serving, np.arange(len(names))].sum())
    if not np.isfinite(total):
        raise RuntimeError("internal error: a task is left without a group")
    sign = 1.0 if sense == "maximize" else -1.0
    if optimal:
        bound = total
    return Grouping(
        groups=tuple(tuple(names[t] for t in np.flatnonzero(g)) for g in groups),
        assignment={name: int(i) for name, i in zip(names, serving)},
        score=sign * total, optimal=optimal, upper_bound=sign * max(bound, total), method=method,
        seconds=time.perf_counter() - start, budget=budget, sense=sense)


def _groups_of(instance: _Instance, served_sets) -> np.ndarray:
    return np.array([instance.group(mask, level) for mask, level in served_sets])


# ----------------------------------------------------------------------------------------------
# Public entry points.


def select_groups(matrix, num_groups: int, *, tasks: Sequence[str] | None = None, overlap: bool = True,
                  singleton="zero", max_group_size: int | None = None, method: str = "auto") -> Grouping:
    """Choose at most `num_groups` groups covering every task, maximising the total served score.

    `matrix` is the affinity ``A[source, target]``; a task's score in a group is the mean of its
    column ``A[o, t]`` over the other members ``o``. Each task is served by the chosen group that
    scores it best. See the module docstring for the reduction and the solvers.

    Args:
      matrix: square (n, n) affinity matrix ``A[source, target]``, finite.
      num_groups: the budget k, at least 1 (at most k groups are used).
      tasks: task names in matrix order; default "task_0" .. "task_{n-1}".
      overlap: allow a task in several groups (it is served by its best one); False partitions.
      singleton: score of a task alone in its group: "zero", "forbid" (never alone, like the
        paper's -1e6), a float, or one float per task.
      max_group_size: largest group allowed; None for no limit.
      method: "auto" (exact up to 22 tasks, else the heuristic), "exact" (dp up to 15 tasks, milp
        up to 22), "heuristic" (any size, with a proven bound) or "brute_force" (every set of up to
        k groups, as the TAG notebook; small n only).

    >>> a = np.array([[0.0, 0.9, 0.1, 0.0],     # rows: source, columns: target
    ...               [0.8, 0.0, 0.0, 0.1],
    ...               [0.0, 0.1, 0.0, 0.7],
    ...               [0.1, 0.0, 0.6, 0.0]])
    >>> g = select_groups(a, 2, tasks=["a", "b", "c", "d"])
    >>> g.groups, g.assignment["c"], round(g.score, 6), g.optimal
    ((('a', 'b'), ('c', 'd')), 1, 3.0, True)
    """
    start = time.perf_counter()
    matrix = _check_matrix(matrix)
    n = len(matrix)
    names = _check_tasks(tasks, n)
    k = _check_positive_int(num_groups, "num_groups")
    alone = singleton_scores(singleton, n)
    largest = n if max_group_size is None else min(_check_positive_int(max_group_size, "max_group_size"), n)
    method = _check_choice(method, METHODS, "method")
    _check_feasible(n, k, largest, overlap, forbid=bool(np.isneginf(alone).any()))
    if method == "exact" and n > TABLE_MAX_TASKS:
        raise ValueError(f"method='exact' supports up to {TABLE_MAX_TASKS} tasks, got {n}; "
                         f"use method='heuristic' or 'auto'")
    instance = _affinity_instance(matrix, alone, k, overlap, largest)
    if method == "brute_force":
        masks = _brute_force(instance, largest, overlap)
        return _finish(instance, members_of(np.array(masks), n), names, method="brute_force",
                       bound=0.0, optimal=True, start=start, sense="maximize", budget=k)
    if method != "heuristic" and n <= DP_MAX_TASKS:
        served = _solve_dp(instance, _served_table(instance))
        return _finish(instance, _groups_of(instance, served), names, method="dp", bound=0.0,
                       optimal=True, start=start, sense="maximize", budget=k)
    if method == "auto" and n > AUTO_EXACT_MAX_TASKS:
        method = "heuristic"
    scale = max(np.abs(matrix).max(), np.abs(alone[np.isfinite(alone)]).max(initial=0.0))
    served = _heuristic(instance, largest, scale=float(scale))
    if n > TABLE_MAX_TASKS:
        bound = instance.relaxed_bound()
    else:
        table = _served_table(instance)
        if method != "heuristic":
            served, bound, optimal = _solve_milp(instance, table, served, exact=method == "exact")
            return _finish(instance, _groups_of(instance, served), names, bound=bound, optimal=optimal,
                           method="milp" if optimal else "heuristic", start=start, sense="maximize", budget=k)
        bound = _column_generation(table, instance.costs, instance.budget,
                                   _columns(table, instance.costs, np.array([m for m, _ in served])))[0]
    value = float(instance.values(members_of(np.array([m for m, _ in served]), n))[0].sum())
    return _finish(instance, _groups_of(instance, served), names, method="heuristic", bound=bound,
                   optimal=_meets(value, bound), start=start, sense="maximize", budget=k)


def select_from_costs(results: Mapping[Sequence[str], Mapping[str, float]], budget: float,
                      network_cost: Mapping[Sequence[str], float] | None = None, *,
                      tasks: Sequence[str] | None = None) -> Grouping:
    """HOA-style selection from trained networks: minimise the total per-task loss within a budget.

    Every candidate network is a group of tasks with a measured loss (or error) for each of them.
    Choose networks of total cost at most `budget` covering every task; each task is served by its
    lowest-loss chosen network; minimise the sum. Always exact (same core as `select_groups`).

    Args:
      results: group (tuple of task names) -> {task: loss} for exactly the group's tasks.
      budget: the most the chosen networks may cost in total.
      network_cost: group -> cost; groups not listed cost 1.0 (HOA uses 0.5 for half-size networks).
      tasks: all task names in order; default: order of first appearance in `results`.

    >>> results = {("a", "b"): {"a": 0.30, "b": 0.30}, ("a",): {"a": 0.20}, ("b",): {"b": 0.25}}
    >>> g = select_from_costs(results, budget=1.0, network_cost={("a",): 0.5, ("b",): 0.5})
    >>> g.groups, round(g.score, 6), g.sense
    ((('a',), ('b',)), 0.45, 'minimize')
    >>> select_from_costs(results, budget=1.0).groups    # two full networks would cost 2
    (('a', 'b'),)
    """
    start = time.perf_counter()
    groups, losses = _check_results(results)
    names = _check_cost_tasks(tasks, groups)
    n = len(names)
    if n > TABLE_MAX_TASKS:
        raise ValueError(f"select_from_costs supports up to {TABLE_MAX_TASKS} tasks, got {n}")
    costs = _check_costs(network_cost, groups)
    budget = _check_budget(budget, costs)
    index = {name: t for t, name in enumerate(names)}
    members = np.zeros((len(groups), n), dtype=bool)
    values = np.zeros((len(groups), n))
    for g, (group, loss) in enumerate(zip(groups, losses)):
        for task in group:
            members[g, index[task]] = True
            values[g, index[task]] = -loss[task]
    level_costs, levels = np.unique(costs, return_inverse=True)
    instance = _candidate_instance(members, values, levels, level_costs, budget)
    table = _served_table(instance)
    units = _budget_units(level_costs, budget)
    if n <= DP_MAX_TASKS and units is not None and units[1] <= 64 * n:
        served, bound, optimal, method = _solve_dp(instance, table), 0.0, True, "dp"
    else:
        (served, bound, optimal), method = _solve_milp(instance, table, None, exact=True), "milp"
    if served is None:
        raise ValueError(f"budget={budget!r}: no set of networks within it covers every task "
                         f"(network costs range {level_costs.min()}..{level_costs.max()}, "
                         f"all {len(groups)} cost {costs.sum()})")
    return _finish(instance, _groups_of(instance, served), names, method=method, bound=bound,
                   optimal=optimal, start=start, sense="minimize", budget=budget)


# ----------------------------------------------------------------------------------------------
# Validation: clear errors before any work.


def _check_choice(value, choices, name):
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}={value!r}: expected one of {choices}")
    return value


def _check_positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name}={value!r}: expected an integer >= 1")
    return int(value)


def _check_matrix(matrix) -> np.ndarray:
    try:
        a = np.array(matrix, dtype=float)
    except (TypeError, ValueError) as e:
        raise ValueError(f"matrix: expected a square (n, n) array of numbers ({e})") from None
    if a.ndim != 2 or a.shape[0] != a.shape[1] or a.shape[0] == 0:
        raise ValueError(f"matrix has shape {a.shape}: expected a square (n, n) array, n >= 1")
    if not np.all(np.isfinite(a)):
        bad = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
        raise ValueError(f"matrix[{bad[0]}, {bad[1]}] = {a[bad]}: every entry must be finite")
    return a


def _check_tasks(tasks, n) -> tuple[str, ...]:
    if tasks is None:
        return tuple(f"task_{i}" for i in range(n))
    if isinstance(tasks, str):
        raise ValueError(f"tasks={tasks!r}: expected a sequence of {n} task names, not one string")
    names = tuple(tasks)
    if len(names) != n:
        raise ValueError(f"tasks has {len(names)} names {list(names)} but the matrix has {n} rows")
    for name in names:
        if not isinstance(name, str) or not name:
            raise ValueError(f"task name {name!r}: expected a non-empty string")
    duplicates = sorted({t for t in names if names.count(t) > 1})
    if duplicates:
        raise ValueError(f"duplicate task names {duplicates} in tasks={list(names)}")
    return names


def _check_feasible(n, k, largest, overlap, forbid):
    needed = -(-n // largest)
    if needed > k:
        raise ValueError(f"num_groups={k} with max_group_size={largest} cannot cover {n} tasks: "
                         f"need num_groups >= {needed} (or a larger max_group_size)")
    if forbid and (n < 2 or largest < 2):
        raise ValueError(f"singleton='forbid' needs groups of at least 2 tasks, but n={n} and "
                         f"max_group_size={largest}; use singleton='zero' or a float")
    if forbid and not overlap and 2 * needed > n:
        raise ValueError(f"singleton='forbid' with overlap=False: {n} tasks cannot be split into at "
                         f"most {k} disjoint groups of 2..{largest} tasks")


def _check_results(results):
    if not isinstance(results, Mapping) or not results:
        raise ValueError(f"results={results!r}: expected a non-empty mapping group -> {{task: loss}}")
    groups, losses = [], []
    for group, loss in results.items():
        if isinstance(group, str) or not isinstance(group, Sequence) or not group:
            raise ValueError(f"results key {group!r}: expected a non-empty tuple of task names")
        group = tuple(group)
        if len(set(group)) != len(group):
            raise ValueError(f"results key {group!r} names a task twice")
        if not isinstance(loss, Mapping) or set(loss) != set(group):
            got = sorted(loss) if isinstance(loss, Mapping) else loss
            raise ValueError(f"results[{group!r}] has losses for {got}; expected exactly {list(group)}")
        for task, value in loss.items():
            if isinstance(value, bool) or not np.isfinite(float(value)):
                raise ValueError(f"results[{group!r}][{task!r}] = {value!r}: expected a finite number")
        if frozenset(group) in {frozenset(g) for g in groups}:
            raise ValueError(f"results key {group!r} repeats the tasks of another key")
        groups.append(group)
        losses.append({task: float(value) for task, value in loss.items()})
    return groups, losses


def _check_cost_tasks(tasks, groups):
    seen = tuple(dict.fromkeys(t for g in groups for t in g))
    if tasks is None:
        return seen
    names = _check_tasks(tasks, len(tuple(tasks)))
    unknown = [t for t in seen if t not in names]
    if unknown:
        raise ValueError(f"results name tasks {unknown} that are not in tasks={list(names)}")
    uncovered = [t for t in names if t not in seen]
    if uncovered:
        raise ValueError(f"tasks {uncovered} are in no network of results; every task needs one")
    return names


def _check_costs(network_cost, groups) -> np.ndarray:
    if network_cost is None:
        return np.ones(len(groups))
    if not isinstance(network_cost, Mapping):
        raise ValueError(f"network_cost={network_cost!r}: expected a mapping group -> cost")
    known = set(groups)
    for group, cost in network_cost.items():
        if tuple(group) not in known:
            raise ValueError(f"network_cost names group {tuple(group)!r}, which is not in results "
                             f"(valid: {sorted(known)})")
        if isinstance(cost, bool) or not np.isfinite(float(cost)) or float(cost) <= 0:
            raise ValueError(f"network_cost[{tuple(group)!r}] = {cost!r}: expected a finite cost > 0")
    costs = {tuple(g): float(c) for g, c in network_cost.items()}
    return np.array([costs.get(g, 1.0) for g in groups])


def _check_budget(budget, costs) -> float:
    if isinstance(budget, bool) or not isinstance(budget, (int, float, np.integer, np.floating)) \
            or not np.isfinite(budget):
        raise ValueError(f"budget={budget!r}: expected a finite number")
    if budget < costs.min():
        raise ValueError(f"budget={budget!r} is below the cheapest network's cost {costs.min()}: "
                         f"no grouping can meet it")
    return float(budget)
