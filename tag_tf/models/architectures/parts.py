"""The parts every architecture is built from: the backbone (checked and called), copies of it, and
the task heads.

- `backbone_features`: a fresh input named like the backbone's and the backbone's features on it,
  flat `[B, C]` or a spatial map `[B, H, W, C]`; a map (on an image input) whenever a task is dense.
- `task_head`: a task's small decoder. Flat task: global average pooling (on a map), Dense(units,
  ReLU), Dense(output_units). Dense task: Conv3x3(units, ReLU), Conv1x1(output_units), bilinear
  resize to the input resolution (a 1x1 convolution commutes with bilinear resizing, so resizing
  last gives the same map as resizing first, for fewer FLOPs). Outputs are float32 whatever the
  mixed-precision policy.
- `copy_model`: the same network with its own weights (equal to the original's) and its layers
  renamed, for the per-task columns of cross-stitch networks and the single-task baselines.

>>> import numpy as np
>>> from tag_tf.models import celeba_resnet_trunk
>>> from tag_tf.tasks import Task
>>> image, features = backbone_features(celeba_resnet_trunk(16, filters=4, feature_map=True), [Task("a")])
>>> head = task_head(features, Task("hair", "multiclass", num_classes=3), units=8, prefix="hair")
>>> tuple(keras.Model(image, head)(np.zeros((2, 16, 16, 3))).shape)
(2, 3)
"""

from __future__ import annotations

import keras
from keras import layers

from tag_tf.tasks import Task


def backbone_features(backbone: keras.Model, tasks: list[Task], flat: bool = False):
    """(input, features): a fresh `keras.Input` with the name, shape and dtype of the backbone's one
    input, and the backbone's output on it.

    Raises ValueError, naming the backbone's input count or shapes, unless the features are flat
    `[batch, channels]` or a map `[batch, height, width, channels]`; a map on an image input of
    known size when a task is dense; flat when `flat`.
    """
    if not isinstance(backbone, keras.Model) or len(backbone.inputs) != 1:
        found = f"{len(backbone.inputs)} inputs" if isinstance(backbone, keras.Model) else type(backbone).__name__
        raise ValueError(f"backbone must be a keras.Model with exactly one input, got {found}.")
    dense = [t.name for t in tasks if t.is_dense]
    shape, input_shape = tuple(backbone.output.shape), tuple(backbone.input.shape)
    if len(shape) not in (2, 4):
        raise ValueError(f"backbone {backbone.name!r} outputs shape {shape}; expected flat features [batch, "
                         f"channels] or a spatial map [batch, height, width, channels].")
    if dense and len(shape) != 4:
        raise ValueError(f"the dense task(s) {dense} need a spatial feature map [batch, height, width, channels], "
                         f"but backbone {backbone.name!r} outputs shape {shape}: pass one that keeps its spatial "
                         f"output (e.g. celeba_resnet_trunk(..., feature_map=True), or a keras.applications model "
                         f"with include_top=False and pooling=None).")
    if dense and (len(input_shape) != 4 or None in input_shape[1:3]):
        raise ValueError(f"the dense task(s) {dense} need an image input [batch, height, width, channels] of known "
                         f"height and width (their predictions are resized to it); backbone {backbone.name!r} takes "
                         f"shape {input_shape}.")
    if flat and len(shape) != 2:
        raise ValueError(f"this architecture needs flat features [batch, channels], but backbone {backbone.name!r} "
                         f"outputs shape {shape}.")
    source = backbone.inputs[0]
    inputs = keras.Input(shape=source.shape[1:], dtype=source.dtype, name=source.name)
    return inputs, backbone(inputs)


def task_head(features, task: Task, units: int, prefix: str, input_size: tuple[int, int] | None = None):
    """`task`'s decoder on `features` (flat or a map): see the module docstring. `input_size`: the
    (height, width) a dense task's prediction is resized to."""
    if task.is_dense:
        x = layers.Conv2D(units, 3, padding="same", activation="relu", name=f"{prefix}_conv")(features)
        return prediction(x, task, prefix, input_size)
    if len(features.shape) == 4:
        features = layers.GlobalAveragePooling2D(name=f"{prefix}_pool")(features)
    x = layers.Dense(units, activation="relu", name=f"{prefix}_hidden")(features)
    return prediction(x, task, prefix, input_size)


def prediction(features, task: Task, prefix: str, input_size: tuple[int, int] | None = None):
    """The linear layer giving `task`'s output from `features`: for a dense task a 1x1 convolution
    then a bilinear resize to `input_size`; for a flat one (global average pooling of a map, then)
    a Dense layer. Named `<prefix>_out`; float32."""
    if task.is_dense:
        x = layers.Conv2D(task.output_units, 1, dtype="float32", name=f"{prefix}_out")(features)
        return layers.Resizing(*input_size, interpolation="bilinear", dtype="float32", name=f"{prefix}_resize")(x)
    if len(features.shape) == 4:
        features = layers.GlobalAveragePooling2D(name=f"{prefix}_out_pool")(features)
    return layers.Dense(task.output_units, dtype="float32", name=f"{prefix}_out")(features)


def input_size(inputs) -> tuple[int, int] | None:
    """(height, width) of an image input; None for a flat one."""
    return tuple(inputs.shape[1:3]) if len(inputs.shape) == 4 else None


def copy_model(model: keras.Model, prefix: str) -> keras.Model:
    """`model` (named `<prefix><name>`) with new layers named `<prefix><name>` holding copies of its
    weights."""

    def renamed(layer):
        return layer.__class__.from_config({**layer.get_config(), "name": prefix + layer.name})

    copy = keras.models.clone_model(model, clone_function=renamed)
    copy.set_weights(model.get_weights())
    copy.name = prefix + model.name
    return copy
