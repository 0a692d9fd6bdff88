"""The TAG pipeline from the command line: affinity -> select -> train -> evaluate -> export.

    python -m experiments.tag_pipeline --preset=demo --run_dir=runs/demo
    python -m experiments.tag_pipeline --preset=celeba_sample --epochs=2 --steps_per_epoch=50 --run_dir=runs/s
    python -m experiments.tag_pipeline --recipe=experiments/recipes/recommender.py --run_dir=runs/rec

A preset fills every setting; a flag given on the command line overrides it, except that a
preset's `train_examples` (a cut of the preset's own training data) does not follow other data: with
`--recipe` or another `--dataset` the whole training split is used unless `--train_examples` is
given. Every setting is checked before any work. A run directory that already holds stage outputs continues where it
stopped (`--overwrite` starts again).
"""

from __future__ import annotations

import dataclasses
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from tag_tf.utils.io import read_json  # noqa: E402
from tag_tf.run import PRESETS, config as run_config, load_data, run  # noqa: E402
from tag_tf.run.rundir import RunDir  # noqa: E402
from tag_tf.report.summary import format_summary  # noqa: E402
from tag_tf.selection import load_selection  # noqa: E402

# One flag per setting of RunConfig, named by its flat name (tag_tf.run.config); the help says what it is.
HELP = {
    "dataset": f"Data source, one of {run_config.DATASETS} (--recipe sets 'recipe').",
    "recipe": "Your own tasks, model and data: a Python file (or module) defining TASKS, build_model(tasks), "
              "load_data() and optionally optimizer(); see experiments/recipes/.",
    "tasks": "Task names (CelebA attributes, planted or scenes task names).",
    "celeba_dir": "Folder of the official CelebA files (dataset=celeba_folder).",
    "tfds_data_dir": "tfds data directory (dataset=celeba_tfds).",
    "tfds_manual_dir": "Folder of pre-downloaded CelebA files for tfds.",
    "image_size": "Side of the square input images.",
    "num_examples": "Examples of planted data or scenes (all splits).",
    "planted_groups": "Planted groups.",
    "tasks_per_group": "Tasks per planted group.",
    "train_examples": "Train on the first this many examples of the training split (0 = all); validation and "
                      "test stay whole.",
    "cache": "Keep decoded data in memory after the first epoch.",
    "architecture": f"The networks around the trunk, one of {run_config.ARCHITECTURES} (not for recipes).",
    "head_units": "Width of each task's decoder in the architectures.",
    "trunk_filters": "Filters of the CelebA trunk's convolutions.",
    "bn_momentum": "Batch normalisation momentum of the CelebA trunk.",
    "epochs": "Training epochs.",
    "batch_size": "Batch size.",
    "steps_per_epoch": "Steps per epoch (0 = the whole training split).",
    "patience": "Early-stopping patience (epochs) in group training.",
    "learning_rate": "SGD learning rate.",
    "momentum": "SGD momentum.",
    "lr_schedule": "The learning rate over the epochs: constant, or cosine (half a cosine from the learning "
                   "rate towards 0 at the end).",
    "balancer": "Loss balancing: equal, gradnorm, uncertainty or pcgrad.",
    "affinity_mode": "Affinity: exact, first_order, cosine or group_lookahead.",
    "affinity_groups": "group_lookahead: the candidate groups, e.g. a+b,a+b+c (default: every group of 2 to "
                       "--affinity_max_group_size tasks).",
    "affinity_max_group_size": "group_lookahead without --affinity_groups: the largest group measured.",
    "affinity_jit_compile": "Compile the affinity steps with XLA: true, false or auto (where supported: one "
                            "replica, a model and balancer XLA supports); unset: as --jit_compile says.",
    "affinity_every_n_steps": "auto (adaptive sampling, the default) or collect affinity every n steps (1: every "
                              "step, the paper's setting).",
    "affinity_normalize_by_lr": "Divide affinity by the learning rate, as the official code does.",
    "affinity_max_epochs": "Epochs whose per-epoch affinity means are kept.",
    "affinity_auto_min_samples": "auto: collect at every step until every pair has this many samples.",
    "affinity_auto_precision": "auto: thin collection while the median stderr of the pairs is at most this "
                               "fraction of the spread of their means.",
    "affinity_auto_max_interval": "auto: collect at least every this many steps.",
    "affinity_bootstrap_blocks": "Blocks of consecutive affinity steps kept for the selection stability bootstrap.",
    "num_groups": "Budgets k (most networks), e.g. 2,3.",
    "baselines": "Baselines, from all_in_one, single_task, random, hoa.",
    "random_seeds": "Random groupings per budget.",
    "eval_seeds": "Networks trained per group (seeds seed, seed+1, ...): means, spreads, paired comparisons.",
    "strategy": "default, mirrored, multi_worker (the same command on every worker, with TF_CONFIG) or tpu.",
    "jit_compile": "Compile training steps with XLA.",
    "seed": "Seed of data split, shuffling, initialisation and random groupings.",
}
DEFINE = {"str": flags.DEFINE_string, "int": flags.DEFINE_integer, "float": flags.DEFINE_float,
          "bool": flags.DEFINE_boolean, "tuple[str, ...]": flags.DEFINE_list, "tuple[int, ...]": flags.DEFINE_list,
          "int | str": flags.DEFINE_string,
          "tuple[tuple[str, ...], ...] | None": flags.DEFINE_list,  # affinity groups: a+b,a+b+c
          "bool | str | None": flags.DEFINE_string}  # affinity jit_compile: auto, true or false  # every_n_steps: "auto" or an integer

