import numpy as np
import pytest
import tensorflow as tf

from tag_tf.tasks import Task, as_tasks, masked_mean


def softplus(x):
    return np.log1p(np.exp(x))


def test_binary_loss_is_mean_sigmoid_cross_entropy_over_labelled_examples():
    labels = np.array([1, 0, -1, 1])
    logits = np.array([[0.3], [1.2], [-7.0], [-0.4]], np.float32)
    # cross-entropy with logits: softplus(-z) for y=1, softplus(z) for y=0; example 3 is unlabelled
    expected = (softplus(-0.3) + softplus(1.2) + softplus(0.4)) / 3
    assert float(Task("a").loss(labels, logits)) == pytest.approx(expected, rel=1e-5)


def test_multiclass_loss_is_softmax_cross_entropy():
    logits = np.array([[1.0, 2.0, 0.5], [0.1, -1.0, 3.0], [9.0, 9.0, 9.0]], np.float32)
    labels = np.array([1, 2, -1])
    log_softmax = logits - np.log(np.exp(logits).sum(1, keepdims=True))
    expected = -(log_softmax[0, 1] + log_softmax[1, 2]) / 2
    task = Task("hair", kind="multiclass", num_classes=3)
    assert float(task.loss(labels, logits)) == pytest.approx(expected, rel=1e-5)


def test_regression_loss_is_squared_error_and_skips_nan():
    labels = np.array([1.5, np.nan, -2.0], np.float32)
    outputs = np.array([[1.0], [100.0], [0.0]], np.float32)
    expected = (0.5**2 + 2.0**2) / 2
    assert float(Task("age", kind="regression").loss(labels, outputs)) == pytest.approx(expected)


def test_masked_labels_change_nothing_in_loss_or_gradient():
    task = Task("a")
    logits = tf.Variable([[0.5], [2.0], [-1.0]])
    with tf.GradientTape() as tape:
        loss_with_missing = task.loss(np.array([1, -1, 0]), logits)
    gradient = tape.gradient(loss_with_missing, logits).numpy()
    loss_without = task.loss(np.array([1, 0]), tf.gather(logits, [0, 2]))
    assert float(loss_with_missing) == pytest.approx(float(loss_without))
    assert gradient[1, 0] == 0.0 and gradient[0, 0] != 0.0


def test_no_labelled_example_gives_zero_loss_and_zero_gradient():
    logits = tf.Variable([[0.5], [2.0]])
    for task, labels in [(Task("a"), [-1, -1]), (Task("r", kind="regression"), [np.nan, np.nan])]:
        with tf.GradientTape() as tape:
            loss = task.loss(np.array(labels), logits)
        assert float(loss) == 0.0
        assert np.all(tape.gradient(loss, logits).numpy() == 0.0)


def test_sample_weight_weights_the_mean():
    values = np.array([1.0, 3.0, 10.0])
    assert float(masked_mean(values, np.array([1.0, 3.0, 0.0]))) == pytest.approx((1 + 9) / 4)


def test_binary_metric_thresholds_logits_at_zero_and_skips_missing():
    task = Task("a")
    (metric,) = task.make_metrics()
    task.update_metric(metric, np.array([1, 0, -1, 1]), np.array([[0.2], [0.1], [5.0], [-3.0]], np.float32))
    assert metric.name == "a_accuracy"
    assert float(metric.result()) == pytest.approx(1 / 3)  # right, wrong, (skipped), wrong


def test_regression_metric_is_mean_absolute_error():
    task = Task("age", kind="regression")
    (metric,) = task.make_metrics()
    task.update_metric(metric, np.array([1.0, np.nan, 3.0], np.float32), np.array([[2.0], [0.0], [0.0]], np.float32))
    assert metric.name == "age_mae"
    assert float(metric.result()) == pytest.approx((1.0 + 3.0) / 2)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"name": "a", "kind": "ordinal"}, "valid kinds"),
        ({"name": "a", "kind": "multiclass"}, "num_classes >= 2"),
        ({"name": "a", "num_classes": 3}, "only for multiclass"),
        ({"name": "a/b"}, "not valid"),
        ({"name": ""}, "not valid"),
        ({"name": "a", "weight": -1.0}, "weight"),
    ],
)
def test_bad_task_specs_raise(kwargs, message):
    with pytest.raises(ValueError, match=message):
        Task(**kwargs)


def test_as_tasks_rejects_empty_and_duplicates():
    with pytest.raises(ValueError, match="empty"):
        as_tasks([])
    with pytest.raises(ValueError, match=r"Duplicate task names \['Smiling'\]"):
        as_tasks(["Smiling", Task("Smiling")])
    with pytest.raises(ValueError, match="single task"):
        as_tasks("Smiling")


def test_task_json_round_trip():
    task = Task("hair", kind="multiclass", num_classes=4, weight=0.5)
    assert Task.from_json(task.to_json()) == task
