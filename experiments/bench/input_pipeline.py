"""Input pipeline throughput against training throughput, side by side in one run.

    python -m experiments.bench.input_pipeline [--celeba_dir=../shared/data/celeba_sample]

Measures, on the CelebA folder's training split at 64x64 with batch 64:
  1. `load_folder` (lazy JPEG decode + resize, batched, prefetching): images/s;
  2. the same images already decoded and held in memory: images/s;
  3. training steps of the TAG CelebA trunk with the paper's 9 tasks: images/s.
The input pipeline must never be the bottleneck: (1) at least 5x (3). Prints a Markdown table.
"""

from __future__ import annotations

import os
import platform
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from tag_tf.data import celeba  # noqa: E402
from tag_tf.data.pipeline import batched  # noqa: E402
from tag_tf.models import build_multitask_model, celeba_resnet_trunk  # noqa: E402
from tag_tf.run import PAPER_CELEBA_TASKS, PRESETS  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("celeba_dir", PRESETS["celeba_sample"].data.celeba_dir, "Official CelebA folder.")
flags.DEFINE_integer("image_size", 64, "Side of the square images.")
flags.DEFINE_integer("batch_size", 64, "Batch size.")
flags.DEFINE_integer("train_steps", 30, "Timed training steps (after 3 warm-up steps).")


def images_per_second(dataset: tf.data.Dataset, batch_size: int, max_batches: int | None = None) -> float:
    """Iterate once over (at most max_batches of) a batched dataset; images per second."""
    iterator = iter(dataset)
    next(iterator)  # warm-up: start the threads, fill the prefetch buffer
    start, images = time.perf_counter(), 0
    for i, (x, _) in enumerate(iterator):
        images += int(x.shape[0])
        if max_batches and i + 1 >= max_batches:
            break
    return images / (time.perf_counter() - start)


def training_images_per_second(dataset: tf.data.Dataset, batch_size: int, image_size: int, steps: int) -> float:
    model = build_multitask_model(celeba_resnet_trunk(image_size), PAPER_CELEBA_TASKS)
    model.compile(optimizer=keras.optimizers.SGD(5e-4, momentum=0.9))
    batches = dataset.take(3 + steps).cache()
    list(batches)  # decode before timing: measure the model, not the input
    model.fit(batches.take(3), epochs=1, verbose=0, shuffle=False)  # trace and compile the train step
    start = time.perf_counter()
    model.fit(batches.skip(3), epochs=1, verbose=0, shuffle=False)
    return steps * batch_size / (time.perf_counter() - start)


def main(argv):
    del argv
    size, batch = FLAGS.image_size, FLAGS.batch_size
    train = celeba.load_folder(FLAGS.celeba_dir, PAPER_CELEBA_TASKS, "train", image_size=size)
    logging.info("1/3 load_folder throughput")
    folder = images_per_second(batched(train, batch), batch)
    logging.info("2/3 in-memory throughput")
    images = np.stack([x for x, _ in train.as_numpy_iterator()])
    labels = {t: np.zeros(len(images), np.int32) for t in PAPER_CELEBA_TASKS}
    memory = images_per_second(batched(tf.data.Dataset.from_tensor_slices((images, labels)), batch), batch)
    logging.info("3/3 training throughput")
    training = training_images_per_second(batched(train, batch), batch, size, FLAGS.train_steps)
    print(f"Machine: {os.cpu_count()} CPU cores, {platform.processor() or platform.machine()}, "
          f"TensorFlow {tf.__version__}; {len(images)} CelebA training images, {size}x{size}, batch {batch}\n")
    print("| pipeline | images/s | ratio to training |")
    print("|---|---:|---:|")
    for name, value in [("load_folder (JPEG decode + resize, prefetch)", folder),
                        ("in memory (decoded)", memory),
                        (f"training step, CelebA trunk, {len(PAPER_CELEBA_TASKS)} tasks", training)]:
        print(f"| {name} | {value:,.0f} | {value / training:.1f}x |")
    verdict = "met" if folder >= 5 * training else "NOT met"
    print(f"\nTarget (load_folder >= 5x training): {verdict}.")


if __name__ == "__main__":
    app.run(main)
