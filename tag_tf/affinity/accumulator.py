"""`AffinityAccumulator`: the running state of the affinity samples, kept in model variables so
that it is checkpointed with the weights (`BackupAndRestore`, `ModelCheckpoint`) and summed once
under a `tf.distribute` strategy (every replica adds the same, all-reduced, Z).

Every sample z of an affinity step comes with its weight w, the optimizer steps it stands for
(`AffinitySchedule.weight`: the steps since the previous affinity step), and every mean is the
time-weighted mean Σ w z / Σ w, the estimate of the mean of Z over every step of the run
(`tag_tf.affinity.adaptive` states the estimator and its standard error). Per pair it keeps:

    total  += w · z                    count   += 1           (samples, for the schedule's start)
    weight += w                        weight2 += w²          (V1 and V2, for n_eff = V1² / V2)
    M2     += w · (z − mean_before) · (z − mean_after)        (West's weighted Welford update)

the cumulative (total, weight) at every epoch boundary, for per-epoch means; and the total, count
and weight of up to `blocks` blocks of consecutive affinity steps (one step per block until every
block is used, then neighbouring blocks merge and each block holds twice as many), for the
selection stability bootstrap (`tag_tf.selection.stability`). With candidate groups
(mode="group_lookahead") it keeps the same total, count, weights and M2 for every (group, member)
Z[G→j], and their blocks alongside the pairs' (the same steps in each block, merged together).
Equal weights (`every_n_steps=n`) give the plain means, M2 and standard errors.

>>> import keras, numpy as np
>>> accumulator = AffinityAccumulator(["a", "b"], max_epochs=10, blocks=4)
>>> accumulator.build(keras.layers.Layer())       # the variables' owner, normally the model
>>> accumulator.mark_epoch()
>>> for value in (0.5, 1.5):
...     z = np.array([[0.0, value], [0.25, 0.0]], "float32")
...     accumulator.add(z, valid=np.ones((2, 2), bool), skipped=np.zeros((2, 2), bool))
>>> accumulator.mark_epoch()
>>> result = accumulator.result()
>>> result.matrix.tolist(), result.stderr[0, 1], result.steps, len(result.epochs), len(result.blocks)
([[0.0, 1.0], [0.25, 0.0]], np.float64(0.5), 2, 1, 2)
>>> z = np.array([[0.0, 4.0], [0.25, 0.0]], "float32")   # a third sample, standing for 2 steps
>>> accumulator.add(z, valid=np.ones((2, 2), bool), skipped=np.zeros((2, 2), bool), weight=2.0)
>>> result = accumulator.result()  # mean (0.5 + 1.5 + 2 · 4) / 4, M2 = 2² + 1² + 2 · 1.5² = 9.5, V1 = 4, V2 = 6,
>>> # stderr = sqrt(M2 · V2 / (V1 (V1² − V2))) = sqrt(57 / 40)
>>> float(result.matrix[0, 1]), round(float(result.stderr[0, 1]), 4), result.block_weights[-1][0, 1]
(2.5, 1.1937, np.float64(2.0))
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import tensorflow as tf
from absl import logging

from tag_tf.affinity.adaptive import standard_error
from tag_tf.affinity.estimates import mean_affinity
from tag_tf.affinity.result import TaskAffinity


class AffinityAccumulator:
    """Weighted sums, counts, weights, M2, skipped samples and affinity steps of a run, the
    cumulative sums at every epoch boundary (the first `max_epochs` epochs), and blocks of
    consecutive steps.

    Args:
      tasks: the task names, in the model's order.
      max_epochs: how many epoch boundaries are kept (the variables have a fixed shape).
      blocks: how many blocks of consecutive affinity steps are kept (even).
      groups: the candidate groups whose lookahead is measured (task names), if any.
    """

    def __init__(self, tasks: Sequence[str], max_epochs: int, blocks: int = 128,
                 groups: Sequence[Sequence[str]] = ()):
        self.tasks = tuple(tasks)
        self.max_epochs = max_epochs
        self.num_blocks = blocks
        self.groups = tuple(tuple(g) for g in groups)

    def build(self, owner) -> None:
        """Create the variables on `owner` (a Keras layer or model, which checkpoints them)."""
        k = len(self.tasks)
        state = dict(trainable=False, initializer="zeros", aggregation="only_first_replica")
        self.total = owner.add_weight(shape=(k, k), name="affinity_total", **state)
        self.count = owner.add_weight(shape=(k, k), name="affinity_count", **state)
        self.weight = owner.add_weight(shape=(k, k), name="affinity_weight", **state)
        self.weight2 = owner.add_weight(shape=(k, k), name="affinity_weight2", **state)
        self.skipped = owner.add_weight(shape=(), name="affinity_skipped", **state)
        self.steps = owner.add_weight(shape=(), name="affinity_steps", **state)
        # cumulative (total, weight) at every epoch boundary
        self.marks = owner.add_weight(shape=(self.max_epochs + 1, 2, k, k), name="affinity_marks", **state)
        self.num_marks = owner.add_weight(shape=(), name="affinity_num_marks", **state)
        self.m2 = owner.add_weight(shape=(k, k), name="affinity_m2", **state)
        self.block_total = owner.add_weight(shape=(self.num_blocks, k, k), name="affinity_block_total", **state)
        self.block_count = owner.add_weight(shape=(self.num_blocks, k, k), name="affinity_block_count", **state)
        self.block_weight = owner.add_weight(shape=(self.num_blocks, k, k), name="affinity_block_weight", **state)
        self.block_size = owner.add_weight(shape=(), name="affinity_block_size",
                                           **{**state, "initializer": "ones"})
        if self.groups:
            shape = (len(self.groups), k)
            self.group_total = owner.add_weight(shape=shape, name="affinity_group_total", **state)
            self.group_count = owner.add_weight(shape=shape, name="affinity_group_count", **state)
            self.group_m2 = owner.add_weight(shape=shape, name="affinity_group_m2", **state)
            self.group_weight = owner.add_weight(shape=shape, name="affinity_group_weight", **state)
            self.group_weight2 = owner.add_weight(shape=shape, name="affinity_group_weight2", **state)
            blocks = (self.num_blocks, *shape)
            self.group_block_total = owner.add_weight(shape=blocks, name="affinity_group_block_total", **state)
            self.group_block_count = owner.add_weight(shape=blocks, name="affinity_group_block_count", **state)
            self.group_block_weight = owner.add_weight(shape=blocks, name="affinity_group_block_weight", **state)

    def add(self, z, valid, skipped, group_z=None, group_valid=None, weight=1.0) -> None:
        """Add one affinity step: Z [k, k] where `valid`, and the count of `skipped` samples (pairs
        and groups); with candidate groups, also Z[G→j] [groups, k] where `group_valid`. `weight`:
        the optimizer steps this step's samples stand for (a scalar, the same on every replica)."""
        weight = tf.cast(weight, tf.float32)
        z, valid = _welford(self.total, self.count, self.weight, self.weight2, self.m2, z, valid, weight)
        if self.groups:
            group_z, group_valid = _welford(self.group_total, self.group_count, self.group_weight, self.group_weight2,
                                            self.group_m2, group_z, group_valid, weight)
        self._add_to_block(weight, z, valid, group_z, group_valid)
        self.skipped.assign_add(tf.reduce_sum(tf.cast(skipped, tf.float32)))
        self.steps.assign_add(1.0)

    def _add_to_block(self, weight, z, valid, group_z=None, group_valid=None) -> None:
        """Add the step to its block, first merging neighbouring blocks when every block is full
        (the candidate groups' blocks with the pairs')."""
        size, steps = self.block_size.value, self.steps.value
        full = steps >= self.num_blocks * size

        def merged(blocks):
            pairs = tf.reduce_sum(tf.reshape(blocks, (self.num_blocks // 2, 2, *blocks.shape[1:])), axis=1)
            return tf.where(full, tf.concat([pairs, tf.zeros_like(pairs)], axis=0), blocks)

        size = tf.where(full, 2.0 * size, size)
        index = tf.cast(tf.math.floor(steps / size), tf.int32)[None, None]
        updates = [(self.block_total, weight * z), (self.block_count, valid), (self.block_weight, weight * valid)]
        if self.groups:
            updates += [(self.group_block_total, weight * group_z), (self.group_block_count, group_valid),
                        (self.group_block_weight, weight * group_valid)]
        for blocks, value in updates:
            blocks.assign(tf.tensor_scatter_nd_add(merged(blocks.value), index, value[None]))
        self.block_size.assign(size)

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
        marks[index] = np.stack([self.total.numpy(), self.weight.numpy()])
        self.marks.assign(marks)
        self.num_marks.assign(index + 1.0)

    @property
    def started(self) -> bool:
        """Whether the first epoch boundary is recorded."""
        return bool(self.num_marks.numpy())

    def state(self) -> RunningState:
        """Per pair, float64 [k, k]: sample count, weights V1 = Σ w and V2 = Σ w², time-weighted
        mean (NaN where no sample) and M2."""
        weight = self.weight.numpy().astype(np.float64)
        return RunningState(count=self.count.numpy().astype(np.float64), weight=weight,
                            weight2=self.weight2.numpy().astype(np.float64),
                            mean=mean_affinity(self.total.numpy(), weight), m2=self.m2.numpy().astype(np.float64))

    def result(self) -> TaskAffinity:
        """The affinity so far: `matrix[source, target]`, its standard errors, per-epoch means,
        blocks, steps, skipped samples."""
        marks = self.marks.numpy()[: int(self.num_marks.numpy())]
        epochs = tuple(mean_affinity(end[0] - start[0], end[1] - start[1]) for start, end in zip(marks[:-1], marks[1:]))
        state = self.state()
        used = self.block_count.numpy().reshape(self.num_blocks, -1).sum(axis=1) > 0
        if self.groups:  # a block where only groups had samples is used too
            used |= self.group_block_count.numpy().reshape(self.num_blocks, -1).sum(axis=1) > 0
        block_counts, block_weights = self.block_count.numpy()[used], self.block_weight.numpy()[used]
        group_affinity, group_stderr, group_blocks, group_block_counts, group_block_weights = {}, {}, {}, {}, {}
        if self.groups:
            group_mean = mean_affinity(self.group_total.numpy(), self.group_weight.numpy())
            group_se = standard_error(self.group_count.numpy(), self.group_m2.numpy(), self.group_weight.numpy(),
                                      self.group_weight2.numpy())
            index = {t: j for j, t in enumerate(self.tasks)}
            for g, group in enumerate(self.groups):
                group_affinity[group] = {t: float(group_mean[g, index[t]]) for t in group}
                group_stderr[group] = {t: float(group_se[g, index[t]]) for t in group}
            counts = self.group_block_count.numpy()[used].astype(np.int64)  # [blocks, groups, k]
            weights = self.group_block_weight.numpy()[used].astype(np.float64)
            means = mean_affinity(self.group_block_total.numpy()[used], weights)
            for g, group in enumerate(self.groups):
                group_blocks[group] = {t: means[:, g, index[t]] for t in group}
                group_block_counts[group] = {t: counts[:, g, index[t]] for t in group}
                group_block_weights[group] = {t: weights[:, g, index[t]] for t in group}
        return TaskAffinity(
            tasks=self.tasks,
            matrix=state.mean,
            epochs=epochs,
            steps=int(self.steps.numpy()),
            skipped=int(self.skipped.numpy()),
            stderr=standard_error(state.count, state.m2, state.weight, state.weight2),
            blocks=tuple(mean_affinity(t, w) for t, w in zip(self.block_total.numpy()[used], block_weights)),
            block_counts=tuple(c.astype(np.int64) for c in block_counts),
            block_weights=tuple(w.astype(np.float64) for w in block_weights),
            group_affinity=group_affinity,
            group_stderr=group_stderr,
            group_blocks=group_blocks,
            group_block_counts=group_block_counts,
            group_block_weights=group_block_weights,
        )


class RunningState(NamedTuple):
    """The running state of every pair (float64 [k, k]): what `next_interval` reads."""

    count: np.ndarray
    weight: np.ndarray
    weight2: np.ndarray
    mean: np.ndarray
    m2: np.ndarray


def _welford(total, count, weight_sum, weight2_sum, m2, z, valid, weight):
    """Add the samples `z` where `valid`, each of weight `weight`, to the running (Σ w z, count,
    Σ w, Σ w², M2) variables (West's weighted Welford update: M2 += w (z − mean_before)
    (z − mean_after)); returns (z with invalid entries zeroed, valid as float)."""
    valid = tf.cast(valid, tf.float32)
    z = tf.where(valid > 0, tf.cast(z, tf.float32), 0.0)
    w = weight * valid
    new_total, new_weight = total.value + w * z, weight_sum.value + w
    mean_before = tf.math.divide_no_nan(total.value, weight_sum.value)
    m2.assign_add(w * (z - mean_before) * (z - tf.math.divide_no_nan(new_total, new_weight)))
    total.assign(new_total)
    count.assign_add(valid)
    weight_sum.assign(new_weight)
    weight2_sum.assign_add(w * weight)
    return z, valid
