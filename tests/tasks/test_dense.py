"""Per-pixel losses, masks and label checks of the dense kinds, against numpy written here."""

import numpy as np
import pytest
import tensorflow as tf

from tag_tf.tasks.dense import check_labels
from tag_tf.tasks import Task

RNG = np.random.default_rng(0)


def log_softmax(x):
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def test_segmentation_loss_is_cross_entropy_over_valid_pixels_weighted_by_sample_weight():
    task = Task("seg", kind="segmentation", num_classes=3)
    labels = np.array([[[0, 2], [255, 1]], [[-1, 1], [2, 2]]])
    logits = RNG.normal(size=(2, 2, 2, 3)).astype(np.float32)
    sample_weight = np.array([1.0, 3.0])
    valid = (labels >= 0) & (labels != 255)
    nll = -np.take_along_axis(log_softmax(logits), np.where(valid, labels, 0)[..., None], -1)[..., 0]
    weights = valid * sample_weight[:, None, None]
    expected = (nll * weights).sum() / weights.sum()  # 3 valid pixels of weight 1, 3 of weight 3
    assert float(task.loss(labels, logits, sample_weight)) == pytest.approx(expected, rel=1e-5)


def test_depth_loss_is_l1_over_valid_pixels():
    depth = np.array([[[2.0, 0.0, np.nan], [-1.0, 4.0, np.inf]]], np.float32)
    predicted = np.array([[[[1.0], [9.0], [9.0]], [[9.0], [5.5], [9.0]]]], np.float32)
    assert float(Task("d", kind="depth").loss(depth, predicted)) == pytest.approx((1.0 + 1.5) / 2)


def test_normals_loss_is_one_minus_cosine_with_the_prediction_normalised():
    normals = np.zeros((1, 1, 3, 3), np.float32)
    normals[0, 0, 0] = [0, 0, -1]
    normals[0, 0, 1] = [0.6, 0.8, 0]
    # pixel 2 is the zero vector: invalid
    predicted = np.array([[[[0, 0, -5.0], [0.8, 0.6, 0], [1, 1, 1]]]], np.float32)
    cos1 = (0.6 * 0.8 + 0.8 * 0.6) / 1.0
    assert float(Task("n", kind="normals").loss(normals, predicted)) == pytest.approx((0.0 + 1 - cos1) / 2, abs=1e-6)


def test_normals_loss_inside_the_unit_ball_is_one_minus_the_dot_product_and_its_gradient_is_bounded():
    """A normalised prediction's gradient grows as 1/|p|: a ReLU head's exactly-zero outputs got
    10⁶ and one SGD step threw the head to |p| ≈ 10⁴, where training stalled. Now the gradient is
    the finite-difference one, at most 1 per pixel, and -n at p = 0."""
    normals = RNG.normal(size=(1, 2, 3, 3))
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    directions = RNG.normal(size=(1, 2, 3, 3))
    length = np.array([[[0.0, 0.05, 0.5], [0.99, 1.5, 30.0]]])
    predicted = directions / np.linalg.norm(directions, axis=-1, keepdims=True) * length[..., None]
    dot = (normals * predicted).sum(-1)
    task = Task("n", kind="normals")

    def loss(p):
        return float(task.loss(normals.astype(np.float32), p.astype(np.float32)))

    assert loss(predicted) == pytest.approx(np.mean(1.0 - dot / np.maximum(length, 1.0)), abs=1e-6)
    variable = tf.Variable(predicted, dtype=tf.float32)
    with tf.GradientTape() as tape:
        value = task.loss(normals.astype(np.float32), variable)
    gradient = tape.gradient(value, variable).numpy() * 6  # per pixel: the loss is a mean over 6 pixels
    np.testing.assert_allclose(gradient[0, 0, 0], -normals[0, 0, 0], atol=1e-6)
    assert np.linalg.norm(gradient, axis=-1).max() <= 1.0 + 1e-6
    step = 1e-3
    numeric = np.zeros_like(predicted)
    for index in np.ndindex(predicted.shape):
        offset = np.zeros_like(predicted)
        offset[index] = step
        numeric[index] = (loss(predicted + offset) - loss(predicted - offset)) / (2 * step) * 6
    np.testing.assert_allclose(gradient, numeric, atol=2e-3)


