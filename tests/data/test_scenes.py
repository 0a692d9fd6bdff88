"""Synthetic scenes: labels agree with the geometry they were rendered from; deterministic by seed."""

import numpy as np
import pytest

from tag_tf.data import scenes
from tag_tf.data.scenes import BOX, CAMERA_HEIGHT, SPHERE, WALL_DEPTH, camera_rays


@pytest.fixture(scope="module")
def data():
    return scenes.scenes(num_examples=40, image_size=24, seed=3)


def arrays(dataset):
    images, labels = next(iter(dataset.batch(1000)))
    return images.numpy(), {k: v.numpy() for k, v in labels.items()}


def test_depth_and_normals_agree_with_the_geometry(data):
    images, labels = arrays(data.splits["train"])
    geometry = data.geometry["train"]
    points = labels["depth"][..., None] * camera_rays(24)[None]  # the 3-D point of every pixel
    normals, classes = labels["normals"], labels["segmentation"]
    np.testing.assert_allclose(np.linalg.norm(normals, axis=-1), 1.0, atol=1e-5)
    ground, wall = classes == 1, classes == 0
    np.testing.assert_allclose(points[ground][:, 1], CAMERA_HEIGHT, rtol=1e-5)
    np.testing.assert_allclose(normals[ground], np.tile([0, -1, 0], (ground.sum(), 1)))
    np.testing.assert_allclose(points[wall][:, 2], WALL_DEPTH, rtol=1e-5)
    checked = {SPHERE: 0, BOX: 0}
    for n in range(len(images)):
        for kind, centre, size in zip(geometry.kinds[n], geometry.centres[n], geometry.sizes[n]):
            if kind == SPHERE:  # pixels of this sphere: on its surface, normal (P - c) / r
                offset = points[n] - centre
                on = (classes[n] == SPHERE) & (np.abs(np.linalg.norm(offset, axis=-1) - size[0]) < 1e-4)
                np.testing.assert_allclose(normals[n][on], offset[on] / size[0], atol=1e-4)
                checked[SPHERE] += on.sum()
            elif kind == BOX:  # on a face of this box: |P - c| = half extent on the normal's axis
                offset = points[n] - centre
                inside = np.all(np.abs(offset) <= size + 1e-4, axis=-1) & (classes[n] == BOX)
                axis = np.argmax(np.abs(normals[n]), axis=-1)
                along = np.take_along_axis(offset, axis[..., None], -1)[..., 0]
                half = size[axis]
                np.testing.assert_allclose(np.abs(along[inside]), half[inside], rtol=1e-4)
                np.testing.assert_array_equal(np.sign(along[inside]), np.sign(normals[n][inside].sum(-1)))
                checked[BOX] += inside.sum()
    assert checked[SPHERE] > 100 and checked[BOX] > 100
    # every object pixel was rendered from some object of its scene
    assert checked[SPHERE] + checked[BOX] >= np.isin(classes, [SPHERE, BOX]).sum()


def test_edges_mark_surface_changes_and_labels_are_consistent(data):
    _, labels = arrays(data.splits["test"])
    seg, edges = labels["segmentation"], labels["edges"]
    change = np.zeros_like(edges, bool)
    change[:, :, :-1] |= seg[:, :, :-1] != seg[:, :, 1:]
    change[:, :-1, :] |= seg[:, :-1, :] != seg[:, 1:, :]
    assert np.all(edges[change] == 1)  # class boundaries are edges (occlusions between objects too)
    assert set(np.unique(edges)) == {0, 1} and 0.01 < edges.mean() < 0.3
    assert set(np.unique(labels["colour"])) <= {0, 1, 2, 3} and set(np.unique(labels["texture"])) <= {0, 1, 2}


def test_same_seed_same_data_other_seed_other_data_any_size():
    first, again = arrays(scenes.scenes(20, 16, seed=5).splits["train"]), arrays(scenes.scenes(20, 16, seed=5).splits["train"])
    other = arrays(scenes.scenes(20, 16, seed=6).splits["train"])
    np.testing.assert_array_equal(first[0], again[0])
    for name in first[1]:
        np.testing.assert_array_equal(first[1][name], again[1][name])
    assert not np.array_equal(first[1]["depth"], other[1]["depth"])
    images, labels = arrays(scenes.scenes(10, 9, seed=5).splits["validation"])
    assert images.shape == (1, 9, 9, 3) and labels["normals"].shape == (1, 9, 9, 3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="image_size must be a positive integer, got 0"):
        scenes.scenes(10, 0)
