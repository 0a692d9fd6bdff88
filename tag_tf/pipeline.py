"""A run: its configuration, its data, and the stages that work over its run directory.

    affinity  one multi-task network with affinity collection     -> affinity.json
    select    the best grouping for every budget k                 -> selection.json
    train     one network per group (TAG's groups and baselines')  -> groups/<id>/result.json, train.json
    evaluate  every grouping, each task from its serving network   -> metrics.json
    export    TAG's grouping for every budget k as the multi-head
              SavedModel `tag_k<k>` (TF Serving layout, next version)
              + models.config and the other TF Serving files         -> export/export.json
    report    plots, tables, saliency maps, how to query the model -> report/index.html

Each stage reads the files of the stages before it and writes its own atomically. `run` skips a
stage whose output exists, unless told to overwrite; a stage that runs makes every later stage
run too. The train stage keeps one result per group: a group already trained is never trained
again (whatever chose it). Every training backs up after each epoch (`BackupAndRestore`), so a
run interrupted at any point continues where it stopped, from the last finished epoch.

>>> config = PRESETS["demo"]
>>> config.dataset, config.num_groups
('planted', (3,))
>>> RunConfig.from_json(config.to_json()) == config
True
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import time

import keras
import numpy as np
import tensorflow as tf
from absl import logging

from serving.config import write_deployment
from tag_tf import balancing, grouped, selection
from tag_tf.affinity import MODES, AffinityConfig, TaskAffinity
from tag_tf.data import celeba, pipeline, synthetic
from tag_tf.distribute import STRATEGIES, strategy_from_name
from tag_tf.export import export_multihead
from tag_tf.io import read_json, save_model_atomic, write_json_atomic
from tag_tf.models import build_multitask_model, celeba_resnet_trunk, inference_flops, mlp_trunk
from tag_tf.report import log_selection, write_report
from tag_tf.tasks import Task, as_tasks
from tag_tf.training import AffinityLogger, EpochSummary, MultiTaskModel

DATASETS = ("planted", "planted_tabular", "celeba_folder", "celeba_tfds")
STAGES = ("affinity", "select", "train", "evaluate", "export", "report")
BASELINES = ("all_in_one", "single_task", "random", "hoa")
HOA_MAX_TASKS = 16
DEFAULT_BASELINES = ("all_in_one", "single_task", "random")
# The nine CelebA attributes of the TAG paper.
PAPER_CELEBA_TASKS = (
    "5_o_Clock_Shadow", "Black_Hair", "Blond_Hair", "Brown_Hair", "Goatee",
    "Mustache", "No_Beard", "Rosy_Cheeks", "Wearing_Hat",
)
SHARED_CELEBA_SAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "celeba_sample")


def _check_choice(name: str, value, choices) -> None:
    if value not in choices:
        raise ValueError(f"Unknown {name} {value!r}; valid choices: {tuple(choices)}.")


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Everything a run depends on; `experiments/tag_pipeline.py` maps its flags onto these fields.

    Attributes:
      dataset: one of `DATASETS`.
      tasks: task names; empty means every task of a planted data set. Required for CelebA.
      celeba_dir: the official CelebA folder (for `celeba_folder`).
      tfds_data_dir, tfds_manual_dir: passed to `celeba.load_tfds` (for `celeba_tfds`).
      image_size: side of the square input images; trunk_filters, bn_momentum: width and batch
        normalisation momentum of the CelebA trunk.
      num_examples, planted_groups, tasks_per_group: size and planted structure of planted data.
      num_groups: the budgets k (most networks) to select groupings for.
      affinity_mode, affinity_every: the `AffinityConfig` of the affinity stage. Every step (1) is
        the official code's setting and costs about k times plain training; every n steps costs
        about (n − 1 + k)/n times. What the matrix needs is enough samples (BENCHMARKS.md: a
        thousand or so): short runs (the demo, the CelebA sample) take every step; the full
        CelebA preset takes every 40th of its 63,600 steps (about 1,600 samples, 1.21x plain
        training per step, 1.11x with its XLA).
      baselines: which of `BASELINES` to train and evaluate; random_seeds: random groupings per k.
        "hoa" (Standley et al. 2020) trains every pair and every single task, then selects from
        their validation losses with `selection.select_from_costs`.
      epochs, batch_size, steps_per_epoch: training length (steps_per_epoch 0 = whole split).
      patience: early stopping on validation loss (best weights restored) in group training.
      learning_rate, momentum: SGD, as in the official TAG code (5e-4, 0.9).
      balancer: loss balancing of every network trained, one of `tag_tf.balancing.BALANCERS`
        ("equal": Σ Task.weight · loss). Affinity is measured on the unweighted task losses.
      strategy: one of `tag_tf.distribute.STRATEGIES`.
      jit_compile: compile training steps with XLA (Keras' `jit_compile`); on CPU it makes exact
        affinity steps about 43% cheaper (5.3x instead of 9.0x a plain step; BENCHMARKS.md).
      cache: keep decoded data in memory after the first epoch.
      seed: seeds the data split, the shuffling, the weight initialisation, random groupings.
    """

    dataset: str = "planted"
    tasks: tuple[str, ...] = ()
    celeba_dir: str = ""
    tfds_data_dir: str = ""
    tfds_manual_dir: str = ""
    image_size: int = 64
    trunk_filters: int = 64
    bn_momentum: float = 0.99
    num_examples: int = 3000
    planted_groups: int = 3
    tasks_per_group: int = 3
    num_groups: tuple[int, ...] = (2, 3)
    affinity_mode: str = "exact"
    affinity_every: int = 1
    baselines: tuple[str, ...] = DEFAULT_BASELINES
    random_seeds: int = 5
    epochs: int = 3
    batch_size: int = 64
    steps_per_epoch: int = 0
    patience: int = 3
    learning_rate: float = 5e-4
    momentum: float = 0.9
    balancer: str = "equal"
    strategy: str = "default"
    jit_compile: bool = False
    cache: bool = False
    seed: int = 0

    def __post_init__(self):
        for name in ("tasks", "num_groups", "baselines"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        _check_choice("dataset", self.dataset, DATASETS)
        _check_choice("affinity_mode", self.affinity_mode, MODES)
        _check_choice("strategy", self.strategy, STRATEGIES)
        _check_choice("balancer", self.balancer, balancing.BALANCERS)
        for baseline in self.baselines:
            _check_choice("baseline", baseline, BASELINES)
        for name in ("image_size", "trunk_filters", "num_examples", "planted_groups", "tasks_per_group",
                     "epochs", "batch_size", "affinity_every", "random_seeds", "patience"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}.")
        if not self.num_groups or any(not isinstance(k, int) or k < 1 for k in self.num_groups):
            raise ValueError(f"num_groups must be a non-empty list of integers >= 1, got {list(self.num_groups)}.")
        if self.steps_per_epoch < 0:
            raise ValueError(f"steps_per_epoch must be >= 0 (0 = the whole split), got {self.steps_per_epoch!r}.")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate must be > 0, got {self.learning_rate!r}.")
        if not 0 <= self.momentum < 1:
            raise ValueError(f"momentum must be in [0, 1), got {self.momentum!r}.")
        if not 0 <= self.bn_momentum < 1:
            raise ValueError(f"bn_momentum must be in [0, 1), got {self.bn_momentum!r}.")
        if self.dataset.startswith("celeba") and not self.tasks:
            raise ValueError(f"dataset {self.dataset!r} needs tasks: CelebA attribute names, e.g. {PAPER_CELEBA_TASKS}.")
        if self.dataset == "celeba_folder" and not self.celeba_dir:
            raise ValueError("dataset 'celeba_folder' needs celeba_dir: the folder of the official CelebA files.")
        if self.tasks:
            as_tasks(self.tasks)  # rejects duplicates and invalid names now, not after loading data
        if self.tasks and self.dataset.startswith("planted"):
            planted = [n for group in synthetic.task_names(self.planted_groups, self.tasks_per_group) for n in group]
            unknown = [t for t in self.tasks if t not in planted]
            if unknown:
                raise ValueError(f"Unknown task(s) {unknown}; the planted tasks are {planted}.")

    def check_paths(self) -> None:
        """Raise ValueError if a folder the run reads does not exist (checked by `run` before any
        work; not on construction, so that presets naming a folder absent here still load)."""
        if self.dataset == "celeba_folder" and not os.path.isdir(self.celeba_dir):
            raise ValueError(f"celeba_dir {self.celeba_dir!r} does not exist.")

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> "RunConfig":
        return cls(**data)


PRESETS = {
    "demo": RunConfig(dataset="planted", image_size=16, trunk_filters=8, bn_momentum=0.9, num_examples=2000,
                      num_groups=(3,), epochs=5, learning_rate=0.05, momentum=0.0, random_seeds=3, patience=2),
    "celeba_sample": RunConfig(
        dataset="celeba_folder", celeba_dir=os.path.normpath(SHARED_CELEBA_SAMPLE), tasks=PAPER_CELEBA_TASKS,
        image_size=64, epochs=5, cache=True,
    ),
    "celeba": RunConfig(dataset="celeba_tfds", tasks=PAPER_CELEBA_TASKS, image_size=64, epochs=100, batch_size=256,
                        affinity_every=40, jit_compile=True),
}


@dataclasses.dataclass(frozen=True)
class RunData:
    """The unbatched splits of a run's data and its tasks (and the planted grouping, if any)."""

    splits: dict[str, tf.data.Dataset]
    tasks: list[Task]
    planted_grouping: list[list[str]] | None = None


def load_data(config: RunConfig) -> RunData:
    """The run's train / validation / test splits, unbatched."""
    if config.dataset in ("planted", "planted_tabular"):
        make = synthetic.planted_groups if config.dataset == "planted" else synthetic.planted_groups_tabular
        size = {"image_size": config.image_size} if config.dataset == "planted" else {}
        data = make(config.planted_groups, config.tasks_per_group, config.num_examples, seed=config.seed, **size)
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


def build_network(config: RunConfig, data: RunData, tasks: list[Task],
                  affinity: AffinityConfig | None = None) -> MultiTaskModel:
    """A compiled multi-task network for `tasks` on the run's trunk, optimizer and strategy."""
    keras.utils.set_random_seed(config.seed)
    with strategy_from_name(config.strategy).scope():
        if config.dataset == "planted_tabular":
            trunk = mlp_trunk(int(data.splits["train"].element_spec[0].shape[-1]))
        else:
            trunk = celeba_resnet_trunk(config.image_size, filters=config.trunk_filters,
                                        bn_momentum=config.bn_momentum)
        model = build_multitask_model(trunk, tasks, affinity=affinity, 
                                      balancer=balancing.balancer_from_name(config.balancer))
        model.compile(optimizer=keras.optimizers.SGD(config.learning_rate, momentum=config.momentum),
                      jit_compile=config.jit_compile)
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


def fit(config: RunConfig, data: RunData, model: MultiTaskModel, backup_dir: str,
        callbacks=()) -> keras.callbacks.History:
    """Train with the run's settings; an interrupted fit resumes from `backup_dir` (last epoch)."""
    callbacks = [keras.callbacks.BackupAndRestore(backup_dir), *callbacks]
    return model.fit(
        batches(config, data, "train"),
        validation_data=batches(config, data, "validation"),
        epochs=config.epochs,
        steps_per_epoch=config.steps_per_epoch or None,
        callbacks=[EpochSummary(), *callbacks],
        shuffle=False,  # the training batches are shuffled by tf.data
        verbose=0,
    )


def evaluate_per_task(model: MultiTaskModel, dataset: tf.data.Dataset) -> dict[str, dict[str, float]]:
    """{task: {"loss": ..., <metric name>: ...}} on `dataset`."""
    logs = model.evaluate(dataset, return_dict=True, verbose=0)
    return {
        t.name: {"loss": float(logs[f"{t.name}_loss"]), t.metric_name: float(logs[f"{t.name}_{t.metric_name}"])}
        for t in model.tasks
    }


# ---------------------------------------------------------------------------------------------
# Stages


@dataclasses.dataclass
class RunReport:
    """What `run` did: the stages it ran (in order) and the groups it trained."""

    ran: list[str] = dataclasses.field(default_factory=list)
    trained: list[tuple[str, ...]] = dataclasses.field(default_factory=list)


def run(config: RunConfig, run_dir: str, overwrite: bool = False) -> RunReport:
    """Run every stage over `run_dir`, skipping those whose output exists (unless `overwrite`)."""
    config.check_paths()
    os.makedirs(run_dir, exist_ok=True)
    config_path = os.path.join(run_dir, "config.json")
    if os.path.exists(config_path) and not overwrite:
        saved = RunConfig.from_json(read_json(config_path))
        if saved != config:
            changed = [f.name for f in dataclasses.fields(config) if getattr(saved, f.name) != getattr(config, f.name)]
            raise ValueError(f"{run_dir} holds a run with other settings ({changed}); use another run_dir or overwrite.")
    write_json_atomic(config_path, config.to_json())
    data = load_data(config)
    report = RunReport()
    rerun = overwrite
    for stage in STAGES:
        output = os.path.join(run_dir, STAGE_OUTPUTS[stage])
        if not rerun and os.path.exists(output):
            logging.info("stage %s: %s exists, skipped", stage, STAGE_OUTPUTS[stage])
            continue
        start = time.time()
        STAGE_FUNCTIONS[stage](config, data, run_dir, report, overwrite)
        report.ran.append(stage)
        rerun = True  # every later stage depends on this one
        logging.info("stage %s: done in %.1fs -> %s", stage, time.time() - start, output)
    return report


def affinity_stage(config: RunConfig, data: RunData, run_dir: str, report: RunReport, overwrite: bool) -> None:
    """Train the all-in-one network with affinity collection; write affinity.json."""
    model = build_network(config, data, data.tasks, AffinityConfig(config.affinity_mode, config.affinity_every))
    progress = os.path.join(run_dir, "affinity.partial.json")  # per epoch; the stage output comes last
    start = time.time()
    fit(config, data, model, os.path.join(run_dir, "affinity.backup"),
        [AffinityLogger(json_path=progress, log_dir=os.path.join(run_dir, "tensorboard"))])
    result = model.task_affinity()
    data_json = result.to_json()
    data_json["seconds"] = round(time.time() - start, 2)
    write_json_atomic(os.path.join(run_dir, "affinity.json"), data_json)
    os.remove(progress)


def select_stage(config: RunConfig, data: RunData, run_dir: str, report: RunReport, overwrite: bool) -> None:
    """Select TAG's grouping for every budget k; write selection.json."""
    result = TaskAffinity.from_json(os.path.join(run_dir, "affinity.json"))
    matrix = result.matrix
    if not np.all(np.isfinite(matrix)):
        logging.warning("affinity pairs without samples (NaN) are taken as 0: %s",
                        [(result.tasks[i], result.tasks[j]) for i, j in zip(*np.nonzero(~np.isfinite(matrix)))])
        matrix = np.where(np.isfinite(matrix), matrix, 0.0)
    groupings = [selection.select_groups(matrix, k, tasks=list(result.tasks)) for k in config.num_groups]
    selection.save_selection(os.path.join(run_dir, "selection.json"), list(result.tasks), groupings)


def train_stage(config: RunConfig, data: RunData, run_dir: str, report: RunReport, overwrite: bool) -> None:
    """Train one network per group that any grouping to evaluate needs; one result file each."""
    names = [t.name for t in data.tasks]
    needed = {group for _, grouping in groupings_to_evaluate(config, names, run_dir) for group in grouping.groups}
    if "hoa" in config.baselines:
        needed |= set(hoa_networks(names))
    needed = sorted(needed, key=lambda g: (len(g), [names.index(t) for t in g]))
    by_name = {t.name: t for t in data.tasks}
    for group in needed:
        _train_group(config, data, run_dir, names, [by_name[t] for t in group], report, overwrite)
    if "hoa" in config.baselines:  # HOA's choice needs the pairs first; then its groups are trained
        chosen = {g for _, grouping in hoa_groupings(config, names, run_dir) for g in grouping.groups}
        extra = sorted(chosen - set(needed), key=lambda g: (len(g), [names.index(t) for t in g]))
        for group in extra:
            _train_group(config, data, run_dir, names, [by_name[t] for t in group], report, overwrite)
        needed += extra
    write_json_atomic(os.path.join(run_dir, "train.json"),
                      {"groups": [{"tasks": list(g), "result": os.path.relpath(group_result_path(run_dir, names, g), run_dir)}
                                  for g in needed]})


def _train_group(config: RunConfig, data: RunData, run_dir: str, names: list[str], tasks: list[Task],
                 report: RunReport, overwrite: bool) -> None:
    """Train (plain, early stopping) and measure one group's network, unless its result exists."""
    group = tuple(t.name for t in tasks)
    path = group_result_path(run_dir, names, group)
    if os.path.exists(path) and not overwrite:
        return
    logging.info("training a network on %s", list(group))
    start = time.time()
    model = build_network(config, data, tasks)
    early = keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.patience, restore_best_weights=True)
    fit(config, data, model, os.path.join(os.path.dirname(path), "backup"), [early])
    result = {
        "tasks": list(group),
        "test": evaluate_per_task(model, batches(config, data, "test")),
        "validation": evaluate_per_task(model, batches(config, data, "validation")),
        "parameters": int(model.count_params()),
        "flops": inference_flops(model),
        "seconds": round(time.time() - start, 2),
    }
    save_model_atomic(model, os.path.join(os.path.dirname(path), "model.keras"))
    write_json_atomic(path, result)
    report.trained.append(group)


