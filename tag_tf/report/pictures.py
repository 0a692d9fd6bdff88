"""Pictures of task affinity, of groupings and of what each task's head looks at.

Affinity is `A[source, target]`: how much one step on `source` lowers the loss of `target`; the
affinity *onto* a task is a column. Every figure is a `matplotlib.figure.Figure` made without
pyplot (no display, no global state) at `DPI` dots per inch and a documented size, written to PNG
by `save_png` (atomically, never cropped: the PNG is exactly the figure's size).

- `affinity_image`: the matrix as a small uint8 image (TensorBoard, `training.AffinityLogger`).
- `affinity_heatmap`: task names on both axes (sources as rows, targets as columns), a diverging
  colour map centred at 0 and scaled by the off-diagonal entries (the diagonal, self-affinity,
  which selection does not use, is grey with its values), the values in the cells, chosen groups
  outlined.
- `affinity_trajectories`: for each target task, one line per source across epochs, the sources
  in the target's serving group highlighted.
- `grouping_chart`: for each budget k, which tasks each network trains and which it serves, with
  the selection score and its test result (total error, or ΔMTL with dense tasks).
- `saliency_maps` / `saliency_grid`: tf-keras-vis Saliency and GradCAM++ per task head, and a grid
  of them (one row per task, one column per image, prediction and label in each title).

>>> import numpy as np
>>> figure = affinity_heatmap(["a", "b", "c"], np.array([[0.0, 2.0, -1.0], [1.0, 0.0, 0.5], [-2.0, 0.1, 0.0]]),
...                           groups=[("a", "b"), ("c",)])
>>> pixels(figure)
(450, 400)
>>> image = affinity_image(np.array([[1.0, -1.0], [0.0, np.nan]]), cell=4)
>>> image.shape, image.dtype.name
((8, 8, 3), 'uint8')
>>> image[0, 0].tolist(), image[0, 4].tolist(), image[4, 0].tolist()   # red, blue, white
([178, 24, 43], [33, 102, 172], [255, 255, 255])
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import keras
import matplotlib
import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
from tf_keras_vis.saliency import Saliency
from tf_keras_vis.utils.scores import BinaryScore, CategoricalScore, InactiveScore

from tag_tf.utils.io import atomic_path
from tag_tf.tasks import Task

DPI = 100
SALIENCY_METHODS = ("saliency", "gradcam++")
# The ends of a diverging colour map (ColorBrewer RdBu): negative -> blue, 0 -> white, positive -> red.
_RED, _WHITE, _BLUE = np.array([178, 24, 43]), np.array([255, 255, 255]), np.array([33, 102, 172])
_MISSING = np.array([128, 128, 128])
_DIVERGING = matplotlib.colormaps["RdBu_r"].with_extremes(bad="0.6")  # the same ends as affinity_image
_GROUP_COLOURS = matplotlib.colormaps["tab10"].colors


def affinity_image(matrix: np.ndarray, cell: int = 16) -> np.ndarray:
    """uint8 [n·cell, n·cell, 3]: each entry of `matrix` as a square, coloured on a diverging map
    centred at 0 and scaled by the largest |entry|; NaN (no sample) is grey. Rows are sources."""
    matrix = np.asarray(matrix, np.float64)
    t = np.clip(np.where(np.isfinite(matrix), matrix, 0.0) / _symmetric_limit(matrix), -1.0, 1.0)[..., None]
    colours = np.where(t >= 0, _WHITE + t * (_RED - _WHITE), _WHITE - t * (_BLUE - _WHITE))
    colours = np.where(np.isfinite(matrix)[..., None], colours, _MISSING)
    return np.repeat(np.repeat(np.round(colours).astype(np.uint8), cell, axis=0), cell, axis=1)


def _symmetric_limit(matrix: np.ndarray) -> float:
    """The largest finite |entry|, or 1 when there is none (or it is 0): the colour scale's end."""
    finite = np.abs(matrix[np.isfinite(matrix)])
    return float(finite.max()) if finite.size and finite.max() > 0 else 1.0


def pixels(figure: Figure) -> tuple[int, int]:
    """(width, height) in pixels of `figure` saved by `save_png`."""
    width, height = figure.get_size_inches() * DPI
    return round(width), round(height)


