"""Dense architectures: training step time and peak memory against the single-task networks, and the
affinity step's overhead on each.

    python -m experiments.bench.dense_architectures [--image_size=64] [--filters=64] [--rounds=2]

Four dense tasks of the synthetic scenes (segmentation, depth, normals, edges) at --image_size on
`celeba_resnet_trunk(..., feature_map=True)`: hard sharing, cross-stitch (units after "pool1" and the
trunk's output), PAD-Net (deep supervision: 8 outputs), and the four single-task networks together
(their step times summed: one step of each). Each multi-task architecture is measured plain and with
exact affinity on every step (`AffinityConfig(every_n_steps=1)`; PAD-Net's affinity covers its 8
outputs). Every configuration runs in a fresh Python process (so that its peak resident memory,
`resource.getrusage(...).ru_maxrss`, is its own: TensorFlow's CPU allocator reports no statistics,
`tf.config.experimental.get_memory_info("CPU:0")` gives 0, and tracemalloc does not see TF's memory);
the processes run one at a time, in --rounds rounds in rotated order, so that load from other work
falls on all alike. Reported: median seconds per step after the warm-up steps, its ratio to the
single-task networks', the affinity step's ratio to the plain step, and peak RSS (and its growth
from just before the first step). Adam(1e-3), batch --batch_size.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from experiments.bench import common  # noqa: E402

FLAGS = flags.FLAGS
common.define_trunk_flags()
common.define_step_timing_flags(batch_size=16, timed_steps=8, rounds=2,
                                rounds_help="Rounds; every configuration runs once per round, in a fresh process.")
flags.DEFINE_integer("head_units", 32, "Width of every decoder (and of PAD-Net's task features).")
flags.DEFINE_string("child", None, "Internal: measure one configuration 'architecture:mode' and print JSON.")

ARCHITECTURES = ("single_task", "hard_sharing", "cross_stitch", "padnet")
CONFIGURATIONS = [("single_task", "plain")] + [(a, m) for a in ARCHITECTURES[1:] for m in ("plain", "affinity")]


def resident_kb() -> int:
    """The current resident set size of this process, in KiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


def measure(architecture: str, mode: str) -> dict:
    """Build the configuration's model(s), run the steps; median s/step (summed over the single-task
    networks) and memory."""
    import keras

    from tag_tf.affinity import AffinityConfig
    from tag_tf.models.architectures import build_architecture, with_initial_labels, with_initial_tasks
    from tag_tf.data import scenes
    from tag_tf.models import celeba_resnet_trunk, wrap

    steps, batch = FLAGS.warmup_steps + FLAGS.timed_steps, FLAGS.batch_size
    data = scenes.scenes(num_examples=steps * batch, image_size=FLAGS.image_size, seed=0)
    tasks = [t for t in data.tasks if t.name in scenes.GEOMETRIC_TASKS]
    x, y = next(iter(data.splits["train"].concatenate(data.splits["validation"]).concatenate(
        data.splits["test"]).batch(steps * batch)))
    x, y = x.numpy(), {t.name: y[t.name].numpy() for t in tasks}
    affinity = AffinityConfig(every_n_steps=1) if mode == "affinity" else None
    options = {"padnet": {"channels": FLAGS.head_units}, "cross_stitch": {"head_units": FLAGS.head_units,
                                                                          "stages": ("pool1",)}}
    keras.utils.set_random_seed(0)
    models = []
    for group in ([[t] for t in tasks] if architecture == "single_task" else [tasks]):
        trunk = celeba_resnet_trunk(FLAGS.image_size, filters=FLAGS.filters, feature_map=True)
        network = build_architecture(architecture, trunk, group,
                                     **options.get(architecture, {"head_units": FLAGS.head_units}))
        padnet = architecture == "padnet"
        model = wrap(network, with_initial_tasks(group) if padnet else group, affinity=affinity)
        model.compile(optimizer=keras.optimizers.Adam(1e-3))
        labels = {t.name: y[t.name] for t in group}
        models.append((model, with_initial_labels(labels, group) if padnet else labels))
    before = resident_kb()
    seconds = np.zeros((len(models), FLAGS.timed_steps))
    for index, (model, labels) in enumerate(models):
        for step in range(steps):
            part = slice(step * batch, (step + 1) * batch)
            start = time.perf_counter()
            model.train_on_batch(x[part], {k: v[part] for k, v in labels.items()})
            if step >= FLAGS.warmup_steps:
                seconds[index, step - FLAGS.warmup_steps] = time.perf_counter() - start
    return {"seconds_per_step": float(np.median(seconds.sum(axis=0))), "rss_before_kb": before,
            "peak_rss_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
            "params": int(sum(model.count_params() for model, _ in models))}


