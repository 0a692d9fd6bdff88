"""The NYUv2 loader on a small labeled set in the official layout (HDF5, MATLAB's reversed axes)
written here; nothing is downloaded."""

import h5py
import numpy as np
import pytest
from nyuv2_files import PLANE, write_labeled
from scipy.io import savemat

from tag_tf.data import nyuv2


@pytest.fixture(scope="module")
def labeled(tmp_path_factory):
    """(path, images [N, H, W, 3], depths [N, H, W], raw labels [N, H, W]) as the test wrote them."""
    path = tmp_path_factory.mktemp("nyu") / "nyu_depth_v2_labeled.mat"
    return (path, *write_labeled(path))


MAPPING = np.arange(1, 895) % 40 + 1  # raw class i -> (i mod 40) + 1 in 1..40


def elements(dataset):
    return [(x.numpy(), {k: v.numpy() for k, v in y.items()}) for x, y in dataset]


def test_labels_depth_and_image_equal_what_was_written(labeled):
    path, images, depths, labels = labeled
    got = elements(nyuv2.load(path, MAPPING, 40, indices=[2, 0]))
    assert len(got) == 2
    for (image, y), i in zip(got, [2, 0]):
        np.testing.assert_allclose(image, images[i] / 255.0, rtol=1e-6)
        np.testing.assert_array_equal(y["depth"], depths[i])
        expected = np.where(labels[i] == 0, 255, labels[i].astype(int) % 40)  # (i mod 40) + 1, minus 1
        np.testing.assert_array_equal(y["segmentation"], expected)


def test_normals_from_depth_are_the_planes_normal_and_zero_around_holes(labeled):
    path, *_ = labeled
    (_, first), (_, second) = elements(nyuv2.load(path, MAPPING, indices=[0, 1]))
    interior = first["normals"][1:-1, 1:-1]
    np.testing.assert_allclose(interior, np.broadcast_to(PLANE, interior.shape), atol=1e-5)
    assert np.all(first["normals"][0] == 0) and np.all(first["normals"][:, -1] == 0)  # no central difference
    hole = second["normals"]
    assert np.all(hole[2, 3] == 0) and np.all(hole[1, 3] == 0) and np.all(hole[2, 4] == 0)
    np.testing.assert_allclose(hole[4, 5], PLANE, atol=1e-5)


def test_resized_with_nearest_labels_and_a_mapping_from_a_mat_file(labeled, tmp_path):
    path, _, depths, labels = labeled
    savemat(tmp_path / "classMapping13.mat", {"mapClass": (np.arange(1, 895) % 13 + 1)[None, :]})
    ((image, y),) = elements(nyuv2.load(path, tmp_path / "classMapping13.mat", 13, indices=[1], image_size=(3, 4)))
    assert image.shape == (3, 4, 3) and y["normals"].shape == (3, 4, 3)
    raw = labels[1][1::2, 1::2]  # nearest neighbour, half-pixel centres: rows 1, 3, 5; columns 1, 3, 5, 7
    np.testing.assert_array_equal(y["segmentation"], np.where(raw == 0, 255, raw.astype(int) % 13))
    np.testing.assert_array_equal(y["depth"], depths[1][1::2, 1::2])


def test_official_split_indices_are_zero_based(tmp_path):
    savemat(tmp_path / "splits.mat", {"trainNdxs": np.array([[1], [3]]), "testNdxs": np.array([[2]])})
    assert nyuv2.split_indices(tmp_path / "splits.mat", "train").tolist() == [0, 2]
    assert nyuv2.split_indices(tmp_path / "splits.mat", "test").tolist() == [1]


def test_bad_files_and_mappings(labeled, tmp_path):
    path, *_ = labeled
    with pytest.raises(ValueError, match=r"Class mapping values \[41\] out of range: expected 1..40"):
        nyuv2.load(path, np.full(894, 41), 40)
    with pytest.raises(ValueError, match="needs 894 integers"):
        nyuv2.load(path, np.ones(40), 40)
    with pytest.raises(ValueError, match=r"indices must be in 0..2 \(3 images"):
        nyuv2.load(path, MAPPING, indices=[3])
    other = tmp_path / "other.mat"
    with h5py.File(other, "w") as f:
        f["images"] = np.zeros((1, 3, 4, 2), np.uint8)
    with pytest.raises(ValueError, match=r"no dataset\(s\) \['depths', 'labels'\]"):
        nyuv2.load(other, MAPPING)
