"""Every seed a run derives from its one `RunConfig.runtime.seed`, in one place.

    network_seed(run_seed, i)      the i-th evaluation network of a group: run_seed + i
    partition_seed(run_seed, p)    the p-th random partition of a budget: run_seed · 1000 + p

The partitions' seeds are spaced by 1000 so that they never meet a network's seed of the same run
(a run trains far fewer than 1000 seeds per group).

>>> [network_seed(7, i) for i in range(3)], partition_seed(7, 2)
([7, 8, 9], 7002)
"""

from __future__ import annotations

PARTITION_STRIDE = 1000


def network_seed(run_seed: int, index: int) -> int:
    """The seed of evaluation network `index` (0, 1, ...) of a run seeded `run_seed`."""
    return run_seed + index


def partition_seed(run_seed: int, partition: int) -> int:
    """The seed of random partition `partition` (0, 1, ...) of a run seeded `run_seed`."""
    return run_seed * PARTITION_STRIDE + partition
