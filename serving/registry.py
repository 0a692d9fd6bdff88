"""The models a server serves: versions loaded from their base paths as a `models.config` says,
reloaded when version directories appear or disappear, and run on validated inputs.

As TF Serving does: a model's versions are the numeric directories of its base path; the version
policy picks which to serve (`latest` n, `all`, or `specific` versions); a new version is loaded
(and its `assets.extra/tf_serving_warmup_requests` replayed) before it is served, and a version
the policy no longer picks is dropped. Requests resolve a version under a lock and keep their
reference, so a reload never fails a request in flight. Errors are `ServingError`s carrying a
gRPC status code; `HTTP_STATUS` maps them onto REST status codes.

>>> import tempfile
>>> from tag_tf.export.deployment import model_server_config
>>> registry = ModelRegistry(model_server_config({"m": tempfile.mkdtemp()}))
>>> registry.refresh()
>>> try:
...     registry.resolve("m")
... except ServingError as error:
...     print(error.code.name, error)
NOT_FOUND Servable not found for request: Latest(m)
"""

from __future__ import annotations

import json
import os
import threading
from typing import Mapping

import grpc
import numpy as np
import tensorflow as tf
from absl import logging
from tensorflow.core.protobuf import saved_model_pb2
from tensorflow_serving.apis import get_model_metadata_pb2
from tensorflow_serving.config import model_server_config_pb2

from tag_tf.export import TASKS_FILE, existing_versions
from tag_tf.export.check import warmup_requests

HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400, grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 413, grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.INTERNAL: 500,
}


class ServingError(Exception):
    """A request that cannot be served: `code` (a grpc.StatusCode) and a message."""

    def __init__(self, code: grpc.StatusCode, message: str):
        super().__init__(message)
        self.code = code


class Servable:
    """One loaded version of a model: its signatures and their input specs.

    Attributes:
      name, version, path: the model, the version number, the version directory.
      signatures: signature name -> concrete function.
      inputs: signature name -> {input name: tf.TensorSpec}.
      signature_defs: a `SignatureDefMap` proto, as TF Serving returns in model metadata.
    """

    def __init__(self, name: str, version: int, path: str):
        self.name, self.version, self.path = name, version, path
        self.tasks = read_tasks_file(path)
        self._loaded = tf.saved_model.load(path)
        self.signatures = dict(self._loaded.signatures)
        self.inputs = {k: dict(fn.structured_input_signature[1]) for k, fn in self.signatures.items()}
        saved_model = saved_model_pb2.SavedModel()
        with open(os.path.join(path, "saved_model.pb"), "rb") as f:
            saved_model.ParseFromString(f.read())
        self.signature_defs = get_model_metadata_pb2.SignatureDefMap()
        for key, definition in saved_model.meta_graphs[0].signature_def.items():
            if key in self.signatures:
                self.signature_defs.signature_def[key].CopyFrom(definition)

    def signature_name(self, name: str | None) -> str:
        """`name` ("serving_default" when empty); FAILED_PRECONDITION when the model has no such signature."""
        name = name or "serving_default"
        if name not in self.signatures:
            raise ServingError(grpc.StatusCode.FAILED_PRECONDITION,
                               f"Serving signature name: \"{name}\" not found in signature def; "
                               f"valid signatures: {sorted(self.signatures)}.")
        return name

    def run(self, signature_name: str, inputs: Mapping[str, np.ndarray],
            output_filter=()) -> dict[str, np.ndarray]:
        """The signature's outputs on `inputs`, after checking names, dtypes and shapes."""
        name = self.signature_name(signature_name)
        specs = self.inputs[name]
        if set(inputs) != set(specs):
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"Signature {name!r} takes inputs {sorted(specs)}; the request has {sorted(inputs)}.")
        tensors = {key: check_input(key, value, specs[key]) for key, value in inputs.items()}
        unknown = sorted(set(output_filter) - set(self.signatures[name].structured_outputs))
        if unknown:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                               f"output_filter names unknown outputs {unknown}; "
                               f"outputs: {sorted(self.signatures[name].structured_outputs)}.")
        try:
            outputs = self.signatures[name](**tensors)
        except (tf.errors.InvalidArgumentError, ValueError, TypeError) as error:
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, str(error).split("\n")[0]) from None
        return {key: value.numpy() for key, value in outputs.items() if not output_filter or key in output_filter}


def read_tasks_file(path: str) -> dict | None:
    """The version's `assets/tasks.json` (None without one); ValueError naming the file when it is
    not a JSON object listing named tasks.

    >>> read_tasks_file("/no/such/version") is None
    True
    """
    file = os.path.join(path, TASKS_FILE)
    if not os.path.exists(file):
        return None
    try:
        with open(file, "rb") as f:
            summary = json.loads(f.read())
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{file} is not JSON: {error}") from None
    tasks = summary.get("tasks") if isinstance(summary, dict) else None
    if not isinstance(tasks, list) or not all(isinstance(t, dict) and isinstance(t.get("name"), str) for t in tasks):
        raise ValueError(f"{file} does not list tasks (an object with \"tasks\": [{{\"name\": ...}}, ...]).")
    return summary


