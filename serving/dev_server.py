"""A TF-Serving-compatible development server: REST and gRPC over the models of a models.config.

TensorFlow Serving (`tensorflow/serving`, see serving/README.md and docker-compose.yml) is the
production server. This one speaks the same protocols for development and tests, on machines
without TF Serving's binary:

    python -m serving.dev_server --model_config_file=runs/demo/export/models.config \\
        --port=8500 --rest_api_port=8501

REST (TF Serving's JSON, `serving.rest_api`):

    GET  /v1/models/M[/versions/V|/labels/L]            model status
    GET  /v1/models/M[/versions/V|/labels/L]/metadata   signatures
    POST /v1/models/M[/versions/V|/labels/L]:predict    {"instances": ...} or {"inputs": ...}

gRPC: `PredictionService.Predict`, `PredictionService.GetModelMetadata`, `ModelService.GetModelStatus`
(tensorflow-serving-api's generated servicers). Errors: {"error": ...} with TF Serving's status
codes (400 unreadable request, 404 unknown model/version, 413 body over --max_request_bytes), and
the matching gRPC status. Version directories are polled every --file_system_poll_wait_seconds:
a new version is served without a restart.

>>> sorted(route("/v1/models/tag_k3/versions/2:predict").items())
[('label', None), ('model', 'tag_k3'), ('verb', ':predict'), ('version', 2)]
>>> route("/v2/anything") is None
True
"""

from __future__ import annotations

import dataclasses
import http.server
import json
import os
import re
import select
import signal
import subprocess
import sys
import threading
from concurrent import futures

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import grpc  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from google.protobuf import json_format  # noqa: E402
from tensorflow_serving.apis import (  # noqa: E402
    get_model_metadata_pb2, get_model_status_pb2, model_service_pb2_grpc, predict_pb2,
    prediction_service_pb2_grpc)
from tensorflow_serving.config import model_server_config_pb2  # noqa: E402
from tensorflow.core.protobuf import error_codes_pb2  # noqa: E402

from serving import rest_api  # noqa: E402
from serving.limits import Limits, check_shape, tensor_from_proto  # noqa: E402
from tag_tf.export.deployment import model_server_config, read_models_config  # noqa: E402
from serving.registry import HTTP_STATUS, ModelRegistry, Servable, ServingError  # noqa: E402

PATH = re.compile(r"/v1/models/(?P<model>[^/:]+)(?:/versions/(?P<version>\d+)|/labels/(?P<label>[^/:]+))?"
                  r"(?P<verb>/metadata|:predict|:classify|:regress)?")
DEFAULT_MAX_REQUEST_BYTES = 64 << 20


def route(path: str) -> dict | None:
    """The model, version, label and verb of a REST path; None when it is not a model path."""
    match = PATH.fullmatch(path.split("?")[0])
    if not match:
        return None
    parts = match.groupdict()
    parts["version"] = int(parts["version"]) if parts["version"] else None
    return parts


def status_response(registry: ModelRegistry, name: str, version: int | None, label: str | None):
    """A GetModelStatusResponse for one version or for every version served or failed (a failed
    one as TF Serving shows it: state END, its load error in `status`)."""
    states = registry.states(name)
    if version or label:
        wanted = registry.label_version(name, label) if label else version
        states = [s for s in states if s[0] == wanted] or [(registry.resolve(name, version, label).version, "AVAILABLE", "")]
    if not states:
        raise ServingError(grpc.StatusCode.NOT_FOUND, f"Could not find any versions of model {name}")
    response = get_model_status_pb2.GetModelStatusResponse()
    for v, state, error in states:
        entry = response.model_version_status.add(version=v, state=get_model_status_pb2.ModelVersionStatus.State.Value(state))
        if error:
            entry.status.error_code = error_codes_pb2.UNKNOWN
            entry.status.error_message = error
    return response


def metadata_response(servable: Servable) -> get_model_metadata_pb2.GetModelMetadataResponse:
    response = get_model_metadata_pb2.GetModelMetadataResponse()
    response.model_spec.name = servable.name
    response.model_spec.version.value = servable.version
    response.metadata["signature_def"].Pack(servable.signature_defs)
    return response


def _to_json(message) -> dict:
    return json_format.MessageToDict(message, preserving_proto_field_name=True,
                                     always_print_fields_with_no_presence=True)


