"""Time to choose, side by side: TAG's affinity run at every n against HOA's networks (issue 15).

    python -m experiments.bench.time_to_choose --every_n=5,10,25,auto
    python -m experiments.bench.time_to_choose --image_size=32 --trunk_filters=16 --num_examples=4000 \\
        --every_n=5,10,25,50,auto

On one planted data set (the preset's, with the flags' overrides), in one process, in this order:

1. TAG every step (the paper's setting): the affinity run (the all-in-one network, affinity
   collected at every step), then `select_from_affinity` at k = the number of planted groups.
2. TAG at every n of `--every_n` (an integer or "auto"): the same, collecting every n steps.
3. HOA: every single-task and pair network, trained as group training trains every network
   (`train_network`), their validation losses, then `hoa.choose` at the same k.
4. With `--errors`, the networks of each distinct grouping chosen (TAG's, HOA's; seed 0), and
   their total test error.

Each side's seconds cover what it needs to choose: building and training its networks, HOA's
validation passes and the solver. Prints one Markdown row per choice (groups, equal to every
step's grouping, bootstrap stability, affinity steps, seconds, HOA's seconds / these seconds, total
test error) and, for the sparsest n whose grouping equals every step's, the ratio and whether its
error matches or beats HOA's.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import time  # noqa: E402

from absl import app, flags, logging  # noqa: E402

from experiments.bench import common  # noqa: E402
from tag_tf.evaluation import grouped, hoa  # noqa: E402
from tag_tf.affinity import AUTO  # noqa: E402
from tag_tf.run import batches, evaluate_per_task, load_data  # noqa: E402
from tag_tf.selection import Grouping, select_from_affinity  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("every_n", ["5", "10", "25", "auto"], "Affinity schedules to time against every step: n or auto.")
flags.DEFINE_boolean("errors", True, "Train the chosen groupings' networks and compare total test errors.")
flags.DEFINE_integer("seed", 0, "Seed of the data, the initialisation and the shuffling.")
OVERRIDES = ("epochs", "patience", "num_examples", "image_size", "trunk_filters", "train_examples", "lr_schedule",
             "balancer")
common.define_planted_flags(*OVERRIDES)


def parse_schedule(value: str) -> int | str:
    """An `--every_n` entry: a positive integer or "auto".

    >>> parse_schedule("10"), parse_schedule("auto")
    (10, 'auto')
    """
    if value == AUTO:
        return AUTO
    if not value.isdigit() or int(value) < 1:
        raise app.UsageError(f"--every_n entries are positive integers or {AUTO!r}, got {value!r}.")
    return int(value)


def tag_choice(config, data, every_n, k: int) -> tuple[Grouping, float, int]:
    """(TAG's grouping at budget k, seconds to choose, affinity steps) with affinity every `every_n` steps."""
    config = config.replace(affinity_every_n_steps=every_n)
    start = time.time()
    affinity = common.affinity_run(config, data)
    grouping = select_from_affinity(affinity, [k])[0]
    return grouping, time.time() - start, affinity.steps


def hoa_choice(config, data, k: int) -> tuple[Grouping, float]:
    """(HOA's grouping at budget k, seconds to choose): its single and pair networks, their
    validation losses and the solver."""
    names = [t.name for t in data.tasks]
    validation = batches(config, data, "validation")
    losses, start = {}, time.time()
    for i, group in enumerate(hoa.networks(names)):
        model = common.trained_network(config, data, group)
        losses[group] = {t: m["loss"] for t, m in evaluate_per_task(model, validation).items()}
        print(f"  HOA network {i + 1}: {', '.join(group)} ({time.time() - start:.0f} s so far)", flush=True)
    _, grouping = hoa.choose(names, losses, [k])[0]
    return grouping, time.time() - start


def total_test_error(config, data, grouping: Grouping) -> float:
    """Σ over tasks of the test error (%) of the network serving it (`Grouping.served_by`), each
    of the grouping's networks trained once."""
    test = batches(config, data, "test")
    per_task = {group: evaluate_per_task(common.trained_network(config, data, group), test)
                for group in grouping.groups}
    return grouped.total_error({t.name: per_task[grouping.served_by(t.name)][t.name] for t in data.tasks})


def groups_text(grouping: Grouping) -> str:
    """{a, b} {c}: a grouping's groups."""
    return " ".join("{" + ", ".join(g) + "}" for g in grouping.groups)


def main(argv):
    del argv
    schedules = [parse_schedule(v) for v in FLAGS.every_n]
    config = common.planted_config(*OVERRIDES, seed=FLAGS.seed)
    data = load_data(config)
    k = len(data.planted_grouping)
    train_examples = config.data.train_examples or round(0.8 * config.data.num_examples)
    train_steps = config.train.epochs * -(-train_examples // config.train.batch_size)
    print(f"Settings: preset {FLAGS.preset}, {config.data.dataset} (seed {FLAGS.seed}), {config.data.num_examples} "
          f"examples {config.data.image_size}x{config.data.image_size}, trunk filters {config.model.trunk_filters}, "
          f"batch {config.train.batch_size}, {common.optimizer_settings(config)}, "
          f"{config.train.epochs} epochs (about {train_steps} steps), patience {config.train.patience}; k = {k}.\n",
          flush=True)
    choices = {}
    for every_n in [1, *schedules]:
        choices[f"TAG every {every_n}"] = tag_choice(config, data, every_n, k)
        grouping, seconds, steps = choices[f"TAG every {every_n}"]
        print(f"  TAG every {every_n}: {groups_text(grouping)}, {steps} affinity steps, {seconds:.1f} s", flush=True)
    hoa_grouping, hoa_seconds = hoa_choice(config, data, k)
    choices["HOA"] = (hoa_grouping, hoa_seconds, None)
    reference = {frozenset(g) for g in choices["TAG every 1"][0].groups}
    errors = {}
    if FLAGS.errors:
        for grouping, _, _ in choices.values():
            key = frozenset(frozenset(g) for g in grouping.groups)
            if key not in errors:
                errors[key] = total_test_error(config, data, grouping)
                logging.info("%s: %.2f total test error", groups_text(grouping), errors[key])

    def error_of(grouping):
        return errors.get(frozenset(frozenset(g) for g in grouping.groups))

    print("\n| choice | groups | = every step's | stability | affinity steps | seconds | HOA / this | "
          "total test error (%) |")
    print("|---|---|:---:|---:|---:|---:|---:|---:|")
    for name, (grouping, seconds, steps) in choices.items():
        same = {frozenset(g) for g in grouping.groups} == reference
        stability = "n/a" if grouping.stability is None else f"{grouping.stability:.2f}"
        error = error_of(grouping)
        print(f"| {name} | {groups_text(grouping)} | {'yes' if same else 'no'} | {stability} | "
              f"{'' if steps is None else steps} | {seconds:.1f} | {hoa_seconds / seconds:.1f}x | "
              f"{'' if error is None else f'{error:.2f}'} |")
    matching = [n for n in schedules if n != AUTO and {frozenset(g) for g in choices[f"TAG every {n}"][0].groups}
                == reference]
    if matching:
        n = max(matching)
        grouping, seconds, _ = choices[f"TAG every {n}"]
        verdict = ""
        if FLAGS.errors:
            verdict = (f"; its total test error {error_of(grouping):.2f} "
                       f"{'matches or beats' if error_of(grouping) <= error_of(hoa_grouping) else 'is worse than'} "
                       f"HOA's {error_of(hoa_grouping):.2f}")
        print(f"\nThe sparsest fixed schedule whose grouping equals every step's: every {n} steps, "
              f"{hoa_seconds / seconds:.1f}x faster to choose than HOA{verdict}.")
    else:
        print("\nNo fixed schedule of --every_n chose every step's grouping.")


if __name__ == "__main__":
    app.run(main)
