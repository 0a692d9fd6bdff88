"""`RunConfig`: everything a run depends on, as nested frozen dataclasses, one per concern.

    RunConfig
      data        DataConfig        which data set, its tasks, sizes, caching
      model       ModelConfig       the trunk's width and batch normalisation
      train       TrainConfig       epochs, batches, early stopping, SGD, loss balancing
      affinity    AffinityConfig    how the affinity run collects (tag_tf.affinity)
      selection   SelectionConfig   the budgets k
      evaluation  EvaluationConfig  the baselines TAG is compared with
      runtime     RuntimeConfig     strategy, XLA, seed

Every field also has a flat name, unique across sections: the field's own name, or for the
affinity section `affinity_<field>`. Command-line flags and `RunConfig.replace` use the flat
names, and a changed setting is reported by its flat name.

>>> config = RunConfig().replace(epochs=2, affinity_every_n_steps=5)
>>> config.train.epochs, config.affinity.every_n_steps
(2, 5)
>>> RunConfig.from_json(config.to_json()) == config
True
>>> RunConfig().replace(epoch=2)
Traceback (most recent call last):
...
ValueError: Unknown setting(s) ['epoch']; valid settings: ['dataset', 'recipe', 'tasks', ...].
"""

from __future__ import annotations

import dataclasses
import os

from tag_tf.affinity import AffinityConfig
from tag_tf.balancing import BALANCERS
from tag_tf.evaluation.baselines import BASELINES
from tag_tf.data import scenes, synthetic
from tag_tf.training.distribute import STRATEGIES
from tag_tf.tasks import as_tasks

DATASETS = ("planted", "planted_tabular", "planted_textures", "scenes", "celeba_folder", "celeba_tfds", "recipe")
# "linear_heads": the trunk's flat features, one linear head per task (the TAG paper's networks);
# the others are `tag_tf.models.architectures` (a group of one task gets hard_sharing: its single-task network).
ARCHITECTURES = ("linear_heads", "hard_sharing", "cross_stitch", "mmoe", "padnet")
DEFAULT_BASELINES = ("all_in_one", "single_task", "random")
# "constant": the learning rate throughout; "cosine": decayed per epoch along a half cosine
# (`tag_tf.run.networks.epoch_learning_rate`).
LR_SCHEDULES = ("constant", "cosine")


def check_choice(name: str, value, choices) -> None:
    """ValueError naming `value` and the valid `choices` unless `value` is one of them."""
    if value not in choices:
        raise ValueError(f"Unknown {name} {value!r}; valid choices: {tuple(choices)}.")


