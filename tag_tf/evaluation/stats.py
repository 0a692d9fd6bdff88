"""Spread over seeds and paired comparisons: the error bars of every comparison.

    mean ± std            std with n − 1 in the denominator (the sample standard deviation)
    paired difference     d_s = a_s − b_s over the same seeds s = 1..n
                          mean(d) ± t_{0.975, n−1} · std(d) / √n      (95% t interval)

A quantity measured once has no spread: its std and interval are None.

>>> mean_std([10.0, 12.0, 14.0])
(12.0, 2.0)
>>> mean_std([10.0])
(10.0, None)
>>> d = paired_difference([10.0, 11.0, 12.0], [12.0, 12.0, 15.0])
>>> d.mean, [round(x, 3) for x in d.interval], d.beyond_noise
(-2.0, [-4.484, 0.484], False)
"""

from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np
from scipy import stats

CONFIDENCE = 0.95


def mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    """(mean, sample standard deviation); the std is None for a single value."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 1 or not len(values):
        raise ValueError(f"mean_std needs a non-empty list of numbers, got {values.tolist()!r}.")
    return float(values.mean()), float(values.std(ddof=1)) if len(values) > 1 else None


@dataclasses.dataclass(frozen=True)
class PairedDifference:
    """a − b over the same seeds: the per-seed differences, their mean and its t interval
    (None with one seed). `beyond_noise`: the interval excludes 0."""

    differences: tuple[float, ...]
    mean: float
    interval: tuple[float, float] | None
    confidence: float = CONFIDENCE

    @property
    def beyond_noise(self) -> bool:
        return self.interval is not None and (self.interval[0] > 0 or self.interval[1] < 0)

    def to_json(self) -> dict:
        return {"differences": list(self.differences), "mean": self.mean,
                "interval": list(self.interval) if self.interval else None, "confidence": self.confidence,
                "seeds": len(self.differences), "beyond_noise": self.beyond_noise}


def paired_difference(a: Sequence[float], b: Sequence[float], confidence: float = CONFIDENCE) -> PairedDifference:
    """The mean of a_s − b_s over paired seeds with its two-sided `confidence` t interval."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or not len(a):
        raise ValueError(f"paired_difference needs two equally long lists, got {len(a)} and {len(b)} values.")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence!r}.")
    d = a - b
    mean, std = mean_std(d)
    interval = None
    if std is not None:
        half = float(stats.t.ppf(0.5 + confidence / 2, df=len(d) - 1)) * std / np.sqrt(len(d))
        interval = (float(mean - half), float(mean + half))
    return PairedDifference(tuple(float(x) for x in d), mean, interval, confidence)


def format_interval(mean: float, interval: Sequence[float] | None) -> str:
    """"−2.00 [−4.48, +0.48]" (a difference and its interval), or "−2.50 (1 seed: no interval)".

    >>> d = paired_difference([10.0, 11.0, 12.0], [12.0, 12.0, 15.0])
    >>> format_interval(d.mean, d.interval)
    '-2.00 [-4.48, +0.48]'
    >>> format_interval(-2.5, None)
    '-2.50 (1 seed: no interval)'
    """
    if interval is None:
        return f"{mean:+.2f} (1 seed: no interval)"
    low, high = interval
    return f"{mean:+.2f} [{low:+.2f}, {high:+.2f}]"
