"""`MultiTaskModel`: a functional Keras model with one head per task that trains with plain `fit()`
and, when given an `AffinityConfig`, measures inter-task affinity (TAG) while it trains.

The model's outputs are a dict keyed by task name. Its training loss is the sum over tasks of
`task.weight * task.loss` (each the mean over that task's labelled examples of the global batch,
see `tag_tf.tasks`), plus any regularisation losses of its layers. Every task's loss and metric
are logged by name: `<task>_loss`, `<task>_accuracy` (or `<task>_mae`), and `val_...`.

Affinity steps (every `every_n_steps` optimizer steps) take, on the same batch and before the
normal update: every task's gradient with respect to the shared trunk (all-reduced across
replicas), the lookahead step Δi of the optimizer's own rule (`tag_tf.affinity`), every task's
loss at θs − Δi through `stateless_call` (training=True; moving statistics from the lookahead
are discarded), and Z[source, target]. Affinity is always computed from the per-task losses
without `Task.weight`, so it means the same whatever the weighting. The running sums live in
model variables: they are checkpointed with the weights (`BackupAndRestore`, `ModelCheckpoint`).

Under a `tf.distribute` strategy every task loss is the global masked mean: each replica sums its
labelled examples' losses and divides by the all-reduced count. Batch normalisation still uses
per-replica batch statistics (as Keras always does), so models with BN differ slightly between
1 and several replicas; models without BN give the same losses, gradients and affinities.

Build one with `tag_tf.models.build_multitask_model`:

>>> import numpy as np
>>> from tag_tf.models import build_multitask_model, mlp_trunk
>>> model = build_multitask_model(mlp_trunk(4, hidden=(8,)), [Task("a"), Task("b")],
...                               affinity=AffinityConfig())
>>> model.compile(optimizer=keras.optimizers.SGD(5e-4, momentum=0.9))
>>> x = np.ones((6, 4), "float32")
>>> y = {"a": np.array([1, 0, 1, 0, 1, -1]), "b": np.array([0, 0, 1, 1, -1, -1])}
>>> history = model.fit(x, y, batch_size=3, epochs=2, verbose=0)
>>> sorted(history.history)
['a_accuracy', 'a_loss', 'b_accuracy', 'b_loss', 'loss']
>>> affinity = model.task_affinity()
>>> affinity.tasks, affinity.matrix.shape, affinity.steps, len(affinity.epochs)
(('a', 'b'), (2, 2), 4, 2)
"""

from __future__ import annotations

