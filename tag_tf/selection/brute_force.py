"""The official TAG notebook's enumeration: every set of at most k groups, no pruning (small n).

>>> from tag_tf.selection.instance import _affinity_instance
>>> a = np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])
>>> sorted(_brute_force(_affinity_instance(a, np.zeros(3), 2, True, None), 3, True))   # {0, 1}, {2}
[3, 4]
"""

from __future__ import annotations

import itertools
import math

import numpy as np

from tag_tf.selection.instance import _Instance
from tag_tf.selection.scores import members_of

BRUTE_FORCE_MAX_SETS = 50_000_000


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
