"""Any Keras multi-task model: towers, named inputs, MMoE, subclassed; roles from the model's
structure; Keras' compile dicts and per-task sample weights; bad models refused."""

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from tag_tf.affinity import AffinityConfig
from tag_tf.models import wrap
from tag_tf.tasks import Task

RNG = np.random.default_rng(3)
N = 16
X = {"clicks": RNG.normal(size=(N, 4)).astype("float32"), "user": RNG.normal(size=(N, 3)).astype("float32")}
Y = {"click": RNG.integers(0, 2, N), "spend": RNG.normal(size=N).astype("float32"), "kind": RNG.integers(0, 3, N)}
TASKS = [Task("click"), Task("spend", "regression"), Task("kind", "multiclass", num_classes=3)]


def towers_network(seed=0):
    """Two named inputs, a shared layer, a two-layer tower per task."""
    keras.utils.set_random_seed(seed)
    clicks, user = keras.Input((4,), name="clicks"), keras.Input((3,), name="user")
    shared = layers.Dense(6, activation="tanh", name="shared")(layers.Concatenate()([clicks, user]))
    outputs = {t.name: layers.Dense(t.output_units, name=f"{t.name}_out")(
        layers.Dense(5, activation="tanh", name=f"{t.name}_tower")(shared)) for t in TASKS}
    return keras.Model({"clicks": clicks, "user": user}, outputs)


def numpy_losses(outputs, y=Y):
    """Per-task mean losses computed here: sigmoid CE, squared error, softmax CE."""
    z = outputs["click"][:, 0]
    click = np.mean(np.logaddexp(0, z) - y["click"] * z)
    spend = np.mean((outputs["spend"][:, 0] - y["spend"]) ** 2)
    logits = outputs["kind"]
    log_softmax = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
    kind = -np.mean(log_softmax[np.arange(len(logits)), y["kind"]])
    return np.array([click, spend, kind])


def reference_affinity(network, shared_paths, lr):
    """Z[i, j] = (1 − L_j(θs − lr·∇θs L_i) / L_j) / lr, by copying weights and stepping only the
    shared variables with plain SGD."""
    before = numpy_losses({k: v.numpy() for k, v in network(X).items()})
    shared = [v for v in network.trainable_variables if v.path in shared_paths]
    values = [v.numpy() for v in shared]
    z = np.zeros((3, 3))
    for i in range(3):
        with tf.GradientTape() as tape:
            outputs = network(X, training=True)
            loss = [tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(tf.cast(Y["click"], tf.float32),
                                                                             outputs["click"][:, 0])),
                    tf.reduce_mean(tf.square(outputs["spend"][:, 0] - Y["spend"])),
                    tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(Y["kind"], outputs["kind"]))][i]
        grads = tape.gradient(loss, shared)
        for v, value, g in zip(shared, values, grads):
            v.assign(value - lr * g.numpy())
        after = numpy_losses({k: v.numpy() for k, v in network(X).items()})
        for v, value in zip(shared, values):
            v.assign(value)
        z[i] = (1 - after / before) / lr
    return z


def test_towers_roles_and_affinity_equal_a_reference_that_steps_only_the_shared_layer():
    model = wrap(towers_network(), TASKS, affinity=AffinityConfig())
    roles = model.variable_roles()
    assert roles["shared"] == ["shared/kernel", "shared/bias"]
    assert roles["click"] == ["click_tower/kernel", "click_tower/bias", "click_out/kernel", "click_out/bias"]
    assert roles["unused"] == []
    expected = reference_affinity(towers_network(), roles["shared"], lr=0.1)
    towers = {v.path: v.numpy() for v in model.trainable_variables if not v.path.startswith("shared")}
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    lookahead = model.lookahead_losses(X, Y, [[0.1 * tf.ones_like(v) for v in model.shared_variables]] * 3)
    assert lookahead.shape == (3, 3)
    for v in model.trainable_variables:  # the lookahead moved nothing
        if v.path in towers:
            np.testing.assert_array_equal(v.numpy(), towers[v.path])
    model.fit(X, Y, batch_size=N, epochs=1, verbose=0, shuffle=False)
    np.testing.assert_allclose(model.task_affinity().matrix, expected, rtol=1e-4, atol=1e-5)


