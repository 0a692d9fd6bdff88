"""The multi-task architectures: output shapes per task kind, variable roles after `wrap`, the affinity
step against the by-hand reference, a few training steps lowering every task's loss, parameter
counts and FLOPs, bad inputs refused."""

import keras
import numpy as np
import pytest

from tag_tf.models import architectures
from tag_tf.affinity import AffinityConfig
from tag_tf.models.architectures import (cross_stitch, hard_sharing, mmoe, padnet, single_task, with_initial_labels,
                                  with_initial_tasks)
from tag_tf.data import scenes
from tag_tf.models import celeba_resnet_trunk, inference_flops, mlp_trunk, wrap
from tag_tf.tasks import Task
from affinity_reference import measured_affinity, reference_affinity

FLAT = [Task("smile"), Task("hair", "multiclass", num_classes=3), Task("age", "regression")]
DENSE = [Task("seg", "segmentation", num_classes=5), Task("depth", "depth"), Task("normals", "normals"),
         Task("edges", "edges")]
SIZE = 16


def image_trunk():
    return celeba_resnet_trunk(SIZE, filters=4, feature_map=True)


def shapes(network, x):
    return {name: tuple(out.shape) for name, out in network(x).items()}


def test_output_shapes_per_task_kind():
    x = np.zeros((2, SIZE, SIZE, 3), "float32")
    tasks = DENSE + FLAT
    expected = {"seg": (2, SIZE, SIZE, 5), "depth": (2, SIZE, SIZE, 1), "normals": (2, SIZE, SIZE, 3),
                "edges": (2, SIZE, SIZE, 1), "smile": (2, 1), "hair": (2, 3), "age": (2, 1)}
    assert shapes(hard_sharing(image_trunk(), tasks, head_units=4), x) == expected
    assert shapes(cross_stitch(image_trunk(), tasks, stages=("pool1",), head_units=4), x) == expected
    initial = {name + "__initial": shape for name, shape in expected.items()}
    assert shapes(padnet(image_trunk(), tasks, channels=4), x) == {**expected, **initial}
    assert shapes(single_task(image_trunk(), [DENSE[0]], head_units=4), x) == {"seg": expected["seg"]}
    assert shapes(mmoe(6, FLAT, num_experts=2), np.zeros((2, 6), "float32")) == {"smile": (2, 1), "hair": (2, 3),
                                                                                 "age": (2, 1)}
    applications = keras.applications.MobileNetV3Small(input_shape=(32, 32, 3), include_top=False, weights=None,
                                                        include_preprocessing=False, minimalistic=True)
    on_applications = hard_sharing(applications, [DENSE[0], FLAT[0]], head_units=4)
    assert shapes(on_applications, np.zeros((2, 32, 32, 3), "float32")) == {"seg": (2, 32, 32, 5), "smile": (2, 1)}


def test_roles_of_each_architecture_after_wrap():
    trunk = [v.path for v in image_trunk().trainable_variables]
    tasks = [DENSE[0], FLAT[0]]
    head = {t: [f"{t}_{layer}/{w}" for layer in ("conv" if t == "seg" else "hidden", "out") for w in ("kernel", "bias")]
            for t in ("seg", "smile")}
    roles = wrap(hard_sharing(image_trunk(), tasks, head_units=4), tasks).variable_roles()
    assert roles == {"shared": trunk, **head, "unused": []}

    # cross-stitch: each column reaches every task through the units, so every column is shared
    roles = wrap(cross_stitch(image_trunk(), tasks, stages=("pool1",), head_units=4), tasks).variable_roles()
    column = {t: [f"{t}_{path}" for path in trunk] for t in ("seg", "smile")}
    stem = len([p for p in trunk if p.startswith(("conv1_1", "bn1_1"))])  # the variables before pool1
    assert roles["shared"] == (column["seg"][:stem] + column["smile"][:stem] + ["cross_stitch_0/alpha"]
                               + column["seg"][stem:] + column["smile"][stem:] + ["cross_stitch_1/alpha"])
    assert roles["seg"] == head["seg"] and roles["smile"] == head["smile"] and roles["unused"] == []

    roles = wrap(padnet(image_trunk(), tasks, channels=4), with_initial_tasks(tasks)).variable_roles()
    assert roles["shared"] == trunk + ["seg_refine/kernel", "seg_refine/bias", "smile_refine/kernel",
                                       "smile_refine/bias"]
    assert roles["seg"] == ["seg_from_smile_message/kernel", "seg_from_smile_attention/kernel"] + head["seg"]
    assert roles["smile__initial"] == ["smile__initial_out/kernel", "smile__initial_out/bias"]

    roles = wrap(mmoe(mlp_trunk(6, hidden=(5,)), FLAT, num_experts=2), FLAT).variable_roles()
    assert roles["shared"] == ["dense_0/kernel", "dense_0/bias", "expert_0/kernel", "expert_0/bias",
                               "expert_1/kernel", "expert_1/bias"]
    assert roles["hair"] == [f"hair_{layer}/{w}" for layer in ("gate", "tower", "out") for w in ("kernel", "bias")]


