"""The dev server's model registry: TF Serving's version policies, labels, unloading, and broken
versions that never take a serving version down. Answers are checked against the Keras networks."""

import os
import shutil

import grpc
import numpy as np
import pytest
from tensorflow_serving.config import model_server_config_pb2

from serving.registry import ModelRegistry, ServingError, policy_versions
from tag_tf.export.deployment import model_server_config


@pytest.fixture(scope="module")
def versions(tmp_path_factory, tiny_multihead):
    """Two exported versions from different networks: {"a": (path, tiny), "b": (path, tiny)}."""
    base = str(tmp_path_factory.mktemp("exports"))
    other = type(tiny_multihead)(seed=1)
    return {"a": (tiny_multihead.export(base, "a"), tiny_multihead), "b": (other.export(base, "b"), other)}


def layout(base, versions, kinds):
    """A model folder whose version v is a copy of export kinds[v - 1] ("a" or "b")."""
    folder = os.path.join(base, "m")
    for v, kind in enumerate(kinds, start=1):
        shutil.copytree(versions[kind][0], os.path.join(folder, str(v)))
    return folder


def registry(folder, **policy):
    config = model_server_config({"m": folder})
    entry = config.model_config_list.config[0]
    if "latest" in policy:
        entry.model_version_policy.latest.num_versions = policy["latest"]
    if "specific" in policy:
        entry.model_version_policy.ClearField("latest")
        entry.model_version_policy.specific.versions.extend(policy["specific"])
    if policy.get("all"):
        entry.model_version_policy.all.SetInParent()
    for label, version in policy.get("labels", {}).items():
        entry.version_labels[label] = version
    result = ModelRegistry(config, warmup=False)
    result.refresh()
    return result


def assert_serves(servable, tiny, version):
    x = tiny.images(3, seed=4)
    got, want = servable.run("serving_default", {"image": x}), tiny.expected(x)
    assert servable.version == version and sorted(got) == sorted(want)
    for task in want:
        np.testing.assert_allclose(got[task], want[task], atol=1e-5)


def test_policy_versions_latest_all_specific():
    config = model_server_config_pb2.ModelConfig(name="m", base_path="/m")
    assert policy_versions(config, [1, 2, 5]) == [5] and policy_versions(config, []) == []
    config.model_version_policy.latest.num_versions = 2
    assert policy_versions(config, [1, 2, 5]) == [2, 5]
    config.model_version_policy.all.SetInParent()
    assert policy_versions(config, [1, 2, 5]) == [1, 2, 5]
    config.model_version_policy.specific.versions.extend([1, 3])
    assert policy_versions(config, [1, 2, 5]) == [1]


def test_policies_labels_and_versions_that_disappear(tmp_path, versions):
    folder = layout(tmp_path, versions, "aba")
    assert registry(folder, latest=2).versions("m") == [2, 3]
    models = registry(folder, specific=[1, 2], labels={"stable": 1, "canary": 2})
    assert models.versions("m") == [1, 2]
    assert_serves(models.resolve("m"), versions["b"][1], 2)  # no version named: the latest served
    assert_serves(models.resolve("m", label="stable"), versions["a"][1], 1)
    assert_serves(models.resolve("m", label="canary"), versions["b"][1], 2)
    with pytest.raises(ServingError, match=r"Unrecognized servable version label: beta; labels: \['canary', 'stable'\]"):
        models.resolve("m", label="beta")
    everything = registry(folder, all=True)
    assert everything.versions("m") == [1, 2, 3]
    shutil.rmtree(os.path.join(folder, "2"))  # removed from disk: unloaded
    everything.refresh()
    assert everything.versions("m") == [1, 3]
    with pytest.raises(ServingError) as error:
        everything.resolve("m", 2)
    assert error.value.code == grpc.StatusCode.NOT_FOUND
    for v in ("1", "3"):
        shutil.rmtree(os.path.join(folder, v))
    everything.refresh()  # nothing left on disk: nothing served
    assert everything.versions("m") == [] and everything.states("m") == []


def damage(version_dir, kind):
    if kind == "no saved_model.pb":
        os.unlink(os.path.join(version_dir, "saved_model.pb"))
    elif kind == "truncated variables":
        data = os.path.join(version_dir, "variables", "variables.data-00000-of-00001")
        with open(data, "r+b") as f:
            f.truncate(os.path.getsize(data) // 3)
    else:
        with open(os.path.join(version_dir, "assets", "tasks.json"), "w") as f:
            f.write('{"tasks": [garbage')


@pytest.mark.parametrize("kind, error", [
    ("no saved_model.pb", "SavedModel file does not exist"),
    ("truncated variables", ""),
    ("garbage tasks.json", "tasks.json is not JSON"),
])
def test_a_broken_newer_version_is_skipped_and_the_serving_one_keeps_answering(tmp_path, versions, kind, error):
    folder = layout(tmp_path, versions, "ab")
    shutil.rmtree(os.path.join(folder, "2"))
    models = registry(folder)  # latest 1: version 1 ("a")
    shutil.copytree(versions["b"][0], os.path.join(folder, "2"))
    damage(os.path.join(folder, "2"), kind)
    models.refresh()
    models.refresh()  # not retried while unchanged, still not served
    assert models.versions("m") == [1]
    assert_serves(models.resolve("m"), versions["a"][1], 1)
    states = models.states("m")
    assert [s[:2] for s in states] == [(1, "AVAILABLE"), (2, "END")] and error in states[1][2], states
    shutil.rmtree(os.path.join(folder, "2"))  # the copy completes: served, and version 1 unloaded
    shutil.copytree(versions["b"][0], os.path.join(folder, "2"))
    models.refresh()
    assert models.versions("m") == [2] and models.states("m") == [(2, "AVAILABLE", "")]
    assert_serves(models.resolve("m"), versions["b"][1], 2)


@pytest.mark.parametrize("change, message", [
    (lambda c: setattr(c, "base_path", "/no/such/models/m"), r"Model 'm': base_path '/no/such/models/m' is not a directory"),
    (lambda c: setattr(c, "model_platform", "pytorch"),
     r"Model 'm' \(base_path '.*'\): model_platform 'pytorch' is not served here; valid choices: \['tensorflow'\]"),
    (lambda c: c.model_version_policy.specific.SetInParent(), r"Model 'm' \(.*\): the specific version policy lists no versions"),
])
def test_a_config_that_cannot_serve_fails_at_start_naming_model_and_path(tmp_path, change, message):
    config = model_server_config({"m": str(tmp_path)})
    change(config.model_config_list.config[0])
    with pytest.raises(ValueError, match=message):
        ModelRegistry(config)
