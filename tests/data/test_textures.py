"""The demo's planted texture data: its documented quantities, checked on the generator alone
(no training): pooled labels teach a group's factor, a factor needs two channels of its own."""

import numpy as np
import pytest

from tag_tf.data import textures
from tag_tf.run import PRESETS


@pytest.fixture(scope="module")
def data():
    return textures.planted_textures(num_groups=3, tasks_per_group=3, num_examples=500, image_size=16, seed=0,
                                     label_noise=0.1)


def arrays(data, split):
    pairs = list(data.splits[split].as_numpy_iterator())
    images = np.stack([x for x, _ in pairs])
    labels = np.stack([[y[t.name] for t in data.tasks] for _, y in pairs], axis=1)  # [tasks, N]
    return images, labels.T


def clean_labels(data, split):
    return (data.latents[split] @ data.directions.T > data.thresholds).astype(np.int32)


def test_a_groups_pooled_labels_cover_every_example_and_teach_its_one_factor(data):
    _, labels = arrays(data, "train")
    labelled = labels != textures.MISSING
    n = len(labels)
    # each task is labelled on a third of the examples; pooled over a group, every example exactly once
    assert labelled.mean(axis=0) == pytest.approx([1 / 3] * 9, abs=1 / n)
    assert (labelled.reshape(n, 3, 3).sum(axis=2) == 1).all()
    # the tasks of a group read the same factor (the same direction, ± its sign), nothing else
    for g in range(3):
        rows = data.directions[3 * g:3 * g + 3]
        assert (np.abs(rows) == np.eye(3)[g]).all()
    # the pooled labels of a group are its factor cut at the task's threshold, flipped at the noise rate
    clean = clean_labels(data, "train")
    agreement = (labels == clean)[labelled].mean()
    assert 0.86 < agreement < 0.94  # label_noise = 0.1
    # ... and say nothing about another group's factor
    z = data.latents["train"]
    for g in range(3):
        pooled = np.where(labelled[:, 3 * g:3 * g + 3], labels[:, 3 * g:3 * g + 3], 0).sum(axis=1)
        signed = z * np.sign(data.directions[3 * g:3 * g + 3].sum(axis=0))
        assert np.corrcoef(pooled, signed[:, g])[0, 1] > 0.5
        assert all(abs(np.corrcoef(pooled, z[:, h])[0, 1]) < 0.15 for h in range(3) if h != g)


def test_each_factor_is_a_pair_of_textures_two_channels_read_and_one_cannot(data):
    images, _ = arrays(data, "train")
    z = data.latents["train"]
    energy = textures.texture_energy(images, num_factors=3, period=4.0)  # [N, 6]: group g's pair at 2g, 2g + 1
    correlation = np.corrcoef(energy.T, z.T)[:6, 6:]  # [texture, factor]
    coarse = 1 / np.sqrt(1 + 0.6 ** 2)  # either texture reads z_g + p_g: 0.86 at the default presence_std
    for g in range(3):
        # a channel matched to one texture of the pair reads z_g coarsely, with the pair's sign ...
        assert correlation[2 * g, g] == pytest.approx(coarse, abs=0.04)
        assert correlation[2 * g + 1, g] == pytest.approx(-coarse, abs=0.04)
        # ... two channels, one per texture, read it well (the presence cancels in the difference) ...
        pair = energy[:, 2 * g] - energy[:, 2 * g + 1]
        assert np.corrcoef(pair, z[:, g])[0, 1] > 0.97
        # ... and one channel matched to both at once (random phases: the energies add) reads nothing of it
        both = energy[:, 2 * g] ** 2 + energy[:, 2 * g + 1] ** 2
        assert abs(np.corrcoef(both, z[:, g])[0, 1]) < 0.15
        # no texture of group g reads another group's factor
        assert np.abs(np.delete(correlation[2 * g:2 * g + 2], g, axis=1)).max() < 0.15
    pixels = images.reshape(len(images), -1)
    linear = np.corrcoef(pixels.T, z.T)[:-3, -3:]  # random phases: no pixel (no fixed template) sees a factor
    assert np.abs(linear).max() < 0.3 and np.abs(linear).mean() < 0.08