def mmoe_network():
    """Two experts, one gate and one tower per task (MMoE, Ma et al. 2018), and a branch used by
    two of the three tasks."""
    features = keras.Input((5,), name="features")
    experts = [layers.Dense(4, activation="relu", name=f"expert_{e}")(features) for e in range(2)]
    stacked = layers.Lambda(lambda xs: tf.stack(xs, axis=1))(experts)
    outputs = {}
    for t in ("a", "b", "c"):
        gate = layers.Dense(2, activation="softmax", name=f"gate_{t}")(features)
        mixed = layers.Dot(axes=(1, 1))([gate, stacked])
        outputs[t] = layers.Dense(1, name=f"tower_{t}")(mixed)
    pair = layers.Dense(3, name="pair_branch")(features)
    outputs["b"] = layers.Add()([outputs["b"], layers.Dense(1, name="b_extra")(pair)])
    outputs["c"] = layers.Add()([outputs["c"], layers.Dense(1, name="c_extra")(pair)])
    return keras.Model(features, outputs)


def test_mmoe_experts_and_a_branch_of_two_tasks_are_shared_gates_and_towers_are_not():
    roles = wrap(mmoe_network(), ["a", "b", "c"]).variable_roles()
    assert roles["shared"] == ["expert_0/kernel", "expert_0/bias", "expert_1/kernel", "expert_1/bias",
                               "pair_branch/kernel", "pair_branch/bias"]
    assert roles["a"] == ["gate_a/kernel", "gate_a/bias", "tower_a/kernel", "tower_a/bias"]
    assert sorted(roles["b"]) == sorted(["gate_b/kernel", "gate_b/bias", "tower_b/kernel", "tower_b/bias",
                                         "b_extra/kernel", "b_extra/bias"])


class Subclassed(keras.Model):
    """The towers network as a subclassed model."""

    def __init__(self):
        super().__init__()
        self.concat = layers.Concatenate()
        self.shared = layers.Dense(6, activation="tanh", name="shared")
        self.towers = {t.name: layers.Dense(5, activation="tanh", name=f"{t.name}_tower") for t in TASKS}
        self.heads = {t.name: layers.Dense(t.output_units, name=f"{t.name}_out") for t in TASKS}

    def call(self, inputs):
        h = self.shared(self.concat([inputs["clicks"], inputs["user"]]))
        return {t: self.heads[t](self.towers[t](h)) for t in self.heads}


def test_a_subclassed_model_gives_the_matrix_of_its_functional_twin():
    functional = towers_network()
    subclassed = Subclassed()
    subclassed(X)
    by_name = {v.path.split("/", 1)[-1] if "/" in v.path else v.path: v for v in subclassed.trainable_variables}
    for v in functional.trainable_variables:
        match = [w for w in subclassed.trainable_variables if w.path.endswith(v.path)]
        assert len(match) == 1, (v.path, list(by_name))
        match[0].assign(v.numpy())
    matrices = []
    for network in (functional, subclassed):
        model = wrap(network, TASKS, affinity=AffinityConfig())
        model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9))
        model.fit(X, Y, batch_size=8, epochs=2, verbose=0, shuffle=False)
        matrices.append(model.task_affinity().matrix)
    np.testing.assert_allclose(matrices[1], matrices[0], rtol=1e-5, atol=1e-6)


def test_keras_compile_dicts_set_losses_weights_and_metrics():
    model = wrap(towers_network(), TASKS)
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss={"spend": "mae"}, loss_weights={"kind": 0.5},
                  metrics={"click": ["AUC", keras.metrics.BinaryAccuracy(threshold=0.0, name="acc")],
                           "spend": ["mse"]})
    outputs = {k: v.numpy() for k, v in model(X).items()}
    history = model.fit(X, Y, batch_size=N, epochs=1, verbose=0, validation_data=(X, Y)).history
    click, _, kind = numpy_losses(outputs)
    spend_mae = np.mean(np.abs(outputs["spend"][:, 0] - Y["spend"]))
    assert history["spend_loss"][0] == pytest.approx(spend_mae, rel=1e-5)
    assert history["loss"][0] == pytest.approx(click + spend_mae + 0.5 * kind, rel=1e-5)
    assert history["val_spend_mse"][0] == pytest.approx(np.mean((outputs["spend"][:, 0] - Y["spend"]) ** 2), rel=1e-5)
    accuracy = np.mean((outputs["click"][:, 0] > 0) == (Y["click"] == 1))
    assert history["click_acc"][0] == pytest.approx(accuracy) and history["val_click_acc"][0] == pytest.approx(accuracy)
    auc = keras.metrics.AUC()
    auc.update_state(Y["click"][:, None], outputs["click"])
    assert history["click_auc"][0] == pytest.approx(float(auc.result()), rel=1e-5)
    with pytest.raises(ValueError, match=r"names unknown task\(s\) \['clik'\]; the tasks are \['click', 'spend', 'kind'\]"):
        model.compile(optimizer="sgd", loss={"clik": "mse"})


