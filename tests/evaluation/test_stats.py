"""Spreads and paired intervals on fixed per-seed numbers, against hand computations."""

import math

import pytest

from tag_tf.evaluation import grouped
from tag_tf.evaluation.stats import mean_std, paired_difference


def test_paired_interval_equals_the_hand_computation():
    # TAG and a baseline over the same 4 seeds; differences d = -3, -1, -4, -2
    tag, baseline = [40.0, 42.0, 39.0, 41.0], [43.0, 43.0, 43.0, 43.0]
    d = [-3.0, -1.0, -4.0, -2.0]
    mean = sum(d) / 4  # -2.5
    std = math.sqrt(sum((x - mean) ** 2 for x in d) / 3)  # sqrt(5 / 3)
    t_975_df3 = 3.182446305284263  # Student's t, 97.5% quantile, 3 degrees of freedom (tables: 3.182)
    half = t_975_df3 * std / math.sqrt(4)
    result = paired_difference(tag, baseline)
    assert result.differences == tuple(d) and result.mean == pytest.approx(-2.5)
    assert result.interval == pytest.approx((mean - half, mean + half))
    assert result.interval == pytest.approx((-4.5542, -0.4458), abs=1e-4)
    assert result.beyond_noise  # the interval excludes 0: TAG is better beyond noise


def test_two_seeds_use_the_wide_t_quantile_and_stay_within_noise():
    result = paired_difference([10.0, 12.0], [11.0, 11.0])  # d = -1, +1
    assert result.mean == 0.0
    assert result.interval == pytest.approx((-12.7062, 12.7062), abs=1e-4)  # t(0.975, 1) · std √2 / √2
    assert not result.beyond_noise


def test_one_seed_has_no_spread_and_says_so():
    assert mean_std([3.0]) == (3.0, None)
    result = paired_difference([3.0], [5.0])
    assert result.mean == -2.0 and result.interval is None and not result.beyond_noise
    assert result.to_json()["seeds"] == 1
    assert grouped.format_comparisons([{"tag": "tag_k3", "baseline": "all_in_one", **result.to_json()}]) == [
        ["tag_k3", "all_in_one", "-2.00 (1 seed: no interval)", "trained once: no interval"]]


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="two equally long lists, got 2 and 3 values"):
        paired_difference([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match=r"confidence must be in \(0, 1\), got 95"):
        paired_difference([1.0, 2.0], [1.0, 3.0], confidence=95)
    with pytest.raises(ValueError, match="non-empty list"):
        mean_std([])


def test_combine_seeds_and_random_partitions_by_hand():
    def row(name, accuracies):
        per_task = {"a": {"accuracy": accuracies[0]}, "b": {"accuracy": accuracies[1]}}
        return {"name": name, "per_task": per_task, "total_error": grouped.total_error(per_task), "networks": 1}

    tag = grouped.combine_seeds([row("tag_k1", (0.9, 0.8)), row("tag_k1", (0.8, 0.8)), row("tag_k1", (0.7, 0.8))])
    # totals 30, 40, 50: mean 40, sample std 10; task a's errors 10, 20, 30: std 10; b: 20, 20, 20: std 0
    assert tag["total_errors"] == pytest.approx([30.0, 40.0, 50.0])
    assert (tag["total_error"], tag["total_error_std"]) == pytest.approx((40.0, 10.0))
    assert tag["per_task_error_std"] == pytest.approx({"a": 10.0, "b": 0.0})
    assert grouped.format_task_error(tag, "a") == "20.00 ± 10.00"
    random = [grouped.combine_seeds([row(f"random_k1_seed{p}", acc), row(f"random_k1_seed{p}", acc2)])
              for p, (acc, acc2) in enumerate([((0.5, 0.5), (0.6, 0.6)), ((0.7, 0.7), (0.6, 0.6))])]
    # partition 0: totals 100, 80; partition 1: 60, 80. Per seed means over partitions: 80, 80
    summary = grouped.summarize(random)[0]
    assert summary["name"] == "random_k1" and summary["partitions"] == 2 and summary["eval_seeds"] == 2
    assert summary["total_error"] == pytest.approx(80.0)
    assert summary["total_error_std"] == pytest.approx(math.sqrt((400 + 0 + 400 + 0) / 3))
    assert grouped.format_row(summary)["total_error"] == "80.00 ± 16.33 (2 partitions, 2 seeds each)"


def test_delta_mtl_with_mixed_metric_directions_equals_the_hand_computation():
    from tag_tf.tasks import Task

    tasks = [Task("seg", kind="segmentation", num_classes=4), Task("depth", kind="depth"),
             Task("normals", kind="normals"), Task("edges", kind="edges")]
    single = {"seg": {"miou": 0.50}, "depth": {"rmse": 0.80, "abs_rel": 0.2}, "normals": {"angle_error": 20.0},
              "edges": {"odsf": 0.60}}
    mtl = {"seg": {"miou": 0.55}, "depth": {"rmse": 0.88, "abs_rel": 0.1}, "normals": {"angle_error": 18.0},
           "edges": {"odsf": 0.57}}
    # miou +10% (higher better), rmse +10% worse (lower better) -> -10%, angle -10% -> +10%, odsf -5%
    hand = (10.0 - 10.0 + 10.0 - 5.0) / 4
    assert 100 * grouped.metric_delta_mtl(mtl, single, tasks) == pytest.approx(hand)
    directions = {"seg": False, "depth": True, "normals": True, "edges": False}
    values = {t: next(iter(m.values())) for t, m in mtl.items()}
    alone = {t: next(iter(m.values())) for t, m in single.items()}
    assert 100 * grouped.delta_mtl(values, alone, directions) == pytest.approx(hand)
    with pytest.raises(ValueError, match=r"no metric direction for task\(s\) \['seg'\]"):
        grouped.delta_mtl(values, alone, {"depth": True, "normals": True, "edges": False})