def test_the_demo_trunk_holds_one_groups_textures_not_every_groups():
    """Every group's factor needs two channels of its own (the test above: one per texture of its
    pair); the demo's trunk holds one group's pair with room to spare, not every group's."""
    demo = PRESETS["demo"]
    assert demo.data.dataset == "planted_textures"
    channels_per_group = 2
    assert channels_per_group <= demo.model.trunk_filters < channels_per_group * demo.data.planted_groups


def test_the_pairs_are_in_pure_colours_at_right_angles():
    frequencies, colours = textures.texture_parameters(6, period=4.0)
    # factor f's pair: rows 2f and 2f + 1, at right angles to each other, in colour f mod 3
    np.testing.assert_allclose((frequencies[0::2] * frequencies[1::2]).sum(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(np.linalg.norm(frequencies, axis=1), 0.25)
    np.testing.assert_array_equal(colours.argmax(axis=1), [0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2])
    # factors 3-5 share the colours of 0-2, so their gratings turn by 45 degrees
    angles = np.degrees(np.arctan2(frequencies[:, 1], frequencies[:, 0])).round(6)
    assert angles[0::2].tolist() == [0, 0, 0, 45, 45, 45]


def test_bad_presence_std_is_refused():
    with pytest.raises(ValueError, match=r"presence_std must be >= 0, got -0.1"):
        textures.planted_textures(num_examples=20, presence_std=-0.1)


def test_label_noise_is_the_rate_measured_on_the_generated_labels():
    """label_noise = 0.2: the fraction of labelled training answers
    that differ from the clean label is 0.2 within three binomial standard deviations, overall and
    for every task; unlabelled answers are exactly the ones `label_parts` leaves out."""
    data = textures.planted_textures(num_groups=3, tasks_per_group=3, num_examples=3000, image_size=4, seed=1,
                                     label_noise=0.2)
    _, labels = arrays(data, "train")
    labelled = labels != textures.MISSING
    np.testing.assert_array_equal(labelled, textures.label_parts(len(labels), 3, 3))
    flipped = labels != clean_labels(data, "train")
    answers = labelled.sum()  # 2,400 training images, one label per group each: 7,200 answers
    assert answers == 7200
    assert abs(flipped[labelled].mean() - 0.2) < 3 * np.sqrt(0.2 * 0.8 / answers)
    per_task = (flipped & labelled).sum(axis=0) / labelled.sum(axis=0)  # 800 answers per task
    assert np.abs(per_task - 0.2).max() < 3.5 * np.sqrt(0.2 * 0.8 / 800)
    # a flipped label carries (1 - 2p)^2 = 0.36 of a clean one's information on its factor: the
    # correlation of the noisy labels with the signed factor is 1 - 2p = 0.6 times the clean labels'
    # (pooled over the 7,200 answers: the ratio's standard error is about 0.012)
    signed = data.latents["train"] @ data.directions.T  # [N, tasks]: s_g z_g for each task's group
    clean = clean_labels(data, "train")
    noisy_r = np.corrcoef(labels[labelled], signed[labelled])[0, 1]
    clean_r = np.corrcoef(clean[labelled], signed[labelled])[0, 1]
    assert noisy_r / clean_r == pytest.approx(0.6, abs=0.04)


def test_validation_and_test_labels_are_complete_and_clean(data):
    for split in ("validation", "test"):
        _, labels = arrays(data, split)
        np.testing.assert_array_equal(labels, clean_labels(data, split))


def test_bad_label_noise_is_refused():
    with pytest.raises(ValueError, match=r"label_noise must be in \[0, 0.5\), got 0.5"):
        textures.planted_textures(num_examples=20, label_noise=0.5)
