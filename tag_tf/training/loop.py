"""Training and evaluation loops over `strategy.run`, for `MultiWorkerMirroredStrategy`, under which
Keras 3's `fit()` and `evaluate()` fail before the first step (keras#20585, tensorflow#72388).

`fit_distributed` runs the model's own `train_step` through `strategy.run`, with the same affinity
schedule as `fit()`, so a multi-worker run computes exactly what `fit()` computes. Like `fit()`,
it reports every epoch's metrics over all replicas and workers (Keras' metric variables are
summed across replicas when read outside a replica), validates after each epoch, starts from the
epoch `BackupAndRestore` restored, and stops when a callback sets `model.stop_training`.

>>> import numpy as np, tensorflow as tf
>>> from tag_tf.models import build_multitask_model, mlp_trunk
>>> model = build_multitask_model(mlp_trunk(2, hidden=(4,)), ["a"])
>>> model.compile(optimizer="sgd")
>>> batches = tf.data.Dataset.from_tensor_slices((np.ones((8, 2), "float32"), {"a": np.ones(8, "int32")})).batch(4)
>>> history = fit_distributed(model, batches, epochs=2, validation_data=batches)
>>> len(history.history["val_loss"]), int(model.optimizer.iterations.numpy())
(2, 4)
>>> round(evaluate_distributed(model, batches)["loss"], 6) == round(history.history["val_loss"][-1], 6)
True
"""

from __future__ import annotations

import time

import keras
import tensorflow as tf
from absl import logging

from tag_tf.training.callbacks import AffinityEpochs


def fit_distributed(model, dataset: tf.data.Dataset, epochs: int = 1, callbacks=None, validation_data=None,
                    steps_per_epoch: int | None = None) -> keras.callbacks.History:
    """Train `model` (compiled under the current strategy's scope) with a loop over `strategy.run`.

    Does what `model.fit(dataset, epochs=..., validation_data=..., steps_per_epoch=...)` does,
    affinity steps included, for strategies where Keras' `fit()` fails. `dataset` yields global
    batches; the strategy splits them over its replicas and workers. With `steps_per_epoch`, one
    iterator runs across epochs (give a repeated dataset), as in Keras.
    """
    strategy = model.distribute_strategy
    callbacks = list(callbacks or [])
    if model.affinity_config is not None:
        model.prepare_affinity()
        callbacks.insert(0, AffinityEpochs())  # first, so other callbacks see the finished epoch
    elif not model.optimizer.built:
        with strategy.scope():
            model.optimizer.build(model.trainable_variables)
    plain = _distributed_step(strategy, model.train_step)
    lookahead = _distributed_step(strategy, model.affinity_train_step)
    callbacks = keras.callbacks.CallbackList(callbacks, add_history=True, model=model, epochs=epochs,
                                             steps=steps_per_epoch, verbose=0)
    distributed = strategy.experimental_distribute_dataset(dataset)
    iterator = iter(distributed) if steps_per_epoch else None
    model.stop_training = False
    model._initial_epoch = None
    callbacks.on_train_begin()
    logs = {}
    for epoch in range(model._initial_epoch or 0, epochs):  # BackupAndRestore sets the epoch to resume
        model.reset_metrics()
        callbacks.on_epoch_begin(epoch)
        start = time.time()
        batches = (next(iterator) for _ in range(steps_per_epoch)) if iterator else distributed
        for batch, data in enumerate(batches):
            callbacks.on_train_batch_begin(batch)
            model.affinity_schedule.run(int(model.optimizer.iterations.numpy()), plain, lookahead,
                                        model.affinity_accumulator, data)
            callbacks.on_train_batch_end(batch)
        logs = {**_global_logs(model), **{name: float(value) for name, value in model.balancer.logs().items()}}
        if validation_data is not None:
            logs.update({f"val_{name}": value for name, value in evaluate_distributed(model, validation_data).items()})
        callbacks.on_epoch_end(epoch, logs)
        logging.info("epoch %d/%d of distributed training: %.1fs, loss %.4f", epoch + 1, epochs,
                     time.time() - start, logs.get("loss", float("nan")))
        if model.stop_training:
            break
    callbacks.on_train_end(logs)
    return model.history


def evaluate_distributed(model, dataset: tf.data.Dataset) -> dict[str, float]:
    """`model.evaluate(dataset, return_dict=True)` through `strategy.run`: the loss and every
    metric over the whole data set, all replicas and workers."""
    strategy = model.distribute_strategy
    step = _distributed_step(strategy, model.test_step)
    model.reset_metrics()
    for data in strategy.experimental_distribute_dataset(dataset):
        step(data)
    training_only = set(model.balancer.logs())
    return {name: value for name, value in _global_logs(model).items() if name not in training_only}


def _global_logs(model) -> dict[str, float]:
    """The model's metric results read outside a replica: summed over replicas and workers."""
    return {name: float(value) for name, value in model.get_metrics_result().items()}


def _distributed_step(strategy: tf.distribute.Strategy, step):
    """A tf.function running `step` on every replica (its logs are read from the metrics)."""

    @tf.function
    def run(data):
        strategy.run(step, args=(data,))

    return run
