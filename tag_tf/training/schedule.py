"""Which optimizer steps collect affinity: the one schedule that `MultiTaskModel.fit` and
`fit_distributed` share.

>>> schedule = AffinitySchedule(AffinityConfig(every_n_steps=3))
>>> [step for step in range(8) if schedule.collects(step)]
[0, 3, 6]
>>> AffinitySchedule(None).collects(0)      # no affinity configured: never
False
"""

from __future__ import annotations

from tag_tf.affinity import AffinityConfig


class AffinitySchedule:
    """Affinity on every `every_n_steps`-th optimizer iteration (0, n, 2n, ...); none without a config."""

    def __init__(self, config: AffinityConfig | None):
        self.config = config

    def collects(self, iteration: int) -> bool:
        """Whether the step at optimizer iteration `iteration` collects affinity."""
        return self.config is not None and iteration % self.config.every_n_steps == 0

    def choose(self, iteration: int, plain, affinity):
        """`affinity` at the iterations that collect, else `plain`."""
        return affinity if self.collects(iteration) else plain
