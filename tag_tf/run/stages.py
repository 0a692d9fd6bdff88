"""The stages of a run, over its run directory (`tag_tf.run.rundir.RunDir`):

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

Under `--strategy=multi_worker` the same command runs on every worker (TF_CONFIG). The stages
that train (affinity, train) run on all of them; the chief alone writes the run directory and runs
the other stages; workers read what the chief wrote, write to a scratch folder they delete at the
end, and restore interrupted trainings from the chief's backups. A barrier ends every stage.

>>> STAGES
('affinity', 'select', 'train', 'evaluate', 'export', 'report')
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
import time

import keras
import tensorflow as tf
from absl import logging

from tag_tf.evaluation import baselines, grouped, hoa

from tag_tf import selection
from tag_tf.affinity import TaskAffinity, candidate_groups
from tag_tf.export.deployment import write_deployment
from tag_tf.training.distribute import barrier, is_chief, strategy_from_name
from tag_tf.export import export_multihead
from tag_tf.utils.io import read_json, save_model_atomic, write_json_atomic
from tag_tf.models import inference_flops
from tag_tf.report.html import log_selection, write_report
from tag_tf.run.config import RunConfig
from tag_tf.run.data import RunData, batches, load_data
from tag_tf.run.networks import build_network, evaluate_per_task, fit, train_network
from tag_tf.run.rundir import RunDir
from tag_tf.run.seeds import network_seed
from tag_tf.training import AffinityLogger

STAGES = ("affinity", "select", "train", "evaluate", "export", "report")
TRAINING_STAGES = ("affinity", "train")  # the stages every worker of a multi-worker run takes part in


@dataclasses.dataclass
class RunReport:
    """What `run` did: the stages it ran (in order) and the groups it trained."""

    ran: list[str] = dataclasses.field(default_factory=list)
    trained: list[tuple[str, ...]] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Run:
    """What every stage works with.

    Attributes:
      config, data: the settings and the data.
      dir: the run directory, which every process reads.
      out: where this process writes: `dir` on the chief, a scratch folder on other workers.
      overwrite: run stages and train groups again even when their output exists.
      report: what this call did.
      strategy: the run's `tf.distribute` strategy.
    """

    config: RunConfig
    data: RunData
    dir: RunDir
    overwrite: bool
    report: RunReport
    out: RunDir | None = None  # None: `dir`
    strategy: tf.distribute.Strategy = dataclasses.field(default_factory=tf.distribute.get_strategy)

    def __post_init__(self):
        self.out = self.out or self.dir

    @property
    def chief(self) -> bool:
        return self.out.path == self.dir.path

    @property
    def names(self) -> list[str]:
        return [t.name for t in self.data.tasks]


def run(config: RunConfig, run_dir: str, overwrite: bool = False) -> RunReport:
    """Run every stage over `run_dir`, skipping those whose output exists (unless `overwrite`)."""
    config.check_paths()
    strategy = strategy_from_name(config.runtime.strategy)  # first: a multi-worker one precedes any TF op
    paths = RunDir(run_dir)
    if not overwrite:
        try:
            saved = RunConfig.from_json(read_json(paths.config))
        except FileNotFoundError:
            saved = config
        if saved != config:
            raise ValueError(f"{run_dir} holds a run with other settings ({saved.differences(config)}); use another "
                             f"run_dir or overwrite.")
    scratch = None if is_chief(strategy) else tempfile.mkdtemp(prefix="tag_tf-worker-")
    try:
        context = Run(config, load_data(config), paths, overwrite, RunReport(), RunDir(scratch or run_dir), strategy)
        check_group_lookahead(config, context.names)
        write_json_atomic(context.out.config, config.to_json())
        rerun = overwrite
        for stage in STAGES:
            output = paths.stage_output(stage)
            if not rerun and os.path.exists(output):
                logging.info("stage %s: %s exists, skipped", stage, paths.relative(output))
                continue
            start = time.time()
            if context.chief or stage in TRAINING_STAGES:
                STAGE_FUNCTIONS[stage](context)
                context.report.ran.append(stage)
            barrier(strategy)  # the chief's files are written before anyone reads them
            rerun = True  # every later stage depends on this one
            logging.info("stage %s: done in %.1fs -> %s", stage, time.time() - start, output)
    finally:
        if scratch:
            shutil.rmtree(scratch)
    return context.report


def check_group_lookahead(config: RunConfig, names: list[str]) -> None:
    """Before any training: with mode="group_lookahead", the candidate groups are valid for these
    tasks and every budget k can cover them (ValueError naming the problem)."""
    if config.affinity.mode == "group_lookahead":
        largest = max(len(g) for g in candidate_groups(config.affinity, names))
        for k in config.selection.num_groups:
            selection.check_group_budget(k, largest, len(names))


def affinity_stage(run: Run) -> None:
    """Train the all-in-one network with affinity collection; write affinity.json."""
    model = build_network(run.config, run.data, run.data.tasks, run.config.affinity)
    start = time.time()
    fit(run.config, run.data, model, run.dir.affinity_backup,
        [AffinityLogger(json_path=run.out.affinity_partial, log_dir=run.out.tensorboard)], restore_only=not run.chief)
    result = model.task_affinity().to_json()
    result["seconds"] = round(time.time() - start, 2)
    write_json_atomic(run.out.affinity, result)
    os.remove(run.out.affinity_partial)  # written per epoch; the stage output comes last


def select_stage(run: Run) -> None:
    """Select TAG's grouping for every budget k; write selection.json. With measured group
    lookaheads (`AffinityConfig(mode="group_lookahead")`), from them (`select_from_group_lookahead`)."""
    affinity = TaskAffinity.from_json(run.dir.affinity)
    if affinity.group_affinity:
        groupings = [selection.select_from_group_lookahead(affinity, k) for k in run.config.selection.num_groups]
    else:
        groupings = selection.select_from_affinity(affinity, run.config.selection.num_groups)
    selection.save_selection(run.out.selection, list(affinity.tasks), groupings)


def train_stage(run: Run) -> None:
    """Train one network per group that any grouping to evaluate needs, with every evaluation seed
    (HOA's single and pair networks, which only choose, with the first); one result file each."""
    names, seeds = run.names, range(run.config.evaluation.eval_seeds)
    needed = _in_task_order({group for _, grouping in groupings_to_evaluate(run) for group in grouping.groups}, names)
    for group in needed:
        for seed in seeds:
            _train_group(run, group, seed)
    trained = {group: list(seeds) for group in needed}
    if "hoa" in run.config.evaluation.baselines:  # HOA's choice needs the pairs first; then its groups are trained
        for group in _in_task_order(set(hoa.networks(names)) - set(needed), names):
            _train_group(run, group, 0)
            trained[group] = [0]
        barrier(run.strategy)  # the chief's pair results are written
        for group in _in_task_order({g for _, grouping in hoa_groupings(run) for g in grouping.groups}, names):
            for seed in seeds:
                _train_group(run, group, seed)
            trained[group] = list(seeds)
    write_json_atomic(run.out.train, {"groups": [
        {"tasks": list(g), "result": run.dir.relative(run.dir.group_result(names, g)),
         "seeds": [run.dir.relative(run.dir.group_result(names, g, s)) for s in trained[g]]}
        for g in _in_task_order(trained, names)]})


def _train_group(run: Run, group: tuple[str, ...], seed: int = 0) -> None:
    """Train (plain, early stopping) and measure one group's network with evaluation seed `seed`
    (`tag_tf.run.seeds.network_seed`), unless its result exists."""
    path = run.dir.group_result(run.names, group, seed)
    if os.path.exists(path) and not run.overwrite:
        return
    logging.info("training a network on %s (evaluation seed %d)", list(group), seed)
    start = time.time()
    config = run.config.replace(seed=network_seed(run.config.runtime.seed, seed)) if seed else run.config
    by_name = {t.name: t for t in run.data.tasks}
    model = train_network(config, run.data, [by_name[t] for t in group], run.dir.group_backup(run.names, group, seed),
                          restore_only=not run.chief)
    result = {
        "tasks": list(group),
        "seed": config.runtime.seed,
        "test": evaluate_per_task(model, batches(config, run.data, "test")),
        "validation": evaluate_per_task(model, batches(config, run.data, "validation")),
        "parameters": int(model.count_params()),
        "flops": inference_flops(model),
        "seconds": round(time.time() - start, 2),
    }
    save_model_atomic(model, run.out.group_model(run.names, group, seed))
    write_json_atomic(run.out.group_result(run.names, group, seed), result)
    run.report.trained.append(group)


def evaluate_stage(run: Run) -> None:
    """Measure every grouping from its networks' results, for every evaluation seed, and compare
    TAG with each baseline seed by seed on the run's headline measure (`grouped.headline`: total
    error, or ΔMTL with dense tasks); write metrics.json."""
    names = run.names
    groupings = groupings_to_evaluate(run)
    if "hoa" in run.config.evaluation.baselines:
        groupings += hoa_groupings(run)
    rows = []
    for seed in range(run.config.evaluation.eval_seeds):
        results = {group: read_json(run.dir.group_result(names, group, seed))
                   for _, grouping in groupings for group in grouping.groups}
        seed_rows = [grouped.grouping_row(label, grouping, results, names) for label, grouping in groupings]
        if "single_task" in run.config.evaluation.baselines:
            single = {t: results[(t,)]["test"][t] for t in names}
            for row in seed_rows:
                row["delta_mtl"] = grouped.metric_delta_mtl(row["per_task"], single, run.data.tasks)
        rows.append(seed_rows)
    combined = [grouped.combine_seeds([seed_rows[i] for seed_rows in rows]) for i in range(len(groupings))]
    measure = grouped.headline({"groupings": combined})
    write_json_atomic(run.out.metrics, {"tasks": names, "eval_seeds": run.config.evaluation.eval_seeds,
                                        "groupings": combined,
                                        "comparisons": grouped.compare_with_baselines(combined, measure)})


def export_stage(run: Run) -> None:
    """Export TAG's grouping for every budget k as the model `tag_k<k>` under export/ (its next
    version: a rerun adds a version, which a running server picks up), with models.config and the
    other TF Serving files (`tag_tf.export.deployment.write_deployment`); write export/export.json."""
    names = run.names
    _, groupings = selection.load_selection(run.dir.selection)
    affinity = TaskAffinity.from_json(run.dir.affinity)
    models = []
    for grouping in groupings:
        networks = [keras.saving.load_model(run.dir.group_model(names, group), compile=False)
                    for group in grouping.groups]
        name = run.dir.model_name(grouping.budget)
        path = export_multihead(networks, {t: grouping.assignment[t] for t in names}, run.out.export_dir, name,
                                affinity=affinity)
        models.append({"name": name, "version": int(os.path.basename(path)), "path": run.dir.relative(path),
                       "groups": [list(g) for g in grouping.groups], "assignment": dict(grouping.assignment)})
    files = write_deployment(run.out.export_dir, [m["name"] for m in models])
    write_json_atomic(run.out.export_summary,
                      {"models": models, **{kind: run.dir.relative(path) for kind, path in files.items()}})


def report_stage(run: Run) -> None:
    """Write report/ (`tag_tf.report.html`: plots, tables, saliency maps of test images, serving) and
    the selection as TensorBoard text."""
    names, groupings = selection.load_selection(run.dir.selection)
    log_selection(run.dir.tensorboard, names, groupings)
    write_report(run.dir.path, run.data.tasks, run.data.splits["test"])


def groupings_to_evaluate(run: Run) -> list[tuple[str, selection.Grouping]]:
    """(label, grouping) for TAG at every k and for every baseline but HOA, in a fixed order."""
    names, chosen = run.names, run.config.evaluation.baselines
    _, tag = selection.load_selection(run.dir.selection)
    affinity_seconds = read_json(run.dir.affinity).get("seconds", 0.0)
    # TAG's time to choose: the affinity run's and the solver's
    result = [(run.dir.model_name(g.budget), dataclasses.replace(g, seconds=affinity_seconds + g.seconds))
              for g in tag]
    if "all_in_one" in chosen:
        result.append(("all_in_one", baselines.all_in_one(names)))
    if "single_task" in chosen:
        result.append(("single_task", baselines.single_task(names)))
    if "random" in chosen:
        result += baselines.random_groupings(names, run.config.selection.num_groups,
                                             run.config.evaluation.random_seeds, run.config.runtime.seed)
    return result


def hoa_groupings(run: Run) -> list[tuple[str, selection.Grouping]]:
    """HOA's grouping for every budget k, from the validation losses of the trained single and
    pair networks; its seconds include their training time."""
    losses, seconds = {}, 0.0
    for group in hoa.networks(run.names):
        result = read_json(run.dir.group_result(run.names, group))
        seconds += result["seconds"]
        losses[group] = {t: result["validation"][t]["loss"] for t in group}
    return hoa.choose(run.names, losses, run.config.selection.num_groups, training_seconds=seconds)


def _in_task_order(groups, names: list[str]) -> list[tuple[str, ...]]:
    return sorted(groups, key=lambda g: (len(g), [names.index(t) for t in g]))


STAGE_FUNCTIONS = {"affinity": affinity_stage, "select": select_stage, "train": train_stage,
                   "evaluate": evaluate_stage, "export": export_stage, "report": report_stage}
