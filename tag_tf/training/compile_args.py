"""Keras' `compile(loss=..., loss_weights=..., metrics=...)` for a multi-task model: one value for
every task, or a dict keyed by task name (Keras' convention for dict outputs).

- `loss`: a Keras loss (name, `keras.losses.Loss`, or function of (targets, outputs)) that
  replaces the `Task`'s own loss; it is taken per example, so that missing labels and sample
  weights are masked out as for the Task's own loss.
- `loss_weights`: a factor of each task's loss, on top of `Task.weight`.
- `metrics`: extra Keras metrics per task, logged as `<task>_<metric>` (and `val_...`).

>>> per_task({"a": 2.0}, ["a", "b"], "loss_weights", default=1.0)
{'a': 2.0, 'b': 1.0}
>>> [m.name for m in task_metrics(["AUC", keras.metrics.Precision(name="p")], "click")]
['click_auc', 'click_p']
"""

from __future__ import annotations

from typing import Sequence

import keras
import tensorflow as tf


def per_task(value, tasks: Sequence[str], what: str, default=None) -> dict:
    """{task: value}: a dict keyed by task names (the others get `default`), or one value for all.

    >>> per_task("mse", ["a", "b"], "loss")
    {'a': 'mse', 'b': 'mse'}
    """
    if isinstance(value, dict):
        unknown = sorted(set(value) - set(tasks))
        if unknown:
            raise ValueError(f"compile({what}=...) names unknown task(s) {unknown}; the tasks are {list(tasks)}.")
        return {t: value.get(t, default) for t in tasks}
    if isinstance(value, (list, tuple)) and what in ("loss", "loss_weights"):
        raise ValueError(f"compile({what}=...) for a multi-task model takes a dict keyed by task name "
                         f"({list(tasks)}) or one value for every task, not a {type(value).__name__}.")
    return {t: default if value is None else value for t in tasks}


def per_example_loss(loss):
    """A function (targets, outputs) -> loss of every example [B], from a Keras loss name, Loss
    object or function (None stays None: the Task's own loss).

    >>> fn = per_example_loss("mse")
    >>> fn(tf.constant([[1.0], [0.0]]), tf.constant([[0.0], [0.0]])).numpy().tolist()
    [1.0, 0.0]
    """
    if loss is None:
        return None
    if isinstance(loss, keras.losses.Loss):
        return loss.call  # unreduced, one value per example
    function = keras.losses.get(loss)
    if function is None:
        raise ValueError(f"Unknown loss {loss!r}: give a Keras loss name, a keras.losses.Loss or a function.")
    if isinstance(function, keras.losses.Loss):
        return function.call
    return function


def task_metrics(metrics, task: str) -> list[keras.metrics.Metric]:
    """Fresh Keras metrics for `task`, each named `<task>_<metric name>`, from names, classes,
    instances or functions (None: none)."""
    result = []
    for metric in metrics or ():
        if isinstance(metric, type):
            metric = metric()
        name = metric.lower() if isinstance(metric, str) else None  # as Keras logs "AUC": auc
        if not isinstance(metric, keras.metrics.Metric):
            resolved = keras.metrics.get(metric)
            if not isinstance(resolved, keras.metrics.Metric):  # a function of (targets, outputs)
                result.append(keras.metrics.MeanMetricWrapper(resolved, name=f"{task}_{name or resolved.__name__}"))
                continue
            metric = resolved
        config = metric.get_config()
        config["name"] = f"{task}_{name or metric.name}"
        result.append(type(metric).from_config(config))
    return result
