"""Selection stability: how often a bootstrap of the affinity samples selects the same grouping.

The affinity run keeps blocks of consecutive affinity steps (`TaskAffinity.blocks`, their
time-weighted means and weights, the optimizer steps their samples stand for; one step per block
in short runs). A bootstrap resample draws as many blocks, with replacement, and averages them into
a matrix (weighted by the blocks' weights, as the run's matrix weights its samples: Σ w z / Σ w
over the drawn blocks, the cluster bootstrap of a ratio estimator; a pair without samples taken
as 0, as `select_from_affinity` does); the grouping selected on it, for the same budget and options, is
compared with the chosen one: the same tasks served by the same groups. The share of resamples
that agree is the grouping's stability. Blocks of consecutive steps keep what one step shares
across pairs (one batch, one lookahead) and, once merged, what neighbouring steps share.

A grouping with stability below `STABLE` (0.9) is not settled by the measurement: another run of
the same length could well choose differently.

>>> import numpy as np
>>> from types import SimpleNamespace
>>> from tag_tf.selection import select_groups
>>> def noisy(matrix, blocks=20):       # an affinity run's blocks: the matrix plus noise
...     means = [matrix + 0.01 * np.random.default_rng(i).normal(size=matrix.shape) for i in range(blocks)]
...     return SimpleNamespace(tasks=tuple("abcd"[:len(matrix)]), matrix=np.mean(means, axis=0), blocks=means,
...                            block_counts=[np.ones(matrix.shape, int)] * blocks)
>>> clear = noisy(np.kron(np.eye(2), np.ones((2, 2))))     # {a, b} and {c, d} help each other
>>> select = lambda matrix: select_groups(matrix, 2, tasks=clear.tasks)
>>> chosen = select(clear.matrix)
>>> chosen.groups, stability(clear, chosen, select, resamples=50)
((('a', 'b'), ('c', 'd')), 1.0)
>>> tie = noisy(np.array([[0.0, 1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))  # c: alone or with b, a tie
>>> select = lambda matrix: select_groups(matrix, 2, tasks=tie.tasks)
>>> chosen = select(tie.matrix)
>>> chosen.groups, stability(tie, chosen, select, resamples=50)
((('a', 'b'), ('b', 'c')), 0.46)
"""

from __future__ import annotations

import numpy as np

from tag_tf.selection.result import Grouping

STABLE = 0.9  # below this share of agreeing resamples a grouping is reported as unstable


def served(grouping: Grouping) -> dict[str, frozenset]:
    """Task -> the set of tasks of the group serving it: two groupings are the same when these are."""
    return {task: frozenset(grouping.groups[index]) for task, index in grouping.assignment.items()}


def bootstrap_matrices(blocks, block_weights, resamples: int, seed: int = 0):
    """`resamples` matrices, each the weighted mean of as many blocks drawn with replacement
    (`block_weights`: the weight behind each entry of each block, `TaskAffinity.block_weights`, or
    its sample counts; NaN: no sample of that pair in the draw).

    >>> means = [np.array([[1.0]]), np.array([[3.0]])]
    >>> [float(m[0, 0]) for m in bootstrap_matrices(means, [np.array([[1]]), np.array([[3]])], 3, seed=1)]
    [2.5, 3.0, 1.0]
    """
    counts = np.asarray(block_weights, np.float64)
    sums = np.where(counts > 0, np.nan_to_num(np.asarray(blocks, np.float64)) * counts, 0.0)
    rng = np.random.default_rng(seed)
    for draw in rng.integers(0, len(counts), size=(resamples, len(counts))):
        total, count = sums[draw].sum(axis=0), counts[draw].sum(axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            yield np.where(count > 0, total / np.where(count > 0, count, 1.0), np.nan)


def stability(affinity, grouping: Grouping, select, resamples: int = 100, seed: int = 0) -> float | None:
    """The share of `resamples` bootstrap resamples of `affinity.blocks` on which `select` (a
    matrix ``A[source, target]`` -> `Grouping`: the selection that chose `grouping`) selects
    `grouping` again; None when the affinity keeps fewer than two blocks (e.g. files written
    before blocks were kept)."""
    if len(getattr(affinity, "blocks", ())) < 2:
        return None
    target = served(grouping)
    weights = getattr(affinity, "block_weights", ()) or affinity.block_counts  # unweighted in older files
    same = sum(served(select(np.nan_to_num(matrix))) == target
               for matrix in bootstrap_matrices(affinity.blocks, weights, resamples, seed))
    return same / resamples


def stability_text(grouping) -> str:
    """How often a bootstrap of the affinity samples selects this grouping again, and a warning
    when that is rare (below `STABLE`).

    >>> from tag_tf.selection import select_groups
    >>> import dataclasses
    >>> g = select_groups([[0.0, 1.0], [1.0, 0.0]], 1)
    >>> stability_text(dataclasses.replace(g, stability=0.55))
    'stability 0.55: LOW, another affinity run could choose differently'
    >>> stability_text(g)
    'stability not measured'
    """
    if grouping.stability is None:
        return "stability not measured"
    if grouping.stability < STABLE:
        return f"stability {grouping.stability:.2f}: LOW, another affinity run could choose differently"
    return f"stability {grouping.stability:.2f}"