import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from tag_tf import affinity as affinity_math
from tag_tf.affinity import AffinityConfig, TaskAffinity, gradient_dot
from tag_tf.balancing import Balancer, EqualWeights, balancer_from_json
from tag_tf.tasks import Task, as_tasks
from tag_tf.viz import affinity_image

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
      affinity: an `AffinityConfig` (or its dict) to measure inter-task affinity during `fit()`;
        None trains plainly, collecting nothing.
      balancer: a `tag_tf.balancing.Balancer` (or its `to_json()` dict) that turns the per-task
        losses into the update; None: `EqualWeights()` (Σ Task.weight · loss).

    Attributes:
      tasks: the tasks.
      affinity_config: the `AffinityConfig`, or None.
      balancer: the `Balancer`.
      shared_layers: the layers shared by all tasks (everything but the input and the heads).
    """

    # The positional arguments match keras' Functional, so Keras saves and revives it as one.
    def __init__(self, inputs, outputs, name=None, *, tasks, affinity=None, balancer=None, **kwargs):
        tasks = as_tasks(Task.from_json(t) if isinstance(t, dict) else t for t in tasks)
        names = [t.name for t in tasks]
        if not isinstance(outputs, dict) or sorted(outputs) != sorted(names):
            keys = sorted(outputs) if isinstance(outputs, dict) else type(outputs).__name__
            raise ValueError(f"outputs must be a dict keyed by the task names {names}, got {keys}.")
        if isinstance(affinity, dict):
            affinity = AffinityConfig.from_json(affinity)
        if balancer is None or isinstance(balancer, dict):
            balancer = balancer_from_json(balancer)
        if not isinstance(balancer, Balancer):
            raise ValueError(f"balancer must be a tag_tf.balancing.Balancer, got {balancer!r}.")
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self.tasks = tasks
        self.affinity_config = affinity
        self.task_loss_trackers = [keras.metrics.Mean(name=f"{t.name}_loss") for t in self.tasks]
        self.task_metrics = [t.make_metric() for t in self.tasks]
        self.balancer = balancer
        balancer.build(self)
        if affinity is not None:
            k = len(tasks)
            state = dict(trainable=False, initializer="zeros", aggregation="only_first_replica")
            self.affinity_total = self.add_weight(shape=(k, k), name="affinity_total", **state)
            self.affinity_count = self.add_weight(shape=(k, k), name="affinity_count", **state)
            self.affinity_skipped = self.add_weight(shape=(), name="affinity_skipped", **state)
            self.affinity_steps = self.add_weight(shape=(), name="affinity_steps", **state)
            # cumulative (total, count) at every epoch boundary, checkpointed with the rest
            self.affinity_marks = self.add_weight(shape=(affinity.max_epochs + 1, 2, k, k),
                                                  name="affinity_marks", **state)
            self.affinity_num_marks = self.add_weight(shape=(), name="affinity_num_marks", **state)

    # -- structure --------------------------------------------------------------------------------

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

    # -- losses -----------------------------------------------------------------------------------

    def task_losses(self, y, y_pred, sample_weight=None) -> dict:
        """{task name: mean loss over its labelled examples}, unweighted by `Task.weight`."""
        return {t.name: t.loss(y[t.name], y_pred[t.name], sample_weight) for t in self.tasks}

    def _task_sums(self, y, y_pred, sample_weight):
        """This replica's per-task (Σ loss over labelled examples, Σ label weights): two [k] vectors."""
        sums, counts = [], []
        for task in self.tasks:
            weights = task.label_mask(y[task.name])
            if sample_weight is not None:
                weights = weights * tf.cast(tf.reshape(sample_weight, [-1]), tf.float32)
            per_example = task.per_example_loss(y[task.name], y_pred[task.name])
            sums.append(tf.reduce_sum(tf.where(weights > 0, per_example * weights, 0.0)))
            counts.append(tf.reduce_sum(weights))
        return tf.stack(sums), tf.stack(counts)

    def _task_weights(self) -> tf.Tensor:
        return tf.constant([t.weight for t in self.tasks], tf.float32)

    def _objective(self, loss_shares):
        """The balancer's objective of this replica's (Task.weight-scaled) task loss shares, plus
        its share of regularisation."""
        return self.balancer.objective(self, self._task_weights() * loss_shares) + self._regularisation()

    def _regularisation(self):
        """This replica's share of the layers' regularisation losses (0 when there are none)."""
        if not self.losses:
            return tf.constant(0.0)
        return tf.add_n([tf.cast(tf.reduce_sum(l), tf.float32) for l in self.losses]) / _num_replicas()

    def _forward(self, x, y, sample_weight, training):
        """Outputs, local sums and counts, global counts, and this replica's task loss shares."""
        y_pred = self(x, training=training)
        sums, counts = self._task_sums(y, y_pred, sample_weight)
        global_counts = _sum_over_replicas(counts)
        return y_pred, sums, counts, global_counts, tf.math.divide_no_nan(sums, global_counts)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Σ_task weight · loss plus regularisation (this replica's share under a strategy)."""
        del x, training
        sums, counts = self._task_sums(y, y_pred, sample_weight)
        return self._objective(tf.math.divide_no_nan(sums, _sum_over_replicas(counts)))

    # -- steps ------------------------------------------------------------------------------------

    def train_step(self, data):
        """The normal update of every parameter from the balancer's objective of the task losses."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        needs = self.balancer.needs_task_gradients
        scale = tf.cast(self.optimizer.scale_loss(1.0), tf.float32)
        with tf.GradientTape(persistent=needs is not None) as tape:
            y_pred, sums, counts, global_counts, shares = self._forward(x, y, sample_weight, training=True)
            objective = self._objective(shares)
            scaled = objective * scale
            if needs == "shared":  # only what the balancer's path below uses
                scaled_regularisation = self._regularisation() * scale
                scaled_shares = tf.unstack(shares * scale)
            elif needs == "last_layer":
                scaled_weighted_shares = tf.unstack(shares * self._task_weights() * scale)
        global_losses = tf.math.divide_no_nan(_sum_over_replicas(sums), global_counts)
        if needs == "shared":  # PCGrad: combine the per-task gradients
            grads = self._combined_gradients(tape, self._per_task_gradients(tape, scaled_shares), scale, scaled,
                                             scaled_regularisation, global_losses)
        else:
            grads = tape.gradient(scaled, self.trainable_variables)
            if needs == "last_layer":  # GradNorm: update the weights from the gradients on one layer
                balanced = self.balancer.balanced_variables(self)
                on_layer = [_gradient(tape, share, balanced) for share in scaled_weighted_shares]
                on_layer = [[g / scale for g in grads_i] for grads_i in _sum_over_replicas(on_layer)]
                self.balancer.combine(self, balanced, on_layer, global_losses, self.optimizer.iterations)
        del tape
        self.optimizer.apply(grads, self.trainable_variables)
        return self._update_logs(y, y_pred, sample_weight, sums, counts, objective, training=True)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y_pred, sums, counts, _, shares = self._forward(x, y, sample_weight, training=False)
        return self._update_logs(y, y_pred, sample_weight, sums, counts, self._objective(shares), training=False)

    def _update_logs(self, y, y_pred, sample_weight, sums, counts, objective, training):
        """Update the loss trackers and metrics; the logs, with the balancer's after training steps."""
        self._loss_tracker.update_state(_sum_over_replicas(objective))
        for tracker, total, count in zip(self.task_loss_trackers, tf.unstack(sums), tf.unstack(counts)):
            tracker.update_state(tf.math.divide_no_nan(total, count), sample_weight=count)
        logs = self.compute_metrics(None, y, y_pred, sample_weight)
        balancer_logs = self.balancer.logs(self)
        if training:
            return {**logs, **balancer_logs}
        return {name: value for name, value in logs.items() if name not in balancer_logs}

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        del x
        for task, metric in zip(self.tasks, self.task_metrics):
            task.update_metric(metric, y[task.name], y_pred[task.name], sample_weight)
        return self.get_metrics_result()

    def affinity_train_step(self, data):
        """`train_step` plus the lookahead affinity of every task pair on this batch."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        shared = self.shared_variables
        scale = tf.cast(self.optimizer.scale_loss(1.0), tf.float32)
        with tf.GradientTape(persistent=True) as tape:
            y_pred, sums, counts, global_counts, shares = self._forward(x, y, sample_weight, training=True)
            objective = self._objective(shares)
            scaled = objective * scale
            scaled_regularisation = self._regularisation() * scale
            scaled_shares = tf.unstack(shares * scale)
        task_grads = self._per_task_gradients(tape, scaled_shares)
        shared_grads = _sum_over_replicas([g[: len(shared)] for g in task_grads])
        shared_grads = [[g / scale for g in per_task] for per_task in shared_grads]
        before = tf.math.divide_no_nan(_sum_over_replicas(sums), global_counts)
        grads = self._combined_gradients(tape, task_grads, scale, scaled, scaled_regularisation, before, shared_grads)
        del tape

        deltas = [affinity_math.lookahead_deltas(self.optimizer, g, shared) for g in shared_grads]
        if self.affinity_config.mode == "exact":
            after = self._lookahead_losses(x, y, sample_weight, shared, deltas, global_counts)
            z = affinity_math.exact_affinity(before, after)
        else:
            dots = tf.stack([
                tf.stack([gradient_dot(shared_grads[j], deltas[i]) for j in range(len(self.tasks))])
                for i in range(len(self.tasks))
            ])
            after = before[None, :] - dots  # the first-order estimate of the lookahead losses
            z = affinity_math.first_order_affinity(before, dots)
        if self.affinity_config.normalize_by_lr:
            z = z / affinity_math.current_learning_rate(self.optimizer)
        valid, skipped = affinity_math.valid_samples(before, after, z, global_counts > 0)
        self.affinity_total.assign_add(tf.where(valid, z, 0.0))
        self.affinity_count.assign_add(tf.cast(valid, tf.float32))
        self.affinity_skipped.assign_add(tf.reduce_sum(tf.cast(skipped, tf.float32)))
        self.affinity_steps.assign_add(1.0)

        self.optimizer.apply(grads, self.trainable_variables)  # after the lookahead read the state
        return self._update_logs(y, y_pred, sample_weight, sums, counts, objective, training=True)

    def _heads(self) -> list[list[keras.Variable]]:
        return [self.get_layer(head_name(t)).trainable_variables for t in self.tasks]

    def _per_task_gradients(self, tape, scaled_shares) -> list[list[tf.Tensor]]:
        """Per task: the gradient of its (unweighted, scaled) loss share on the shared variables and
        its own head's, this replica's."""
        shared, heads = self.shared_variables, self._heads()
        return [_gradient(tape, scaled_shares[i], shared + heads[i]) for i in range(len(self.tasks))]

    def _combined_gradients(self, tape, task_grads, scale, scaled_objective, scaled_regularisation, global_losses,
                            shared_grads=None):
        """Gradients of the scaled objective for every trainable variable, from the per-task ones:
        on the shared variables Σ_i coefficient_i · g_i with the balancer's coefficients, on each
        head its task's weight times its gradient; the balancer's own variables and any
        regularisation straight from the tape.

        `shared_grads`: the per-task gradients on the shared variables summed over replicas and
        unscaled (computed here when not given)."""
        shared, heads = self.shared_variables, self._heads()
        weights = self._task_weights()
        head_coefficients = weights * self.balancer.weights(self)  # read before combine() updates them
        if self.balancer.needs_task_gradients is not None:
            if shared_grads is None:
                shared_grads = _sum_over_replicas([g[: len(shared)] for g in task_grads])
                shared_grads = [[g / scale for g in per_task] for per_task in shared_grads]
            weighted = [[w * g for g in per_task] for w, per_task in zip(tf.unstack(weights), shared_grads)]
        else:
            weighted = None
        shared_coefficients = weights * self.balancer.combine(self, shared, weighted, global_losses,
                                                              self.optimizer.iterations)
        by_variable = {}
        for i, (grads, head) in enumerate(zip(task_grads, heads)):
            coefficients = [shared_coefficients[i]] * len(shared) + [head_coefficients[i]] * len(head)
            for variable, grad, coefficient in zip(shared + head, grads, coefficients):
                by_variable[id(variable)] = by_variable.get(id(variable), 0.0) + coefficient * grad
        variables = self.trainable_variables
        combined = [by_variable.get(id(v), tf.zeros_like(v)) for v in variables]
        own = [i for i, v in enumerate(variables) if id(v) not in by_variable]  # e.g. uncertainty's s_i
        if own:
            for i, grad in zip(own, _gradient(tape, scaled_objective, [variables[i] for i in own])):
                combined[i] = grad
        if self.losses:
            extra = _gradient(tape, scaled_regularisation, variables)
            combined = [c + e if id(v) in by_variable else c for c, e, v in zip(combined, extra, variables)]
        return combined

    def _lookahead_losses(self, x, y, sample_weight, shared, deltas, global_counts):
        """after[i, j]: global mean loss of task j with the trunk at θs − Δi (heads fixed)."""
        non_trainable = [v.value for v in self.non_trainable_variables]
        rows = []
        for delta in deltas:
            step = {id(v): d for v, d in zip(shared, delta)}
            trainable = [v.value - step[id(v)] if id(v) in step else v.value for v in self.trainable_variables]
            outputs, _ = self.stateless_call(trainable, non_trainable, x, training=True)
            rows.append(self._task_sums(y, outputs, sample_weight)[0])
        return tf.math.divide_no_nan(_sum_over_replicas(tf.stack(rows)), global_counts[None, :])

    def make_train_function(self, force=False):
        """Keras' train function, dispatching to the affinity step every `every_n_steps` steps."""
        if self.train_function is not None and not force:
            return self.train_function
        super().make_train_function(force=True)
        if self.affinity_config is None:
            return self.train_function
        self.prepare_affinity()
        if self.steps_per_execution != 1:
            raise ValueError(
                f"Affinity collection needs steps_per_execution=1 in compile(), got {self.steps_per_execution}."
            )
        plain = self.train_function
        lookahead = self._make_function(self.affinity_train_step)  # Keras' own wrapper (strategy.run)
        every = self.affinity_config.every_n_steps

        def train_function(iterator):
            step = int(self.optimizer.iterations.numpy())
            return (lookahead if step % every == 0 else plain)(iterator)

        self.train_function = train_function
        return train_function

    def prepare_affinity(self):
        """Check the optimizer has a lookahead rule and build it (its slots are read before the
        first `apply()`). Called by every training loop before its first affinity step."""
        affinity_math.check_optimizer(self.optimizer)
        if not self.optimizer.built:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)

    # -- results ----------------------------------------------------------------------------------

    def fit(self, *args, callbacks=None, **kwargs):
        """`keras.Model.fit`; with affinity on, it also records per-epoch affinity means."""
        if self.affinity_config is not None:  # first, so other callbacks see the finished epoch
            callbacks = [AffinityEpochs()] + list(callbacks or [])
        return super().fit(*args, callbacks=callbacks, **kwargs)

    def task_affinity(self) -> TaskAffinity:
        """The affinity measured so far: `matrix[source, target]`, per-epoch means, counts."""
        if self.affinity_config is None:
            raise ValueError("This model collects no affinity: build it with affinity=AffinityConfig(...).")
        total, count = self.affinity_total.numpy(), self.affinity_count.numpy()
        marks = self.affinity_marks.numpy()[: int(self.affinity_num_marks.numpy())]
        epochs = tuple(affinity_math.mean_affinity(end[0] - start[0], end[1] - start[1])
                       for start, end in zip(marks[:-1], marks[1:]))
        return TaskAffinity(
            tasks=tuple(t.name for t in self.tasks),
            matrix=affinity_math.mean_affinity(total, count),
            epochs=epochs,
            steps=int(self.affinity_steps.numpy()),
            skipped=int(self.affinity_skipped.numpy()),
        )

    def mark_affinity_epoch(self) -> None:
        """Record the cumulative sums at an epoch boundary (up to `max_epochs` epochs)."""
        index = int(self.affinity_num_marks.numpy())
        if index > self.affinity_config.max_epochs:
            if index == self.affinity_config.max_epochs + 1:
                logging.warning("Per-epoch affinity is kept for %d epochs (AffinityConfig.max_epochs); "
                                "later epochs count in the run's matrix only.", self.affinity_config.max_epochs)
                self.affinity_num_marks.assign(index + 1.0)
            return
        marks = self.affinity_marks.numpy()
        marks[index] = np.stack([self.affinity_total.numpy(), self.affinity_count.numpy()])
        self.affinity_marks.assign(marks)
        self.affinity_num_marks.assign(index + 1.0)

    def get_config(self):
        config = super().get_config()
        config["tasks"] = [t.to_json() for t in self.tasks]
        config["affinity"] = self.affinity_config.to_json() if self.affinity_config else None
        config["balancer"] = self.balancer.to_json()
        return config


