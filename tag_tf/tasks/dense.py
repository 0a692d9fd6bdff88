"""Per-pixel masks, losses and label checks of the dense task kinds (`tag_tf.tasks.DENSE_KINDS`).

Pure functions of (labels, head outputs), in `keras.ops`, so they run on numpy arrays and inside
a training step alike. Every loss is per pixel, `[B, H, W]`; `Task.loss` and the training step
average it over the valid pixels (weighted by their sample weight) of the (global) batch.

| kind           | head                 | label                              | invalid pixel             | loss per pixel              |
|----------------|----------------------|------------------------------------|---------------------------|-----------------------------|
| `segmentation` | K logits `[B,H,W,K]` | int class `[B,H,W]`                | ignore_label or negative  | softmax cross-entropy       |
| `depth`        | `[B,H,W,1]`          | float depth `[B,H,W]`              | depth <= 0, NaN or inf    | L1 (absolute error)         |
| `normals`      | `[B,H,W,3]`          | float unit vector `[B,H,W,3]`      | zero vector or non-finite | 1 − n·p / max(‖p‖, 1) (see below) |
| `edges`        | one logit `[B,H,W,1]`| int 0/1 `[B,H,W]`                  | negative                  | class-balanced sigmoid cross-entropy |

The normals loss is the cosine loss 1 − cos(angle) (Eigen & Fergus 2015; Liu et al. 2019) wherever
the prediction p is at least unit length (the labels' length); inside the unit ball the prediction
is not normalised: 1 − n·p. The cosine of a normalised prediction has a gradient of size
sin(angle) / ‖p‖, unbounded where p vanishes: a narrow ReLU head starts with exactly-zero outputs
at most pixels, where normalising by max(‖p‖, 1e-6) gave gradients of 10⁶; one SGD step threw the
prediction to ‖p‖ ≈ 10⁴, where the gradient vanishes and training stalled. With max(‖p‖, 1) the
gradient's size is at most 1 per pixel, the loss is continuous, and it is 0 only for p = c·n, c ≥ 1.

The edge loss is HED's (Xie & Tu 2015): in each image, with β = |valid non-edge pixels| /
|valid pixels|, an edge pixel's cross-entropy is weighted β and a non-edge pixel's 1 − β, so the
rare edges count as much as the background.

>>> import numpy as np
>>> depth = np.array([[[2.0, 0.0], [np.nan, 4.0]]])           # one 2x2 map, two invalid pixels
>>> np.asarray(valid_pixels("depth", depth)).tolist()
[[[1.0, 0.0], [0.0, 1.0]]]
>>> np.asarray(pixel_losses("depth", depth, np.full((1, 2, 2, 1), 3.0))).tolist()[0][0]
[1.0, 3.0]
"""

from __future__ import annotations

import numpy as np
from keras import ops

# Valid normals may be this far from unit length (normals decoded from 8-bit images are ~1e-2 off).
NORMAL_TOLERANCE = 0.02


def valid_pixels(kind: str, labels, ignore_label: int | None = None):
    """1.0 where a pixel is labelled (see the module table), else 0.0: float32 `[B, H, W]`."""
    labels = ops.convert_to_tensor(labels)
    if kind == "segmentation":
        return ops.cast(ops.logical_and(labels >= 0, labels != ignore_label), "float32")
    if kind == "edges":
        return ops.cast(labels >= 0, "float32")
    labels = ops.cast(labels, "float32")
    if kind == "depth":
        return ops.cast(ops.logical_and(ops.isfinite(labels), labels > 0), "float32")
    finite = ops.all(ops.isfinite(labels), axis=-1)
    nonzero = ops.sum(ops.square(ops.where(ops.isfinite(labels), labels, 0.0)), axis=-1) > 0
    return ops.cast(ops.logical_and(finite, nonzero), "float32")


def fill_invalid(kind: str, labels, mask):
    """The labels with every invalid pixel (mask 0) set to 0 (the zero vector for normals), so that
    losses stay finite before they are masked; int32 for classes, float32 otherwise."""
    keep = mask[..., None] > 0 if kind == "normals" else mask > 0
    dtype = "int32" if kind in ("segmentation", "edges") else "float32"
    return ops.where(keep, ops.cast(labels, dtype), ops.zeros((), dtype))


