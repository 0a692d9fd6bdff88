"""The dev server and the client over REST and gRPC, against direct predictions of the Keras networks."""

import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time

import grpc
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from serving.client import TFServingClient, TFServingError
from tag_tf.export.deployment import model_server_config, write_deployment
from serving import dev_server
from serving.dev_server import DevServer
from tag_tf.data.synthetic import task_names
from tag_tf.export import export_multihead
from tag_tf.utils.io import write_json_atomic
from tag_tf.models import build_multitask_model, celeba_resnet_trunk
from tag_tf.run import PRESETS

LIMIT = 1 << 20  # the fixture server's largest REST body


@pytest.fixture(scope="module")
def served(tmp_path_factory, tiny_multihead):
    """(tiny networks, server, client): version 1 of model "m" on a dev server with free ports."""
    base = str(tmp_path_factory.mktemp("export"))
    tiny_multihead.export(base)
    server = DevServer(model_server_config({"m": os.path.join(base, "m")}), port=0, rest_api_port=0,
                       host="127.0.0.1", max_request_bytes=LIMIT).start()
    client = TFServingClient("127.0.0.1", server.rest_api_port, server.port, timeout=30)
    yield tiny_multihead, server, client
    client.close()
    server.stop()


def assert_answers(got, want):
    assert sorted(got) == sorted(want)
    for task in want:
        np.testing.assert_allclose(got[task], want[task], atol=1e-5)


@pytest.mark.parametrize("protocol, row", [("rest", True), ("rest", False), ("grpc", True)])
def test_answers_equal_direct_predictions(served, protocol, row):
    tiny, _, client = served
    x = tiny.images(4)
    assert_answers(client.predict("m", {"image": x}, protocol=protocol, row=row), tiny.expected(x))
    own = client.predict("m", {"image": x}, protocol=protocol, row=row, signature_name="group_1", version=1)
    assert_answers(own, {t.name: tiny.answers(tiny.networks[1], t, x) for t in tiny.networks[1].tasks})


@pytest.mark.parametrize("protocol", ["rest", "grpc"])
def test_image_bytes_status_and_metadata(served, protocol):
    tiny, _, client = served
    pixels = (tiny.images(2, seed=3) * 255).astype("uint8")
    pngs = [tf.io.encode_png(p).numpy() for p in pixels]  # lossless: same answers as the pixels
    got = client.predict("m", {"image_bytes": pngs}, protocol=protocol, signature_name="serving_bytes")
    assert_answers(got, tiny.expected(pixels.astype("float32") / 255))
    assert client.status("m", protocol=protocol) == [{"version": 1, "state": "AVAILABLE"}]
    signatures = client.metadata("m", protocol=protocol)["metadata"]["signature_def"]["signature_def"]
    assert sorted(signatures) == ["group_0", "group_1", "serving_bytes", "serving_default"]
    assert sorted(signatures["serving_default"]["outputs"]) == ["a", "b", "c", "d"]