def save_png(figure: Figure, path: str) -> None:
    """Write `figure` to `path` as a PNG of exactly `pixels(figure)`, atomically."""
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=DPI)


def _cell_text(value: float) -> str:
    """A matrix entry as short text: 3 significant digits, "n/a" for no sample."""
    return f"{value:.3g}" if np.isfinite(value) else "n/a"


def _outline(mask: np.ndarray, inset: float) -> list:
    """Line segments around the cells where `mask` is True (image coordinates, cell centres at
    integers), drawn `inset` inside the border so that outlines of several groups stay apart."""
    segments = []
    rows, cols = mask.shape
    for r, c in zip(*np.nonzero(mask)):
        top, bottom, left, right = r - 0.5 + inset, r + 0.5 - inset, c - 0.5 + inset, c + 0.5 - inset
        if r == 0 or not mask[r - 1, c]:
            segments.append([(left, top), (right, top)])
        if r == rows - 1 or not mask[r + 1, c]:
            segments.append([(left, bottom), (right, bottom)])
        if c == 0 or not mask[r, c - 1]:
            segments.append([(left, top), (left, bottom)])
        if c == cols - 1 or not mask[r, c + 1]:
            segments.append([(right, top), (right, bottom)])
    return segments


def _check_tasks(tasks: Sequence[str], n: int, what: str) -> list[str]:
    tasks = list(tasks)
    if len(tasks) != n:
        raise ValueError(f"{what} has {n} tasks but {len(tasks)} task names were given: {tasks}.")
    return tasks


def _check_groups(groups, tasks: list[str]) -> list[tuple[str, ...]]:
    groups = [tuple(g) for g in groups]
    unknown = sorted({t for g in groups for t in g} - set(tasks))
    if unknown:
        raise ValueError(f"Groups name unknown task(s) {unknown}; the tasks are {tasks}.")
    return groups


def affinity_heatmap(tasks: Sequence[str], matrix: np.ndarray, groups: Sequence[Sequence[str]] = ()) -> Figure:
    """The affinity matrix `matrix[source, target]` as a heatmap: sources as rows, targets as
    columns, red where a step on the source lowers the target's loss, blue where it raises it
    (centred at 0, scaled by the largest off-diagonal |entry|; NaN and the diagonal grey: the
    diagonal, self-affinity, is not used by selection and would wash out the scale), each value
    written in its cell, and
    each of `groups` outlined (the cells among its members) in its own colour, named
    "network i" in the legend.

    Size: (3 + n/2) x (2.5 + n/2) inches for n tasks.
    """
    matrix = np.asarray(matrix, np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"matrix must be square [source, target], got shape {matrix.shape}.")
    n = matrix.shape[0]
    tasks = _check_tasks(tasks, n, "matrix")
    groups = _check_groups(groups, tasks)
    figure = Figure(figsize=(3 + n / 2, 2.5 + n / 2), layout="constrained")
    axes = figure.add_subplot()
    off_diagonal = np.where(np.eye(n, dtype=bool), np.nan, matrix)
    limit = _symmetric_limit(off_diagonal)
    shown = axes.imshow(np.ma.masked_invalid(off_diagonal), cmap=_DIVERGING, vmin=-limit, vmax=limit)
    figure.colorbar(shown, ax=axes, shrink=0.8, label="affinity (> 0: the source helps)\ndiagonal (grey): not to scale")
    scale = off_diagonal / limit
    for (r, c), value in np.ndenumerate(matrix):
        strong = np.isfinite(scale[r, c]) and abs(scale[r, c]) > 0.6
        axes.text(c, r, _cell_text(value), ha="center", va="center", fontsize=7,
                  color="white" if strong else "black")
    handles = []
    for index, group in enumerate(groups):
        member = np.array([t in group for t in tasks])
        colour = _GROUP_COLOURS[index % len(_GROUP_COLOURS)]
        axes.add_collection(LineCollection(_outline(np.outer(member, member), 0.04 + 0.06 * (index % 4)),
                                           colors=[colour], linewidths=2))
        handles.append(Patch(facecolor="none", edgecolor=colour, linewidth=2, label=f"network {index + 1}"))
    axes.set_xticks(range(n), tasks, rotation=45, ha="right", rotation_mode="anchor", fontsize=8)
    axes.set_yticks(range(n), tasks, fontsize=8)
    axes.set_xlabel("target task (column: the affinity onto it)")
    axes.set_ylabel("source task (row: a step on it)")
    axes.set_title("Task affinity A[source, target]", fontsize=10)
    if handles:
        figure.legend(handles=handles, loc="outside lower center", ncols=min(5, len(handles)), fontsize=7,
                      title="chosen groups (the tasks each network trains)", title_fontsize=7)
    return figure


