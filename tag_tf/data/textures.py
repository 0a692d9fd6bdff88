"""Planted task groups where the grouping matters: transfer inside a group, interference across.

`planted_textures` makes the demo's data. Its generative process (one
`numpy.random.default_rng(seed)`):

1. Factors. Every example has one standard-normal factor z_g per group g (and `num_nuisance`
   more that no task reads): `PlantedStructure(factors_per_group=1)`.
2. Tasks. Group g has `tasks_per_group` binary tasks; task t's clean label is 1[s_g z_g > b_t],
   the same factor (s_g = ±1) cut at thresholds spread over [-threshold_range, threshold_range].
3. Images. Factor f is drawn as a texture: a grating of period `period` pixels with its own
   orientation (spread evenly over 180°) and colour, at a random phase for every example, with
   amplitude sigmoid(z_f):

       image = sigmoid(contrast * sum_f sigmoid(z_f) c_f cos(2π k_f · x + φ_nf) + pixel_noise * ε)

   The phase is random, so no fixed template (no linear read-out of the pixels) sees z_f: a
   network must rectify a filter tuned to the texture (a convolution channel and a ReLU) and pool
   its energy (`texture_energy`). A channel tuned to one texture reads nothing of another's factor,
   so every group's factor needs channels of its own: **the groups compete for the trunk's
   channels**. With a narrow trunk (the demo's 4 channels for 3 textures) a network holding
   several groups is pulled towards several textures at once and learns them late or not at all.
4. Labels. In the training split each task is labelled on its own part of the examples only
   (example n carries task t's label when (n + g) mod tasks_per_group == t; elsewhere -1, missing),
   and a labelled training answer is flipped with probability `label_noise` (default 0: none).
   Validation and test labels are complete and clean. A task's own labels are few and noisy;
   **pooled over its group they cover every training example once and teach the same factor**.

Why grouping matters, then:
- transfer: a network trained on a whole planted group learns z_g from all its labels;
  a single-task network learns it from 1/tasks_per_group of them (the demo trains on the first
  480 training images: 160 labels of its own against its group's 480, where a network fit on
  few labels reads its factor coarsely on every seed; with 533 against 1,600 it read it almost
  as well as its group's network, RESULTS.md). Label noise makes each label worth less: a label flipped with
  probability p carries (1 − 2p)² of a clean label's information about z_g (0.36 at p = 0.2);
  the demo keeps p = 0: at p = 0.2 the group's networks lost nearly as much as the single-task
  ones (SGD 0.05: +50 and +59 total test error), and with momentum 0.9 the affinity matrix lost
  its group structure (RESULTS.md);
- interference: a network holding tasks of several groups must learn several textures in its few
  channels, which every group's gradients pull their own way; its tasks' errors rise (with fewer
  channels than groups it cannot hold every factor at all);
- random groupings split each group's labels across networks and mix groups in each network.
  The planted grouping (one network per group) is the only one free of both losses.

>>> data = planted_textures(num_groups=2, tasks_per_group=2, num_examples=100, image_size=8)
>>> data.groups, data.input_name
([['g0_t0', 'g0_t1'], ['g1_t0', 'g1_t1']], 'image')
>>> image, labels = next(iter(data.splits["train"]))
>>> tuple(image.shape), {name: int(label) for name, label in labels.items()}
((8, 8, 3), {'g0_t0': 1, 'g0_t1': -1, 'g1_t0': -1, 'g1_t1': 0})
>>> labelled_fraction(data, "train")
{'g0_t0': 0.5, 'g0_t1': 0.5, 'g1_t0': 0.5, 'g1_t1': 0.5}
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tag_tf.data.synthetic import SPLIT_FRACTIONS, PlantedData, PlantedStructure, _check_positive
from tag_tf.tasks import Task

MISSING = -1


def planted_textures(num_groups: int = 3, tasks_per_group: int = 3, num_examples: int = 2000, image_size: int = 16,
                     seed: int = 0, *, num_nuisance: int = 0, threshold_range: float = 0.3, label_noise: float = 0.0,
                     period: float = 4.0, contrast: float = 1.5, pixel_noise: float = 0.3) -> PlantedData:
    """Texture images with planted task groups; see the module docstring for the process."""
    _check_positive(num_examples=num_examples, image_size=image_size)
    if not 0 <= label_noise < 0.5:
        raise ValueError(f"label_noise must be in [0, 0.5), got {label_noise!r}.")
    rng = np.random.default_rng(seed)
    structure = PlantedStructure(num_groups, tasks_per_group, factors_per_group=1, num_nuisance=num_nuisance,
                                 threshold_range=threshold_range)
    latents, directions, thresholds, groups = structure.draw(rng, num_examples)
    images = texture_images(rng, latents, image_size, period, contrast, pixel_noise)
    clean = (latents @ directions.T > thresholds).astype(np.int32)
    names = [name for group in groups for name in group]
    bounds = split_bounds(num_examples)
    splits, split_latents = {}, {}
    for i, split in enumerate(SPLIT_FRACTIONS):
        part = slice(bounds[i], bounds[i + 1])
        labels = clean[part]
        if split == "train":
            labels = np.where(rng.random(labels.shape) < label_noise, 1 - labels, labels)
            labels = np.where(label_parts(len(labels), num_groups, tasks_per_group), labels, MISSING)
        splits[split] = tf.data.Dataset.from_tensor_slices(
            (images[part], {name: labels[:, j] for j, name in enumerate(names)}))
        split_latents[split] = latents[part]
    return PlantedData(splits, [Task(n) for n in names], groups, "image", split_latents, directions, thresholds)


def label_parts(num_examples: int, num_groups: int, tasks_per_group: int) -> np.ndarray:
    """bool [examples, tasks]: which training labels exist. Example n carries the label of task t
    of group g when (n + g) mod tasks_per_group == t: one label per group per example.

    >>> label_parts(3, num_groups=2, tasks_per_group=3).astype(int)
    array([[1, 0, 0, 0, 1, 0],
           [0, 1, 0, 0, 0, 1],
           [0, 0, 1, 1, 0, 0]])
    """
    n = np.arange(num_examples)[:, None]
    t = np.tile(np.arange(tasks_per_group), num_groups)[None, :]
    g = np.repeat(np.arange(num_groups), tasks_per_group)[None, :]
    return (n + g) % tasks_per_group == t


def split_bounds(num_examples: int) -> np.ndarray:
    """Start of each split and the end, in `SPLIT_FRACTIONS` order.

    >>> split_bounds(100).tolist()
    [0, 80, 90, 100]
    """
    bounds = np.cumsum([0] + [round(f * num_examples) for f in SPLIT_FRACTIONS.values()])
    bounds[-1] = num_examples
    return bounds


def texture_parameters(num_factors: int, period: float) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies [F, 2] in cycles per pixel, colours [F, 3] of unit norm): factor f's grating
    runs at angle 180°·f/F with period `period` pixels, in a colour of its own (hue 360°·f/F).

    >>> frequencies, colours = texture_parameters(2, period=4.0)
    >>> frequencies.round(3).tolist(), colours.round(3).tolist()
    ([[0.25, 0.0], [0.0, 0.25]], [[0.816, -0.408, -0.408], [-0.816, 0.408, 0.408]])
    """
    angles = np.pi * np.arange(num_factors) / num_factors
    frequencies = np.stack([np.cos(angles), np.sin(angles)], -1) / period
    hues = 2 * np.pi * np.arange(num_factors)[:, None] / num_factors + np.array([0.0, 2.0, 4.0]) * np.pi / 3
    colours = np.cos(hues)  # zero-mean over RGB: a colour direction, not a brightness
    return frequencies, colours / np.linalg.norm(colours, axis=1, keepdims=True)