def raw(server, method, path, body=b"", headers=None):
    connection = http.client.HTTPConnection("127.0.0.1", server.rest_api_port, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


IMAGE = np.zeros((1, 16, 16, 3)).tolist()


@pytest.mark.parametrize("method, path, body, status, message", [
    ("POST", "/v1/models/m:predict", b'{"instances": [', 400, "JSON Parse error"),
    ("POST", "/v1/models/m:predict", json.dumps({"instances": [[1.0, 2.0]]}), 400,
     "Input 'image' must have shape [None, 16, 16, 3], got [1, 2]"),
    ("POST", "/v1/models/m:predict", json.dumps({"instances": [[[["x"] * 3] * 16] * 16]}), 400,
     "Input 'image': expected numbers (float32), got strings"),
    ("POST", "/v1/models/m:predict", json.dumps({"instances": IMAGE, "inputs": IMAGE}), 400,
     "exactly one of 'instances' (row format) or 'inputs' (columnar format)"),
    ("POST", "/v1/models/m:predict", json.dumps({"inputs": {"images": IMAGE}}), 400,
     "The signature's inputs are ['image']; the request has ['images']"),
    ("POST", "/v1/models/m:predict", json.dumps({"signature_name": "nope", "inputs": IMAGE}), 400,
     'Serving signature name: "nope" not found'),
    ("POST", "/v1/models/nope:predict", json.dumps({"inputs": IMAGE}), 404, "Servable not found for request: Latest(nope)"),
    ("POST", "/v1/models/m/versions/9:predict", json.dumps({"inputs": IMAGE}), 404,
     "Servable not found for request: Specific(m, 9); versions served: [1]"),
    ("GET", "/v1/models/m/versions/9", b"", 404, "Specific(m, 9)"),
    ("GET", "/v2/models", b"", 404, "Malformed request"),
    ("POST", "/v1/models/m:predict", b"[" + b"0.5," * (LIMIT // 4) + b"0]", 413, "exceeds the limit of 1048576"),
])
def test_bad_requests_get_4xx_and_the_server_keeps_serving(served, method, path, body, status, message):
    tiny, server, client = served
    got_status, answer = raw(server, method, path, body.encode() if isinstance(body, str) else body)
    assert got_status == status and list(answer) == ["error"] and message in answer["error"]
    x = tiny.images(1)
    assert_answers(client.predict("m", {"image": x}), tiny.expected(x))


def test_grpc_errors_carry_status_codes(served):
    _, _, client = served
    with pytest.raises(TFServingError) as error:
        client.predict("nope", {"image": np.zeros((1, 16, 16, 3), "float32")}, protocol="grpc")
    assert error.value.status == grpc.StatusCode.NOT_FOUND
    with pytest.raises(TFServingError) as error:
        client.predict("m", {"image": np.zeros((1, 8, 8, 3), "float32")}, protocol="grpc")
    assert error.value.status == grpc.StatusCode.INVALID_ARGUMENT and "[None, 16, 16, 3]" in error.value.message


def test_hot_reload_serves_a_new_version_without_failing_a_request(tmp_path, tiny_multihead):
    base = str(tmp_path)
    tiny_multihead.export(base)
    newer = type(tiny_multihead)(seed=1)
    x = tiny_multihead.images(2)
    with DevServer(model_server_config({"m": os.path.join(base, "m")}), port=0, rest_api_port=0,
                   host="127.0.0.1", poll_seconds=0.2) as server:
        client = TFServingClient("127.0.0.1", server.rest_api_port, server.port, timeout=30)
        failures, stop = [], threading.Event()

        def query(protocol):
            while not stop.is_set():
                try:
                    client.predict("m", {"image": x}, protocol=protocol)
                except Exception as e:  # collected and reported below
                    failures.append(repr(e))
                time.sleep(0.005)  # leave the CPU to the export and the reload

        threads = [threading.Thread(target=query, args=(p,)) for p in ("rest", "grpc")]
        for t in threads:
            t.start()
        assert newer.export(base).endswith("2")
        deadline = time.time() + 60
        while client.status("m") != [{"version": 2, "state": "AVAILABLE"}] and time.time() < deadline:
            time.sleep(0.1)
        stop.set()
        for t in threads:
            t.join()
        assert failures == []
        assert client.status("m") == [{"version": 2, "state": "AVAILABLE"}]  # latest policy: 1 is dropped
        for protocol in ("rest", "grpc"):
            assert_answers(client.predict("m", {"image": x}, protocol=protocol), newer.expected(x))
        client.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_client_retries_until_the_server_is_up_and_gives_up_after_its_retries(tmp_path, tiny_multihead):
    tiny_multihead.export(str(tmp_path), warmup=False)
    port = free_port()
    client = TFServingClient("127.0.0.1", port, free_port(), timeout=5, retries=3, backoff=0.05)
    start = time.time()
    with pytest.raises(ConnectionRefusedError):
        client.status("m")
    assert time.time() - start >= 0.05 + 0.1 + 0.2  # waited between its 4 attempts
    patient = TFServingClient("127.0.0.1", port, timeout=5, retries=8, backoff=0.2, max_backoff=1.0)
    server = DevServer(model_server_config({"m": os.path.join(tmp_path, "m")}), port=0, rest_api_port=port,
                       host="127.0.0.1")
    starter = threading.Timer(0.5, server.start)
    starter.start()
    try:
        assert patient.status("m") == [{"version": 1, "state": "AVAILABLE"}]
    finally:
        starter.join()
        server.stop()


def test_demo_query_starts_the_cli_server_asks_both_protocols_and_stops_it(tmp_path):
    """A run directory as the pipeline leaves it (config.json + export/), queried by `make demo`'s last command."""
    config = PRESETS["demo"].replace(image_size=16, num_examples=300, train_examples=0)
    names = [t for group in task_names(config.data.planted_groups, config.data.tasks_per_group) for t in group]
    networks = [build_multitask_model(celeba_resnet_trunk(16, filters=4), names[:5]),
                build_multitask_model(celeba_resnet_trunk(16, filters=4), names[4:])]
    assignment = {t: 0 if i < 5 else 1 for i, t in enumerate(names)}
    export = os.path.join(tmp_path, "export")
    export_multihead(networks, assignment, export, "tag_k3", warmup=False)
    files = write_deployment(export, ["tag_k3"])
    write_json_atomic(os.path.join(tmp_path, "config.json"), config.to_json())
    write_json_atomic(os.path.join(export, "export.json"),
                      {"models": [{"name": "tag_k3"}], "models_config": os.path.relpath(files["models_config"], tmp_path)})
    result = subprocess.run([sys.executable, "-m", "serving.demo_query", f"--run_dir={tmp_path}"],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "REST and gRPC answers agree; the server is stopped." in result.stdout
    for name in names:
        assert f"  {name}  " in result.stdout


def test_help_says_tf_serving_is_the_production_server():
    # absl's --help prints the module docstring and the flags
    assert "TensorFlow Serving (`tensorflow/serving`, see serving/README.md and docker-compose.yml) is the\nproduction server" in dev_server.__doc__
    for name in ("model_config_file", "port", "rest_api_port", "file_system_poll_wait_seconds", "max_request_bytes"):
        assert name in flags.FLAGS


def test_server_killed_and_restarted_under_load_every_request_answered_right(tmp_path, tiny_multihead):
    """REST and gRPC clients query without pause; the server process is SIGKILLed and started again
    on the same ports. The clients' retries carry every request; each answer is checked."""
    tiny_multihead.export(str(tmp_path), warmup=False)
    config = write_deployment(str(tmp_path), ["m"])["models_config"]
    ports = [f"--port={free_port()}", f"--rest_api_port={free_port()}"]
    x = tiny_multihead.images(4, seed=9)
    want = tiny_multihead.expected(x)
    failures, answered, stop = [], [], threading.Event()
    server = dev_server.launch(config, "127.0.0.1", 120.0, *ports)

    def query(k):
        protocol = "grpc" if k % 2 else "rest"
        client = TFServingClient("127.0.0.1", server.rest_api_port, server.port, timeout=10, retries=40,
                                 backoff=0.1, max_backoff=1.0)
        i = 0
        while not stop.is_set():
            rows = [i % 4, (i + k) % 4]
            try:
                assert_answers(client.predict("m", {"image": x[rows]}, protocol=protocol),
                               {t: v[rows] for t, v in want.items()})
                answered.append((k, time.time()))
            except Exception as e:  # collected and reported below
                failures.append(f"{protocol}: {e!r}")
            i += 1
        client.close()

    threads = [threading.Thread(target=query, args=(k,)) for k in range(4)]
    try:
        for t in threads:
            t.start()
        time.sleep(1.0)
        server.process.kill()
        server.process.wait()
        killed = time.time()
        server = dev_server.launch(config, "127.0.0.1", 120.0, *ports)
        restarted, deadline = time.time(), time.time() + 60
        while len({k for k, t in answered if t > restarted}) < 4 and time.time() < deadline:
            time.sleep(0.1)  # until every client (gRPC reconnects with its own backoff) is answered again
    finally:
        stop.set()
        for t in threads:
            t.join()
        server.stop()
    assert failures == []
    assert {k for k, t in answered if t < killed} == {k for k, t in answered if t > restarted} == {0, 1, 2, 3}


def test_status_shows_a_version_that_failed_to_load_and_the_old_one_answers(tmp_path, tiny_multihead):
    first = tiny_multihead.export(str(tmp_path), warmup=False)
    with DevServer(model_server_config({"m": os.path.join(tmp_path, "m")}), port=0, rest_api_port=0,
                   poll_seconds=0.1) as server:
        client = TFServingClient("127.0.0.1", server.rest_api_port, server.port, timeout=30)
        broken = os.path.join(tmp_path, "m", "2")
        os.makedirs(broken)  # a copy that has only begun: no saved_model.pb yet
        with open(os.path.join(broken, "fingerprint.pb"), "wb") as f:
            f.write(open(os.path.join(first, "fingerprint.pb"), "rb").read())
        deadline = time.time() + 30
        while len(client.status("m")) < 2 and time.time() < deadline:
            time.sleep(0.1)
        for protocol in ("rest", "grpc"):
            status = client.status("m", protocol=protocol)
            assert [(s["version"], s["state"]) for s in status] == [(1, "AVAILABLE"), (2, "END")]
            assert "error" not in status[0] and "SavedModel file does not exist" in status[1]["error"]
            x = tiny_multihead.images(2)
            assert_answers(client.predict("m", {"image": x}, protocol=protocol), tiny_multihead.expected(x))
        client.close()
