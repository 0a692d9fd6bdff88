"""What several benchmarks share: the CelebA trunk's flags, the planted presets' override flags, the multi-head model of the serving
benchmarks, networks trained side by side in turns with every step timed, and a line describing
the machine.

A benchmark calls the `define_*_flags` it needs at import time (as Model Garden's
`official/utils/flags` helpers are used), then reads them through absl's FLAGS:

    from experiments.bench import common
    common.define_multihead_flags()          # --tasks, --networks, --image_size, --filters
    ...
    networks, assignment = common.multihead_networks(seed=0)
"""

from __future__ import annotations

import os
import platform
import tempfile
import time
from typing import Sequence

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags, logging

from tag_tf.models import build_multitask_model, celeba_resnet_trunk
from tag_tf.run import PRESETS, RunConfig, RunData, build_network, fit, train_network
from tag_tf.training import MultiTaskModel
from tag_tf.tasks import Task

FLAGS = flags.FLAGS


def define_trunk_flags() -> None:
    """--image_size and --filters of the paper's CelebA trunk (defaults: 64x64, 64 filters)."""
    flags.DEFINE_integer("image_size", 64, "Side of the square images.")
    flags.DEFINE_integer("filters", 64, "Filters of the CelebA trunk (the paper's: 64).")


def define_step_timing_flags(batch_size: int, timed_steps: int, rounds: int, rounds_help: str) -> None:
    """--batch_size, --warmup_steps (2 untimed first steps: tracing), --timed_steps and --rounds of a
    benchmark that times training steps."""
    flags.DEFINE_integer("batch_size", batch_size, "Batch size.")
    flags.DEFINE_integer("warmup_steps", 2, "Untimed first steps (tracing).")
    flags.DEFINE_integer("timed_steps", timed_steps, "Timed steps per configuration and round.")
    flags.DEFINE_integer("rounds", rounds, rounds_help)


def define_multihead_flags() -> None:
    """The trunk's flags, and --tasks (n) and --networks (k) of the multi-head model."""
    define_trunk_flags()
    flags.DEFINE_integer("tasks", 9, "n: tasks.")
    flags.DEFINE_integer("networks", 3, "k: networks of the multi-head model (tasks split evenly).")


PLANTED_OVERRIDES = {
    "epochs": (flags.DEFINE_integer, "Override the preset's epochs."),
    "patience": (flags.DEFINE_integer, "Override the preset's patience."),
    "num_examples": (flags.DEFINE_integer, "Override the preset's number of examples."),
    "image_size": (flags.DEFINE_integer, "Override the preset's image size."),
    "train_examples": (flags.DEFINE_integer, "Override the preset's training examples (0 = the whole split)."),
    "tasks_per_group": (flags.DEFINE_integer, "Override the preset's tasks per planted group."),
    "planted_groups": (flags.DEFINE_integer, "Override the preset's number of planted groups."),
    "trunk_filters": (flags.DEFINE_integer, "Override the preset's trunk width."),
    "batch_size": (flags.DEFINE_integer, "Override the preset's batch size."),
    "learning_rate": (flags.DEFINE_float, "Override the preset's learning rate."),
    "lr_schedule": (flags.DEFINE_string, "Override the preset's learning-rate schedule: constant or cosine."),
    "affinity_every_n_steps": (flags.DEFINE_string, "Override the preset's affinity schedule: auto or n."),
    "balancer": (flags.DEFINE_string, "Override the preset's loss balancing (equal, gradnorm, uncertainty, pcgrad)."),
}


def optimizer_settings(config: RunConfig) -> str:
    """The run's SGD and loss balancing as the benchmarks print them.

    >>> optimizer_settings(PRESETS["demo"])
    'SGD(0.1, momentum 0, cosine rate), gradnorm loss balancing'
    """
    train = config.train
    return (f"SGD({train.learning_rate:g}, momentum {train.momentum:g}, {train.lr_schedule} rate), "
            f"{train.balancer} loss balancing")


