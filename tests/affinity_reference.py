"""The by-hand affinity reference the affinity tests compare a model's measured Z with: per source
task, a copy of the model and its optimizer takes one real `optimizer.apply` step on the source's
loss for the shared variables only, and every task's loss is evaluated again."""

import numpy as np
import tensorflow as tf

from tag_tf import affinity


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
    before = {n: float(v) for n, v in model.task_losses(y, model(x, training=True)).items()}
    z = np.zeros((len(names), len(names)))
    for i, source in enumerate(names):
        copy = type(model).from_config(model.get_config())
        copy.set_weights(model.get_weights())
        shared = copy.shared_variables
        opt = copy_optimizer(optimizer, copy.trainable_variables)
        with tf.GradientTape() as tape:
            loss = copy.task_losses(y, copy(x, training=True))[source]
        opt.apply(tape.gradient(loss, shared), shared)
        after = copy.task_losses(y, copy(x, training=True))
        for j, target in enumerate(names):
            z[i, j] = 1 - float(after[target]) / before[target]
    lr = float(affinity.current_learning_rate(optimizer))
    return z / lr if normalize else z


def measured_affinity(model, x, y):
    """The model's Z from one affinity step on (x, y), its accumulator emptied first."""
    for variable in (model.affinity_accumulator.total, model.affinity_accumulator.count):
        variable.assign(tf.zeros_like(variable))
    model.train_on_batch(x, y)
    return model.task_affinity().matrix