class RestHandler(http.server.BaseHTTPRequestHandler):
    """TF Serving's REST API over `server.registry`."""

    protocol_version = "HTTP/1.1"  # keep-alive

    def do_GET(self):
        self._respond(self._get)

    def do_POST(self):
        self._respond(self._post)

    def _get(self, parts):
        if parts["verb"] == "/metadata":
            servable = self.server.registry.resolve(parts["model"], parts["version"], parts["label"])
            return {"model_spec": {"name": servable.name, "signature_name": "", "version": str(servable.version)},
                    "metadata": {"signature_def": _to_json(servable.signature_defs)}}
        if parts["verb"]:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Use POST for {parts['verb']}.")
        status = status_response(self.server.registry, parts["model"], parts["version"], parts["label"])
        return _to_json(status)

    def _post(self, parts):
        if parts["verb"] != ":predict":
            raise ServingError(grpc.StatusCode.UNIMPLEMENTED if parts["verb"] else grpc.StatusCode.INVALID_ARGUMENT,
                               f"Only :predict is served here, got {parts['verb'] or 'no verb'}.")
        body = self._read_json()
        servable = self.server.registry.resolve(parts["model"], parts["version"], parts["label"])
        name = body.get("signature_name") if isinstance(body, dict) else None
        if name is not None and not isinstance(name, str):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"'signature_name' must be a string, got {json.dumps(name)[:100]}.")
        signature = servable.signature_name(name)
        dtypes = {k: object if spec.dtype == tf.string else spec.dtype.as_numpy_dtype
                  for k, spec in servable.inputs[signature].items()}
        try:
            inputs, row = rest_api.parse_predict_request(body, dtypes)
            for name, value in inputs.items():
                check_shape(name, value.shape, self.server.limits)
            return rest_api.predict_response(servable.run(signature, inputs), row)
        except rest_api.BadRequest as error:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, str(error)) from None

    def _read_json(self):
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, "A POST needs a Content-Length header.")
        limit = self.server.limits.max_request_bytes
        if int(length) > limit:
            self.close_connection = True
            self._discard(int(length))
            raise ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                               f"Request body of {length} bytes exceeds the limit of {limit}.")
        try:
            return rest_api.loads(self.rfile.read(int(length)), self.server.limits.max_json_depth)
        except rest_api.BadRequest as error:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, str(error)) from None

    def _discard(self, length: int, chunk: int = 1 << 16) -> None:
        """Read and drop an oversized body (up to 64x the limit), in chunks, so that a client still
        sending it reads the 413 instead of a broken pipe; beyond that the connection is cut."""
        if length > 64 * self.server.limits.max_request_bytes:
            return
        while length > 0:
            read = len(self.rfile.read(min(chunk, length)))
            if not read:
                return
            length -= read

    def _respond(self, handler):
        parts = route(self.path)
        try:
            if parts is None:
                raise ServingError(grpc.StatusCode.NOT_FOUND, f"Malformed request: {self.command} {self.path}")
            status, body = 200, handler(parts)
        except ServingError as error:
            status, body = HTTP_STATUS.get(error.code, 500), {"error": str(error)}
        except Exception as error:  # a bug, not the request's fault: a 500 with the reason, and logged
            logging.exception("REST %s %s failed", self.command, self.path)
            status, body = 500, {"error": f"Internal error: {type(error).__name__}: {error}"}
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):
        logging.debug("REST %s", format % args)


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    """gRPC PredictionService: Predict and GetModelMetadata."""

    def __init__(self, registry: ModelRegistry, limits: Limits):
        self.registry, self.limits = registry, limits

    def Predict(self, request, context):
        with _grpc_errors(context):
            servable = _resolve(self.registry, request.model_spec)
            specs = servable.inputs[servable.signature_name(request.model_spec.signature_name)]
            inputs = {k: tensor_from_proto(k, v, self.limits, specs[k].dtype if k in specs else None)
                      for k, v in request.inputs.items()}
            outputs = servable.run(request.model_spec.signature_name, inputs, list(request.output_filter))
            response = predict_pb2.PredictResponse()
            response.model_spec.CopyFrom(_spec(servable, request.model_spec.signature_name or "serving_default"))
            for key, value in outputs.items():
                response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
            return response

    def GetModelMetadata(self, request, context):
        with _grpc_errors(context):
            if list(request.metadata_field) != ["signature_def"]:
                raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                                   f"Metadata field(s) {list(request.metadata_field)} are not supported; ask for ['signature_def'].")
            return metadata_response(_resolve(self.registry, request.model_spec))


