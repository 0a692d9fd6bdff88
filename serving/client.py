"""`TFServingClient`: predictions, metadata and model status from TF Serving (or the dev server)
over REST or gRPC, with timeouts and retries.

Every call has a timeout (seconds). A call that finds the server unavailable (connection refused
or reset, HTTP 503, gRPC UNAVAILABLE) is retried up to `retries` times, waiting `backoff`,
2·`backoff`, 4·`backoff`, ... (at most `max_backoff`) in between; any other error raises
`TFServingError` at once, with the server's message and status.

    client = TFServingClient("localhost", rest_port=8501, grpc_port=8500)
    answers = client.predict("tag_k3", {"image": images})                 # REST, row format
    answers = client.predict("tag_k3", {"image": images}, protocol="grpc")
    answers = client.predict("tag_k3", {"image_bytes": [jpeg]}, signature_name="serving_bytes")
    # answers: {task: numpy array}, e.g. a probability per image for a binary task

>>> backoff_delays(retries=4, backoff=0.1, max_backoff=0.5)
[0.1, 0.2, 0.4, 0.5]
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from typing import Mapping

import grpc
import numpy as np
import tensorflow as tf
from google.protobuf import json_format
from tensorflow_serving.apis import (
    get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc, predict_pb2, prediction_service_pb2_grpc)

from serving import rest_api

PROTOCOLS = ("rest", "grpc")
RETRIABLE_HTTP = {503}
# refused, reset or dropped (http.client.RemoteDisconnected is one); a timeout is not retried
CONNECTION_ERRORS = (ConnectionError,)


class TFServingError(Exception):
    """An answer that is an error: `status` (HTTP status or grpc.StatusCode) and the server's message."""

    def __init__(self, status, message: str):
        super().__init__(f"{status}: {message}")
        self.status, self.message = status, message


def backoff_delays(retries: int, backoff: float, max_backoff: float) -> list[float]:
    """The waits before each retry: backoff · 2^i, capped at max_backoff."""
    return [min(backoff * 2 ** i, max_backoff) for i in range(retries)]


