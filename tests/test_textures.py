"""The demo's planted texture data: its documented quantities, checked on the generator alone
(no training): pooled labels teach a group's factor, a factor needs a channel of its own."""

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


def test_each_factor_is_a_texture_one_channel_reads_and_no_pixel_template_does(data):
    images, _ = arrays(data, "train")
    z = data.latents["train"]
    energy = textures.texture_energy(images, num_factors=3, period=4.0)
    correlation = np.corrcoef(energy.T, z.T)[:3, 3:]  # [texture, factor]
    assert np.diag(correlation).min() > 0.9  # a channel matched to texture g reads z_g ...
    assert np.abs(correlation[~np.eye(3, dtype=bool)]).max() < 0.15  # ... and nothing of the other groups'
    pixels = images.reshape(len(images), -1)
    linear = np.corrcoef(pixels.T, z.T)[:-3, -3:]  # random phases: no pixel (no fixed template) sees a factor
    assert np.abs(linear).max() < 0.3 and np.abs(linear).mean() < 0.08


def test_the_demo_trunk_has_few_channels_for_its_groups_textures():
    """Every group's factor needs a channel of its own (the test above: a channel tuned to one
    texture reads nothing of another's); the demo's trunk has barely more than one per group."""
    demo = PRESETS["demo"]
    assert demo.data.dataset == "planted_textures"
    textures_read_by_all_tasks = demo.data.planted_groups  # one texture (factor) per group
    assert textures_read_by_all_tasks <= demo.model.trunk_filters < 2 * textures_read_by_all_tasks


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
    signed = data.latents["train"] @ data.directions.T  # [N, tasks]: s_g z_g for each task's group
    clean = clean_labels(data, "train")
    for t in range(9):
        rows = labelled[:, t]
        ratio = np.corrcoef(labels[rows, t], signed[rows, t])[0, 1] / np.corrcoef(clean[rows, t], signed[rows, t])[0, 1]
        assert ratio == pytest.approx(0.6, abs=0.08)


def test_validation_and_test_labels_are_complete_and_clean(data):
    for split in ("validation", "test"):
        _, labels = arrays(data, split)
        np.testing.assert_array_equal(labels, clean_labels(data, split))


def test_bad_label_noise_is_refused():
    with pytest.raises(ValueError, match=r"label_noise must be in \[0, 0.5\), got 0.5"):
        textures.planted_textures(num_examples=20, label_noise=0.5)
