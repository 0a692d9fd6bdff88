import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tag_tf.affinity import AffinityConfig, TaskAffinity
from tag_tf.data import synthetic
from tag_tf.data.pipeline import batched
from tag_tf.models import build_multitask_model, mlp_trunk
from tag_tf.tasks import Task
from tag_tf.training import AffinityLogger


def softplus(x):
    return np.log1p(np.exp(x))


def numpy_binary_loss(labels, logits):
    """Mean sigmoid cross-entropy over the examples with a label >= 0."""
    keep = labels >= 0
    z = logits[keep, 0]
    return np.mean(np.where(labels[keep] == 1, softplus(-z), softplus(z)))


def test_compute_loss_is_weighted_sum_of_masked_task_losses():
    model = build_multitask_model(mlp_trunk(3, hidden=(6,)), [Task("a", weight=2.0), Task("b", weight=0.5)])
    x = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    y = {"a": np.array([1, -1, 0, 1, -1]), "b": np.array([0, 1, 1, -1, 0])}
    outputs = {k: v.numpy() for k, v in model(x).items()}
    expected = 2.0 * numpy_binary_loss(y["a"], outputs["a"]) + 0.5 * numpy_binary_loss(y["b"], outputs["b"])
    assert float(model.compute_loss(x, y, model(x))) == pytest.approx(expected, rel=1e-5)


def test_an_example_unlabelled_in_every_task_changes_nothing():
    model = build_multitask_model(mlp_trunk(3, hidden=(6,)), ["a", "b"])
    x = np.random.default_rng(1).normal(size=(4, 3)).astype(np.float32)
    y = {"a": np.array([1, 0, -1, 0]), "b": np.array([0, 1, -1, 1])}
    loss = float(model.compute_loss(x, y, model(x)))
    moved = x.copy()
    moved[2] += 10.0
    assert float(model.compute_loss(moved, y, model(moved))) == pytest.approx(loss, rel=1e-6)
    kept = [0, 1, 3]
    y_kept = {k: v[kept] for k, v in y.items()}
    assert float(model.compute_loss(x[kept], y_kept, model(x[kept]))) == pytest.approx(loss, rel=1e-6)


def planted_tabular(num_examples=1200):
    return synthetic.planted_groups_tabular(num_groups=2, tasks_per_group=2, num_examples=num_examples, seed=0)


def test_short_fit_lowers_every_tasks_loss_and_logs_tasks_by_name():
    data = planted_tabular()
    model = build_multitask_model(mlp_trunk(32, hidden=(32,)), data.tasks)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    test = batched(data.splits["test"], 256)
    before = model.evaluate(test, return_dict=True, verbose=0)
    history = model.fit(batched(data.splits["train"], 32, shuffle_buffer=1000), epochs=3, verbose=0,
                        validation_data=batched(data.splits["validation"], 256), shuffle=False)
    after = model.evaluate(test, return_dict=True, verbose=0)
    for task in data.tasks:
        assert after[f"{task.name}_loss"] < 0.8 * before[f"{task.name}_loss"]
        assert after[f"{task.name}_accuracy"] > 0.8
        assert {f"{task.name}_loss", f"val_{task.name}_accuracy"} <= set(history.history)
    assert after["loss"] == pytest.approx(sum(after[f"{t.name}_loss"] for t in data.tasks), rel=1e-4)


def test_evaluate_matches_numpy_over_the_dataset_with_missing_labels():
    rng = np.random.default_rng(2)
    x = rng.normal(size=(50, 4)).astype(np.float32)
    y = {"a": rng.integers(-1, 2, 50), "b": rng.integers(-1, 2, 50)}
    model = build_multitask_model(mlp_trunk(4, hidden=(5,)), ["a", "b"])
    model.compile(optimizer="sgd")
    logs = model.evaluate(tf.data.Dataset.from_tensor_slices((x, y)).batch(16), return_dict=True, verbose=0)
    outputs = model.predict(x, verbose=0)
    for name in ("a", "b"):
        assert logs[f"{name}_loss"] == pytest.approx(numpy_binary_loss(y[name], outputs[name]), rel=1e-4)
        keep = y[name] >= 0
        accuracy = np.mean((outputs[name][keep, 0] > 0) == (y[name][keep] == 1))
        assert logs[f"{name}_accuracy"] == pytest.approx(accuracy, abs=1e-6)


