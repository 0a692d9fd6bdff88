"""The command line, run as a user runs it: a subprocess."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run(*flags):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "experiments.tag_pipeline", *flags], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


def test_bad_flag_is_reported_before_any_work(tmp_path):
    result = run("--preset=demo", "--epochs=0", f"--run_dir={tmp_path / 'run'}")
    assert result.returncode != 0
    assert "epochs must be a positive integer, got 0" in result.stderr
    assert not (tmp_path / "run").exists()
    result = run("--preset=nope")
    assert result.returncode != 0 and "should be one of <celeba|celeba_sample|demo>" in result.stderr


def test_tiny_run_prints_the_table_and_writes_metrics(tmp_path):
    result = run("--preset=demo", "--dataset=planted_tabular", "--num_examples=300", "--epochs=1",
                 "--learning_rate=0.05", "--num_groups=2", "--tasks_per_group=2", f"--run_dir={tmp_path}")
    assert result.returncode == 0, result.stderr
    metrics = json.load(open(tmp_path / "metrics.json"))
    assert metrics["tasks"] == ["g0_t0", "g0_t1", "g1_t0", "g1_t1"]
    assert "All-in-one network, test split" in result.stdout
    for task, values in metrics["all_in_one"].items():
        assert f"{task}  {values['loss']:>7.4f}  accuracy {values['accuracy']:.4f}" in result.stdout
    assert "epoch 1/1" in result.stderr and "metrics.json" in result.stderr