class ModelStatusServicer(model_service_pb2_grpc.ModelServiceServicer):
    """gRPC ModelService: GetModelStatus."""

    def __init__(self, registry: ModelRegistry):
        self.registry = registry

    def GetModelStatus(self, request, context):
        with _grpc_errors(context):
            spec = request.model_spec
            version = spec.version.value if spec.HasField("version") else None
            return status_response(self.registry, spec.name, version, spec.version_label or None)


def _resolve(registry: ModelRegistry, spec) -> Servable:
    return registry.resolve(spec.name, spec.version.value if spec.HasField("version") else None,
                            spec.version_label or None)


def _spec(servable: Servable, signature_name: str):
    spec = predict_pb2.PredictResponse().model_spec
    spec.name, spec.signature_name = servable.name, signature_name
    spec.version.value = servable.version
    return spec


class _grpc_errors:
    """Turns a ServingError into the RPC's status (context.abort)."""

    def __init__(self, context):
        self.context = context

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback):
        if isinstance(error, ServingError):
            self.context.abort(error.code, str(error))
        return False


class DevServer:
    """The REST and gRPC servers over one `ModelRegistry`, with a thread polling the base paths.

    Args:
      config: a `ModelServerConfig`.
      port, rest_api_port: gRPC and REST ports; 0 picks a free one (see `.port`, `.rest_api_port`
        after `start()`).
      host: the address to bind (this machine only by default; "0.0.0.0" opens it to the network).
      poll_seconds: how often to look for new or removed version directories.
      max_request_bytes: the largest REST body accepted (413 beyond).
      limits: the other limits of a request (`serving.limits.Limits`: batch size, tensor
        elements, JSON depth); its max_request_bytes is replaced by the argument above.
      threads: worker threads of the gRPC server (REST uses one thread per connection).
    """

    def __init__(self, config: model_server_config_pb2.ModelServerConfig, port: int = 8500,
                 rest_api_port: int = 8501, host: str = "127.0.0.1", poll_seconds: float = 1.0,
                 max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES, threads: int = 16, limits: Limits | None = None):
        if poll_seconds <= 0:
            raise ValueError(f"poll_seconds must be > 0, got {poll_seconds!r}.")
        self.registry = ModelRegistry(config)
        self.port, self.rest_api_port, self.host = port, rest_api_port, host
        self.poll_seconds, self.max_request_bytes, self.threads = poll_seconds, max_request_bytes, threads
        self.limits = dataclasses.replace(limits or Limits(), max_request_bytes=max_request_bytes)
        self._stop = threading.Event()

    def start(self) -> "DevServer":
        self.registry.refresh()
        options = [("grpc.max_receive_message_length", self.max_request_bytes)]
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=self.threads), options=options)
        prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(PredictionServicer(self.registry, self.limits),
                                                                            self._grpc)
        model_service_pb2_grpc.add_ModelServiceServicer_to_server(ModelStatusServicer(self.registry), self._grpc)
        self.port = self._grpc.add_insecure_port(f"{self.host}:{self.port}")
        self._rest = http.server.ThreadingHTTPServer((self.host, self.rest_api_port), RestHandler)
        self._rest.daemon_threads = True
        self._rest.registry, self._rest.limits = self.registry, self.limits
        self.rest_api_port = self._rest.server_address[1]
        self._grpc.start()
        self._threads = [threading.Thread(target=self._rest.serve_forever, daemon=True),
                         threading.Thread(target=self._poll, daemon=True)]
        for thread in self._threads:
            thread.start()
        return self

    def _poll(self):
        while not self._stop.wait(self.poll_seconds):
            try:
                self.registry.refresh()
            except Exception:  # a broken version dir must not stop the server; TF Serving logs it too
                logging.exception("reloading models failed; serving the versions already loaded")

    def stop(self) -> None:
        self._stop.set()
        self._rest.shutdown()
        self._rest.server_close()
        self._grpc.stop(grace=1).wait()
        for thread in self._threads:
            thread.join()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


