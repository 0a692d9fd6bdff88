"""How many affinity samples does a run need? Every-n-steps collection, replayed on one run.

    python -m experiments.bench.affinity_sampling --data=planted --epochs=40
    python -m experiments.bench.affinity_sampling --data=celeba_sample --image_size=32 --filters=32 --epochs=5

One training run with exact affinity at every step records each step's Z (the change of the
model's running sums, read after every step). An `every_n_steps=n` run follows the same
trajectory (an affinity step takes the same update as a plain one) and averages Z over steps
offset, offset + n, ...: so every n and offset is replayed from the one run, without training
again. For each n (and the first `--offsets` offsets): the Spearman correlation of the
off-diagonal entries of A[source, target] with the every-step matrix, whether `select_groups`
picks the every-step groups for each budget, and, on planted data, whether it picks the planted
grouping. Prints Markdown.
"""

from __future__ import annotations

import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"

import keras  # noqa: E402
import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402
from scipy import stats  # noqa: E402

from tag_tf.affinity import AffinityConfig, mean_affinity  # noqa: E402
from tag_tf.run import PAPER_CELEBA_TASKS, PRESETS, batches, build_network, load_data  # noqa: E402
from tag_tf.selection import select_groups  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_enum("data", "planted", ["planted", "celeba_sample"], "The demo preset's planted data, or the "
                  "CelebA sample with the paper's 9 attributes.")
flags.DEFINE_integer("epochs", 40, "Epochs of the one run.")
flags.DEFINE_integer("image_size", None, "Image side (default: the preset's).")
flags.DEFINE_integer("filters", None, "Trunk filters (default: the preset's).")
flags.DEFINE_list("every", ["1", "5", "10", "20", "40"], "The every_n_steps values to replay.")
flags.DEFINE_integer("offsets", 5, "Offsets replayed per n (at most n).")
flags.DEFINE_list("budgets", ["2", "3"], "Numbers of groups k.")


class StepAffinity(keras.callbacks.Callback):
    """Z of every step: the increase of the model's affinity sums (NaN where no sample)."""

    def __init__(self):
        super().__init__()
        self.z = []
        self._last = None

    def on_train_batch_end(self, batch, logs=None):
        total, count = self.model.affinity_accumulator.total.numpy(), self.model.affinity_accumulator.count.numpy()
        last_total, last_count = self._last if self._last else (0.0, 0.0)
        self.z.append(np.where(count > last_count, total - last_total, np.nan))
        self._last = (total, count)


def served(grouping) -> dict:
    return {task: frozenset(grouping.groups[i]) for task, i in grouping.assignment.items()}


def off_diagonal_spearman(a: np.ndarray, b: np.ndarray) -> float:
    mask = ~np.eye(len(a), dtype=bool)
    return float(stats.spearmanr(a[mask], b[mask]).statistic)


def main(argv):
    del argv
    preset = PRESETS["demo" if FLAGS.data == "planted" else "celeba_sample"]
    config = preset.replace(epochs=FLAGS.epochs, image_size=FLAGS.image_size or preset.data.image_size,
                            trunk_filters=FLAGS.filters or preset.model.trunk_filters)
    config.check_paths()
    data = load_data(config)
    names = [t.name for t in data.tasks]
    budgets = [int(b) for b in FLAGS.budgets]
    model = build_network(config, data, data.tasks, AffinityConfig())
    recorder = StepAffinity()
    logging.info("one run, exact affinity every step: %s, %d epochs", FLAGS.data, config.train.epochs)
    model.fit(batches(config, data, "train"), epochs=config.train.epochs, callbacks=[recorder], verbose=0, shuffle=False)
    z = np.array(recorder.z)
    full = model.task_affinity().matrix
    reference = {k: served(select_groups(full, k, tasks=names)) for k in budgets}
    planted = {t: frozenset(g) for g in data.planted_grouping for t in g} if data.planted_grouping else None

    print(f"Settings: {FLAGS.data} ({len(names)} tasks{'' if planted else ': ' + ', '.join(PAPER_CELEBA_TASKS)}), "
          f"{config.data.image_size}x{config.data.image_size}, trunk filters {config.model.trunk_filters}, "
          f"batch {config.train.batch_size}, SGD({config.train.learning_rate:g}, momentum {config.train.momentum:g}), "
          f"{config.train.epochs} epochs = {len(z)} steps, seed {config.runtime.seed}. Every-step run's groups: " + "; ".join(
              f"k={k}: " + " + ".join("{" + ", ".join(g) + "}" for g in select_groups(full, k, tasks=names).groups)
              for k in budgets) + (f"; planted grouping recovered at k={len(data.planted_grouping)}: "
                                   f"{reference.get(len(data.planted_grouping)) == planted}" if planted else "") + ".\n")
    header = "| every n steps | samples | Spearman vs every step (mean, min) | " + " | ".join(
        f"same groups as every step, k={k}" for k in budgets)
    header += " | planted grouping |" if planted else " |"
    print(header)
    print("|---:|---:|---:|" + "---:|" * len(budgets) + ("---:|" if planted else ""))
    for n in (int(v) for v in FLAGS.every):
        offsets = range(min(n, FLAGS.offsets))
        rhos, same, recovered = [], {k: 0 for k in budgets}, 0
        for offset in offsets:
            picked = z[offset::n]
            matrix = mean_affinity(np.nansum(picked, axis=0), np.sum(np.isfinite(picked), axis=0))
            rhos.append(off_diagonal_spearman(matrix, full))
            for k in budgets:
                grouping = served(select_groups(matrix, k, tasks=names))
                same[k] += grouping == reference[k]
                if planted and k == len(data.planted_grouping):
                    recovered += grouping == planted
        cells = " | ".join(f"{same[k]}/{len(offsets)}" for k in budgets)
        tail = f" | {recovered}/{len(offsets)} |" if planted else " |"
        print(f"| {n} | {len(z[::n])} | {np.mean(rhos):.3f}, {np.min(rhos):.3f} | {cells}{tail}")


if __name__ == "__main__":
    app.run(main)
