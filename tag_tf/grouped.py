"""Train and evaluate a grouping: one network per group, each task counted from its serving network.

The measures, as in the TAG paper and Vandenhende et al. (2021):

    error(t)      = 100 · (1 − accuracy(t))        (classification; regression: the MAE itself)
    total error   = Σ_t error(t)                   (the paper's CelebA measure)
    ΔMTL          = mean_t (−1)^l_t · (M_t − M_single,t) / M_single,t
                    with l_t = 1 when lower is better (error), 0 when higher is better (accuracy)

>>> round(total_error({"a": {"accuracy": 0.9}, "b": {"accuracy": 0.75}}), 6)
35.0
>>> round(delta_mtl({"a": 10.0, "b": 20.0}, single={"a": 8.0, "b": 25.0}, lower_is_better=True), 4)
-0.025
>>> random_partition(["a", "b", "c", "d"], 2, seed=0)
[('a', 'b', 'd'), ('c',)]
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np


def task_error(metrics: Mapping[str, float]) -> float:
    """Error of one task from its metrics: 100·(1 − accuracy) in %, or the MAE for regression."""
    if "accuracy" in metrics:
        return 100.0 * (1.0 - float(metrics["accuracy"]))
    if "mae" in metrics:
        return float(metrics["mae"])
    raise ValueError(f"No accuracy or mae in task metrics {dict(metrics)}.")


def total_error(per_task: Mapping[str, Mapping[str, float]]) -> float:
    """Σ over tasks of their error (the paper's CelebA measure)."""
    return sum(task_error(m) for m in per_task.values())


def delta_mtl(values: Mapping[str, float], single: Mapping[str, float], lower_is_better: bool) -> float:
    """ΔMTL: the mean relative change of each task's measure against its single-task network,
    signed so that positive is better."""
    missing = sorted(set(values) ^ set(single))
    if missing:
        raise ValueError(f"ΔMTL needs the same tasks on both sides; unmatched: {missing}.")
    sign = -1.0 if lower_is_better else 1.0
    changes = [sign * (values[t] - single[t]) / single[t] for t in values]
    return sum(changes) / len(changes)


def grouping_row(label: str, grouping, results: Mapping[tuple[str, ...], Mapping], tasks: Sequence[str]) -> dict:
    """The measures of a grouping (a row of metrics.json): every task's test metrics from the
    network serving it, total error, networks, parameters, inference FLOPs, time to choose.

    `results`: {group: its network's result.json} for (at least) the grouping's groups.

    >>> from tag_tf.baselines import all_in_one
    >>> results = {("a", "b"): {"test": {"a": {"accuracy": 0.9}, "b": {"accuracy": 0.8}},
    ...                         "parameters": 10, "flops": 40}}
    >>> row = grouping_row("all_in_one", all_in_one(["a", "b"]), results, ["a", "b"])
    >>> round(row["total_error"], 6), row["networks"], row["parameters"]
    (30.0, 1, 10)
    """
    per_task = {t: results[grouping.served_by(t)]["test"][t] for t in tasks}
    return {
        "name": label,
        "groups": [list(g) for g in grouping.groups],
        "assignment": dict(grouping.assignment),
        "per_task": per_task,
        "total_error": total_error(per_task),
        "networks": len(grouping.groups),
        "parameters": sum(results[g]["parameters"] for g in grouping.groups),
        "inference_flops": sum(results[g].get("flops", 0) for g in grouping.groups),
        "selection_seconds": grouping.seconds,
    }


def random_partition(tasks: Sequence[str], num_groups: int, seed: int) -> list[tuple[str, ...]]:
    """A uniformly random assignment of the tasks to min(num_groups, len(tasks)) non-empty groups.

    Groups keep the tasks' order and are ordered by their first task.
    """
    k = min(num_groups, len(tasks))
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.arange(k), rng.integers(0, k, len(tasks) - k)])
    labels = labels[rng.permutation(len(tasks))]
    groups = [tuple(t for t, label in zip(tasks, labels) if label == g) for g in range(k)]
    return sorted(groups, key=lambda g: list(tasks).index(g[0]))


def summarize(rows: Sequence[Mapping]) -> list[dict]:
    """Rows of metrics.json with the random groupings of each budget folded into one row
    ("random_k<k>") holding the mean and standard deviation over seeds.

    >>> rows = [{"name": "tag_k2", "total_error": 10.0, "networks": 2},
    ...         {"name": "random_k2_seed0", "total_error": 12.0, "networks": 2},
    ...         {"name": "random_k2_seed1", "total_error": 16.0, "networks": 2}]
    >>> [(r["name"], r["total_error"], r.get("total_error_std"), r.get("seeds")) for r in summarize(rows)]
    [('tag_k2', 10.0, None, None), ('random_k2', 14.0, 2.0, 2)]
    """
    result, random = [], {}
    for row in rows:
        name = row["name"]
        if name.startswith("random_k") and "_seed" in name:
            random.setdefault(name.split("_seed")[0], []).append(row)
        else:
            result.append(dict(row))
    for name, seeds in random.items():
        errors = np.array([r["total_error"] for r in seeds])
        summary = {"name": name, "total_error": float(errors.mean()), "total_error_std": float(errors.std()),
                   "seeds": len(seeds), "networks": seeds[0]["networks"]}
        if all("delta_mtl" in r for r in seeds):
            summary["delta_mtl"] = float(np.mean([r["delta_mtl"] for r in seeds]))
        result.append(summary)
    return result


def format_row(row: Mapping) -> dict[str, str]:
    """The measures of a `summarize` row as text: total error (± std over seeds), ΔMTL (%), and
    time to choose (s, "-" when none).

    >>> format_row({"name": "random_k2", "total_error": 14.0, "total_error_std": 2.0, "seeds": 2,
    ...             "networks": 2, "delta_mtl": 0.0123})
    {'total_error': '14.00 ± 2.00 (2 seeds)', 'delta_mtl': '+1.23%', 'time_to_choose': '-'}
    """
    error = f"{row['total_error']:.2f}"
    if "seeds" in row:
        error += f" ± {row['total_error_std']:.2f} ({row['seeds']} seeds)"
    return {
        "total_error": error,
        "delta_mtl": f"{100 * row['delta_mtl']:+.2f}%" if "delta_mtl" in row else "n/a",
        "time_to_choose": f"{row['selection_seconds']:.1f}" if row.get("selection_seconds") else "-",
    }