def _waves(size: int, frequencies: np.ndarray) -> np.ndarray:
    """2π k_f · x for every pixel x and factor f: [size·size, F]."""
    coords = np.stack(np.meshgrid(np.arange(size), np.arange(size), indexing="ij"), -1).reshape(-1, 2)
    return 2 * np.pi * coords @ frequencies.T


def texture_images(rng, latents: np.ndarray, size: int, period: float, contrast: float,
                   pixel_noise: float) -> np.ndarray:
    """float32 [N, size, size, 3] in (0, 1): factor f as a grating of its own orientation and
    colour (`texture_parameters`), random phase per example, amplitude sigmoid(z_f) (step 3 of the
    module docstring)."""
    num, num_factors = latents.shape
    frequencies, colours = texture_parameters(num_factors, period)
    phases = rng.uniform(0, 2 * np.pi, (num, num_factors))
    waves = np.cos(_waves(size, frequencies)[None] + phases[:, None, :])            # [N, P, F]
    amplitude = 1.0 / (1.0 + np.exp(-latents))                                        # [N, F]
    mix = np.einsum("npf,nf,fc->npc", waves, amplitude, colours)
    noise = rng.standard_normal(mix.shape)
    images = 1.0 / (1.0 + np.exp(-(contrast * mix + pixel_noise * noise)))
    return images.reshape(num, size, size, 3).astype(np.float32)


def texture_energy(images: np.ndarray, num_factors: int, period: float) -> np.ndarray:
    """[N, F]: the energy of each factor's texture in each image, |Σ_x (image(x) − 0.5) · c_f
    e^(−2πi k_f · x)| / pixels: what one channel tuned to texture f reads after rectifying and
    pooling (a filter matched to the grating, then ReLU, then average)."""
    frequencies, colours = texture_parameters(num_factors, period)
    num, size = images.shape[0], images.shape[1]
    projected = (images.reshape(num, size * size, 3) - 0.5) @ colours.T            # [N, P, F]
    waves = _waves(size, frequencies)                                                # [P, F]
    energy = np.abs(np.einsum("npf,pf->nf", projected, np.exp(-1j * waves)))
    return energy / (size * size)


def labelled_fraction(data: PlantedData, split: str) -> dict[str, float]:
    """{task: fraction of the split's examples labelled for it}."""
    labels = [y for _, y in data.splits[split].as_numpy_iterator()]
    return {t.name: float(np.mean([y[t.name] != MISSING for y in labels])) for t in data.tasks}
