import dataclasses
import json
import os

import pytest

from tag_tf import pipeline
from tag_tf.pipeline import PRESETS, RunConfig

TINY = RunConfig(dataset="planted_tabular", num_examples=400, num_groups=2, tasks_per_group=2,
                 epochs=2, batch_size=32, learning_rate=0.05)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"dataset": "mnist"}, r"Unknown dataset 'mnist'; valid datasets: \('planted'"),
        ({"epochs": 0}, "epochs must be a positive integer, got 0"),
        ({"batch_size": 2.5}, "batch_size must be a positive integer"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"momentum": 1.0}, "momentum"),
        ({"steps_per_epoch": -1}, "steps_per_epoch"),
        ({"dataset": "celeba_folder", "tasks": ()}, "needs tasks"),
        ({"dataset": "celeba_folder", "tasks": ("Smiling",), "celeba_dir": ""}, "needs celeba_dir"),
        ({"tasks": ("g0_t0", "g9_t9")}, r"Unknown task\(s\) \['g9_t9'\]; the planted tasks are \['g0_t0'"),
        ({"tasks": ("g0_t0", "g0_t0")}, "Duplicate"),
    ],
)
def test_bad_configs_raise_before_any_work(changes, message):
    with pytest.raises(ValueError, match=message):
        dataclasses.replace(TINY, **changes)


def test_config_json_round_trip_and_presets():
    for config in PRESETS.values():
        assert RunConfig.from_json(json.loads(json.dumps(config.to_json()))) == config
    assert PRESETS["celeba_sample"].tasks == pipeline.PAPER_CELEBA_TASKS and len(pipeline.PAPER_CELEBA_TASKS) == 9


def test_load_data_keeps_the_users_task_order():
    data = pipeline.load_data(dataclasses.replace(TINY, tasks=("g1_t0", "g0_t1")))
    assert [t.name for t in data.tasks] == ["g1_t0", "g0_t1"]
    assert data.planted_groups == [["g0_t0", "g0_t1"], ["g1_t0", "g1_t1"]]


def test_train_all_in_one_writes_config_and_metrics(tmp_path):
    run_dir = str(tmp_path / "run")
    metrics = pipeline.train_all_in_one(TINY, run_dir=run_dir)
    assert sorted(os.listdir(run_dir)) == ["config.json", "metrics.json"]  # no temporary files left
    assert RunConfig.from_json(json.load(open(os.path.join(run_dir, "config.json")))) == TINY
    written = json.load(open(os.path.join(run_dir, "metrics.json")))
    assert written["tasks"] == ["g0_t0", "g0_t1", "g1_t0", "g1_t1"]
    for task in written["tasks"]:
        assert written["all_in_one"][task] == pytest.approx(metrics["all_in_one"][task])
        assert written["all_in_one"][task]["accuracy"] > 0.7  # chance is about 0.5


def test_celeba_sample_preset_loads_the_paper_tasks(celeba_sample):
    config = dataclasses.replace(PRESETS["celeba_sample"], celeba_dir=celeba_sample, image_size=16)
    data = pipeline.load_data(config)
    image, labels = next(iter(data.splits["validation"]))
    assert image.shape == (16, 16, 3) and list(labels) == list(pipeline.PAPER_CELEBA_TASKS)
