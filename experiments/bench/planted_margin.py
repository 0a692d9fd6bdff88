"""Does the planted grouping beat the baselines beyond seed noise? Cheap candidate data settings.

    python -m experiments.bench.planted_margin --seeds=0,1,2
    python -m experiments.bench.planted_margin --seeds=10,11,12,13,14 --tasks_per_group=4 --epochs=20
    python -m experiments.bench.planted_margin --data_seeds=0,1,2,3 --train_examples=480 --epochs=30 --patience=30
    python -m experiments.bench.planted_margin --baselines=all_in_one --random_partitions=0 --learning_rate=0.1

Trains, for one data setting (the preset's planted data, with the flags' overrides; the data drawn
from each seed of `--data_seeds`), the networks of the planted grouping (one per planted group), the
single-task networks and the all-in-one network (those of `--baselines`) and `--random_partitions`
random partitions into as many groups as were planted, each with every seed of `--seeds`
(initialisation and shuffling; the data stay the same), as the pipeline's group training does (early
stopping on validation loss with the preset's patience, best weights kept). No affinity run: this
measures the data, not TAG's choice (`planted_recovery.py` measures that). Prints a line per
network, one row per seed (total test errors), mean ± sample std per grouping, and the planted
grouping's paired difference against each baseline (95% t interval) with whether its margin exceeds
twice the larger of the two seed-to-seed standard deviations (random: the std of each seed's mean
over the partitions, as the pipeline pairs them). With several data seeds, a last table gives each
data seed's means and verdicts and counts the data seeds on which each margin is clear.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import time  # noqa: E402

import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from experiments.bench import common  # noqa: E402
from tag_tf.evaluation import baselines, grouped  # noqa: E402
from tag_tf.run import batches, evaluate_per_task, load_data  # noqa: E402
from tag_tf.evaluation.stats import format_interval, mean_std, paired_difference  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("seeds", ["0", "1", "2"], "Network seeds (initialisation and shuffling).")
flags.DEFINE_list("data_seeds", ["0"], "Seeds of the planted data, each measured in turn.")
flags.DEFINE_integer("random_partitions", 2, "Random partitions per seed (drawn from seed·1000 + i).")
BASELINES = ("single_task", "all_in_one")
flags.DEFINE_multi_enum("baselines", list(BASELINES), BASELINES,
                        "The fixed baselines to train beside the planted grouping (random: --random_partitions).")
OVERRIDES = ("epochs", "patience", "num_examples", "tasks_per_group", "planted_groups", "trunk_filters",
             "batch_size", "learning_rate", "train_examples", "lr_schedule", "balancer")
common.define_planted_flags(*OVERRIDES)


def train_and_test(config, data, group: tuple[str, ...]) -> dict[str, float]:
    """{task: test error (%)} of one network trained on `group` as the pipeline's group training does."""
    model = common.trained_network(config, data, group)
    return {t: grouped.task_error(m) for t, m in evaluate_per_task(model, batches(config, data, "test")).items()}


def clear_margin(planted: list[float], baseline: list[float]) -> tuple[object, float, bool]:
    """(paired planted − baseline, twice the larger seed-to-seed std, whether the margin beats it)."""
    difference = paired_difference(planted, baseline)
    spread = max(mean_std(planted)[1] or 0.0, mean_std(baseline)[1] or 0.0)
    return difference, 2 * spread, -difference.mean > 2 * spread


def margin_row(name: str, planted: list[float], baseline: list[float]) -> str:
    """A Markdown row: planted − baseline, paired, and whether the margin beats twice the spread."""
    difference, twice, clear = clear_margin(planted, baseline)
    return (f"| {name} | {format_interval(difference.mean, difference.interval)} | {twice:.2f} | "
            f"{'yes' if clear else 'no'} |")


def format_mean_std(values: list[float]) -> str:
    mean, std = mean_std(values)
    return f"{mean:.2f} ± {'n/a' if std is None else f'{std:.2f}'}"


