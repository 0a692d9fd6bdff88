"""`MultiTaskModel`: a functional Keras model with one head per task that trains with plain `fit()`
and, when given an `AffinityConfig`, measures inter-task affinity (TAG) while it trains.

The model's outputs are a dict keyed by task name. Its training objective is the balancer's
(`tag_tf.balancing`; by default Σ over tasks of `task.weight * task.loss`, each the mean over that
task's labelled examples of the global batch, or over its valid pixels for a dense task, see
`tag_tf.tasks`), plus any regularisation losses of its layers. Every task's loss and metrics are
logged by name: `<task>_loss`, `<task>_<metric>` for each of `Task.metric_names` (accuracy, mae,
miou, rmse and abs_rel, angle_error, odsf), and `val_...`.

There is one training step, `train_step(data, collect_affinity)`. On an affinity step (as
`AffinityConfig.every_n_steps` says, adaptively by default: `tag_tf.training.schedule`) it takes,
on the same batch and before the update: every task's gradient with respect to the shared trunk
(all-reduced across replicas), the lookahead step Δi of the optimizer's own rule
(`tag_tf.affinity.lookahead`), every task's loss at θs − Δi through `stateless_call`
(training=True; moving statistics from the lookahead are discarded), and Z[source, target]. Affinity is always computed from the per-task
losses without `Task.weight`, so it means the same whatever the weighting; the per-task
gradients it needs are reused for the update. The running sums and variances and the schedule's
state live in model variables (`AffinityAccumulator`, `AffinitySchedule`): they are checkpointed
with the weights.

Under a `tf.distribute` strategy every task loss is the global masked mean: each replica sums its
labelled examples' losses and divides by the all-reduced count. Batch normalisation still uses
per-replica batch statistics (as Keras always does), so models with BN differ slightly between
1 and several replicas; models without BN give the same losses, gradients and affinities.

Build one with `tag_tf.models.build_multitask_model`:

>>> import numpy as np
>>> from tag_tf.models import build_multitask_model, mlp_trunk
>>> model = build_multitask_model(mlp_trunk(4, hidden=(8,)), [Task("a"), Task("b")],
...                               affinity=AffinityConfig(every_n_steps=1))
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

import keras
import numpy as np
import tensorflow as tf
from keras.src.trainers.trainer import model_supports_jit  # the rule Keras' jit_compile="auto" applies

from tag_tf import affinity as affinity_lib
from tag_tf.tasks import dense
from tag_tf.affinity import AffinityAccumulator, AffinityConfig, TaskAffinity
from tag_tf.balancing import BalanceInputs, Balancer, balancer_from_json
from tag_tf.utils.gradients import gradient_dot, num_replicas, sum_over_replicas, tape_gradient
from tag_tf.tasks import Task, as_tasks
from tag_tf.training.callbacks import AffinityEpochs
from tag_tf.training.compile_args import per_example_loss, per_task, task_metrics
from tag_tf.training.roles import VariableRoles
from tag_tf.training.schedule import AffinitySchedule

@keras.saving.register_keras_serializable(package="tag_tf")
class MultiTaskModel(keras.Model):
    """A functional multi-task model `inputs -> {task: output}` with per-task losses; build one with
    `tag_tf.models.wrap` (any Keras model with dict outputs) or `build_multitask_model`.

    Which variables are shared (θs, what the affinity lookahead moves) and which belong to one task
    (θt, fixed in the lookahead) is read from the model's own structure (`tag_tf.training.roles`)
    when it is built, never from layer names; `variable_roles()` shows it.

    Args:
      inputs, outputs: as for a functional `keras.Model` (inputs may be a dict of named inputs);
        `outputs` is a dict keyed by task name.
      name: the model's name.
      tasks: the `Task`s (or their `to_json()` dicts), in the user's order; their names are exactly
        the output keys.
      shared_variables: the variables (or their paths) to take as shared instead of those two or
        more tasks' outputs depend on; None: from the model's structure.
      affinity: an `AffinityConfig` (or its dict) to measure inter-task affinity during `fit()`;
        None trains plainly, collecting nothing.
      balancer: a `tag_tf.balancing.Balancer` (or its `to_json()` dict) that turns the per-task
        losses into the update; None: `EqualWeights()` (Σ Task.weight · loss). The model builds
        its own copy.

    Attributes:
      tasks: the tasks.
      affinity_config: the `AffinityConfig`, or None.
      affinity_accumulator: the `AffinityAccumulator` holding the sums, or None.
      affinity_schedule: the `AffinitySchedule` deciding which steps collect affinity.
      balancer: the model's `Balancer` (with its state).
      roles: the `VariableRoles`: shared, per task, unused.
    """

    # The positional arguments match keras' Functional, so Keras saves and revives it as one.
    def __init__(self, inputs, outputs, name=None, *, tasks, affinity=None, balancer=None, shared_variables=None,
                 **kwargs):
        tasks = as_tasks(Task.from_json(t) if isinstance(t, dict) else t for t in tasks)
        names = [t.name for t in tasks]
        if not isinstance(outputs, dict) or sorted(outputs) != sorted(names):
            keys = sorted(outputs) if isinstance(outputs, dict) else type(outputs).__name__
            raise ValueError(f"outputs must be a dict keyed by the task names {names}, got {keys}.")
        if isinstance(affinity, dict):
            affinity = AffinityConfig.from_json(affinity)
        if isinstance(balancer, Balancer):
            balancer = balancer.to_json()
        elif balancer is not None and not isinstance(balancer, dict):
            raise ValueError(f"balancer must be a tag_tf.balancing.Balancer, got {balancer!r}.")
        for task in tasks:
            task.check_output_shape(outputs[task.name].shape)
        super().__init__(inputs=inputs, outputs=outputs, name=name, **kwargs)
        self.tasks = tasks
        self.task_output_shapes = {t: tuple(outputs[t].shape) for t in names}
        self.roles = VariableRoles.of(self, names, shared_variables)
        self._shared_override = None if shared_variables is None else [v.path for v in self.roles.shared]
        if affinity is not None and not self.roles.shared:
            raise ValueError(f"No variable of the model is shared by two or more of the tasks {names}: there is no "
                             f"inter-task affinity to measure (variable roles: {self.roles.summary()}).")
        self.affinity_config = affinity
        self.task_loss_trackers = [keras.metrics.Mean(name=f"{t.name}_loss") for t in self.tasks]
        self.task_metrics = [m for t in self.tasks for m in t.make_metrics()]  # task by task
        self.compiled_task_metrics = {t: [] for t in names}  # compile(metrics=...)
        self._loss_functions = {t: None for t in names}  # compile(loss=...); None: the Task's own
        self._loss_weights = {t: 1.0 for t in names}  # compile(loss_weights=...)
        self.balancer = balancer_from_json(balancer)
        self.balancer.build(self)
        self.balancer_metrics = self.balancer.metrics  # tracked, so that Keras resets them every epoch
        self.affinity_accumulator = None
        self.affinity_groups = ()
        if affinity is not None:
            if affinity.mode == "group_lookahead":
                self.affinity_groups = affinity_lib.candidate_groups(affinity, names)
            self.affinity_accumulator = AffinityAccumulator(names, affinity.max_epochs, affinity.bootstrap_blocks,
                                                            self.affinity_groups)
            self.affinity_accumulator.build(self)
        self.affinity_schedule = AffinitySchedule(affinity)
        self.affinity_schedule.build(self)

    # -- structure --------------------------------------------------------------------------------

    @property
    def shared_layers(self) -> list[keras.layers.Layer]:
        """The model's layers (top level) whose trainable variables are all shared."""
        shared = {id(v) for v in self.roles.shared}
        return [layer for layer in self.layers
                if layer.trainable_variables and all(id(v) in shared for v in layer.trainable_variables)]

    @property
    def shared_variables(self) -> list[keras.Variable]:
        """The shared trainable variables θs (what the affinity lookahead moves)."""
        return self.roles.shared

    def task_variables(self) -> list[list[keras.Variable]]:
        """Per task, in task order, the trainable variables only its output depends on (θt)."""
        return [self.roles.own[t.name] for t in self.tasks]

    def variable_roles(self) -> dict[str, list[str]]:
        """{"shared": variable paths, <task>: the paths of its own variables, ..., "unused": ...}."""
        return self.roles.summary()

    # -- losses -----------------------------------------------------------------------------------

    def task_losses(self, y, y_pred, sample_weight=None) -> dict:
        """{task name: mean loss over its labelled (and weighted) examples}, unweighted by
        `Task.weight` (this replica's examples)."""
        sums, counts = self._task_sums(y, y_pred, sample_weight)
        return dict(zip([t.name for t in self.tasks], tf.unstack(tf.math.divide_no_nan(sums, counts))))

    def compile(self, optimizer="rmsprop", loss=None, loss_weights=None, metrics=None, **kwargs):
        """Keras' `compile`; `loss`, `loss_weights` and `metrics` are one value for every task or a
        dict keyed by task name (`tag_tf.training.compile_args`): a loss replaces the Task's own
        (still masked and weighted per example), loss weights multiply `Task.weight`, metrics are
        logged as `<task>_<metric>`. Other arguments go to Keras."""
        names = [t.name for t in self.tasks]
        weights = per_task(loss_weights, names, "loss_weights", default=1.0)
        bad = {t: w for t, w in weights.items() if not isinstance(w, (int, float)) or not w >= 0}
        if bad:
            raise ValueError(f"compile(loss_weights=...): weights must be numbers >= 0, got {bad}.")
        self._loss_functions = {t: per_example_loss(fn) for t, fn in per_task(loss, names, "loss").items()}
        self._loss_weights = {t: float(w) for t, w in weights.items()}
        self.compiled_task_metrics = {t: task_metrics(m, t) for t, m in per_task(metrics, names, "metrics").items()}
        super().compile(optimizer=optimizer, **kwargs)
        self._task_compile_args = {"loss": loss, "loss_weights": loss_weights, "metrics": metrics}

    def get_compile_config(self) -> dict:
        """Keras' compile config plus the per-task `loss`, `loss_weights` and `metrics`, so that
        `keras.models.load_model` compiles the loaded model as this one was."""
        config = super().get_compile_config()
        if config:
            config.update(keras.saving.serialize_keras_object(self._task_compile_args))
        return config

    def compile_from_config(self, config: dict) -> None:
        """Compile from `get_compile_config()`'s output (what `keras.models.load_model` calls)."""
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)  # so that the saved optimizer state loads

    def _per_example_loss(self, task: Task, labels, outputs):
        function = self._loss_functions[task.name]
        if function is None:
            return task.per_example_loss(labels, outputs)
        return tf.cast(function(task.targets(labels), outputs), tf.float32)

    def _task_sums(self, y, y_pred, sample_weight):
        """This replica's per-task (Σ loss over labelled examples, Σ example weights): two [k] vectors.
        For a dense task the examples are its valid pixels, so the count is theirs (weighted)."""
        sums, counts = [], []
        for task in self.tasks:
            if task.is_dense:  # statically, when the step is traced: before any training
                dense.check_shapes(task, y[task.name].shape, y_pred[task.name].shape)
            weights = task.example_weights(y[task.name], sample_weight)
            per_example = tf.reshape(self._per_example_loss(task, y[task.name], y_pred[task.name]), tf.shape(weights))
            sums.append(tf.reduce_sum(tf.where(weights > 0, per_example * weights, 0.0)))
            counts.append(tf.reduce_sum(weights))
        return tf.stack(sums), tf.stack(counts)

    def _task_weights(self) -> tf.Tensor:
        """Task.weight times compile's loss weight, per task."""
        return tf.constant([t.weight * self._loss_weights[t.name] for t in self.tasks], tf.float32)

    def _regularisation(self):
        """This replica's share of the layers' regularisation losses (0 when there are none)."""
        if not self.losses:
            return tf.constant(0.0)
        return tf.add_n([tf.cast(tf.reduce_sum(l), tf.float32) for l in self.losses]) / num_replicas()

    def _objective(self, loss_shares):
        """The balancer's objective of this replica's (Task.weight-scaled) task loss shares, plus
        its share of regularisation."""
        return self.balancer.objective(self._task_weights() * loss_shares) + self._regularisation()

    def _forward(self, x, y, sample_weight, training):
        """Outputs, local sums and counts, global counts, and this replica's task loss shares."""
        y_pred = self(x, training=training)
        sums, counts = self._task_sums(y, y_pred, sample_weight)
        global_counts = sum_over_replicas(counts)
        return y_pred, sums, counts, global_counts, tf.math.divide_no_nan(sums, global_counts)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        """Σ_task weight · loss plus regularisation (this replica's share under a strategy)."""
        del x, training
        sums, counts = self._task_sums(y, y_pred, sample_weight)
        return self._objective(tf.math.divide_no_nan(sums, sum_over_replicas(counts)))

    # -- the step ---------------------------------------------------------------------------------

    def train_step(self, data, collect_affinity: bool = False):
        """One update of every parameter, from the balancer's combination of the task losses; with
        `collect_affinity`, first the lookahead affinity of every task pair on this batch."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        shared = self.shared_variables
        balanced = self.balancer.task_gradient_variables(self)
        per_task_on = _union(shared, balanced) if collect_affinity else balanced
        scale = tf.cast(self.optimizer.scale_loss(1.0), tf.float32)
        with tf.GradientTape(persistent=bool(per_task_on)) as tape:
            y_pred, sums, counts, global_counts, shares = self._forward(x, y, sample_weight, training=True)
            objective = self._objective(shares)
            scaled_objective = objective * scale
            scaled_shares = tf.unstack(shares * scale)
            scaled_regularisation = self._regularisation() * scale if self.losses else None
        losses = tf.math.divide_no_nan(sum_over_replicas(sums), global_counts)
        task_grads = self._task_gradients(tape, scaled_shares, per_task_on, scale) if per_task_on else None
        if collect_affinity:
            self._collect_affinity(x, y, sample_weight, task_grads.on(shared), losses, global_counts)
        weights = self._task_weights()
        own_coefficients = weights * self.balancer.weights()  # read before combine() updates them
        on_balanced = [[w * g for g in per_task] for w, per_task in zip(tf.unstack(weights), task_grads.on(balanced))] \
            if balanced else None
        shared_coefficients = weights * self.balancer.combine(
            BalanceInputs(losses=losses, variables=balanced, task_gradients=on_balanced, step=self.optimizer.iterations))
        if task_grads is not None and task_grads.combinable:
            grads = self._combined_gradients(tape, task_grads, shared_coefficients, own_coefficients, scaled_objective,
                                             scaled_regularisation)
        else:
            grads = tape.gradient(scaled_objective, self.trainable_variables)
        del tape
        self.optimizer.apply(grads, self.trainable_variables)  # after the lookahead read the optimizer's state
        return self._update_logs(y, y_pred, sample_weight, sums, counts, objective, training=True)

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        y_pred, sums, counts, _, shares = self._forward(x, y, sample_weight, training=False)
        return self._update_logs(y, y_pred, sample_weight, sums, counts, self._objective(shares), training=False)

    def _update_logs(self, y, y_pred, sample_weight, sums, counts, objective, training):
        """Update the loss trackers and metrics; the logs, with the balancer's after training steps."""
        self._loss_tracker.update_state(sum_over_replicas(objective))
        for tracker, total, count in zip(self.task_loss_trackers, tf.unstack(sums), tf.unstack(counts)):
            tracker.update_state(tf.math.divide_no_nan(total, count), sample_weight=count)
        logs = self.compute_metrics(None, y, y_pred, sample_weight)
        balancer_logs = self.balancer.logs()
        if training:
            return {**logs, **balancer_logs}
        return {name: value for name, value in logs.items() if name not in balancer_logs}

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        del x
        owners = [t for t in self.tasks for _ in t.metric_names]
        for task, metric in [*zip(owners, self.task_metrics),
                             *((t, m) for t in self.tasks for m in self.compiled_task_metrics[t.name])]:
            task.update_metric(metric, y[task.name], y_pred[task.name], sample_weight)
        return self.get_metrics_result()

    def _task_gradients(self, tape, scaled_shares, variables, scale) -> "_TaskGradients":
        """Every task's gradient on `variables` (and, when they hold every shared variable, on its
        own variables too, so that the update can be combined from them)."""
        combinable = _covers(variables, self.shared_variables)
        own = self.task_variables() if combinable else [[] for _ in self.tasks]
        local = [tape_gradient(tape, share, variables + own_i) for share, own_i in zip(scaled_shares, own)]
        n = len(variables)
        summed = sum_over_replicas([g[:n] for g in local])
        return _TaskGradients(variables, own if combinable else None, local,
                              [[g / scale for g in per_task] for per_task in summed])

    def _combined_gradients(self, tape, task_grads, shared_coefficients, own_coefficients, scaled_objective,
                            scaled_regularisation):
        """Gradients of every trainable variable from the per-task ones: on the shared variables
        Σ_i shared_coefficient_i · g_i, on each task's own variables its coefficient times its
        gradient; the balancer's own variables and any regularisation straight from the tape."""
        by_variable = {}
        variables = task_grads.variables
        for i, (grads, own) in enumerate(zip(task_grads.local, task_grads.own)):
            coefficients = [shared_coefficients[i]] * len(variables) + [own_coefficients[i]] * len(own)
            for variable, grad, coefficient in zip(variables + own, grads, coefficients):
                by_variable[id(variable)] = by_variable.get(id(variable), 0.0) + coefficient * grad
        trainable = self.trainable_variables
        combined = [by_variable.get(id(v), tf.zeros_like(v)) for v in trainable]
        rest = [i for i, v in enumerate(trainable) if id(v) not in by_variable]  # e.g. uncertainty's s_i
        if rest:
            for i, grad in zip(rest, tape_gradient(tape, scaled_objective, [trainable[i] for i in rest])):
                combined[i] = grad
        if scaled_regularisation is not None:
            extra = tape_gradient(tape, scaled_regularisation, trainable)
            combined = [c + e if id(v) in by_variable else c for c, e, v in zip(combined, extra, trainable)]
        return combined

    # -- affinity ---------------------------------------------------------------------------------

    def _collect_affinity(self, x, y, sample_weight, shared_grads, before, global_counts):
        """Z of every (source, target) pair on this batch (and of every candidate group onto its
        members), added to the accumulator with this step's weight, the optimizer steps it stands
        for (`AffinitySchedule.weight`); the formulas of each mode: `tag_tf.affinity.estimates`.

        `shared_grads`: per task, the gradient of its global loss on the shared variables (summed
        over replicas, unscaled, without Task.weight); `before`: the global task losses."""
        shared = self.shared_variables
        mode = self.affinity_config.mode
        labelled = global_counts > 0
        if mode == "cosine":
            gram = tf.stack([tf.stack([gradient_dot(g_i, g_j) for g_j in shared_grads]) for g_i in shared_grads])
            z = affinity_lib.cosine_affinity(gram)
            valid, skipped = affinity_lib.valid_samples(before, z, z, labelled)  # z NaN: a zero gradient
            self.affinity_accumulator.add(z, valid, skipped, weight=self.affinity_schedule.weight())
            return
        deltas = [affinity_lib.lookahead_deltas(self.optimizer, g, shared) for g in shared_grads]
        if mode == "first_order":
            dots = tf.stack([tf.stack([gradient_dot(g_j, delta_i) for g_j in shared_grads]) for delta_i in deltas])
            after = before[None, :] - dots  # the first-order estimate of the lookahead losses
            z = affinity_lib.first_order_affinity(before, dots)
        else:
            after = self.lookahead_losses(x, y, deltas, sample_weight, global_counts)  # one all-reduce fewer
            z = affinity_lib.exact_affinity(before, after)
        lr = affinity_lib.current_learning_rate(self.optimizer)
        scale = 1.0 / lr if self.affinity_config.normalize_by_lr else 1.0
        valid, skipped = affinity_lib.valid_samples(before, after, z * scale, labelled)
        group_z = group_valid = None
        if self.affinity_groups:
            members = tf.constant(affinity_lib.membership(self.affinity_groups, [t.name for t in self.tasks]))
            after = self._group_lookahead_losses(x, y, shared_grads, members, sample_weight, global_counts)
            group_z = affinity_lib.exact_affinity(before, after) * scale
            all_labelled = tf.reduce_all(tf.logical_or(labelled[None, :], tf.logical_not(members)), axis=1)
            group_valid, group_skipped = affinity_lib.valid_samples(before, after, group_z, labelled, all_labelled)
            group_valid = tf.logical_and(group_valid, members)
            skipped = tf.concat([skipped, tf.logical_and(group_skipped, members)], axis=0)
        self.affinity_accumulator.add(z * scale, valid, skipped, group_z, group_valid,
                                      weight=self.affinity_schedule.weight())

    def _lookahead_sums(self, x, y, delta, sample_weight):
        """This replica's per-task (loss sums, counts) on this batch with the shared variables at
        θs − `delta` (one tensor per shared variable) and every other variable as it is."""
        step = {id(v): d for v, d in zip(self.shared_variables, delta)}
        trainable = [v.value - step[id(v)] if id(v) in step else v.value for v in self.trainable_variables]
        outputs, _ = self.stateless_call(trainable, [v.value for v in self.non_trainable_variables], x, training=True)
        return self._task_sums(y, outputs, sample_weight)

    def lookahead_losses(self, x, y, deltas, sample_weight=None, global_counts=None) -> tf.Tensor:
        """after[i, j]: the global mean loss of task j on this batch with the shared variables at
        θs − Δi (`deltas[i]`: one tensor per shared variable) and every other variable as it is;
        training=True, moving statistics of the lookahead discarded (`stateless_call`).
        `global_counts`: the batch's labelled-example counts over all replicas, if known."""
        stacked = [tf.stack(per_variable) for per_variable in zip(*deltas)]  # [k, *shape] per variable
        return self._lookahead_rows(x, y, stacked, lambda delta: delta, sample_weight, global_counts)

    def _group_lookahead_losses(self, x, y, shared_grads, members, sample_weight, global_counts) -> tf.Tensor:
        """after[G, j]: the global mean loss of task j with the shared variables at θs − Δ_G, Δ_G the
        optimizer's step from the summed gradient of the tasks of group G (`members` [groups, k])."""
        stacked = [tf.stack(per_variable) for per_variable in zip(*shared_grads)]  # [k, *shape] per variable

        def group_delta(member_row):
            weights = tf.cast(member_row, tf.float32)
            grads = [tf.tensordot(weights, g, axes=1) for g in stacked]
            return affinity_lib.lookahead_deltas(self.optimizer, grads, self.shared_variables)

        return self._lookahead_rows(x, y, members, group_delta, sample_weight, global_counts)

    def _lookahead_rows(self, x, y, elements, delta_of, sample_weight, global_counts) -> tf.Tensor:
        """One row of global mean task losses per element of `elements` (a tensor, or a list of
        tensors, with one leading entry per row), at θs − `delta_of(element)`: one lookahead forward
        each, in a `tf.map_fn` loop, which is traced once whatever the number of rows (an unrolled
        loop traced every forward: 1.6x the first epoch on the demo, BENCHMARKS.md)."""
        spec = tf.TensorSpec((len(self.tasks),), tf.float32)
        sums, counts = tf.map_fn(lambda e: self._lookahead_sums(x, y, delta_of(e), sample_weight), elements,
                                 fn_output_signature=(spec, spec))
        if global_counts is None:
            global_counts = sum_over_replicas(counts[-1])
        return tf.math.divide_no_nan(sum_over_replicas(sums), global_counts[None, :])

    def make_train_function(self, force=False):
        """Keras' train function, dispatching to the affinity step as `AffinitySchedule` says."""
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
        plain_jit_compile = self.jit_compile
        self._jit_compile = self.affinity_jit_compile()  # what Keras' wrapper reads when it builds the function
        try:
            lookahead = self._make_function(self.affinity_train_step)  # Keras' own wrapper (strategy.run)
        finally:
            self._jit_compile = plain_jit_compile

        def train_function(iterator):
            return self.affinity_schedule.run(int(self.optimizer.iterations.numpy()), plain, lookahead,
                                              self.affinity_accumulator, iterator)

        self.train_function = train_function
        return train_function

    def affinity_jit_compile(self) -> bool:
        """Whether `fit()` compiles the affinity steps with XLA (`AffinityConfig.jit_compile`; None:
        as compile() resolved `jit_compile`; "auto": when one replica trains, not eagerly, the
        balancer computes the same under XLA, and Keras' own check accepts the model: every layer
        supports XLA and op determinism is off)."""
        setting = self.affinity_config.jit_compile
        if setting is None:
            return bool(self.jit_compile)
        if setting != affinity_lib.AUTO:
            return bool(setting)
        return (not self.run_eagerly and self.distribute_strategy.num_replicas_in_sync == 1
                and self.balancer.supports_jit and model_supports_jit(self))

    def affinity_train_step(self, data):
        """`train_step(data, collect_affinity=True)`: what affinity steps run."""
        return self.train_step(data, collect_affinity=True)

    def prepare_affinity(self):
        """Check the optimizer has a lookahead rule and build it (its slots are read before the
        first `apply()`). Called by every training loop before its first affinity step."""
        affinity_lib.check_optimizer(self.optimizer)
        if not self.optimizer.built:
            with self.distribute_strategy.scope():
                self.optimizer.build(self.trainable_variables)

    # -- results ----------------------------------------------------------------------------------

    def fit(self, *args, callbacks=None, **kwargs):
        """`keras.Model.fit`; with affinity on, it also records per-epoch affinity means. A
        `sample_weight` dict may name only some tasks (the others are weighted 1). Dense tasks'
        labels are checked first (`check_labels`): all of them when given as arrays, the first
        batch of a `tf.data.Dataset`."""
        if any(t.is_dense for t in self.tasks):
            x = args[0] if args else kwargs.get("x")
            y = args[1] if len(args) > 1 else kwargs.get("y")
            if isinstance(x, tf.data.Dataset):
                y = keras.utils.unpack_x_y_sample_weight(next(iter(x.take(1))))[1]
            if isinstance(y, dict):  # other inputs (generators, PyDatasets) are checked by shape when traced
                self.check_labels(y)
        if isinstance(kwargs.get("sample_weight"), dict):
            y = args[1] if len(args) > 1 else kwargs.get("y")
            kwargs["sample_weight"] = self._sample_weights_per_task(kwargs["sample_weight"], y)
        if self.affinity_config is not None:  # first, so other callbacks see the finished epoch
            callbacks = [AffinityEpochs()] + list(callbacks or [])
        return super().fit(*args, callbacks=callbacks, **kwargs)

    def check_labels(self, y) -> None:
        """ValueError naming the task, the value found and the one expected, for dense labels in
        `y` ({task: labels}) of the wrong size, with class ids out of range, or normals not of unit
        length where valid (`tag_tf.tasks.dense.check_labels`)."""
        for task in self.tasks:
            if task.is_dense:
                dense.check_labels(task, np.asarray(y[task.name]), self.task_output_shapes[task.name])

    def _sample_weights_per_task(self, weights: dict, y) -> dict:
        """Keras wants one weight array per output: the tasks `weights` leaves out get ones."""
        names = [t.name for t in self.tasks]
        unknown = sorted(set(weights) - set(names))
        if unknown:
            raise ValueError(f"sample_weight names unknown task(s) {unknown}; the tasks are {names}.")
        size = len(next(iter(y.values()))) if isinstance(y, dict) else len(next(iter(weights.values())))
        return {t: weights[t] if t in weights else np.ones(size, "float32") for t in names}

    def task_affinity(self) -> TaskAffinity:
        """The affinity measured so far: `matrix[source, target]`, per-epoch means, counts."""
        if self.affinity_accumulator is None:
            raise ValueError("This model collects no affinity: build it with affinity=AffinityConfig(...).")
        return self.affinity_accumulator.result()

    def get_config(self):
        config = super().get_config()
        config["tasks"] = [t.to_json() for t in self.tasks]
        config["affinity"] = self.affinity_config.to_json() if self.affinity_config else None
        config["balancer"] = self.balancer.to_json()
        config["shared_variables"] = self._shared_override
        return config


class _TaskGradients:
    """Every task's gradient on some variables, as a training step computed them.

    Attributes:
      variables: the variables of `on()`'s gradients.
      own: per task, its own variables, whose gradients follow in `local`; None when the step
        did not take them (then the update cannot be combined from these gradients).
      local: per task, this replica's gradients of its scaled loss share on `variables + own[i]`.
      global_: per task, the gradients of its global loss on `variables` (summed, unscaled).
    """

    def __init__(self, variables, own, local, global_):
        self.variables, self.own, self.local, self.global_ = variables, own, local, global_

    @property
    def combinable(self) -> bool:
        return self.own is not None

    def on(self, variables) -> list[list[tf.Tensor]]:
        """Per task, the global gradients on `variables` (a subset of `self.variables`)."""
        index = {id(v): i for i, v in enumerate(self.variables)}
        return [[per_task[index[id(v)]] for v in variables] for per_task in self.global_]


def _covers(variables, subset) -> bool:
    ids = {id(v) for v in variables}
    return bool(subset) and all(id(v) in ids for v in subset)


def _union(first, second) -> list:
    """`first`, then the variables of `second` not in it, in order."""
    ids = {id(v) for v in first}
    return list(first) + [v for v in second if id(v) not in ids]
