import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf

import tag_tf.run as tag_run
from tag_tf import selection
from tag_tf.export.deployment import read_models_config
from tag_tf.utils.io import write_json_atomic
from tag_tf.run import PRESETS, RunConfig, stages
from tag_tf.run.rundir import RunDir

# The demo preset at test size: its data, trunk and schedule, TAG alone (no baselines), one seed.
TINY = PRESETS["demo"].replace(baselines=(), eval_seeds=1)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"dataset": "mnist"}, r"Unknown dataset 'mnist'; valid choices: \('planted'"),
        ({"epochs": 0}, "epochs must be a positive integer, got 0"),
        ({"batch_size": 2.5}, "batch_size must be a positive integer"),
        ({"learning_rate": 0.0}, "learning_rate"),
        ({"momentum": 1.0}, "momentum"),
        ({"lr_schedule": "step"}, r"Unknown lr_schedule 'step'; valid choices: \('constant', 'cosine'\)"),
        ({"steps_per_epoch": -1}, "steps_per_epoch"),
        ({"train_examples": -5}, r"train_examples must be an integer >= 0 \(0 = the whole training split\), got -5"),
        ({"train_examples": 2.5}, "train_examples must be an integer >= 0 .*, got 2.5"),
        ({"num_groups": (2, 0)}, r"num_groups must be a non-empty list of integers >= 1, got \[2, 0\]"),
        ({"num_groups": ()}, "num_groups"),
        ({"affinity_mode": "second"},
         r"Unknown affinity mode 'second'; valid modes: \('exact', 'first_order', 'cosine', 'group_lookahead'\)"),
        ({"baselines": ("hoa2",)}, r"Unknown baseline 'hoa2'; valid choices: \('all_in_one'"),
        ({"strategy": "horovod"}, "Unknown strategy 'horovod'"),
        ({"balancer": "mgda"}, r"Unknown balancer 'mgda'; valid choices: \('equal', 'gradnorm', 'uncertainty', 'pcgrad'\)"),
        ({"dataset": "celeba_folder", "tasks": ()}, "needs tasks"),
        ({"dataset": "celeba_folder", "tasks": ("Smiling",), "celeba_dir": ""}, "needs celeba_dir"),
        ({"tasks": ("g0_t0", "g9_t9")}, r"Unknown task\(s\) \['g9_t9'\]; the planted tasks are \['g0_t0'"),
        ({"tasks": ("g0_t0", "g0_t0")}, "Duplicate"),
        ({"architecture": "mtan"}, r"Unknown architecture 'mtan'; valid choices: \('linear_heads', 'hard_sharing'"),
        ({"dataset": "scenes"}, r"dataset 'scenes' has dense tasks, which linear heads on flat features cannot predict"),
        ({"dataset": "scenes", "architecture": "padnet", "tasks": ("depth", "sky")},
         r"Unknown task\(s\) \['sky'\]; the scenes tasks are \['segmentation', 'depth'"),
    ],
)
def test_bad_configs_raise_before_any_work(changes, message):
    with pytest.raises(ValueError, match=message):
        TINY.replace(**changes)


