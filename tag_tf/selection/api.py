"""The entry points: `select_groups` (affinity), `select_from_costs` (measured networks, HOA),
`select_from_affinity` (a run's `TaskAffinity`, pairs without samples taken as 0, each grouping
with its bootstrap stability) and `select_from_group_lookahead` (groups scored from their measured
lookahead, `AffinityConfig(mode="group_lookahead")`).

Which solver runs: ``method="auto"`` uses the subset DP up to 15 tasks, the MILP up to 22 (falling
back to the heuristic and its LP bound when the MILP would be too large), the heuristic beyond
(with the Lagrangian bound). ``optimal`` is True only when the score meets a proven bound.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence

import numpy as np
from absl import logging

from tag_tf.selection.brute_force import _brute_force
from tag_tf.selection.checks import (_check_budget, _check_choice, _check_cost_tasks, _check_costs,
                                     _check_feasible, _check_matrix, _check_positive_int,
                                     _check_results, _check_tasks)
from tag_tf.selection.dp import _budget_units, _solve_dp
from tag_tf.selection.heuristic import _heuristic
from tag_tf.selection.instance import _affinity_instance, _candidate_instance, _Instance, _served_table
from tag_tf.selection.milp import _column_generation, _columns, _meets, _solve_milp
from tag_tf.selection.result import SENSES, Grouping
from tag_tf.selection.scores import measured_group_scores, members_of, singleton_scores
from tag_tf.selection.stability import group_lookahead_stability, stability

METHODS = ("auto", "exact", "heuristic", "brute_force")
DP_MAX_TASKS = 15  # (mask, submask) pairs: 3^15 / 2 = 7M
TABLE_MAX_TASKS = 22  # served-set table of 2^22 values
AUTO_EXACT_MAX_TASKS = 22  # beyond this `auto` runs the heuristic with a bound


def select_groups(matrix, num_groups: int, *, tasks: Sequence[str] | None = None, overlap: bool = True,
                  singleton="zero", max_group_size: int | None = None, method: str = "auto") -> Grouping:
    """Choose at most `num_groups` groups covering every task, maximising the total served score.

    `matrix` is the affinity ``A[source, target]``; a task's score in a group is the mean of its
    column ``A[o, t]`` over the other members ``o``. Each task is served by the chosen group that
    scores it best. See `tag_tf.selection` for the reduction and the solvers.

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
                      tasks: Sequence[str] | None = None, sense: str = "minimize") -> Grouping:
    """HOA-style selection from trained networks: minimise the total per-task loss within a budget.

    Every candidate network is a group of tasks with a measured loss (or error) for each of them.
    Choose networks of total cost at most `budget` covering every task; each task is served by its
    lowest-loss chosen network; minimise the sum. Always exact (same core as `select_groups`).
    With ``sense="maximize"`` the values are scores (higher is better; each task is served by its
    best chosen network, and the total is maximised).

    Args:
      results: group (tuple of task names) -> {task: loss} for exactly the group's tasks.
      budget: the most the chosen networks may cost in total.
      network_cost: group -> cost; groups not listed cost 1.0 (HOA uses 0.5 for half-size networks).
      tasks: all task names in order; default: order of first appearance in `results`.
      sense: "minimize" (losses) or "maximize" (scores).

    >>> results = {("a", "b"): {"a": 0.30, "b": 0.30}, ("a",): {"a": 0.20}, ("b",): {"b": 0.25}}
    >>> g = select_from_costs(results, budget=1.0, network_cost={("a",): 0.5, ("b",): 0.5})
    >>> g.groups, round(g.score, 6), g.sense
    ((('a',), ('b',)), 0.45, 'minimize')
    >>> select_from_costs(results, budget=1.0).groups    # two full networks would cost 2
    (('a', 'b'),)
    """
    start = time.perf_counter()
    sign = -1.0 if _check_choice(sense, SENSES, "sense") == "minimize" else 1.0
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
            values[g, index[task]] = sign * loss[task]
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
                   optimal=optimal, start=start, sense=sense, budget=budget)


def select_from_group_lookahead(affinity, num_groups: int, *, singleton: float = 0.0, resamples: int = 100,
                                seed: int = 0) -> Grouping:
    """Choose at most `num_groups` groups from the candidate groups whose lookahead was measured
    (`AffinityConfig(mode="group_lookahead")`), scoring each from measurement instead of from the
    pairwise averages of `select_groups`; every other task may only be served alone. When the
    affinity keeps blocks of its samples, the pairs' and the groups' (``blocks``, ``group_blocks``),
    the grouping's ``stability`` is the share of `resamples` bootstrap resamples (seeded by `seed`)
    that select it again (`tag_tf.selection.stability.group_lookahead_stability`).

    `affinity`: a `TaskAffinity` (or anything with ``tasks``, ``matrix`` [source, target] and
    ``group_affinity`` {group: {member: Z[G→member]}}); the score of task t in measured group G is
    `measured_group_scores`' (Z[G→t] − A[t, t]) / (|G| − 1), a task alone scores `singleton` (0,
    like `select_groups`' default). Candidate groups with a member without samples are left out
    (with a warning). Exact, by `select_from_costs` (maximising, every network costing 1).

    >>> from types import SimpleNamespace
    >>> affinity = SimpleNamespace(tasks=("a", "b", "c"), matrix=np.diag([1.0, 1.0, 1.0]),
    ...     group_affinity={("a", "b"): {"a": 1.5, "b": 1.5}, ("a", "c"): {"a": 1.25, "c": 0.5},
    ...                     ("a", "b", "c"): {"a": 1.75, "b": 1.25, "c": 1.5}})
    >>> select_from_group_lookahead(affinity, 1).groups      # scores a 0.375, b 0.125, c 0.25
    (('a', 'b', 'c'),)
    >>> g = select_from_group_lookahead(affinity, 2)         # a and b score 0.5 each in {a, b}
    >>> g.groups, g.assignment, g.score
    ((('a', 'b', 'c'), ('a', 'b')), {'a': 1, 'b': 1, 'c': 0}, 1.25)
    """
    k = _check_positive_int(num_groups, "num_groups")

    def select(measured):
        return _select_measured_groups(measured, k, singleton)

    chosen = select(affinity)
    return dataclasses.replace(chosen, stability=group_lookahead_stability(affinity, chosen, select, resamples, seed))