def tabular(n=96, seed=0):
    """Inputs and labels the tasks can learn: a sign, an argmax, a difference."""
    x = np.random.default_rng(seed).normal(size=(n, 6)).astype("float32")
    y = {"smile": (x[:, 0] + x[:, 1] > 0).astype("int32"), "hair": np.argmax(x[:, 3:6], axis=1).astype("int32"),
         "age": (x[:, 2] - x[:, 3]).astype("float32")}
    return x, y


NETWORKS = {
    "hard_sharing": lambda tasks: hard_sharing(mlp_trunk(6, hidden=(16,)), tasks, head_units=8),
    "cross_stitch": lambda tasks: cross_stitch(mlp_trunk(6, hidden=(8, 8)), tasks, stages=("dense_0",), head_units=8),
    "mmoe": lambda tasks: mmoe(6, tasks, num_experts=3, expert_units=8, tower_units=8),
}  # PAD-Net: on dense tasks below


@pytest.mark.parametrize("name", sorted(NETWORKS))
def test_the_affinity_step_equals_the_reference_and_training_lowers_every_task_loss(name):
    """The reference steps only the shared variables (`tests/affinity_reference.py`)."""
    tasks, (x, y) = FLAT[:2], tabular()
    y = {t.name: y[t.name] for t in tasks}
    model = wrap(NETWORKS[name](tasks), tasks, affinity=AffinityConfig())
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), jit_compile=False)
    batch = {k: v[:32] for k, v in y.items()}
    model.train_on_batch(x[32:64], {k: v[32:64] for k, v in y.items()})  # non-zero momentum first
    expected = reference_affinity(model, model.optimizer, x[:32], batch)
    np.testing.assert_allclose(measured_affinity(model, x[:32], batch), expected, rtol=0, atol=1e-4)
    assert np.abs(expected).max() > 1e-2
    assert_training_lowers_every_task_loss(model, x[:32], batch)


def assert_training_lowers_every_task_loss(model, x, y, steps=20):
    """`steps` training steps on the batch (x, y) lower every task's loss on it by a fifth."""
    before = model.task_losses(y, model(x, training=True))
    for _ in range(steps):
        model.train_on_batch(x, y)
    after = model.task_losses(y, model(x, training=True))
    for task in model.tasks:
        assert after[task.name] < 0.8 * before[task.name], (task.name, float(before[task.name]), float(after[task.name]))


def test_padnet_on_rendered_scenes_dense_tasks_with_deep_supervision():
    """Segmentation, depth and normals from one PAD-Net: the affinity step equals the reference,
    its initial predictions being tasks of their own (rows and columns of the matrix), and a few
    steps lower all six losses."""
    data = scenes.scenes(num_examples=40, image_size=SIZE, seed=0)
    tasks = [t for t in data.tasks if t.name in ("segmentation", "depth", "normals")]
    x, y = next(iter(data.splits["train"].batch(32)))
    y = with_initial_labels({t.name: y[t.name].numpy() for t in tasks}, tasks)
    model = wrap(padnet(image_trunk(), tasks, channels=4), with_initial_tasks(tasks), affinity=AffinityConfig())
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), jit_compile=False)
    model.train_on_batch(x[16:], {k: v[16:] for k, v in y.items()})  # non-zero momentum first
    x, y = x[:16], {k: v[:16] for k, v in y.items()}
    expected = reference_affinity(model, model.optimizer, x, y)
    np.testing.assert_allclose(measured_affinity(model, x, y), expected, rtol=0, atol=1e-4)
    assert_training_lowers_every_task_loss(model, x, y, steps=50)  # the final normals plateau for ~20 steps


def test_a_single_task_baseline_trains():
    x, y = tabular()
    model = wrap(single_task(mlp_trunk(6, hidden=(16,)), [FLAT[1]], head_units=8), [FLAT[1]])
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), jit_compile=False)
    assert_training_lowers_every_task_loss(model, x, {"hair": y["hair"]})


