"""The pipeline under MultiWorkerMirroredStrategy: the same command on two worker processes on
localhost (TF_CONFIG) ends with the files one process writes; the chief writes them, the other
worker writes nothing in the run directory."""

import json
import os
import socket
import subprocess
import sys

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The smooth-pattern planted data: 12 affinity steps choose the same groups on one process and two
# workers (the demo's texture data needs more steps than that to decide).
SMALL = ["--preset=demo", "--dataset=planted", "--num_examples=600", "--epochs=2", "--trunk_filters=4", "--planted_groups=2",
         "--tasks_per_group=2", "--num_groups=2", "--baselines=all_in_one", "--steps_per_epoch=6", "--eval_seeds=1",
         "--balancer=equal", "--learning_rate=0.05"]  # the plumbing under test, not the demo's balancing


def start(run_dir, strategy, tf_config=None):
    scratch = os.path.join(os.path.dirname(run_dir), "tmp")  # where a worker's scratch folder goes
    os.makedirs(scratch, exist_ok=True)
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", TMPDIR=scratch)
    env.pop("TF_CONFIG", None)
    if tf_config:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen([sys.executable, "-m", "experiments.tag_pipeline", *SMALL, f"--strategy={strategy}",
                             f"--run_dir={run_dir}"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def finish(process):
    output, _ = process.communicate(timeout=900)
    assert process.returncode == 0, output[-4000:]
    return output


def free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def files(run_dir):
    """Every file of a run directory, relative; TensorBoard event files (named by host and pid)
    counted per folder instead."""
    found = []
    for root, _, names in os.walk(run_dir):
        for name in names:
            path = os.path.relpath(os.path.join(root, name), run_dir)
            found.append(os.path.join(os.path.dirname(path), "events") if ".tfevents." in name else path)
    return sorted(found)


def test_two_workers_write_what_one_process_writes(tmp_path):
    single_dir, multi_dir = tmp_path / "single", tmp_path / "multi"
    single = start(single_dir, "default")
    finish(single)
    cluster = {"worker": [f"localhost:{free_port()}", f"localhost:{free_port()}"]}
    workers = [start(multi_dir, "multi_worker", {"cluster": cluster, "task": {"type": "worker", "index": i}})
               for i in range(2)]
    outputs = [finish(worker) for worker in workers]

    assert files(multi_dir) == files(single_dir)
    assert "groups/t0-t1-t2-t3/model.keras" in files(multi_dir) and "report/index.html" in files(multi_dir)
    affinity = json.load(open(multi_dir / "affinity.json"))
    matrix = np.array(affinity["matrix"], dtype=float)
    assert matrix.shape == (4, 4) and np.all(np.isfinite(matrix)) and affinity["steps"] == 12
    selection = json.load(open(multi_dir / "selection.json"))
    assert [s["budget"] for s in selection["selections"]] == [2] and len(selection["selections"][0]["groups"]) <= 2
    config = json.load(open(multi_dir / "config.json"))
    assert config["runtime"]["strategy"] == "multi_worker"
    # the other worker ran the trainings and printed the same summary, and left no scratch folder behind
    assert "stage train: done" in outputs[1] and "TAG grouping, k=2" in outputs[1]
    assert not [name for name in os.listdir(tmp_path / "tmp") if name.startswith("tag_tf-worker-")]
