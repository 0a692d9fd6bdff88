"""The networks of a run: built, trained and measured with the run's settings.

>>> from tag_tf.run.data import load_data
>>> from tag_tf.run.presets import PRESETS
>>> config = PRESETS["demo"].replace(num_examples=300, train_examples=0, trunk_filters=2, epochs=1)
>>> data = load_data(config)
>>> model = build_network(config, data, data.tasks[:2])
>>> [t.name for t in model.tasks], round(float(model.optimizer.learning_rate), 4)
(['g0_t0', 'g0_t1'], 0.1)
"""

from __future__ import annotations

import functools
import math
import sys

import keras
import tensorflow as tf

from tag_tf import balancing
from tag_tf.affinity import AffinityConfig, check_optimizer, current_learning_rate
from tag_tf.models.architectures import build_architecture
from tag_tf.training.distribute import is_multi_worker, strategy_from_name
from tag_tf.models import build_multitask_model, celeba_resnet_trunk, mlp_trunk, wrap
from tag_tf.run.config import RunConfig
from tag_tf.run.data import RunData, batches
from tag_tf.run.recipe import load_recipe
from tag_tf.tasks import Task
from tag_tf.training import EpochSummary, MultiTaskModel, evaluate_distributed, fit_distributed


def build_network(config: RunConfig, data: RunData, tasks: list[Task],
                  affinity: AffinityConfig | None = None) -> MultiTaskModel:
    """A compiled multi-task network for `tasks`: the recipe's model, or the run's trunk in the run's
    architecture; the recipe's optimizer or the run's SGD; under the run's strategy."""
    keras.utils.set_random_seed(config.runtime.seed)
    balancer = balancing.balancer_from_name(config.train.balancer)
    sgd = functools.partial(keras.optimizers.SGD, config.train.learning_rate, momentum=config.train.momentum)
    with strategy_from_name(config.runtime.strategy).scope():
        if config.data.dataset == "recipe":
            recipe = load_recipe(config.data.recipe)
            model = wrap(recipe.build_model(tasks), tasks, affinity=affinity, balancer=balancer)
            optimizer = recipe.optimizer(default=sgd)
        else:
            model = _network(config, data, tasks, affinity, balancer)
            optimizer = sgd()
        if affinity is not None:
            check_optimizer(optimizer)  # before any training: the lookahead needs its rule
        check_schedulable(optimizer, config.train.lr_schedule)
        model.compile(optimizer=optimizer, jit_compile=config.runtime.jit_compile)
    return model


def _network(config: RunConfig, data: RunData, tasks: list[Task], affinity, balancer) -> MultiTaskModel:
    """The run's trunk (an MLP for tabular data, else the CelebA trunk) in the run's architecture
    (`ModelConfig.architecture`; a group of one task gets hard_sharing, its single-task network)."""
    architecture = config.model.architecture
    if config.data.dataset == "planted_tabular":
        trunk = mlp_trunk(int(data.splits["train"].element_spec[0].shape[-1]))
    else:
        trunk = celeba_resnet_trunk(config.data.image_size, filters=config.model.trunk_filters,
                                    bn_momentum=config.model.bn_momentum,
                                    feature_map=architecture not in ("linear_heads", "mmoe"))
    if architecture == "linear_heads":
        return build_multitask_model(trunk, tasks, affinity=affinity, balancer=balancer)
    if len(tasks) == 1:
        architecture = "hard_sharing"
    units = config.model.head_units
    options = {"padnet": {"channels": units, "deep_supervision": False}, "mmoe": {"tower_units": units}}
    network = build_architecture(architecture, trunk, tasks, **options.get(architecture, {"head_units": units}))
    return wrap(network, tasks, affinity=affinity, balancer=balancer)


