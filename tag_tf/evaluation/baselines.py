"""The groupings TAG is compared with: all tasks in one network, one network per task, random
partitions, and HOA (Standley et al. 2020, `tag_tf.evaluation.hoa`), as `Grouping`s.

>>> all_in_one(["a", "b", "c"]).groups
(('a', 'b', 'c'),)
>>> single_task(["a", "b"]).assignment
{'a': 0, 'b': 1}
>>> random_groupings(["a", "b", "c", "d"], budgets=[2], seeds=2, seed=0)[0][0]
'random_k2_seed0'
"""

from __future__ import annotations

from typing import Sequence

from tag_tf.evaluation import grouped
from tag_tf.run.seeds import partition_seed
from tag_tf.selection import Grouping

BASELINES = ("all_in_one", "single_task", "random", "hoa")


def fixed_grouping(groups: Sequence[Sequence[str]], tasks: Sequence[str]) -> Grouping:
    """A partition of the tasks as a `Grouping` (each task served by its only group).

    >>> fixed_grouping([("a", "c"), ("b",)], ["a", "b", "c"]).served_by("c")
    ('a', 'c')
    """
    groups = tuple(tuple(g) for g in groups)
    assignment = {t: next(i for i, g in enumerate(groups) if t in g) for t in tasks}
    return Grouping(groups=groups, assignment=assignment, score=float("nan"), optimal=False,
                    upper_bound=float("nan"), method="fixed", seconds=0.0, budget=len(groups))


def all_in_one(tasks: Sequence[str]) -> Grouping:
    """Every task in one network."""
    return fixed_grouping([tuple(tasks)], tasks)


def single_task(tasks: Sequence[str]) -> Grouping:
    """One network per task."""
    return fixed_grouping([(t,) for t in tasks], tasks)


def random_groupings(tasks: Sequence[str], budgets: Sequence[int], seeds: int, seed: int) -> list[tuple[str, Grouping]]:
    """("random_k<k>_seed<s>", a uniformly random partition into k groups) for every budget k and
    s < `seeds`; partition s drawn from `tag_tf.run.seeds.partition_seed(seed, s)`."""
    return [(f"random_k{k}_seed{s}", fixed_grouping(grouped.random_partition(tasks, k, seed=partition_seed(seed, s)), tasks))
            for k in budgets for s in range(seeds)]