FLAGS = flags.FLAGS
flags.DEFINE_enum("preset", "demo", sorted(PRESETS), "Settings to start from.")
flags.DEFINE_string("run_dir", None, "The run directory (required).")
flags.DEFINE_boolean("overwrite", False, "Run every stage again, even those whose output exists.")
FIELD_TYPES = {name: {f.name: f.type for f in dataclasses.fields(run_config.SECTIONS[section][0])}[field]
               for name, (section, field) in run_config.flat_names().items()}
for _name, _type in FIELD_TYPES.items():
    DEFINE[_type](_name, None, HELP[_name])


def config_from_flags() -> run_config.RunConfig:
    """The preset, with every flag given on the command line put over it (validated here)."""
    overrides = {}
    for name, field_type in FIELD_TYPES.items():
        value = FLAGS[name].value
        if value is None:
            continue
        if field_type == "tuple[int, ...]":
            try:
                value = tuple(int(v) for v in value)
            except ValueError:
                raise ValueError(f"--{name}={','.join(value)}: expected integers >= 1, e.g. 2,3") from None
        overrides[name] = value
    if overrides.get("recipe"):
        overrides.setdefault("dataset", "recipe")
    preset = PRESETS[FLAGS.preset]
    if overrides.get("dataset", preset.data.dataset) != preset.data.dataset:
        overrides.setdefault("train_examples", 0)
    return preset.replace(**overrides)


def main(argv):
    del argv
    if not FLAGS.run_dir:
        raise app.UsageError("--run_dir is required: the folder the run's files go to.")
    try:
        config = config_from_flags()
        config.check_paths()
    except ValueError as error:
        raise app.UsageError(str(error))
    start = time.time()
    report = run(config, FLAGS.run_dir, overwrite=FLAGS.overwrite)
    paths = RunDir(FLAGS.run_dir)
    metrics = read_json(paths.metrics)
    _, selections = load_selection(paths.selection)
    print(format_summary(metrics, selections, load_data(config).planted_grouping))
    logging.info("Done in %.0fs (stages run: %s; networks trained: %d). Files in %s: config.json, affinity.json, "
                 "selection.json, groups/, metrics.json, export/ (models.config)", time.time() - start,
                 ", ".join(report.ran) or "none", len(report.trained), FLAGS.run_dir)
    print(f"Report: {os.path.abspath(paths.report_index)}")


if __name__ == "__main__":
    app.run(main)
