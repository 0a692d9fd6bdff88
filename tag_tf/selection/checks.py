"""Validation: clear errors before any work, naming the bad value and the valid choices.

>>> _check_choice("greedy", ("auto", "exact"), "method")
Traceback (most recent call last):
...
ValueError: method='greedy': expected one of ('auto', 'exact')
>>> _check_matrix([[0.0, float("nan")], [0.0, 0.0]])
Traceback (most recent call last):
...
ValueError: matrix[0, 1] = nan: every entry must be finite
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np


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
