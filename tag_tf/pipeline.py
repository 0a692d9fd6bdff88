"""A run: its configuration, its data, and the stages that work over its run directory.

So far one stage exists: training the all-in-one multi-task network and measuring every task on
the test split. The affinity, selection, grouped-training, export and report stages join it here.

A run directory holds `config.json` and `metrics.json`; each is written atomically.

>>> config = PRESETS["demo"]
>>> config.dataset, config.image_size
('planted', 32)
>>> RunConfig.from_json(config.to_json()) == config
True
"""

from __future__ import annotations

import dataclasses
import os
import time

import keras
import tensorflow as tf
from absl import logging

from tag_tf.data import celeba, pipeline, synthetic
from tag_tf.io import write_json_atomic
from tag_tf.models import build_multitask_model, celeba_resnet_trunk, mlp_trunk
from tag_tf.tasks import Task, as_tasks
from tag_tf.training import EpochSummary, MultiTaskModel

DATASETS = ("planted", "planted_tabular", "celeba_folder", "celeba_tfds")
# The nine CelebA attributes of the TAG paper.
PAPER_CELEBA_TASKS = (
    "5_o_Clock_Shadow", "Black_Hair", "Blond_Hair", "Brown_Hair", "Goatee",
    "Mustache", "No_Beard", "Rosy_Cheeks", "Wearing_Hat",
)
SHARED_CELEBA_SAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "celeba_sample")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything a run depends on; `experiments/tag_pipeline.py` maps its flags onto these fields.

    Attributes:
      dataset: one of `DATASETS`.
      tasks: task names; empty means every task of a planted data set. Required for CelebA.
      celeba_dir: the official CelebA folder (for `celeba_folder`).
      tfds_data_dir, tfds_manual_dir: passed to `celeba.load_tfds` (for `celeba_tfds`).
      image_size: side of the square input images.
      num_examples, num_groups, tasks_per_group: size and planted structure of planted data.
      epochs, batch_size, steps_per_epoch: training length (steps_per_epoch 0 = whole split).
      learning_rate, momentum: SGD, as in the official TAG code (5e-4, 0.9).
      cache: keep decoded training/evaluation data in memory after the first epoch.
      seed: seeds the data split, the shuffling and the weight initialisation.
    """

    dataset: str = "planted"
    tasks: tuple[str, ...] = ()
    celeba_dir: str = ""
    tfds_data_dir: str = ""
    tfds_manual_dir: str = ""
    image_size: int = 64
    num_examples: int = 3000
    num_groups: int = 3
    tasks_per_group: int = 3
    epochs: int = 3
    batch_size: int = 64
    steps_per_epoch: int = 0
    learning_rate: float = 5e-4
    momentum: float = 0.9
    cache: bool = False
    seed: int = 0

    def __post_init__(self):
        object.__setattr__(self, "tasks", tuple(self.tasks))
        if self.dataset not in DATASETS:
            raise ValueError(f"Unknown dataset {self.dataset!r}; valid datasets: {DATASETS}.")
        for name in ("image_size", "num_examples", "num_groups", "tasks_per_group", "epochs", "batch_size"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if self.steps_per_epoch < 0:
            raise ValueError(f"steps_per_epoch must be >= 0 (0 = the whole split), got {self.steps_per_epoch!r}.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}.")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}.")
        if self.dataset.startswith("celeba") and not self.tasks:
            raise ValueError(f"dataset {self.dataset!r} needs tasks: CelebA attribute names, e.g. {PAPER_CELEBA_TASKS}.")
        if self.dataset == "celeba_folder" and not self.celeba_dir:
            raise ValueError("dataset 'celeba_folder' needs celeba_dir: the folder of the official CelebA files.")
        if self.tasks:
            as_tasks(self.tasks)  # rejects duplicates and invalid names now, not after loading data
        if self.tasks and self.dataset.startswith("planted"):
            planted = [n for group in synthetic.task_names(self.num_groups, self.tasks_per_group) for n in group]
            unknown = [t for t in self.tasks if t not in planted]
            if unknown:
                raise ValueError(f"Unknown task(s) {unknown}; the planted tasks are {planted}.")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "RunConfig":
        return cls(**data)


PRESETS = {
    "demo": RunConfig(dataset="planted", image_size=32, num_examples=3000, epochs=4, learning_rate=5e-3),
    "celeba_sample": RunConfig(
        dataset="celeba_folder", celeba_dir=os.path.normpath(SHARED_CELEBA_SAMPLE), tasks=PAPER_CELEBA_TASKS,
        image_size=64, epochs=5, cache=True,
    ),
    "celeba": RunConfig(dataset="celeba_tfds", tasks=PAPER_CELEBA_TASKS, image_size=64, epochs=100, batch_size=256),
}


@dataclasses.dataclass(frozen=True)
class RunData:
    """The unbatched splits of a run's data and its tasks."""

    splits: dict[str, tf.data.Dataset]
    tasks: list[Task]
    planted_groups: list[list[str]] | None = None