def affinity_trajectories(tasks: Sequence[str], epochs: Sequence[np.ndarray],
                          serving: dict[str, Sequence[str]] | None = None) -> Figure:
    """Affinity over training: one panel per target task, one line per source task across the
    epochs (`epochs[e][source, target]`, the mean over epoch e). Sources in the group serving the
    target (`serving[target]`, a group of task names) are drawn in colour and named in the legend;
    the other sources are thin grey lines.

    Size: 3.5 inches wide and 2.5 high per panel, at most 3 panels a row, plus 0.5 inch.
    """
    epochs = [np.asarray(m, np.float64) for m in epochs]
    if not epochs:
        raise ValueError("affinity over training needs at least one epoch matrix, got none.")
    tasks = _check_tasks(tasks, epochs[0].shape[0], "the epoch matrices")
    serving = serving or {}
    unknown = sorted(set(serving) - set(tasks))
    if unknown:
        raise ValueError(f"serving names unknown task(s) {unknown}; the tasks are {tasks}.")
    stack = np.stack(epochs)  # [epoch, source, target]
    steps = np.arange(1, len(epochs) + 1)
    cols = min(3, len(tasks))
    rows = math.ceil(len(tasks) / cols)
    figure = Figure(figsize=(3.5 * cols, 2.5 * rows + 0.5), layout="constrained")
    figure.suptitle("Affinity onto each task over training (coloured: sources in its serving group)", fontsize=10)
    for j, target in enumerate(tasks):
        axes = figure.add_subplot(rows, cols, j + 1)
        group = tuple(serving.get(target, ()))
        for i, source in enumerate(tasks):
            if i == j:
                continue
            if source in group:
                axes.plot(steps, stack[:, i, j], marker="o", markersize=3, linewidth=2, label=source,
                          color=_GROUP_COLOURS[i % len(_GROUP_COLOURS)])
            else:
                axes.plot(steps, stack[:, i, j], marker=".", markersize=2, linewidth=0.8, color="0.7")
        axes.axhline(0.0, color="black", linewidth=0.5)
        axes.set_title(f"onto {target}", fontsize=9)
        axes.set_xlabel("epoch", fontsize=7)
        axes.set_xticks(steps)
        axes.tick_params(labelsize=7)
        if axes.get_legend_handles_labels()[0]:
            axes.legend(fontsize=6, title="its serving group", title_fontsize=6)
    return figure


def grouping_chart(tasks: Sequence[str], groupings: Sequence, results: Sequence[str]) -> Figure:
    """For each grouping (`selection.Grouping`, one per budget k): a row per network, a column per
    task; dark where the network serves the task, light where it only trains it. The panel's
    title gives k, the selection score and the grouping's test result (`results`, one text per
    grouping, e.g. `grouped.headline_text`: "total error 50.33" or "ΔMTL +1.60%").

    Size: (2.5 + n/2) inches wide for n tasks; per grouping 1 inch plus 0.4 per network, plus 0.5.
    """
    tasks = list(tasks)
    if len(results) != len(groupings):
        raise ValueError(f"one result per grouping: {len(groupings)} groupings, {len(results)} results.")
    heights = [1 + 0.4 * len(g.groups) for g in groupings]
    figure = Figure(figsize=(2.5 + len(tasks) / 2, sum(heights) + 0.5), layout="constrained")
    panels = figure.subplots(len(groupings), 1, squeeze=False, height_ratios=heights)[:, 0]
    colours = ListedColormap(["white", "#c6dbef", "#2171b5"])
    for axes, grouping, result in zip(panels, groupings, results):
        _check_groups(grouping.groups, tasks)
        cells = np.zeros((len(grouping.groups), len(tasks)))
        for r, group in enumerate(grouping.groups):
            for c, task in enumerate(tasks):
                cells[r, c] = 2 if grouping.assignment[task] == r else 1 if task in group else 0
        axes.imshow(cells, cmap=colours, vmin=0, vmax=2, aspect="auto")
        axes.set_xticks(range(len(tasks)), tasks, rotation=45, ha="right", rotation_mode="anchor", fontsize=8)
        axes.set_yticks(range(len(grouping.groups)), [f"network {r + 1}" for r in range(len(grouping.groups))],
                        fontsize=8)
        axes.set_xticks(np.arange(len(tasks) + 1) - 0.5, minor=True)
        axes.set_yticks(np.arange(len(grouping.groups) + 1) - 0.5, minor=True)
        axes.grid(which="minor", color="0.8", linewidth=0.5)
        axes.tick_params(which="minor", length=0)
        axes.set_title(f"k = {grouping.budget:g}: score {grouping.score:.4g}, {result}", fontsize=9)
    figure.legend(handles=[Patch(color="#2171b5", label="trains and serves"), Patch(color="#c6dbef", label="trains only")],
                  loc="outside lower center", ncols=2, fontsize=7)
    return figure


