"""Which optimizer steps collect affinity: the one schedule that `MultiTaskModel.fit` and
`fit_distributed` share.

`every_n_steps=n` collects at optimizer iterations 0, n, 2n, ...; `every_n_steps="auto"` asks
`tag_tf.affinity.adaptive.next_interval` after every affinity step how many steps to wait, and keeps
the answer (the next iteration to collect at, and the interval) in model variables, so that a
resumed run (`BackupAndRestore`) collects at exactly the steps an uninterrupted one does. When the
training loop knows where the run ends (`plan`, called by the `AffinityEpochs` callback that
`fit()` adds, from its epochs and steps per epoch), "auto" spreads its samples over the steps that
remain; the planned end is a model variable too.

Each affinity step's samples stand for the optimizer steps since the previous affinity step, their
weight in the run's time-weighted mean (`weight`, read by the affinity step inside its graph): n
for `every_n_steps=n` (equal weights: the plain mean), and for "auto" the interval that led to the
step (1 for the first and while collection is dense).

>>> schedule = AffinitySchedule(AffinityConfig(every_n_steps=3))
>>> [step for step in range(8) if schedule.collects(step)]
[0, 3, 6]
>>> AffinitySchedule(None).collects(0)      # no affinity configured: never
False
>>> float(schedule.weight())                # every sample of every_n_steps=3 stands for 3 steps
3.0
"""

from __future__ import annotations

import tensorflow as tf

from tag_tf.affinity import AffinityConfig, next_interval


class AffinitySchedule:
    """When affinity is collected (see the module docstring); none without a config.

    Args:
      config: the model's `AffinityConfig`, or None.
    """

    def __init__(self, config: AffinityConfig | None):
        self.config = config

    def build(self, owner) -> None:
        """For "auto": create the next iteration to collect at, the interval that led to it and the
        planned end of the run (0: unknown), as variables of `owner` (the model, which checkpoints
        them)."""
        if self.config is not None and self.config.adaptive:
            state = dict(trainable=False, aggregation="only_first_replica")
            self.next = owner.add_weight(shape=(), name="affinity_next_step", initializer="zeros", **state)
            self.interval = owner.add_weight(shape=(), name="affinity_interval", initializer="ones", **state)
            self.end = owner.add_weight(shape=(), name="affinity_end_step", initializer="zeros", **state)

    def plan(self, end: int | None) -> None:
        """For "auto": the optimizer iteration at which the run ends (the first one it does not
        run), or None when it is not known; "auto" then spreads its samples over the steps left."""
        if self.config is not None and self.config.adaptive:
            self.end.assign(float(end or 0))

    def remaining(self, iteration: int) -> int | None:
        """The optimizer steps of the run after `iteration`, if the planned end is known and later."""
        end = int(self.end.numpy())
        return end - 1 - iteration if end > iteration else None

    def collects(self, iteration: int) -> bool:
        """Whether the step at optimizer iteration `iteration` collects affinity."""
        if self.config is None:
            return False
        if self.config.adaptive:
            return iteration >= int(self.next.numpy())
        return iteration % self.config.every_n_steps == 0

    def weight(self) -> tf.Tensor:
        """The optimizer steps the current affinity step's samples stand for (float32 scalar): the
        interval that led to it. For "auto" a read of the interval variable, so a traced affinity
        step sees the current value (before `run` decides the next interval)."""
        if self.config.adaptive:
            return tf.convert_to_tensor(self.interval.value, tf.float32)
        return tf.constant(float(self.config.every_n_steps))

    def run(self, iteration: int, plain, affinity, accumulator, *args):
        """Run the step at optimizer iteration `iteration`: `affinity(*args)` if it collects (then,
        for "auto", decide the next affinity step from `accumulator`'s time-weighted state), else
        `plain(*args)`."""
        if not self.collects(iteration):
            return plain(*args)
        logs = affinity(*args)
        if self.config.adaptive:
            state = accumulator.state()
            interval = next_interval(state.count, state.mean, state.m2, int(self.interval.numpy()),
                                     weight=state.weight, weight2=state.weight2, remaining=self.remaining(iteration),
                                     min_samples=self.config.auto_min_samples,
                                     precision=self.config.auto_precision,
                                     max_interval=self.config.auto_max_interval)
            self.interval.assign(float(interval))
            self.next.assign(float(iteration + interval))
        return logs
