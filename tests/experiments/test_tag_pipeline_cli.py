"""The command line, run as a user runs it: a subprocess."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(*flags):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    return subprocess.run([sys.executable, "-m", "experiments.tag_pipeline", *flags], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)


@pytest.mark.parametrize("flags, message", [
    (["--preset=nope"], "should be one of <celeba|celeba_sample|demo|dense_scenes>"),
    (["--tasks=g0_t0,g7_t1"], "Unknown task(s) ['g7_t1']; the planted tasks are"),
    (["--num_groups=2,0"], "num_groups must be a non-empty list of integers >= 1, got [2, 0]"),
    (["--num_groups=two"], "--num_groups=two: expected integers >= 1"),
    (["--preset=celeba_sample", "--celeba_dir=/no/such/folder"], "celeba_dir '/no/such/folder' does not exist"),
    (["--epochs=0"], "epochs must be a positive integer, got 0"),
    (["--train_examples=-3"], "train_examples must be an integer >= 0 (0 = the whole training split), got -3"),
    (["--train_examples=9000"], "train_examples=9000 exceeds the training split's 8000 examples"),
    (["--baselines=all_in_one,hoa9"], "Unknown baseline 'hoa9'"),
    (["--affinity_every_n_steps=often"], "every_n_steps must be 'auto' or a positive integer (1: every step"),
])
def test_bad_flags_fail_before_any_work(tmp_path, flags, message):
    result = run(*flags, f"--run_dir={tmp_path / 'run'}")
    assert result.returncode != 0
    assert message in result.stderr
    assert not (tmp_path / "run").exists()


def test_run_dir_is_required():
    result = run("--preset=demo")
    assert result.returncode != 0 and "--run_dir is required" in result.stderr


def test_tiny_run_prints_groupings_and_the_table(tmp_path):
    result = run("--num_examples=600", "--epochs=1", "--trunk_filters=4", "--planted_groups=2", "--tasks_per_group=2",
                 "--num_groups=2", "--baselines=all_in_one", "--eval_seeds=1", "--affinity_every_n_steps=auto",
                 f"--run_dir={tmp_path}")
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.load(open(tmp_path / "metrics.json"))
    assert [r["name"] for r in metrics["groupings"]] == ["tag_k2", "all_in_one"]
    assert "TAG grouping, k=2: {" in result.stdout and ", stability " in result.stdout
    assert json.load(open(tmp_path / "config.json"))["affinity"]["every_n_steps"] == "auto"
    assert "Planted grouping:     {g0_t0, g0_t1} {g1_t0, g1_t1}" in result.stdout
    for row in metrics["groupings"]:
        assert f"  {row['total_error']:.2f} (trained once)  " in result.stdout
    assert "stage affinity: done" in result.stderr and "Files in" in result.stderr
    assert result.stdout.splitlines()[-1] == f"Report: {tmp_path / 'report' / 'index.html'}"
    assert (tmp_path / "report" / "index.html").exists()



def config_of(*flags):
    """The RunConfig (as JSON) that the command line builds from `flags`, without running anything."""
    code = ("import json, sys; from absl import flags; from experiments import tag_pipeline as t; "
            "flags.FLAGS(['tag_pipeline', *sys.argv[1:]]); print(json.dumps(t.config_from_flags().to_json()))")
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2")
    result = subprocess.run([sys.executable, "-c", code, *flags], cwd=REPO, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_a_presets_cut_of_its_own_training_data_does_not_follow_other_data():
    recipe = "--recipe=experiments/recipes/recommender.py"
    assert config_of()["data"]["train_examples"] == 480  # the demo trains on the first 480 of its images
    assert config_of(recipe)["data"]["train_examples"] == 0
    assert config_of("--dataset=planted")["data"]["train_examples"] == 0
    assert config_of(recipe, "--train_examples=100")["data"]["train_examples"] == 100  # given: kept
