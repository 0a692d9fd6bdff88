"""NYUv2 for users who have it: the official labeled set `nyu_depth_v2_labeled.mat` (never
downloaded here) as `(image, {"segmentation", "depth", "normals"})` elements.

The file is MATLAB v7.3, that is HDF5; h5py reads MATLAB's column-major arrays with their axes
reversed:

| dataset  | h5py shape           | content                                                  |
|----------|----------------------|----------------------------------------------------------|
| `images` | [N, 3, W, H] uint8   | RGB, 640 x 480 in the official file                      |
| `depths` | [N, W, H] float      | depth in metres (the in-painted depth of the labeled set)|
| `labels` | [N, W, H] uint16     | 894 object classes, 1..894; 0 = unlabelled               |

Segmentation in 13 or 40 classes needs a class mapping from the 894 classes, which the official
file does not hold; give `mapping` as one of:
- an integer array of 894 values: raw class i (1..894) becomes mapping[i − 1] in 1..K, 0 =
  unlabelled;
- a path to a `.mat` file (MATLAB v5) with that array as variable `mapClass`: `classMapping40.mat`
  (Gupta et al. 2013's 40 classes, distributed with their toolbox and in nyuv2-meta-data), or a
  `classMapping13.mat` made from it for Couprie et al. 2013's 13 classes;
- a path to a `.npy` file or a text file of 894 integers.
The loader's classes are the mapped ones minus 1 (0..K−1); unlabelled pixels get the task's
ignore label (255).

Normals: from a `.npy` file [N, H, W, 3] of unit vectors (camera coordinates: x right, y down,
z forward; zero vectors where invalid) if given, else computed from the depth: every pixel
back-projected with NYUv2's colour camera intrinsics (fx 518.86, fy 519.47, cx 325.58, cy 253.74 at
640 x 480, scaled to the output size), the normal the cross product of the central differences
along the image's columns and rows, turned towards the camera; zero where a pixel or a neighbour
has no depth.

Splits: `indices` picks images (0-based); `split_indices(path, "train" | "test")` reads the
official `splits.mat` (variables `trainNdxs`, `testNdxs`, 1-based: 795 and 654 images).

>>> [t.name for t in tasks(40)], tasks(13)[0].num_classes
(['segmentation', 'depth', 'normals'], 13)
"""

from __future__ import annotations

import os

import numpy as np
import tensorflow as tf

from tag_tf.tasks import Task

NUM_RAW_CLASSES = 894
IGNORE = 255
# NYUv2's colour camera at 640 x 480 (Silberman et al. 2012's toolbox, camera_params.m).
FX, FY, CX, CY = 518.857901, 519.469611, 325.582449, 253.736166
WIDTH, HEIGHT = 640, 480


def tasks(num_classes: int = 40) -> list[Task]:
    """The loader's tasks: segmentation into `num_classes` classes, depth, normals."""
    return [Task("segmentation", kind="segmentation", num_classes=num_classes, ignore_label=IGNORE),
            Task("depth", kind="depth"), Task("normals", kind="normals")]


def load_mapping(mapping, num_classes: int) -> np.ndarray:
    """The class mapping (see the module docstring) as int64 [895]: index = raw label (0..894),
    value = loader class 0..num_classes−1, or IGNORE for unlabelled.

    >>> m = load_mapping(np.arange(894) % 3 + 1, num_classes=3)
    >>> m[:5].tolist()
    [255, 0, 1, 2, 0]
    """
    if isinstance(mapping, (str, os.PathLike)):
        path = os.fspath(mapping)
        if path.endswith(".mat"):
            from scipy.io import loadmat

            contents = loadmat(path)
            if "mapClass" not in contents:
                raise ValueError(f"{path} has no variable 'mapClass' (the 894-class mapping); it has "
                                 f"{sorted(k for k in contents if not k.startswith('__'))}.")
            mapping = contents["mapClass"]
        elif path.endswith(".npy"):
            mapping = np.load(path)
        else:
            mapping = np.loadtxt(path)
    values = np.asarray(mapping).ravel()
    if values.size != NUM_RAW_CLASSES or not np.all(values == np.round(values)):
        raise ValueError(f"A class mapping needs {NUM_RAW_CLASSES} integers (one per NYUv2 class), got "
                         f"{values.size} values of dtype {values.dtype}.")
    values = values.astype(np.int64)
    bad = np.unique(values[(values < 0) | (values > num_classes)])
    if bad.size:
        raise ValueError(f"Class mapping values {bad[:10].tolist()} out of range: expected 1..{num_classes} "
                         f"(0 = unlabelled) for {num_classes} classes.")
    return np.concatenate([[IGNORE], np.where(values > 0, values - 1, IGNORE)])


def split_indices(splits_path, split: str) -> np.ndarray:
    """0-based image indices of the official `split` ("train" or "test") from `splits.mat`."""
    from scipy.io import loadmat

    names = {"train": "trainNdxs", "test": "testNdxs"}
    if split not in names:
        raise ValueError(f"Unknown NYUv2 split {split!r}; valid splits: {sorted(names)}.")
    return np.asarray(loadmat(os.fspath(splits_path))[names[split]]).ravel().astype(np.int64) - 1