def check_input(name: str, value: np.ndarray, spec: tf.TensorSpec) -> tf.Tensor:
    """`value` as a tensor of the spec's dtype and shape; INVALID_ARGUMENT otherwise. NaN and
    infinite floats pass through to the model, as in TF Serving (its REST API reads the JSON
    tokens NaN, Infinity and -Infinity; see serving/README.md).

    >>> try:
    ...     check_input("x", np.zeros((2, 3)), tf.TensorSpec([None, 4], tf.float32))
    ... except ServingError as error:
    ...     print(error.code.name, error)
    INVALID_ARGUMENT Input 'x' must have shape [None, 4], got [2, 3].
    """
    value = np.asarray(value)
    if spec.dtype == tf.string:
        if value.dtype != object and value.dtype.kind != "S":
            raise ServingError(grpc.StatusCode.INVALID_ARGUMENT, f"Input {name!r} must be strings, got {value.dtype.name}.")
    elif value.dtype.kind not in "biuf" or (value.dtype.kind == "f" and not spec.dtype.is_floating):
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"Input {name!r} must be {spec.dtype.name}, got {value.dtype.name}.")
    if not spec.shape.is_compatible_with(value.shape):
        raise ServingError(grpc.StatusCode.INVALID_ARGUMENT,
                           f"Input {name!r} must have shape {spec.shape.as_list()}, got {list(value.shape)}.")
    return tf.convert_to_tensor(value, spec.dtype)


def policy_versions(config: model_server_config_pb2.ModelConfig, available: list[int]) -> list[int]:
    """The versions of `available` (ascending) that the model's version policy serves.

    >>> config = model_server_config_pb2.ModelConfig(name="m", base_path="/m")
    >>> policy_versions(config, [1, 2, 3])                       # the default: the latest
    [3]
    >>> config.model_version_policy.specific.versions.extend([1, 2])
    >>> policy_versions(config, [1, 2, 3])
    [1, 2]
    """
    policy = config.model_version_policy
    kind = policy.WhichOneof("policy_choice")
    if kind == "all":
        return list(available)
    if kind == "specific":
        return [v for v in available if v in set(policy.specific.versions)]
    return list(available[-max(policy.latest.num_versions, 1):]) if available else []


PLATFORMS = ("tensorflow",)


def check_model_configs(config: model_server_config_pb2.ModelServerConfig) -> dict:
    """{name: ModelConfig} after checking what TF Serving would refuse, or what could never serve:
    ValueError naming the model and the path for a missing base path, another platform, a
    duplicate name, an empty `specific` policy.

    >>> config = model_server_config_pb2.ModelServerConfig()
    >>> _ = config.model_config_list.config.add(name="m", base_path="/no/such/folder", model_platform="tensorflow")
    >>> check_model_configs(config)
    Traceback (most recent call last):
    ...
    ValueError: Model 'm': base_path '/no/such/folder' is not a directory.
    """
    kind = config.WhichOneof("config")
    if kind != "model_config_list" or not config.model_config_list.config:
        raise ValueError(f"The model server config must list models (model_config_list), got {kind!r}.")
    configs = {}
    for entry in config.model_config_list.config:
        if not entry.name or entry.name in configs:
            raise ValueError(f"Model names must be unique and non-empty; got {entry.name!r} "
                             f"(models: {[c.name for c in config.model_config_list.config]}).")
        if entry.model_platform not in PLATFORMS:
            raise ValueError(f"Model {entry.name!r} (base_path {entry.base_path!r}): model_platform "
                             f"{entry.model_platform!r} is not served here; valid choices: {list(PLATFORMS)}.")
        if not os.path.isdir(entry.base_path):
            raise ValueError(f"Model {entry.name!r}: base_path {entry.base_path!r} is not a directory.")
        policy = entry.model_version_policy
        if policy.WhichOneof("policy_choice") == "specific" and not policy.specific.versions:
            raise ValueError(f"Model {entry.name!r} ({entry.base_path}): the specific version policy lists no versions.")
        configs[entry.name] = entry
    return configs


def fingerprint(path: str) -> tuple:
    """(relative path, size, mtime) of every file under `path`: changes when a copy goes on.

    >>> fingerprint("/no/such/folder")
    ()
    """
    files = []
    for root, _, names in os.walk(path):
        for name in names:
            try:
                stat = os.stat(os.path.join(root, name))
            except OSError:  # removed meanwhile
                continue
            files.append((os.path.relpath(os.path.join(root, name), path), stat.st_size, stat.st_mtime_ns))
    return tuple(sorted(files))


