"""Loss balancing: GradNorm, uncertainty weighting and PCGrad against hand computations."""

import glob
import os

import keras
import numpy as np
import pytest
import tensorflow as tf

from tag_tf import balancing
from tag_tf.affinity import AffinityConfig
from tag_tf.balancing import GradNorm, PCGrad, UncertaintyWeighting
from tag_tf.models import build_multitask_model, mlp_trunk
from tag_tf.tasks import Task

RNG = np.random.default_rng(7)
X = RNG.normal(size=(16, 4)).astype(np.float32)
Y = {"a": RNG.integers(0, 2, 16), "b": (X[:, 0] > 0).astype(np.int64), "c": RNG.integers(0, 2, 16)}
NAMES = ("a", "b", "c")


def tiny_model(balancer=None, affinity=None, tasks=NAMES, lr=0.1):
    keras.utils.set_random_seed(0)
    model = build_multitask_model(mlp_trunk(4, hidden=(6, 5)), tasks, balancer=balancer, affinity=affinity)
    model.compile(optimizer=keras.optimizers.SGD(lr))
    return model


def reference_losses(model, y=Y, tasks=NAMES):
    """Per-task mean losses (binary cross-entropy on logits, or squared error), on a tape."""
    outputs = model(X, training=True)
    losses = []
    for task in tasks:
        name = task if isinstance(task, str) else task.name
        kind = "binary" if isinstance(task, str) else task.kind
        if kind == "binary":
            losses.append(tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
                labels=tf.cast(y[name], tf.float32), logits=outputs[name][:, 0])))
        else:
            losses.append(tf.reduce_mean(tf.square(outputs[name][:, 0] - tf.cast(y[name], tf.float32))))
    return losses


def losses_and_gradients(model, variables):
    with tf.GradientTape(persistent=True) as tape:
        losses = reference_losses(model)
    sources = [v.value for v in variables]  # the tf.Variables behind the Keras ones
    grads = [[g.numpy() for g in tape.gradient(loss, sources, unconnected_gradients="zero")] for loss in losses]
    return np.array([float(loss) for loss in losses]), grads


def flat(grads):
    return np.concatenate([g.ravel() for g in grads])


# --- GradNorm -----------------------------------------------------------------------------------


def hand_gradnorm(w, norms, losses, initial, alpha, lr):
    scaled = w * norms
    ratios = losses / initial
    target = scaled.mean() * (ratios / ratios.mean()) ** alpha
    new = np.maximum(w - lr * np.sign(scaled - target) * norms, 1e-3)
    return new * len(w) / new.sum()


def test_gradnorm_weights_after_each_step_equal_a_hand_computation():
    balancer = GradNorm(alpha=1.5, weight_lr=0.025)
    model = tiny_model(balancer)
    layer = balancer.balanced_variables(model)
    assert [v.path for v in layer] == ["dense_1/kernel", "dense_1/bias"]
    w, initial = np.ones(3), None
    for step in range(3):
        losses, grads = losses_and_gradients(model, layer)
        norms = np.array([np.linalg.norm(flat(g)) for g in grads])
        initial = losses if initial is None else initial
        expected = hand_gradnorm(w, norms, losses, initial, 1.5, 0.025)
        # the network's own update uses the weights from before this step
        every = model.trainable_variables
        _, all_grads = losses_and_gradients(model, every)
        expected_params = [v.numpy() - 0.1 * sum(wi * g[n] for wi, g in zip(w, all_grads))
                           for n, v in enumerate(every)]
        model.train_on_batch(X, Y)
        np.testing.assert_allclose(model.balancer.task_weights.numpy(), expected, rtol=1e-5)
        for v, e in zip(every, expected_params):
            np.testing.assert_allclose(v.numpy(), e, rtol=1e-4, atol=1e-6)
        assert model.balancer.task_weights.numpy().sum() == pytest.approx(3.0, rel=1e-6)
        if step:
            assert not np.allclose(expected, w)  # the weights do move
        w = expected


