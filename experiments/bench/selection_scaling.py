"""How network selection scales: time, score and proven gap of `select_groups` by n and k.

    python -m experiments.bench.selection_scaling                  # every case, prints Markdown
    python -m experiments.bench.selection_scaling --brute_force    # also the TAG notebook's enumeration

Matrices (A[source, target], seeded): "random" is A ~ N(0, 1); "block" plants four groups,
A = 0.2 N(0, 1) + 1 where source and target share a group. Defaults of `select_groups`
(overlap=True, singleton="zero", no size limit). Targets checked and printed:
n=9, every k in 1..9, exact, under 1 s in total; n=14, k <= 5, exact, under 30 s in total;
n=20, exact or within 1% of a proven bound, under 60 s per k; n=40, heuristic with its gap,
under 60 s per k. Seconds are `Grouping.seconds` (wall clock, one process, caches warm after the
first call of a size).
"""

from __future__ import annotations

import math
import os
import platform
import time

import numpy as np
from absl import app, flags

from tag_tf.selection import select_groups

FLAGS = flags.FLAGS
flags.DEFINE_integer("seed", 0, "Seed of the random matrices.")
flags.DEFINE_boolean("brute_force", False, "Also time method='brute_force' at n=9, k=1..3.")

# (n, budgets, method, seconds allowed, what the time limit covers)
CASES = (
    (9, range(1, 10), "exact", 1.0, "total"),
    (14, range(1, 6), "exact", 30.0, "total"),
    (20, range(2, 7), "auto", 60.0, "each"),
    (20, range(2, 7), "heuristic", 60.0, "each"),  # the heuristic and its LP bound, against the above
    (22, (3, 5), "auto", 60.0, "each"),
    (40, range(2, 9), "auto", 60.0, "each"),
)


def affinity(kind: str, n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, n])
    if kind == "random":
        return rng.normal(size=(n, n))
    blocks = rng.integers(0, 4, size=n)
    return 0.2 * rng.normal(size=(n, n)) + (blocks[:, None] == blocks[None, :])


def gap_percent(g) -> float:
    return 100.0 * g.gap / max(abs(g.upper_bound), 1e-12)


def run_case(kind, n, budgets, method, limit, scope):
    a = affinity(kind, n, FLAGS.seed)
    rows, total = [], 0.0
    for k in budgets:
        g = select_groups(a, k, method=method)
        total += g.seconds
        rows.append(f"| {kind} | {n} | {k} | {g.method} | {g.score:.4f} | {g.upper_bound:.4f} | "
                    f"{gap_percent(g):.2f} | {'yes' if g.optimal else 'no'} | {g.seconds:.3f} |")
        met_k = g.seconds < limit and (n != 20 or g.optimal or gap_percent(g) <= 1.0)
        if scope == "each" and not met_k:
            rows[-1] += " **target missed**"
    if scope == "total":
        verdict = "met" if total < limit else "**missed**"
        rows.append(f"| {kind} | {n} | all | | | | | | {total:.3f} (target < {limit:g} s: {verdict}) |")
    return rows


def main(argv):
    del argv
    print(f"Machine: {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, "
          f"Python {platform.python_version()}, numpy {np.__version__}; seed {FLAGS.seed}.\n")
    print("| matrix | n | k | method | score | bound | gap % | optimal | seconds |")
    print("|---|---|---|---|---|---|---|---|---|")
    for n, budgets, method, limit, scope in CASES:
        for kind in ("random", "block"):
            for row in run_case(kind, n, budgets, method, limit, scope):
                print(row, flush=True)
    if FLAGS.brute_force:
        print("\nThe TAG notebook's enumeration (method='brute_force') against the DP, n=9, random:\n")
        print("| k | sets enumerated | brute force s | dp s | same score |")
        print("|---|---|---|---|---|")
        a = affinity("random", 9, FLAGS.seed)
        for k in (1, 2, 3):
            start = time.perf_counter()
            slow = select_groups(a, k, method="brute_force")
            seconds = time.perf_counter() - start
            fast = select_groups(a, k, method="exact")
            sets = sum(math.comb(2**9 - 1, j) for j in range(1, k + 1))
            print(f"| {k} | {sets} | {seconds:.2f} | {fast.seconds:.4f} | "
                  f"{abs(slow.score - fast.score) <= 1e-9 * (1 + abs(fast.score))} |", flush=True)


if __name__ == "__main__":
    app.run(main)
