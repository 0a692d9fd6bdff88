"""Adaptive sampling (`AffinityConfig(every_n_steps="auto")`, the default): when to collect
affinity next, from the running time-weighted mean and variance of every pair; and the standard
error of a time-weighted mean. Pure functions, state in, decision out.

**What is estimated.** The paper's affinity is the mean of Z over every optimizer step of the run.
A schedule that samples step t_i stands each sample for the steps since the previous one, its
weight w_i = t_i − t_(i−1) (the interval in force when it was taken: 1 for the first sample and
while collection is dense, n for every sample of `every_n_steps=n`). The run's matrix is the
time-weighted mean, a Riemann sum of Z over the steps:

    V1   = Σ w_i            (the optimizer steps the samples stand for)
    V2   = Σ w_i²
    mean = Σ w_i z_i / V1
    M2   = Σ w_i (z_i − mean)²                     (West's weighted Welford update, exact per step)
    n_eff = V1² / V2                               (Kish's effective sample size; n when the weights are equal)
    stderr = sqrt(M2 / (V1 − V2 / V1) / n_eff)     (= sqrt(M2 / (n − 1) / n) when the weights are equal)

M2 / (V1 − V2 / V1) is the unbiased ("reliability weights") estimate of the variance σ² of one
step's Z about the run's mean, and σ² · V2 / V1² the variance of the weighted mean of independent
samples, so `stderr` is the standard error of the time-weighted mean (it assumes the steps' Z
scatter alike about the mean; the selection's block bootstrap, `tag_tf.selection.stability`, does
not). A weight is fixed before its
sample is seen (the interval was chosen at the previous affinity step), so a sample's value never
changes its own weight: the weighting adds no selection bias. Weights equal → the plain mean, M2
and standard error, whatever the common weight (`every_n_steps=n` gives what it always gave).

**When to collect next.** After every affinity step the model's `AffinitySchedule` calls
`next_interval` with the running state of every pair (sample count n, weights V1 and V2, mean,
M2: `AffinityAccumulator.state`), the interval that led to this step and, when the run's length
is known (`fit()` knows its epochs and steps), the optimizer steps that remain after this one, R.
The next affinity step comes d optimizer steps later; collecting every d steps from there on, m
samples of weight d come (m = floor(R / d) to the end of the run; m = 1, the next sample only,
when R is not known). The rule asks what the standard error will be after them, if they vary as
the samples so far do:

    pairs  = the off-diagonal (source, target) pairs with at least one sample
    if min(n over pairs) < max(min_samples, 2):  1                            (dense at first)
    σ²     = M2 / (V1 − V2 / V1)                                              (per pair)
    se(d)  = median over pairs of σ · sqrt(V2 + m d²) / (V1 + m d)  (the stderr after m samples of weight d)
    target = precision · spread,   spread = standard deviation of the pairs' means
    d      ∈ 1 .. min(2 · interval, max_interval)
    the largest d with se(d) <= target                                        (as sparse as precision allows)
    else the d with the smallest se(d)                                        (the most precision per sample)

So collection is dense until every pair has `min_samples` samples; it then thins (at most doubling
the interval at a time, so that a change over training is still seen before the interval grows
far) while the typical pair stays known to `precision` of the spread between pairs (how much the
sources of a target differ is what decides the selection: at precision 0.25 a difference of one
spread between two pairs is about 2.8 standard errors); it never gets sparser than every
`max_interval` steps. When the precision is not met, the interval is the one that adds the most
precision: to the end of a known run, every step; without the end, for one pair n_eff' =
(V1 + d)² / (V2 + d²) is largest at d = V2 / V1, where it is n_eff + 1 (one effective sample per
sample), while a sample of weight 1 after heavy ones adds almost nothing. The median, not the largest, standard error: the noisiest pair alone
would keep collection dense for a long time (on the demo's planted data the largest affinities are
also the noisiest).

The rule reads the *time-weighted* standard error, the precision of the matrix the run reports. A
sparse sample stands for many steps and lowers n_eff. With the run's end known, the rule spreads
the samples evenly over what remains, at the sparsest interval whose samples reach the precision
by the end (equal weights give the most effective samples for their number; if not even every
step can reach it, every step: the paper's setting); it re-plans after every sample, so a change
in variance or spread changes the interval. Without the end (m = 1) the precision must hold after
every sample: sampling every d steps over the last L steps gives n_eff ≈ L / d, so the rule keeps
d near L / N (N the effective samples the precision asks for), the interval grows with the elapsed
run, and a run of T steps takes about N · (1 + ln(T / N)) samples before the floor, against about
N evenly spaced ones when T is known. With the unweighted count instead, n grows with
every sample whatever it stands for: the schedule thinned after the first dense samples and the
plain mean was dominated by the start of training (the demo before this rule: BENCHMARKS.md),
while with time weights its few late samples would carry most of the weight (n_eff about 8 of 74
samples there). The bootstrap stability of the selection (`tag_tf.selection.stability`) says
afterwards whether the samples were enough.

20 samples of weight 1, the pairs' means 1.0 apart, standard error 0.05 (σ = 0.05 · sqrt(20)):
precise, so the interval doubles; with standard error 0.3 it is not, and every step is the most
precision per sample:

>>> count = np.full((2, 2), 20.0)
>>> mean = np.array([[0.0, 1.0], [3.0, 0.0]])               # spread of the pairs: 1.0
>>> m2 = np.full((2, 2), 19 * 20 * 0.05 ** 2)               # stderr 0.05 for every pair (36 * m2: 0.3)
>>> next_interval(count, mean, m2, interval=1, min_samples=20, precision=0.25, max_interval=100)
2
>>> next_interval(count, mean, m2, interval=8, min_samples=20, precision=0.25, max_interval=100)
16
>>> next_interval(count, mean, 36 * m2, interval=8, min_samples=20, precision=0.25, max_interval=100)
1

The weights decide too: if 4 of the 20 samples stood for 16 steps each (V1 = 80, V2 = 1040),
n_eff = 80² / 1040 = 6.15; with σ² = 0.8 the standard error is sqrt(0.8 / 6.15) = 0.36 > 0.25
(with 20 equal samples it would be 0.2 and the schedule would thin). The next sample weighs
V2 / V1 = 13 steps, the weight that adds a whole effective sample:

>>> weight, weight2 = np.full((2, 2), 16 + 4 * 16.0), np.full((2, 2), 16 + 4 * 256.0)
>>> round(float(effective_samples(weight, weight2)[0, 1]), 2)
6.15
>>> m2 = 0.8 * (80 - 1040 / 80)                            # σ² 0.8: M2 = σ² (V1 − V2 / V1)
>>> next_interval(count, mean, m2, interval=16, weight=weight, weight2=weight2, min_samples=20,
...               precision=0.25, max_interval=100)
13

With the run's end known the samples to come count too: 20 equal samples with σ² = 0.8
(standard error 0.2 > target 0.15 at precision 0.15) are not precise, and the next sample alone
cannot make them so (the most precision per sample: every step); with 200 steps left, every 6
steps gives 33 more samples and sqrt(0.8 (20 + 33 · 36)) / (20 + 33 · 6) = 0.143 <= 0.15, every 7
steps 0.155 (the interval may at most double from 4 to 8):

>>> m2 = np.full((2, 2), 19 * 0.8)
>>> next_interval(count, mean, m2, interval=4, min_samples=20, precision=0.15, max_interval=100)
1
>>> next_interval(count, mean, m2, interval=4, remaining=200, min_samples=20, precision=0.15, max_interval=100)
6
"""

