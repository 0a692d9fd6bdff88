"""The affinity modes side by side on planted data: which groups each selects, and what a step costs.

    python -m experiments.bench.affinity_modes --epochs=10 --num_examples=2000

Five networks train on the demo preset's planted textures (3 groups of 3 tasks) in one process,
with the same initialisation and the same batches in the same order, taking turns epoch by epoch
so that load from other processes falls on all alike: plain (no affinity) and
`AffinityConfig(mode=...)` for exact, first_order, cosine and group_lookahead (every group of 2 to
`--max_group_size` tasks), all collecting every `--every_n_steps` steps. Every step is timed
(wall time, callback to callback). Prints Markdown: per mode the median affinity step and its
ratio to plain's median step (first epoch left out: it traces), the first epoch's seconds (tracing
included), and for every budget k the groups selected from the pairwise matrix
(`select_from_affinity`, with stability) and, for group_lookahead, from the measured groups
(`select_from_group_lookahead`), and whether they equal the planted grouping.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from experiments.bench.common import StepSeconds, train_in_turns  # noqa: E402
from tag_tf.affinity import AffinityConfig, candidate_groups  # noqa: E402
from tag_tf.run import PRESETS, batches, build_network, load_data  # noqa: E402
from tag_tf.selection import (select_from_affinity, select_from_group_lookahead, served,  # noqa: E402
                             stability_text)

FLAGS = flags.FLAGS
flags.DEFINE_string("preset", "demo", "A preset with planted data.")
flags.DEFINE_integer("epochs", 10, "Epochs of every network.")
flags.DEFINE_integer("num_examples", 2000, "Examples of planted data (80% train).")
flags.DEFINE_integer("every_n_steps", 1, "Collect affinity every n steps (the same for every mode).")
flags.DEFINE_integer("max_group_size", 3, "group_lookahead: measure every group of 2 to this many tasks.")
flags.DEFINE_list("budgets", ["3"], "Numbers of groups k.")
flags.DEFINE_integer("seed", 0, "Seed of data, initialisation and shuffling.")

MODES = ("exact", "first_order", "cosine", "group_lookahead")


def braces(groups) -> str:
    return " + ".join("{" + ", ".join(g) + "}" for g in groups)


def main(argv):
    del argv
    preset = PRESETS[FLAGS.preset]
    config = preset.replace(epochs=FLAGS.epochs, num_examples=FLAGS.num_examples, seed=FLAGS.seed)
    data = load_data(config)
    budgets = [int(k) for k in FLAGS.budgets]
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

    print(f"Settings: {config.data.dataset} ({len(data.tasks)} tasks in {len(data.planted_grouping)} planted groups), "
          f"{config.data.num_examples} examples, {config.data.image_size}x{config.data.image_size}, trunk filters "
          f"{config.model.trunk_filters}, batch {config.train.batch_size}, SGD({config.train.learning_rate:g}, "
          f"momentum {config.train.momentum:g}), {config.train.epochs} epochs = {steps} steps, seed "
          f"{config.runtime.seed}; every mode collects every {every} step(s); group_lookahead measures "
          f"{len(groups)} groups (every group of 2 to {FLAGS.max_group_size} tasks). Load average (1 min) during "
          f"the epochs: {min(load):.1f}-{max(load):.1f} on {os.cpu_count()} cores.\n")
    plain_step = float(np.median(timers["plain"].seconds[per_epoch:]))
    print("| mode | affinity steps | median affinity step s | ratio to plain step | first epoch s (traces) | "
          "other epochs s | ratio to plain, other epochs |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    plain_rest = sum(epoch_seconds["plain"][1:])
    for name, model in models.items():
        timer = timers[name]
        seconds, collected = np.array(timer.seconds[per_epoch:]), np.array(timer.affinity[per_epoch:])
        step = float(np.median(seconds[collected])) if collected.any() else float(np.median(seconds))
        count = model.task_affinity().steps if variants[name] else 0
        rest = sum(epoch_seconds[name][1:])
        print(f"| {name} | {count} | {step:.4f} | {step / plain_step:.2f}x | {epoch_seconds[name][0]:.1f} | "
              f"{rest:.1f} | {rest / plain_rest:.2f}x |")

    planted = {t: frozenset(g) for g in data.planted_grouping for t in g}
    print("\n| k | mode | selected from | groups | stability | = planted |")
    print("|---:|---|---|---|---|---|")
    for name in MODES:
        result = models[name].task_affinity()
        for k, grouping in zip(budgets, select_from_affinity(result, budgets)):
            print(f"| {k} | {name} | pairwise matrix | {braces(grouping.groups)} | {stability_text(grouping)} | "
                  f"{served(grouping) == planted} |")
        if name == "group_lookahead":
            for k in budgets:
                try:
                    grouping = select_from_group_lookahead(result, k)
                except ValueError as error:  # too few networks for the measured groups' sizes
                    print(f"| {k} | {name} | measured groups | none: {error} | — | — |")
                    continue
                print(f"| {k} | {name} | measured groups | {braces(grouping.groups)} | — | "
                      f"{served(grouping) == planted} |")


if __name__ == "__main__":
    app.run(main)
