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

Selections from measured group lookaheads (`select_from_group_lookahead`) are resampled alike:
the run keeps the groups' Z[G→member] in the same blocks (`TaskAffinity.group_blocks`), and one
draw of blocks averages both the pairs' matrix (whose diagonal the group scores read) and the
groups' lookaheads (`group_lookahead_resamples`).

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

from types import SimpleNamespace

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


def group_lookahead_resamples(affinity, resamples: int, seed: int = 0):
    """`resamples` bootstrap resamples of a group-lookahead run, each what `select_from_group_lookahead`
    reads: ``tasks``, ``matrix`` (A[source, target]: the pairs' weighted mean over the drawn
    blocks, as `bootstrap_matrices`) and ``group_affinity`` (the groups' Z[G→member] over the same drawn blocks; a group
    with a member without samples in the draw is left out, as the selection leaves it out).

    >>> from types import SimpleNamespace
    >>> one = np.ones((1, 1), np.int64)
    >>> run = SimpleNamespace(tasks=("a",), blocks=(np.array([[1.0]]), np.array([[3.0]])), block_counts=(one, 3 * one),
    ...                       group_blocks={("a",): {"a": np.array([2.0, 4.0])}},
    ...                       group_block_counts={("a",): {"a": np.array([1, 1])}})
    >>> [(float(r.matrix[0, 0]), r.group_affinity[("a",)]["a"]) for r in group_lookahead_resamples(run, 3, seed=1)]
    [(2.5, 3.0), (3.0, 4.0), (1.0, 2.0)]
    """
    k = len(affinity.tasks)
    entries = [(group, t) for group, values in affinity.group_blocks.items() for t in values]
    flat = np.asarray(affinity.blocks, np.float64).reshape(-1, k * k)  # [blocks, k·k], then [blocks, entries]
    means = np.concatenate([flat, np.array([affinity.group_blocks[g][t] for g, t in entries], np.float64).T], axis=1)
    pair_weights = getattr(affinity, "block_weights", ()) or affinity.block_counts  # unweighted in older files
    group_weights = getattr(affinity, "group_block_weights", None) or affinity.group_block_counts
    weights = np.concatenate([np.asarray(pair_weights, np.float64).reshape(-1, k * k),
                              np.array([group_weights[g][t] for g, t in entries], np.float64).T], axis=1)
    for values in bootstrap_matrices(means, weights, resamples, seed):
        groups = {}
        for (group, t), value in zip(entries, values[k * k:]):
            groups.setdefault(group, {})[t] = float(value)
        yield SimpleNamespace(tasks=tuple(affinity.tasks), matrix=values[: k * k].reshape(k, k),
                              group_affinity={g: v for g, v in groups.items() if np.isfinite(list(v.values())).all()})


def group_lookahead_stability(affinity, grouping: Grouping, select, resamples: int = 100,
                              seed: int = 0) -> float | None:
    """The share of `resamples` bootstrap resamples of a group-lookahead run
    (`group_lookahead_resamples`) on which `select` (what `select_from_group_lookahead` reads ->
    `Grouping`) selects `grouping` again; None when the run keeps fewer than two blocks or no
    blocks of its groups (files written before they were kept)."""
    if len(getattr(affinity, "blocks", ())) < 2 or not getattr(affinity, "group_blocks", None):
        return None
    target = served(grouping)
    same = sum(served(select(resample)) == target for resample in group_lookahead_resamples(affinity, resamples, seed))
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