from __future__ import annotations

import numpy as np


def effective_samples(weight, weight2) -> np.ndarray:
    """Kish's effective sample size of a weighted mean: (Σ w)² / Σ w² (0 without samples).

    >>> effective_samples(np.array([3.0, 12.0]), np.array([3.0, 66.0])).tolist()   # 1+1+1; 1+1+10
    [3.0, 2.1818181818181817]
    """
    weight, weight2 = np.asarray(weight, np.float64), np.asarray(weight2, np.float64)
    return np.where(weight2 > 0, weight ** 2 / np.where(weight2 > 0, weight2, 1.0), 0.0)


def standard_error(count, m2, weight=None, weight2=None) -> np.ndarray:
    """The standard error of each running (time-weighted) mean, NaN below two samples:
    sqrt(M2 / (V1 − V2 / V1) · V2 / V1²) (module docstring); without `weight` and `weight2` (V1 =
    Σ w, V2 = Σ w²) every weight is 1: sqrt(M2 / (n − 1) / n).

    >>> standard_error(np.array([4.0, 1.0]), np.array([12.0, 0.0])).tolist()   # variance 4, n 4
    [1.0, nan]
    >>> # z = 1, 2, 4 with weights 1, 1, 2: mean 2.75, M2 = 3.0625 + 0.5625 + 2 · 1.5625 = 6.75,
    >>> # V1 = 4, V2 = 6: variance 6.75 / (4 − 6 / 4) = 2.7, stderr sqrt(2.7 · 6 / 16) = 1.00623
    >>> float(standard_error(3.0, 6.75, 4.0, 6.0))
    1.0062305898749053
    """
    count, m2 = np.asarray(count, np.float64), np.asarray(m2, np.float64)
    if weight is None:
        weight = weight2 = count
    weight, weight2 = np.asarray(weight, np.float64), np.asarray(weight2, np.float64)
    # M2 / (V1 - V2/V1) * V2 / V1² = M2 · V2 / (V1 · (V1² − V2)); V1² > V2 once two samples have weight
    denominator = weight * (weight ** 2 - weight2)
    ok = (count > 1) & (denominator > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(ok, np.sqrt(np.maximum(m2, 0.0) * weight2 / np.where(ok, denominator, 1.0)), np.nan)


def next_interval(count, mean, m2, interval: int, *, weight=None, weight2=None, remaining: int | None = None,
                  min_samples: int, precision: float, max_interval: int) -> int:
    """Optimizer steps from this affinity step to the next (the rule in the module docstring).

    Args:
      count, mean, m2: [k, k] running sample count, (time-weighted) mean and weighted sum of
        squared deviations per pair [source, target], after this step.
      interval: the interval that led to this step (1 for the first).
      weight, weight2: [k, k] Σ w and Σ w² per pair (the steps the samples stand for); None:
        every weight 1.
      remaining: the optimizer steps of the run after this one, if known (then the samples to the
        end of the run must reach the precision; else the next sample must).
      min_samples, precision, max_interval: `AffinityConfig.auto_min_samples`, `auto_precision`,
        `auto_max_interval`.
    """
    count = np.asarray(count, np.float64)
    pairs = (count > 0) & ~np.eye(len(count), dtype=bool)  # a pair never labelled does not hold it up
    if not pairs.any() or count[pairs].min() < max(min_samples, 2):
        return 1
    if weight is None:
        weight = weight2 = count
    v1, v2, m2 = (np.broadcast_to(np.asarray(a, np.float64), count.shape)[pairs] for a in (weight, weight2, m2))
    sigma = np.sqrt(np.maximum(m2, 0.0) / (v1 - v2 / v1))  # one step's Z
    target = precision * float(np.std(np.asarray(mean, np.float64)[pairs]))
    d = np.arange(1, min(2 * interval, max_interval) + 1, dtype=np.float64)[:, None]
    m = 1.0 if remaining is None else np.floor(max(remaining, 0) / d)  # samples of weight d to come
    after = np.median(sigma * np.sqrt(v2 + m * d ** 2) / (v1 + m * d), axis=1)  # the stderr after them
    precise = np.flatnonzero(after <= target)
    return int(d[precise[-1], 0] if precise.size else d[np.argmin(after), 0])