def test_a_missing_folder_is_refused_by_run_not_by_the_config(tmp_path):
    config = TINY.replace(dataset="celeba_folder", tasks=("Smiling",), celeba_dir="/nowhere")
    with pytest.raises(ValueError, match="celeba_dir '/nowhere' does not exist"):
        tag_run.run(config, str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run")


def test_config_json_round_trip_and_presets():
    for config in PRESETS.values():
        assert RunConfig.from_json(json.loads(json.dumps(config.to_json()))) == config
    assert PRESETS["celeba_sample"].data.tasks == tag_run.PAPER_CELEBA_TASKS and len(tag_run.PAPER_CELEBA_TASKS) == 9


def test_load_data_keeps_the_users_task_order():
    data = tag_run.load_data(TINY.replace(tasks=("g1_t0", "g0_t1")))
    assert [t.name for t in data.tasks] == ["g1_t0", "g0_t1"]
    assert data.planted_grouping == [["g0_t0", "g0_t1", "g0_t2"], ["g1_t0", "g1_t1", "g1_t2"],
                                     ["g2_t0", "g2_t1", "g2_t2"]]


def test_train_examples_keeps_the_first_examples_of_the_training_split_only():
    small = TINY.replace(num_examples=300, train_examples=0)
    full, cut = tag_run.load_data(small), tag_run.load_data(small.replace(train_examples=60))
    full_train = list(full.splits["train"].as_numpy_iterator())
    cut_train = list(cut.splits["train"].as_numpy_iterator())
    assert (len(full_train), len(cut_train)) == (240, 60)
    for (image, labels), (full_image, full_labels) in zip(cut_train, full_train[:60]):
        np.testing.assert_array_equal(image, full_image)
        assert labels == full_labels
    # (n + g) mod 3 assigns the labels: the first 60 examples carry 20 of each task's.
    assert {t: sum(int(y[t] != -1) for _, y in cut_train) for t in cut_train[0][1]} == {
        f"g{g}_t{t}": 20 for g in range(3) for t in range(3)}
    for split in ("validation", "test"):
        assert len(list(cut.splits[split])) == len(list(full.splits[split])) == 30
    with pytest.raises(ValueError, match="train_examples=241 exceeds the training split's 240 examples"):
        tag_run.load_data(small.replace(train_examples=241))


def test_cosine_schedule_sets_every_epochs_learning_rate_and_the_lookahead_uses_it(tmp_path):
    config = TINY.replace(num_examples=200, train_examples=0, trunk_filters=2, epochs=4, learning_rate=0.05)
    data = tag_run.load_data(config)
    rates = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: rates.append(float(model.optimizer.learning_rate)))
    model = tag_run.build_network(config, data, data.tasks[:2])
    tag_run.fit(config, data, model, str(tmp_path / "backup"), [record])
    # base · (1 + cos(π e / 4)) / 2 for e = 0..3, computed here, not by the library.
    expected = [0.05 * (1 + np.cos(np.pi * e / 4)) / 2 for e in range(4)]
    np.testing.assert_allclose(rates, expected, rtol=1e-6)
    # The lookahead reads the optimizer's current rate: the last epoch's.
    from tag_tf.affinity import current_learning_rate
    assert float(current_learning_rate(model.optimizer)) == pytest.approx(expected[-1], rel=1e-6)


def test_a_schedule_on_an_optimizer_with_its_own_schedule_is_refused_before_training():
    own = keras.optimizers.SGD(keras.optimizers.schedules.ExponentialDecay(0.1, 10, 0.5))
    with pytest.raises(ValueError, match="lr_schedule='cosine' sets the learning rate of every epoch, but the "
                                         "optimizer has a LearningRateSchedule of its own"):
        tag_run.networks.check_schedulable(own, "cosine")
    tag_run.networks.check_schedulable(own, "constant")  # its own schedule runs untouched


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("run"))
    report = tag_run.run(TINY, run_dir)
    return run_dir, report


def test_tiny_demo_recovers_the_planted_grouping(tiny_run):
    run_dir, report = tiny_run
    assert report.ran == ["affinity", "select", "train", "evaluate", "export", "report"]
    selection = json.load(open(os.path.join(run_dir, "selection.json")))["selections"]
    assert sorted(map(sorted, selection[0]["groups"])) == tag_run.load_data(TINY).planted_grouping
    metrics = json.load(open(os.path.join(run_dir, "metrics.json")))
    assert [row["name"] for row in metrics["groupings"]] == ["tag_k3"]
    assert sorted(os.listdir(run_dir)) == ["affinity.json", "config.json", "export", "groups", "metrics.json",
                                           "report", "selection.json", "tensorboard", "train.json"]


def test_tiny_demo_recovers_the_planted_grouping_with_another_seed_too(tmp_path):
    """Seed 0 is the fixture's run; seed 1 (other data, initialisation and shuffling): the affinity
    and select stages alone."""
    config = TINY.replace(seed=1)
    data = tag_run.load_data(config)
    context = stages.Run(config, data, RunDir(str(tmp_path)), False, stages.RunReport())
    stages.affinity_stage(context)
    stages.select_stage(context)
    [grouping] = selection.load_selection(context.dir.selection)[1]
    assert sorted(map(sorted, grouping.groups)) == data.planted_grouping


