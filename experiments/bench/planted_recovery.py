"""Does TAG recover the planted grouping? The demo preset's affinity run and selection, seed by seed.

    python -m experiments.bench.planted_recovery --seeds=10
    python -m experiments.bench.planted_recovery --seeds=10 --affinity_every_n_steps=5

For each seed (the data, the initialisation and the shuffling all follow it): the affinity stage's
training run (the all-in-one network, affinity collection) on the preset's planted data, then
`select_from_affinity` at k = the number of planted groups, as the pipeline does. Prints one
Markdown row per seed (TAG's groups, whether they equal the planted ones, the selection's bootstrap
stability, the mean affinity within and across the planted groups, seconds), the count of seeds
that recover the planted grouping, and how many of the seeds reporting a stability of at least
`STABLE` (0.9) chose the planted grouping (the stability figure's calibration).
Flags named after a setting (`--epochs`, `--affinity_every_n_steps`, ...) override the preset.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import time  # noqa: E402

import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from experiments.bench import common  # noqa: E402
from tag_tf.run import load_data  # noqa: E402
from tag_tf.selection import STABLE, select_from_affinity  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("seeds", 10, "Seeds 0 .. seeds-1.")
OVERRIDES = ("epochs", "num_examples", "image_size", "trunk_filters", "affinity_every_n_steps", "train_examples",
             "lr_schedule", "planted_groups", "tasks_per_group", "learning_rate", "balancer")
common.define_planted_flags(*OVERRIDES)


def within_across(matrix: np.ndarray, names: list[str], planted: list[list[str]]) -> tuple[float, float]:
    """Mean off-diagonal affinity between tasks of the same planted group, and of different ones.

    >>> within_across(np.array([[9.0, 1.0, -1.0], [3.0, 9.0, 0.0], [-2.0, 0.0, 9.0]]), ["a", "b", "c"], [["a", "b"], ["c"]])
    (2.0, -0.75)
    """
    group = {t: i for i, g in enumerate(planted) for t in g}
    same = np.array([[group[s] == group[t] for t in names] for s in names])
    off = ~np.eye(len(names), dtype=bool)
    return float(matrix[same & off].mean()), float(matrix[~same].mean())


def recovers(groups, planted) -> bool:
    """Whether a selection's groups are exactly the planted groups (in any order)."""
    return {frozenset(g) for g in groups} == {frozenset(g) for g in planted}


def main(argv):
    del argv
    config = common.planted_config(*OVERRIDES)
    print(f"Settings: preset {FLAGS.preset}, dataset {config.data.dataset}, {config.data.num_examples} examples "
          f"({config.data.train_examples or 'all'} of the training split trained on), "
          f"{config.data.image_size}x{config.data.image_size}, trunk filters {config.model.trunk_filters}, "
          f"batch {config.train.batch_size}, {common.optimizer_settings(config)}, "
          f"{config.train.epochs} epochs, affinity {config.affinity.mode} every {config.affinity.every_n_steps} "
          f"step(s).\n")
    print("| seed | TAG's groups, k = planted | = planted | stability | mean affinity within / across groups | "
          "affinity steps | seconds |")
    print("|---:|---|:---:|---:|---:|---:|---:|")
    count, stable = 0, []
    for seed in range(FLAGS.seeds):
        seeded = config.replace(seed=seed)
        data = load_data(seeded)
        names = [t.name for t in data.tasks]
        start = time.time()
        affinity = common.affinity_run(seeded, data)
        grouping = select_from_affinity(affinity, [len(data.planted_grouping)])[0]
        within, across = within_across(affinity.matrix, names, data.planted_grouping)
        ok = recovers(grouping.groups, data.planted_grouping)
        count += ok
        if grouping.stability is not None and grouping.stability >= STABLE:
            stable.append(ok)
        groups = " ".join("{" + ", ".join(g) + "}" for g in grouping.groups)
        stability = "n/a" if grouping.stability is None else f"{grouping.stability:.2f}"
        print(f"| {seed} | {groups} | {'yes' if ok else 'no'} | {stability} | {within:.3f} / {across:.3f} | "
              f"{affinity.steps} | {time.time() - start:.0f} |", flush=True)
        logging.info("seed %d: %s", seed, "recovered" if ok else "not recovered")
    print(f"\nTAG's grouping equals the planted one on {count} of {FLAGS.seeds} seeds; of the {len(stable)} seeds "
          f"whose stability is at least {STABLE:g}, {sum(stable)} chose the planted grouping (calibration).")


if __name__ == "__main__":
    app.run(main)
