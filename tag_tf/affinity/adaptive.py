"""Adaptive sampling (`AffinityConfig(every_n_steps="auto")`, the default): when to collect
affinity next, from the running mean and variance of every pair. A pure function, state in,
decision out.

After every affinity step the model's `AffinitySchedule` calls `next_interval` with the running
state of every pair (count n, mean, M2 = Σ (z − mean)², `AffinityAccumulator`) and the interval
that led to this step; the next affinity step comes that many optimizer steps later:

    pairs  = the off-diagonal (source, target) pairs with at least one sample
    if min(n over pairs) < min_samples:          1                         (dense at first)
    stderr = sqrt(M2 / (n − 1) / n)                                        (per pair)
    spread = standard deviation of the pairs' means
    if median(stderr over pairs) <= precision · spread:  min(2 · interval, max_interval)   (thin)
    else:                                                max(interval // 2, 1)             (denser)

So collection is dense until every pair has `min_samples` samples; it then thins by doubling
while the typical pair is known to `precision` of the spread between pairs (how much the sources
of a target differ is what decides the selection: at precision 0.25 a difference of one spread
between two pairs is about 2.8 standard errors), and comes back towards every step when it is not
(drift, a new regime); it never gets sparser than every `max_interval` steps. The median, not the
largest, standard error: the noisiest pair alone would keep collection dense for a long time (on
the demo's planted data the largest affinities are also the noisiest). The bootstrap stability of
the selection (`tag_tf.selection.stability`) says afterwards whether the samples were enough.

>>> count = np.full((2, 2), 20.0)
>>> mean = np.array([[0.0, 1.0], [3.0, 0.0]])               # spread of the pairs: 1.0
>>> m2 = np.full((2, 2), 19 * 20 * 0.05 ** 2)               # stderr 0.05 for every pair (36 * m2: 0.3)
>>> next_interval(count, mean, m2, interval=1, min_samples=20, precision=0.25, max_interval=100)
2
>>> next_interval(count, mean, 36 * m2, interval=8, min_samples=20, precision=0.25, max_interval=100)
4
"""

from __future__ import annotations

import numpy as np


def standard_error(count, m2) -> np.ndarray:
    """The standard error of each running mean: sqrt(M2 / (n − 1) / n), NaN below two samples.

    >>> standard_error(np.array([4.0, 1.0]), np.array([12.0, 0.0])).tolist()   # variance 4, n 4
    [1.0, nan]
    """
    count, m2 = np.asarray(count, np.float64), np.asarray(m2, np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 1, np.sqrt(np.maximum(m2, 0.0) / np.maximum(count - 1, 1) / np.maximum(count, 1)),
                        np.nan)


def next_interval(count, mean, m2, interval: int, *, min_samples: int, precision: float, max_interval: int) -> int:
    """Optimizer steps from this affinity step to the next (the rule in the module docstring).

    Args:
      count, mean, m2: [k, k] running count, mean and sum of squared deviations per pair
        [source, target], after this step.
      interval: the interval that led to this step (1 for the first).
      min_samples, precision, max_interval: `AffinityConfig.auto_min_samples`, `auto_precision`,
        `auto_max_interval`.
    """
    count = np.asarray(count, np.float64)
    pairs = (count > 0) & ~np.eye(len(count), dtype=bool)
    if not pairs.any() or count[pairs].min() < min_samples:
        return 1
    stderr = standard_error(count, m2)[pairs]
    spread = float(np.std(np.asarray(mean, np.float64)[pairs]))
    if np.median(stderr) <= precision * spread:
        return int(min(2 * interval, max_interval))
    return int(max(interval // 2, 1))