def test_export_stage_serves_every_task_from_its_tag_network(tiny_run):
    run_dir, _ = tiny_run
    export = json.load(open(os.path.join(run_dir, "export", "export.json")))
    assert [(m["name"], m["version"], m["path"]) for m in export["models"]] == [("tag_k3", 1, "export/tag_k3/1")]
    assert export["models_config"] == "export/models.config"
    config = read_models_config(os.path.join(run_dir, export["models_config"]))
    assert config.model_config_list.config[0].base_path == os.path.abspath(os.path.join(run_dir, "export", "tag_k3"))
    data = tag_run.load_data(TINY)
    names = [t.name for t in data.tasks]
    images = next(iter(data.splits["test"].batch(4)))[0]
    served = tf.saved_model.load(os.path.join(run_dir, "export/tag_k3/1")).signatures["serving_default"](image=images)
    grouping = selection.load_selection(os.path.join(run_dir, "selection.json"))[1][0]
    for task in names:
        group = grouping.served_by(task)
        path = RunDir(run_dir).group_model(names, group)
        logit = keras.saving.load_model(path).predict(images, verbose=0)[task][:, 0]
        np.testing.assert_allclose(served[task].numpy(), tf.sigmoid(logit).numpy(), atol=1e-5)


def test_resume_runs_only_the_missing_stage_and_its_dependents(tiny_run):
    run_dir, _ = tiny_run
    os.remove(os.path.join(run_dir, "selection.json"))
    report = tag_run.run(TINY, run_dir)
    assert report.ran == ["select", "train", "evaluate", "export", "report"] and report.trained == []  # same groups: reused
    first_group = json.load(open(os.path.join(run_dir, "train.json")))["groups"][0]
    shutil.rmtree(os.path.dirname(os.path.join(run_dir, first_group["result"])))
    os.remove(os.path.join(run_dir, "train.json"))
    report = tag_run.run(TINY, run_dir)
    assert report.ran == ["train", "evaluate", "export", "report"] and report.trained == [tuple(first_group["tasks"])]
    assert tag_run.run(TINY, run_dir).ran == []


def test_run_dir_of_other_settings_is_refused(tiny_run):
    run_dir, _ = tiny_run
    with pytest.raises(ValueError, match=r"other settings \(\['epochs'\]\)"):
        tag_run.run(TINY.replace(epochs=4), run_dir)


def test_evaluate_counts_each_task_from_its_serving_network(tmp_path):
    """Metrics from hand-written group results: total error and ΔMTL computed by hand."""
    config = TINY.replace(planted_groups=1, tasks_per_group=3, num_groups=(2,),
                                 baselines=("all_in_one", "single_task", "hoa"))
    names = ["g0_t0", "g0_t1", "g0_t2"]
    run_dir = str(tmp_path)
    accuracy = {("g0_t0", "g0_t1"): {"g0_t0": 0.9, "g0_t1": 0.8}, ("g0_t2",): {"g0_t2": 0.7},
                ("g0_t0",): {"g0_t0": 0.85}, ("g0_t1",): {"g0_t1": 0.75},
                ("g0_t0", "g0_t2"): {"g0_t0": 0.6, "g0_t2": 0.6}, ("g0_t1", "g0_t2"): {"g0_t1": 0.6, "g0_t2": 0.9},
                ("g0_t0", "g0_t1", "g0_t2"): {"g0_t0": 0.8, "g0_t1": 0.8, "g0_t2": 0.8}}
    for group, values in accuracy.items():
        # validation loss 1 - accuracy, so HOA's best k=2 choice is {t0, t1} and {t1, t2}
        write_json_atomic(RunDir(run_dir).group_result(names, group),
                          {"tasks": list(group), "parameters": 10 * len(group), "flops": 100 * len(group), "seconds": 2.0,
                           "test": {t: {"loss": 0.1, "accuracy": a} for t, a in values.items()},
                           "validation": {t: {"loss": 1 - a, "accuracy": a} for t, a in values.items()}})
    write_json_atomic(os.path.join(run_dir, "affinity.json"), {"tasks": names, "seconds": 7.0})
    write_json_atomic(os.path.join(run_dir, "selection.json"), {"tasks": names, "selections": [{
        "groups": [["g0_t0", "g0_t1"], ["g0_t2"]], "assignment": {"g0_t0": 0, "g0_t1": 0, "g0_t2": 1},
        "score": 1.0, "optimal": True, "upper_bound": 1.0, "method": "dp", "seconds": 0.0, "budget": 2}]})
    stages.evaluate_stage(stages.Run(config, tag_run.load_data(config), RunDir(run_dir), False, stages.RunReport()))
    rows = {r["name"]: r for r in json.load(open(os.path.join(run_dir, "metrics.json")))["groupings"]}
    assert rows["tag_k2"]["total_error"] == pytest.approx(10 + 20 + 30)
    assert rows["all_in_one"]["total_error"] == pytest.approx(60)
    assert rows["single_task"]["total_error"] == pytest.approx(15 + 25 + 30)
    # ΔMTL on accuracy (higher is better): mean of (a − a_single)/a_single
    expected = ((0.9 - 0.85) / 0.85 + (0.8 - 0.75) / 0.75 + (0.7 - 0.7) / 0.7) / 3
    assert rows["tag_k2"]["delta_mtl"] == pytest.approx(expected)
    assert rows["tag_k2"]["networks"] == 2 and rows["tag_k2"]["parameters"] == 30
    assert rows["tag_k2"]["inference_flops"] == 300
    assert rows["tag_k2"]["selection_seconds"] == pytest.approx(7.0)
    assert rows["hoa_k2"]["groups"] == [["g0_t0", "g0_t1"], ["g0_t1", "g0_t2"]]
    assert rows["hoa_k2"]["assignment"] == {"g0_t0": 0, "g0_t1": 0, "g0_t2": 1}
    assert rows["hoa_k2"]["total_error"] == pytest.approx(10 + 20 + 10)
    assert rows["hoa_k2"]["selection_seconds"] >= 6 * 2.0  # trained 3 singles and 3 pairs


