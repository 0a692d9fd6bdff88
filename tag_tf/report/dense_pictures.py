"""Pictures of dense predictions: for a few images, the input, the ground truth and the prediction
of a dense task (`tag_tf.tasks.DENSE_KINDS`), each kind in its usual encoding.

| kind           | picture (RGB, float in [0, 1])                                                       |
|----------------|--------------------------------------------------------------------------------------|
| `segmentation` | a colour per class (tab20); ignored pixels black; the prediction is the argmax class  |
| `depth`        | viridis, from the nearest (dark) to the farthest (yellow) valid label depth of the   |
|                | figure's images, the same scale for truth and prediction; invalid pixels black       |
| `normals`      | (n + 1) / 2 as RGB (x red, y green, z blue); invalid pixels black                     |
| `edges`        | grey: the edge probability (prediction) or the label (white: an edge); missing black |

>>> import numpy as np
>>> from tag_tf.tasks import Task
>>> seg = Task("seg", kind="segmentation", num_classes=3)
>>> colours(seg, np.array([[[0, 255]]]), "label")[0, 0].round(3).tolist()
[[0.122, 0.467, 0.706], [0.0, 0.0, 0.0]]
>>> colours(Task("e", kind="edges"), np.array([[[[0.0], [50.0]]]]), "prediction")[0, 0].tolist()
[[0.5, 0.5, 0.5], [1.0, 1.0, 1.0]]
>>> colours(Task("n", kind="normals"), np.array([[[[0.0, 0.0, 1.0], [0.0, 0.0, 0.0]]]]), "label")[0, 0].tolist()
[[0.5, 0.5, 1.0], [0.0, 0.0, 0.0]]
>>> colours(Task("d", kind="depth"), np.array([[[2.0, 4.0, 0.0]]]), "label")[0, 0].round(3).tolist()  # near, far, invalid
[[0.267, 0.005, 0.329], [0.993, 0.906, 0.144], [0.0, 0.0, 0.0]]
"""

from __future__ import annotations

import matplotlib
import numpy as np
from matplotlib.figure import Figure

from tag_tf.tasks.dense import valid_pixels
from tag_tf.tasks import Task

_CLASSES = matplotlib.colormaps["tab20"]
_DEPTH = matplotlib.colormaps["viridis"]


def colours(task: Task, values: np.ndarray, what: str, depth_range: tuple[float, float] | None = None) -> np.ndarray:
    """RGB [N, H, W, 3] of a dense task's labels (`what` "label": [N, H, W], or [N, H, W, 3] for
    normals) or head outputs (`what` "prediction": [N, H, W, C], logits), as in the module table.
    `depth_range`: (near, far) of the depth colour scale (default: the values' own valid range)."""
    if what not in ("label", "prediction"):
        raise ValueError(f"Unknown what {what!r}; valid choices: ('label', 'prediction').")
    if not task.is_dense:
        raise ValueError(f"Task {task.name!r} is {task.kind}, not dense; dense kinds: segmentation, depth, normals, "
                         f"edges.")
    values = np.asarray(values, np.float64)
    if what == "label":
        valid = np.asarray(valid_pixels(task.kind, values, task.ignore_label)) > 0
    else:
        valid = np.ones(values.shape[:3], bool)
        values = _answer(task, values)
    if task.kind == "segmentation":
        rgb = np.asarray(_CLASSES(np.where(valid, values, 0).astype(int) % _CLASSES.N))[..., :3]
    elif task.kind == "depth":
        near, far = depth_range or _range(values[valid])
        rgb = np.asarray(_DEPTH(np.clip((values - near) / max(far - near, 1e-9), 0.0, 1.0)))[..., :3]
    elif task.kind == "normals":
        rgb = np.clip((np.where(valid[..., None], values, 0.0) + 1.0) / 2.0, 0.0, 1.0)
    else:
        rgb = np.repeat(np.clip(values, 0.0, 1.0)[..., None], 3, axis=-1)
    return np.where(valid[..., None], rgb, 0.0)


def _answer(task: Task, outputs: np.ndarray) -> np.ndarray:
    """A head's outputs [N, H, W, C] as the picture shows them: argmax class, depth, unit normal
    or edge probability."""
    if task.kind == "segmentation":
        return outputs.argmax(axis=-1)
    if task.kind == "normals":
        return outputs / np.maximum(np.linalg.norm(outputs, axis=-1, keepdims=True), 1e-12)
    if task.kind == "edges":
        return 1.0 / (1.0 + np.exp(-outputs[..., 0]))
    return outputs[..., 0]


def _range(values: np.ndarray) -> tuple[float, float]:
    return (float(values.min()), float(values.max())) if values.size else (0.0, 1.0)


def prediction_grid(task: Task, images: np.ndarray, labels: np.ndarray, outputs: np.ndarray) -> Figure:
    """One row per image: the input, the ground truth and the prediction of the dense `task`
    (`images` [N, H, W, 3] in [0, 1], `labels` and head `outputs` as for `colours`).

    Size: 5.5 x (0.6 + 1.7 per image) inches.
    """
    images = np.asarray(images)
    if len(labels) != len(images) or len(outputs) != len(images):
        raise ValueError(f"one label and one output per image: {len(images)} images, {len(labels)} labels, "
                         f"{len(outputs)} outputs.")
    labels = np.asarray(labels)
    depth_range = None
    if task.kind == "depth":
        depth_range = _range(labels[np.asarray(valid_pixels("depth", labels)) > 0])
    pictures = [np.clip(images, 0, 1), colours(task, labels, "label", depth_range),
                colours(task, outputs, "prediction", depth_range)]
    figure = Figure(figsize=(5.5, 0.6 + 1.7 * len(images)), layout="constrained")
    figure.suptitle(f"{task.name} ({task.kind}): input, ground truth, prediction", fontsize=10)
    grid = figure.subplots(len(images), 3, squeeze=False)
    for (i, c), axes in np.ndenumerate(grid):
        axes.imshow(pictures[c][i], interpolation="nearest")
        axes.set_xticks([])
        axes.set_yticks([])
        if i == 0:
            axes.set_title(("input", "ground truth", "prediction")[c], fontsize=8)
    return figure