def evaluate_stage(config: RunConfig, data: RunData, run_dir: str, report: RunReport, overwrite: bool) -> None:
    """Measure every grouping from its networks' results; write metrics.json."""
    names = [t.name for t in data.tasks]
    results = {}
    rows = []
    groupings = groupings_to_evaluate(config, names, run_dir)
    if "hoa" in config.baselines:
        groupings += hoa_groupings(config, names, run_dir)
    for label, grouping in groupings:
        for group in grouping.groups:
            if group not in results:
                results[group] = read_json(group_result_path(run_dir, names, group))
        per_task = {t: results[grouping.served_by(t)]["test"][t] for t in names}
        rows.append({
            "name": label,
            "groups": [list(g) for g in grouping.groups],
            "assignment": dict(grouping.assignment),
            "per_task": per_task,
            "total_error": grouped.total_error(per_task),
            "networks": len(grouping.groups),
            "parameters": sum(results[g]["parameters"] for g in grouping.groups),
            "inference_flops": sum(results[g].get("flops", 0) for g in grouping.groups),
            "selection_seconds": grouping.seconds,
        })
    single = {t: grouped.task_error(results[(t,)]["test"][t]) for t in names} if "single_task" in config.baselines else None
    for row in rows:
        if single:
            errors = {t: grouped.task_error(m) for t, m in row["per_task"].items()}
            row["delta_mtl"] = grouped.delta_mtl(errors, single, lower_is_better=True)
    write_json_atomic(os.path.join(run_dir, "metrics.json"), {"tasks": names, "groupings": rows})


