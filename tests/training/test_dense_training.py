"""Dense tasks through the one training step: losses averaged over valid pixels, a short fit with
affinity on the synthetic scenes, and bad input refused before training."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers, ops

from tag_tf.affinity import AffinityConfig
from tag_tf.models.architectures import hard_sharing
from tag_tf.data import scenes
from tag_tf.tasks.dense_metrics import angle_errors
from tag_tf.models import celeba_resnet_trunk, wrap
from tag_tf.tasks import Task

SIZE = 16


def conv_net(tasks, size=SIZE):
    """Two shared convolutions; a 1x1 convolution per dense task, pooling + Dense per flat task."""
    image = keras.Input((size, size, 3), name="image")
    x = layers.Conv2D(12, 3, padding="same", activation="relu", name="shared_1")(image)
    x = layers.Conv2D(12, 3, padding="same", activation="relu", name="shared_2")(x)
    pooled = layers.GlobalAveragePooling2D()(x)
    outputs = {t.name: layers.Conv2D(t.output_units, 1, name=f"{t.name}_head")(x) if t.is_dense
               else layers.Dense(t.output_units, name=f"{t.name}_head")(pooled) for t in tasks}
    return keras.Model(image, outputs)


def test_short_fit_on_scenes_lowers_every_tasks_loss_and_collects_affinity():
    data = scenes.scenes(num_examples=120, image_size=SIZE, seed=0)
    keras.utils.set_random_seed(0)
    model = wrap(conv_net(data.tasks), data.tasks, affinity=AffinityConfig(every_n_steps=1))
    # depth's L1 is in metres; the edges' class-balanced loss starts ~10x below the others (unweighted, whether
    # it fell in 20 epochs depended on the seed: 1 of seeds 0-2 with either normals loss)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss_weights={"depth": 0.1, "edges": 5.0})
    x, y = next(iter(data.splits["train"].batch(96)))
    before = model.task_losses(y, model(x))
    history = model.fit(data.splits["train"].batch(32), epochs=20, verbose=0)
    after = model.task_losses(y, model(x))
    names = [t.name for t in data.tasks]
    logged = {f"{n}_loss" for n in names} | {"segmentation_miou", "depth_rmse", "depth_abs_rel", "normals_angle_error",
                                            "edges_odsf", "colour_accuracy", "texture_accuracy"}
    assert logged <= set(history.history)
    lowered = {n: (float(before[n]), float(after[n])) for n in names}
    assert all(a < b for b, a in lowered.values()), lowered  # edges: the slowest, 5-15%
    affinity = model.task_affinity()
    assert affinity.tasks == tuple(names) and affinity.steps == 60
    assert np.all(np.isfinite(affinity.matrix))


def test_sgd_on_normals_alone_keeps_lowering_the_loss_and_the_angle_error_with_a_narrow_relu_head():
    """A 4-unit ReLU head outputs exactly 0 at most pixels at the start; with the prediction
    normalised by max(|p|, ε) their gradient was ~10⁶: one step threw the head to |p| ≈ 10⁴ and the
    loss then stayed at 0.270 (a constant prediction) whatever the learning rate."""
    data = scenes.scenes(num_examples=20, image_size=SIZE, seed=0)
    x, y = next(iter(data.splits["train"].batch(16)))
    y = {"normals": y["normals"].numpy()}
    keras.utils.set_random_seed(0)
    task = Task("normals", kind="normals")
    model = wrap(hard_sharing(celeba_resnet_trunk(SIZE, filters=4, feature_map=True), [task], head_units=4), [task])
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), jit_compile=False)

    def loss_and_angle():
        predicted = model(x, training=True)["normals"]
        return float(task.loss(y["normals"], predicted)), float(ops.mean(angle_errors(y["normals"], predicted)))

    assert float(ops.mean(ops.cast(ops.all(model(x)["normals"] == 0, axis=-1), "float32"))) > 0.5
    for _ in range(5):
        model.train_on_batch(x, y)
    loss, angle = loss_and_angle()
    for _ in range(35):
        model.train_on_batch(x, y)
    later_loss, later_angle = loss_and_angle()
    assert later_loss < 0.8 * loss and later_angle < angle - 5.0, (loss, later_loss, angle, later_angle)
    assert float(ops.max(ops.norm(model(x)["normals"], axis=-1))) < 100.0


def test_dense_task_losses_are_means_over_valid_pixels_of_the_batch():
    tasks = [Task("seg", kind="segmentation", num_classes=3), Task("depth", kind="depth")]
    model = wrap(conv_net(tasks, size=4), tasks)
    rng = np.random.default_rng(0)
    x = rng.uniform(size=(3, 4, 4, 3)).astype(np.float32)
    y = {"seg": rng.integers(0, 3, (3, 4, 4)), "depth": rng.uniform(1, 3, (3, 4, 4)).astype(np.float32)}
    y["seg"][0] = 255  # a whole image ignored
    y["depth"][1, :2] = 0.0
    outputs = model(x)
    weights = np.array([1.0, 2.0, 0.5], np.float32)
    losses = model.task_losses(y, outputs, {"seg": weights, "depth": weights})
    for task in tasks:  # the model's rule is the Task's: Σ w·loss / Σ w over every valid pixel
        assert float(losses[task.name]) == pytest.approx(float(task.loss(y[task.name], outputs[task.name], weights)))
    depth = y["depth"]
    pixel_weights = (depth > 0) * weights[:, None, None]
    l1 = np.abs(outputs["depth"].numpy()[..., 0] - depth)
    assert float(losses["depth"]) == pytest.approx((l1 * pixel_weights).sum() / pixel_weights.sum(), rel=1e-5)


def test_dense_task_on_a_flat_output_and_flat_task_on_a_dense_output_are_refused():
    image = keras.Input((8, 8, 3))
    features = layers.Conv2D(4, 3, padding="same")(image)
    flat = layers.Dense(1)(layers.GlobalAveragePooling2D()(features))
    with pytest.raises(ValueError, match=r"Task 'depth' \(depth\): the model's output has shape \(None, 1\); "
                                         r"a depth head outputs \[batch, H, W, 1\]"):
        wrap(keras.Model(image, {"depth": flat, "a": flat}), [Task("depth", kind="depth"), Task("a")])
    dense = layers.Conv2D(1, 1)(features)
    with pytest.raises(ValueError, match=r"Task 'a' \(binary\): the model's output has shape \(None, 8, 8, 1\); "
                                         r"a binary head outputs \[batch, 1\] \(pool per-pixel features"):
        wrap(keras.Model(image, {"depth": dense, "a": dense}), [Task("depth", kind="depth"), Task("a")])
    seg = layers.Conv2D(5, 1)(features)
    with pytest.raises(ValueError, match=r"Task 'seg' \(segmentation\).*\(None, 8, 8, 5\).*\[batch, H, W, 4\]"):
        wrap(keras.Model(image, {"seg": seg, "depth": dense}), [Task("seg", kind="segmentation", num_classes=4),
                                                                 Task("depth", kind="depth")])


@pytest.mark.parametrize("labels, message", [
    ({"seg": np.zeros((4, 8, 8), int)}, r"Task 'seg' \(segmentation\): labels of shape \(\d+, 8, 8\) do not fit "
                                        r"the head's output \(None, 4, 4, 3\); expected labels of shape \(None, 4, 4\)"),
    ({"seg": np.full((4, 4, 4), 3)}, r"Task 'seg' \(segmentation\): class ids \[3\] out of range; expected 0..2"),
    ({"normals": np.full((4, 4, 4, 3), 0.5, np.float32)}, r"Task 'normals' \(normals\): \d+ valid pixel\(s\) are "
                                                          r"not unit vectors"),
])
def test_bad_labels_are_refused_before_training(labels, message):
    tasks = [Task("seg", kind="segmentation", num_classes=3), Task("normals", kind="normals")]
    model = wrap(conv_net(tasks, size=4), tasks)
    model.compile(optimizer="sgd")
    y = {"seg": np.zeros((4, 4, 4), np.int32), "normals": np.tile(np.float32([0, 0, -1]), (4, 4, 4, 1)), **labels}
    x = np.zeros((4, 4, 4, 3), np.float32)
    weights = [w.numpy().copy() for w in model.trainable_variables]
    with pytest.raises(ValueError, match=message):
        model.fit(x, y, batch_size=2, verbose=0)
    with pytest.raises(ValueError, match=message):
        model.fit(tf.data.Dataset.from_tensor_slices((x, y)).batch(2), verbose=0)
    assert all(np.array_equal(w, v.numpy()) for w, v in zip(weights, model.trainable_variables))