def define_planted_flags(*overrides: str) -> None:
    """--preset (one with planted data, default demo) and a flag for each setting of `overrides`
    (names of `PLANTED_OVERRIDES`: flat `RunConfig` settings) that overrides the preset's value."""
    flags.DEFINE_string("preset", "demo", "A preset with planted data.")
    for name in overrides:
        define, help_text = PLANTED_OVERRIDES[name]
        define(name, None, help_text)


def planted_config(*overrides: str, **settings) -> RunConfig:
    """The --preset's settings with the override flags of `overrides` that were given and `settings`
    (flat names) applied; a usage error if its data are not planted."""
    given = {name: FLAGS[name].value for name in overrides if FLAGS[name].value is not None}
    config = PRESETS[FLAGS.preset].replace(**settings, **given)
    if not config.data.dataset.startswith("planted"):
        raise app.UsageError(f"--preset={FLAGS.preset} has no planted data (dataset {config.data.dataset!r}).")
    return config


def affinity_run(config: RunConfig, data: RunData):
    """The affinity stage's training run on every task of `data` (the all-in-one network collecting
    affinity with `config.affinity`), its backup in a temporary folder: the `TaskAffinity` it measured."""
    model = build_network(config, data, data.tasks, config.affinity)
    with tempfile.TemporaryDirectory() as backup:
        fit(config, data, model, backup)
    return model.task_affinity()


def trained_network(config: RunConfig, data: RunData, group: Sequence[str]) -> MultiTaskModel:
    """The network of the tasks named in `group`, trained as group training trains every network
    (`train_network`), its backup in a temporary folder."""
    by_name = {t.name: t for t in data.tasks}
    with tempfile.TemporaryDirectory() as backup:
        return train_network(config, data, [by_name[t] for t in group], backup)


def trunk() -> keras.Model:
    """A CelebA trunk as the flags say."""
    return celeba_resnet_trunk(FLAGS.image_size, filters=FLAGS.filters)


class StepSeconds(keras.callbacks.Callback):
    """Wall seconds of every training step, and whether it collected affinity."""

    def __init__(self):
        super().__init__()
        self.seconds, self.affinity = [], []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()
        self._steps = self._affinity_steps()

    def on_train_batch_end(self, batch, logs=None):
        self.seconds.append(time.perf_counter() - self._start)
        self.affinity.append(self._affinity_steps() > self._steps)

    def _affinity_steps(self) -> float:
        accumulator = self.model.affinity_accumulator
        return float(accumulator.steps.numpy()) if accumulator is not None else 0.0


def train_in_turns(models: dict, datasets: dict, epochs: int, callbacks: dict | None = None) -> tuple[dict, list]:
    """Train every model of {name: model} one epoch at a time on its dataset, taking turns, so that
    load from other processes falls on all alike; `callbacks`: {name: [callbacks]} for some.
    Returns ({name: seconds of every epoch}, the 1-minute load average before every epoch)."""
    seconds, load = {name: [] for name in models}, []
    for epoch in range(epochs):
        load.append(os.getloadavg()[0])
        for name, model in models.items():
            start = time.perf_counter()
            model.fit(datasets[name], initial_epoch=epoch, epochs=epoch + 1, verbose=0, shuffle=False,
                      callbacks=(callbacks or {}).get(name, []))
            seconds[name].append(time.perf_counter() - start)
        logging.info("epoch %d: %s", epoch + 1, ", ".join(f"{n} {s[-1]:.1f}s" for n, s in seconds.items()))
    return seconds, load


def multihead_networks(seed: int) -> tuple[list[keras.Model], dict[str, int]]:
    """(networks, assignment): --tasks binary tasks t0, t1, ... split evenly over --networks
    networks, each serving its own tasks; untrained weights from `seed`."""
    keras.utils.set_random_seed(seed)
    tasks = [Task(f"t{i}") for i in range(FLAGS.tasks)]
    groups = np.array_split(np.arange(FLAGS.tasks), FLAGS.networks)
    networks = [build_multitask_model(trunk(), [tasks[i] for i in group]) for group in groups]
    return networks, {tasks[i].name: n for n, group in enumerate(groups) for i in group}


def machine() -> str:
    """The processor, CPU count, TF version and load average (other work on the machine)."""
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    return (f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, TF {tf.__version__}, "
            f"load average {load} (1, 5, 15 min)")