def test_a_task_weighted_zero_leaves_its_own_variables_and_adds_no_affinity():
    model = wrap(towers_network(), TASKS, affinity=AffinityConfig())
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    own = {v.path: v.numpy() for v in model.task_variables()[1]}
    weights = {"spend": np.zeros(N, "float32")}
    model.fit(X, Y, sample_weight=weights, batch_size=8, epochs=1, verbose=0, shuffle=False)
    for v in model.task_variables()[1]:
        np.testing.assert_array_equal(v.numpy(), own[v.path])
    matrix = model.task_affinity().matrix
    assert np.isnan(matrix[1]).all() and np.isnan(matrix[:, 1]).all()  # no sample with the task
    assert np.isfinite(matrix[np.ix_([0, 2], [0, 2])]).all()


def test_models_that_cannot_be_measured_are_refused_before_training():
    features = keras.Input((3,), name="features")
    hidden = layers.Dense(4, name="trunk")(features)
    with pytest.raises(ValueError, match=r"outputs must be a dict keyed by the task names \['a', 'b'\]"):
        wrap(keras.Model(features, layers.Dense(2)(hidden)), ["a", "b"])
    constant = layers.Lambda(lambda x: tf.zeros_like(x[:, :1]))(features)
    with pytest.raises(ValueError, match=r"task\(s\) \['b'\] depends on no trainable variable"):
        wrap(keras.Model(features, {"a": layers.Dense(1)(hidden), "b": constant}), ["a", "b"])
    separate = keras.Model(features, {"a": layers.Dense(1)(features), "b": layers.Dense(1)(features)})
    with pytest.raises(ValueError, match="No variable of the model is shared"):
        wrap(separate, ["a", "b"], affinity=AffinityConfig())
    assert wrap(separate, ["a", "b"]).variable_roles()["shared"] == []  # plain training is fine
    with pytest.raises(ValueError, match=r"unknown variable\(s\) \['nope/kernel'\]"):
        wrap(towers_network(), TASKS, shared_variables=["nope/kernel"])
    with pytest.raises(ValueError, match="is not built: call it on a batch"):
        wrap(Subclassed(), TASKS)


def test_shared_variables_can_be_given_and_survive_saving(tmp_path):
    chosen = ["shared/kernel", "shared/bias", "click_tower/kernel", "click_tower/bias"]
    model = wrap(towers_network(), TASKS, shared_variables=chosen)
    assert model.variable_roles()["shared"] == chosen
    assert model.variable_roles()["click"] == ["click_out/kernel", "click_out/bias"]
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras")
    assert loaded.variable_roles() == model.variable_roles()


def test_a_saved_model_loads_compiled_with_its_task_losses_weights_and_metrics(tmp_path):
    model = wrap(towers_network(), TASKS)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss={"spend": "mae"}, loss_weights={"kind": 0.5},
                  metrics={"click": ["AUC"], "spend": [keras.metrics.MeanSquaredError(name="sq")]})
    model.fit(X, Y, batch_size=8, epochs=1, verbose=0)
    path = str(tmp_path / "towers.keras")
    model.save(path)
    loaded = keras.models.load_model(path)
    expected = model.evaluate(X, Y, batch_size=N, verbose=0, return_dict=True)
    result = loaded.evaluate(X, Y, batch_size=N, verbose=0, return_dict=True)
    assert sorted(result) == sorted(expected) and {"click_auc", "spend_sq", "spend_loss"} <= set(result)
    for name, value in expected.items():
        assert result[name] == pytest.approx(value, rel=1e-6), name
    outputs = {k: v.numpy() for k, v in model(X).items()}
    assert result["spend_loss"] == pytest.approx(np.mean(np.abs(outputs["spend"][:, 0] - Y["spend"])), rel=1e-5)
    for saved, restored in zip(model.optimizer.variables, loaded.optimizer.variables):
        np.testing.assert_array_equal(restored.numpy(), saved.numpy())
