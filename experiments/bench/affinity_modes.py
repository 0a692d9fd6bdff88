"""The affinity modes side by side: which groups each selects, how stable, what a step costs, and
(with --train_groups) the selected groupings' total test error.

    python -m experiments.bench.affinity_modes --epochs=10 --num_examples=2000
    python -m experiments.bench.affinity_modes --preset=celeba_sample --image_size=32 --trunk_filters=16 \\
        --bn_momentum=0.9 --learning_rate=0.01 --momentum=0.9 --patience=2 --epochs=5 --budgets=2,3 \\
        --train_groups --baselines

Five networks train on a preset's data (the demo's planted textures, 3 groups of 3 tasks, by
default; the CelebA sample with --preset=celeba_sample) in one process, with the same
initialisation and the same batches in the same order, taking turns epoch by epoch so that load
from other processes falls on all alike: plain (no affinity) and `AffinityConfig(mode=...)` for
exact, first_order, cosine and group_lookahead (every group of 2 to `--max_group_size` tasks), all
collecting every `--every_n_steps` steps. Every step is timed (wall time, callback to callback).
Prints Markdown: per mode the median affinity step and its ratio to plain's median step (first
epoch left out: it traces), the first epoch's seconds (tracing included), and for every budget k
the groups selected from the pairwise matrix (`select_from_affinity`) and, for group_lookahead,
from the measured groups (`select_from_group_lookahead`), each with its bootstrap stability, and
on planted data whether they equal the planted grouping. The flags --image_size ... --patience,
when given, override the preset's settings of those names.

--train_groups: then trains one network per distinct group of the selected groupings (the run's
settings, seed --seed, early stopping on validation loss as the pipeline's group training) and
prints every distinct grouping's total test error (the sum of its tasks' test errors, each task
from the network serving it); --baselines adds the all-in-one and single-task groupings.
--eval_seeds=0,1,2 trains every group with each seed offset. --out_dir: where each mode's
affinity.json is written (keep it out of the repository: from the CelebA sample it is derived from
its images); --affinity_dir: select (and train) from such files instead of training the affinity
networks again (no timing table).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tempfile  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from experiments.bench.common import StepSeconds, train_in_turns  # noqa: E402
from tag_tf.evaluation import baselines  # noqa: E402
from tag_tf.affinity import AffinityConfig, TaskAffinity, candidate_groups  # noqa: E402
from tag_tf.evaluation.grouped import total_error  # noqa: E402
from tag_tf.run import PRESETS, batches, build_network, evaluate_per_task, fit, load_data  # noqa: E402
from tag_tf.selection import (select_from_affinity, select_from_group_lookahead, served,  # noqa: E402
                              stability_text)

FLAGS = flags.FLAGS
flags.DEFINE_string("preset", "demo", "A preset: its data, trunk and optimizer (demo, celeba_sample, ...).")
flags.DEFINE_integer("epochs", 10, "Epochs of every network.")
flags.DEFINE_integer("num_examples", None, "Examples of planted data (80% train); default: the preset's.")
flags.DEFINE_integer("every_n_steps", 1, "Collect affinity every n steps (the same for every mode).")
flags.DEFINE_integer("max_group_size", 3, "group_lookahead: measure every group of 2 to this many tasks.")
flags.DEFINE_list("budgets", ["3"], "Numbers of groups k.")
flags.DEFINE_integer("seed", 0, "Seed of data, initialisation and shuffling.")
OVERRIDES = {"image_size": flags.DEFINE_integer, "trunk_filters": flags.DEFINE_integer,
             "bn_momentum": flags.DEFINE_float, "learning_rate": flags.DEFINE_float,
             "momentum": flags.DEFINE_float, "patience": flags.DEFINE_integer}
for _name, _define in OVERRIDES.items():
    _define(_name, None, f"The run setting {_name}; default: the preset's.")
flags.DEFINE_boolean("train_groups", False, "Train the selected groups' networks and print their total test error.")
flags.DEFINE_boolean("baselines", False, "With --train_groups: also the all-in-one and single-task groupings.")
flags.DEFINE_string("out_dir", None, "Write each mode's affinity.json here (none: not written).")
flags.DEFINE_string("affinity_dir", None, "Read each mode's affinity.json from here (an earlier --out_dir) instead "
                    "of training and timing the affinity networks.")
flags.DEFINE_list("eval_seeds", ["0"], "With --train_groups: train every group with each of these seed offsets "
                  "(seed --seed + offset, as the pipeline's evaluation seeds).")

MODES = ("exact", "first_order", "cosine", "group_lookahead")


def braces(groups) -> str:
    return " + ".join("{" + ", ".join(g) + "}" for g in groups)


def run_config():
    """The preset with the flags' settings."""
    settings = {name: getattr(FLAGS, name) for name in OVERRIDES if getattr(FLAGS, name) is not None}
    if FLAGS.num_examples is not None:
        settings["num_examples"] = FLAGS.num_examples
    return PRESETS[FLAGS.preset].replace(epochs=FLAGS.epochs, seed=FLAGS.seed, **settings)


