"""Distribution: 1 device, 2 mirrored replicas and 2 worker processes over the same global
batches give the same affinity matrix. Runs are fresh processes (tests/distributed_affinity_run.py);
1 device and 2 mirrored replicas are compared within one process."""

import json
import os
import socket
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from tag_tf.training import distribute

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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
def default_and_mirrored(tmp_path_factory):
    """model.fit on 1 device, then on 2 mirrored replicas, in one process."""
    return run(tmp_path_factory.mktemp("fit"), "fit", "--strategies=default,mirrored", "--replicas=2")


def test_two_mirrored_replicas_give_the_single_device_matrix(default_and_mirrored):
    single, mirrored = default_and_mirrored["default"], default_and_mirrored["mirrored"]
    assert (single["replicas"], mirrored["replicas"]) == (1, 2)
    assert mirrored["steps"] == single["steps"] == 20
    np.testing.assert_allclose(mirrored["matrix"], single["matrix"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(mirrored["stderr"], single["stderr"], rtol=0, atol=1e-5)  # M2 counted once
    assert mirrored["loss"] == pytest.approx(single["loss"], rel=1e-5)


def test_custom_loop_under_mirrored_equals_fit(tmp_path, default_and_mirrored):
    custom = run(tmp_path, "custom", "--strategies=mirrored", "--replicas=2", "--loop=custom")["mirrored"]
    single = default_and_mirrored["default"]
    np.testing.assert_allclose(custom["matrix"], single["matrix"], rtol=0, atol=1e-5)
    assert custom["kernel_sum"] == pytest.approx(single["kernel_sum"], rel=1e-5)


def test_one_and_two_mirrored_replicas_give_the_same_balancing(tmp_path):
    """Same global batches (with labels missing unevenly between replicas), affinity every 2 steps
    so that both train steps run: the same balancer state, weights and affinity matrix."""
    both = run(tmp_path, "balancing", "--strategies=default,mirrored", "--replicas=2",
               "--balancers=gradnorm,uncertainty,pcgrad")
    single, mirrored = both["default"], both["mirrored"]
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


def test_two_workers_on_localhost_agree_with_each_other_and_a_single_process(tmp_path, default_and_mirrored):
    cluster = {"worker": [f"localhost:{free_port()}", f"localhost:{free_port()}"]}
    outs = [str(tmp_path / f"worker{i}.json") for i in range(2)]
    workers = [start(out, "--strategies=multi_worker", "--loop=custom",
                     tf_config={"cluster": cluster, "task": {"type": "worker", "index": i}})
               for i, out in enumerate(outs)]
    results = [finish(worker, out)["multi_worker"] for worker, out in zip(workers, outs)]
    assert [r["replicas"] for r in results] == [2, 2]
    np.testing.assert_array_equal(results[0]["matrix"], results[1]["matrix"])
    single = default_and_mirrored["default"]
    np.testing.assert_allclose(results[0]["stderr"], single["stderr"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(results[0]["matrix"], single["matrix"], rtol=0, atol=1e-4)


def test_strategy_names():
    assert distribute.strategy_from_name("default") is tf.distribute.get_strategy()
    with pytest.raises(ValueError, match=r"Unknown strategy 'horovod'; valid strategies: \('default', 'mirrored'"):
        distribute.strategy_from_name("horovod")
    with pytest.raises(ValueError, match="only for the 'mirrored'"):
        distribute.strategy_from_name("default", devices=["CPU:0"])
