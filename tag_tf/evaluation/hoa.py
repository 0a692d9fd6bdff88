"""HOA (Standley et al. 2020), "higher-order approximation": train every single task and every
pair, estimate every larger group's per-task validation loss from the pairs, and choose groups
from those estimates.

    loss(t in g) ≈ mean over the other members o of g of loss(t trained with o)     (|g| >= 2)
    loss(t alone) = its single-task network's loss

Selection then minimises the total estimated loss within the budget
(`tag_tf.selection.select_from_costs`); the chosen groups are trained and measured like TAG's.

>>> networks(["a", "b", "c"])
[('a',), ('b',), ('c',), ('a', 'b'), ('a', 'c'), ('b', 'c')]
>>> losses = {("a",): {"a": 1.0}, ("b",): {"b": 1.0}, ("a", "b"): {"a": 0.5, "b": 0.7}}
>>> estimates(["a", "b"], losses)[("a", "b")]
{'a': 0.5, 'b': 0.7}
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Mapping, Sequence

import numpy as np

from tag_tf.selection import Grouping, select_from_costs

MAX_TASKS = 16


def networks(tasks: Sequence[str]) -> list[tuple[str, ...]]:
    """The networks HOA trains to choose from: every single task, then every pair."""
    return [(t,) for t in tasks] + [(a, b) for i, a in enumerate(tasks) for b in tasks[i + 1:]]


def estimates(tasks: Sequence[str], losses: Mapping[tuple[str, ...], Mapping[str, float]]) -> dict:
    """{group: {task: estimated loss}} for every non-empty subset of the tasks, from `losses`:
    {network of `networks(tasks)`: {task: its validation loss in that network}}."""
    if len(tasks) > MAX_TASKS:
        raise ValueError(f"HOA scores every subset of the tasks: at most {MAX_TASKS} tasks, got {len(tasks)}.")
    pair_loss = {}
    for group in networks(tasks):
        for t in group:
            pair_loss[(t,) + tuple(o for o in group if o != t)] = losses[group][t]
    result = {}
    for size in range(1, len(tasks) + 1):
        for group in itertools.combinations(tasks, size):
            result[group] = {t: pair_loss[(t,)] if size == 1 else
                             float(np.mean([pair_loss[(t, o)] for o in group if o != t])) for t in group}
    return result


def choose(tasks: Sequence[str], losses: Mapping[tuple[str, ...], Mapping[str, float]], budgets: Sequence[int],
           training_seconds: float = 0.0) -> list[tuple[str, Grouping]]:
    """("hoa_k<k>", HOA's grouping) for every budget k; its seconds are `training_seconds` (of the
    single and pair networks) plus the solver's.

    >>> losses = {("a",): {"a": 1.0}, ("b",): {"b": 1.0}, ("a", "b"): {"a": 0.5, "b": 0.7}}
    >>> [(name, g.groups) for name, g in choose(["a", "b"], losses, budgets=[1, 2])]
    [('hoa_k1', (('a', 'b'),)), ('hoa_k2', (('a', 'b'),))]
    """
    scores = estimates(tasks, losses)
    choices = []
    for k in budgets:
        grouping = select_from_costs(scores, budget=k, tasks=list(tasks))
        choices.append((f"hoa_k{k}", dataclasses.replace(grouping, seconds=training_seconds + grouping.seconds)))
    return choices
