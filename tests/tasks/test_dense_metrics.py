"""Dense metrics on fixed predictions against numpy written here, ignore/invalid pixels and absent
classes included; accumulated over batches as over one."""

import numpy as np
import pytest

from tag_tf.tasks import Task, lower_is_better

RNG = np.random.default_rng(1)


def run(task, batches, sample_weight=None):
    """{metric name: result} after updating the task's metrics with every (labels, outputs) batch."""
    metrics = task.make_metrics()
    for labels, outputs in batches:
        for metric in metrics:
            task.update_metric(metric, labels, outputs, sample_weight)
    return {m.name: float(m.result()) for m in metrics}


def test_miou_skips_ignored_pixels_and_absent_classes():
    task = Task("seg", kind="segmentation", num_classes=5)
    labels = RNG.integers(0, 3, (2, 6, 6))  # classes 3 and 4 never labelled
    labels[0, :2] = 255
    labels[1, 0, 0] = -1
    predictions = RNG.integers(0, 4, (2, 6, 6))  # class 3 predicted, never labelled: IoU 0; class 4 absent
    logits = np.eye(5, dtype=np.float32)[predictions] * 3.0
    valid = (labels >= 0) & (labels != 255)
    ious = []
    for c in range(5):
        tp = np.sum(valid & (labels == c) & (predictions == c))
        union = np.sum(valid & ((labels == c) | (predictions == c)))
        if union:
            ious.append(tp / union)
    assert len(ious) == 4
    result = run(task, [(labels[:1], logits[:1]), (labels[1:], logits[1:])])
    assert result == {"seg_miou": pytest.approx(np.mean(ious), rel=1e-6)}


def test_miou_counts_pixels_with_their_sample_weight():
    task = Task("seg", kind="segmentation", num_classes=2)
    labels = np.array([[[0, 1]], [[1, 1]]])
    logits = np.array([[[[1, 0], [1, 0]]], [[[0, 1], [1, 0]]]], np.float32)  # predicts 0,0 and 1,0
    # weights 1 (image 0) and 2 (image 1): C = [[1, 0], [1+2, 2]] -> IoU0 = 1/4, IoU1 = 2/5
    assert run(task, [(labels, logits)], np.array([1.0, 2.0]))["seg_miou"] == pytest.approx((1 / 4 + 2 / 5) / 2)


def test_rmse_and_abs_rel_over_valid_pixels_of_the_data_set():
    task = Task("d", kind="depth")
    depth = RNG.uniform(0.5, 5.0, (3, 4, 4)).astype(np.float32)
    depth[0, 0, :] = 0.0
    depth[1, 1, 1] = np.nan
    depth[2, 2, 2] = -3.0
    predicted = RNG.uniform(0.5, 5.0, (3, 4, 4, 1)).astype(np.float32)
    valid = np.isfinite(depth) & (depth > 0)
    d, p = depth[valid], predicted[..., 0][valid]
    result = run(task, [(depth[:2], predicted[:2]), (depth[2:], predicted[2:])])
    assert result["d_rmse"] == pytest.approx(np.sqrt(np.mean((p - d) ** 2)), rel=1e-5)
    assert result["d_abs_rel"] == pytest.approx(np.mean(np.abs(p - d) / d), rel=1e-5)


def test_mean_angle_error_in_degrees_over_valid_normals():
    task = Task("n", kind="normals")
    normals = RNG.normal(size=(2, 3, 3, 3))
    normals /= np.linalg.norm(normals, axis=-1, keepdims=True)
    normals[0, 0, 0] = 0.0  # invalid
    normals[1, 2, :] = 0.0
    predicted = RNG.normal(size=(2, 3, 3, 3)).astype(np.float32) * 4.0  # not unit: normalised by the metric
    valid = np.linalg.norm(normals, axis=-1) > 0
    unit = predicted / np.linalg.norm(predicted, axis=-1, keepdims=True)
    angles = np.degrees(np.arccos(np.clip(np.sum(unit * normals, -1), -1, 1)))
    result = run(task, [(normals.astype(np.float32), predicted)])
    assert result["n_angle_error"] == pytest.approx(np.mean(angles[valid]), rel=1e-4)


def test_ods_f_is_the_best_f_at_one_threshold_over_the_data_set():
    task = Task("e", kind="edges")
    edges = (RNG.uniform(size=(4, 8, 8)) < 0.2).astype(np.int32)
    edges[0, 0, :3] = -1  # missing
    probability = np.clip(0.5 * edges + RNG.uniform(0, 0.6, edges.shape), 0.001, 0.999)
    logits = np.log(probability / (1 - probability))[..., None].astype(np.float32)
    valid = edges >= 0
    f_scores = []
    for threshold in np.arange(1, 100) / 100:
        predicted = probability >= threshold
        tp = np.sum(valid & predicted & (edges == 1))
        fp = np.sum(valid & predicted & (edges == 0))
        fn = np.sum(valid & ~predicted & (edges == 1))
        precision, recall = tp / max(tp + fp, 1), tp / max(tp + fn, 1)
        f_scores.append(2 * precision * recall / (precision + recall) if tp else 0.0)
    batches = [(edges[i:i + 1], logits[i:i + 1]) for i in range(4)]
    assert run(task, batches)["e_odsf"] == pytest.approx(max(f_scores), rel=1e-5)
    # the best threshold of the data set, not the mean of per-batch bests
    per_batch = np.mean([run(task, [b])["e_odsf"] for b in batches])
    assert per_batch != pytest.approx(max(f_scores), rel=1e-3)


def test_metric_directions():
    directions = {m: lower_is_better(m) for m in ("miou", "rmse", "abs_rel", "angle_error", "odsf", "accuracy", "mae")}
    assert directions == {"miou": False, "rmse": True, "abs_rel": True, "angle_error": True, "odsf": False,
                          "accuracy": False, "mae": True}
    with pytest.raises(ValueError, match="Unknown metric 'iou'; the metrics are"):
        lower_is_better("iou")