def selections(affinities, budgets) -> list[tuple[int, str, str, object]]:
    """(k, mode, "pairwise matrix" | "measured groups", grouping or the error) for every mode and k,
    from {mode: TaskAffinity}."""
    rows = []
    for name in MODES:
        result = affinities[name]
        for k, grouping in zip(budgets, select_from_affinity(result, budgets)):
            rows.append((k, name, "pairwise matrix", grouping))
        if name == "group_lookahead":
            for k in budgets:
                try:
                    rows.append((k, name, "measured groups", select_from_group_lookahead(result, k)))
                except ValueError as error:  # too few networks for the measured groups' sizes
                    rows.append((k, name, "measured groups", error))
    return rows


def train_group_networks(config, data, groups) -> dict:
    """{group: {task: test metrics}}: one network per group, trained as the pipeline's group stage."""
    by_name = {t.name: t for t in data.tasks}
    results = {}
    for group in groups:
        logging.info("training a network on %s", list(group))
        model = build_network(config, data, [by_name[t] for t in group])
        early = keras.callbacks.EarlyStopping(monitor="val_loss", patience=config.train.patience,
                                              restore_best_weights=True)
        with tempfile.TemporaryDirectory() as backup:
            fit(config, data, model, backup, [early])
        results[group] = evaluate_per_task(model, batches(config, data, "test"))
    return results


def print_total_errors(config, data, rows) -> None:
    """Train the distinct groups of the selected groupings (and the baselines) and print a table of
    every distinct grouping's total test error and which (k, mode, source) chose it."""
    names = [t.name for t in data.tasks]
    distinct = {}  # served sets -> (grouping, [labels])
    for k, mode, source, grouping in rows:
        if not isinstance(grouping, Exception):
            distinct.setdefault(frozenset(served(grouping).items()), (grouping, []))[1].append(
                f"k={k} {mode}" + (f" ({source})" if mode == "group_lookahead" else ""))
    if FLAGS.baselines:
        for label, grouping in (("all-in-one", baselines.all_in_one(names)), ("single-task", baselines.single_task(names))):
            distinct.setdefault(frozenset(served(grouping).items()), (grouping, []))[1].append(label)
    groups = sorted({g for grouping, _ in distinct.values() for g in grouping.groups}, key=lambda g: (len(g), g))
    seeds = [config.runtime.seed + int(offset) for offset in FLAGS.eval_seeds]
    results = [train_group_networks(config.replace(seed=seed), data, groups) for seed in seeds]
    print(f"\nTotal test error (%, sum over the {len(names)} tasks, each from the network serving it; one network per "
          f"distinct group and seed, seeds {seeds}, {len(groups) * len(seeds)} networks):\n")
    print("| chosen by | groups | total test error (%), per seed | mean |")
    print("|---|---|---|---:|")
    for grouping, labels in distinct.values():
        errors = [total_error({t: result[grouping.served_by(t)][t] for t in names}) for result in results]
        print(f"| {'; '.join(labels)} | {braces(grouping.groups)} | {', '.join(f'{e:.2f}' for e in errors)} | "
              f"{np.mean(errors):.2f} |")