# ---------------------------------------------------------------------------------------------
# Saliency


def heads_model(model: keras.Model, tasks: Sequence[str]) -> keras.Model:
    """A list-output functional model `[output of task for task in tasks]` sharing `model`'s
    layers and weights, for tf-keras-vis (which cannot take dict outputs).

    When the heads read a trunk nested as one sub-model (as `models.build_multitask_model`
    builds it), the result is built on the trunk's own graph, so that the trunk's convolutions are
    layers of the result: GradCAM++ looks for the last one.
    """
    outputs = model.output
    if not isinstance(outputs, dict):
        raise ValueError(f"model must have dict outputs keyed by task name, got {type(outputs).__name__}.")
    missing = [t for t in tasks if t not in outputs]
    if missing:
        raise ValueError(f"Unknown task(s) {missing}; the model's heads are {sorted(outputs)}.")
    heads = [_producer(outputs[t]) for t in tasks]
    trunk = _producer(heads[0].input)
    if isinstance(trunk, keras.Model) and all(head.input is heads[0].input for head in heads):
        return keras.Model(trunk.inputs, [head(trunk.output) for head in heads])
    return keras.Model(model.inputs, [outputs[t] for t in tasks])


def _producer(tensor) -> keras.layers.Layer:
    """The layer whose call made the symbolic `tensor` (a nested model's own `.output` is its
    inner graph's, so layers cannot be matched by output)."""
    return tensor._keras_history.operation


def _score(task: Task, output: np.ndarray):
    """tf-keras-vis score for what the head predicted: the predicted class of a classifier, the
    value itself for regression."""
    if task.kind == "binary":
        return BinaryScore(list(output[:, 0] > 0))
    if task.kind == "multiclass":
        return CategoricalScore(list(np.argmax(output, axis=-1)))
    return lambda values: values[:, 0]


def supports(method: str, model: keras.Model, tasks: Sequence[str] | None = None) -> bool:
    """Whether `saliency_maps(model, tasks, ..., method)` can explain `model`'s heads `tasks`
    (None: all): vanilla saliency always; GradCAM++ when a convolution is a top-level layer of
    `heads_model` (tf-keras-vis looks there).

    >>> from tag_tf.models import build_multitask_model, mlp_trunk
    >>> model = build_multitask_model(mlp_trunk(3, hidden=(4,)), ["a"])
    >>> supports("saliency", model), supports("gradcam++", model)
    (True, False)
    """
    if method == "saliency":
        return True
    convolutions = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D)
    wrapped = heads_model(model, list(model.output) if tasks is None else list(tasks))
    return any(isinstance(layer, convolutions) for layer in wrapped.layers)


