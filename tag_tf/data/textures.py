"""Planted task groups where the grouping matters: transfer inside a group, interference across.

`planted_textures` makes the demo's data. Its generative process (one
`numpy.random.default_rng(seed)`):

1. Factors. Every example has one standard-normal factor z_g per group g (and `num_nuisance`
   more that no task reads): `PlantedStructure(factors_per_group=1)`.
2. Tasks. Group g has `tasks_per_group` binary tasks; task t's clean label is 1[s_g z_g > b_t],
   the same factor (s_g = ±1) cut at thresholds spread over [-threshold_range, threshold_range].
3. Images. Factor f is drawn as a *pair* of textures that pull in opposite directions, (f, +)
   with amplitude sigmoid(p_f + z_f) and (f, −) with amplitude sigmoid(p_f − z_f), where
   p_f ~ N(0, presence_std²) is how strongly the pair shows in this example, a nuisance both
   share. Each texture is a grating of period `period` pixels at a random phase for every example;
   the pair of factor f is in colour f mod 3 (pure red, green, blue), at orientations θ_f and
   θ_f + 90° (θ_f = 0° for the first three factors, then steps of 90°/⌈F/3⌉; `texture_parameters`):

       image = sigmoid(contrast * sum_texture amplitude · colour · cos(2π k · x + φ) + pixel_noise * ε)

   Only the pair reveals z_f: logit(a₊) − logit(a₋) = 2 z_f whatever p_f, while either texture
   alone reads z_f + p_f, whose correlation with z_f is 1/√(1 + presence_std²) (0.86 at the
   default 0.6). The phase is random, so no fixed template (no linear read-out of the pixels) sees
   any of it: a network reads a texture's amplitude with a convolution channel tuned to it, rectified
   and pooled (`texture_energy`). Such a channel grows with the energy of every texture it sees,
   so one channel cannot read a difference of two amplitudes: **every group's factor needs two
   channels of its own**, and the groups compete for the trunk's channels. A network holding one
   group needs 2; holding every group of the demo, 6, where its trunk has 4: it reads at most four
   of the six textures, so at least two groups' factors only coarsely, or one not at all, whichever
   channels it settles on.
4. Labels. In the training split each task is labelled on its own part of the examples only
   (example n carries task t's label when (n + g) mod tasks_per_group == t; elsewhere -1, missing),
   and a labelled training answer is flipped with probability `label_noise` (default 0: none).
   Validation and test labels are complete and clean. A task's own labels are few;
   **pooled over its group they cover every training example once and teach the same factor**.

Why grouping matters, then:
- transfer: a network trained on a whole planted group learns to read z_g from all its labels;
  a single-task network learns the same two textures and their difference from 1/tasks_per_group
  of them (in the demo's draw, below: 160 labels of its own against its group's 480). Label
  noise makes each label worth less: a label flipped with probability p carries (1 − 2p)² of a
  clean label's information about z_g (0.36 at p = 0.2);
- interference: a network holding tasks of several groups must read two textures per group in
  its few channels; past the trunk's width the groups' factors are read coarsely (from one
  texture) or not at all, and their tasks' errors rise. Under equal loss weights such a network
  sometimes leaves one group's pair unread from the start, which also hides that group from TAG's
  affinity run (that run is this network); the demo balances the losses with GradNorm, which raises
  the weights of lagging tasks (RESULTS.md);
- random groupings split each group's labels across networks and mix groups in each network.
  The planted grouping (one network per group) is the only one free of both losses.

The demo's draw (`tag_tf.run.presets`, "demo", which also holds its training settings): the
defaults' 3 groups of 3 tasks, 10,000 images of 16x16 split 8,000 / 1,000 / 1,000, and every
network trains on the first 480 training images only. Validation and test hold 1,000 images each,
so one error on a task is 0.1 point and networks can be told apart.

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
                     presence_std: float = 0.6, period: float = 4.0, contrast: float = 1.5,
                     pixel_noise: float = 0.3) -> PlantedData:
    """Texture images with planted task groups; see the module docstring for the process."""
    _check_positive(num_examples=num_examples, image_size=image_size)
    if not 0 <= label_noise < 0.5:
        raise ValueError(f"label_noise must be in [0, 0.5), got {label_noise!r}.")
    if not presence_std >= 0:
        raise ValueError(f"presence_std must be >= 0, got {presence_std!r}.")
    rng = np.random.default_rng(seed)
    structure = PlantedStructure(num_groups, tasks_per_group, factors_per_group=1, num_nuisance=num_nuisance,
                                 threshold_range=threshold_range)
    latents, directions, thresholds, groups = structure.draw(rng, num_examples)
    images = texture_images(rng, latents, image_size, period, contrast, pixel_noise, presence_std)
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
    """(frequencies [2F, 2] in cycles per pixel, colours [2F, 3]) of the 2F textures, factor f's
    pair at rows 2f (its + texture) and 2f + 1 (its − texture): gratings of period `period` pixels at
    θ_f and θ_f + 90°, in the pure colour f mod 3 (red, green, blue); θ_f is 0° for the first three
    factors and steps by 90°/⌈F/3⌉ for every further three.

    >>> frequencies, colours = texture_parameters(2, period=4.0)
    >>> frequencies.round(3).tolist(), colours.tolist()
    ([[0.25, 0.0], [0.0, 0.25], [0.25, 0.0], [0.0, 0.25]], [[1.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]])
    """
    factors = np.arange(num_factors)
    base = np.pi / 2 * (factors // 3) / -(-num_factors // 3)
    angles = np.stack([base, base + np.pi / 2], -1).reshape(-1)
    frequencies = np.stack([np.cos(angles), np.sin(angles)], -1) / period
    return frequencies, np.repeat(np.eye(3)[factors % 3], 2, axis=0)


def pair_amplitudes(latents: np.ndarray, presence: np.ndarray) -> np.ndarray:
    """[N, 2F]: the amplitudes of factor f's pair of textures, sigmoid(p_f + z_f) and
    sigmoid(p_f − z_f) (step 3 of the module docstring); their logits differ by 2 z_f.

    >>> pair_amplitudes(np.array([[1.0]]), presence=np.array([[0.5]])).round(3).tolist()
    [[0.818, 0.378]]
    """
    logits = np.stack([presence + latents, presence - latents], -1).reshape(len(latents), -1)
    return 1.0 / (1.0 + np.exp(-logits))


def _waves(size: int, frequencies: np.ndarray) -> np.ndarray:
    """2π k · x for every pixel x and every frequency k: [size·size, len(frequencies)]."""
    coords = np.stack(np.meshgrid(np.arange(size), np.arange(size), indexing="ij"), -1).reshape(-1, 2)
    return 2 * np.pi * coords @ frequencies.T


def texture_images(rng, latents: np.ndarray, size: int, period: float, contrast: float, pixel_noise: float,
                   presence_std: float) -> np.ndarray:
    """float32 [N, size, size, 3] in (0, 1): factor f as its pair of gratings (`texture_parameters`),
    random phase per example, amplitudes `pair_amplitudes` (step 3 of the module docstring)."""
    num, num_factors = latents.shape
    presence = presence_std * rng.standard_normal((num, num_factors))
    frequencies, colours = texture_parameters(num_factors, period)
    phases = rng.uniform(0, 2 * np.pi, (num, 2 * num_factors))
    waves = np.cos(_waves(size, frequencies)[None] + phases[:, None, :])            # [N, P, 2F]
    mix = np.einsum("npf,nf,fc->npc", waves, pair_amplitudes(latents, presence), colours)
    noise = rng.standard_normal(mix.shape)
    images = 1.0 / (1.0 + np.exp(-(contrast * mix + pixel_noise * noise)))
    return images.reshape(num, size, size, 3).astype(np.float32)


def texture_energy(images: np.ndarray, num_factors: int, period: float) -> np.ndarray:
    """[N, 2F]: the energy of each texture (in `texture_parameters`' order) in each image,
    |Σ_x (image(x) − 0.5) · c e^(−2πi k · x)| / pixels for the texture's colour c and frequency k:
    what one channel tuned to that texture reads after rectifying and pooling (a filter matched to
    the grating, then ReLU, then average)."""
    frequencies, colours = texture_parameters(num_factors, period)
    num, size = images.shape[0], images.shape[1]
    projected = (images.reshape(num, size * size, 3) - 0.5) @ colours.T            # [N, P, 2F]
    waves = _waves(size, frequencies)                                                # [P, 2F]
    energy = np.abs(np.einsum("npf,pf->nf", projected, np.exp(-1j * waves)))
    return energy / (size * size)


def labelled_fraction(data: PlantedData, split: str) -> dict[str, float]:
    """{task: fraction of the split's examples labelled for it}."""
    labels = [y for _, y in data.splits[split].as_numpy_iterator()]
    return {t.name: float(np.mean([y[t.name] != MISSING for y in labels])) for t in data.tasks}