def test_celeba_sample_preset_loads_the_paper_tasks(celeba_sample):
    config = PRESETS["celeba_sample"].replace(celeba_dir=celeba_sample, image_size=16)
    data = tag_run.load_data(config)
    image, labels = next(iter(data.splits["validation"]))
    assert image.shape == (16, 16, 3) and sorted(labels) == sorted(tag_run.PAPER_CELEBA_TASKS)


def test_evaluate_gives_means_spreads_and_paired_intervals_over_eval_seeds(tmp_path):
    """Two evaluation seeds of hand-written group results: every grouping's mean ± std and the
    paired TAG − baseline interval, computed by hand."""
    config = TINY.replace(planted_groups=1, tasks_per_group=2, num_groups=(1,), baselines=("single_task",),
                          eval_seeds=2)
    names = ["g0_t0", "g0_t1"]
    run_dir = RunDir(str(tmp_path))
    accuracy = {  # seed -> group -> task -> accuracy
        0: {("g0_t0", "g0_t1"): {"g0_t0": 0.9, "g0_t1": 0.8}, ("g0_t0",): {"g0_t0": 0.8}, ("g0_t1",): {"g0_t1": 0.7}},
        1: {("g0_t0", "g0_t1"): {"g0_t0": 0.7, "g0_t1": 0.8}, ("g0_t0",): {"g0_t0": 0.8}, ("g0_t1",): {"g0_t1": 0.8}},
    }
    for seed, groups in accuracy.items():
        for group, values in groups.items():
            write_json_atomic(run_dir.group_result(names, group, seed),
                              {"tasks": list(group), "parameters": 1, "flops": 1, "seconds": 1.0,
                               "test": {t: {"loss": 0.1, "accuracy": a} for t, a in values.items()},
                               "validation": {t: {"loss": 0.1, "accuracy": a} for t, a in values.items()}})
    write_json_atomic(run_dir.affinity, {"tasks": names, "seconds": 3.0})
    write_json_atomic(run_dir.selection, {"tasks": names, "selections": [{
        "groups": [names], "assignment": {"g0_t0": 0, "g0_t1": 0}, "score": 1.0, "optimal": True,
        "upper_bound": 1.0, "method": "dp", "seconds": 0.0, "budget": 1}]})
    stages.evaluate_stage(stages.Run(config, tag_run.load_data(config), run_dir, False, stages.RunReport()))
    metrics = json.load(open(run_dir.metrics))
    rows = {r["name"]: r for r in metrics["groupings"]}
    assert metrics["eval_seeds"] == 2
    # TAG: totals 10 + 20 = 30 and 30 + 20 = 50; single-task: 20 + 30 = 50 and 20 + 20 = 40
    assert rows["tag_k1"]["total_errors"] == pytest.approx([30.0, 50.0])
    assert rows["tag_k1"]["total_error"] == pytest.approx(40.0)
    assert rows["tag_k1"]["total_error_std"] == pytest.approx(np.sqrt(200.0))  # sample std of 30, 50
    assert rows["tag_k1"]["per_task"]["g0_t0"]["accuracy"] == pytest.approx(0.8)
    assert rows["tag_k1"]["per_task_error_std"] == pytest.approx({"g0_t0": np.sqrt(200.0), "g0_t1": 0.0})
    assert rows["single_task"]["total_errors"] == pytest.approx([50.0, 40.0])
    # paired: d = 30 - 50, 50 - 40 = -20, +10; mean -5, std sqrt(450), t(0.975, 1) = 12.7062
    [comparison] = metrics["comparisons"]
    assert (comparison["tag"], comparison["baseline"], comparison["seeds"]) == ("tag_k1", "single_task", 2)
    assert comparison["mean"] == pytest.approx(-5.0)
    half = 12.706204736 * np.sqrt(450.0) / np.sqrt(2)
    assert comparison["interval"] == pytest.approx([-5.0 - half, -5.0 + half])
    assert comparison["beyond_noise"] is False


