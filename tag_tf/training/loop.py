"""A training loop over `strategy.run` for `MultiWorkerMirroredStrategy`, under which Keras 3's
`fit()` fails before the first step (keras#20585, tensorflow#72388).

`fit_distributed` runs the model's own `train_step` through `strategy.run`, with the same
affinity schedule as `fit()`, so a multi-worker run computes exactly what `fit()` computes.

>>> import numpy as np, tensorflow as tf
>>> from tag_tf.models import build_multitask_model, mlp_trunk
>>> model = build_multitask_model(mlp_trunk(2, hidden=(4,)), ["a"])
>>> model.compile(optimizer="sgd")
>>> batches = tf.data.Dataset.from_tensor_slices((np.ones((8, 2), "float32"), {"a": np.ones(8, "int32")})).batch(4)
>>> history = fit_distributed(model, batches, epochs=2)
>>> len(history.history["loss"]), int(model.optimizer.iterations.numpy())
(2, 4)
"""

from __future__ import annotations

import time

import keras
import tensorflow as tf
from absl import logging

from tag_tf.training.callbacks import AffinityEpochs
from tag_tf.training.schedule import AffinitySchedule


def fit_distributed(model, dataset: tf.data.Dataset, epochs: int = 1, callbacks=None) -> keras.callbacks.History:
    """Train `model` (compiled under the current strategy's scope) with a loop over `strategy.run`.

    Does what `model.fit(dataset, epochs=epochs)` does, affinity steps included, for strategies
    where Keras' `fit()` fails (MultiWorkerMirroredStrategy). `dataset` yields global batches;
    the strategy splits them over its replicas and workers. Keras callbacks get the usual
    epoch and batch events.
    """
    strategy = model.distribute_strategy
    distributed = strategy.experimental_distribute_dataset(dataset)
    schedule = AffinitySchedule(model.affinity_config)
    callbacks = list(callbacks or [])
    if model.affinity_config is not None:
        model.prepare_affinity()
        callbacks.append(AffinityEpochs())
    elif not model.optimizer.built:
        with strategy.scope():
            model.optimizer.build(model.trainable_variables)
    plain = _distributed_step(strategy, model.train_step)
    lookahead = _distributed_step(strategy, model.affinity_train_step)
    callbacks = keras.callbacks.CallbackList(callbacks, add_history=True, model=model, epochs=epochs, verbose=0)
    callbacks.on_train_begin()
    for epoch in range(epochs):
        model.reset_metrics()
        callbacks.on_epoch_begin(epoch)
        start = time.time()
        logs = {}
        for batch, data in enumerate(distributed):
            callbacks.on_train_batch_begin(batch)
            step = schedule.choose(int(model.optimizer.iterations.numpy()), plain, lookahead)
            logs = {k: float(v) for k, v in step(data).items()}
            callbacks.on_train_batch_end(batch, logs)
        callbacks.on_epoch_end(epoch, logs)
        logging.info("epoch %d/%d of distributed training: %.1fs, loss %.4f", epoch + 1, epochs,
                     time.time() - start, logs.get("loss", float("nan")))
    callbacks.on_train_end(logs)
    return model.history


def _distributed_step(strategy: tf.distribute.Strategy, step):
    """A tf.function running `step` on every replica; the logs (identical on all) from the first."""

    @tf.function
    def run(data):
        logs = strategy.run(step, args=(data,))
        return {k: strategy.experimental_local_results(v)[0] for k, v in logs.items()}

    return run