def test_multiclass_and_regression_heads_learn():
    data = planted_tabular(1000)
    train_x = np.stack([x for x, _ in data.splits["train"].as_numpy_iterator()])
    z = data.latents["train"]
    y = {"bin": (z[:, 0] > 0).astype(np.int32),
         "cls": np.digitize(z[:, 2], [-0.7, 0.0, 0.7]).astype(np.int32),
         "reg": z[:, 1].astype(np.float32)}
    tasks = [Task("bin"), Task("cls", kind="multiclass", num_classes=4), Task("reg", kind="regression")]
    model = build_multitask_model(mlp_trunk(32, hidden=(32,)), tasks)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    ds = tf.data.Dataset.from_tensor_slices((train_x, y)).batch(32)
    before = model.evaluate(ds, return_dict=True, verbose=0)
    model.fit(ds, epochs=5, verbose=0, shuffle=False)
    after = model.evaluate(ds, return_dict=True, verbose=0)
    assert after["cls_loss"] < 0.6 * before["cls_loss"] and after["cls_accuracy"] > 0.6
    assert after["reg_loss"] < 0.5 * before["reg_loss"] and after["reg_mae"] < 0.5


def test_save_and_load_round_trip(tmp_path):
    tasks = [Task("a", weight=0.3), Task("h", kind="multiclass", num_classes=3)]
    model = build_multitask_model(mlp_trunk(4, hidden=(5,)), tasks)
    model.compile(optimizer="sgd")
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert type(loaded).__name__ == "MultiTaskModel" and loaded.tasks == tasks
    x = np.random.default_rng(3).normal(size=(3, 4)).astype(np.float32)
    for name in ("a", "h"):
        np.testing.assert_allclose(loaded.predict(x, verbose=0)[name], model.predict(x, verbose=0)[name], rtol=1e-6)


def test_outputs_must_match_the_tasks():
    from tag_tf.training import MultiTaskModel

    x = keras.Input((3,), name="features")
    with pytest.raises(ValueError, match=r"dict keyed by the task names \['a', 'b'\], got \['a'\]"):
        MultiTaskModel(x, {"a": keras.layers.Dense(1)(x)}, tasks=["a", "b"])


def read_scalars(log_dir):
    """{tag: {step: value}} from the TensorBoard event files in log_dir."""
    scalars = {}
    for name in os.listdir(log_dir):
        for event in tf.compat.v1.train.summary_iterator(os.path.join(log_dir, name)):
            for value in event.summary.value:
                array = tf.make_ndarray(value.tensor)
                if array.ndim == 0:
                    scalars.setdefault(value.tag, {})[event.step] = float(array)
    return scalars


def test_affinity_logger_with_keras_callbacks_in_a_plain_fit(tmp_path):
    data = planted_tabular(400)
    model = build_multitask_model(mlp_trunk(32, hidden=(16,)), data.tasks, affinity=AffinityConfig(every_n_steps=1))
    model.compile(optimizer=keras.optimizers.SGD(0.02, momentum=0.9))
    json_path, log_dir = str(tmp_path / "affinity.json"), str(tmp_path / "tb" / "affinity")
    callbacks = [
        AffinityLogger(json_path=json_path, log_dir=log_dir),
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=5, restore_best_weights=True),
        keras.callbacks.ModelCheckpoint(str(tmp_path / "best.keras"), monitor="val_loss", save_best_only=True),
        keras.callbacks.TensorBoard(str(tmp_path / "tb")),
    ]
    model.fit(batched(data.splits["train"], 32), validation_data=batched(data.splits["validation"], 64),
              epochs=3, verbose=0, shuffle=False, callbacks=callbacks)
    result = model.task_affinity()
    written = TaskAffinity.from_json(json_path)
    assert written.tasks == result.tasks and len(written.epochs) == 3 and written.steps == 30
    np.testing.assert_allclose(written.matrix, result.matrix)
    scalars = read_scalars(log_dir)
    names = [t.name for t in data.tasks]
    assert len(scalars) == len(names) ** 2
    for epoch in range(3):
        assert scalars[f"affinity/{names[0]}->{names[1]}"][epoch] == pytest.approx(result.epochs[epoch][0, 1], rel=1e-5)
    reloaded = keras.models.load_model(str(tmp_path / "best.keras"))
    assert reloaded.affinity_config == AffinityConfig(every_n_steps=1) and reloaded.task_affinity().steps > 0