def main(argv):
    del argv
    config = run_config()
    data = load_data(config)
    budgets = [int(k) for k in FLAGS.budgets]
    if FLAGS.affinity_dir:  # select (and train) from an earlier run's affinity files
        affinities = {name: TaskAffinity.from_json(os.path.join(FLAGS.affinity_dir, f"{name}.affinity.json"))
                      for name in MODES}
        print_selections(config, data, affinities, budgets)
        return
    every = FLAGS.every_n_steps
    variants = {"plain": None, **{mode: AffinityConfig(mode=mode, every_n_steps=every, max_group_size=FLAGS.max_group_size)
                                  if mode == "group_lookahead" else AffinityConfig(mode=mode, every_n_steps=every)
                                  for mode in MODES}}
    models = {name: build_network(config, data, data.tasks, affinity) for name, affinity in variants.items()}
    train = {name: batches(config, data, "train") for name in variants}  # one dataset each: the same batch order
    timers = {name: StepSeconds() for name in variants}
    epoch_seconds, load = train_in_turns(models, train, config.train.epochs,
                                         {name: [timer] for name, timer in timers.items()})
    steps = int(models["plain"].optimizer.iterations.numpy())
    per_epoch = steps // config.train.epochs
    groups = candidate_groups(variants["group_lookahead"], [t.name for t in data.tasks])
    if FLAGS.out_dir:
        os.makedirs(FLAGS.out_dir, exist_ok=True)
        for name in MODES:
            models[name].task_affinity().to_json(os.path.join(FLAGS.out_dir, f"{name}.affinity.json"))

    planted = data.planted_grouping
    structure = f"in {len(planted)} planted groups" if planted else "no planted grouping"
    print(f"Settings: {config.data.dataset} ({len(data.tasks)} tasks, {structure}), {per_epoch} batches of "
          f"{config.train.batch_size} per epoch, {config.data.image_size}x{config.data.image_size}, trunk filters "
          f"{config.model.trunk_filters}, BN momentum {config.model.bn_momentum:g}, "
          f"SGD({config.train.learning_rate:g}, momentum {config.train.momentum:g}), {config.train.epochs} epochs = "
          f"{steps} steps, seed {config.runtime.seed}; every mode collects every {every} step(s); group_lookahead "
          f"measures {len(groups)} groups (every group of 2 to {FLAGS.max_group_size} tasks). Load average (1 min) "
          f"during the epochs: {min(load):.1f}-{max(load):.1f} on {os.cpu_count()} cores.\n")
    plain_step = float(np.median(timers["plain"].seconds[per_epoch:]))
    print("| mode | affinity steps | median affinity step s | ratio to plain step | first epoch s (traces) | "
          "other epochs s | ratio to plain, other epochs | all epochs s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    plain_rest = sum(epoch_seconds["plain"][1:])
    for name, model in models.items():
        timer = timers[name]
        seconds, collected = np.array(timer.seconds[per_epoch:]), np.array(timer.affinity[per_epoch:])
        step = float(np.median(seconds[collected])) if collected.any() else float(np.median(seconds))
        count = model.task_affinity().steps if variants[name] else 0
        rest = sum(epoch_seconds[name][1:])
        print(f"| {name} | {count} | {step:.4f} | {step / plain_step:.2f}x | {epoch_seconds[name][0]:.1f} | "
              f"{rest:.1f} | {rest / plain_rest:.2f}x | {sum(epoch_seconds[name]):.1f} |")

    print_selections(config, data, {name: models[name].task_affinity() for name in MODES}, budgets)


def print_selections(config, data, affinities, budgets) -> None:
    """The table of every mode's selections (and with --train_groups their total test error)."""
    planted = data.planted_grouping
    truth = {t: frozenset(g) for g in planted for t in g} if planted else None
    rows = selections(affinities, budgets)
    print("\n| k | mode | selected from | groups | stability |" + (" = planted |" if truth else ""))
    print("|---:|---|---|---|---|" + ("---|" if truth else ""))
    for k, name, source, grouping in rows:
        if isinstance(grouping, Exception):
            print(f"| {k} | {name} | {source} | none: {grouping} | — |" + (" — |" if truth else ""))
            continue
        print(f"| {k} | {name} | {source} | {braces(grouping.groups)} | {stability_text(grouping)} |"
              + (f" {served(grouping) == truth} |" if truth else ""))
    if FLAGS.train_groups:
        print_total_errors(config, data, rows)


if __name__ == "__main__":
    app.run(main)
