"""NYUv2 (Silberman et al. 2012) for users who have it: segmentation, depth and normals of the
official labeled set, a small convolutional encoder and hard sharing (a decoder per task).

    NYUV2_DIR=/data/nyuv2 python -m experiments.tag_pipeline --recipe=experiments/recipes/nyuv2.py \\
        --run_dir=runs/nyuv2 --baselines=single_task

NYUV2_DIR holds (nothing is downloaded):

    nyu_depth_v2_labeled.mat   the official labeled set (MATLAB v7.3 / HDF5)
    splits.mat                 the official split (trainNdxs, testNdxs: 795 and 654 images)
    classMapping13.mat         the 894 -> 13 class mapping (mapClass), or classMapping40.mat with
                               NYUV2_CLASSES=40 (`tag_tf.data.nyuv2` says where to find them)

Splits: the official test images are "test"; every 10th official training image is "validation",
the rest "train". Images are resized to NYUV2_IMAGE_SIZE (height,width; default 120,160: a
quarter of 480 x 640, the aspect kept), depth and labels with nearest neighbours; normals are
computed from the depth (`nyuv2.normals_from_depth`). The decoded images are cached in memory.

Environment: NYUV2_DIR (required), NYUV2_CLASSES (13 or 40; default 13), NYUV2_IMAGE_SIZE.
"""

import os

import keras
import numpy as np
from keras import layers

from tag_tf.models.architectures import build_architecture
from tag_tf.data import nyuv2

NUM_CLASSES = int(os.environ.get("NYUV2_CLASSES", "13"))
TASKS = nyuv2.tasks(NUM_CLASSES)
FILTERS = (32, 64, 64)


def image_size() -> tuple[int, int]:
    """(height, width) from NYUV2_IMAGE_SIZE."""
    text = os.environ.get("NYUV2_IMAGE_SIZE", "120,160")
    try:
        height, width = (int(v) for v in text.split(","))
    except ValueError:
        raise ValueError(f"NYUV2_IMAGE_SIZE={text!r}: expected height,width, e.g. 120,160.") from None
    return height, width


def files() -> dict[str, str]:
    """The paths of the files the recipe reads; ValueError naming NYUV2_DIR and a missing one."""
    folder = os.environ.get("NYUV2_DIR", "")
    names = {"data": "nyu_depth_v2_labeled.mat", "splits": "splits.mat", "mapping": f"classMapping{NUM_CLASSES}.mat"}
    paths = {key: os.path.join(folder, name) for key, name in names.items()}
    missing = [name for key, name in names.items() if not os.path.isfile(paths[key])]
    if not folder or missing:
        raise ValueError(f"NYUV2_DIR={folder!r} must be a folder holding {sorted(names.values())}; missing: "
                         f"{missing or sorted(names.values())}.")
    return paths


def load_data():
    paths = files()
    train = nyuv2.split_indices(paths["splits"], "train")
    validation = train[::10]
    indices = {"train": np.setdiff1d(train, validation), "validation": validation,
               "test": nyuv2.split_indices(paths["splits"], "test")}
    return {split: nyuv2.load(paths["data"], paths["mapping"], NUM_CLASSES, indices=chosen,
                              image_size=image_size()).cache()
            for split, chosen in indices.items()}


def encoder() -> keras.Model:
    """Three stride-2 convolution blocks (conv3x3, batch norm, ReLU): a map at 1/8 resolution."""
    image = keras.Input((*image_size(), 3), name="image")
    x = image
    for i, filters in enumerate(FILTERS):
        x = layers.Conv2D(filters, 3, strides=2, padding="same", use_bias=False, name=f"conv{i}")(x)
        x = layers.BatchNormalization(name=f"bn{i}")(x)
        x = layers.ReLU(name=f"relu{i}")(x)
    return keras.Model(image, x, name="encoder")


def build_model(tasks):
    return build_architecture("hard_sharing", encoder(), tasks, head_units=32)


def optimizer():
    return keras.optimizers.Adam(1e-3)
