"""TF Serving's configuration files for the exported models.

- `models.config`: a `ModelServerConfig` text proto (built with `model_server_config_pb2`, parsed
  back after writing): one entry per model with its base path and version policy;
- `batching_parameters.txt`: server-side batching (`--enable_batching --batching_parameters_file`);
- `monitoring.config`: Prometheus metrics at `/monitoring/prometheus/metrics` on the REST port.

`write_deployment(export_dir, names)` writes all of them into an export folder: `models.config`
with the folder's absolute paths (for the dev server, or TF Serving on this machine) and
`models.docker.config` with `/models/<name>`, where `docker-compose.yml` mounts the folder.

>>> config = model_server_config({"tag_k3": "/models/tag_k3"})
>>> print(text_format.MessageToString(config), end="")
model_config_list {
  config {
    name: "tag_k3"
    base_path: "/models/tag_k3"
    model_platform: "tensorflow"
    model_version_policy {
      latest {
        num_versions: 1
      }
    }
  }
}
>>> print(batching_parameters_text(max_batch_size=64, batch_timeout_micros=2000, num_batch_threads=2), end="")
max_batch_size { value: 64 }
batch_timeout_micros { value: 2000 }
num_batch_threads { value: 2 }
max_enqueued_batches { value: 100 }
"""

from __future__ import annotations

import os
from typing import Mapping, Sequence

from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from tag_tf.utils.io import atomic_path

MODELS_CONFIG = "models.config"
DOCKER_MODELS_CONFIG = "models.docker.config"
BATCHING_PARAMETERS = "batching_parameters.txt"
MONITORING_CONFIG = "monitoring.config"
METRICS_PATH = "/monitoring/prometheus/metrics"
DOCKER_MODEL_ROOT = "/models"


def model_server_config(base_paths: Mapping[str, str],
                        versions: Mapping[str, Sequence[int]] | None = None) -> model_server_config_pb2.ModelServerConfig:
    """A ModelServerConfig serving each model (name -> base path): its latest version, or exactly
    the versions `versions[name]` lists (a `specific` policy)."""
    versions = versions or {}
    unknown = sorted(set(versions) - set(base_paths))
    if unknown:
        raise ValueError(f"versions given for unknown model(s) {unknown}; models: {sorted(base_paths)}.")
    config = model_server_config_pb2.ModelServerConfig()
    for name, base_path in base_paths.items():
        entry = config.model_config_list.config.add(name=name, base_path=base_path, model_platform="tensorflow")
        if name in versions:
            entry.model_version_policy.specific.versions.extend(int(v) for v in versions[name])
        else:
            entry.model_version_policy.latest.num_versions = 1
    return config


def write_models_config(path: str, config: model_server_config_pb2.ModelServerConfig) -> None:
    """Write `config` as a text proto (atomically) and check it parses back to the same message."""
    text = text_format.MessageToString(config)
    _write_text(path, text)
    if read_models_config(path) != config:
        raise RuntimeError(f"{path} does not parse back to the config written.")


def read_models_config(path: str) -> model_server_config_pb2.ModelServerConfig:
    """Parse a `models.config` text proto (ValueError naming the file when it is not one)."""
    with open(path) as f:
        text = f.read()
    try:
        return text_format.Parse(text, model_server_config_pb2.ModelServerConfig())
    except text_format.ParseError as error:
        raise ValueError(f"{path} is not a ModelServerConfig text proto: {error}") from None


def batching_parameters_text(max_batch_size: int = 64, batch_timeout_micros: int = 2000,
                             num_batch_threads: int = 2, max_enqueued_batches: int = 100) -> str:
    """TF Serving's `BatchingParameters` text proto (each field an Int64Value)."""
    fields = {"max_batch_size": max_batch_size, "batch_timeout_micros": batch_timeout_micros,
              "num_batch_threads": num_batch_threads, "max_enqueued_batches": max_enqueued_batches}
    for name, value in fields.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "batch_timeout_micros" else 1):
            raise ValueError(f"{name} must be a {'non-negative' if name == 'batch_timeout_micros' else 'positive'} "
                             f"integer, got {value!r}.")
    return "".join(f"{name} {{ value: {value} }}\n" for name, value in fields.items())


def monitoring_config_text(path: str = METRICS_PATH) -> str:
    """TF Serving's `MonitoringConfig` text proto enabling Prometheus metrics at `path`.

    >>> print(monitoring_config_text(), end="")
    prometheus_config {
      enable: true
      path: "/monitoring/prometheus/metrics"
    }
    """
    if not path.startswith("/"):
        raise ValueError(f"The metrics path must start with '/', got {path!r}.")
    return f'prometheus_config {{\n  enable: true\n  path: "{path}"\n}}\n'


def write_deployment(export_dir: str, model_names: Sequence[str], **batching) -> dict[str, str]:
    """Write the four files of the module docstring into `export_dir`; returns {kind: path}.

    >>> import tempfile
    >>> paths = write_deployment(tempfile.mkdtemp(), ["tag_k3"])
    >>> sorted(os.path.basename(p) for p in paths.values())
    ['batching_parameters.txt', 'models.config', 'models.docker.config', 'monitoring.config']
    """
    if not model_names:
        raise ValueError("model_names is empty: give the exported models' names.")
    export_dir = os.path.abspath(export_dir)
    paths = {kind: os.path.join(export_dir, name) for kind, name in (
        ("models_config", MODELS_CONFIG), ("docker_models_config", DOCKER_MODELS_CONFIG),
        ("batching_parameters", BATCHING_PARAMETERS), ("monitoring_config", MONITORING_CONFIG))}
    write_models_config(paths["models_config"],
                        model_server_config({n: os.path.join(export_dir, n) for n in model_names}))
    write_models_config(paths["docker_models_config"],
                        model_server_config({n: f"{DOCKER_MODEL_ROOT}/{n}" for n in model_names}))
    _write_text(paths["batching_parameters"], batching_parameters_text(**batching))
    _write_text(paths["monitoring_config"], monitoring_config_text())
    return paths


def _write_text(path: str, text: str) -> None:
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        f.write(text)
