"""The affinity modes beyond exact and first-order: cosine similarity of the task gradients and the
group lookahead, against numpy and against a by-hand reference that takes a real
`optimizer.apply` step; and selection from the measured groups."""

import dataclasses
import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from tag_tf import affinity
from tag_tf.affinity import MAX_GROUP_LOOKAHEADS, AffinityConfig, TaskAffinity
from tag_tf.utils.gradients import gradient_dot
from tag_tf.models import build_multitask_model, celeba_resnet_trunk, mlp_trunk
from tag_tf.selection import select_from_costs, select_from_group_lookahead
from affinity_reference import measured_affinity, reference_group_affinity, small_batch


def trained_model(config, image=False, optimizer=None):
    x, y = small_batch(image=image)
    trunk = celeba_resnet_trunk(12, filters=4) if image else mlp_trunk(6, hidden=(8, 8))
    model = build_multitask_model(trunk, list(y), affinity=config)
    model.compile(optimizer=optimizer or keras.optimizers.SGD(0.05, momentum=0.9))
    for seed in (1, 2, 3):  # a few steps first, so that momentum and moments are non-zero
        model.train_on_batch(*small_batch(image=image, seed=seed))
    return model, x, y


def test_cosine_affinity_of_fixed_gradients_equals_numpy():
    rng = np.random.default_rng(0)
    grads = [[rng.normal(size=(3, 2)), rng.normal(size=(4,))] for _ in range(3)]  # 3 tasks, 2 variables
    gram = np.array([[float(gradient_dot(a, b)) for b in grads] for a in grads])
    flat = np.array([np.concatenate([g.ravel() for g in task]) for task in grads])
    expected = flat @ flat.T / np.outer(np.linalg.norm(flat, axis=1), np.linalg.norm(flat, axis=1))
    np.testing.assert_allclose(affinity.cosine_affinity(gram).numpy(), expected, rtol=1e-5, atol=1e-6)
    assert np.abs(expected - np.eye(3)).max() > 0.1  # not trivially the identity


def test_cosine_mode_equals_numpy_on_the_tasks_shared_gradients():
    model, x, y = trained_model(AffinityConfig(mode="cosine", every_n_steps=1))
    with tf.GradientTape(persistent=True) as tape:
        losses = model.task_losses(y, model(x, training=True))
    flat = np.array([np.concatenate([g.numpy().ravel() for g in tape.gradient(losses[t.name], model.shared_variables)])
                     for t in model.tasks])
    norms = np.linalg.norm(flat, axis=1)
    expected = flat @ flat.T / np.outer(norms, norms)
    measured = measured_affinity(model, x, y)  # not divided by the learning rate
    np.testing.assert_allclose(measured, expected, rtol=0, atol=1e-5)
    np.testing.assert_allclose(measured, measured.T, atol=1e-6)
    assert np.abs(expected - np.eye(3)).max() > 0.05


def test_group_lookahead_of_a_one_task_group_equals_the_pairwise_lookahead():
    config = AffinityConfig(mode="group_lookahead", groups=[["t0"], ["t2"], ["t1", "t2"]], every_n_steps=1)
    model, x, y = trained_model(config)
    matrix = measured_affinity(model, x, y)
    result = model.task_affinity()
    assert result.group_affinity[("t0",)]["t0"] == pytest.approx(matrix[0, 0], abs=1e-6)
    assert result.group_affinity[("t2",)]["t2"] == pytest.approx(matrix[2, 2], abs=1e-6)
    assert abs(matrix[0, 0]) > 1e-2


@pytest.mark.parametrize("image, optimizer", [(False, "momentum"), (False, "adam"), (True, "momentum")])
def test_group_lookahead_equals_the_by_hand_reference(image, optimizer):
    config = AffinityConfig(mode="group_lookahead", max_group_size=3, every_n_steps=1)
    make = {"momentum": lambda: keras.optimizers.SGD(0.05, momentum=0.9), "adam": lambda: keras.optimizers.Adam(0.01)}
    model, x, y = trained_model(config, image=image, optimizer=make[optimizer]())
    groups = affinity.candidate_groups(config, ["t0", "t1", "t2"])
    assert groups == (("t0", "t1"), ("t0", "t2"), ("t1", "t2"), ("t0", "t1", "t2"))
    expected = {g: reference_group_affinity(model, model.optimizer, x, y, g) for g in groups}
    measured_affinity(model, x, y)
    measured = model.task_affinity().group_affinity
    for group in groups:
        for task in group:  # float32: (1 − after/before) / lr loses digits to cancellation
            assert measured[group][task] == pytest.approx(expected[group][task], abs=1e-5), (group, task)
    # a group's step is not the sum of its members' steps: the values are a real measurement
    assert max(abs(v) for g in groups for v in expected[g].values()) > 1e-2


