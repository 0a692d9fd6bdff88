import json
import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from tensorflow_serving.apis import prediction_log_pb2

from tag_tf.affinity import TaskAffinity
from tag_tf.export import export_multihead
from tag_tf.models import build_multitask_model, celeba_resnet_trunk

AFFINITY = TaskAffinity(tasks=("a", "b", "c", "d"),
                        matrix=np.array([[0, 1, 2, 3], [4, 0, 6, 7], [8, 9, 0, 11], [12, 13, 14, 0]], float))


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_multihead):
    path = tiny_multihead.export(str(tmp_path_factory.mktemp("export")), affinity=AFFINITY)
    return tiny_multihead, path, tf.saved_model.load(path)


def test_every_signature_equals_the_keras_networks(exported):
    tiny, _, loaded = exported
    networks, x = tiny.networks, tiny.images(5)
    served = loaded.signatures["serving_default"](image=tf.constant(x))
    want = tiny.expected(x)
    assert sorted(served) == sorted(want) == ["a", "b", "c", "d"]
    for task in want:
        np.testing.assert_allclose(served[task].numpy(), want[task], atol=1e-5)
    assert served["b"].shape == (5, 3) and served["a"].shape == (5,)
    # "c" is served by network 1; network 0's own "c" head differs
    assert not np.allclose(served["c"].numpy(), tiny.answers(networks[0], tiny.tasks[2], x), atol=1e-3)
    for i, network in enumerate(networks):
        own = loaded.signatures[f"group_{i}"](image=tf.constant(x))
        assert sorted(own) == sorted(tiny.groups[i])
        for task in network.tasks:
            np.testing.assert_allclose(own[task.name].numpy(), tiny.answers(network, task, x), atol=1e-5)


def test_serving_bytes_agrees_with_serving_default_on_the_decoded_images(exported):
    tiny, _, loaded = exported
    pixels = tf.constant((tiny.images(3, seed=1) * 255).astype("uint8"))
    jpegs = tf.stack([tf.io.encode_jpeg(p, quality=90) for p in pixels])
    decoded = tf.stack([tf.io.decode_jpeg(j) for j in jpegs]).numpy().astype("float32") / 255
    from_bytes = loaded.signatures["serving_bytes"](image_bytes=jpegs)
    from_pixels = loaded.signatures["serving_default"](image=tf.constant(decoded))
    for task in from_pixels:
        np.testing.assert_allclose(from_bytes[task].numpy(), from_pixels[task].numpy(), atol=1e-5)
    # a PNG of another size is resized (bilinearly) to the model's input inside the graph
    large = tf.constant((tiny.images(1, seed=2).repeat(2, axis=1).repeat(2, axis=2) * 255).astype("uint8"))
    png = tf.io.encode_png(large[0])
    resized = tf.image.resize(tf.cast(large, tf.float32) / 255, [tiny.image_size] * 2)
    np.testing.assert_allclose(loaded.signatures["serving_bytes"](image_bytes=tf.stack([png]))["a"].numpy(),
                               loaded.signatures["serving_default"](image=resized)["a"].numpy(), atol=1e-5)


