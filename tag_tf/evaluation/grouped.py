"""Train and evaluate a grouping: one network per group, each task counted from its serving network.

The measures, as in the TAG paper and Vandenhende et al. (2021):

    error(t)      = 100 · (1 − accuracy(t))        (classification; regression: the MAE itself;
                    dense: 100 · (1 − mIoU), the RMSE, the mean angle error in degrees, 100 · (1 − ODS F))
    total error   = Σ_t error(t)                   (the paper's CelebA measure)
    ΔMTL          = mean_t (−1)^l_t · (M_t − M_single,t) / M_single,t
                    with l_t = 1 when lower is better (error, rmse, angle error), 0 when higher is
                    better (accuracy, mIoU, ODS F); a fraction (×100: the survey's %)

M_t: every task's main metric (`Task.metric_name`: accuracy, MAE, mIoU, RMSE, angle error, ODS F),
as the dense-prediction survey counts it (`metric_delta_mtl`). (Before dense tasks, the pipeline
took ΔMTL over errors, 100·(1 − accuracy): undefined whenever a single-task network is exact.)

Dense tasks. Their errors are in different units (%, metres, degrees), so a total error over them
is dominated by whichever unit is largest: it is kept (every grouping still has one, and it still
orders the groupings of one run's tasks), but the scale-free ΔMTL against the single-task networks
is the headline for a run with a dense task (`headline`): the report and the command line say so.

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

from tag_tf.evaluation.stats import format_interval, mean_std, paired_difference
from tag_tf.tasks import Task, lower_is_better


# The metric a task's error is read from, in order of precedence: True for 100 · (1 − metric) in %.
ERROR_METRICS = {"accuracy": True, "mae": False, "miou": True, "rmse": False, "angle_error": False, "odsf": True}
DENSE_METRICS = ("miou", "rmse", "angle_error", "odsf")


def task_error(metrics: Mapping[str, float]) -> float:
    """Error of one task from its metrics: 100·(1 − accuracy) in %, or the MAE for regression; for
    dense tasks 100·(1 − mIoU), the RMSE, the angle error (degrees) or 100·(1 − ODS F).

    >>> task_error({"loss": 0.3, "rmse": 0.5, "abs_rel": 0.1}), round(task_error({"miou": 0.25}), 6)
    (0.5, 75.0)
    """
    for name, percent in ERROR_METRICS.items():
        if name in metrics:
            return 100.0 * (1.0 - float(metrics[name])) if percent else float(metrics[name])
    raise ValueError(f"No metric to read an error from in task metrics {dict(metrics)}; expected one of "
                     f"{list(ERROR_METRICS)}.")


def headline(metrics: Mapping) -> str:
    """The measure a run's groupings are judged by: "delta_mtl" when a task is dense and ΔMTL was
    measured (metrics.json rows have it: the single_task baseline ran), else "total_error".

    >>> headline({"groupings": [{"per_task": {"d": {"rmse": 1.0}}, "delta_mtl": 0.1}]})
    'delta_mtl'
    """
    rows = metrics["groupings"]
    dense = any(name in m for row in rows[:1] for m in row["per_task"].values() for name in DENSE_METRICS)
    return "delta_mtl" if dense and all("delta_mtl" in row for row in rows) else "total_error"


def total_error(per_task: Mapping[str, Mapping[str, float]]) -> float:
    """Σ over tasks of their error (the paper's CelebA measure)."""
    return sum(task_error(m) for m in per_task.values())


def delta_mtl(values: Mapping[str, float], single: Mapping[str, float],
              lower_is_better: bool | Mapping[str, bool]) -> float:
    """ΔMTL (Vandenhende et al. 2021): the mean relative change of each task's measure against its
    single-task network, signed so that positive is better. `lower_is_better`: one direction for
    every task, or {task: direction} (`tag_tf.tasks.lower_is_better` of each task's metric)."""
    missing = sorted(set(values) ^ set(single))
    if missing:
        raise ValueError(f"ΔMTL needs the same tasks on both sides; unmatched: {missing}.")
    lower = lower_is_better if isinstance(lower_is_better, Mapping) else dict.fromkeys(values, lower_is_better)
    unknown = sorted(set(values) - set(lower))
    if unknown:
        raise ValueError(f"ΔMTL: no metric direction for task(s) {unknown}; given for {sorted(lower)}.")
    zero = sorted(t for t in values if single[t] == 0)
    if zero:
        raise ValueError(f"ΔMTL is undefined: the single-task measure of task(s) {zero} is 0 (a relative change "
                         f"needs a non-zero reference).")
    changes = [(-1.0 if lower[t] else 1.0) * (values[t] - single[t]) / single[t] for t in values]
    return sum(changes) / len(changes)


def metric_delta_mtl(per_task: Mapping[str, Mapping[str, float]], single: Mapping[str, Mapping[str, float]],
                     tasks: Sequence[Task]) -> float:
    """ΔMTL of every task's main metric (`Task.metric_name`: accuracy, mae, miou, rmse,
    angle_error, odsf), each signed by its own direction; `per_task` and `single` are
    {task: {metric: value}} (a network's test metrics, and the single-task networks').

    >>> tasks = [Task("seg", kind="segmentation", num_classes=3), Task("depth", kind="depth")]
    >>> mtl = {"seg": {"miou": 0.44}, "depth": {"rmse": 0.9, "abs_rel": 0.2}}
    >>> alone = {"seg": {"miou": 0.40}, "depth": {"rmse": 1.0, "abs_rel": 0.25}}
    >>> round(100 * metric_delta_mtl(mtl, alone, tasks), 6)   # (+10% + 10%) / 2
    10.0
    """
    main = {t.name: t.metric_name for t in tasks}
    return delta_mtl({t: per_task[t][m] for t, m in main.items()}, {t: single[t][m] for t, m in main.items()},
                     {t: lower_is_better(m) for t, m in main.items()})


def grouping_row(label: str, grouping, results: Mapping[tuple[str, ...], Mapping], tasks: Sequence[str]) -> dict:
    """The measures of a grouping (a row of metrics.json): every task's test metrics from the
    network serving it, total error, networks, parameters, inference FLOPs, time to choose.

    `results`: {group: its network's result.json} for (at least) the grouping's groups.

    >>> from tag_tf.evaluation.baselines import all_in_one
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


def combine_seeds(rows: Sequence[Mapping]) -> dict:
    """One grouping's rows (`grouping_row`), one per evaluation seed, as one row: the measures'
    means, with `eval_seeds`, every seed's total error (`total_errors`) and ΔMTL (`delta_mtls`, when
    measured), the standard deviation of the total error and of each task's error over seeds (None
    when trained once).

    >>> seeds = [{"name": "tag_k2", "per_task": {"a": {"accuracy": 0.9}}, "total_error": 10.0, "delta_mtl": 0.1},
    ...          {"name": "tag_k2", "per_task": {"a": {"accuracy": 0.7}}, "total_error": 30.0, "delta_mtl": 0.3}]
    >>> row = combine_seeds(seeds)
    >>> row["total_error"], round(row["total_error_std"], 4), row["total_errors"], row["eval_seeds"]
    (20.0, 14.1421, [10.0, 30.0], 2)
    >>> round(row["per_task"]["a"]["accuracy"], 6), round(row["per_task_error_std"]["a"], 4), round(row["delta_mtl"], 6)
    (0.8, 14.1421, 0.2)
    >>> row["delta_mtls"]
    [0.1, 0.3]
    """
    row = dict(rows[0])
    totals = [r["total_error"] for r in rows]
    row["total_error"], row["total_error_std"] = mean_std(totals)
    row["total_errors"], row["eval_seeds"] = totals, len(rows)
    tasks = list(rows[0]["per_task"])
    row["per_task"] = {t: {m: float(np.mean([r["per_task"][t][m] for r in rows])) for m in rows[0]["per_task"][t]}
                       for t in tasks}
    row["per_task_error_std"] = {t: mean_std([task_error(r["per_task"][t]) for r in rows])[1] for t in tasks}
    if all("delta_mtl" in r for r in rows):
        row["delta_mtls"] = [r["delta_mtl"] for r in rows]
        row["delta_mtl"] = float(np.mean(row["delta_mtls"]))
    return row


def summarize(rows: Sequence[Mapping]) -> list[dict]:
    """Rows of metrics.json with the random groupings of each budget (partitions "random_k<k>_seed<p>")
    folded into one row ("random_k<k>") holding the mean and standard deviation of the total error
    over every partition and evaluation seed.

    >>> rows = [{"name": "tag_k2", "total_error": 10.0, "networks": 2},
    ...         {"name": "random_k2_seed0", "total_error": 12.0, "networks": 2},
    ...         {"name": "random_k2_seed1", "total_error": 16.0, "networks": 2}]
    >>> [(r["name"], r["total_error"], r.get("total_error_std"), r.get("partitions")) for r in summarize(rows)]
    [('tag_k2', 10.0, None, None), ('random_k2', 14.0, 2.8284271247461903, 2)]
    """
    result, random = [], {}
    for row in rows:
        name = row["name"]
        if name.startswith("random_k") and "_seed" in name:
            random.setdefault(name.split("_seed")[0], []).append(row)
        else:
            result.append(dict(row))
    for name, partitions in random.items():
        errors = [e for r in partitions for e in r.get("total_errors", [r["total_error"]])]
        mean, std = mean_std(errors)
        summary = {"name": name, "total_error": mean, "total_error_std": std, "partitions": len(partitions),
                   "eval_seeds": partitions[0].get("eval_seeds", 1), "networks": partitions[0]["networks"]}
        if all("delta_mtl" in r for r in partitions):
            summary["delta_mtl"] = float(np.mean([r["delta_mtl"] for r in partitions]))
        result.append(summary)
    return result


# Per-seed values of each headline measure in a `combine_seeds` row, and whether lower is better.
SEED_VALUES = {"total_error": ("total_errors", True), "delta_mtl": ("delta_mtls", False)}


def compare_with_baselines(rows: Sequence[Mapping], measure: str = "total_error") -> list[dict]:
    """TAG's grouping at every budget k against each baseline, seed by seed (`combine_seeds` rows):
    the paired difference TAG − baseline of `measure` (`headline`: "total_error", negative when TAG
    is better, or "delta_mtl", a fraction, positive when TAG is better), with its 95% t interval
    (`tag_tf.evaluation.stats.paired_difference`). Baselines: all_in_one, single_task, random_k<k> (each
    seed's mean over the partitions) and hoa_k<k>, those present.

    >>> rows = [{"name": "tag_k2", "total_errors": [10.0, 11.0, 12.0]},
    ...         {"name": "single_task", "total_errors": [12.0, 12.0, 15.0]},
    ...         {"name": "random_k2_seed0", "total_errors": [14.0, 14.0, 14.0]},
    ...         {"name": "random_k2_seed1", "total_errors": [16.0, 12.0, 14.0]}]
    >>> [(c["tag"], c["baseline"], c["mean"], [round(x, 3) for x in c["interval"]]) for c in compare_with_baselines(rows)]
    [('tag_k2', 'single_task', -2.0, [-4.484, 0.484]), ('tag_k2', 'random_k2', -3.0, [-7.303, 1.303])]
    >>> dense = [{"name": "tag_k2", "delta_mtls": [0.02, 0.03]}, {"name": "single_task", "delta_mtls": [0.0, 0.0]}]
    >>> [(c["measure"], round(c["mean"], 6)) for c in compare_with_baselines(dense, "delta_mtl")]
    [('delta_mtl', 0.025)]
    """
    if measure not in SEED_VALUES:
        raise ValueError(f"compare_with_baselines: unknown measure {measure!r}; expected one of {list(SEED_VALUES)}.")
    key = SEED_VALUES[measure][0]
    per_seed = {r["name"]: r[key] for r in rows if "_seed" not in r["name"]}
    for r in rows:
        if r["name"].startswith("random_k") and "_seed" in r["name"]:
            per_seed.setdefault(r["name"].split("_seed")[0], []).append(r[key])
    per_seed = {name: list(np.mean(v, axis=0)) if name.startswith("random_k") else v for name, v in per_seed.items()}
    comparisons = []
    for tag in (name for name in per_seed if name.startswith("tag_k")):
        k = tag[len("tag_k"):]
        for baseline in ("all_in_one", "single_task", f"random_k{k}", f"hoa_k{k}"):
            if baseline in per_seed:
                difference = paired_difference(per_seed[tag], per_seed[baseline])
                comparisons.append({"tag": tag, "baseline": baseline, "measure": measure, **difference.to_json()})
    return comparisons


def comparison_caption(measure: str) -> str:
    """What a paired comparison of `measure` subtracts, and which sign favours TAG.

    >>> print(comparison_caption("delta_mtl"))
    ΔMTL vs single-task (%) of TAG's grouping minus the baseline's (positive: TAG is better)
    """
    if measure == "delta_mtl":
        return "ΔMTL vs single-task (%) of TAG's grouping minus the baseline's (positive: TAG is better)"
    return "total test error of TAG's grouping minus the baseline's (negative: TAG is better)"


def headline_text(row: Mapping | None, measure: str) -> str:
    """A grouping's headline measure as text: "total error 50.33", "ΔMTL +1.60%", or "… n/a".

    >>> headline_text({"total_error": 50.333}, "total_error"), headline_text({"delta_mtl": 0.016}, "delta_mtl")
    ('total error 50.33', 'ΔMTL +1.60%')
    >>> headline_text(None, "delta_mtl")
    'ΔMTL n/a'
    """
    if measure == "delta_mtl":
        return f"ΔMTL {100 * row['delta_mtl']:+.2f}%" if row else "ΔMTL n/a"
    return f"total error {row['total_error']:.2f}" if row else "total error n/a"


def time_to_choose(rows: Sequence[Mapping]) -> list[str]:
    """Sentences comparing TAG's time to choose with HOA's at every budget both have, as a ratio.

    >>> time_to_choose([{"name": "tag_k3", "selection_seconds": 20.0}, {"name": "hoa_k3", "selection_seconds": 500.0}])
    ['k=3: TAG chose in 20.0 s, HOA in 500.0 s: 25.0x faster']
    """
    seconds = {r["name"]: r.get("selection_seconds") for r in rows}
    lines = []
    for name, tag in seconds.items():
        hoa = seconds.get("hoa" + name[len("tag"):]) if name.startswith("tag_k") else None
        if tag and hoa:
            lines.append(f"k={name[len('tag_k'):]}: TAG chose in {tag:.1f} s, HOA in {hoa:.1f} s: {hoa / tag:.1f}x faster")
    return lines


def format_error(mean: float, std: float | None, seeds: int, partitions: int = 0) -> str:
    """A total error with its spread and what it is over; "trained once" without a spread.

    >>> format_error(40.5, None, 1)
    '40.50 (trained once)'
    >>> format_error(40.5, 1.234, 3)
    '40.50 ± 1.23 (3 seeds)'
    >>> format_error(14.0, 2.0, 1, partitions=2)
    '14.00 ± 2.00 (2 partitions, each trained once)'
    """
    text = f"{mean:.2f}" + (f" ± {std:.2f}" if std is not None else "")
    if partitions:
        return text + f" ({partitions} partitions, " + (f"{seeds} seeds each)" if seeds > 1 else "each trained once)")
    return text + (f" ({seeds} seeds)" if seeds > 1 else " (trained once)")


def format_task_error(row: Mapping, task: str) -> str:
    """A task's test error in a row: its mean over seeds, ± its std when trained more than once.

    >>> format_task_error({"per_task": {"a": {"accuracy": 0.8}}, "per_task_error_std": {"a": 1.5}}, "a")
    '20.00 ± 1.50'
    >>> format_task_error({"per_task": {"a": {"accuracy": 0.8}}}, "a")
    '20.00'
    """
    std = row.get("per_task_error_std", {}).get(task)
    return f"{task_error(row['per_task'][task]):.2f}" + (f" ± {std:.2f}" if std is not None else "")


def dense_metric_table(metrics: Mapping) -> tuple[list[str], list[list[str]]]:
    """(header, rows): every metric of every dense task (mIoU, RMSE, abs rel, angle error, ODS F)
    in every named grouping of metrics.json, the mean over seeds; no columns without a dense task.

    >>> dense_metric_table({"tasks": ["a", "d"], "groupings": [
    ...     {"name": "tag_k1", "per_task": {"a": {"accuracy": 0.9}, "d": {"loss": 0.2, "rmse": 0.5, "abs_rel": 0.1}}}]})
    (['grouping', 'd rmse', 'd abs_rel'], [['tag_k1', '0.5000', '0.1000']])
    """
    named = [row for row in metrics["groupings"] if "_seed" not in row["name"]]
    if not named:
        return [], []
    first = named[0]["per_task"]
    columns = [(t, m) for t in metrics["tasks"] if any(d in first[t] for d in DENSE_METRICS)
               for m in first[t] if m != "loss"]
    if not columns:
        return [], []
    return (["grouping"] + [f"{t} {m}" for t, m in columns],
            [[row["name"]] + [f"{row['per_task'][t][m]:.4f}" for t, m in columns] for row in named])


def format_comparisons(comparisons: Sequence[Mapping]) -> list[list[str]]:
    """Rows [TAG, baseline, TAG − baseline (95% interval), verdict] of `compare_with_baselines`;
    ΔMTL differences in percentage points.

    >>> format_comparisons([{"tag": "tag_k2", "baseline": "single_task", "mean": -2.0, "interval": [-4.484, 0.484],
    ...                      "seeds": 3, "beyond_noise": False}])
    [['tag_k2', 'single_task', '-2.00 [-4.48, +0.48]', 'within noise (3 seeds)']]
    >>> format_comparisons([{"tag": "tag_k2", "baseline": "all_in_one", "measure": "delta_mtl", "mean": 0.031,
    ...                      "interval": [0.012, 0.05], "seeds": 3, "beyond_noise": True}])
    [['tag_k2', 'all_in_one', '+3.10 [+1.20, +5.00]', 'TAG better, beyond noise (3 seeds)']]
    """
    rows = []
    for c in comparisons:
        lower_is_better = SEED_VALUES[c.get("measure", "total_error")][1]
        scale = 1.0 if lower_is_better else 100.0
        if c["interval"] is None:
            verdict = "trained once: no interval"
        elif c["beyond_noise"]:
            better = c["mean"] < 0 if lower_is_better else c["mean"] > 0
            verdict = f"TAG {'better' if better else 'worse'}, beyond noise ({c['seeds']} seeds)"
        else:
            verdict = f"within noise ({c['seeds']} seeds)"
        interval = None if c["interval"] is None else [scale * x for x in c["interval"]]
        rows.append([c["tag"], c["baseline"], format_interval(scale * c["mean"], interval), verdict])
    return rows


def format_row(row: Mapping) -> dict[str, str]:
    """The measures of a `summarize` row as text: total error (± std over seeds and random
    partitions), ΔMTL (%), and time to choose (s, "-" when none).

    >>> format_row({"name": "random_k2", "total_error": 14.0, "total_error_std": 2.0, "partitions": 2,
    ...             "eval_seeds": 1, "networks": 2, "delta_mtl": 0.0123})
    {'total_error': '14.00 ± 2.00 (2 partitions, each trained once)', 'delta_mtl': '+1.23%', 'time_to_choose': '-'}
    """
    error = format_error(row["total_error"], row.get("total_error_std"), row.get("eval_seeds", 1),
                         row.get("partitions", 0))
    return {
        "total_error": error,
        "delta_mtl": f"{100 * row['delta_mtl']:+.2f}%" if "delta_mtl" in row else "n/a",
        "time_to_choose": f"{row['selection_seconds']:.1f}" if row.get("selection_seconds") else "-",
    }
