"""Task specifications: what each head predicts, its loss, its metric and its label mask.

A `Task` is a small frozen description; the math it implies lives in pure functions of
(labels, head outputs) so that training, evaluation and the affinity lookahead share one
definition.

Kinds and their conventions:

| kind         | head output           | label                        | missing label | loss                     | metric   |
|--------------|-----------------------|------------------------------|---------------|--------------------------|----------|
| `binary`     | one logit `[B, 1]`    | int 0/1 `[B]`                | -1            | sigmoid cross-entropy    | accuracy |
| `multiclass` | K logits `[B, K]`     | int class index `[B]`        | -1            | softmax cross-entropy    | accuracy |
| `regression` | one value `[B, 1]`    | float `[B]`                  | NaN           | squared error            | MAE      |

A missing label is left out of its task's loss: the loss is the mean over the labelled
examples of the batch only, and is exactly 0 (with no gradient) when none is labelled.

Dense kinds (`segmentation`, `depth`, `normals`, `edges`; heads `[B, H, W, output_units]`) have a
label per pixel and a loss per pixel (`tag_tf.tasks.dense`); their unit of the mean is the valid pixel:
the loss is the mean over the valid pixels of the batch, each weighted by its example's sample
weight. Their metrics (`tag_tf.tasks.dense_metrics`): `miou`; `rmse` and `abs_rel`; `angle_error`
(degrees); `odsf`. `lower_is_better(metric)` says which direction of a metric is better.

Example:

>>> import numpy as np
>>> smiling = Task("Smiling")
>>> labels = np.array([1, 0, -1])            # the third example is unlabelled
>>> logits = np.array([[2.0], [-1.0], [50.0]])
>>> round(float(smiling.loss(labels, logits)), 4)   # mean over the two labelled examples
0.2201
"""

from __future__ import annotations

import dataclasses
import re
from typing import Iterable

import keras
import numpy as np
from keras import ops

from tag_tf.tasks import dense, dense_metrics

FLAT_KINDS = ("binary", "multiclass", "regression")
DENSE_KINDS = ("segmentation", "depth", "normals", "edges")
KINDS = FLAT_KINDS + DENSE_KINDS
# Segmentation's default ignore label (the PASCAL / NYUv2 multi-task convention); negative labels
# are ignored too (the project's missing-label marker).
DEFAULT_IGNORE_LABEL = 255
# The metrics logged per kind (`<task>_<metric>`), the first being the task's main measure.
METRICS = {"binary": ("accuracy",), "multiclass": ("accuracy",), "regression": ("mae",), "segmentation": ("miou",),
           "depth": ("rmse", "abs_rel"), "normals": ("angle_error",), "edges": ("odsf",)}
LOWER_IS_BETTER = {"accuracy": False, "mae": True, "miou": False, "rmse": True, "abs_rel": True,
                   "angle_error": True, "odsf": False}
# Task names become Keras layer names, fit-log keys and TF Serving output keys.
NAME_PATTERN = re.compile(r"[A-Za-z0-9_.\-]+")


