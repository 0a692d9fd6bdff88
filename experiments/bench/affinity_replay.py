"""The auto schedule's estimate against every step's, on the same training run: record every step's
Z of the demo preset's affinity run (every_n_steps=1), then replay schedules on those values.

    python -m experiments.bench.affinity_replay --seeds=10 --cache_dir=/tmp/replay

The paper's matrix is the mean of Z over every step. A schedule that collects some steps gives an
estimate of it; replaying the schedules on one recorded run compares the estimates alone (no
second training run, whose trajectory would differ). Per seed and variant: the sampled steps, the
RMS distance of the off-diagonal entries to every step's matrix, and `select_from_affinity` at
k = the number of planted groups (groups, whether they equal the planted ones and every step's,
bootstrap stability). Variants:

- every step: all recorded samples (the paper's matrix);
- doubling, unweighted (before): the schedule before time weighting: the plain mean, and the
  interval doubled while the median unweighted standard error was at most precision x spread,
  halved otherwise (`doubling_interval`);
- doubling, weighted mean only: the same steps, each sample weighted by the steps it stands for;
- doubling, weighted: the doubling rule reading the time-weighted mean and standard error;
- auto, end unknown: `tag_tf.affinity.adaptive.next_interval`, time-weighted, precise after every
  sample (as when the training loop does not know the run's length);
- auto (now): the default: the same rule knowing the run's end (as `fit()` tells it), so the
  samples spread over the run;
- every n: a fixed interval with about as many samples as "auto (now)" took.

The recorded values are cached (`--cache_dir`), so replays can be re-run without training.
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import dataclasses  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from tag_tf.affinity import AffinityAccumulator, next_interval, standard_error  # noqa: E402
from tag_tf.run import PRESETS, build_network, fit, load_data  # noqa: E402
from tag_tf.selection import select_from_affinity  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("preset", "demo", "A preset with planted data.")
flags.DEFINE_integer("seeds", 10, "Seeds 0 .. seeds-1.")
flags.DEFINE_string("cache_dir", None, "Where the recorded per-step values are kept (none: a temporary directory).")


class StepRecorder(keras.callbacks.Callback):
    """Every step's Z and valid mask, as the increases of the accumulator's Σ w z and count (weight
    1 every step)."""

    def __init__(self):
        super().__init__()
        self.z, self.valid = [], []

    def on_train_batch_begin(self, batch, logs=None):
        accumulator = self.model.affinity_accumulator
        self._before = accumulator.total.numpy().astype(np.float64), accumulator.count.numpy().astype(np.float64)

    def on_train_batch_end(self, batch, logs=None):
        accumulator = self.model.affinity_accumulator
        self.z.append(accumulator.total.numpy().astype(np.float64) - self._before[0])
        self.valid.append(accumulator.count.numpy().astype(np.float64) - self._before[1] > 0)


def record(config, seed: int, cache_dir: str):
    """(task names, planted grouping, z [steps, k, k], valid [steps, k, k]) of the every-step run."""
    path = os.path.join(cache_dir, f"{FLAGS.preset}_seed{seed}.npz")
    seeded = config.replace(seed=seed)
    data = load_data(seeded)
    names = [t.name for t in data.tasks]
    if not os.path.exists(path):
        model = build_network(seeded, data, data.tasks, dataclasses.replace(seeded.affinity, every_n_steps=1))
        recorder = StepRecorder()
        with tempfile.TemporaryDirectory() as backup:
            fit(seeded, data, model, backup, callbacks=[recorder])
        np.savez(path, z=np.array(recorder.z), valid=np.array(recorder.valid))
    recorded = np.load(path)
    return names, data.planted_grouping, recorded["z"], recorded["valid"]


def doubling_interval(count, mean, m2, interval, *, weight, weight2, min_samples, precision, max_interval,
                      remaining=None):
    """The auto rule before this benchmark's change: double the interval while the median standard
    error is at most precision x spread, else halve it (with weights: the time-weighted ones)."""
    del remaining
    count = np.asarray(count, np.float64)
    pairs = (count > 0) & ~np.eye(len(count), dtype=bool)
    if not pairs.any() or count[pairs].min() < min_samples:
        return 1
    stderr = standard_error(count, m2, weight, weight2)[pairs]
    if np.median(stderr) <= precision * float(np.std(np.asarray(mean, np.float64)[pairs])):
        return int(min(2 * interval, max_interval))
    return int(max(interval // 2, 1))


def replay(names, z, valid, affinity_config, *, every=None, rule=next_interval, weighted_mean=True,
           weighted_decision=True, end_known=True):
    """The TaskAffinity a schedule would give on the recorded values: every `every` steps, or
    `rule` (reading the weighted state or not), through the real accumulator."""
    owner = keras.layers.Layer()
    estimate = AffinityAccumulator(names, max_epochs=1, blocks=affinity_config.bootstrap_blocks)
    plain = AffinityAccumulator(names, max_epochs=1, blocks=2)  # the unweighted state, for the old decision
    estimate.build(owner)
    plain.build(owner)
    skipped = np.zeros(z.shape[1:], bool)
    next_step, interval = 0, every or 1
    for step in range(len(z)):
        if step < next_step:
            continue
        estimate.add(z[step], valid[step], skipped, weight=float(interval) if weighted_mean else 1.0)
        if every:
            next_step = step + every
            continue
        plain.add(z[step], valid[step], skipped)
        state = estimate.state() if weighted_decision else plain.state()
        interval = rule(state.count, state.mean, state.m2, interval, weight=state.weight, weight2=state.weight2,
                        remaining=len(z) - 1 - step if end_known else None, min_samples=affinity_config.auto_min_samples, precision=affinity_config.auto_precision,
                        max_interval=affinity_config.auto_max_interval)
        next_step = step + interval
    return estimate.result()


def off_diagonal_rms(a, b) -> float:
    off = ~np.eye(len(a), dtype=bool)
    return float(np.sqrt(np.mean((np.nan_to_num(a) - np.nan_to_num(b))[off] ** 2)))


def main(argv):
    del argv
    config = PRESETS[FLAGS.preset]
    affinity_config = config.affinity
    cache_dir = FLAGS.cache_dir or tempfile.mkdtemp()
    os.makedirs(cache_dir, exist_ok=True)
    print(f"Settings: preset {FLAGS.preset}, {config.data.num_examples} examples, {config.train.epochs} epochs, "
          f"batch {config.train.batch_size}; auto: min_samples {affinity_config.auto_min_samples}, precision "
          f"{affinity_config.auto_precision:g}, max_interval {affinity_config.auto_max_interval}.\n")
    print("| seed | variant | samples | RMS to every step | groups, k = planted | = planted | = every step | "
          "stability |")
    print("|---:|---|---:|---:|---|:---:|:---:|---:|")
    totals = {}
    for seed in range(FLAGS.seeds):
        start = time.time()
        names, planted, z, valid = record(config, seed, cache_dir)
        k = len(planted)
        variants = {"every step": replay(names, z, valid, affinity_config, every=1)}
        variants["doubling, unweighted (before)"] = replay(names, z, valid, affinity_config, rule=doubling_interval,
                                                           weighted_mean=False, weighted_decision=False)
        variants["doubling, weighted mean only"] = replay(names, z, valid, affinity_config, rule=doubling_interval,
                                                          weighted_decision=False)
        variants["doubling, weighted"] = replay(names, z, valid, affinity_config, rule=doubling_interval)
        variants["auto, end unknown"] = replay(names, z, valid, affinity_config, end_known=False)
        variants["auto (now)"] = replay(names, z, valid, affinity_config)
        every = max(1, round(len(z) / variants["auto (now)"].steps))
        variants[f"every n (n = {every})"] = replay(names, z, valid, affinity_config, every=every)
        reference = None
        for name, affinity in variants.items():
            grouping = select_from_affinity(affinity, [k])[0]
            groups = {frozenset(g) for g in grouping.groups}
            reference = groups if reference is None else reference
            planted_ok, same = groups == {frozenset(g) for g in planted}, groups == reference
            key = name if not name.startswith("every n") else "every n (same budget)"
            counts = totals.setdefault(key, [0, 0, 0, []])
            counts[0] += planted_ok
            counts[1] += same
            counts[2] += affinity.steps
            counts[3].append(off_diagonal_rms(affinity.matrix, variants["every step"].matrix))
            text = " ".join("{" + ", ".join(g) + "}" for g in grouping.groups)
            print(f"| {seed} | {name} | {affinity.steps} | {counts[3][-1]:.3f} | {text} | "
                  f"{'yes' if planted_ok else 'no'} | {'yes' if same else 'no'} | {grouping.stability:.2f} |",
                  flush=True)
        print(f"<!-- seed {seed}: {time.time() - start:.0f} s -->", flush=True)
    print("\n| variant | = planted | = every step | mean samples | mean RMS to every step |")
    print("|---|---:|---:|---:|---:|")
    for name, (planted_ok, same, steps, rms) in totals.items():
        print(f"| {name} | {planted_ok} / {FLAGS.seeds} | {same} / {FLAGS.seeds} | {steps / FLAGS.seeds:.0f} | "
              f"{np.mean(rms):.3f} |")


if __name__ == "__main__":
    app.run(main)
