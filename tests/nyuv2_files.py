"""A small NYUv2 labeled set in the official layout (HDF5, MATLAB's reversed axes), written for
the loader's and the recipe's tests; nothing is downloaded."""

import h5py
import numpy as np

from tag_tf.data import nyuv2

N, H, W = 3, 6, 8
RNG = np.random.default_rng(0)
PLANE = np.array([0.2, -0.5, -1.0]) / np.linalg.norm([0.2, -0.5, -1.0])  # n · P = -2, facing the camera


def plane_depth(h, w):
    sx, sy = w / nyuv2.WIDTH, h / nyuv2.HEIGHT
    v, u = np.meshgrid(np.arange(h), np.arange(w), indexing="ij")
    rays = np.stack([(u - nyuv2.CX * sx) / (nyuv2.FX * sx), (v - nyuv2.CY * sy) / (nyuv2.FY * sy), np.ones(u.shape)], -1)
    return -2.0 / (rays @ PLANE)


def write_labeled(path, count=N, height=H, width=W, rng=RNG):
    """Write a labeled set of `count` images in the official layout to `path`; returns (images
    [N, H, W, 3], depths [N, H, W] (image 1 with a hole at (2, 3)), raw labels [N, H, W]) as written."""
    images = rng.integers(0, 256, (count, height, width, 3), dtype=np.uint8)
    depths = np.stack([plane_depth(height, width)] * count).astype(np.float32)
    depths[1, 2, 3] = 0.0  # a hole
    labels = rng.integers(0, 895, (count, height, width)).astype(np.uint16)
    with h5py.File(path, "w") as f:  # MATLAB v7.3 stores [H, W, 3, N] column-major: h5py sees [N, 3, W, H]
        f["images"] = np.transpose(images, (0, 3, 2, 1))
        f["depths"] = np.transpose(depths, (0, 2, 1)).astype(np.float64)
        f["labels"] = np.transpose(labels, (0, 2, 1))
    return images, depths, labels
