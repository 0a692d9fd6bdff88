"""Metrics of the dense task kinds: the maths as pure functions, and stateful Keras metrics that
accumulate it over a data set (sums in variables with SUM aggregation, so they are replica-safe).

Over the valid pixels p of the whole data set, each pixel weighted by its weight w_p (its valid
mask times its example's sample weight; `Task.example_weights`):

    miou         mean over the classes c present (in the labels or the predictions) of
                 TP_c / (TP_c + FP_c + FN_c), from the confusion matrix of argmax predictions
    rmse         sqrt(Σ w (d̂ − d)² / Σ w)
    abs_rel      Σ w |d̂ − d| / d / Σ w
    angle_error  Σ w · angle(n̂, n) / Σ w, in degrees (the prediction normalised)
    odsf         max over a fixed grid of thresholds τ of F(τ) = 2 TP(τ) / (2 TP(τ) + FP(τ) + FN(τ)),
                 a pixel predicted an edge when sigmoid(logit) >= τ (TP, FP, FN summed over the
                 data set: the optimal dataset scale; pixels are matched exactly, no distance
                 tolerance as in the BSDS benchmark)

Which direction is better is `tag_tf.tasks.lower_is_better(name)`.

>>> import numpy as np
>>> confusion = confusion_matrix(np.array([0, 0, 1, 2]), np.array([0, 1, 1, 1]), 3, np.ones(4))
>>> np.asarray(confusion).tolist()
[[1.0, 1.0, 0.0], [0.0, 1.0, 0.0], [0.0, 1.0, 0.0]]
>>> round(float(mean_iou(confusion)), 4)    # class 0: 1/2, class 1: 1/3, class 2: 0/1
0.2778
"""

from __future__ import annotations

import math

import keras
import numpy as np
from keras import ops

from tag_tf.tasks.dense import cosine

# The ODS threshold grid: 0.01, 0.02, ..., 0.99 on the edge probability.
ODS_THRESHOLDS = tuple(np.round(np.linspace(0.01, 0.99, 99), 2).tolist())


def confusion_matrix(labels, predictions, num_classes: int, weights):
    """C[true, predicted]: the summed weights of the pixels of each (label, prediction) pair.
    Labels of pixels with weight 0 may be anything (they are clipped before counting)."""
    labels = ops.clip(ops.reshape(ops.cast(labels, "int32"), (-1,)), 0, num_classes - 1)
    predictions = ops.reshape(ops.cast(predictions, "int32"), (-1,))
    counts = ops.segment_sum(ops.reshape(ops.cast(weights, "float32"), (-1,)), labels * num_classes + predictions,
                             num_segments=num_classes * num_classes)
    return ops.reshape(counts, (num_classes, num_classes))


def mean_iou(confusion):
    """Mean over the classes with TP + FP + FN > 0 of TP / (TP + FP + FN); 0 when there is none."""
    confusion = ops.cast(confusion, "float32")
    true_positive = ops.diagonal(confusion)
    union = ops.sum(confusion, axis=0) + ops.sum(confusion, axis=1) - true_positive
    present = ops.cast(union > 0, "float32")
    return ops.divide_no_nan(ops.sum(ops.divide_no_nan(true_positive, union)), ops.sum(present))


def squared_errors(depth, predicted):
    """(d̂ − d)² per pixel, `predicted` `[B, H, W, 1]`."""
    return ops.square(ops.cast(predicted, "float32")[..., 0] - ops.cast(depth, "float32"))


def relative_errors(depth, predicted):
    """|d̂ − d| / d per pixel (0 where d = 0: an invalid pixel)."""
    depth = ops.cast(depth, "float32")
    return ops.divide_no_nan(ops.abs(ops.cast(predicted, "float32")[..., 0] - depth), depth)


def angle_errors(normals, predicted):
    """The angle between the unit `normals` and `predicted` (normalised), per pixel, in degrees.

    >>> round(float(np.asarray(angle_errors(np.array([[1.0, 0.0, 0.0]]), np.array([[1.0, 1.0, 0.0]])))[0]), 4)
    45.0
    """
    return ops.arccos(ops.clip(cosine(normals, predicted), -1.0, 1.0)) * (180.0 / math.pi)