def test_saved_model_cli_lists_the_signatures(exported):
    _, path, _ = exported
    cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
    shown = subprocess.run([cli, "show", "--dir", path, "--all"], capture_output=True, text=True, timeout=120,
                           env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert shown.returncode == 0, shown.stderr[-2000:]
    for signature in ("serving_default", "serving_bytes", "group_0", "group_1"):
        assert f"signature_def['{signature}']" in shown.stdout
    assert "inputs['image'] tensor_info:" in shown.stdout and "inputs['image_bytes'] tensor_info:" in shown.stdout
    assert "outputs['b'] tensor_info:" in shown.stdout and "shape: (-1, 3)" in shown.stdout


def test_tasks_json_describes_the_model(exported):
    tiny, path, _ = exported
    summary = json.load(open(os.path.join(path, "assets", "tasks.json")))
    assert [t["name"] for t in summary["tasks"]] == ["a", "b", "c", "d"]
    assert summary["tasks"][0] == {"name": "a", "kind": "binary", "num_classes": None, "weight": 1.0, "network": 0,
                                   "output": "probability", "threshold": 0.5}
    assert summary["tasks"][1]["output"] == "class_probabilities" and summary["tasks"][2]["threshold"] is None
    assert summary["groups"] == [list(g) for g in tiny.groups] and summary["assignment"] == tiny.assignment
    assert summary["inputs"] == [{"name": "image", "dtype": "float32", "shape": [None, 16, 16, 3], "range": [0.0, 1.0]}]
    assert summary["signatures"] == ["serving_default", "serving_bytes", "group_0", "group_1"]
    assert summary["versions"]["tensorflow"] == tf.__version__ and summary["version"] == 1
    # onto "c" (served by network 1 = {c, d}): A[d, c] = 14; "a" from {b, c}: mean(A[b, a], A[c, a]) = 6
    assert summary["affinity"]["onto_task_from_its_network"] == {"a": 6.0, "b": 5.0, "c": 14.0, "d": 11.0}


def test_warmup_file_holds_prediction_logs_the_model_answers(exported):
    _, path, loaded = exported
    records = list(tf.data.TFRecordDataset(os.path.join(path, "assets.extra", "tf_serving_warmup_requests")))
    logs = [prediction_log_pb2.PredictionLog.FromString(r.numpy()) for r in records]
    requests = {log.predict_log.request.model_spec.signature_name: log.predict_log.request for log in logs}
    assert sorted(requests) == ["serving_bytes", "serving_default"]
    assert all(r.model_spec.name == "m" for r in requests.values())
    for signature, request in requests.items():
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        outputs = loaded.signatures[signature](**inputs)
        assert sorted(outputs) == ["a", "b", "c", "d"] and outputs["b"].shape == (1, 3)
    assert tuple(requests["serving_default"].inputs["image"].tensor_shape.dim[i].size for i in range(4)) == (1, 16, 16, 3)


def test_versions_increment_and_a_failed_export_leaves_nothing(tmp_path, tiny_multihead):
    base, networks, assignment = str(tmp_path), tiny_multihead.networks, tiny_multihead.assignment
    first = tiny_multihead.export(base, warmup=False)
    second = export_multihead(networks, assignment, base, "m", warmup=False)
    assert [os.path.basename(first), os.path.basename(second)] == ["1", "2"]
    assert export_multihead(networks, assignment, base, "m", version=7, warmup=False).endswith("7")
    with pytest.raises(ValueError, match=r"version 2 exists in .* \(versions \[1, 2, 7\]\); use version=None for the next one \(8\)"):
        export_multihead(networks, assignment, base, "m", version=2)
    broken = TaskAffinity(tasks=("a", "b", "c", "d"), matrix=np.zeros((1, 1)))  # fails after the SavedModel is written
    with pytest.raises(IndexError):
        export_multihead(networks, assignment, base, "m", affinity=broken)
    # no half-written or temporary folder; the lock file is hidden from TF Serving (not numeric)
    assert sorted(os.listdir(os.path.join(base, "m"))) == [".export.lock", "1", "2", "7"]


@pytest.mark.parametrize("case, message", [
    ({"assignment": {"a": 0, "b": 0, "c": 1, "d": 1, "e": 0}}, r"Task 'e' is assigned to network 0, which has no such head; its tasks: \['a', 'b', 'c'\]"),
    ({"assignment": {"a": 0, "b": 0, "c": 1, "d": 2}}, r"Task 'd' is assigned to network 2; valid networks: 0..1"),
    ({"assignment": {"a": 0, "b": 0, "c": 1}}, r"Task\(s\) \['d'\] have heads but no serving network"),
    ({"assignment": {"a": 0, "b": 0, "c": 1, "d": 0}}, r"Task 'd' is assigned to network 0, which has no such head"),
    ({"other_size": True}, r"All networks must share their inputs; got \[{'image': \[None, 16, 16, 3\]}, {'image': \[None, 8, 8, 3\]}\]"),
    ({"model_name": "my model"}, r"model_name 'my model' is not valid"),
    ({"version": 0}, r"version must be a positive integer or None \(the next one\), got 0"),
    ({"version": "2"}, r"version must be a positive integer or None"),
    ({"networks": []}, r"networks must be a non-empty list of MultiTaskModels"),
])
def test_bad_input_raises_before_anything_is_written(tmp_path, exported, case, message):
    tiny = exported[0]
    networks = tiny.networks
    if case.get("other_size"):
        networks = [networks[0], build_multitask_model(celeba_resnet_trunk(8, filters=4), tiny.tasks[2:])]
    networks = case.get("networks", networks)
    with pytest.raises(ValueError, match=message):
        export_multihead(networks, case.get("assignment", tiny.assignment), str(tmp_path), case.get("model_name", "m"),
                         version=case.get("version"))
    assert os.listdir(tmp_path) == []