def normals_from_depth(depth: np.ndarray, fx: float, fy: float, cx: float, cy: float) -> np.ndarray:
    """Unit normals [H, W, 3] of a depth map [H, W] (camera coordinates, facing the camera); the
    zero vector where the pixel or one of its four neighbours has no valid depth.

    >>> n = normals_from_depth(np.full((4, 5), 2.0), 5.0, 5.0, 2.0, 1.5)     # a wall facing the camera
    >>> n[1, 1].tolist(), n[0, 0].tolist()
    ([0.0, 0.0, -1.0], [0.0, 0.0, 0.0])
    """
    depth = np.asarray(depth, np.float64)
    valid = np.isfinite(depth) & (depth > 0)
    z = np.where(valid, depth, 0.0)
    v, u = np.meshgrid(np.arange(depth.shape[0]), np.arange(depth.shape[1]), indexing="ij")
    points = np.stack([(u - cx) * z / fx, (v - cy) * z / fy, z], axis=-1)
    along_u = np.zeros_like(points)
    along_v = np.zeros_like(points)
    along_u[:, 1:-1] = points[:, 2:] - points[:, :-2]
    along_v[1:-1] = points[2:] - points[:-2]
    normals = np.cross(along_v, along_u)
    normals *= np.where(np.sum(normals * points, axis=-1, keepdims=True) > 0, -1.0, 1.0)  # towards the camera
    length = np.linalg.norm(normals, axis=-1, keepdims=True)
    ok = np.zeros_like(valid)
    ok[1:-1, 1:-1] = (valid[1:-1, 1:-1] & valid[:-2, 1:-1] & valid[2:, 1:-1] & valid[1:-1, :-2]
                      & valid[1:-1, 2:])
    ok &= length[..., 0] > 0
    return np.where(ok[..., None], normals / np.where(length > 0, length, 1.0), 0.0).astype(np.float32)


def load(path, mapping, num_classes: int = 40, *, indices=None, image_size=None, normals=None) -> tf.data.Dataset:
    """The labeled set as an unbatched tf.data.Dataset of (image float32 [H, W, 3] in [0, 1],
    {"segmentation": int32 [H, W], "depth": float32 [H, W], "normals": float32 [H, W, 3]}).

    Args:
      path: `nyu_depth_v2_labeled.mat`.
      mapping: the class mapping to `num_classes` classes (module docstring; `load_mapping`).
      num_classes: 13 or 40 (any K the mapping maps into).
      indices: the images to take (0-based; e.g. `split_indices(...)`); None: all.
      image_size: (height, width) to resize to (image bilinear, depth and labels nearest);
        None: the file's size.
      normals: a `.npy` file of normals [N, H, W, 3] at the output size; None: from the depth.
    """
    import h5py

    lookup = load_mapping(mapping, num_classes)
    with h5py.File(path, "r") as f:
        missing = [name for name in ("images", "depths", "labels") if name not in f]
        if missing:
            raise ValueError(f"{path} is not an NYUv2 labeled set: no dataset(s) {missing}; expected 'images' "
                             f"[N, 3, W, H], 'depths' and 'labels' [N, W, H].")
        count, _, width, height = f["images"].shape
        for name in ("depths", "labels"):
            if f[name].shape != (count, width, height):
                raise ValueError(f"{path}: '{name}' has shape {f[name].shape}; expected {(count, width, height)} "
                                 f"to match 'images' {f['images'].shape}.")
    indices = np.arange(count) if indices is None else np.asarray(indices, np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= count):
        raise ValueError(f"indices must be in 0..{count - 1} ({count} images in {path}), got "
                         f"{indices.min()}..{indices.max()}.")
    out_h, out_w = (height, width) if image_size is None else tuple(image_size)
    given_normals = None if normals is None else np.load(normals, mmap_mode="r")
    if given_normals is not None and given_normals.shape[1:] != (out_h, out_w, 3):
        raise ValueError(f"normals file {normals} has shape {given_normals.shape}; expected [N, {out_h}, {out_w}, 3].")
    sx, sy = out_w / WIDTH, out_h / HEIGHT

    def examples():
        with h5py.File(path, "r") as f:
            for i in indices:
                image = np.transpose(f["images"][i], (2, 1, 0))
                depth, raw = f["depths"][i].T, f["labels"][i].T.astype(np.int64)
                if raw.max() > NUM_RAW_CLASSES:
                    raise ValueError(f"{path}: image {i} has class id {raw.max()}; NYUv2 classes are 0..894.")
                image, depth, raw = _resize(image, depth, raw, (out_h, out_w))
                n = given_normals[i] if given_normals is not None else normals_from_depth(
                    depth, FX * sx, FY * sy, CX * sx, CY * sy)
                yield (image, {"segmentation": lookup[raw].astype(np.int32), "depth": depth.astype(np.float32),
                               "normals": np.asarray(n, np.float32)})

    signature = (tf.TensorSpec((out_h, out_w, 3), tf.float32),
                 {"segmentation": tf.TensorSpec((out_h, out_w), tf.int32),
                  "depth": tf.TensorSpec((out_h, out_w), tf.float32),
                  "normals": tf.TensorSpec((out_h, out_w, 3), tf.float32)})
    return tf.data.Dataset.from_generator(examples, output_signature=signature)


def _resize(image, depth, labels, size):
    """The image (uint8 -> float32 in [0, 1], bilinear), depth and labels (nearest) at `size`."""
    image = image.astype(np.float32) / 255.0
    if tuple(size) == image.shape[:2]:
        return image, depth, labels
    image = tf.image.resize(image, size, method="bilinear", antialias=True).numpy()
    depth = tf.image.resize(depth[..., None], size, method="nearest").numpy()[..., 0]
    labels = tf.image.resize(labels[..., None], size, method="nearest").numpy()[..., 0]
    return np.clip(image, 0.0, 1.0), depth, labels