def load_data(config: RunConfig) -> RunData:
    """The run's train / validation / test splits, unbatched."""
    if config.dataset in ("planted", "planted_tabular"):
        make = synthetic.planted_groups if config.dataset == "planted" else synthetic.planted_groups_tabular
        size = {"image_size": config.image_size} if config.dataset == "planted" else {}
        data = make(config.num_groups, config.tasks_per_group, config.num_examples, seed=config.seed, **size)
        by_name = {t.name: t for t in data.tasks}
        tasks = [by_name[n] for n in config.tasks] if config.tasks else data.tasks
        return RunData(data.splits, tasks, data.groups)
    tasks = as_tasks(config.tasks)
    if config.dataset == "celeba_folder":
        splits = {s: celeba.load_folder(config.celeba_dir, tasks, s, config.image_size, config.seed)
                  for s in celeba.SPLITS}
    else:
        splits = {s: celeba.load_tfds(tasks, s, config.image_size, config.tfds_data_dir or None,
                                      config.tfds_manual_dir or None) for s in celeba.SPLITS}
    return RunData(splits, tasks)


def build_network(config: RunConfig, data: RunData, tasks: list[Task]) -> MultiTaskModel:
    """A compiled multi-task network for `tasks` on the run's trunk and optimizer."""
    keras.utils.set_random_seed(config.seed)
    if config.dataset == "planted_tabular":
        features = data.splits["train"].element_spec[0].shape[-1]
        trunk = mlp_trunk(int(features))
    else:
        trunk = celeba_resnet_trunk(config.image_size)
    model = build_multitask_model(trunk, tasks)
    model.compile(optimizer=keras.optimizers.SGD(config.learning_rate, momentum=config.momentum))
    return model


def batches(config: RunConfig, data: RunData, split: str) -> tf.data.Dataset:
    """Batched split: shuffled for training, in order for evaluation."""
    training = split == "train"
    dataset = pipeline.batched(
        data.splits[split], config.batch_size, shuffle_buffer=4096 if training else 0,
        seed=config.seed, cache=config.cache,
    )
    # A fixed number of steps per epoch may outrun the split: cycle through it.
    return dataset.repeat() if training and config.steps_per_epoch else dataset


def evaluate_per_task(model: MultiTaskModel, dataset: tf.data.Dataset) -> dict[str, dict[str, float]]:
    """{task: {"loss": ..., <metric name>: ...}} on `dataset`."""
    logs = model.evaluate(dataset, return_dict=True, verbose=0)
    return {
        t.name: {"loss": float(logs[f"{t.name}_loss"]), t.metric_name: float(logs[f"{t.name}_{t.metric_name}"])}
        for t in model.tasks
    }


def train_all_in_one(config: RunConfig, run_dir: str | None = None) -> dict:
    """Train one network on every task; return (and write to `run_dir`) its test metrics.

    Returns {"tasks": [...], "all_in_one": {task: {"loss", metric}}, "seconds": ...}.
    """
    start = time.time()
    data = load_data(config)
    if run_dir:
        write_json_atomic(os.path.join(run_dir, "config.json"), config.to_json())
    model = build_network(config, data, data.tasks)
    logging.info("Training the all-in-one network on %d tasks: %s", len(data.tasks), [t.name for t in data.tasks])
    model.fit(
        batches(config, data, "train"),
        validation_data=batches(config, data, "validation"),
        epochs=config.epochs,
        steps_per_epoch=config.steps_per_epoch or None,
        callbacks=[EpochSummary()],
        shuffle=False,  # the training batches are shuffled by tf.data
        verbose=0,
    )
    metrics = {
        "tasks": [t.name for t in data.tasks],
        "all_in_one": evaluate_per_task(model, batches(config, data, "test")),
        "seconds": round(time.time() - start, 1),
    }
    if run_dir:
        write_json_atomic(os.path.join(run_dir, "metrics.json"), metrics)
    return metrics

