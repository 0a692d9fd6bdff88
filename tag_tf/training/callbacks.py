"""Callbacks of multi-task training: per-epoch affinity marks, the steps that collected affinity,
affinity files and TensorBoard scalars, and a one-line-per-epoch summary.

>>> EpochSummary(every_seconds=30).every_seconds
30
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging


class AffinityEpochs(keras.callbacks.Callback):
    """Records the cumulative affinity sums at every epoch boundary, for the per-epoch means, and
    tells the adaptive schedule where this training run ends (`AffinitySchedule.plan`): at its
    first epoch `e` of `epochs`, the optimizer iteration then plus (epochs − e) × steps per epoch,
    when the loop knows the steps. A run resumed by `BackupAndRestore` at an epoch boundary plans
    the same end as the uninterrupted one; `fit(initial_epoch=e, epochs=e + 1)` plans one epoch.

    `MultiTaskModel.fit` and `fit_distributed` add it by themselves; custom training loops add it
    to their callbacks.
    """

    def on_train_begin(self, logs=None):
        self._planned = False

    def on_epoch_begin(self, epoch, logs=None):
        if not getattr(self, "_planned", False):
            epochs, steps = self.params.get("epochs"), self.params.get("steps")
            iteration = int(self.model.optimizer.iterations.numpy())
            self.model.affinity_schedule.plan(iteration + (epochs - epoch) * steps if epochs and steps else None)
            self._planned = True
        if not self.model.affinity_accumulator.started:
            self.model.affinity_accumulator.mark_epoch()  # the start of the first epoch

    def on_epoch_end(self, epoch, logs=None):
        self.model.affinity_accumulator.mark_epoch()


class AffinitySteps(keras.callbacks.Callback):
    """Records the optimizer iterations whose step collected affinity (`steps`), e.g. to see where
    the adaptive schedule (`AffinityConfig(every_n_steps="auto")`) sampled.

    >>> import numpy as np
    >>> from tag_tf.affinity import AffinityConfig
    >>> from tag_tf.models import build_multitask_model, mlp_trunk
    >>> model = build_multitask_model(mlp_trunk(2, hidden=(4,)), ["a", "b"], affinity=AffinityConfig(every_n_steps=2))
    >>> model.compile(optimizer="sgd")
    >>> recorder = AffinitySteps()
    >>> x, y = np.ones((8, 2), "float32"), {"a": np.array([0, 1] * 4), "b": np.array([1, 1, 0, 0] * 2)}
    >>> _ = model.fit(x, y, batch_size=2, epochs=1, verbose=0, callbacks=[recorder])
    >>> recorder.steps
    [0, 2]
    """

    def __init__(self):
        super().__init__()
        self.steps = []
        self._before = 0.0

    def on_train_batch_begin(self, batch, logs=None):
        self._before = float(self.model.affinity_accumulator.steps.numpy())

    def on_train_batch_end(self, batch, logs=None):
        if float(self.model.affinity_accumulator.steps.numpy()) > self._before:
            self.steps.append(int(self.model.optimizer.iterations.numpy()) - 1)


class AffinityLogger(keras.callbacks.Callback):
    """Writes the affinity after every epoch: to `json_path` (atomically) and to TensorBoard.

    TensorBoard (under `log_dir`) gets, per epoch, one scalar per pair `affinity/<source>-><target>`
    (that epoch's mean) and the epoch's matrix as an image `affinity/matrix` (rows: sources,
    columns: targets; red helps, blue hurts).

    >>> import numpy as np, os, tempfile
    >>> from tag_tf.affinity import AffinityConfig, TaskAffinity
    >>> from tag_tf.models import build_multitask_model, mlp_trunk
    >>> model = build_multitask_model(mlp_trunk(2, hidden=(4,)), ["a", "b"], affinity=AffinityConfig())
    >>> model.compile(optimizer="sgd")
    >>> path = os.path.join(tempfile.mkdtemp(), "affinity.json")
    >>> x, y = np.ones((4, 2), "float32"), {"a": np.array([0, 1, 0, 1]), "b": np.array([1, 1, 0, 0])}
    >>> _ = model.fit(x, y, batch_size=2, epochs=2, verbose=0, callbacks=[AffinityLogger(json_path=path)])
    >>> TaskAffinity.from_json(path).steps          # written after every epoch
    4
    """

    def __init__(self, json_path: str | None = None, log_dir: str | None = None):
        super().__init__()
        self.json_path = json_path
        self.log_dir = log_dir
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        result = self.model.task_affinity()
        if self.json_path:
            result.to_json(self.json_path)
        if self.log_dir and result.epochs:
            if self._writer is None:
                self._writer = tf.summary.create_file_writer(self.log_dir)
            from tag_tf.report.pictures import affinity_image  # matplotlib, only where a picture is drawn

            matrix = result.epochs[-1]
            with self._writer.as_default(step=epoch):
                for i, source in enumerate(result.tasks):
                    for j, target in enumerate(result.tasks):
                        if np.isfinite(matrix[i, j]):
                            tf.summary.scalar(f"affinity/{source}->{target}", matrix[i, j])
                tf.summary.image("affinity/matrix", affinity_image(matrix)[None])
            self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class EpochSummary(keras.callbacks.Callback):
    """Logs one short line per epoch (time, loss, validation loss, mean task metrics), and a
    progress line every `every_seconds` within long epochs.

    Keras' own progress bar prints every task's loss and metric, which for many tasks wraps
    into an unreadable wall; use this with `fit(..., verbose=0)`.
    """

    def __init__(self, every_seconds: float = 60.0):
        super().__init__()
        self.every_seconds = every_seconds

    def on_epoch_begin(self, epoch, logs=None):
        self._start = self._last = time.time()
        self._epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if time.time() - self._last >= self.every_seconds:
            self._last = time.time()
            steps = self.params.get("steps") or "?"
            logging.info("epoch %d/%s: step %d/%s, %.0fs", self._epoch + 1, self.params.get("epochs", "?"),
                         batch + 1, steps, self._last - self._start)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        parts = [f"epoch {epoch + 1}/{self.params.get('epochs', '?')}", f"{time.time() - self._start:.1f}s"]
        for prefix in ("", "val_"):
            if prefix + "loss" in logs:
                parts.append(f"{prefix}loss {logs[prefix + 'loss']:.4f}")
            for metric in sorted({m for t in self.model.tasks for m in t.metric_names}):
                values = [logs[f"{prefix}{t.name}_{metric}"] for t in self.model.tasks
                          if f"{prefix}{t.name}_{metric}" in logs]
                if values:
                    parts.append(f"{prefix}mean_{metric} {sum(values) / len(values):.4f}")
        logging.info(" - ".join(parts))
