"""Distribution: 1 device, 2 mirrored replicas and 2 worker processes over the same global
batches give the same affinity matrix. Each run is a fresh process (tests/distributed_affinity_run.py)."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tag_tf import distribute

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUNNER = os.path.join(REPO, "tests", "distributed_affinity_run.py")


def start(out, *flags, tf_config=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    env.pop("TF_CONFIG", None)
    if tf_config:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen([sys.executable, RUNNER, f"--out={out}", *flags], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def finish(process, out):
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-3000:]
    with open(out) as f:
        return json.load(f)


def run(tmp_path, name, *flags):
    out = str(tmp_path / f"{name}.json")
    return finish(start(out, *flags), out)


@pytest.fixture(scope="module")
def single_device(tmp_path_factory):
    return run(tmp_path_factory.mktemp("single"), "single", "--strategy=default")


def test_two_mirrored_replicas_give_the_single_device_matrix(tmp_path, single_device):
    mirrored = run(tmp_path, "mirrored", "--strategy=mirrored", "--replicas=2")
    assert mirrored["replicas"] == 2 and mirrored["steps"] == single_device["steps"] == 20
    np.testing.assert_allclose(mirrored["matrix"], single_device["matrix"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(mirrored["stderr"], single_device["stderr"], rtol=0, atol=1e-5)  # M2 counted once
    assert mirrored["loss"] == pytest.approx(single_device["loss"], rel=1e-5)


def test_custom_loop_under_mirrored_equals_fit(tmp_path, single_device):
    custom = run(tmp_path, "custom", "--strategy=mirrored", "--replicas=2", "--loop=custom")
    np.testing.assert_allclose(custom["matrix"], single_device["matrix"], rtol=0, atol=1e-5)
    assert custom["kernel_sum"] == pytest.approx(single_device["kernel_sum"], rel=1e-5)


def test_one_and_two_mirrored_replicas_give_the_same_balancing(tmp_path):
    """Same global batches (with labels missing unevenly between replicas), affinity every 2 steps
    so that both train steps run: the same balancer state, weights and affinity matrix."""
    flags = "--balancers=gradnorm,uncertainty,pcgrad"
    single = run(tmp_path, "single", "--strategy=default", flags)
    mirrored = run(tmp_path, "mirrored", "--strategy=mirrored", "--replicas=2", flags)
    for name in ("gradnorm", "uncertainty", "pcgrad"):
        one, two = single[name], mirrored[name]
        assert (one["replicas"], two["replicas"]) == (1, 2)
        if name != "pcgrad":
            assert np.ptp(one["state"]) > 1e-3  # the balancer did something
            np.testing.assert_allclose(two["state"], one["state"], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(two["matrix"], one["matrix"], rtol=0, atol=1e-5)
        assert two["kernel_sum"] == pytest.approx(one["kernel_sum"], rel=1e-5)


def free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_workers_on_localhost_agree_with_each_other_and_a_single_process(tmp_path, single_device):
    cluster = {"worker": [f"localhost:{free_port()}", f"localhost:{free_port()}"]}
    outs = [str(tmp_path / f"worker{i}.json") for i in range(2)]
    workers = [start(out, "--strategy=multi_worker", "--loop=custom",
                     tf_config={"cluster": cluster, "task": {"type": "worker", "index": i}})
               for i, out in enumerate(outs)]
    results = [finish(worker, out) for worker, out in zip(workers, outs)]
    assert [r["replicas"] for r in results] == [2, 2]
    np.testing.assert_array_equal(results[0]["matrix"], results[1]["matrix"])
    np.testing.assert_allclose(results[0]["stderr"], single_device["stderr"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(results[0]["matrix"], single_device["matrix"], rtol=0, atol=1e-4)


def test_strategy_names():
    assert distribute.strategy_from_name("default") is tf.distribute.get_strategy()
    with pytest.raises(ValueError, match=r"Unknown strategy 'horovod'; valid strategies: \('default', 'mirrored'"):
        distribute.strategy_from_name("horovod")
    with pytest.raises(ValueError, match="only for the 'mirrored'"):
        distribute.strategy_from_name("default", devices=["CPU:0"])
