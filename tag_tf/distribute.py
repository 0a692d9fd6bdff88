"""tf.distribute strategies by name, CPU devices for testing them, and a training loop for
`MultiWorkerMirroredStrategy`, under which Keras 3's `fit()` fails before the first step
(keras#20585, tensorflow#72388).

    strategy = strategy_from_name("mirrored")
    with strategy.scope():
        model = build_multitask_model(trunk, tasks, affinity=AffinityConfig())
        model.compile(optimizer=keras.optimizers.SGD(5e-4, momentum=0.9))
    model.fit(batches, epochs=3)                                # default / mirrored / tpu
    fit_distributed(model, batches, epochs=3)                   # any strategy, multi_worker included

`fit_distributed` runs the model's own `train_step` (or `affinity_train_step`) through
`strategy.run`, so a multi-worker run computes exactly what `fit()` computes.

>>> strategy_from_name("default").num_replicas_in_sync
1
"""

from __future__ import annotations

import time

import keras
import tensorflow as tf
from absl import logging

from tag_tf.training import AffinityEpochs

STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")


def strategy_from_name(name: str, devices: list[str] | None = None) -> tf.distribute.Strategy:
    """The strategy called `name`, one of `STRATEGIES`.

    Args:
      name: "default" (no distribution), "mirrored" (the local devices, or `devices`),
        "multi_worker" (workers from the `TF_CONFIG` environment variable), "tpu".
      devices: for "mirrored" only, e.g. ["CPU:0", "CPU:1"] after `split_cpu(2)`.
    """
    if name not in STRATEGIES:
        raise ValueError(f"Unknown strategy {name!r}; valid strategies: {STRATEGIES}.")
    if devices is not None and name != "mirrored":
        raise ValueError(f"devices are only for the 'mirrored' strategy, not {name!r}.")
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
    tf.config.experimental_connect_to_cluster(resolver)
    tf.tpu.experimental.initialize_tpu_system(resolver)
    return tf.distribute.TPUStrategy(resolver)


def split_cpu(num_devices: int) -> list[str]:
    """Split the physical CPU into `num_devices` logical devices; call before TensorFlow runs anything.

    Returns their names, e.g. ["CPU:0", "CPU:1"], for `strategy_from_name("mirrored", devices=...)`.
    """
    cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(num_devices)]
    )
    return [f"CPU:{i}" for i in range(num_devices)]


def fit_distributed(model, dataset: tf.data.Dataset, epochs: int = 1, callbacks=None) -> keras.callbacks.History:
    """Train `model` (compiled under the current strategy's scope) with a loop over `strategy.run`.

    Does what `model.fit(dataset, epochs=epochs)` does, affinity steps included, for strategies
    where Keras' `fit()` fails (MultiWorkerMirroredStrategy). `dataset` yields global batches;
    the strategy splits them over its replicas and workers. Keras callbacks get the usual
    epoch and batch events.
    """
    strategy = model.distribute_strategy
    distributed = strategy.experimental_distribute_dataset(dataset)
    every = model.affinity_config.every_n_steps if model.affinity_config else 0
    callbacks = list(callbacks or [])
    if every:
        model.prepare_affinity()
        callbacks.append(AffinityEpochs())
    elif not model.optimizer.built:
        with strategy.scope():
            model.optimizer.build(model.trainable_variables)
    plain = _distributed_step(strategy, model.train_step)
    lookahead = _distributed_step(strategy, model.affinity_train_step) if every else None
    callbacks = keras.callbacks.CallbackList(callbacks, add_history=True, model=model, epochs=epochs, verbose=0)
    callbacks.on_train_begin()
    for epoch in range(epochs):
        model.reset_metrics()
        callbacks.on_epoch_begin(epoch)
        start = time.time()
        logs = {}
        for batch, data in enumerate(distributed):
            callbacks.on_train_batch_begin(batch)
            iteration = int(model.optimizer.iterations.numpy())
            step = lookahead if every and iteration % every == 0 else plain
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
