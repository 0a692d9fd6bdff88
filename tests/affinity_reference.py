"""The by-hand affinity reference the affinity tests compare a model's measured Z with: per source
task, a copy of the model and its optimizer takes one real `optimizer.apply` step on the source's
loss for the shared variables only, and every task's loss is evaluated again."""

import numpy as np
import tensorflow as tf

from tag_tf import affinity


def small_batch(num_tasks=3, n=32, image=False, seed=0):
    """A random batch (x, {"t0": binary labels, ...}): 6 features, or 12x12x3 images."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(size=(n, 12, 12, 3) if image else (n, 6)).astype("float32")
    y = {f"t{i}": rng.integers(0, 2, n).astype("int32") for i in range(num_tasks)}
    return x, y


def copy_optimizer(optimizer, variables):
    """A fresh optimizer with the same config and state, built on `variables`."""
    copy = type(optimizer).from_config(optimizer.get_config())
    copy.build(variables)
    for target, source in zip(copy.variables, optimizer.variables):
        target.assign(source)
    return copy


def reference_affinity(model, optimizer, x, y, normalize=True):
    """Z by brute force: per source task, copy the model and optimizer, take one real
    optimizer.apply step on the source's loss for the shared variables only, re-evaluate."""
    names = [t.name for t in model.tasks]
    rows = [reference_group_affinity(model, optimizer, x, y, [source], normalize) for source in names]
    return np.array([[row[target] for target in names] for row in rows])


def reference_group_affinity(model, optimizer, x, y, group, normalize=True):
    """{target: Z[group→target]} for every task by brute force: copy the model and optimizer, take
    one real optimizer.apply step on the summed loss of the `group`'s tasks for the shared
    variables only, re-evaluate every task's loss."""
    names = [t.name for t in model.tasks]
    before = {n: float(v) for n, v in model.task_losses(y, model(x, training=True)).items()}
    copy = type(model).from_config(model.get_config())
    copy.set_weights(model.get_weights())
    shared = copy.shared_variables
    opt = copy_optimizer(optimizer, copy.trainable_variables)
    with tf.GradientTape() as tape:
        losses = copy.task_losses(y, copy(x, training=True))
        loss = tf.add_n([losses[source] for source in group])
    opt.apply(tape.gradient(loss, shared), shared)
    after = copy.task_losses(y, copy(x, training=True))
    lr = float(affinity.current_learning_rate(optimizer)) if normalize else 1.0
    return {target: (1 - float(after[target]) / before[target]) / lr for target in names}


def measured_affinity(model, x, y):
    """The model's Z from one affinity step on (x, y), its accumulator emptied first (the groups'
    sums too, so that `model.task_affinity().group_affinity` holds this step's)."""
    accumulator = model.affinity_accumulator
    for variable in (accumulator.total, accumulator.count, accumulator.weight, accumulator.weight2, *(
            (accumulator.group_total, accumulator.group_count, accumulator.group_weight, accumulator.group_weight2)
            if accumulator.groups else ())):
        variable.assign(tf.zeros_like(variable))
    model.train_on_batch(x, y)
    return model.task_affinity().matrix
