"""The TAG pipeline from the command line.

    python -m experiments.tag_pipeline --preset=demo --run_dir=runs/demo
    python -m experiments.tag_pipeline --preset=celeba_sample --epochs=2 --steps_per_epoch=50

A preset fills every setting; a flag given on the command line overrides it. Today the pipeline
trains the all-in-one multi-task network and reports per-task test accuracy.
"""

from __future__ import annotations

import dataclasses
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

from tag_tf import pipeline  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_enum("preset", "demo", sorted(pipeline.PRESETS), "Settings to start from.")
flags.DEFINE_string("run_dir", "", "Where config.json and metrics.json are written (none when empty).")
flags.DEFINE_enum("dataset", None, pipeline.DATASETS, "Data source.")
flags.DEFINE_list("tasks", None, "Task names (CelebA attributes, or planted task names).")
flags.DEFINE_string("celeba_dir", None, "Folder of the official CelebA files (dataset=celeba_folder).")
flags.DEFINE_string("tfds_data_dir", None, "tfds data directory (dataset=celeba_tfds).")
flags.DEFINE_string("tfds_manual_dir", None, "Folder of pre-downloaded CelebA files for tfds.")
flags.DEFINE_integer("image_size", None, "Side of the square input images.")
flags.DEFINE_integer("num_examples", None, "Examples of planted data (all splits).")
flags.DEFINE_integer("num_groups", None, "Planted groups.")
flags.DEFINE_integer("tasks_per_group", None, "Tasks per planted group.")
flags.DEFINE_integer("epochs", None, "Training epochs.")
flags.DEFINE_integer("batch_size", None, "Batch size.")
flags.DEFINE_integer("steps_per_epoch", None, "Steps per epoch (0 = the whole training split).")
flags.DEFINE_float("learning_rate", None, "SGD learning rate.")
flags.DEFINE_float("momentum", None, "SGD momentum.")
flags.DEFINE_boolean("cache", None, "Keep decoded data in memory after the first epoch.")
flags.DEFINE_integer("seed", None, "Seed of data split, shuffling and initialisation.")


def config_from_flags() -> pipeline.RunConfig:
    """The preset, with every flag given on the command line put over it (validated here)."""
    overrides = {
        field.name: FLAGS[field.name].value
        for field in dataclasses.fields(pipeline.RunConfig)
        if FLAGS[field.name].value is not None
    }
    return dataclasses.replace(pipeline.PRESETS[FLAGS.preset], **overrides)


def main(argv):
    del argv
    try:
        config = config_from_flags()
    except ValueError as error:
        raise app.UsageError(str(error))
    start = time.time()
    metrics = pipeline.train_all_in_one(config, run_dir=FLAGS.run_dir or None)
    print(format_metrics(metrics))
    where = f"; wrote {os.path.join(FLAGS.run_dir, 'config.json')} and metrics.json" if FLAGS.run_dir else ""
    logging.info("Done in %.0fs%s", time.time() - start, where)


def format_metrics(metrics: dict) -> str:
    """A table: task, test loss, test metric; and the mean metric."""
    rows = metrics["all_in_one"]
    width = max(len(t) for t in rows)
    lines = [f"{'task':<{width}}  {'loss':>7}  metric", "-" * (width + 25)]
    for task, values in rows.items():
        (metric, value), = [(k, v) for k, v in values.items() if k != "loss"]
        lines.append(f"{task:<{width}}  {values['loss']:>7.4f}  {metric} {value:.4f}")
    return "All-in-one network, test split\n" + "\n".join(lines)


if __name__ == "__main__":
    app.run(main)
