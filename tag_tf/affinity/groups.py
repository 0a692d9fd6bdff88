"""Group lookahead (`AffinityConfig(mode="group_lookahead")`): the lookahead on the summed loss of
candidate groups of tasks, as the official TAG code's higher-order option. Pure functions.

For a candidate group G the lookahead step is the optimizer's step on Σ_{i in G} L_i, whose
gradient is the sum of the members' per-task gradients (already taken for the pairwise
lookaheads): each group costs one lookahead forward and no extra backward pass.

    g_G    = Σ_{i in G} ∇θs L_i                       (membership [groups, tasks] @ per-task gradients)
    Δ_G    = the optimizer's step from g_G            (`tag_tf.affinity.lookahead`)
    Z[G→j] = 1 − L_j(θs − Δ_G) / L_j(θs)              for j in G (divided by lr, like exact)

A one-task group's Z[{j}→j] is the pairwise A[j, j]. Selection scores a measured group from
Z[G→j] − A[j, j], the gain onto j from training with the others
(`tag_tf.selection.select_from_group_lookahead`).

>>> candidate_groups(AffinityConfig(mode="group_lookahead", max_group_size=2), ["a", "b", "c"])
(('a', 'b'), ('a', 'c'), ('b', 'c'))
>>> membership((("a", "c"),), ["a", "b", "c"]).tolist()
[[True, False, True]]
"""

from __future__ import annotations

import itertools
import math
from typing import Sequence

import numpy as np

from tag_tf.affinity.config import MAX_GROUP_LOOKAHEADS, AffinityConfig


def candidate_groups(config: AffinityConfig, tasks: Sequence[str]) -> tuple[tuple[str, ...], ...]:
    """The groups `config` measures, each in the model's task order: `config.groups`, or every
    group of 2 to `config.max_group_size` tasks. ValueError for an unknown task name or more than
    `MAX_GROUP_LOOKAHEADS` groups.

    >>> candidate_groups(AffinityConfig(mode="group_lookahead", groups=[["c", "a"]]), ["a", "b", "c"])
    (('a', 'c'),)
    >>> candidate_groups(AffinityConfig(mode="group_lookahead", max_group_size=5), [f"t{i}" for i in range(12)])
    Traceback (most recent call last):
    ...
    ValueError: mode='group_lookahead' would measure 1573 groups (every group of 2 to 5 of the 12 tasks), one lookahead forward each per affinity step; at most 256: name the candidate groups (AffinityConfig(groups=...)) or lower max_group_size.
    """
    tasks = list(tasks)
    if config.groups is not None:
        unknown = sorted({t for g in config.groups for t in g} - set(tasks))
        if unknown:
            raise ValueError(f"AffinityConfig(groups=...) names unknown task(s) {unknown}; the tasks are {tasks}.")
        groups = tuple(tuple(t for t in tasks if t in g) for g in config.groups)
        described = "named by AffinityConfig(groups=...)"
    else:
        largest = min(config.max_group_size, len(tasks))
        count = sum(math.comb(len(tasks), size) for size in range(2, largest + 1))
        if count > MAX_GROUP_LOOKAHEADS:  # before enumerating them
            raise ValueError(_too_many(count, f"every group of 2 to {largest} of the {len(tasks)} tasks"))
        groups = tuple(g for size in range(2, largest + 1) for g in itertools.combinations(tasks, size))
        described = ""
    if len(groups) > MAX_GROUP_LOOKAHEADS:
        raise ValueError(_too_many(len(groups), described))
    return groups


def _too_many(count: int, described: str) -> str:
    return (f"mode='group_lookahead' would measure {count} groups ({described}), one lookahead forward each per "
            f"affinity step; at most {MAX_GROUP_LOOKAHEADS}: name the candidate groups (AffinityConfig(groups=...)) "
            f"or lower max_group_size.")


def membership(groups: Sequence[Sequence[str]], tasks: Sequence[str]) -> np.ndarray:
    """Boolean [groups, tasks]: which tasks each group holds."""
    return np.array([[t in g for t in tasks] for g in groups], dtype=bool).reshape(len(groups), len(tasks))