@dataclasses.dataclass(frozen=True)
class Task:
    """One prediction task of a multi-task model.

    Args:
      name: unique name; becomes the model's output key and the prefix of its logged metrics.
      kind: one of `KINDS`.
      num_classes: number of classes, required for (and only for) `multiclass` and `segmentation`.
      weight: factor of this task's loss in the summed training loss.
      ignore_label: segmentation only: the label of pixels left out of loss and metric (None:
        `DEFAULT_IGNORE_LABEL`, 255); negative labels are always ignored.

    >>> Task("age", kind="regression").output_units
    1
    >>> Task("hair", kind="multiclass", num_classes=4).metric_name
    'accuracy'
    >>> seg = Task("seg", kind="segmentation", num_classes=13)
    >>> seg.is_dense, seg.output_units, seg.ignore_label, Task("normals", kind="normals").output_units
    (True, 13, 255, 3)
    """

    name: str
    kind: str = "binary"
    num_classes: int | None = None
    weight: float = 1.0
    ignore_label: int | None = None

    def __post_init__(self):
        if not isinstance(self.name, str) or not NAME_PATTERN.fullmatch(self.name):
            raise ValueError(
                f"Task name {self.name!r} is not valid: use letters, digits, '_', '.' or '-' (at least one)."
            )
        if self.kind not in KINDS:
            raise ValueError(f"Task {self.name!r}: unknown kind {self.kind!r}; valid kinds: {KINDS}.")
        if self.kind in ("multiclass", "segmentation"):
            if not isinstance(self.num_classes, int) or self.num_classes < 2:
                raise ValueError(
                    f"Task {self.name!r}: {self.kind} needs num_classes >= 2, got {self.num_classes!r}."
                )
        elif self.num_classes is not None:
            raise ValueError(
                f"Task {self.name!r}: num_classes is only for multiclass and segmentation tasks, got "
                f"{self.num_classes!r} for kind {self.kind!r}."
            )
        if self.kind == "segmentation":
            if self.ignore_label is None:
                object.__setattr__(self, "ignore_label", DEFAULT_IGNORE_LABEL)
            if not isinstance(self.ignore_label, int) or 0 <= self.ignore_label < self.num_classes:
                raise ValueError(f"Task {self.name!r}: ignore_label must be an integer outside the classes "
                                 f"[0, {self.num_classes}), got {self.ignore_label!r}.")
        elif self.ignore_label is not None:
            raise ValueError(f"Task {self.name!r}: ignore_label is only for segmentation tasks, got "
                             f"{self.ignore_label!r} for kind {self.kind!r}.")
        if not np.isfinite(self.weight) or self.weight < 0:
            raise ValueError(f"Task {self.name!r}: weight must be finite and >= 0, got {self.weight!r}.")

    @property
    def is_dense(self) -> bool:
        """True for per-pixel kinds (head `[B, H, W, output_units]`), False for one output per example."""
        return self.kind in DENSE_KINDS

    @property
    def output_units(self) -> int:
        """Width (channels, for dense kinds) of the task's head: K logits for multiclass and
        segmentation, 3 for normals, else 1."""
        if self.kind in ("multiclass", "segmentation"):
            return self.num_classes
        return 3 if self.kind == "normals" else 1

    @property
    def metric_names(self) -> tuple[str, ...]:
        """Names of the task's metrics in the fit logs (`<task>_<name>`), the main one first.

        >>> Task("depth", kind="depth").metric_names
        ('rmse', 'abs_rel')
        """
        return METRICS[self.kind]

    @property
    def metric_name(self) -> str:
        """Name of the task's main metric in the fit logs (`<task>_<metric_name>`)."""
        return self.metric_names[0]

    def check_output_shape(self, shape) -> None:
        """ValueError unless a head output of `shape` fits this kind: `[batch, output_units]` for one
        prediction per example, `[batch, H, W, output_units]` for dense kinds.

        >>> Task("depth", kind="depth").check_output_shape((None, 16))
        Traceback (most recent call last):
        ...
        ValueError: Task 'depth' (depth): the model's output has shape (None, 16); a depth head outputs [batch, H, W, 1] (a dense task needs a per-pixel head, e.g. a 1x1 Conv2D with 1 filter(s)).
        """
        shape = tuple(shape)
        rank = 4 if self.is_dense else 2
        if len(shape) == rank and shape[-1] in (None, self.output_units):
            return
        units = self.output_units
        if self.is_dense:
            expected = f"[batch, H, W, {units}]"
            hint = f"a dense task needs a per-pixel head, e.g. a 1x1 Conv2D with {units} filter(s)"
        else:
            expected = f"[batch, {units}]"
            hint = f"pool per-pixel features (e.g. GlobalAveragePooling2D) before a Dense({units}) head"
        raise ValueError(f"Task {self.name!r} ({self.kind}): the model's output has shape {shape}; a {self.kind} head "
                         f"outputs {expected} ({hint}).")

    @property
    def label_dtype(self) -> str:
        return "float32" if self.kind in ("regression", "depth", "normals") else "int32"

    def label_mask(self, labels):
        """1.0 where the example is labelled, 0.0 where the label is missing (-1 or NaN); for
        dense kinds, per pixel `[B, H, W]` (`tag_tf.tasks.dense.valid_pixels`)."""
        if self.is_dense:
            return dense.valid_pixels(self.kind, labels, self.ignore_label)
        labels = ops.convert_to_tensor(labels)
        if self.kind == "regression":
            return ops.cast(ops.isfinite(ops.cast(labels, "float32")), "float32")
        return ops.cast(ops.greater_equal(labels, 0), "float32")

    def example_weights(self, labels, sample_weight=None):
        """The weight of every example in this task's loss and metric: its label mask times its
        sample weight (the one rule for both). `sample_weight` may be a dict keyed by task name
        (Keras' per-output weights); a task it does not name is weighted 1. For dense kinds the
        weights are per pixel `[B, H, W]`: every valid pixel weighted by its example's weight.

        >>> np.asarray(Task("a").example_weights(np.array([1, -1, 0]), np.array([2.0, 2.0, 0.5]))).tolist()
        [2.0, 0.0, 0.5]
        """
        if isinstance(sample_weight, dict):  # Keras' per-output sample weights, keyed by task
            sample_weight = sample_weight.get(self.name)
        weights = self.label_mask(labels)
        if sample_weight is not None:
            shape = (-1, 1, 1) if self.is_dense else (-1,)
            weights = weights * ops.cast(ops.reshape(sample_weight, shape), "float32")
        return weights

    def per_example_loss(self, labels, outputs):
        """Loss of every example, with missing labels replaced by a harmless placeholder.

        Callers weight the result with `example_weights`; see `loss`. Dense kinds: the loss of
        every pixel `[B, H, W]` (`tag_tf.tasks.dense.pixel_losses`).
        """
        if self.is_dense:
            return dense.pixel_losses(self.kind, labels, outputs, self.ignore_label)
        labels = _fill_missing(self, labels)
        outputs = ops.cast(outputs, "float32")
        if self.kind == "binary":
            return ops.binary_crossentropy(
                ops.cast(labels[:, None], "float32"), outputs, from_logits=True
            )[:, 0]
        if self.kind == "multiclass":
            return ops.sparse_categorical_crossentropy(labels, outputs, from_logits=True)
        return ops.square(outputs[:, 0] - labels)

    def loss(self, labels, outputs, sample_weight=None):
        """Mean loss over the labelled (and weighted) examples; 0 when none is labelled."""
        weights = self.example_weights(labels, sample_weight)
        return masked_mean(self.per_example_loss(labels, outputs), weights)

    def make_metrics(self) -> list[keras.metrics.Metric]:
        """Fresh Keras metrics for this task, one per `metric_names`, named `<task>_<name>`.

        >>> [m.name for m in Task("d", kind="depth").make_metrics()]
        ['d_rmse', 'd_abs_rel']
        """
        return [self._make_metric(metric, f"{self.name}_{metric}") for metric in self.metric_names]

    def _make_metric(self, metric: str, name: str) -> keras.metrics.Metric:
        if self.kind == "binary":
            return keras.metrics.BinaryAccuracy(name=name, threshold=0.0)  # on logits
        if self.kind == "multiclass":
            return keras.metrics.SparseCategoricalAccuracy(name=name)
        if self.kind == "regression":
            return keras.metrics.MeanAbsoluteError(name=name)
        if self.kind == "segmentation":
            return dense_metrics.MeanIoU(self.num_classes, name=name)
        dense_classes = {"rmse": dense_metrics.DepthRMSE, "abs_rel": dense_metrics.DepthAbsRel,
                         "angle_error": dense_metrics.AngleError, "odsf": dense_metrics.ODSF}
        return dense_classes[metric](name=name)

    def targets(self, labels):
        """The labels as Keras losses and metrics take them beside this task's head output: class
        indices [B] (multiclass) or [B, 1]; dense kinds: class maps [B, H, W] (segmentation),
        normals [B, H, W, 3], else [B, H, W, 1]; missing labels replaced by a harmless placeholder
        (weight them with `example_weights`).

        >>> np.asarray(Task("a").targets(np.array([1, -1]))).tolist()
        [[1], [0]]
        """
        if self.is_dense:
            labels = dense.fill_invalid(self.kind, labels, self.label_mask(labels))
            return labels if self.kind in ("segmentation", "normals") else labels[..., None]
        labels = _fill_missing(self, labels)
        return labels if self.kind == "multiclass" else labels[:, None]

    def update_metric(self, metric, labels, outputs, sample_weight=None):
        """Update `metric` (from `make_metrics`, or any Keras metric of this task) with the labelled
        examples (pixels) of a batch."""
        metric.update_state(self.targets(labels), outputs, sample_weight=self.example_weights(labels, sample_weight))

    def to_json(self) -> dict:
        data = dataclasses.asdict(self)
        if data["ignore_label"] is None:  # flat kinds: the same JSON as before dense kinds existed
            del data["ignore_label"]
        return data

    @classmethod
    def from_json(cls, data: dict) -> "Task":
        return cls(**data)