def test_dense_scenes_preset_runs_every_stage_with_real_dense_metrics(tmp_path):
    """The dense_scenes preset at tiny size: every stage runs; metrics.json's dense metrics equal a
    recomputation from the saved networks on the test split, ΔMTL a hand computation from them; the
    export describes the dense answers; the report shows dense predictions and the summary the metrics."""
    from tag_tf.report.summary import format_summary

    config = PRESETS["dense_scenes"].replace(num_examples=60, tasks=("segmentation", "depth", "colour"),
                                             epochs=1, steps_per_epoch=2, batch_size=8, trunk_filters=4, head_units=4,
                                             num_groups=(2,), baselines=("single_task",))
    run_dir = RunDir(str(tmp_path))
    assert tag_run.run(config, run_dir.path).ran == list(stages.STAGES)
    data = tag_run.load_data(config)
    names = [t.name for t in data.tasks]
    metrics = json.load(open(run_dir.metrics))
    rows = {r["name"]: r for r in metrics["groupings"]}
    [tag] = selection.load_selection(run_dir.selection)[1]
    test = list(data.splits["test"].batch(100))
    [(images, labels)] = test
    for task in ("segmentation", "depth"):
        network = keras.saving.load_model(run_dir.group_model(names, tag.served_by(task)), compile=False)
        predicted = network.predict(images, verbose=0)[task]
        truth = labels[task].numpy()
        if task == "segmentation":
            confusion = np.zeros((4, 4))
            np.add.at(confusion, (truth.ravel(), predicted.argmax(-1).ravel()), 1)
            union = confusion.sum(0) + confusion.sum(1) - np.diag(confusion)
            expected = np.mean(np.diag(confusion)[union > 0] / union[union > 0])
            assert rows["tag_k2"]["per_task"][task]["miou"] == pytest.approx(expected, rel=1e-4)
        else:
            expected = np.sqrt(np.mean((predicted[..., 0] - truth) ** 2))  # every scene pixel has a depth
            assert rows["tag_k2"]["per_task"][task]["rmse"] == pytest.approx(expected, rel=1e-4)
    main = {"segmentation": ("miou", 1), "depth": ("rmse", -1), "colour": ("accuracy", 1)}
    single = rows["single_task"]["per_task"]
    changes = [sign * (rows["tag_k2"]["per_task"][t][m] - single[t][m]) / single[t][m] for t, (m, sign) in main.items()]
    assert rows["tag_k2"]["delta_mtl"] == pytest.approx(np.mean(changes)) and rows["single_task"]["delta_mtl"] == 0
    [comparison] = metrics["comparisons"]  # on ΔMTL, not on a total of %, metres and degrees; one seed
    assert (comparison["measure"], comparison["baseline"], comparison["interval"]) == ("delta_mtl", "single_task", None)
    assert comparison["mean"] == pytest.approx(np.mean(changes))
    spec = json.load(open(tmp_path / "export" / "tag_k2" / "1" / "assets" / "tasks.json"))
    assert [t["output"] for t in spec["tasks"]] == ["pixel_class_probabilities", "pixel_depth", "class_probabilities"]
    page = open(run_dir.report_index, encoding="utf-8").read()
    assert "Dense tasks: ΔMTL is the headline." in page and "Dense tasks (segmentation, depth) left out" in page
    for picture in ("dense_segmentation.png", "dense_depth.png", "saliency_saliency.png"):
        assert f'src="{picture}"' in page and os.path.exists(os.path.join(run_dir.report_dir, picture))
    summary = format_summary(metrics, [tag], data.planted_grouping)
    assert f"tag_k2             {rows['tag_k2']['per_task']['segmentation']['miou']:.4f}" in summary
    assert "ΔMTL vs single-task is the headline" in summary
    assert f"tag_k2 vs single_task  {100 * np.mean(changes):+.2f} (1 seed: no interval)" in summary
    assert f"<td>ΔMTL {100 * np.mean(changes):+.2f}%</td>" in page  # the selection table's test result


