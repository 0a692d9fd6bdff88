"""A model with several named inputs (a recommender with towers), exported, reloaded and queried
through the dev server (REST row and columnar, gRPC) and through the tf.Example signature: every
answer equals the Keras model's."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from serving.client import TFServingClient
from serving.dev_server import DevServer
from tag_tf.export.deployment import model_server_config
from tag_tf.export import export_multihead
from tag_tf.models import wrap
from tag_tf.export.signatures import example_bytes
from tag_tf.tasks import Task

TASKS = [Task("click"), Task("spend", "regression"), Task("tier", "multiclass", num_classes=3)]
RNG = np.random.default_rng(5)
X = {"user": RNG.normal(size=(4, 3)).astype("float32"), "item": RNG.integers(0, 9, (4, 2)).astype("int32")}


def network(tasks, seed):
    keras.utils.set_random_seed(seed)
    user, item = keras.Input((3,), name="user"), keras.Input((2,), name="item", dtype="int32")
    item_vector = layers.Flatten()(layers.Embedding(10, 4)(item))
    shared = layers.Dense(8, activation="relu")(layers.Concatenate()([user, item_vector]))
    outputs = {t.name: layers.Dense(t.output_units)(layers.Dense(4, activation="relu")(shared)) for t in tasks}
    return wrap(keras.Model({"user": user, "item": item}, outputs), tasks)


def keras_answers(networks, assignment):
    """Every task's served answer, from the Keras network serving it."""
    result = {}
    for task in TASKS:
        output = networks[assignment[task.name]].predict(X, verbose=0)[task.name]
        result[task.name] = {"binary": lambda o: tf.sigmoid(o[:, 0]).numpy(),
                             "multiclass": lambda o: tf.nn.softmax(o).numpy(),
                             "regression": lambda o: o[:, 0]}[task.kind](output)
    return result


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    networks = [network(TASKS[:2], 0), network(TASKS[1:], 1)]
    assignment = {"click": 0, "spend": 1, "tier": 1}
    base = str(tmp_path_factory.mktemp("export"))
    path = export_multihead(networks, assignment, base, "rec")  # checked through the C API on the way
    return base, path, keras_answers(networks, assignment)


def assert_answers(got, want):
    assert sorted(got) == sorted(want)
    for task in want:
        np.testing.assert_allclose(got[task], want[task], atol=1e-5)


def test_signatures_take_the_named_inputs_and_tf_examples(exported):
    _, path, want = exported
    signatures = tf.saved_model.load(path).signatures
    assert sorted(signatures) == ["group_0", "group_1", "serving_default", "serving_tf_example"]
    assert_answers({k: v.numpy() for k, v in signatures["serving_default"](**X).items()}, want)
    examples = tf.constant([example_bytes({"user": X["user"][i], "item": X["item"][i]}) for i in range(4)])
    assert_answers({k: v.numpy() for k, v in signatures["serving_tf_example"](examples=examples).items()}, want)


@pytest.mark.parametrize("protocol, row", [("rest", True), ("rest", False), ("grpc", True)])
def test_dev_server_answers_named_multi_input_requests(exported, protocol, row):
    base, _, want = exported
    with DevServer(model_server_config({"rec": os.path.join(base, "rec")}), port=0, rest_api_port=0,
                   host="127.0.0.1") as server:
        with TFServingClient("127.0.0.1", server.rest_api_port, server.port, timeout=30) as client:
            assert_answers(client.predict("rec", X, protocol=protocol, row=row), want)
            examples = [example_bytes({"user": X["user"][i], "item": X["item"][i]}) for i in range(4)]
            got = client.predict("rec", {"examples": examples}, protocol=protocol, row=row,
                                 signature_name="serving_tf_example")
            assert_answers(got, want)