def fit(config: RunConfig, data: RunData, model: MultiTaskModel, backup_dir: str, callbacks=(),
        restore_only: bool = False) -> keras.callbacks.History:
    """Train with the run's settings; an interrupted fit resumes from `backup_dir` (last epoch).

    `restore_only`: read the backup but never write it (the workers of a multi-worker run, which
    restore from the chief's). Under MultiWorkerMirroredStrategy the loop is `fit_distributed`.
    """
    backup = (keras.callbacks.BackupAndRestore(backup_dir, save_freq=sys.maxsize, delete_checkpoint=False)
              if restore_only else keras.callbacks.BackupAndRestore(backup_dir))
    callbacks = [EpochSummary(), backup, *learning_rate_callbacks(config, model), *callbacks]
    train, validation = batches(config, data, "train"), batches(config, data, "validation")
    steps = config.train.steps_per_epoch or None
    if is_multi_worker(model.distribute_strategy):
        return fit_distributed(model, train, config.train.epochs, callbacks, validation_data=validation,
                               steps_per_epoch=steps)
    return model.fit(train, validation_data=validation, epochs=config.train.epochs, steps_per_epoch=steps,
                     callbacks=callbacks, shuffle=False, verbose=0)  # the training batches are shuffled by tf.data


def epoch_learning_rate(base: float, epoch: int, epochs: int, schedule: str) -> float:
    """The learning rate of epoch `epoch` (0-based) of `epochs` under `schedule` (`LR_SCHEDULES`):
    "constant" keeps `base`; "cosine" follows half a cosine from `base` at the first epoch towards 0
    after the last, base · (1 + cos(π · epoch / epochs)) / 2.

    >>> [round(epoch_learning_rate(0.1, e, 4, "cosine"), 4) for e in range(4)]
    [0.1, 0.0854, 0.05, 0.0146]
    >>> epoch_learning_rate(0.1, 3, 4, "constant")
    0.1
    """
    if schedule == "constant":
        return base
    return base * (1 + math.cos(math.pi * epoch / epochs)) / 2


def learning_rate_callbacks(config: RunConfig, model: MultiTaskModel) -> list[keras.callbacks.Callback]:
    """[] for a constant learning rate, else one callback that sets each epoch's rate from the
    optimizer's initial one (a resumed fit sets the same rates as an uninterrupted one)."""
    schedule, epochs = config.train.lr_schedule, config.train.epochs
    if schedule == "constant":
        return []
    base = float(current_learning_rate(model.optimizer))  # a tensor also under a strategy (MirroredVariable)
    return [keras.callbacks.LearningRateScheduler(lambda epoch: epoch_learning_rate(base, epoch, epochs, schedule))]


def check_schedulable(optimizer: keras.optimizers.Optimizer, schedule: str) -> None:
    """ValueError, before any training, when `schedule` must set the rate of an optimizer built with
    a `LearningRateSchedule` of its own (Keras cannot set that rate)."""
    if schedule != "constant" and isinstance(getattr(optimizer, "_learning_rate", None),
                                             keras.optimizers.schedules.LearningRateSchedule):
        raise ValueError(f"lr_schedule={schedule!r} sets the learning rate of every epoch, but the optimizer has "
                         "a LearningRateSchedule of its own; use lr_schedule='constant' or an optimizer built "
                         "with a float learning rate.")


def train_network(config: RunConfig, data: RunData, tasks: list[Task], backup_dir: str,
                  restore_only: bool = False) -> MultiTaskModel:
    """A plain network for `tasks`, built and trained as group training trains every network:
    early stopping on the validation loss with the run's patience, the best epoch's weights kept.

    >>> from tag_tf.run.data import load_data
    >>> from tag_tf.run.presets import PRESETS
    >>> import tempfile
    >>> config = PRESETS["demo"].replace(num_examples=200, train_examples=0, trunk_filters=2, epochs=1)
    >>> data = load_data(config)
    >>> with tempfile.TemporaryDirectory() as backup:
    ...     model = train_network(config, data, data.tasks[:1], backup)
    >>> [t.name for t in model.tasks], int(model.optimizer.iterations)
    (['g0_t0'], 3)
    """
    model = build_network(config, data, tasks)
    early = keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.train.patience, restore_best_weights=True)
    fit(config, data, model, backup_dir, [early], restore_only=restore_only)
    return model


def evaluate_per_task(model: MultiTaskModel, dataset: tf.data.Dataset) -> dict[str, dict[str, float]]:
    """{task: {"loss": ..., <metric name>: ..., ...}} (every metric of the task) on `dataset`."""
    if is_multi_worker(model.distribute_strategy):
        logs = evaluate_distributed(model, dataset)
    else:
        logs = model.evaluate(dataset, return_dict=True, verbose=0)
    return {
        t.name: {"loss": float(logs[f"{t.name}_loss"]), **{m: float(logs[f"{t.name}_{m}"]) for m in t.metric_names}}
        for t in model.tasks
    }