def test_parameter_counts_and_flops():
    trunk = 6 * 8 + 8  # mlp_trunk(6, hidden=(8,))
    head = {"smile": 8 * 4 + 4 + 4 + 1, "hair": 8 * 4 + 4 + 4 * 3 + 3, "age": 8 * 4 + 4 + 4 + 1}
    flat = mlp_trunk(6, hidden=(8,))
    model = hard_sharing(flat, FLAT, head_units=4)
    assert model.count_params() == trunk + sum(head.values())
    # Dense in -> out: 2·in·out multiply-adds + out biases; ReLU is no float op for the profiler
    assert inference_flops(model) == 2 * 6 * 8 + 8 + sum(2 * p - b for p, b in
                                                         zip(head.values(), (4 + 1, 4 + 3, 4 + 1)))
    stitched = cross_stitch(flat, FLAT, head_units=4)  # one stage: one unit of 3 x 3 x 8 weights
    assert stitched.count_params() == 3 * trunk + 3 * 3 * 8 + sum(head.values())
    assert inference_flops(stitched) > 3 * (2 * 6 * 8 + 8)
    experts, gates, towers = 2 * (6 * 5 + 5), 3 * (6 * 2 + 2), 3 * (5 * 4 + 4)
    outputs = (4 + 1) + (4 * 3 + 3) + (4 + 1)
    experts_model = mmoe(6, FLAT, num_experts=2, expert_units=5, tower_units=4)
    assert experts_model.count_params() == experts + gates + towers + outputs
    assert inference_flops(experts_model) > 2 * (experts + gates + towers + outputs) - 2 * 16
    refine, messages, heads = 3 * (8 * 4 + 4), 3 * 2 * 2 * (4 * 4), sum(head.values()) - 3 * 8 * 4 + 3 * 4 * 4
    initial = (4 + 1) + (4 * 3 + 3) + (4 + 1)
    distilled = padnet(flat, FLAT, channels=4)
    assert distilled.count_params() == trunk + refine + messages + heads + initial
    assert inference_flops(distilled) > 0
    assert single_task(flat, [FLAT[0]], head_units=4).count_params() == trunk + head["smile"]


def test_bad_inputs_name_the_value_and_the_choices():
    with pytest.raises(ValueError, match=r"Unknown architecture 'mtan'; valid architectures: \['cross_stitch', "):
        architectures.build_architecture("mtan", mlp_trunk(3), ["a", "b"])
    flat_trunk = celeba_resnet_trunk(SIZE, filters=2)
    with pytest.raises(ValueError, match=r"dense task\(s\) \['depth'\] need a spatial feature map .* outputs shape "
                                         r"\(None, 18\): pass one that keeps its spatial output"):
        hard_sharing(flat_trunk, ["a", Task("depth", "depth")])
    features = keras.Input((48,), name="features")
    flat_input = keras.Model(features, keras.layers.Reshape((4, 4, 3))(features))
    with pytest.raises(ValueError, match=r"need an image input \[batch, height, width, channels\] of known height "
                                         r"and width .* takes shape \(None, 48\)"):
        padnet(flat_input, ["a", Task("depth", "depth")])
    with pytest.raises(ValueError, match=r"mmoe is for flat outputs; the dense task\(s\) \['depth'\]"):
        mmoe(4, ["a", Task("depth", "depth")])
    with pytest.raises(ValueError, match=r"needs flat features \[batch, channels\], but backbone 'trunk' outputs "
                                         r"shape \(None, 7, 7, 2\)"):
        mmoe(celeba_resnet_trunk(SIZE, filters=2, feature_map=True), ["a", "b"])
    with pytest.raises(ValueError, match=r"stages names layer\(s\) \['pool2'\] that backbone 'trunk' does not have"):
        cross_stitch(flat_trunk, ["a", "b"], stages=("pool1", "pool2"))
    with pytest.raises(ValueError, match=r"cross_stitch needs two or more tasks to stitch, got \['a'\]"):
        cross_stitch(flat_trunk, ["a"])
    with pytest.raises(ValueError, match=r"padnet distils between two or more tasks, got \['a'\]"):
        padnet(flat_trunk, ["a"])
    with pytest.raises(ValueError, match=r"single_task builds the network of one task, got 2: \['a', 'b'\]"):
        single_task(flat_trunk, ["a", "b"])