def pixel_losses(kind: str, labels, outputs, ignore_label: int | None = None):
    """The loss of every pixel `[B, H, W]` (invalid pixels get finite placeholders: mask them)."""
    mask = valid_pixels(kind, labels, ignore_label)
    labels = fill_invalid(kind, labels, mask)
    outputs = ops.cast(outputs, "float32")
    if kind == "segmentation":
        return ops.sparse_categorical_crossentropy(labels, outputs, from_logits=True)
    if kind == "depth":
        return ops.abs(outputs[..., 0] - labels)
    if kind == "normals":
        return 1.0 - cosine(labels, outputs, epsilon=1.0)
    edges = ops.cast(labels, "float32")
    cross_entropy = ops.binary_crossentropy(edges[..., None], outputs, from_logits=True)[..., 0]
    beta = ops.divide_no_nan(ops.sum(mask * (1.0 - edges), axis=(1, 2), keepdims=True),
                             ops.sum(mask, axis=(1, 2), keepdims=True))
    return cross_entropy * (edges * beta + (1.0 - edges) * (1.0 - beta))


def cosine(normals, predicted, epsilon: float = 1e-12):
    """cos of the angle between the unit `normals` and the `predicted` vectors (normalised here),
    per pixel `[B, H, W]`: n·p / max(‖p‖, √epsilon). The normals loss takes epsilon = 1 (see the
    module docstring): a shorter prediction is not normalised.

    >>> float(np.asarray(cosine(np.array([[0.0, 0.0, 1.0]]), np.array([[0.0, 2.0, 2.0]])))[0])
    0.7071067...
    >>> float(np.asarray(cosine(np.array([[0.0, 0.0, 1.0]]), np.array([[0.0, 0.0, 0.5]]), epsilon=1.0))[0])
    0.5
    """
    predicted = ops.cast(predicted, "float32")
    norm = ops.sqrt(ops.maximum(ops.sum(ops.square(predicted), axis=-1), epsilon))
    return ops.sum(ops.cast(normals, "float32") * predicted, axis=-1) / norm


def label_shape(task, output_shape) -> tuple:
    """The label shape `task`'s head of `output_shape` `[B, H, W, C]` takes: `[B, H, W]`, or
    `[B, H, W, 3]` for normals.

    >>> from tag_tf.tasks import Task
    >>> label_shape(Task("n", kind="normals"), (None, 8, 8, 3))
    (None, 8, 8, 3)
    """
    return tuple(output_shape[:3]) + ((3,) if task.kind == "normals" else ())


def check_shapes(task, labels_shape, output_shape) -> None:
    """ValueError unless labels of `labels_shape` fit `task`'s head output of `output_shape`
    (dimensions unknown on either side, None, are not compared)."""
    expected = label_shape(task, output_shape)
    found = tuple(labels_shape)
    if len(found) != len(expected) or any(
            e is not None and f is not None and e != f for e, f in zip(found[1:], expected[1:])):
        raise ValueError(f"Task {task.name!r} ({task.kind}): labels of shape {found} do not fit the head's output "
                         f"{tuple(output_shape)}; expected labels of shape {expected}.")


def check_labels(task, labels, output_shape) -> None:
    """ValueError naming the task, the values found and those expected, for labels (numpy) of the
    wrong shape, class ids out of range, edge labels other than 0/1 (or negative: missing),
    and normals not of unit length where valid.

    >>> from tag_tf.tasks import Task
    >>> check_labels(Task("seg", kind="segmentation", num_classes=3), np.array([[[0, 255], [3, 1]]]), (None, 2, 2, 3))
    Traceback (most recent call last):
    ...
    ValueError: Task 'seg' (segmentation): class ids [3] out of range; expected 0..2, 255 (ignored) or negative (ignored).
    """
    labels = np.asarray(labels)
    check_shapes(task, labels.shape, output_shape)
    mask = np.asarray(valid_pixels(task.kind, labels, task.ignore_label)) > 0
    if task.kind == "segmentation":
        bad = np.unique(labels[mask & (labels >= task.num_classes)])
        if bad.size:
            raise ValueError(f"Task {task.name!r} (segmentation): class ids {bad[:10].tolist()} out of range; expected "
                             f"0..{task.num_classes - 1}, {task.ignore_label} (ignored) or negative (ignored).")
    elif task.kind == "edges":
        bad = np.unique(labels[mask & (labels > 1)])
        if bad.size:
            raise ValueError(f"Task {task.name!r} (edges): labels {bad[:10].tolist()} found; expected 0 (no edge), "
                             f"1 (edge) or negative (missing).")
    elif task.kind == "normals":
        lengths = np.linalg.norm(labels[mask].astype(np.float64), axis=-1)
        off = np.abs(lengths - 1.0) > NORMAL_TOLERANCE
        if off.any():
            raise ValueError(f"Task {task.name!r} (normals): {int(off.sum())} valid pixel(s) are not unit vectors "
                             f"(lengths e.g. {np.round(lengths[off][:5], 4).tolist()}); expected length 1 "
                             f"± {NORMAL_TOLERANCE} (or the zero vector for an invalid pixel).")
