"""An affinity run killed mid-epoch (SIGKILL) and resumed with keras.callbacks.BackupAndRestore
ends with the same matrix, standard errors, bootstrap blocks and per-epoch means as an
uninterrupted run, and its adaptive schedule collects at the same steps: the accumulators and the
schedule's state are model variables. With mode="group_lookahead" the candidate groups' bootstrap
blocks are the same too."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUNNER = os.path.join(REPO, "tests", "resumable_affinity_run.py")
ENV = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")


def run(*flags):
    result = subprocess.run([sys.executable, RUNNER, *flags], env=ENV, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]


@pytest.mark.parametrize("mode", ["exact", "group_lookahead"])
def test_killed_and_resumed_run_ends_with_the_uninterrupted_matrix(tmp_path, mode):
    backup = str(tmp_path / "backup")
    uninterrupted, resumed = tmp_path / "uninterrupted.json", tmp_path / "resumed.json"
    run(f"--out={uninterrupted}", f"--mode={mode}")

    # killed in the middle of the second epoch (steps 10-19), after the first epoch's backup
    process = subprocess.Popen([sys.executable, RUNNER, f"--backup_dir={backup}", f"--out={resumed}",
                                "--pause_at_step=15", f"--mode={mode}"], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                               text=True)
    try:
        for line in process.stdout:
            if line.strip() == "PAUSED":
                break
        process.kill()
    finally:
        process.wait(timeout=60)
    assert process.returncode == -9 and not resumed.exists()
    assert os.listdir(backup)  # the first epoch's backup is there

    run(f"--backup_dir={backup}", f"--out={resumed}", f"--mode={mode}")
    a, b = json.loads(uninterrupted.read_text()), json.loads(resumed.read_text())
    assert a["iterations"] == b["iterations"] == 30 and a["steps"] == b["steps"]
    assert 4 < a["steps"] < 20  # dense for 4 samples, then thinned: the schedule's state matters
    assert b["collected"] == [step for step in a["collected"] if step >= 10]  # resumed from the first epoch's end
    np.testing.assert_allclose(b["matrix"], a["matrix"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(b["stderr"], a["stderr"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(b["blocks"], a["blocks"], rtol=0, atol=1e-6)
    assert len(a["epochs"]) == len(b["epochs"]) == 3  # per-epoch means survive the kill too
    np.testing.assert_allclose(b["epochs"], a["epochs"], rtol=0, atol=1e-6)
    assert len(a["group_blocks"]) == len(b["group_blocks"]) == (24 if mode == "group_lookahead" else 0)  # 6 pairs, 4 triples
    for (means, counts), (means_resumed, counts_resumed) in zip(a["group_blocks"], b["group_blocks"]):
        assert counts_resumed == counts and sum(counts) == a["steps"]
        np.testing.assert_allclose(means_resumed, means, rtol=0, atol=1e-6)