def export_stage(config: RunConfig, data: RunData, run_dir: str, report: RunReport, overwrite: bool) -> None:
    """Export TAG's grouping for every budget k as the model `tag_k<k>` under export/ (its next
    version: a rerun adds a version, which a running server picks up), with models.config and the
    other TF Serving files (`serving.config.write_deployment`); write export/export.json."""
    names = [t.name for t in data.tasks]
    _, groupings = selection.load_selection(os.path.join(run_dir, "selection.json"))
    affinity = TaskAffinity.from_json(os.path.join(run_dir, "affinity.json"))
    export_dir = os.path.join(run_dir, "export")
    models = []
    for grouping in groupings:
        networks = [keras.saving.load_model(os.path.join(os.path.dirname(group_result_path(run_dir, names, group)),
                                                         "model.keras"), compile=False) for group in grouping.groups]
        name = f"tag_k{grouping.budget}"
        path = export_multihead(networks, {t: grouping.assignment[t] for t in names}, export_dir, name,
                                affinity=affinity)
        models.append({"name": name, "version": int(os.path.basename(path)), "path": os.path.relpath(path, run_dir),
                       "groups": [list(g) for g in grouping.groups], "assignment": dict(grouping.assignment)})
    files = write_deployment(export_dir, [m["name"] for m in models])
    write_json_atomic(os.path.join(export_dir, "export.json"),
                      {"models": models, **{kind: os.path.relpath(path, run_dir) for kind, path in files.items()}})