class AffinityEpochs(keras.callbacks.Callback):
    """Records the cumulative affinity sums at every epoch boundary, for the per-epoch means.

    `MultiTaskModel.fit` adds it by itself; custom training loops add it to their callbacks.
    """

    def on_epoch_begin(self, epoch, logs=None):
        if not self.model.affinity_num_marks.numpy():
            self.model.mark_affinity_epoch()  # the start of the first epoch

    def on_epoch_end(self, epoch, logs=None):
        self.model.mark_affinity_epoch()


class AffinityLogger(keras.callbacks.Callback):
    """Writes the affinity after every epoch: to `json_path` (atomically) and to TensorBoard.

    TensorBoard (under `log_dir`) gets, per epoch, one scalar per pair `affinity/<source>-><target>`
    (that epoch's mean) and the epoch's matrix as an image `affinity/matrix` (rows: sources,
    columns: targets; red helps, blue hurts).

    >>> logger = AffinityLogger(json_path="runs/demo/affinity.json", log_dir="runs/demo/tensorboard")
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
            for metric in sorted({t.metric_name for t in self.model.tasks}):
                values = [logs[f"{prefix}{t.name}_{metric}"] for t in self.model.tasks
                          if f"{prefix}{t.name}_{metric}" in logs]
                if values:
                    parts.append(f"{prefix}mean_{metric} {sum(values) / len(values):.4f}")
        logging.info(" - ".join(parts))


def _gradient(tape, target, variables) -> list[tf.Tensor]:
    """`tape.gradient` with zeros for the variables `target` does not depend on (TF's own
    unconnected_gradients="zero" fails on Keras variables: it reads their dtype as a string)."""
    grads = tape.gradient(target, variables)
    return [tf.zeros(v.shape, v.dtype) if g is None else g for g, v in zip(grads, variables)]


def _num_replicas() -> int:
    return tf.distribute.get_strategy().num_replicas_in_sync


def _sum_over_replicas(values):
    """All-reduce SUM across replicas (identity without a strategy or outside replica context)."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return values
    return context.all_reduce(tf.distribute.ReduceOp.SUM, values)

