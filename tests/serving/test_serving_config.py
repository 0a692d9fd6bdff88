import os

import pytest
from google.protobuf import text_format
from tensorflow_serving.config import model_server_config_pb2

from tag_tf.export import deployment as config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_models_config_round_trips_through_the_proto(tmp_path):
    paths = config.write_deployment(str(tmp_path), ["tag_k2", "tag_k3"], max_batch_size=32)
    parsed = text_format.Parse(open(paths["models_config"]).read(), model_server_config_pb2.ModelServerConfig())
    assert parsed == config.read_models_config(paths["models_config"])
    entries = parsed.model_config_list.config
    assert [(c.name, c.base_path, c.model_platform) for c in entries] == [
        ("tag_k2", str(tmp_path / "tag_k2"), "tensorflow"), ("tag_k3", str(tmp_path / "tag_k3"), "tensorflow")]
    assert all(c.model_version_policy.latest.num_versions == 1 for c in entries)
    docker = config.read_models_config(paths["docker_models_config"])
    assert [c.base_path for c in docker.model_config_list.config] == ["/models/tag_k2", "/models/tag_k3"]
    assert "max_batch_size { value: 32 }" in open(paths["batching_parameters"]).read()
    assert 'path: "/monitoring/prometheus/metrics"' in open(paths["monitoring_config"]).read()
    assert sorted(os.listdir(tmp_path)) == sorted(os.path.basename(p) for p in paths.values())  # no temporaries


def test_specific_versions_policy_and_bad_values(tmp_path):
    proto = config.model_server_config({"m": "/m"}, versions={"m": [1, 3]})
    assert list(proto.model_config_list.config[0].model_version_policy.specific.versions) == [1, 3]
    with pytest.raises(ValueError, match=r"versions given for unknown model\(s\) \['x'\]; models: \['m'\]"):
        config.model_server_config({"m": "/m"}, versions={"x": [1]})
    with pytest.raises(ValueError, match="max_batch_size must be a positive integer, got 0"):
        config.batching_parameters_text(max_batch_size=0)
    with pytest.raises(ValueError, match="model_names is empty"):
        config.write_deployment(str(tmp_path), [])
    bad = tmp_path / "bad.config"
    bad.write_text("model_config_list { config { nme: 'x' } }")
    with pytest.raises(ValueError, match="is not a ModelServerConfig text proto"):
        config.read_models_config(str(bad))


def test_docker_compose_uses_the_files_write_deployment_writes():
    compose = open(os.path.join(REPO, "serving", "docker-compose.yml")).read()
    for name in (config.DOCKER_MODELS_CONFIG, config.BATCHING_PARAMETERS, config.MONITORING_CONFIG):
        assert f"/models/{name}" in compose
    assert "tensorflow/serving" in compose and "8500" in compose and "8501" in compose
