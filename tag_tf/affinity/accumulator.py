"""`AffinityAccumulator`: the running sums of affinity samples, kept in model variables so that
they are checkpointed with the weights (`BackupAndRestore`, `ModelCheckpoint`) and summed once
under a `tf.distribute` strategy (every replica adds the same, all-reduced, Z).

>>> import keras, numpy as np
>>> accumulator = AffinityAccumulator(["a", "b"], max_epochs=10)
>>> accumulator.build(keras.layers.Layer())       # the variables' owner, normally the model
>>> accumulator.mark_epoch()
>>> z = np.array([[0.0, 0.5], [0.25, 0.0]], "float32")
>>> for _ in range(2):
...     accumulator.add(z, valid=np.ones((2, 2), bool), skipped=np.zeros((2, 2), bool))
>>> accumulator.mark_epoch()
>>> result = accumulator.result()
>>> result.matrix.tolist(), result.steps, len(result.epochs)
([[0.0, 0.5], [0.25, 0.0]], 2, 1)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from tag_tf.affinity.estimates import mean_affinity
from tag_tf.affinity.result import TaskAffinity


class AffinityAccumulator:
    """Sums, counts, skipped samples and affinity steps of a run, and the cumulative sums at
    every epoch boundary (the first `max_epochs` epochs), for per-epoch means.

    Args:
      tasks: the task names, in the model's order.
      max_epochs: how many epoch boundaries are kept (the variables have a fixed shape).
    """

    def __init__(self, tasks: Sequence[str], max_epochs: int):
        self.tasks = tuple(tasks)
        self.max_epochs = max_epochs

    def build(self, owner) -> None:
        """Create the variables on `owner` (a Keras layer or model, which checkpoints them)."""
        k = len(self.tasks)
        state = dict(trainable=False, initializer="zeros", aggregation="only_first_replica")
        self.total = owner.add_weight(shape=(k, k), name="affinity_total", **state)
        self.count = owner.add_weight(shape=(k, k), name="affinity_count", **state)
        self.skipped = owner.add_weight(shape=(), name="affinity_skipped", **state)
        self.steps = owner.add_weight(shape=(), name="affinity_steps", **state)
        # cumulative (total, count) at every epoch boundary
        self.marks = owner.add_weight(shape=(self.max_epochs + 1, 2, k, k), name="affinity_marks", **state)
        self.num_marks = owner.add_weight(shape=(), name="affinity_num_marks", **state)

    def add(self, z, valid, skipped) -> None:
        """Add one affinity step: Z [k, k] where `valid`, and the count of `skipped` samples."""
        self.total.assign_add(tf.where(valid, tf.cast(z, tf.float32), 0.0))
        self.count.assign_add(tf.cast(valid, tf.float32))
        self.skipped.assign_add(tf.reduce_sum(tf.cast(skipped, tf.float32)))
        self.steps.assign_add(1.0)

    def mark_epoch(self) -> None:
        """Record the cumulative sums at an epoch boundary (up to `max_epochs` epochs; eager)."""
        index = int(self.num_marks.numpy())
        if index > self.max_epochs:
            if index == self.max_epochs + 1:
                logging.warning("Per-epoch affinity is kept for %d epochs (AffinityConfig.max_epochs); "
                                "later epochs count in the run's matrix only.", self.max_epochs)
                self.num_marks.assign(index + 1.0)
            return
        marks = self.marks.numpy()
        marks[index] = np.stack([self.total.numpy(), self.count.numpy()])
        self.marks.assign(marks)
        self.num_marks.assign(index + 1.0)

    @property
    def started(self) -> bool:
        """Whether the first epoch boundary is recorded."""
        return bool(self.num_marks.numpy())

    def result(self) -> TaskAffinity:
        """The affinity so far: `matrix[source, target]`, per-epoch means, steps, skipped samples."""
        marks = self.marks.numpy()[: int(self.num_marks.numpy())]
        epochs = tuple(mean_affinity(end[0] - start[0], end[1] - start[1]) for start, end in zip(marks[:-1], marks[1:]))
        return TaskAffinity(
            tasks=self.tasks,
            matrix=mean_affinity(self.total.numpy(), self.count.numpy()),
            epochs=epochs,
            steps=int(self.steps.numpy()),
            skipped=int(self.skipped.numpy()),
        )