class Launched:
    """A dev server running as a subprocess (`launch`): its process and ports; `stop()` ends it."""

    def __init__(self, process: subprocess.Popen, port: int, rest_api_port: int):
        self.process, self.port, self.rest_api_port = process, port, rest_api_port

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


READY = re.compile(r"gRPC on (?P<host>\S+):(?P<port>\d+), REST on \S+:(?P<rest>\d+)")


def launch(model_config_file: str, host: str = "127.0.0.1", timeout: float = 120.0, *args: str) -> Launched:
    """Start `python -m serving.dev_server` on free ports and wait until it serves (its ready line)."""
    command = [sys.executable, "-m", "serving.dev_server", f"--model_config_file={model_config_file}",
               "--port=0", "--rest_api_port=0", f"--host={host}", *args]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    ready = select.select([process.stdout], [], [], timeout)[0]
    line = process.stdout.readline() if ready else ""
    match = READY.search(line)
    if not match:
        process.kill()
        process.wait()
        raise RuntimeError(f"The dev server did not start within {timeout:.0f}s (exit code {process.returncode}): {line!r}")
    return Launched(process, int(match["port"]), int(match["rest"]))


FLAGS = flags.FLAGS
flags.DEFINE_string("model_config_file", None, "A ModelServerConfig text proto (e.g. export/models.config).")
flags.DEFINE_string("model_name", None, "Serve one model: its name (with --model_base_path, instead of a config file).")
flags.DEFINE_string("model_base_path", None, "Serve one model: the folder of its version directories.")
flags.DEFINE_integer("port", 8500, "gRPC port (0: any free port).")
flags.DEFINE_integer("rest_api_port", 8501, "REST port (0: any free port).")
flags.DEFINE_string("host", "127.0.0.1", "Address to bind: this machine only by default; --host=0.0.0.0 opens "
                    "the server to the network (TF Serving is the production server).")
flags.DEFINE_float("file_system_poll_wait_seconds", 1.0, "Seconds between looks for new model versions.")
flags.DEFINE_integer("max_request_bytes", DEFAULT_MAX_REQUEST_BYTES, "Largest REST body (or gRPC message) accepted.")
flags.DEFINE_integer("grpc_max_threads", 16, "Worker threads of the gRPC server.")
flags.DEFINE_integer("max_batch_size", Limits.max_batch_size, "Largest first dimension of an input tensor (400 beyond).")
flags.DEFINE_integer("max_tensor_elements", Limits.max_tensor_elements, "Most elements of one input tensor (400 beyond).")
flags.DEFINE_integer("max_json_depth", Limits.max_json_depth, "Deepest nesting of a REST body (400 beyond).")


def config_from_flags() -> model_server_config_pb2.ModelServerConfig:
    if bool(FLAGS.model_config_file) == bool(FLAGS.model_base_path):
        raise app.UsageError("Give either --model_config_file or --model_name with --model_base_path.")
    if FLAGS.model_config_file:
        if not os.path.exists(FLAGS.model_config_file):
            raise app.UsageError(f"--model_config_file={FLAGS.model_config_file}: no such file.")
        return read_models_config(FLAGS.model_config_file)
    return model_server_config({FLAGS.model_name or "default": os.path.abspath(FLAGS.model_base_path)})


def main(argv):
    del argv
    try:
        config = config_from_flags()
        limits = Limits(max_batch_size=FLAGS.max_batch_size, max_tensor_elements=FLAGS.max_tensor_elements,
                        max_json_depth=FLAGS.max_json_depth)
        server = DevServer(config, FLAGS.port, FLAGS.rest_api_port, FLAGS.host, FLAGS.file_system_poll_wait_seconds,
                           FLAGS.max_request_bytes, FLAGS.grpc_max_threads, limits)
    except ValueError as error:
        raise app.UsageError(str(error))
    server.start()
    models = {name: server.registry.versions(name) for name in server.registry.configs}
    print(f"Development server (TF Serving is the production server): gRPC on {server.host}:{server.port}, "
          f"REST on {server.host}:{server.rest_api_port}; models {models}", flush=True)
    stopped = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopped.set())
    stopped.wait()
    server.stop()
    print("Stopped.", file=sys.stderr)


if __name__ == "__main__":
    app.run(main)