def test_group_lookahead_json_carries_task_names_and_selection_reads_it(tmp_path):
    config = AffinityConfig(mode="group_lookahead", every_n_steps=1)
    model, x, y = trained_model(config)
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    result = model.task_affinity()
    path = str(tmp_path / "affinity.json")
    result.to_json(path)
    loaded = TaskAffinity.from_json(path)
    assert [g["group"] for g in result.to_json()["group_lookahead"]] == [
        ["t0", "t1"], ["t0", "t2"], ["t1", "t2"], ["t0", "t1", "t2"]]
    assert loaded.group_affinity == result.group_affinity
    assert all(np.isfinite(v) for values in loaded.group_stderr.values() for v in values.values())
    # selection from measurement: the same problem solved by select_from_costs on the hand-made scores
    a = loaded.matrix
    scores = {g: {t: (z - a[int(t[1]), int(t[1])]) / (len(g) - 1) for t, z in values.items()}
              for g, values in loaded.group_affinity.items()}
    for k in (1, 2, 3):
        expected = select_from_costs({**{(t,): {t: 0.0} for t in loaded.tasks}, **scores}, budget=k,
                                     sense="maximize")
        chosen = select_from_group_lookahead(loaded, k)
        assert chosen.groups == expected.groups and chosen.score == pytest.approx(expected.score)
    with pytest.raises(ValueError, match="num_groups=1: 1 of the measured groups .at most 2 tasks each. cannot cover"):
        select_from_group_lookahead(dataclasses.replace(loaded, group_affinity={
            g: v for g, v in loaded.group_affinity.items() if len(g) == 2}), 1)
    # with budget 1 the only cover is the group of all three: its measured score
    assert select_from_group_lookahead(loaded, 1).score == pytest.approx(sum(scores[("t0", "t1", "t2")].values()))


def test_group_lookahead_config_errors():
    with pytest.raises(ValueError, match=r"names unknown task\(s\) \['x'\]; the tasks are \['a', 'b'\]"):
        affinity.candidate_groups(AffinityConfig(mode="group_lookahead", groups=["a+x"]), ["a", "b"])
    with pytest.raises(ValueError, match=f"would measure 1573 groups .* at most {MAX_GROUP_LOOKAHEADS}"):
        build_multitask_model(mlp_trunk(6, hidden=(4,)), [f"t{i}" for i in range(12)],
                              affinity=AffinityConfig(mode="group_lookahead", max_group_size=5))
    with pytest.raises(ValueError, match="measured by mode='group_lookahead' only, got mode='exact'"):
        AffinityConfig(groups=[["a", "b"]])
    with pytest.raises(ValueError, match="each group once"):
        AffinityConfig(mode="group_lookahead", groups=[["a", "b"], ["b", "a"]])
    assert AffinityConfig(mode="group_lookahead", groups=["a+b"]).groups == (("a", "b"),)  # a command line's
    config = AffinityConfig(mode="group_lookahead", groups=[["a", "b"]])
    assert AffinityConfig.from_json(config.to_json()) == config


class GroupStepValues(keras.callbacks.Callback):
    """Every affinity step's Z[G→j] [groups, tasks] (the increase of the accumulator's group sums)."""

    def __init__(self):
        super().__init__()
        self.z = []

    def on_train_batch_end(self, batch, logs=None):
        total = self.model.affinity_accumulator.group_total.numpy().astype(np.float64)
        self.z.append(total - sum(self.z, np.zeros_like(total)))


def test_group_blocks_equal_numpy_on_the_per_step_values_and_survive_the_json():
    x, y = small_batch(n=80)
    config = AffinityConfig(mode="group_lookahead", every_n_steps=1, bootstrap_blocks=4)
    model = build_multitask_model(mlp_trunk(6, hidden=(8,)), list(y), affinity=config)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
    recorder = GroupStepValues()
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, shuffle=False, callbacks=[recorder])  # 10 steps
    z, result = np.array(recorder.z), model.task_affinity()
    assert result.steps == len(z) == 10 and len(result.blocks) == 3
    # the pairs' blocks: steps 0-3, 4-7, 8-9 (4 blocks, merged at steps 4 and 8); the groups' are the same steps
    for g, group in enumerate(affinity.candidate_groups(config, ["t0", "t1", "t2"])):
        for t in group:
            j = int(t[1])
            np.testing.assert_allclose(result.group_blocks[group][t], [z[0:4, g, j].mean(), z[4:8, g, j].mean(),
                                                                     z[8:10, g, j].mean()], rtol=1e-4, atol=1e-5)
            assert result.group_block_counts[group][t].tolist() == [4, 4, 2]
    assert np.std(z[:, -1, :], axis=0).min() > 1e-3  # the steps differ: the blocks are not all alike
    loaded = TaskAffinity.from_json(json.loads(json.dumps(result.to_json())))
    assert loaded.group_blocks.keys() == result.group_blocks.keys()
    for group, values in result.group_blocks.items():
        for t, means in values.items():
            np.testing.assert_array_equal(loaded.group_blocks[group][t], means)
            np.testing.assert_array_equal(loaded.group_block_counts[group][t], result.group_block_counts[group][t])
    assert select_from_group_lookahead(loaded, 2).stability is not None  # 3 blocks: a bootstrap