def report_stage(config: RunConfig, data: RunData, run_dir: str, report: RunReport, overwrite: bool) -> None:
    """Write report/ (`tag_tf.report`: plots, tables, saliency maps of test images, serving) and
    the selection as TensorBoard text."""
    names, groupings = selection.load_selection(os.path.join(run_dir, "selection.json"))
    log_selection(os.path.join(run_dir, "tensorboard"), names, groupings)
    write_report(run_dir, data.tasks, data.splits["test"])


def groupings_to_evaluate(config: RunConfig, names: list[str], run_dir: str) -> list[tuple[str, selection.Grouping]]:
    """(label, grouping) for TAG at every k and for every baseline, in a fixed order."""
    _, tag = selection.load_selection(os.path.join(run_dir, "selection.json"))
    affinity_seconds = read_json(os.path.join(run_dir, "affinity.json")).get("seconds", 0.0)
    # TAG's time to choose: the affinity run's and the solver's
    result = [(f"tag_k{g.budget}", dataclasses.replace(g, seconds=affinity_seconds + g.seconds)) for g in tag]
    if "all_in_one" in config.baselines:
        result.append(("all_in_one", _fixed_grouping([tuple(names)], names)))
    if "single_task" in config.baselines:
        result.append(("single_task", _fixed_grouping([(t,) for t in names], names)))
    if "random" in config.baselines:
        for k in config.num_groups:
            for seed in range(config.random_seeds):
                groups = grouped.random_partition(names, k, seed=config.seed * 1000 + seed)
                result.append((f"random_k{k}_seed{seed}", _fixed_grouping(groups, names)))
    return result