def test_edge_loss_is_class_balanced_cross_entropy_per_image():
    edges = np.array([[[1, 0, 0], [0, 0, -1]], [[1, 1, 0], [0, -1, -1]]])
    logits = RNG.normal(size=(2, 2, 3, 1)).astype(np.float32)
    z = logits[..., 0]
    bce = np.where(edges == 1, np.log1p(np.exp(-z)), np.log1p(np.exp(z)))
    valid = edges >= 0
    beta = np.array([4 / 5, 2 / 4])[:, None, None]  # non-edge share of each image's valid pixels
    weighted = np.where(edges == 1, beta, 1 - beta) * bce
    expected = weighted[valid].sum() / valid.sum()
    assert float(Task("e", kind="edges").loss(edges, logits)) == pytest.approx(expected, rel=1e-5)


def test_flat_and_dense_example_weights_follow_one_rule():
    flat = Task("a").example_weights(np.array([1, -1]), np.array([2.0, 3.0]))
    pixels = Task("d", kind="depth").example_weights(np.array([[[1.0, 0.0]], [[2.0, 3.0]]]), np.array([2.0, 3.0]))
    assert np.asarray(flat).tolist() == [2.0, 0.0]
    assert np.asarray(pixels).tolist() == [[[2.0, 0.0]], [[3.0, 3.0]]]


def test_no_valid_pixel_gives_zero_loss():
    assert float(Task("d", kind="depth").loss(np.zeros((1, 2, 2)), np.ones((1, 2, 2, 1)))) == 0.0


@pytest.mark.parametrize("task, labels, output_shape, message", [
    (Task("seg", kind="segmentation", num_classes=3), np.zeros((2, 8, 8), int), (None, 4, 4, 3),
     r"Task 'seg' \(segmentation\): labels of shape \(2, 8, 8\) do not fit the head's output \(None, 4, 4, 3\); "
     r"expected labels of shape \(None, 4, 4\)"),
    (Task("seg", kind="segmentation", num_classes=3, ignore_label=-1), np.array([[[0, 7], [255, -1]]]),
     (None, 2, 2, 3), r"class ids \[7, 255\] out of range; expected 0..2, -1 \(ignored\)"),
    (Task("e", kind="edges"), np.array([[[0, 2]]]), (None, 1, 2, 1), r"Task 'e' \(edges\): labels \[2\] found"),
    (Task("n", kind="normals"), np.array([[[[0, 0, 0.5], [0, 0, 0]]]]), (None, 1, 2, 3),
     r"Task 'n' \(normals\): 1 valid pixel\(s\) are not unit vectors \(lengths e.g. \[0.5\]\)"),
    (Task("n", kind="normals"), np.zeros((1, 2, 2)), (None, 2, 2, 3), r"expected labels of shape \(None, 2, 2, 3\)"),
])
def test_bad_labels_raise_naming_task_value_and_expectation(task, labels, output_shape, message):
    with pytest.raises(ValueError, match=message):
        check_labels(task, labels, output_shape)


def test_valid_labels_pass():
    check_labels(Task("n", kind="normals"), np.array([[[[0, 0, -1.0], [0, 0, 0]]]]), (None, 1, 2, 3))
    check_labels(Task("seg", kind="segmentation", num_classes=2), np.array([[[0, 1], [255, -1]]]), (None, 2, 2, 2))


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "segmentation"}, "segmentation needs num_classes >= 2"),
    ({"kind": "segmentation", "num_classes": 4, "ignore_label": 2}, r"ignore_label must be an integer outside"),
    ({"kind": "depth", "ignore_label": 255}, "ignore_label is only for segmentation"),
    ({"kind": "edges", "num_classes": 2}, "num_classes is only for multiclass and segmentation"),
])
def test_bad_dense_task_specs(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Task("x", **kwargs)


def test_dense_task_json_round_trip_and_flat_json_unchanged():
    seg = Task("seg", kind="segmentation", num_classes=13, ignore_label=-1)
    assert Task.from_json(seg.to_json()) == seg
    assert Task("a").to_json() == {"name": "a", "kind": "binary", "num_classes": None, "weight": 1.0}
