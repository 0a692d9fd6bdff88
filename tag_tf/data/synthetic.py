"""Synthetic multi-task data with planted task groups: the right grouping is known by construction.

Generative process (all draws from one `numpy.random.default_rng(seed)`):

1. Latent factors. Every example has `F = num_groups * factors_per_group + num_nuisance`
   independent standard-normal factors z. Group g owns the block z_g of `factors_per_group`
   factors; the nuisance factors belong to no task.
2. Tasks. Group g has `tasks_per_group` binary tasks. Task t of group g has a direction
   w_t = normalise(u_g + spread * e_t) inside group g's block (u_g, e_t standard normal), a
   threshold b_t (the group's thresholds are evenly spaced in [-threshold_range, threshold_range])
   and label y_t = 1[w_t . z_g > b_t]. Tasks of one group read nearly the same projection of the
   same factors, cut at different places, so learning one helps the others; tasks of different
   groups read independent factors, so they share nothing but the trunk's capacity.
3. Observations.
   - images (`planted_groups`): every factor f has a fixed smooth colour pattern P_f
     (a few random plane waves, [S, S, 3], unit RMS); the image is
     sigmoid(sum_f z_f P_f / sqrt(F) * contrast + pixel_noise * eps), float32 in [0, 1].
   - features (`planted_groups_tabular`): x = z M / sqrt(F) + feature_noise * eps with a fixed
     random mixing matrix M [F, num_features].
4. Splits. The first 80% of the examples are "train", the next 10% "validation", the last 10%
   "test".

Elements have the same structure as the CelebA loaders: `(image or features, {task: int32 0/1})`.

Example:

>>> data = planted_groups(num_groups=2, tasks_per_group=2, num_examples=100, image_size=8)
>>> data.groups
[['g0_t0', 'g0_t1'], ['g1_t0', 'g1_t1']]
>>> image, labels = next(iter(data.splits["train"]))
>>> tuple(image.shape), sorted(labels)
((8, 8, 3), ['g0_t0', 'g0_t1', 'g1_t0', 'g1_t1'])
"""

from __future__ import annotations

import dataclasses

import numpy as np
import tensorflow as tf

from tag_tf.tasks import Task

SPLIT_FRACTIONS = {"train": 0.8, "validation": 0.1, "test": 0.1}


@dataclasses.dataclass(frozen=True)
class PlantedData:
    """A planted-group data set.

    Attributes:
      splits: {"train" | "validation" | "test": unbatched tf.data.Dataset}.
      tasks: the binary tasks, group by group.
      groups: the planted grouping, as lists of task names.
      input_name: "image" or "features", the name of the model input that fits the data.
      latents: {split: float32 [N, F]}, the factors every example was made from.
      directions: float32 [num_tasks, F] and thresholds: float32 [num_tasks]; task t's label is
        1[latents @ directions[t] > thresholds[t]].
    """

    splits: dict[str, tf.data.Dataset]
    tasks: list[Task]
    groups: list[list[str]]
    input_name: str
    latents: dict[str, np.ndarray]
    directions: np.ndarray
    thresholds: np.ndarray


@dataclasses.dataclass(frozen=True)
class PlantedStructure:
    """The planted groups and their factors (steps 1 and 2 of the module docstring).

    >>> structure = PlantedStructure(num_groups=2, tasks_per_group=2)
    >>> latents, directions, thresholds, groups = structure.draw(np.random.default_rng(0), num_examples=5)
    >>> latents.shape, directions.shape, thresholds.tolist(), groups
    ((5, 6), (4, 6), [-0.5, 0.5, -0.5, 0.5], [['g0_t0', 'g0_t1'], ['g1_t0', 'g1_t1']])
    """

    num_groups: int = 3
    tasks_per_group: int = 3
    factors_per_group: int = 2
    num_nuisance: int = 2
    spread: float = 0.1
    threshold_range: float = 0.5

    def __post_init__(self):
        _check_positive(num_groups=self.num_groups, tasks_per_group=self.tasks_per_group,
                        factors_per_group=self.factors_per_group)

    def draw(self, rng, num_examples: int):
        """(latents [N, F], directions [tasks, F], thresholds [tasks], groups), drawn from `rng`."""
        g_count, per_group, factors = self.num_groups, self.tasks_per_group, self.factors_per_group
        num_factors = g_count * factors + self.num_nuisance
        latents = rng.standard_normal((num_examples, num_factors)).astype(np.float32)
        directions = np.zeros((g_count * per_group, num_factors), np.float32)
        for g in range(g_count):
            block = slice(g * factors, (g + 1) * factors)
            center = rng.standard_normal(factors)
            for t in range(per_group):
                w = center + self.spread * rng.standard_normal(factors)
                directions[g * per_group + t, block] = w / np.linalg.norm(w)
        cuts = np.linspace(-self.threshold_range, self.threshold_range, per_group) if per_group > 1 else [0.0]
        thresholds = np.tile(np.asarray(cuts, np.float32), g_count)
        return latents, directions, thresholds, task_names(g_count, per_group)