def test_gradnorm_weights_sum_to_the_number_of_tasks_and_are_logged_every_epoch(tmp_path):
    model = tiny_model(GradNorm(alpha=1.5, weight_lr=0.2))
    history = model.fit(X, Y, batch_size=4, epochs=3, verbose=0,
                        callbacks=[keras.callbacks.TensorBoard(str(tmp_path))], validation_data=(X, Y))
    per_epoch = np.array([history.history[f"weight_{name}"] for name in NAMES])
    assert per_epoch.shape == (3, 3)
    np.testing.assert_allclose(per_epoch.sum(axis=0), 3.0, rtol=1e-5)
    assert np.ptp(per_epoch[:, -1]) > 0.01
    np.testing.assert_allclose(per_epoch[:, -1], model.balancer.task_weights.numpy(), rtol=1e-6)
    assert not any(key.startswith("val_weight") for key in history.history)
    tags = {value.tag for path in glob.glob(os.path.join(str(tmp_path), "train", "*"))
            for event in tf.compat.v1.train.summary_iterator(path) for value in event.summary.value}
    assert {"epoch_weight_a", "epoch_weight_b", "epoch_weight_c"} <= tags


def test_gradnorm_layer_choice_is_checked_when_the_model_is_built():
    with pytest.raises(ValueError, match=r"GradNorm layer 'nope' is not a shared layer.*'dense_0', 'dense_1'"):
        tiny_model(GradNorm(layer="nope"))
    model = tiny_model(GradNorm(layer="dense_0"))
    assert [v.path for v in model.balancer.balanced_variables(model)][0] == "dense_0/kernel"


# --- PCGrad -------------------------------------------------------------------------------------


def reference_pcgrad(gradients, orders):
    """Yu et al.'s projection, on explicit vectors."""
    projected = []
    for i, g in enumerate(gradients):
        g = g.copy()
        for j in orders[i]:
            if j != i and g @ gradients[j] < 0:
                g = g - (g @ gradients[j]) / (gradients[j] @ gradients[j]) * gradients[j]
        projected.append(g)
    return np.sum(projected, axis=0)


def test_pcgrad_projection_equals_the_formula_on_fixed_gradients():
    gradients = np.array([[1.0, 0.0, 2.0, -1.0, 0.5], [-1.0, 1.0, -0.5, 0.0, 0.0],
                          [0.3, -2.0, 0.1, 1.0, -0.4], [0.0, 0.5, 1.0, 0.2, 0.0]])
    gram = gradients @ gradients.T
    assert (gram < 0).sum() >= 4  # there are conflicts to resolve
    for seed in range(5):
        orders = PCGrad(seed=seed).orders(4, step=seed).numpy()
        coefficients, _ = balancing.pcgrad_coefficients(gram, orders)
        combined = tf.reduce_sum(coefficients, axis=0).numpy() @ gradients
        np.testing.assert_allclose(combined, reference_pcgrad(gradients, orders), rtol=1e-5, atol=1e-6)
    assert float(balancing.conflicting_share(gram)) == pytest.approx(np.mean(gram[np.triu_indices(4, 1)] < 0))


def test_pcgrad_changes_nothing_when_no_gradients_conflict():
    gradients = np.abs(RNG.normal(size=(3, 6)))
    coefficients, conflicts = balancing.pcgrad_coefficients(gradients @ gradients.T, np.tile(np.arange(3), (3, 1)))
    np.testing.assert_allclose(coefficients.numpy(), np.eye(3), atol=0)
    assert float(conflicts) == 0


def test_pcgrad_training_step_equals_projected_sgd_by_hand():
    model = tiny_model(PCGrad(seed=1))
    shared = model.shared_variables
    _, grads = losses_and_gradients(model, model.trainable_variables)
    is_shared = [any(v is s for s in shared) for v in model.trainable_variables]
    vectors = np.array([flat([g for g, s in zip(task, is_shared) if s]) for task in grads])
    orders = model.balancer.orders(3, step=0).numpy()
    update = reference_pcgrad(vectors, orders)
    before = [v.numpy() for v in model.trainable_variables]
    logs = model.train_on_batch(X, Y, return_dict=True)
    offset = 0
    for v, b, task_grads, s in zip(model.trainable_variables, before, zip(*grads), is_shared):
        if s:
            expected = b - 0.1 * update[offset: offset + b.size].reshape(b.shape)
            offset += b.size
        else:  # a head: its own task's gradient
            expected = b - 0.1 * sum(task_grads)
        np.testing.assert_allclose(v.numpy(), expected, rtol=1e-4, atol=1e-6)
    gram = vectors @ vectors.T
    assert logs["pcgrad_conflicts"] == pytest.approx(np.mean(gram[np.triu_indices(3, 1)] < 0), abs=1e-6)


