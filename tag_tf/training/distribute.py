"""tf.distribute strategies by name, CPU devices for testing them, and what a multi-worker program
needs besides its training loop (`tag_tf.training.loop`): which worker is the chief, and a barrier.

    strategy = strategy_from_name("mirrored")
    with strategy.scope():
        model = build_multitask_model(trunk, tasks, affinity=AffinityConfig())
        model.compile(optimizer=keras.optimizers.SGD(5e-4, momentum=0.9))
    model.fit(batches, epochs=3)                    # default / mirrored / tpu
    fit_distributed(model, batches, epochs=3)       # any strategy, multi_worker included
                                                    # (tag_tf.training.loop)

>>> strategy_from_name("default").num_replicas_in_sync
1
"""

from __future__ import annotations

import functools

import tensorflow as tf

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
        return _multi_worker_strategy()
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


@functools.cache
def _multi_worker_strategy() -> tf.distribute.MultiWorkerMirroredStrategy:
    """The process's one MultiWorkerMirroredStrategy (TF sets up its collectives once per process)."""
    return tf.distribute.MultiWorkerMirroredStrategy()


def is_multi_worker(strategy: tf.distribute.Strategy) -> bool:
    """Whether `strategy` spans several processes (Keras' fit() and evaluate() fail under it).

    >>> is_multi_worker(tf.distribute.get_strategy())
    False
    """
    return isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy)


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    """Whether this process writes a run's files: always without a cluster; else the "chief" task,
    or worker 0 when the cluster has no chief (TF's own convention).

    >>> is_chief(tf.distribute.get_strategy())
    True
    """
    resolver = getattr(strategy, "cluster_resolver", None)
    if not is_multi_worker(strategy) or resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    return resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().as_dict()


def barrier(strategy: tf.distribute.Strategy) -> None:
    """Return when every worker has called it (an all-reduce of one number); no-op in one process."""
    if not is_multi_worker(strategy):
        return

    @tf.function
    def sync():
        return strategy.run(lambda: tf.distribute.get_replica_context().all_reduce("sum", 1.0))

    sync()
