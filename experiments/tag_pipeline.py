"""The TAG pipeline from the command line: affinity -> select -> train -> evaluate -> export.

    python -m experiments.tag_pipeline --preset=demo --run_dir=runs/demo
    python -m experiments.tag_pipeline --preset=celeba_sample --epochs=2 --steps_per_epoch=50 --run_dir=runs/s

A preset fills every setting; a flag given on the command line overrides it. Every setting is
checked before any work. A run directory that already holds stage outputs continues where it
stopped (`--overwrite` starts again).
"""

from __future__ import annotations

import dataclasses
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from tag_tf import grouped, pipeline  # noqa: E402
from tag_tf.io import read_json  # noqa: E402
from tag_tf.selection import load_selection  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_enum("preset", "demo", sorted(pipeline.PRESETS), "Settings to start from.")
flags.DEFINE_string("run_dir", None, "The run directory (required).")
flags.DEFINE_boolean("overwrite", False, "Run every stage again, even those whose output exists.")
flags.DEFINE_string("dataset", None, f"Data source, one of {pipeline.DATASETS}.")
flags.DEFINE_list("tasks", None, "Task names (CelebA attributes, or planted task names).")
flags.DEFINE_string("celeba_dir", None, "Folder of the official CelebA files (dataset=celeba_folder).")
flags.DEFINE_string("tfds_data_dir", None, "tfds data directory (dataset=celeba_tfds).")
flags.DEFINE_string("tfds_manual_dir", None, "Folder of pre-downloaded CelebA files for tfds.")
flags.DEFINE_integer("image_size", None, "Side of the square input images.")
flags.DEFINE_integer("trunk_filters", None, "Filters of the CelebA trunk's convolutions.")
flags.DEFINE_float("bn_momentum", None, "Batch normalisation momentum of the CelebA trunk.")
flags.DEFINE_integer("num_examples", None, "Examples of planted data (all splits).")
flags.DEFINE_integer("planted_groups", None, "Planted groups.")
flags.DEFINE_integer("tasks_per_group", None, "Tasks per planted group.")
flags.DEFINE_list("num_groups", None, "Budgets k (most networks), e.g. 2,3.")
flags.DEFINE_string("affinity_mode", None, "exact or first_order.")
flags.DEFINE_integer("affinity_every", None, "Collect affinity every n steps.")
flags.DEFINE_list("baselines", None, f"Baselines, from {pipeline.BASELINES}.")
flags.DEFINE_integer("random_seeds", None, "Random groupings per budget.")
flags.DEFINE_integer("epochs", None, "Training epochs.")
flags.DEFINE_integer("batch_size", None, "Batch size.")
flags.DEFINE_integer("steps_per_epoch", None, "Steps per epoch (0 = the whole training split).")
flags.DEFINE_integer("patience", None, "Early-stopping patience (epochs) in group training.")
flags.DEFINE_float("learning_rate", None, "SGD learning rate.")
flags.DEFINE_float("momentum", None, "SGD momentum.")
flags.DEFINE_string("balancer", None, "Loss balancing: equal, gradnorm, uncertainty or pcgrad.")
flags.DEFINE_string("strategy", None, "default, mirrored, multi_worker or tpu.")
flags.DEFINE_boolean("jit_compile", None, "Compile training steps with XLA.")
flags.DEFINE_boolean("cache", None, "Keep decoded data in memory after the first epoch.")
flags.DEFINE_integer("seed", None, "Seed of data split, shuffling, initialisation and random groupings.")


def config_from_flags() -> pipeline.RunConfig:
    """The preset, with every flag given on the command line put over it (validated here)."""
    overrides = {}
    for field in dataclasses.fields(pipeline.RunConfig):
        value = FLAGS[field.name].value
        if value is None:
            continue
        if field.name == "num_groups":
            try:
                value = tuple(int(v) for v in value)
            except ValueError:
                raise ValueError(f"--num_groups={','.join(value)}: expected integers >= 1, e.g. 2,3") from None
        overrides[field.name] = value
    return dataclasses.replace(pipeline.PRESETS[FLAGS.preset], **overrides)


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
    report = pipeline.run(config, FLAGS.run_dir, overwrite=FLAGS.overwrite)
    metrics = read_json(os.path.join(FLAGS.run_dir, "metrics.json"))
    _, selections = load_selection(os.path.join(FLAGS.run_dir, "selection.json"))
    print(format_summary(metrics, selections, pipeline.load_data(config).planted_grouping))
    logging.info("Done in %.0fs (stages run: %s; networks trained: %d). Files in %s: config.json, affinity.json, "
                 "selection.json, groups/, metrics.json, export/ (models.config)", time.time() - start,
                 ", ".join(report.ran) or "none", len(report.trained), FLAGS.run_dir)
    print(f"Report: {os.path.abspath(os.path.join(FLAGS.run_dir, pipeline.STAGE_OUTPUTS['report']))}")


def format_summary(metrics: dict, selections, planted) -> str:
    """TAG's groupings, the planted one (if any), and a table of every grouping's total error."""
    lines = []
    for grouping in selections:
        groups = " ".join("{" + ", ".join(g) + "}" for g in grouping.groups)
        lines.append(f"TAG grouping, k={grouping.budget}: {groups}  (score {grouping.score:.4f}, "
                     f"{'optimal' if grouping.optimal else 'not proven optimal'})")
    if planted:
        lines.append("Planted grouping:     " + " ".join("{" + ", ".join(g) + "}" for g in planted))
    rows = grouped.summarize(metrics["groupings"])
    width = max(len(r["name"]) for r in rows)
    lines += ["", f"{'grouping':<{width}}  networks  total test error (%)  ΔMTL vs single-task  time to choose (s)",
              "-" * (width + 73)]
    for row in rows:
        text = grouped.format_row(row)
        lines.append(f"{row['name']:<{width}}  {row['networks']:>8}  {text['total_error']:>20}  "
                     f"{text['delta_mtl']:>19}  {text['time_to_choose']:>18}")
    return "\n".join(lines)


if __name__ == "__main__":
    app.run(main)
