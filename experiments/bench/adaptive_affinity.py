"""What the default adaptive affinity schedule costs, and whether it selects what every step does.

    python -m experiments.bench.adaptive_affinity --epochs=30 --num_examples=8000

Three networks train side by side on the same planted data (the demo preset's planted textures
unless flags say otherwise), with the same initialisation and the same batches in the same order:
plain (no affinity), `AffinityConfig()` (every_n_steps="auto", the default) and
`AffinityConfig(every_n_steps=1)` (every step, the paper's setting). They take turns, one epoch
each, so that load from other processes falls on all three alike; every epoch is timed. An
affinity step takes the update a plain step takes (combined from the per-task gradients, so equal
up to float rounding): the three follow nearly the same trajectory. Prints Markdown: seconds and
the ratio to plain (whole run, and without the first epoch, which traces the step functions),
affinity steps and where auto took them, and for every budget k the groups each affinity run
selects, their bootstrap stability, and whether auto's equal every step's.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from experiments.bench.common import train_in_turns  # noqa: E402
from tag_tf.affinity import AffinityConfig  # noqa: E402
from tag_tf.run import PRESETS, batches, build_network, load_data  # noqa: E402
from tag_tf.selection import select_from_affinity, served, stability_text  # noqa: E402
from tag_tf.training import AffinitySteps  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("preset", "demo", "A preset with planted data.")
flags.DEFINE_integer("epochs", 30, "Epochs of every network.")
flags.DEFINE_integer("num_examples", 8000, "Examples of planted data (80% train).")
flags.DEFINE_integer("image_size", None, "Override the preset's image side.")
flags.DEFINE_integer("trunk_filters", None, "Override the preset's trunk width.")
flags.DEFINE_list("budgets", ["2", "3"], "Numbers of groups k.")
flags.DEFINE_integer("seed", 0, "Seed of data, initialisation and shuffling.")


def braces(groups) -> str:
    return " + ".join("{" + ", ".join(g) + "}" for g in groups)


def main(argv):
    del argv
    preset = PRESETS[FLAGS.preset]
    config = preset.replace(epochs=FLAGS.epochs, num_examples=FLAGS.num_examples, seed=FLAGS.seed,
                            image_size=FLAGS.image_size or preset.data.image_size,
                            trunk_filters=FLAGS.trunk_filters or preset.model.trunk_filters)
    data = load_data(config)
    budgets = [int(k) for k in FLAGS.budgets]
    variants = {"plain": None, "auto (default)": AffinityConfig(),
                "every step (paper)": AffinityConfig(every_n_steps=1)}
    models = {name: build_network(config, data, data.tasks, affinity) for name, affinity in variants.items()}
    train = {name: batches(config, data, "train") for name in variants}  # one dataset each: the same batch order
    collected = AffinitySteps()  # on the auto run: where it collected
    seconds, load = train_in_turns(models, train, config.train.epochs, {"auto (default)": [collected]})
    steps = int(models["plain"].optimizer.iterations.numpy())

    print(f"Settings: {config.data.dataset} ({len(data.tasks)} tasks in {len(data.planted_grouping)} planted groups), "
          f"{config.data.num_examples} examples, {config.data.image_size}x{config.data.image_size}, trunk filters "
          f"{config.model.trunk_filters}, batch {config.train.batch_size}, "
          f"SGD({config.train.learning_rate:g}, momentum {config.train.momentum:g}), {config.train.epochs} epochs = {steps} steps, seed {config.runtime.seed}; "
          f"AffinityConfig() = {AffinityConfig()}. Load average (1 min) during the epochs: "
          f"{min(load):.1f}-{max(load):.1f} on {os.cpu_count()} cores.\n")
    print("| variant | affinity steps | seconds | ratio to plain | seconds without epoch 1 | ratio without epoch 1 |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, model in models.items():
        total, rest = sum(seconds[name]), sum(seconds[name][1:])
        count = model.task_affinity().steps if variants[name] else 0
        print(f"| {name} | {count} ({count / steps:.1%}) | {total:.1f} | {total / sum(seconds['plain']):.3f}x | "
              f"{rest:.1f} | {rest / sum(seconds['plain'][1:]):.3f}x |")
    selections = {name: select_from_affinity(models[name].task_affinity(), budgets)
                  for name in variants if variants[name]}
    planted = {t: frozenset(g) for g in data.planted_grouping for t in g}
    print("\n| k | variant | groups | stability | = every step | = planted |")
    print("|---:|---|---|---|---|---|")
    for i, k in enumerate(budgets):
        reference = served(selections["every step (paper)"][i])
        for name, groupings in selections.items():
            g = groupings[i]
            print(f"| {k} | {name} | {braces(g.groups)} | {stability_text(g)} | {served(g) == reference} | "
                  f"{served(g) == planted} |")
    windows = np.bincount(np.array(collected.steps) // 500, minlength=(steps + 499) // 500)
    print(f"\nauto's affinity steps per 500 steps: {windows.tolist()}; the first 30 at iterations "
          f"{collected.steps[:30]}.")
    auto = models["auto (default)"].task_affinity()
    off = ~np.eye(len(auto.tasks), dtype=bool)
    every = models["every step (paper)"].task_affinity()
    print(f"\nMedian standard error of a pair: auto {np.nanmedian(auto.stderr[off]):.3g}, every step "
          f"{np.nanmedian(every.stderr[off]):.3g}; spread of the pairs' means: auto {np.std(auto.matrix[off]):.3g}, "
          f"every step {np.std(every.matrix[off]):.3g}; largest |auto - every step| "
          f"{np.abs(auto.matrix - every.matrix)[off].max():.3g}.")


if __name__ == "__main__":
    app.run(main)