def check_count_or_all(section, name: str, whole: str) -> None:
    """ValueError unless field `name` of `section` is an integer >= 0 (0 = all of `whole`)."""
    value = getattr(section, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0 (0 = the whole {whole}), got {value!r}.")


def check_positive_ints(section, names) -> None:
    """ValueError unless every field `names` of `section` is a positive integer."""
    for name in names:
        value = getattr(section, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}.")


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """The data of a run.

    Attributes:
      dataset: one of `DATASETS` ("recipe": the user's tasks, model and data, `tag_tf.run.recipe`;
        "scenes": rendered scenes with dense tasks, `tag_tf.data.scenes`).
      recipe: the recipe's Python file or module (for `recipe`).
      tasks: task names; empty means every task of a planted data set or a recipe. Required for
        CelebA.
      celeba_dir: the official CelebA folder (for `celeba_folder`).
      tfds_data_dir, tfds_manual_dir: passed to `celeba.load_tfds` (for `celeba_tfds`).
      image_size: side of the square input images.
      num_examples, planted_groups, tasks_per_group: size and planted structure of planted data
        (num_examples also of scenes).
      train_examples: train on the first this many examples of the training split only (0: all of
        them), for every data set; validation and test stay whole. Few labels per task, measured on
        evaluation sets large enough to tell networks apart.
      cache: keep decoded data in memory after the first epoch.
    """

    dataset: str = "planted"
    recipe: str = ""
    tasks: tuple[str, ...] = ()
    celeba_dir: str = ""
    tfds_data_dir: str = ""
    tfds_manual_dir: str = ""
    image_size: int = 64
    num_examples: int = 3000
    planted_groups: int = 3
    tasks_per_group: int = 3
    train_examples: int = 0
    cache: bool = False

    def __post_init__(self):
        object.__setattr__(self, "tasks", tuple(self.tasks))
        check_choice("dataset", self.dataset, DATASETS)
        check_positive_ints(self, ("image_size", "num_examples", "planted_groups", "tasks_per_group"))
        check_count_or_all(self, "train_examples", "training split")
        if self.dataset.startswith("celeba") and not self.tasks:
            raise ValueError(f"dataset {self.dataset!r} needs tasks: CelebA attribute names, e.g. Smiling,Young.")
        if (self.dataset == "recipe") != bool(self.recipe):
            raise ValueError("dataset 'recipe' goes with recipe (a Python file or module defining TASKS, build_model "
                             f"and load_data), and recipe with dataset 'recipe'; got dataset={self.dataset!r}, "
                             f"recipe={self.recipe!r}.")
        if self.dataset == "celeba_folder" and not self.celeba_dir:
            raise ValueError("dataset 'celeba_folder' needs celeba_dir: the folder of the official CelebA files.")
        if self.tasks:
            as_tasks(self.tasks)  # rejects duplicates and invalid names now, not after loading data
        if self.tasks and (self.dataset.startswith("planted") or self.dataset == "scenes"):
            planted = list(scenes.TASK_NAMES) if self.dataset == "scenes" else [
                n for group in synthetic.task_names(self.planted_groups, self.tasks_per_group) for n in group]
            unknown = [t for t in self.tasks if t not in planted]
            if unknown:
                source = "scenes" if self.dataset == "scenes" else "planted"
                raise ValueError(f"Unknown task(s) {unknown}; the {source} tasks are {planted}.")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """Every network of a run: the trunk (the CelebA trunk for images, an MLP for tabular data)
    and the architecture around it (not for recipes, which build their own).

    Attributes:
      architecture: one of `ARCHITECTURES`; "linear_heads" needs flat features (no dense task);
        the others take the trunk's feature map (the MLP's features for tabular data).
      head_units: width of each task's decoder (and of PAD-Net's features) in the architectures.
      trunk_filters: width of the CelebA trunk's convolutions.
      bn_momentum: momentum of its batch normalisation statistics.
    """

    architecture: str = "linear_heads"
    head_units: int = 32
    trunk_filters: int = 64
    bn_momentum: float = 0.99

    def __post_init__(self):
        check_choice("architecture", self.architecture, ARCHITECTURES)
        check_positive_ints(self, ("head_units", "trunk_filters"))
        if not 0 <= self.bn_momentum < 1:
            raise ValueError(f"bn_momentum must be in [0, 1), got {self.bn_momentum!r}.")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """How every network of a run is trained.

    Attributes:
      epochs, batch_size, steps_per_epoch: training length (steps_per_epoch 0 = whole split).
      patience: early stopping on validation loss (best weights restored) in group training.
      learning_rate, momentum: SGD, as in the official TAG code (5e-4, 0.9).
      lr_schedule: one of `LR_SCHEDULES`: the learning rate of every epoch (of the affinity run
        and of every group's network).
      balancer: loss balancing, one of `tag_tf.balancing.BALANCERS` ("equal": Σ Task.weight · loss).
    """

    epochs: int = 3
    batch_size: int = 64
    steps_per_epoch: int = 0
    patience: int = 3
    learning_rate: float = 5e-4
    momentum: float = 0.9
    lr_schedule: str = "constant"
    balancer: str = "equal"

    def __post_init__(self):
        check_positive_ints(self, ("epochs", "batch_size", "patience"))
        check_choice("balancer", self.balancer, BALANCERS)
        check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        check_count_or_all(self, "steps_per_epoch", "split")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}.")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}.")


@dataclasses.dataclass(frozen=True)
class SelectionConfig:
    """Attributes:
      num_groups: the budgets k (most networks) to select groupings for.
    """

    num_groups: tuple[int, ...] = (2, 3)

    def __post_init__(self):
        object.__setattr__(self, "num_groups", tuple(self.num_groups))
        if not self.num_groups or any(isinstance(k, bool) or not isinstance(k, int) or k < 1 for k in self.num_groups):
            raise ValueError(f"num_groups must be a non-empty list of integers >= 1, got {list(self.num_groups)}.")