def _select_measured_groups(affinity, k: int, singleton: float) -> Grouping:
    """`select_from_group_lookahead`'s choice, without its stability."""
    tasks = list(affinity.tasks)
    scores = measured_group_scores(affinity.group_affinity, affinity.matrix, tasks)
    incomplete = [g for g, values in scores.items() if not all(np.isfinite(v) for v in values.values())]
    if incomplete:
        logging.warning("candidate groups with a member without samples are left out: %s", incomplete)
    results = {(t,): {t: float(singleton)} for t in tasks}
    results.update({g: values for g, values in scores.items() if g not in incomplete and len(g) > 1})
    check_group_budget(k, max(len(g) for g in results), len(tasks))
    return select_from_costs(results, budget=k, tasks=tasks, sense="maximize")


def check_group_budget(num_groups: int, largest: int, num_tasks: int) -> None:
    """ValueError unless `num_groups` measured groups of at most `largest` tasks can cover
    `num_tasks` tasks (what `select_from_group_lookahead` needs; the pipeline checks it before any
    training).

    >>> check_group_budget(2, 3, 9)
    Traceback (most recent call last):
    ...
    ValueError: num_groups=2: 2 of the measured groups (at most 3 tasks each) cannot cover the 9 tasks; measure larger groups or allow more networks
    """
    if num_groups * largest < num_tasks:
        raise ValueError(f"num_groups={num_groups}: {num_groups} of the measured groups (at most {largest} tasks "
                         f"each) cannot cover the {num_tasks} tasks; measure larger groups or allow more networks")


def select_from_affinity(affinity, num_groups: Sequence[int], *, resamples: int = 100, seed: int = 0,
                         **options) -> list[Grouping]:
    """`select_groups` for every budget in `num_groups`, on a measured affinity with gaps, each
    grouping with its stability.

    `affinity` is a `tag_tf.affinity.TaskAffinity` or anything with ``tasks`` (names) and ``matrix``
    (float ``A[source, target]``; a task reads its column). NaN marks a pair without a sample (JSON
    ``null`` in `affinity.json`): those pairs are named in a warning and taken as 0. `options` go to
    `select_groups`: overlap, singleton, max_group_size, method. When the affinity keeps blocks of
    its samples (``blocks``, ``block_counts``), every grouping's ``stability`` is the share of
    `resamples` bootstrap resamples (seeded by `seed`) that select it again
    (`tag_tf.selection.stability`; each resample costs one more selection per budget).

    >>> from types import SimpleNamespace
    >>> nan = float("nan")
    >>> affinity = SimpleNamespace(tasks=("a", "b", "c", "d"),
    ...                            matrix=np.array([[0.0, 0.9, 0.1, nan],   # rows: source
    ...                                             [0.8, 0.0, 0.0, 0.1],
    ...                                             [0.0, 0.1, 0.0, 0.7],
    ...                                             [0.1, 0.0, 0.6, 0.0]]))
    >>> [g.groups for g in select_from_affinity(affinity, [1, 2])]   # warns: ('a', 'd') taken as 0
    [(('a', 'b', 'c', 'd'),), (('a', 'b'), ('c', 'd'))]
    """
    if isinstance(num_groups, (int, str)) or not isinstance(num_groups, Sequence) or not num_groups:
        raise ValueError(f"num_groups={num_groups!r}: expected a non-empty sequence of budgets, e.g. [2, 3]")
    tasks = list(affinity.tasks)
    matrix = np.array(affinity.matrix, dtype=float)
    if matrix.shape != (len(tasks), len(tasks)):
        raise ValueError(f"affinity.matrix has shape {matrix.shape} but affinity.tasks names {len(tasks)} "
                         f"tasks {tasks}: expected ({len(tasks)}, {len(tasks)}) [source, target]")
    missing = np.isnan(matrix)
    if missing.any():
        logging.warning("affinity pairs (source, target) without samples (NaN) are taken as 0: %s",
                        [(str(tasks[s]), str(tasks[t])) for s, t in zip(*np.nonzero(missing))])
        matrix = np.where(missing, 0.0, matrix)
    groupings = []
    for k in num_groups:
        def select(m, k=k):
            return select_groups(m, k, tasks=tasks, **options)

        chosen = select(matrix)
        groupings.append(dataclasses.replace(chosen, stability=stability(affinity, chosen, select, resamples, seed)))
    return groupings


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