class ModelRegistry:
    """Loads and serves the models of a `ModelServerConfig`; `refresh()` syncs with the disk.

    As TF Serving (its availability-preserving policy): a version the policy picks is loaded and
    warmed up before it serves; one that fails to load is logged, shown in the model status
    (state END with the error) and not tried again until its directory changes; a version the
    policy no longer picks is unloaded once another picked version serves (at once when its
    model's folder has no versions left), so a newer version that fails never takes the model down.

    Args:
      config: the models (name, base_path, model_platform, model_version_policy, version_labels);
        ValueError naming the model and path for one that cannot be served (`check_model_configs`).
      warmup: replay each version's warmup requests before serving it.
    """

    def __init__(self, config: model_server_config_pb2.ModelServerConfig, warmup: bool = True):
        self.configs = check_model_configs(config)
        self.warmup = warmup
        self._servables: dict[str, dict[int, Servable]] = {name: {} for name in self.configs}
        self._failures: dict[str, dict[int, tuple[tuple, str]]] = {name: {} for name in self.configs}
        self._lock = threading.Lock()
        self._refresh_lock = threading.Lock()

    def refresh(self) -> None:
        """Load the versions each policy now picks, then unload those it no longer picks."""
        with self._refresh_lock:
            for name, config in self.configs.items():
                self._refresh_model(name, config)

    def _refresh_model(self, name: str, config) -> None:
        wanted = policy_versions(config, existing_versions(config.base_path))
        failures = {v: f for v, f in self._failures[name].items() if v in wanted}
        for version in wanted:
            if version in self._servables[name]:
                continue
            path = os.path.join(config.base_path, str(version))
            files = fingerprint(path)
            if version in failures and failures[version][0] == files:
                continue  # failed before, unchanged since
            try:
                servable = self._load(name, version, path)
            except Exception as error:  # any broken version: logged and shown in the status, never served
                message = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}"
                failures[version] = (files, message)
                logging.error("model %s: version %d at %s failed to load, not served: %s", name, version, path, message)
                continue
            failures.pop(version, None)
            with self._lock:
                self._servables[name] = {**self._servables[name], version: servable}
            logging.info("model %s: version %d available", name, version)
        self._failures[name] = failures
        with self._lock:
            served = self._servables[name]
            if not wanted or any(v in wanted for v in served):
                dropped = sorted(set(served) - set(wanted))
                self._servables[name] = {v: s for v, s in served.items() if v in wanted}
            else:
                dropped = []
        for version in dropped:
            logging.info("model %s: version %d unloaded", name, version)

    def _load(self, name: str, version: int, path: str) -> Servable:
        servable = Servable(name, version, path)
        for request in warmup_requests(path) if self.warmup else []:
            servable.run(request.model_spec.signature_name, {k: tf.make_ndarray(v) for k, v in request.inputs.items()})
        return servable

    def states(self, name: str) -> list[tuple[int, str, str]]:
        """(version, "AVAILABLE" or "END", error message or "") of every served or failed version."""
        self._check_model(name)
        with self._lock:
            served = sorted(self._servables[name])
        failed = {v: message for v, (_, message) in self._failures[name].items() if v not in served}
        return sorted([(v, "AVAILABLE", "") for v in served] + [(v, "END", m) for v, m in failed.items()])

    def resolve(self, name: str, version: int | None = None, label: str | None = None) -> Servable:
        """The servable a request names: a version, a label, or (neither) the latest."""
        self._check_model(name)
        if label:
            version = self.label_version(name, label)
        with self._lock:
            servables = self._servables[name]
        if version is None:
            if not servables:
                raise ServingError(grpc.StatusCode.NOT_FOUND, f"Servable not found for request: Latest({name})")
            return servables[max(servables)]
        if version not in servables:
            raise ServingError(grpc.StatusCode.NOT_FOUND,
                               f"Servable not found for request: Specific({name}, {version}); "
                               f"versions served: {sorted(servables)}")
        return servables[version]

    def label_version(self, name: str, label: str) -> int:
        """The version a label of the model's config names (NOT_FOUND for an unknown label)."""
        self._check_model(name)
        labels = self.configs[name].version_labels
        if label not in labels:
            raise ServingError(grpc.StatusCode.NOT_FOUND,
                               f"Unrecognized servable version label: {label}; labels: {sorted(labels)}")
        return labels[label]

    def versions(self, name: str) -> list[int]:
        """The versions of model `name` being served (NOT_FOUND for an unknown model)."""
        self._check_model(name)
        with self._lock:
            return sorted(self._servables[name])

    def _check_model(self, name: str) -> None:
        if name not in self.configs:
            raise ServingError(grpc.StatusCode.NOT_FOUND,
                               f"Servable not found for request: Latest({name}); models: {sorted(self.configs)}")