class TFServingClient:
    """A client of one server.

    Args:
      host: the server's host name.
      rest_port, grpc_port: TF Serving's defaults are 8501 and 8500.
      timeout: seconds per attempt of each call.
      retries, backoff, max_backoff: see the module docstring.
    """

    def __init__(self, host: str = "localhost", rest_port: int = 8501, grpc_port: int = 8500, *,
                 timeout: float = 10.0, retries: int = 3, backoff: float = 0.1, max_backoff: float = 2.0,
                 max_message_bytes: int = 64 << 20):
        if timeout <= 0 or retries < 0 or backoff < 0:
            raise ValueError(f"Need timeout > 0, retries >= 0, backoff >= 0; got {timeout}, {retries}, {backoff}.")
        self.host, self.rest_port, self.grpc_port = host, rest_port, grpc_port
        self.timeout, self.delays = timeout, backoff_delays(retries, backoff, max_backoff)
        self._local = threading.local()
        options = [("grpc.max_send_message_length", max_message_bytes),
                   ("grpc.max_receive_message_length", max_message_bytes)]
        self._channel = grpc.insecure_channel(f"{host}:{grpc_port}", options=options)
        self._predict = prediction_service_pb2_grpc.PredictionServiceStub(self._channel)
        self._models = model_service_pb2_grpc.ModelServiceStub(self._channel)
        self._output_names: dict[tuple, list[str]] = {}

    # --- public calls

    def predict(self, model: str, inputs: Mapping[str, object], *, protocol: str = "rest",
                signature_name: str = "serving_default", version: int | None = None, row: bool = True
                ) -> dict[str, np.ndarray]:
        """{output: array} for a batch of `inputs` ({input name: array or list; bytes for strings}).
        `row` picks REST's "instances" (True) or "inputs" (False) format."""
        return self.predict_with_version(model, inputs, protocol=protocol, signature_name=signature_name,
                                         version=version, row=row)[0]

    def predict_with_version(self, model: str, inputs: Mapping[str, object], *, protocol: str = "rest",
                             signature_name: str = "serving_default", version: int | None = None, row: bool = True
                             ) -> tuple[dict[str, np.ndarray], int | None]:
        """`predict`'s answer and the version that gave it: the gRPC answer's `model_spec.version`;
        None over REST, whose predict answer (in TF Serving too) does not name the version."""
        _check_protocol(protocol)
        arrays = {name: _as_array(value) for name, value in inputs.items()}
        if protocol == "grpc":
            request = predict_pb2.PredictRequest()
            _fill_spec(request.model_spec, model, version, signature_name)
            for name, value in arrays.items():
                request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
            response = self._grpc(self._predict.Predict, request)
            return ({name: tf.make_ndarray(tensor) for name, tensor in response.outputs.items()},
                    response.model_spec.version.value)
        body = rest_api.request_body(arrays, row, signature_name)
        answer = self._rest("POST", f"{_model_path(model, version)}:predict", body)
        names = None if rest_api.named_outputs(answer) else self._signature_outputs(model, version, signature_name)
        return rest_api.parse_predict_response(answer, names), None

    def metadata(self, model: str, *, protocol: str = "rest", version: int | None = None) -> dict:
        """TF Serving's model metadata as JSON: {"model_spec": ..., "metadata": {"signature_def": ...}}."""
        _check_protocol(protocol)
        if protocol == "rest":
            return self._rest("GET", f"{_model_path(model, version)}/metadata")
        request = get_model_metadata_pb2.GetModelMetadataRequest(metadata_field=["signature_def"])
        _fill_spec(request.model_spec, model, version, "")
        response = self._grpc(self._predict.GetModelMetadata, request)
        signatures = get_model_metadata_pb2.SignatureDefMap()
        response.metadata["signature_def"].Unpack(signatures)
        return {"model_spec": {"name": response.model_spec.name, "signature_name": "",
                               "version": str(response.model_spec.version.value)},
                "metadata": {"signature_def": json_format.MessageToDict(signatures, preserving_proto_field_name=True)}}

    def status(self, model: str, *, protocol: str = "rest", version: int | None = None) -> list[dict]:
        """[{"version": int, "state": "AVAILABLE" | "END" | ...}] for the served and failed versions
        (or one); a version that failed to load also has "error": the server's message."""
        _check_protocol(protocol)
        if protocol == "rest":
            answer = self._rest("GET", _model_path(model, version))
        else:
            request = get_model_status_pb2.GetModelStatusRequest()
            _fill_spec(request.model_spec, model, version, "")
            answer = json_format.MessageToDict(self._grpc(self._models.GetModelStatus, request),
                                               preserving_proto_field_name=True)
        return [{"version": int(s["version"]), "state": s["state"],
                 **({"error": s["status"]["error_message"]} if s.get("status", {}).get("error_message") else {})}
                for s in answer["model_version_status"]]

    def close(self) -> None:
        self._channel.close()

    # --- transports

    def _rest(self, method: str, path: str, body=None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data is not None else {}

        def attempt():
            connection = self._connection()
            try:
                connection.request(method, path, body=data, headers=headers)
                response = connection.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException):  # the connection is in an unknown state
                self._drop_connection()
                raise
            if response.getheader("Connection", "").lower() == "close":
                self._drop_connection()
            answer = _json_or_text(payload)
            if response.status != 200:
                message = answer.get("error", "") if isinstance(answer, dict) else str(answer)
                raise TFServingError(response.status, message)
            return answer

        return self._retrying(attempt)

    def _grpc(self, method, request):
        def attempt():
            try:
                return method(request, timeout=self.timeout)
            except grpc.RpcError as error:
                raise TFServingError(error.code(), error.details()) from None

        return self._retrying(attempt)

    def _retrying(self, attempt):
        for delay in [*self.delays, None]:
            try:
                return attempt()
            except (TFServingError, *CONNECTION_ERRORS) as error:
                if delay is None or not _unavailable(error):
                    raise
                time.sleep(delay)

    def _connection(self) -> http.client.HTTPConnection:
        if getattr(self._local, "connection", None) is None:
            self._local.connection = http.client.HTTPConnection(self.host, self.rest_port, timeout=self.timeout)
        return self._local.connection

    def _drop_connection(self) -> None:
        connection, self._local.connection = getattr(self._local, "connection", None), None
        if connection is not None:
            connection.close()

    def _signature_outputs(self, model: str, version: int | None, signature_name: str) -> list[str]:
        """The output names of a signature (for answers that carry a single unnamed output)."""
        key = (model, version, signature_name)
        if key not in self._output_names:
            signatures = self.metadata(model, version=version)["metadata"]["signature_def"]["signature_def"]
            self._output_names[key] = sorted(signatures[signature_name]["outputs"])
        return self._output_names[key]

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def _unavailable(error: Exception) -> bool:
    if isinstance(error, TFServingError):
        return error.status in RETRIABLE_HTTP or error.status == grpc.StatusCode.UNAVAILABLE
    return True  # refused, reset or dropped connection


def _check_protocol(protocol: str) -> None:
    if protocol not in PROTOCOLS:
        raise ValueError(f"Unknown protocol {protocol!r}; valid choices: {PROTOCOLS}.")


def _as_array(value) -> np.ndarray:
    """A request value as an array: bytes as object arrays, float64 as float32 (Keras' dtype)."""
    if isinstance(value, (list, tuple)) and value and isinstance(np.asarray(value).reshape(-1)[0], bytes):
        return np.array(value, dtype=object)
    array = np.asarray(value)
    return array.astype(np.float32) if array.dtype == np.float64 else array


def _fill_spec(spec, model: str, version: int | None, signature_name: str) -> None:
    spec.name = model
    spec.signature_name = signature_name
    if version is not None:
        spec.version.value = version


def _model_path(model: str, version: int | None) -> str:
    return f"/v1/models/{model}" + (f"/versions/{version}" if version is not None else "")


def _json_or_text(payload: bytes):
    try:
        return json.loads(payload)
    except ValueError:
        return payload.decode(errors="replace")
