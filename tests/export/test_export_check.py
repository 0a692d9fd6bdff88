"""The check through TF Serving's load path (C API): answers equal the Keras networks, a version
that fails is never visible, an export killed at any moment leaves nothing loadable-but-wrong."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf

from tag_tf.export.c_api import SavedModelSession
from tag_tf.export import export_multihead, keras_reference
from tag_tf.export.check import ExportCheckError, check_version_dir
from tag_tf.models import build_multitask_model
from tag_tf.tasks import Task

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tiny_multihead):
    return tiny_multihead, tiny_multihead.export(str(tmp_path_factory.mktemp("export")))


def test_answers_through_the_c_api_equal_keras_for_every_signature(exported):
    tiny, path = exported
    x = tiny.images(5, seed=7)
    pixels = (tiny.images(2, seed=8) * 255).astype("uint8")
    pngs = np.array([tf.io.encode_png(p).numpy() for p in pixels], object)  # lossless, the model's size
    with SavedModelSession(path) as session:
        assert sorted(session.signature_defs) == ["group_0", "group_1", "serving_bytes", "serving_default"]
        cases = [("serving_default", {"image": x}, tiny.expected(x)),
                 ("serving_bytes", {"image_bytes": pngs}, tiny.expected(pixels.astype("float32") / 255))]
        cases += [(f"group_{i}", {"image": x}, {t.name: tiny.answers(n, t, x) for t in n.tasks})
                  for i, n in enumerate(tiny.networks)]
        for signature, inputs, want in cases:
            got = session.run(signature, inputs)
            assert sorted(got) == sorted(want), signature
            for task in want:
                np.testing.assert_allclose(got[task], want[task], atol=1e-5, err_msg=f"{signature} {task}")
    report = check_version_dir(path, keras_reference(tiny.networks, tiny.tasks, tiny.assignment))
    assert sorted(report.max_abs_error) == ["group_0", "group_1", "serving_bytes", "serving_default"]
    assert max(report.max_abs_error.values()) <= 1e-5 and report.warmup_requests == 2
    assert check_version_dir(path).reference == "tf.saved_model.load"


def test_the_cli_checks_a_version_and_fails_a_broken_one(exported, tmp_path):
    _, path = exported
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO}
    broken = shutil.copytree(path, tmp_path / "1")
    variables = broken / "variables" / "variables.data-00000-of-00001"
    variables.write_bytes(variables.read_bytes()[: variables.stat().st_size // 2])  # a half-copied version
    for version, code, text in [(path, 0, "2 warmup request(s) replayed"), (str(broken), 1, f"FAILED {broken}: ")]:
        result = subprocess.run([sys.executable, "-m", "serving.check", version], capture_output=True, text=True,
                                timeout=300, env=env, cwd=REPO)
        assert result.returncode == code, result.stderr[-2000:]
        assert text in result.stdout + result.stderr
        assert code or "serving_bytes  max |C API - tf.saved_model.load| = " in result.stdout


@pytest.mark.parametrize("damage, message", [
    ("no_saved_model_pb", "TF Serving's loader (C API, tag 'serve') fails: loading"),
    ("truncated_variables", "TF Serving's loader (C API, tag 'serve') fails: "),
    ("garbage_warmup", "tf_serving_warmup_requests: not a TFRecord file"),
])
def test_a_damaged_version_fails_the_check_naming_it(exported, tmp_path, damage, message):
    _, path = exported
    copy = shutil.copytree(path, tmp_path / "3")
    if damage == "no_saved_model_pb":
        (copy / "saved_model.pb").unlink()
    elif damage == "truncated_variables":
        data = copy / "variables" / "variables.data-00000-of-00001"
        data.write_bytes(data.read_bytes()[:100])
    else:
        (copy / "assets.extra" / "tf_serving_warmup_requests").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(ExportCheckError, match=re.escape(str(copy)) + ".*" + re.escape(message)):
        check_version_dir(str(copy))


class Noise(keras.layers.Layer):
    """Adds fresh noise at every call, also at inference: the saved graph cannot match Keras."""

    def call(self, x):
        return x + tf.random.uniform(tf.shape(x))


def test_an_export_that_fails_the_check_is_never_visible(tmp_path):
    features = keras.Input((3,), name="features")
    trunk = keras.Model(features, Noise()(keras.layers.Dense(4)(features)))
    network = build_multitask_model(trunk, [Task("a")])
    with pytest.raises(ExportCheckError, match=r"signature 'group_0', output 'a': answers through the C API differ"):
        export_multihead([network], {"a": 0}, str(tmp_path), "m")
    assert os.listdir(tmp_path / "m") == [".export.lock"]  # no version, no temporary


EXPORTER = """
import sys
sys.path.insert(0, "tests")
from conftest import TinyMultihead
tiny = TinyMultihead(seed=3)
print("exporting", flush=True)
while True:
    tiny.export(sys.argv[1])