def hoa_networks(names: list[str]) -> list[tuple[str, ...]]:
    """The networks HOA trains to choose from: every single task and every pair."""
    return [(t,) for t in names] + [(a, b) for i, a in enumerate(names) for b in names[i + 1:]]


def hoa_groupings(config: RunConfig, names: list[str], run_dir: str) -> list[tuple[str, selection.Grouping]]:
    """HOA (Standley et al. 2020): estimate every group's per-task validation loss from the pair
    networks (task t in group g: the mean of t's loss in its pairs with the other members; alone:
    its single-task loss), then choose with `select_from_costs` for every budget k. Its seconds
    are the training time of the pair and single networks plus the solver's."""
    if len(names) > HOA_MAX_TASKS:
        raise ValueError(f"HOA scores every subset of the tasks: at most {HOA_MAX_TASKS} tasks, got {len(names)}.")
    loss, seconds = {}, 0.0
    for group in hoa_networks(names):
        result = read_json(group_result_path(run_dir, names, group))
        seconds += result["seconds"]
        for t in group:
            loss[(t,) + tuple(o for o in group if o != t)] = result["validation"][t]["loss"]
    estimates = {}
    for size in range(1, len(names) + 1):
        for group in itertools.combinations(names, size):
            estimates[group] = {t: loss[(t,)] if size == 1 else
                                float(np.mean([loss[(t, o)] for o in group if o != t])) for t in group}
    choices = []
    for k in config.num_groups:
        grouping = selection.select_from_costs(estimates, budget=k, tasks=names)
        choices.append((f"hoa_k{k}", dataclasses.replace(grouping, seconds=seconds + grouping.seconds)))
    return choices


def _fixed_grouping(groups: list[tuple[str, ...]], names: list[str]) -> selection.Grouping:
    """A partition of the tasks as a Grouping (each task served by its only group)."""
    assignment = {t: next(i for i, g in enumerate(groups) if t in g) for t in names}
    return selection.Grouping(groups=tuple(groups), assignment=assignment, score=float("nan"), optimal=False,
                              upper_bound=float("nan"), method="fixed", seconds=0.0, budget=len(groups))


def group_result_path(run_dir: str, names: list[str], group: tuple[str, ...]) -> str:
    """groups/<id>/result.json, the id made of the tasks' positions: "t0-t3-t5"."""
    group_id = "-".join(f"t{names.index(t)}" for t in group)
    return os.path.join(run_dir, "groups", group_id, "result.json")


STAGE_OUTPUTS = {"affinity": "affinity.json", "select": "selection.json", "train": "train.json", "evaluate": "metrics.json",
                 "export": "export/export.json", "report": "report/index.html"}
STAGE_FUNCTIONS = {"affinity": affinity_stage, "select": select_stage, "train": train_stage, "evaluate": evaluate_stage,
                   "export": export_stage, "report": report_stage}