def run_child(architecture: str, mode: str) -> dict:
    """`measure` in a fresh Python process, with this process's flags."""
    flags_given = [f"--{name}={FLAGS[name].value}" for name in ("image_size", "filters", "batch_size", "head_units",
                                                                 "warmup_steps", "timed_steps")]
    command = [sys.executable, "-m", "experiments.bench.dense_architectures", f"--child={architecture}:{mode}",
               *flags_given]
    child = subprocess.run(command, capture_output=True, text=True)
    if child.returncode:
        raise RuntimeError(f"{' '.join(command)} failed ({child.returncode}):\n{child.stderr[-3000:]}")
    return json.loads(child.stdout.strip().splitlines()[-1])


def main(argv):
    del argv
    if FLAGS.child:
        print(json.dumps(measure(*FLAGS.child.split(":"))))
        return
    results = {configuration: [] for configuration in CONFIGURATIONS}
    start = time.time()
    for r in range(FLAGS.rounds):
        shift = r * 3 % len(CONFIGURATIONS)
        for configuration in CONFIGURATIONS[shift:] + CONFIGURATIONS[:shift]:
            results[configuration].append(run_child(*configuration))
            logging.info("round %d/%d: %s done (%.0f s elapsed)", r + 1, FLAGS.rounds, ":".join(configuration),
                         time.time() - start)
    step = {c: float(np.median([m["seconds_per_step"] for m in runs])) for c, runs in results.items()}
    peak = {c: max(m["peak_rss_kb"] for m in runs) / 1024 for c, runs in results.items()}
    growth = {c: max(m["peak_rss_kb"] - m["rss_before_kb"] for m in runs) / 1024 for c, runs in results.items()}
    single = step[("single_task", "plain")]
    print(f"Settings: 4 dense scenes tasks, {FLAGS.image_size}x{FLAGS.image_size}, trunk of {FLAGS.filters} filters, "
          f"decoders of {FLAGS.head_units} units, batch {FLAGS.batch_size}, Adam(1e-3), {FLAGS.timed_steps} timed "
          f"steps after {FLAGS.warmup_steps} warm-up steps, {FLAGS.rounds} rounds of fresh processes; "
          f"{common.machine()} (at the end).\n")
    print("| architecture | params | plain s/step | ratio to single-task nets | affinity s/step | affinity / plain "
          "| peak RSS plain (MiB) | growth in training (MiB) | peak RSS affinity (MiB) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for architecture in ARCHITECTURES:
        plain = (architecture, "plain")
        with_affinity = (architecture, "affinity")
        cells = [f"{results[plain][0]['params']:,}", f"{step[plain]:.3f}", f"{step[plain] / single:.2f}"]
        if with_affinity in step:
            cells += [f"{step[with_affinity]:.3f}", f"{step[with_affinity] / step[plain]:.2f}"]
        else:
            cells += ["—", "—"]
        cells += [f"{peak[plain]:.0f}", f"{growth[plain]:.0f}",
                  f"{peak[with_affinity]:.0f}" if with_affinity in peak else "—"]
        print(f"| {architecture} | " + " | ".join(cells) + " |")
    print("\nper round s/step: " + "; ".join(f"{':'.join(c)} {[round(m['seconds_per_step'], 3) for m in runs]}"
                                            for c, runs in results.items()))


if __name__ == "__main__":
    app.run(main)