@dataclasses.dataclass(frozen=True)
class EvaluationConfig:
    """Attributes:
      baselines: which of `tag_tf.evaluation.baselines.BASELINES` to train and evaluate beside TAG.
      random_seeds: random groupings per budget k.
      eval_seeds: networks trained per group, with seeds seed, seed + 1, ... (initialisation and
        shuffling; the data stay the same): every grouping's measures are means over them, with
        their spread, and TAG is compared with each baseline seed by seed.
    """

    baselines: tuple[str, ...] = DEFAULT_BASELINES
    random_seeds: int = 5
    eval_seeds: int = 1

    def __post_init__(self):
        object.__setattr__(self, "baselines", tuple(self.baselines))
        for baseline in self.baselines:
            check_choice("baseline", baseline, BASELINES)
        check_positive_ints(self, ("random_seeds", "eval_seeds"))


@dataclasses.dataclass(frozen=True)
class RuntimeConfig:
    """Attributes:
      strategy: one of `tag_tf.training.distribute.STRATEGIES` ("multi_worker": the same command on every
        worker, with TF_CONFIG; the chief writes the run directory).
      jit_compile: compile training steps with XLA (Keras' `jit_compile`).
      seed: seeds the data split, the shuffling, the weight initialisation, random groupings.
    """

    strategy: str = "default"
    jit_compile: bool = False
    seed: int = 0

    def __post_init__(self):
        check_choice("strategy", self.strategy, STRATEGIES)


# section name -> (its dataclass, the prefix of its fields' flat names)
SECTIONS = {
    "data": (DataConfig, ""),
    "model": (ModelConfig, ""),
    "train": (TrainConfig, ""),
    "affinity": (AffinityConfig, "affinity_"),
    "selection": (SelectionConfig, ""),
    "evaluation": (EvaluationConfig, ""),
    "runtime": (RuntimeConfig, ""),
}


def flat_names() -> dict[str, tuple[str, str]]:
    """{flat name: (section, field)} for every setting, in section order."""
    return {prefix + field.name: (section, field.name)
            for section, (cls, prefix) in SECTIONS.items() for field in dataclasses.fields(cls)}


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything a run depends on (see the module docstring); `experiments/tag_pipeline.py` maps
    one flag onto each flat name."""

    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    train: TrainConfig = TrainConfig()
    affinity: AffinityConfig = AffinityConfig()
    selection: SelectionConfig = SelectionConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    runtime: RuntimeConfig = RuntimeConfig()

    def __post_init__(self):
        if self.data.dataset == "scenes" and self.model.architecture == "linear_heads":
            raise ValueError("dataset 'scenes' has dense tasks, which linear heads on flat features cannot predict; "
                             f"choose an architecture from {ARCHITECTURES[1:]} (e.g. hard_sharing).")

    def flat(self) -> dict:
        """{flat name: value} of every setting."""
        return {name: getattr(getattr(self, section), field) for name, (section, field) in flat_names().items()}

    def replace(self, **settings) -> "RunConfig":
        """A copy with the settings given by flat name changed (each section validated again)."""
        names = flat_names()
        unknown = [name for name in settings if name not in names]
        if unknown:
            raise ValueError(f"Unknown setting(s) {unknown}; valid settings: {list(names)}.")
        changes: dict[str, dict] = {}
        for name, value in settings.items():
            section, field = names[name]
            changes.setdefault(section, {})[field] = value
        return dataclasses.replace(self, **{section: dataclasses.replace(getattr(self, section), **fields)
                                            for section, fields in changes.items()})

    def differences(self, other: "RunConfig") -> list[str]:
        """The flat names of the settings in which `other` differs."""
        mine, theirs = self.flat(), other.flat()
        return [name for name in mine if mine[name] != theirs[name]]

    def check_paths(self) -> None:
        """Raise ValueError if a folder the run reads does not exist, or its recipe is not one
        (checked by `run` before any work; not on construction, so that presets naming a folder
        absent here still load)."""
        if self.data.dataset == "celeba_folder" and not os.path.isdir(self.data.celeba_dir):
            raise ValueError(f"celeba_dir {self.data.celeba_dir!r} does not exist.")
        if self.data.dataset == "recipe":
            from tag_tf.run.recipe import load_recipe  # imports the user's file

            recipe = load_recipe(self.data.recipe)
            unknown = [t for t in self.data.tasks if t not in [task.name for task in recipe.tasks]]
            if unknown:
                raise ValueError(f"Unknown task(s) {unknown}; the recipe's tasks are {[t.name for t in recipe.tasks]}.")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "RunConfig":
        unknown = sorted(set(data) - set(SECTIONS))
        if unknown:
            raise ValueError(f"Unknown config section(s) {unknown}; valid sections: {list(SECTIONS)}.")
        return cls(**{name: SECTIONS[name][0](**values) for name, values in data.items()})