# --- uncertainty weighting ----------------------------------------------------------------------


MIXED = (Task("a"), Task("b"), Task("r", "regression"))


def test_uncertainty_loss_equals_the_closed_form_and_s_moves_the_right_way():
    y = {**Y, "r": 3.0 * X[:, 1]}
    model = tiny_model(UncertaintyWeighting(), tasks=MIXED)
    s = np.array([0.3, -0.2, 0.5], np.float32)
    model.balancer.log_variances.assign(s)
    losses = np.array([float(v) for v in reference_losses(model, y, MIXED)])
    factors = np.array([1.0, 1.0, 0.5])
    closed_form = np.sum(factors * (np.exp(-s) * losses + s))
    logs = model.evaluate(X, y, batch_size=16, return_dict=True, verbose=0)
    assert logs["loss"] == pytest.approx(closed_form, rel=1e-5)
    # one SGD step: s_i -= lr * f_i * (1 - exp(-s_i) L_i): up where the loss is large, down where small
    model.train_on_batch(X, y)
    expected = s - 0.1 * factors * (1.0 - np.exp(-s) * losses)
    np.testing.assert_allclose(model.balancer.log_variances.numpy(), expected, rtol=1e-5)
    moved = np.sign(model.balancer.log_variances.numpy() - s)
    np.testing.assert_array_equal(moved, np.sign(np.exp(-s) * losses - 1.0))


# --- with affinity, saving, choices -------------------------------------------------------------


@pytest.mark.parametrize("balancer", [GradNorm(), UncertaintyWeighting(), PCGrad()], ids=lambda b: b.name)
def test_affinity_is_the_same_whatever_the_balancer(balancer):
    """At the first step (same weights, same batch) the affinity does not depend on the balancer;
    the balanced update, taken by the affinity step, equals that of the plain step."""
    equal = tiny_model(affinity=AffinityConfig(), lr=0.05)
    equal.train_on_batch(X, Y)
    balanced = tiny_model(balancer, affinity=AffinityConfig(), lr=0.05)
    balanced.train_on_batch(X, Y)
    np.testing.assert_allclose(balanced.task_affinity().matrix, equal.task_affinity().matrix, rtol=1e-5)
    plain = tiny_model(type(balancer).from_config(balancer.get_config()), lr=0.05)
    plain.train_on_batch(X, Y)
    for a, b in zip(balanced.trainable_variables, plain.trainable_variables):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-7)


def test_balancer_and_its_state_survive_save_and_load(tmp_path):
    model = tiny_model(GradNorm(alpha=0.5, weight_lr=0.3))
    model.fit(X, Y, batch_size=4, epochs=1, verbose=0)
    path = str(tmp_path / "m.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    assert loaded.balancer == GradNorm(alpha=0.5, weight_lr=0.3)
    np.testing.assert_allclose(loaded.balancer.task_weights.numpy(), model.balancer.task_weights.numpy())


def test_balancer_names_and_bad_settings():
    assert [balancing.balancer_from_name(n).name for n in balancing.BALANCERS] == list(balancing.BALANCERS)
    assert balancing.balancer_from_json(GradNorm(alpha=2.0).to_json()) == GradNorm(alpha=2.0)
    with pytest.raises(ValueError, match=r"Unknown balancer 'mgda'; valid choices: \('equal', 'gradnorm'"):
        balancing.balancer_from_name("mgda")
    with pytest.raises(ValueError, match="alpha must be >= 0"):
        GradNorm(alpha=-1)
    with pytest.raises(ValueError, match="balancer must be a tag_tf.balancing.Balancer"):
        tiny_model(balancer="gradnorm")

