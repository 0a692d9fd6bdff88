"""The data of a run: its splits and tasks (`load_data`) and their batches (`batches`).

>>> from tag_tf.run.presets import PRESETS
>>> data = load_data(PRESETS["demo"].replace(num_examples=300, train_examples=0, tasks=("g1_t0", "g0_t1")))
>>> [t.name for t in data.tasks], sorted(data.splits)
(['g1_t0', 'g0_t1'], ['test', 'train', 'validation'])
"""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tag_tf.data import celeba, pipeline, scenes, synthetic, textures
from tag_tf.run.config import RunConfig
from tag_tf.run.recipe import load_recipe
from tag_tf.tasks import Task, as_tasks


@dataclasses.dataclass(frozen=True)
class RunData:
    """The unbatched splits of a run's data and its tasks (and the planted grouping, if any)."""

    splits: dict[str, tf.data.Dataset]
    tasks: list[Task]
    planted_grouping: list[list[str]] | None = None


def load_data(config: RunConfig) -> RunData:
    """The run's train / validation / test splits, unbatched; the training split cut to its first
    `DataConfig.train_examples` examples when that is set."""
    loaded = _load(config)
    if not config.data.train_examples:
        return loaded
    splits = dict(loaded.splits)
    splits["train"] = first_examples(splits["train"], config.data.train_examples)
    return dataclasses.replace(loaded, splits=splits)


def first_examples(dataset: tf.data.Dataset, count: int) -> tf.data.Dataset:
    """The first `count` elements of `dataset`; ValueError if it is known to hold fewer.

    >>> [int(x) for x in first_examples(tf.data.Dataset.range(10), 3)]
    [0, 1, 2]
    """
    size = int(dataset.cardinality())
    if size >= 0 and size < count:
        raise ValueError(f"train_examples={count} exceeds the training split's {size} examples.")
    return dataset.take(count)


def _load(config: RunConfig) -> RunData:
    data, seed = config.data, config.runtime.seed
    if data.dataset == "recipe":
        recipe = load_recipe(data.recipe)
        by_name = {t.name: t for t in recipe.tasks}
        return RunData(recipe.load_data(), [by_name[n] for n in data.tasks] if data.tasks else recipe.tasks)
    if data.dataset.startswith("planted"):
        make = {"planted": synthetic.planted_groups, "planted_tabular": synthetic.planted_groups_tabular,
                "planted_textures": textures.planted_textures}[data.dataset]
        size = {} if data.dataset == "planted_tabular" else {"image_size": data.image_size}
        planted = make(data.planted_groups, data.tasks_per_group, data.num_examples, seed=seed, **size)
        by_name = {t.name: t for t in planted.tasks}
        tasks = [by_name[n] for n in data.tasks] if data.tasks else planted.tasks
        return RunData(planted.splits, tasks, planted.groups)
    if data.dataset == "scenes":
        rendered = scenes.scenes(data.num_examples, data.image_size, seed=seed)
        by_name = {t.name: t for t in rendered.tasks}
        return RunData(rendered.splits, [by_name[n] for n in data.tasks] if data.tasks else rendered.tasks,
                       rendered.groups)
    tasks = as_tasks(data.tasks)
    if data.dataset == "celeba_folder":
        splits = {s: celeba.load_folder(data.celeba_dir, tasks, s, data.image_size, seed) for s in celeba.SPLITS}
    else:
        splits = {s: celeba.load_tfds(tasks, s, data.image_size, data.tfds_data_dir or None,
                                      data.tfds_manual_dir or None) for s in celeba.SPLITS}
    return RunData(splits, tasks)


def batches(config: RunConfig, data: RunData, split: str) -> tf.data.Dataset:
    """Batched split: shuffled for training, in order for evaluation."""
    training = split == "train"
    dataset = pipeline.batched(
        data.splits[split], config.train.batch_size, shuffle_buffer=4096 if training else 0,
        seed=config.runtime.seed, cache=config.data.cache,
    )
    # A fixed number of steps per epoch may outrun the split: cycle through it.
    return dataset.repeat() if training and config.train.steps_per_epoch else dataset
