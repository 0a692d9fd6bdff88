"""A wrapped user model against `build_multitask_model`: what a plain and an affinity step cost.

    python -m experiments.bench.wrap_overhead [--timed_steps=20] [--image_size=64]

The same network three ways: `build_multitask_model(celeba_resnet_trunk, 9 paper tasks)`; the same
layers written by a user as one functional model (heads named freely) passed to `wrap`; and a
subclassed model (built on a batch) passed to `wrap`. Each variant gets the same initial weights
and trains on the same random batches (batch 64, SGD(5e-4, momentum 0.9)), plain and with exact
affinity every step, in interleaved rounds so that load from other processes falls on all alike.
Reported: median seconds per step after the warm-up steps, and each wrapped variant's ratio to
`build_multitask_model`'s (target: within 5%). Prints progress through absl logging and the
results as Markdown.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from keras import layers  # noqa: E402

from experiments.bench import common  # noqa: E402
from tag_tf.affinity import AffinityConfig  # noqa: E402
from tag_tf.models import build_multitask_model, wrap  # noqa: E402
from tag_tf.run import PAPER_CELEBA_TASKS  # noqa: E402

FLAGS = flags.FLAGS
common.define_trunk_flags()
common.define_step_timing_flags(batch_size=64, timed_steps=20, rounds=4,
                                rounds_help="Interleaved rounds the timed steps are split into.")


class SubclassedNet(keras.Model):
    """The CelebA trunk and a head per task, as a subclassed model."""

    def __init__(self):
        super().__init__()
        self.trunk = common.trunk()
        self.heads = {t: layers.Dense(1, name=f"out_{t}") for t in PAPER_CELEBA_TASKS}

    def call(self, image):
        features = self.trunk(image)
        return {t: head(features) for t, head in self.heads.items()}


def functional_net(size: int) -> keras.Model:
    image = keras.Input((size, size, 3), name="image")
    features = common.trunk()(image)
    return keras.Model(image, {t: layers.Dense(1, name=f"logit_{t}")(features) for t in PAPER_CELEBA_TASKS})


def variants(size: int, affinity) -> dict:
    """{name: compiled MultiTaskModel}, each from the same seed."""
    def compiled(make):
        keras.utils.set_random_seed(0)
        model = make()
        model.compile(optimizer=keras.optimizers.SGD(5e-4, momentum=0.9))
        return model

    def subclassed():
        net = SubclassedNet()
        net(np.zeros((1, size, size, 3), "float32"))
        return wrap(net, PAPER_CELEBA_TASKS, affinity=affinity)

    return {
        "build_multitask_model": compiled(lambda: build_multitask_model(common.trunk(), PAPER_CELEBA_TASKS,
                                                                        affinity=affinity)),
        "wrap(functional)": compiled(lambda: wrap(functional_net(size), PAPER_CELEBA_TASKS, affinity=affinity)),
        "wrap(subclassed)": compiled(subclassed),
    }


def main(argv):
    del argv
    size, batch = FLAGS.image_size, FLAGS.batch_size
    rng = np.random.default_rng(0)
    steps = FLAGS.warmup_steps + FLAGS.timed_steps
    x = rng.random((steps * batch, size, size, 3), dtype=np.float32)
    y = {t: rng.integers(0, 2, steps * batch) for t in PAPER_CELEBA_TASKS}
    results = {}
    for mode, affinity in (("plain", None), ("exact affinity, every step", AffinityConfig())):
        models = variants(size, affinity)
        seconds = {name: [] for name in models}
        for name, model in models.items():  # warm-up: traces the train functions
            for step in range(FLAGS.warmup_steps):
                model.train_on_batch(x[step * batch:(step + 1) * batch], {t: v[step * batch:(step + 1) * batch]
                                                                          for t, v in y.items()})
        per_round = FLAGS.timed_steps // FLAGS.rounds
        for r in range(FLAGS.rounds):
            order = list(models)[r % len(models):] + list(models)[:r % len(models)]
            for name in order:
                for i in range(per_round):
                    step = FLAGS.warmup_steps + r * per_round + i
                    part = slice(step * batch, (step + 1) * batch)
                    start = time.perf_counter()
                    models[name].train_on_batch(x[part], {t: v[part] for t, v in y.items()})
                    seconds[name].append(time.perf_counter() - start)
            logging.info("%s: round %d/%d done", mode, r + 1, FLAGS.rounds)
        results[mode] = {name: float(np.median(s)) for name, s in seconds.items()}
    print(f"Settings: CelebA trunk {size}x{size} ({FLAGS.filters} filters), {len(PAPER_CELEBA_TASKS)} tasks, "
          f"batch {batch}, SGD(5e-4, 0.9), random data, {FLAGS.timed_steps} timed steps per variant and mode in "
          f"{FLAGS.rounds} interleaved rounds, {common.machine()}.\n")
    print("| step | variant | median s/step | ratio to build_multitask_model |")
    print("|---|---|---:|---:|")
    for mode, by_name in results.items():
        base = by_name["build_multitask_model"]
        for name, value in by_name.items():
            print(f"| {mode} | {name} | {value:.4f} | {value / base:.3f} |")


if __name__ == "__main__":
    app.run(main)
