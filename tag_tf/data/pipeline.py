"""Batching of the unbatched element datasets for training and evaluation.

>>> import tensorflow as tf
>>> ds = tf.data.Dataset.range(10)
>>> [int(b.shape[0]) for b in batched(ds, 4)]
[4, 4, 2]
>>> [int(b.shape[0]) for b in batched(ds, 4, shuffle_buffer=10, drop_remainder=True)]
[4, 4]
"""

from __future__ import annotations

import tensorflow as tf


def batched(
    dataset: tf.data.Dataset,
    batch_size: int,
    *,
    shuffle_buffer: int = 0,
    seed: int = 0,
    drop_remainder: bool = False,
    cache: bool = False,
) -> tf.data.Dataset:
    """Optionally cache and shuffle (reshuffled every epoch, by `seed`), then batch and prefetch.

    `cache=True` keeps the decoded elements in memory after the first epoch: use it only for data
    that fits (a CelebA sample, synthetic data), never for the full CelebA at large sizes.
    """
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}.")
    if cache:
        dataset = dataset.cache()
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
