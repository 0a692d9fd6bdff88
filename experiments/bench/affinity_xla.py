"""What compiling the affinity steps with XLA (`AffinityConfig(jit_compile="auto")`, only those steps)
buys on CPU: exact affinity at every step against plain training, side by side in one process.

    python -m experiments.bench.affinity_xla --timed_steps=4 --rounds=3

The TAG CelebA trunk with the paper's 9 heads, 64x64 images of the CelebA sample, batch 64,
SGD(5e-4, momentum 0.9); every variant from the same initial weights, on the same pre-decoded
batches, in interleaved rounds (one `fit()` of `--timed_steps` batches per variant per round, the
order rotating) so that load from other processes falls on all alike. Plain steps are never
compiled with XLA (`compile(jit_compile=False)`, the CPU default):

  plain                                     no affinity
  exact, every step, no XLA                 AffinityConfig(every_n_steps=1): as compile() says, here no XLA
  exact, every step, XLA affinity steps     AffinityConfig(every_n_steps=1, jit_compile="auto")
  first_order, every step, XLA affinity...  AffinityConfig(mode="first_order", every_n_steps=1, jit_compile="auto")

Prints Markdown: the median step after the warm-up, its ratio to plain's median step, and the
first (tracing and compiling) step.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from experiments.bench import common  # noqa: E402
from tag_tf.affinity import AffinityConfig  # noqa: E402
from tag_tf.data import celeba  # noqa: E402
from tag_tf.data.pipeline import batched  # noqa: E402
from tag_tf.models import build_multitask_model  # noqa: E402
from tag_tf.run import PAPER_CELEBA_TASKS, PRESETS  # noqa: E402

FLAGS = flags.FLAGS
common.define_trunk_flags()
common.define_step_timing_flags(batch_size=64, timed_steps=4, rounds=3,
                                rounds_help="Interleaved rounds of --timed_steps steps per variant.")
flags.DEFINE_string("celeba_dir", PRESETS["celeba_sample"].data.celeba_dir, "Official CelebA folder.")

VARIANTS = {
    "plain": None,
    "exact, every step, no XLA": AffinityConfig(every_n_steps=1),
    "exact, every step, XLA affinity steps": AffinityConfig(every_n_steps=1, jit_compile="auto"),
    "first_order, every step, XLA affinity steps": AffinityConfig(mode="first_order", every_n_steps=1,
                                                                  jit_compile="auto"),
}


def main(argv):
    del argv
    warmup, timed, rounds = FLAGS.warmup_steps, FLAGS.timed_steps, FLAGS.rounds
    steps = warmup + timed * rounds
    train = celeba.load_folder(FLAGS.celeba_dir, PAPER_CELEBA_TASKS, "train", image_size=FLAGS.image_size)
    data = batched(train, FLAGS.batch_size, drop_remainder=True).take(steps).cache()
    if sum(1 for _ in data) != steps:  # fills the cache: training reads decoded tensors from memory
        raise ValueError(f"The training split has fewer than {steps} full batches.")
    models, timers, done = {}, {}, {}
    for name, config in VARIANTS.items():
        keras.utils.set_random_seed(0)
        models[name] = build_multitask_model(common.trunk(), PAPER_CELEBA_TASKS, affinity=config)
        models[name].compile(optimizer=keras.optimizers.SGD(5e-4, momentum=0.9), jit_compile=False)
        timers[name], done[name] = common.StepSeconds(), 0
    names = list(VARIANTS)
    for r, count in enumerate([warmup] + [timed] * rounds):
        for name in names[r % len(names):] + names[: r % len(names)]:
            models[name].fit(data.skip(done[name]).take(count), epochs=1, verbose=0, shuffle=False,
                             callbacks=[timers[name]])
            done[name] += count
        logging.info("round %d: %s", r, ", ".join(f"{n} {np.mean(t.seconds[-count:]):.2f}s/step"
                                                  for n, t in timers.items()))
    print(f"Machine: {common.machine()}. Settings: TAG CelebA trunk ({FLAGS.filters} filters), "
          f"{len(PAPER_CELEBA_TASKS)} tasks, {FLAGS.image_size}x{FLAGS.image_size}, batch {FLAGS.batch_size}, "
          f"SGD(5e-4, momentum 0.9); {warmup} warm-up steps + {rounds} interleaved rounds of {timed} timed steps "
          f"per variant; plain steps without XLA.\n")
    print("| variant | affinity steps under XLA | median step s | ratio to plain | first step s (traces, compiles) |")
    print("|---|---|---:|---:|---:|")
    plain = float(np.median(timers["plain"].seconds[warmup:]))
    for name, model in models.items():
        step = float(np.median(timers[name].seconds[warmup:]))
        xla = "—" if VARIANTS[name] is None else ("yes" if model.affinity_jit_compile() else "no")
        print(f"| {name} | {xla} | {step:.3f} | {step / plain:.2f}x | {timers[name].seconds[0]:.1f} |")
    matrices = {n: m.task_affinity().matrix for n, m in models.items() if VARIANTS[n] is not None}
    a, b = matrices["exact, every step, no XLA"], matrices["exact, every step, XLA affinity steps"]
    print(f"\nexact with and without XLA after the same {steps} steps: max |difference| {np.abs(a - b).max():.3g} "
          f"(entries up to {np.abs(a).max():.3g}).")


if __name__ == "__main__":
    app.run(main)