def measure(config, data_seed: int, seeds: list[int]) -> dict[str, list[float]]:
    """{grouping: total test error per network seed} on the data of `data_seed`, with its tables."""
    config = config.replace(seed=data_seed)
    data = load_data(config)
    names = [t.name for t in data.tasks]
    planted = [tuple(g) for g in data.planted_grouping]
    train = config.data.train_examples or "all"
    print(f"Settings: preset {FLAGS.preset}, {config.data.dataset} (data seed {data_seed}), "
          f"{config.data.planted_groups} groups x {config.data.tasks_per_group} tasks, {config.data.num_examples} "
          f"examples ({train} of the training split trained on), {config.data.image_size}x{config.data.image_size}, "
          f"trunk filters {config.model.trunk_filters}, batch {config.train.batch_size}, "
          f"{common.optimizer_settings(config)}, {config.train.epochs} epochs, "
          f"patience {config.train.patience}; network seeds {seeds}.\n", flush=True)
    fixed = {"single_task": baselines.single_task, "all_in_one": baselines.all_in_one}
    groupings = {"planted": planted, **{name: list(fixed[name](names).groups) for name in BASELINES
                                        if name in FLAGS.baselines}}
    totals: dict[str, list[float]] = {name: [] for name in groupings}
    totals["random"] = []
    start = time.time()
    for seed in seeds:
        seeded = config.replace(seed=data_seed + seed)
        partitions = [grouped.random_partition(names, len(planted), seed * 1000 + i)
                      for i in range(FLAGS.random_partitions)]
        errors: dict[tuple[str, ...], dict[str, float]] = {}
        for group in sorted({g for gs in [*groupings.values(), *partitions] for g in gs}, key=len):
            begin = time.time()
            errors[group] = train_and_test(seeded, data, group)
            print(f"  seed {seed}: {len(group)} task(s) {', '.join(group)}: "
                  f"{sum(errors[group].values()):.1f} total test error, {time.time() - begin:.0f} s "
                  f"({time.time() - start:.0f} s so far)", flush=True)
        for name, groups in groupings.items():
            totals[name].append(sum(errors[g][t] for g in groups for t in g))
        if partitions:
            totals["random"].append(float(np.mean([sum(errors[g][t] for g in p for t in g) for p in partitions])))
        logging.info("data seed %d, seed %d done", data_seed, seed)
    if not FLAGS.random_partitions:
        del totals["random"]
    print("\n| seed | " + " | ".join(totals) + " |")
    print("|---:|" + "---:|" * len(totals))
    for i, seed in enumerate(seeds):
        print(f"| {seed} | " + " | ".join(f"{v[i]:.2f}" for v in totals.values()) + " |")
    print("| mean ± std | " + " | ".join(format_mean_std(v) for v in totals.values()) + " |")
    print("\n| planted − baseline | mean [95% t interval] | 2 x larger std | margin clear |")
    print("|---|---:|---:|:---:|")
    for name in totals:
        if name != "planted":
            print(margin_row(name, totals["planted"], totals[name]))
    print(f"\n{time.time() - start:.0f} s for data seed {data_seed}.\n", flush=True)
    return totals


def main(argv):
    del argv
    seeds = [int(s) for s in FLAGS.seeds]
    config = common.planted_config(*OVERRIDES)
    results = {int(d): measure(config, int(d), seeds) for d in FLAGS.data_seeds}
    if len(results) < 2:
        return
    compared = [name for name in next(iter(results.values())) if name != "planted"]
    print("| data seed | planted | " + " | ".join(compared) + " | clear vs " + ", ".join(compared) + " |")
    print("|---:|---:|" + "---:|" * len(compared) + ":---:|")
    clear = {name: 0 for name in compared}
    for data_seed, totals in results.items():
        verdicts = []
        for name in compared:
            ok = clear_margin(totals["planted"], totals[name])[2]
            clear[name] += ok
            verdicts.append("yes" if ok else "no")
        print(f"| {data_seed} | {format_mean_std(totals['planted'])} | "
              + " | ".join(format_mean_std(totals[name]) for name in compared) + f" | {', '.join(verdicts)} |")
    print("\nMargin clear on " + "; ".join(f"{name}: {count} of {len(results)} data seeds"
                                             for name, count in clear.items()) + ".")


if __name__ == "__main__":
    app.run(main)