def planted_groups(num_groups: int = 3, tasks_per_group: int = 3, num_examples: int = 3000, image_size: int = 32,
                   seed: int = 0, *, contrast: float = 2.0, pixel_noise: float = 0.2, **structure) -> PlantedData:
    """Images with planted task groups; see the module docstring for the process.

    `structure`: the other fields of `PlantedStructure` (factors_per_group, num_nuisance, spread,
    threshold_range).
    """
    _check_positive(num_examples=num_examples, image_size=image_size)
    rng = np.random.default_rng(seed)
    latents, directions, thresholds, groups = PlantedStructure(num_groups, tasks_per_group, **structure).draw(
        rng, num_examples)
    patterns = _smooth_patterns(rng, latents.shape[1], image_size)
    mix = latents @ patterns.reshape(len(patterns), -1) / np.sqrt(latents.shape[1])
    noise = rng.standard_normal(mix.shape)
    images = 1.0 / (1.0 + np.exp(-(contrast * mix + pixel_noise * noise)))
    images = images.reshape(num_examples, image_size, image_size, 3).astype(np.float32)
    return _assemble(images, latents, directions, thresholds, groups, "image")


def planted_groups_tabular(num_groups: int = 3, tasks_per_group: int = 3, num_examples: int = 3000,
                           num_features: int = 32, seed: int = 0, *, feature_noise: float = 0.1,
                           **structure) -> PlantedData:
    """Feature vectors with planted task groups, for MLP trunks; see the module docstring.

    `structure`: as for `planted_groups`.
    """
    _check_positive(num_examples=num_examples, num_features=num_features)
    rng = np.random.default_rng(seed)
    latents, directions, thresholds, groups = PlantedStructure(num_groups, tasks_per_group, **structure).draw(
        rng, num_examples)
    mixing = rng.standard_normal((latents.shape[1], num_features))
    features = latents @ mixing / np.sqrt(latents.shape[1])
    features = (features + feature_noise * rng.standard_normal(features.shape)).astype(np.float32)
    return _assemble(features, latents, directions, thresholds, groups, "features")


def task_names(num_groups: int, tasks_per_group: int) -> list[list[str]]:
    """The planted groups' task names: task t of group g is "g<g>_t<t>".

    >>> task_names(2, 2)
    [['g0_t0', 'g0_t1'], ['g1_t0', 'g1_t1']]
    """
    return [[f"g{g}_t{t}" for t in range(tasks_per_group)] for g in range(num_groups)]


def _smooth_patterns(rng, num_factors: int, size: int, waves: int = 3) -> np.ndarray:
    """num_factors smooth colour patterns [size, size, 3] of unit RMS, from random plane waves."""
    coords = np.stack(np.meshgrid(np.arange(size), np.arange(size), indexing="ij"), -1) / size
    patterns = np.zeros((num_factors, size, size, 3))
    for f in range(num_factors):
        for _ in range(waves):
            frequency = rng.uniform(-3.0, 3.0, size=2)
            phase = rng.uniform(0, 2 * np.pi)
            colour = rng.standard_normal(3)
            wave = np.cos(2 * np.pi * coords @ frequency + phase)
            patterns[f] += wave[..., None] * colour
        patterns[f] /= np.sqrt(np.mean(patterns[f] ** 2))
    return patterns


def _assemble(inputs, latents, directions, thresholds, groups, input_name) -> PlantedData:
    labels = (latents @ directions.T > thresholds).astype(np.int32)
    names = [name for group in groups for name in group]
    bounds = np.cumsum([0] + [round(f * len(inputs)) for f in SPLIT_FRACTIONS.values()])
    bounds[-1] = len(inputs)
    splits, split_latents = {}, {}
    for i, split in enumerate(SPLIT_FRACTIONS):
        part = slice(bounds[i], bounds[i + 1])
        split_labels = {name: labels[part, j] for j, name in enumerate(names)}
        splits[split] = tf.data.Dataset.from_tensor_slices((inputs[part], split_labels))
        split_latents[split] = latents[part]
    return PlantedData(splits, [Task(n) for n in names], groups, input_name, split_latents, directions, thresholds)


def _check_positive(**values) -> None:
    for name, value in values.items():
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")