def lower_is_better(metric: str) -> bool:
    """Whether a lower value of `metric` (a name of `Task.metric_names`) is better.

    >>> lower_is_better("rmse"), lower_is_better("miou")
    (True, False)
    """
    if metric not in LOWER_IS_BETTER:
        raise ValueError(f"Unknown metric {metric!r}; the metrics are {sorted(LOWER_IS_BETTER)}.")
    return LOWER_IS_BETTER[metric]


def masked_mean(values, weights):
    """Σ w·v / Σ w, and exactly 0 when Σ w = 0 (no labelled example).

    >>> float(masked_mean(np.array([1.0, 3.0]), np.array([0.0, 0.0])))
    0.0
    """
    weights = ops.cast(weights, "float32")
    # where() keeps the masked values (possibly NaN placeholders) out of value and gradient.
    weighted = ops.where(weights > 0, ops.cast(values, "float32") * weights, 0.0)
    return ops.divide_no_nan(ops.sum(weighted), ops.sum(weights))


def _fill_missing(task: Task, labels):
    """Labels with missing entries replaced by 0, so that losses stay finite before masking."""
    labels = ops.convert_to_tensor(labels)
    if task.kind == "regression":
        labels = ops.cast(labels, "float32")
        return ops.where(ops.isfinite(labels), labels, 0.0)
    labels = ops.cast(labels, "int32")
    return ops.maximum(labels, 0)


def as_tasks(tasks: Iterable[Task | str]) -> list[Task]:
    """Validated list of tasks; plain strings become binary tasks.

    Raises ValueError for an empty list or duplicate names.

    >>> [t.name for t in as_tasks(["Smiling", Task("Young")])]
    ['Smiling', 'Young']
    """
    if isinstance(tasks, (str, Task)):
        raise ValueError(f"Expected a list of tasks, got a single task {tasks!r}; wrap it in a list.")
    result = [t if isinstance(t, Task) else Task(t) for t in tasks]
    if not result:
        raise ValueError("The task list is empty: give at least one task.")
    names = [t.name for t in result]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"Duplicate task names {duplicates}: every task needs a unique name.")
    return result

