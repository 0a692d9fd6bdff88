"""`MultiTaskModel`: a functional Keras model with one head per task that trains with plain `fit()`.

The model's outputs are a dict keyed by task name. Its training loss is the sum over tasks of
`task.weight * task.loss` (each a mean over that task's labelled examples only, see
`tag_tf.tasks`), plus any regularisation losses of its layers. Every task's loss and metric are
logged by name: `<task>_loss`, `<task>_accuracy` (or `<task>_mae`), and `val_...` for validation.

Build one with `tag_tf.models.build_multitask_model`:

>>> import numpy as np
>>> from tag_tf.models import build_multitask_model, mlp_trunk
>>> model = build_multitask_model(mlp_trunk(4, hidden=(8,)), [Task("a"), Task("b")])
>>> model.compile(optimizer=keras.optimizers.SGD(5e-4, momentum=0.9))
>>> x = np.ones((6, 4), "float32")
>>> y = {"a": np.array([1, 0, 1, 0, 1, -1]), "b": np.array([0, 0, 1, 1, -1, -1])}
>>> history = model.fit(x, y, batch_size=3, epochs=2, verbose=0)
>>> sorted(history.history)
['a_accuracy', 'a_loss', 'b_accuracy', 'b_loss', 'loss']
"""

from __future__ import annotations

import time

import keras
import tensorflow as tf
from absl import logging
from keras import ops

from tag_tf.tasks import Task, as_tasks

HEAD_PREFIX = "head_"


def head_name(task: Task) -> str:
    """Name of the Dense layer that is `task`'s head."""
    return HEAD_PREFIX + task.name


@keras.saving.register_keras_serializable(package="tag_tf")
class MultiTaskModel(keras.Model):
    """A functional model `input -> shared trunk -> {task: head output}` with per-task losses.

    Args:
      inputs, outputs: as for a functional `keras.Model`; `outputs` is a dict keyed by task name.
      name: the model's name.
      tasks: the `Task`s (or their `to_json()` dicts), in the user's order; their names are exactly
        the output keys.

    Attributes:
      tasks: the tasks.
      shared_layers: the layers shared by all tasks (everything but the input and the heads).
    """

    # The positional arguments match keras' Functional, so Keras saves and revives it as one.
    def __init__(self, inputs, outputs, name=None, *, tasks, **kwargs):
        tasks = as_tasks(Task.from_json(t) if isinstance(t, dict) else t for t in tasks)
        names = [t.name for t in tasks]
        if not isinstance(outputs, dict) or sorted(outputs) != sorted(names):
            keys = sorted(outputs) if isinstance(outputs, dict) else type(outputs).__name__
            raise ValueError(f"outputs must be a dict keyed by the task names {names}, got {keys}.")
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self.tasks = tasks
        self.task_loss_trackers = [keras.metrics.Mean(name=f"{t.name}_loss") for t in self.tasks]
        self.task_metrics = [t.make_metric() for t in self.tasks]

    @property
    def shared_layers(self) -> list[keras.layers.Layer]:
        heads = {head_name(t) for t in self.tasks}
        return [
            layer
            for layer in self.layers
            if layer.name not in heads and not isinstance(layer, keras.layers.InputLayer)
        ]

    @property
    def shared_variables(self) -> list[keras.Variable]:
        """Trainable variables of the shared trunk (what the affinity lookahead moves)."""
        return [v for layer in self.shared_layers for v in layer.trainable_variables]

    def task_losses(self, y, y_pred, sample_weight=None) -> dict:
        """{task name: mean loss over its labelled examples}, unweighted by `Task.weight`."""
        return {t.name: t.loss(y[t.name], y_pred[t.name], sample_weight) for t in self.tasks}

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Σ_task weight · loss, plus regularisation; logs every task's loss by name."""
        del x, training
        losses = self.task_losses(y, y_pred, sample_weight)
        total = ops.zeros((), "float32")
        for task, tracker in zip(self.tasks, self.task_loss_trackers):
            labelled = ops.sum(task.label_mask(y[task.name]))
            tracker.update_state(losses[task.name], sample_weight=labelled)
            total = total + task.weight * losses[task.name]
        for extra in self.losses:
            total = total + ops.cast(ops.sum(extra), "float32")
        return _scale_for_replicas(total)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        del x
        for task, metric in zip(self.tasks, self.task_metrics):
            task.update_metric(metric, y[task.name], y_pred[task.name], sample_weight)
        return self.get_metrics_result()

    def get_config(self):
        config = super().get_config()
        config["tasks"] = [t.to_json() for t in self.tasks]
        return config


def _scale_for_replicas(loss):
    """Per-replica loss / replicas: Keras sums gradients over replicas, so this yields the mean."""
    replicas = tf.distribute.get_strategy().num_replicas_in_sync
    return loss / replicas if replicas > 1 else loss


class EpochSummary(keras.callbacks.Callback):
    """Logs one short line per epoch: time, loss, validation loss, mean task metrics.

    Keras' own progress bar prints every task's loss and metric, which for many tasks wraps
    into an unreadable wall; use this with `fit(..., verbose=0)`.
    """

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        parts = [f"epoch {epoch + 1}/{self.params.get('epochs', '?')}", f"{time.time() - self._start:.1f}s"]
        for prefix in ("", "val_"):
            if prefix + "loss" in logs:
                parts.append(f"{prefix}loss {logs[prefix + 'loss']:.4f}")
            for metric in sorted({t.metric_name for t in self.model.tasks}):
                values = [logs[f"{prefix}{t.name}_{metric}"] for t in self.model.tasks
                          if f"{prefix}{t.name}_{metric}" in logs]
                if values:
                    parts.append(f"{prefix}mean_{metric} {sum(values) / len(values):.4f}")
        logging.info(" - ".join(parts))
