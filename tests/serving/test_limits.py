"""Hostile input against the dev server: limits, malformed values, and a Hypothesis fuzz of REST
bodies and gRPC PredictRequests. Every answer must be a 200 with the Keras networks' values or a
4xx with TF Serving's error body; the server must keep answering."""

import base64
import http.client
import json
import os

import grpc
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings, strategies as st
from tensorflow.core.framework import tensor_pb2, tensor_shape_pb2, types_pb2
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

from serving.dev_server import DevServer
from serving.limits import Limits
from tag_tf.export.deployment import model_server_config

POOL = 6  # images with precomputed answers


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_multihead):
    """(tiny, server, stub, answers): answers[signature][i] = {task: value} for pool image i."""
    base = str(tmp_path_factory.mktemp("export"))
    tiny_multihead.export(base, warmup=False)
    limits = Limits(max_batch_size=8, max_tensor_elements=4 * 16 * 16 * 3, max_json_depth=8)
    dev = DevServer(model_server_config({"m": os.path.join(base, "m")}), port=0, rest_api_port=0,
                    max_request_bytes=1 << 20, limits=limits).start()
    x = tiny_multihead.images(POOL, seed=11)
    pixels = (x * 255).astype("uint8")
    answers = {"serving_default": tiny_multihead.expected(x),
               "serving_bytes": tiny_multihead.expected(pixels.astype("float32") / 255)}
    for i, network in enumerate(tiny_multihead.networks):
        answers[f"group_{i}"] = {t.name: tiny_multihead.answers(network, t, x) for t in network.tasks}
    pool = {"image": x, "image_bytes": [tf.io.encode_png(p).numpy() for p in pixels]}
    channel = grpc.insecure_channel(f"127.0.0.1:{dev.port}")
    yield tiny_multihead, dev, prediction_service_pb2_grpc.PredictionServiceStub(channel), answers, pool
    channel.close()
    dev.stop()


def post(dev, body: bytes, path="/v1/models/m:predict"):
    connection = http.client.HTTPConnection("127.0.0.1", dev.rest_api_port, timeout=30)
    try:
        connection.request("POST", path, body=body)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def image_list(n, value=0.5):
    return np.full((n, 16, 16, 3), value).tolist()


@pytest.mark.parametrize("body, message", [
    (json.dumps({"instances": image_list(9)}), "Input 'image': batch size 9 exceeds the limit of 8"),
    (json.dumps({"inputs": image_list(5)}), "Input 'image': 3840 elements exceed the limit of 3072"),
    ("[" * 9 + "]" * 9, "the body nests 9 levels deep; the limit is 8"),
    ("[" * 200000 + "]" * 200000, "the body nests 200000 levels deep"),
    ('{"instances": [1], "instances": [2]}', "duplicate key 'instances'"),
    (json.dumps({"signature_name": "serving_bytes", "instances": [{"b64": "aGk"}]}), "'b64' is not valid base64"),
    (json.dumps({"signature_name": "serving_bytes", "instances": [{"b64": "aGk="}]}), "Unknown image file format"),
    (json.dumps({"signature_name": "nope", "inputs": image_list(1)}), 'Serving signature name: "nope" not found'),
    (json.dumps({"instances": [[[[True] * 3] * 16] * 16]}).replace("true", '"x"', 1), "expected numbers (float32)"),
    (b"\xff\xfe{", "JSON Parse error"),
])
def test_hostile_rest_bodies_get_400_with_the_reason(server, body, message):
    tiny, dev, _, answers, pool = server
    status, answer = post(dev, body.encode() if isinstance(body, str) else body)
    assert status == 400 and list(answer) == ["error"] and message in answer["error"], answer
    status, answer = post(dev, json.dumps({"inputs": pool["image"][:2].tolist()}).encode())
    assert status == 200 and np.allclose(answer["outputs"]["b"], answers["serving_default"]["b"][:2], atol=1e-5)


def grpc_request(name="image", tensor=None, signature="serving_default", model="m"):
    request = predict_pb2.PredictRequest()
    request.model_spec.name, request.model_spec.signature_name = model, signature
    request.inputs[name].CopyFrom(tensor)
    return request


def shaped(dims, dtype=types_pb2.DT_FLOAT, content=b""):
    return tensor_pb2.TensorProto(dtype=dtype, tensor_content=content, tensor_shape=tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=d) for d in dims]))