def saliency_maps(model: keras.Model, tasks: Sequence[Task], images: np.ndarray, method: str = "saliency") -> np.ndarray:
    """float32 [len(tasks), N, H, W] in [0, 1]: for each task's head of `model` (dict outputs) and
    each image of `images` [N, H, W, C], where the head's prediction is sensitive to the input.

    `method` is one of `SALIENCY_METHODS`: "saliency" (vanilla gradient, max |.| over channels)
    or "gradcam++" (GradCAM++ on the last convolution, resized to H x W). Each map is normalised
    to [0, 1] by tf-keras-vis. What is explained is each head's prediction: the predicted class of
    a classifier, the value of a regression.
    """
    if method not in SALIENCY_METHODS:
        raise ValueError(f"Unknown saliency method {method!r}; valid choices: {SALIENCY_METHODS}.")
    images = np.asarray(images, np.float32)
    if images.ndim != 4:
        raise ValueError(f"saliency needs images [N, H, W, C], got shape {images.shape}.")
    wrapped = heads_model(model, [t.name for t in tasks])
    raw = wrapped([images], training=False)  # one output: a tensor, not a list of one
    outputs = [np.asarray(o) for o in (raw if isinstance(raw, (list, tuple)) else [raw])]
    visualise = (Saliency if method == "saliency" else GradcamPlusPlus)(wrapped, clone=False)
    maps = []
    for i, task in enumerate(tasks):
        scores = [_score(task, outputs[i]) if j == i else InactiveScore() for j in range(len(tasks))]
        maps.append(visualise(scores, images))
    return np.stack(maps).astype(np.float32)


def prediction_titles(task: Task, outputs: np.ndarray, labels: np.ndarray) -> list[str]:
    """One short title per example: the head's prediction (with its probability for a
    classifier) and the label ("-" when missing).

    >>> prediction_titles(Task("a"), np.array([[2.0], [-1.0]]), np.array([1, -1]))
    ['pred 1 (p 0.88), label 1', 'pred 0 (p 0.73), label -']
    """
    outputs = np.asarray(outputs, np.float64)
    if task.kind == "binary":
        positive = 1 / (1 + np.exp(-outputs[:, 0]))
        predicted = (positive > 0.5).astype(int)
        confidence = np.where(predicted == 1, positive, 1 - positive)
    elif task.kind == "multiclass":
        shifted = np.exp(outputs - outputs.max(axis=-1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=-1, keepdims=True)
        predicted, confidence = probabilities.argmax(axis=-1), probabilities.max(axis=-1)
    else:
        return [f"pred {p:.3g}, label {y:.3g}" if np.isfinite(y) else f"pred {p:.3g}, label -"
                for p, y in zip(outputs[:, 0], np.asarray(labels, np.float64))]
    return [f"pred {p} (p {c:.2f}), label {y if y >= 0 else '-'}" for p, c, y in zip(predicted, confidence, labels)]


def saliency_grid(images: np.ndarray, maps: np.ndarray, tasks: Sequence[str], titles: Sequence[Sequence[str]],
                  method: str) -> Figure:
    """A grid, one row per task and one column per image: the image (in grey) with the task's map
    (`maps` [tasks, images, H, W] from `saliency_maps`, blue 0 to red 1) over it, and
    `titles[task][image]` above it.

    Size: (0.5 + 1.75 per image) x (0.5 + 1.75 per task) inches.
    """
    images, maps = np.asarray(images), np.asarray(maps)
    tasks = list(tasks)
    if maps.shape[:2] != (len(tasks), len(images)) or maps.shape[2:] != images.shape[1:3]:
        raise ValueError(f"maps must be [tasks, images, H, W] = {(len(tasks), *images.shape[:3])}, got {maps.shape}.")
    figure = Figure(figsize=(0.5 + 1.75 * len(images), 0.5 + 1.75 * len(tasks)), layout="constrained")
    figure.suptitle(f"{method}: where each head looks (one row per task)", fontsize=10)
    grid = figure.subplots(len(tasks), len(images), squeeze=False)
    for (t, i), axes in np.ndenumerate(grid):
        axes.imshow(np.clip(images[i], 0, 1).mean(axis=-1), cmap="gray", vmin=0, vmax=1)
        axes.imshow(maps[t, i], cmap="jet", alpha=0.5, vmin=0, vmax=1)
        axes.set_title(titles[t][i], fontsize=6)
        axes.set_xticks([])
        axes.set_yticks([])
        if i == 0:
            axes.set_ylabel(tasks[t], fontsize=8)
    return figure