def test_select_stage_chooses_from_measured_group_lookaheads(tmp_path):
    """An affinity.json with group lookaheads (mode="group_lookahead"): the select stage scores the
    measured groups, (Z[G→t] − A[t, t]) / (|G| − 1), not pairwise averages."""
    from tag_tf.affinity import TaskAffinity

    config = TINY.replace(planted_groups=1, tasks_per_group=3, num_groups=(1, 2), affinity_mode="group_lookahead")
    names = ["g0_t0", "g0_t1", "g0_t2"]
    run_dir = RunDir(str(tmp_path))
    # pairwise: t0 and t1 help each other most; measured: {t0, t2} scores t0 (3 − 1) / 1 = 2, t2 2;
    # {t0, t1}: 0.5 each; {t0, t1, t2}: t0 (2 − 1) / 2, t1 (1.5 − 1) / 2, t2 (3 − 1) / 2: 0.5 + 0.25 + 1
    matrix = np.array([[1.0, 2.0, 0.0], [2.0, 1.0, 0.0], [0.0, 0.0, 1.0]])
    groups = {("g0_t0", "g0_t1"): {"g0_t0": 1.5, "g0_t1": 1.5}, ("g0_t0", "g0_t2"): {"g0_t0": 3.0, "g0_t2": 3.0},
              ("g0_t1", "g0_t2"): {"g0_t1": 0.0, "g0_t2": 0.0},
              ("g0_t0", "g0_t1", "g0_t2"): {"g0_t0": 2.0, "g0_t1": 1.5, "g0_t2": 3.0}}
    write_json_atomic(run_dir.affinity, TaskAffinity(tasks=tuple(names), matrix=matrix, steps=5,
                                                     group_affinity=groups).to_json())
    stages.select_stage(stages.Run(config, tag_run.load_data(config), run_dir, False, stages.RunReport()))
    k1, k2 = selection.load_selection(run_dir.selection)[1]
    assert k1.groups == (("g0_t0", "g0_t1", "g0_t2"),) and k1.score == pytest.approx(1.75)
    # k = 2: {t0, t2} serves t0 and t2 (2 + 2), {t0, t1} serves t1 (0.5; in {t0, t1, t2} 0.25, alone 0)
    assert sorted(k2.groups) == [("g0_t0", "g0_t1"), ("g0_t0", "g0_t2")]
    assert k2.score == pytest.approx(4.5) and k2.assignment["g0_t1"] == k2.groups.index(("g0_t0", "g0_t1"))


def test_a_group_lookahead_budget_that_cannot_cover_the_tasks_fails_before_training(tmp_path):
    config = TINY.replace(num_groups=(2,), affinity_mode="group_lookahead", affinity_max_group_size=3)
    with pytest.raises(ValueError, match=r"num_groups=2: 2 of the measured groups \(at most 3 tasks each\) cannot "
                                         r"cover the 9 tasks"):
        tag_run.run(config, str(tmp_path / "run"))
    assert not os.path.exists(tmp_path / "run" / "affinity.json")