def threshold_counts(edges, logits, weights, thresholds=ODS_THRESHOLDS):
    """(TP, FP, FN) at every threshold `[T]` each: a pixel is predicted an edge when
    sigmoid(logit) >= threshold; pixels counted with their weights. Memory O(pixels + T): each
    pixel falls in the bin of how many thresholds it reaches, and the counts at threshold j are
    those of the bins above j.

    >>> tp, fp, fn = threshold_counts(np.array([1, 0, 1]), np.array([2.0, 0.0, -2.0]), np.ones(3), (0.3, 0.6))
    >>> np.asarray(tp).tolist(), np.asarray(fp).tolist(), np.asarray(fn).tolist()
    ([1.0, 1.0], [1.0, 0.0], [1.0, 1.0])
    """
    thresholds = ops.convert_to_tensor(thresholds, "float32")
    count = ops.shape(thresholds)[0]
    reached = ops.searchsorted(thresholds, ops.sigmoid(ops.reshape(ops.cast(logits, "float32"), (-1,))), side="right")
    edges = ops.reshape(ops.cast(edges, "float32"), (-1,))
    weights = ops.reshape(ops.cast(weights, "float32"), (-1,))

    def above(values):  # [T]: the sum of `values` over the pixels reaching threshold j
        bins = ops.segment_sum(values, ops.cast(reached, "int32"), num_segments=count + 1)
        return ops.flip(ops.cumsum(ops.flip(bins[1:], 0)), 0)

    true_positive = above(weights * edges)
    false_positive = above(weights * (1.0 - edges))
    return true_positive, false_positive, ops.sum(weights * edges) - true_positive


def best_f_measure(true_positive, false_positive, false_negative):
    """max over thresholds of 2 TP / (2 TP + FP + FN) (0 where that is 0 / 0).

    >>> float(best_f_measure(np.array([2.0, 1.0]), np.array([2.0, 0.0]), np.array([0.0, 1.0])))
    0.6666666...
    """
    true_positive = ops.cast(true_positive, "float32")
    return ops.max(ops.divide_no_nan(2.0 * true_positive, 2.0 * true_positive + false_positive + false_negative))


@keras.saving.register_keras_serializable(package="tag_tf")
class MeanIoU(keras.metrics.Metric):
    """Mean intersection over union of per-pixel argmax predictions (`mean_iou` of the summed
    `confusion_matrix`); `update_state(labels [B,H,W], logits [B,H,W,K], sample_weight [B,H,W])`."""

    def __init__(self, num_classes: int, name: str = "miou", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.num_classes = num_classes
        self.confusion = self.add_variable((num_classes, num_classes), "zeros", "float32", name="confusion")

    def update_state(self, y_true, y_pred, sample_weight=None):
        weights = ops.ones(ops.shape(y_true), "float32") if sample_weight is None else sample_weight
        self.confusion.assign_add(confusion_matrix(y_true, ops.argmax(y_pred, axis=-1), self.num_classes, weights))

    def result(self):
        return mean_iou(self.confusion)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


class _PixelMean(keras.metrics.Metric):
    """Σ w · error / Σ w over every pixel seen; `errors(y_true, y_pred)` gives the per-pixel error."""

    def __init__(self, name: str, dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable((), "zeros", "float32", name="total")
        self.count = self.add_variable((), "zeros", "float32", name="count")

    def update_state(self, y_true, y_pred, sample_weight=None):
        errors = self.errors(y_true, y_pred)
        weights = ops.ones(ops.shape(errors), "float32") if sample_weight is None else sample_weight
        weights = ops.cast(weights, "float32")
        self.total.assign_add(ops.sum(ops.where(weights > 0, errors * weights, 0.0)))
        self.count.assign_add(ops.sum(weights))

    def result(self):
        return ops.divide_no_nan(self.total, self.count)


@keras.saving.register_keras_serializable(package="tag_tf")
class DepthRMSE(_PixelMean):
    """Root mean squared depth error over the valid pixels; y_true `[B,H,W]` or `[B,H,W,1]`."""

    def errors(self, y_true, y_pred):
        return squared_errors(ops.reshape(y_true, ops.shape(y_pred)[:3]), y_pred)

    def result(self):
        return ops.sqrt(super().result())


@keras.saving.register_keras_serializable(package="tag_tf")
class DepthAbsRel(_PixelMean):
    """Mean absolute relative depth error |d̂ − d| / d over the valid pixels."""

    def errors(self, y_true, y_pred):
        return relative_errors(ops.reshape(y_true, ops.shape(y_pred)[:3]), y_pred)


@keras.saving.register_keras_serializable(package="tag_tf")
class AngleError(_PixelMean):
    """Mean angle (degrees) between predicted and true normals over the valid pixels."""

    def errors(self, y_true, y_pred):
        return angle_errors(y_true, y_pred)


@keras.saving.register_keras_serializable(package="tag_tf")
class ODSF(keras.metrics.Metric):
    """Edge F-measure at the optimal dataset scale: TP/FP/FN summed over the data set at every
    threshold of `ODS_THRESHOLDS`, the best F of them; y_pred are logits `[B,H,W,1]`."""

    def __init__(self, name: str = "odsf", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.counts = self.add_variable((3, len(ODS_THRESHOLDS)), "zeros", "float32", name="counts")

    def update_state(self, y_true, y_pred, sample_weight=None):
        weights = ops.ones(ops.shape(y_pred)[:3], "float32") if sample_weight is None else sample_weight
        self.counts.assign_add(ops.stack(threshold_counts(y_true, y_pred, weights)))

    def result(self):
        return best_f_measure(self.counts[0], self.counts[1], self.counts[2])