"""


def test_an_export_killed_at_any_moment_leaves_only_loadable_versions(tmp_path, tiny_multihead):
    """Exporters looping over versions are killed (SIGKILL) at spread-out moments; every numeric
    directory then passes the C API check against the networks, and the next export removes the
    temporaries and takes the next version."""
    tiny = type(tiny_multihead)(seed=3)
    reference = keras_reference(tiny.networks, tiny.tasks, tiny.assignment)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO}
    left_behind = []
    for delay in (0.5, 2.0):
        exporter = subprocess.Popen([sys.executable, "-c", EXPORTER, str(tmp_path)], stdout=subprocess.PIPE,
                                    text=True, env=env, cwd=REPO)
        assert exporter.stdout.readline() == "exporting\n"
        time.sleep(delay)
        exporter.send_signal(signal.SIGKILL)
        exporter.wait()
        left_behind += [n for n in os.listdir(tmp_path / "m") if n.endswith(".tmp")]
    versions = sorted(int(n) for n in os.listdir(tmp_path / "m") if n.isdigit())
    for version in versions:
        check_version_dir(str(tmp_path / "m" / str(version)), reference)
    assert left_behind, "no kill landed inside an export: the test checked nothing"
    path = tiny.export(str(tmp_path))
    assert os.path.basename(path) == str(max(versions, default=0) + 1)
    assert sorted(os.listdir(tmp_path / "m")) == [".export.lock"] + sorted(map(str, versions + [int(os.path.basename(path))]), key=int)


def test_dense_heads_export_and_answer_through_the_c_api_and_the_dev_server_as_keras(tmp_path):
    """A hard-sharing network with every dense kind and one flat task: each signature through TF
    Serving's load path, and the dev server over REST and gRPC, answers what the Keras network
    gives, in the served form (class probabilities per pixel, depth, unit normals, edge probability)."""
    from serving.client import TFServingClient
    from serving.dev_server import DevServer
    from tag_tf.models.architectures import build_architecture
    from tag_tf.export.deployment import model_server_config
    from tag_tf.models import celeba_resnet_trunk, wrap

    tasks = [Task("seg", kind="segmentation", num_classes=3), Task("depth", kind="depth"),
             Task("normals", kind="normals"), Task("edges", kind="edges"), Task("colour", "multiclass", num_classes=4)]
    network = wrap(build_architecture("hard_sharing", celeba_resnet_trunk(16, filters=4, feature_map=True), tasks,
                                      head_units=4), tasks)
    path = export_multihead([network], {t.name: 0 for t in tasks}, str(tmp_path), "dense")
    x = np.random.default_rng(0).random((2, 16, 16, 3)).astype("float32")
    out = network.predict(x, verbose=0)
    logits = out["seg"] - out["seg"].max(axis=-1, keepdims=True)
    want = {"seg": np.exp(logits) / np.exp(logits).sum(axis=-1, keepdims=True), "depth": out["depth"][..., 0],
            "normals": out["normals"] / np.maximum(np.linalg.norm(out["normals"], axis=-1, keepdims=True), 1e-6),
            "edges": 1 / (1 + np.exp(-out["edges"][..., 0])), "colour": tf.nn.softmax(out["colour"]).numpy()}
    assert [want[t].shape for t in ("seg", "depth", "normals", "edges")] == [(2, 16, 16, 3), (2, 16, 16),
                                                                            (2, 16, 16, 3), (2, 16, 16)]
    with SavedModelSession(path) as session:
        for signature in ("serving_default", "group_0"):
            got = session.run(signature, {"image": x})
            assert sorted(got) == sorted(want)
            for task in want:
                np.testing.assert_allclose(got[task], want[task], atol=1e-5, err_msg=f"{signature} {task}")
    assert max(check_version_dir(path).max_abs_error.values()) <= 1e-5  # with the warmup requests replayed
    server = DevServer(model_server_config({"dense": os.path.dirname(path)}), port=0, rest_api_port=0,
                       host="127.0.0.1").start()
    try:
        with TFServingClient("127.0.0.1", server.rest_api_port, server.port, timeout=30) as client:
            for protocol in ("rest", "grpc"):
                got = client.predict("dense", {"image": x}, protocol=protocol)
                for task in want:
                    np.testing.assert_allclose(got[task], want[task], atol=1e-5, err_msg=f"{protocol} {task}")
    finally:
        server.stop()
    spec = json.load(open(os.path.join(path, "assets", "tasks.json")))
    assert [t["output"] for t in spec["tasks"]] == ["pixel_class_probabilities", "pixel_depth", "pixel_unit_normals",
                                                    "pixel_edge_probability", "class_probabilities"]