@pytest.mark.parametrize("tensor, message", [
    (shaped([1 << 40, 16, 16, 3]), "batch size 1099511627776 exceeds the limit of 8"),  # never allocated
    (shaped([1, 1 << 30]), "1073741824 elements exceed the limit of 3072"),
    (shaped([2, 16, 16, 3], content=b"\x00" * 10), "is not a valid tensor"),
    (shaped([1, 16, 16, 3], types_pb2.DT_STRING), "Expects arg 'image' to be float but string is provided"),
    (shaped([1, -2, 16, 3]), "invalid shape"),
    (tf.make_tensor_proto(np.zeros((1, 16, 16, 3), np.float64)), "Expects arg 'image' to be float but double is provided"),
])
def test_hostile_grpc_tensors_get_invalid_argument(server, tensor, message):
    tiny, dev, stub, answers, pool = server
    with pytest.raises(grpc.RpcError) as error:
        stub.Predict(grpc_request(tensor=tensor), timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT and message in error.value.details()
    ok = stub.Predict(grpc_request(tensor=tf.make_tensor_proto(pool["image"][:1])), timeout=30)
    np.testing.assert_allclose(tf.make_ndarray(ok.outputs["a"]), answers["serving_default"]["a"][:1], atol=1e-5)


def nonfinite_images():
    """Images with one NaN pixel value, all -inf, and +inf in one image of two."""
    one_nan = np.full((1, 16, 16, 3), 0.5, np.float32)
    one_nan[0, 3, 4, 1] = np.nan
    mixed = np.full((2, 16, 16, 3), 0.25, np.float32)
    mixed[1] = np.inf
    return [one_nan, np.full((1, 16, 16, 3), -np.inf, np.float32), mixed]


@pytest.mark.parametrize("case", range(3))
@pytest.mark.parametrize("transport", ["rest_row", "rest_columnar", "grpc"])
def test_nan_and_infinity_pass_through_to_the_model_as_in_tf_serving(server, case, transport):
    """TF Serving reads NaN/Infinity (REST's JSON tokens, gRPC floats) and runs the model on them:
    the answers are the Keras networks' answers on the same input (these ReLU networks answer
    finite values; `serving.rest_api` shows NaN answers written as JSON tokens)."""
    tiny, dev, stub, answers, pool = server
    x = nonfinite_images()[case]
    want = tiny.expected(x)
    if transport == "grpc":
        response = stub.Predict(grpc_request(tensor=tf.make_tensor_proto(x)), timeout=30)
        got = {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
    else:
        row = transport == "rest_row"
        body = json.dumps({"instances": x.tolist()} if row else {"inputs": x.tolist()})
        assert ("NaN" if case == 0 else "Infinity") in body  # the JSON tokens TF Serving reads
        status, answer = post(dev, body.encode())
        assert status == 200, answer
        got = ({task: np.array([p[task] for p in answer["predictions"]]) for task in want} if row
               else {task: np.array(answer["outputs"][task]) for task in want})
    assert sorted(got) == sorted(want)
    for task in want:
        np.testing.assert_allclose(got[task], want[task], atol=1e-5, equal_nan=True)
    ok = stub.Predict(grpc_request(tensor=tf.make_tensor_proto(pool["image"][:1])), timeout=30)
    np.testing.assert_allclose(tf.make_ndarray(ok.outputs["a"]), answers["serving_default"]["a"][:1], atol=1e-5)


# ---- fuzz

json_leaves = st.none() | st.booleans() | st.integers(-10**20, 10**20) | st.floats() | st.text(max_size=8)
json_values = st.recursive(json_leaves, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.sampled_from(["instances", "inputs", "image", "b64", "signature_name", "x"]),
                                             inner, max_size=3), max_leaves=12)
SIGNATURES = ["serving_default", "serving_bytes", "group_0", "group_1"]


@st.composite
def valid_rest(draw):
    """(body, signature, rows, row format): a request with known answers."""
    signature = draw(st.sampled_from(SIGNATURES))
    rows = draw(st.lists(st.integers(0, POOL - 1), min_size=1, max_size=4))
    return signature, rows, draw(st.booleans())


def rest_body(pool, signature, rows, row):
    name = "image_bytes" if signature == "serving_bytes" else "image"
    if name == "image_bytes":
        values = [{"b64": base64.b64encode(pool[name][r]).decode()} for r in rows]
    else:
        values = pool[name][rows].tolist()
    body = {"signature_name": signature}
    body.update({"instances": [{name: v} for v in values]} if row else {"inputs": {name: values}})
    return body


def check_rest_answer(answers, signature, rows, row, answer):
    want = {task: value[rows] for task, value in answers[signature].items()}
    got = ({task: np.array([p[task] for p in answer["predictions"]]) for task in want} if row
           else {task: np.array(answer["outputs"][task]) for task in want})
    for task in want:
        np.testing.assert_allclose(got[task], want[task], atol=1e-5)


@settings(max_examples=1200, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(case=st.one_of(
    valid_rest().map(lambda c: ("valid", c)),
    json_values.map(lambda v: ("json", v)),
    st.tuples(valid_rest(), json_values, st.sampled_from(["replace_tensor", "wrap", "extra_key"])).map(lambda c: ("mutated", c)),
    st.binary(max_size=64).map(lambda b: ("bytes", b)),
))
def test_fuzz_rest_bodies(server, case):
    tiny, dev, _, answers, pool = server
    kind, value = case
    if kind == "valid":
        status, answer = post(dev, json.dumps(rest_body(pool, *value)).encode())
        assert status == 200, answer
        check_rest_answer(answers, *value, answer)
        return
    if kind == "mutated":
        (signature, rows, row), junk, how = value
        body = rest_body(pool, signature, rows, row)
        key = "instances" if row else "inputs"
        if how == "replace_tensor":
            body[key] = junk
        elif how == "wrap":
            body[key] = [body[key], junk]
        else:
            body["instances" if not row else "inputs"] = junk
        data = json.dumps(body).encode()
    else:
        data = json.dumps(value).encode() if kind == "json" else value
    status, answer = post(dev, data)
    assert 400 <= status < 500 and list(answer) == ["error"] and isinstance(answer["error"], str), (status, answer)



@pytest.mark.parametrize("signature, name", [("serving_bytes", "image_bytes"), ("serving_default", "image")])
def test_an_empty_batch_is_refused_in_either_format(server, signature, name):
    """Hypothesis found `{"inputs": []}` answered 200 with empty outputs; like an empty
    'instances' list, an empty batch is a 400 naming the input."""
    _, dev, _, _, _ = server
    for inputs in ([], {name: []}):
        status, answer = post(dev, json.dumps({"signature_name": signature, "inputs": inputs}).encode())
        assert status == 400 and answer == {"error": f"Input {name!r}: an empty batch; give at least one example."}
    status, answer = post(dev, json.dumps({"signature_name": signature, "instances": []}).encode())
    assert status == 400 and "non-empty" in answer["error"]

DTYPES = [types_pb2.DT_FLOAT, types_pb2.DT_DOUBLE, types_pb2.DT_INT32, types_pb2.DT_INT64, types_pb2.DT_STRING,
          types_pb2.DT_BOOL, types_pb2.DT_HALF, types_pb2.DT_UINT8, types_pb2.DT_INVALID, 99]


@st.composite
def random_tensors(draw):
    dims = draw(st.lists(st.sampled_from([-1, 0, 1, 2, 3, 16, 9, 1 << 33]), max_size=5))
    tensor = shaped(dims, draw(st.sampled_from(DTYPES)), draw(st.binary(max_size=48)))
    if draw(st.booleans()):
        tensor.ClearField("tensor_content")
        tensor.float_val.extend(draw(st.lists(st.floats(width=32), max_size=3)))
    if draw(st.booleans()):
        tensor.string_val.extend(draw(st.lists(st.binary(max_size=8), max_size=2)))
    return tensor


@settings(max_examples=1000, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
@given(model=st.sampled_from(["m", "m", "m", "other"]), signature=st.sampled_from(SIGNATURES + ["", "nope"]),
       name=st.sampled_from(["image", "image", "image_bytes", "x"]),
       tensor=st.one_of(random_tensors(), st.lists(st.integers(0, POOL - 1), min_size=1, max_size=3)))
def test_fuzz_grpc_predict_requests(server, model, signature, name, tensor):
    tiny, dev, stub, answers, pool = server
    rows = None
    if isinstance(tensor, list):  # a valid tensor of pool images
        rows, tensor = tensor, tf.make_tensor_proto(pool["image"][tensor] if name != "image_bytes"
                                                    else np.array([pool["image_bytes"][r] for r in tensor], object))
    try:
        response = stub.Predict(grpc_request(name, tensor, signature, model), timeout=30)
    except grpc.RpcError as error:
        assert error.code() in (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
                                grpc.StatusCode.FAILED_PRECONDITION), (error.code(), error.details())
        return
    got = {k: tf.make_ndarray(v) for k, v in response.outputs.items()}
    signature = signature or "serving_default"
    if rows is not None:
        want = {task: value[rows] for task, value in answers[signature].items()}
    else:  # a random tensor that is a valid input: its answers straight from the Keras networks
        x = tf.make_ndarray(tensor)
        want = (tiny.expected(x) if signature == "serving_default" else
                {t.name: tiny.answers(tiny.networks[int(signature[-1])], t, x) for t in tiny.networks[int(signature[-1])].tasks})
    assert sorted(got) == sorted(want)
    for task in want:
        np.testing.assert_allclose(got[task], want[task], atol=1e-5)
