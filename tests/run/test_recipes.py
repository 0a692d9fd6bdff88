"""The whole pipeline on the user's own model and data: the two example recipes at tiny size, and
bad recipes refused before any training. Run as a user runs it: a subprocess."""

import json
import os
import subprocess
import sys
import re
import textwrap

import numpy as np
import pytest

from tag_tf.run import PRESETS, build_network, fit, load_data

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TINY = ["--epochs=1", "--steps_per_epoch=3", "--num_groups=2", "--baselines=all_in_one", "--eval_seeds=1"]


def pipeline(*flags, env=None):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="2", **(env or {}))
    return subprocess.run([sys.executable, "-m", "experiments.tag_pipeline", *flags], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=900)


def test_recommender_recipe_runs_every_stage(tmp_path):
    result = pipeline("--recipe=experiments/recipes/recommender.py", f"--run_dir={tmp_path}", *TINY)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.load(open(tmp_path / "metrics.json"))
    assert metrics["tasks"] == ["click", "like", "watch_time", "price_tier", "coupon"]
    assert [row["name"] for row in metrics["groupings"]] == ["tag_k2", "all_in_one"]
    config = json.load(open(tmp_path / "config.json"))
    assert config["data"]["dataset"] == "recipe" and config["data"]["recipe"].endswith("recommender.py")
    spec = json.load(open(tmp_path / "export" / "tag_k2" / "1" / "assets" / "tasks.json"))
    assert [i["name"] for i in spec["inputs"]] == ["user", "item", "context"]
    assert "serving_tf_example" in spec["signatures"] and "serving_bytes" not in spec["signatures"]
    assert "The input is not one image" in open(tmp_path / "report" / "index.html").read()


def test_mobilenet_recipe_runs_every_stage_on_the_celeba_sample(tmp_path, celeba_sample):
    """Two tasks, one network, no baselines: tracing MobileNet's per-task gradients is most of the cost."""
    result = pipeline("--recipe=experiments/recipes/celeba_mobilenet.py", f"--run_dir={tmp_path}",
                      "--tasks=Smiling,Male", "--epochs=1", "--steps_per_epoch=2", "--num_groups=1", "--baselines=", "--eval_seeds=1",
                      "--affinity_mode=first_order",
                      env={"CELEBA_DIR": celeba_sample, "RECIPE_IMAGE_SIZE": "32"})
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.load(open(tmp_path / "metrics.json"))
    assert metrics["tasks"] == ["Smiling", "Male"] and [r["name"] for r in metrics["groupings"]] == ["tag_k1"]
    spec = json.load(open(tmp_path / "export" / "tag_k1" / "1" / "assets" / "tasks.json"))
    assert spec["inputs"][0]["shape"] == [None, 32, 32, 3] and "serving_bytes" in spec["signatures"]
    assert os.path.exists(tmp_path / "report" / "saliency_saliency.png")


GOOD = """
import keras
import tensorflow as tf
TASKS = ["a", "b"]
def load_data():
    x = tf.random.stateless_normal((40, 3), seed=[0, 0])
    y = {"a": tf.cast(x[:, 0] > 0, tf.int32), "b": tf.cast(x[:, 1] > 0, tf.int32)}
    return {s: tf.data.Dataset.from_tensor_slices((x, y)) for s in ("train", "validation", "test")}
def build_model(tasks):
    x = keras.Input((3,), name="x")
    h = keras.layers.Dense(4)(x)
    return keras.Model(x, {t.name: keras.layers.Dense(1)(h) for t in tasks})
"""


@pytest.mark.parametrize("change, message", [
    ("del build_model", "defines no build_model: a recipe needs TASKS, build_model(tasks) and load_data()"),
    ("_build = build_model\ndef build_model(tasks):\n    return _build([t for t in tasks] + [type(tasks[0])('c')])",
     "returned outputs for ['a', 'b', 'c']; it must return exactly the tasks it is given"),
    ("_load = load_data\ndef load_data():\n    return {s: d.map(lambda x, y: (x, {'a': y['a']})) for s, d in _load().items()}",
     "the 'train' split has no label for task(s) ['b']"),
    ("def optimizer():\n    return keras.optimizers.RMSprop()", "The affinity lookahead has no rule for optimizer RMSprop"),
])
def test_bad_recipes_fail_before_any_training(tmp_path, change, message):
    """What the pipeline does before training, in-process: load the recipe, its data, the
    affinity network (the command line runs the same calls; the recommender test covers it)."""
    recipe = tmp_path / "recipe.py"
    recipe.write_text(textwrap.dedent(GOOD) + "\n" + change + "\n")
    config = PRESETS["demo"].replace(dataset="recipe", recipe=str(recipe), train_examples=0)
    with pytest.raises(ValueError, match=re.escape(message)):
        config.check_paths()
        data = load_data(config)
        build_network(config, data, data.tasks, config.affinity)


def test_nyuv2_recipe_loads_the_official_layout_and_trains_with_affinity(tmp_path, monkeypatch):
    """The NYUv2 recipe on a small labeled set written as tests/nyuv2_files.py writes one, with the
    official split and class-mapping files: its splits hold what was written, and one step of the
    affinity network measures every pair of its three dense tasks."""
    from scipy.io import savemat
    from nyuv2_files import write_labeled

    images, depths, labels = write_labeled(tmp_path / "nyu_depth_v2_labeled.mat", count=5, height=24, width=32,
                                           rng=np.random.default_rng(1))
    savemat(tmp_path / "splits.mat", {"trainNdxs": np.array([[1], [2], [4]]), "testNdxs": np.array([[3], [5]])})
    savemat(tmp_path / "classMapping13.mat", {"mapClass": (np.arange(1, 895) % 13 + 1)[None, :]})
    monkeypatch.setenv("NYUV2_DIR", str(tmp_path))
    monkeypatch.setenv("NYUV2_IMAGE_SIZE", "24,32")
    config = PRESETS["demo"].replace(dataset="recipe", recipe="experiments/recipes/nyuv2.py", train_examples=0, epochs=1,
                                     steps_per_epoch=2, batch_size=2)
    data = load_data(config)
    assert [t.name for t in data.tasks] == ["segmentation", "depth", "normals"]
    assert [len(list(data.splits[s])) for s in ("train", "validation", "test")] == [2, 1, 2]  # image 1: validation
    (image, y), _ = list(data.splits["test"])  # official test image 3 (0-based 2)
    np.testing.assert_allclose(image.numpy(), images[2] / 255.0, rtol=1e-6)
    np.testing.assert_array_equal(y["depth"].numpy(), depths[2])
    np.testing.assert_array_equal(y["segmentation"].numpy(), np.where(labels[2] == 0, 255, labels[2].astype(int) % 13))
    model = build_network(config, data, data.tasks, config.affinity)
    fit(config, data, model, str(tmp_path / "backup"))
    affinity = model.task_affinity()
    assert affinity.tasks == ("segmentation", "depth", "normals") and affinity.steps == 2
    assert np.all(np.isfinite(affinity.matrix))
    with pytest.raises(ValueError, match=r"NYUV2_DIR='/nowhere' must be a folder holding .*missing"):
        monkeypatch.setenv("NYUV2_DIR", "/nowhere")
        load_data(config)
