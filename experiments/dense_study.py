"""Dense multi-task architectures on the synthetic scenes (issue 14's result), over several seeds.

    python -m experiments.dense_study --out=runs/dense_study/results.json

Three parts, each repeated for every seed in --seeds (the seed draws the scenes and the initial
weights; every network of a seed sees the same scenes and batches):

1. Architectures on the four geometric tasks (segmentation, depth, normals, edges): the single-task
   networks, hard sharing, cross-stitch (encoder-focused; units after the trunk's "pool1" and its
   output) and PAD-Net (decoder-focused, deep supervision), all on `celeba_resnet_trunk(...,
   feature_map=True)`, equal loss weights. Reported: every task's test metrics, ΔMTL against the
   single-task networks (`tag_tf.evaluation.grouped.metric_delta_mtl`), parameters and inference FLOPs.
2. Equal weights against GradNorm (alpha --gradnorm_alpha, balancing the trunk's last
   convolution "conv2_2") on the architecture of the best mean ΔMTL in part 1 (paired by seed).
3. TAG on all six scenes tasks (the geometric ones, colour, texture): exact affinity on every
   step of a hard-sharing network, then `select_groups` for k = 2 and 3. Reported: the matrix, the
   groups, and whether they separate the geometric tasks from the unrelated ones (no serving
   group mixes the two), plus the mean affinity within the geometric tasks and across the two.

Every network trains with Adam(--learning_rate) for --epochs epochs on the train split and is
measured on the test split. Progress through absl logging; a summary table at the end; results
written atomically to --out.
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from experiments.bench.common import machine  # noqa: E402
from tag_tf.affinity import AffinityConfig  # noqa: E402
from tag_tf.models.architectures import build_architecture, with_initial_labels, with_initial_tasks  # noqa: E402
from tag_tf.balancing import GradNorm  # noqa: E402
from tag_tf.data import scenes  # noqa: E402
from tag_tf.evaluation.grouped import metric_delta_mtl  # noqa: E402
from tag_tf.utils.io import write_json_atomic  # noqa: E402
from tag_tf.models import celeba_resnet_trunk, inference_flops, wrap  # noqa: E402
from tag_tf.selection import select_groups  # noqa: E402
from tag_tf.evaluation.stats import mean_std, paired_difference  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("out", None, "Where to write the results (JSON).", required=True)
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds (scenes and initial weights).")
flags.DEFINE_integer("num_examples", 800, "Scenes per seed (80% train, 10% validation, 10% test).")
flags.DEFINE_integer("image_size", 32, "Side of the square images.")
flags.DEFINE_integer("filters", 16, "Filters of the trunk.")
flags.DEFINE_integer("head_units", 16, "Width of every task decoder (and of PAD-Net's task features).")
flags.DEFINE_integer("epochs", 8, "Training epochs of every network.")
flags.DEFINE_integer("batch_size", 32, "Batch size.")
flags.DEFINE_float("learning_rate", 2e-3, "Adam's learning rate.")
flags.DEFINE_float("gradnorm_alpha", 1.5, "GradNorm's asymmetry alpha.")
flags.DEFINE_list("architectures", ["hard_sharing", "cross_stitch", "padnet"], "Multi-task architectures compared.")
flags.DEFINE_list("budgets", ["2", "3"], "Budgets k of the TAG grouping.")

GEOMETRIC = list(scenes.GEOMETRIC_TASKS)
OPTIONS = {"hard_sharing": lambda units: {"head_units": units},
           "single_task": lambda units: {"head_units": units},
           "cross_stitch": lambda units: {"head_units": units, "stages": ("pool1",)},
           "padnet": lambda units: {"channels": units}}


def batches(dataset: tf.data.Dataset, task_names: list[str], padnet: bool = False, shuffle_seed: int | None = None):
    """(image, {task: label}) batches of `task_names` (and their `__initial` copies for PAD-Net)."""
    dataset = dataset.map(lambda x, y: (x, {t: y[t] for t in task_names}))
    if padnet:
        dataset = dataset.map(lambda x, y: (x, with_initial_labels(y, task_names)))
    dataset = dataset.cache()
    if shuffle_seed is not None:
        dataset = dataset.shuffle(1024, seed=shuffle_seed, reshuffle_each_iteration=True)
    return dataset.batch(FLAGS.batch_size).prefetch(tf.data.AUTOTUNE)


def train_and_measure(name: str, tasks: list, data: scenes.SceneData, seed: int, balancer=None,
                      affinity: AffinityConfig | None = None) -> dict:
    """Build `name` on a fresh trunk (weights from `seed`), train it, and measure it on the test split:
    {"test": {task: {metric: value}}, "params", "flops", "seconds", "model"}."""
    keras.utils.set_random_seed(seed)
    trunk = celeba_resnet_trunk(FLAGS.image_size, filters=FLAGS.filters, bn_momentum=0.9, feature_map=True)
    network = build_architecture(name, trunk, tasks, **OPTIONS[name](FLAGS.head_units))
    names = [t.name for t in tasks]
    padnet = name == "padnet"
    model = wrap(network, with_initial_tasks(tasks) if padnet else tasks, affinity=affinity, balancer=balancer)
    model.compile(optimizer=keras.optimizers.Adam(FLAGS.learning_rate))
    start = time.time()
    history = model.fit(batches(data.splits["train"], names, padnet, shuffle_seed=seed), epochs=FLAGS.epochs,
                        verbose=0)
    seconds = time.time() - start
    logs = model.evaluate(batches(data.splits["test"], names, padnet), return_dict=True, verbose=0)
    test = {t.name: {m: float(logs[f"{t.name}_{m}"]) for m in t.metric_names} for t in tasks}
    weights = {key[len("weight_"):]: float(values[-1]) for key, values in history.history.items()
               if key.startswith("weight_")}
    return {"test": test, "params": int(network.count_params()), "seconds": round(seconds, 1),
            "final_weights": weights or None, "model": model, "network": network}


def run_architectures(seed: int, data: scenes.SceneData, tasks: list, flops: dict) -> dict:
    """Part 1 for one seed: {architecture: {"test", "params", "flops", "seconds", "delta_mtl"}}."""
    rows = {}
    single = {"test": {}, "params": 0, "flops": 0, "seconds": 0.0}
    for task in tasks:
        result = train_and_measure("single_task", [task], data, seed)
        single["test"].update(result["test"])
        single["params"] += result["params"]
        single["seconds"] += result["seconds"]
        flops.setdefault(f"single_task:{task.name}", inference_flops(result["network"]))
        single["flops"] += flops[f"single_task:{task.name}"]
        logging.info("seed %d: single-task %s done (%.0f s): %s", seed, task.name, result["seconds"],
                     result["test"][task.name])
    single["delta_mtl"] = 0.0
    rows["single_task"] = single
    for name in FLAGS.architectures:
        result = train_and_measure(name, tasks, data, seed)
        flops.setdefault(name, inference_flops(result["network"]))
        rows[name] = {"test": result["test"], "params": result["params"], "flops": flops[name],
                      "seconds": result["seconds"],
                      "delta_mtl": metric_delta_mtl(result["test"], single["test"], tasks)}
        logging.info("seed %d: %s done (%.0f s): ΔMTL %+.2f%%", seed, name, result["seconds"],
                     100 * rows[name]["delta_mtl"])
    return rows


def run_gradnorm(seed: int, data: scenes.SceneData, tasks: list, name: str, single_test: dict) -> dict:
    """Part 2 for one seed: `name` trained with GradNorm."""
    result = train_and_measure(name, tasks, data, seed, balancer=GradNorm(alpha=FLAGS.gradnorm_alpha, layer="conv2_2"))
    row = {"test": result["test"], "seconds": result["seconds"], "final_weights": result["final_weights"],
           "delta_mtl": metric_delta_mtl(result["test"], single_test, tasks)}
    logging.info("seed %d: %s + GradNorm done (%.0f s): ΔMTL %+.2f%%, weights %s", seed, name, result["seconds"],
                 100 * row["delta_mtl"], {k: round(v, 2) for k, v in row["final_weights"].items()})
    return row


def separates(grouping, related: list[str]) -> bool:
    """No task is served by a group that mixes `related` tasks with others."""
    return all(len({t in related for t in grouping.groups[index]}) == 1 for index in grouping.assignment.values())


def run_affinity(seed: int, data: scenes.SceneData) -> dict:
    """Part 3 for one seed: the affinity of all scenes tasks on hard sharing, and the groupings."""
    result = train_and_measure("hard_sharing", data.tasks, data, seed, affinity=AffinityConfig(every_n_steps=1))
    affinity = result["model"].task_affinity()
    names = list(affinity.tasks)
    matrix = np.asarray(affinity.matrix)
    geometric = [names.index(t) for t in GEOMETRIC]
    other = [i for i in range(len(names)) if i not in geometric]
    within = [matrix[i, j] for i in geometric for j in geometric if i != j]
    across = [matrix[i, j] for i in range(len(names)) for j in range(len(names))
              if i != j and ((i in geometric) != (j in geometric))]
    row = {"tasks": names, "matrix": matrix.tolist(), "mean_within_geometric": float(np.mean(within)),
           "mean_across": float(np.mean(across)),
           "mean_within_other": float(np.mean([matrix[i, j] for i in other for j in other if i != j])),
           "seconds": result["seconds"], "groupings": {}}
    for k in (int(b) for b in FLAGS.budgets):
        for overlap in (True, False):
            grouping = select_groups(matrix, k, tasks=names, overlap=overlap)
            row["groupings"][f"k={k}" + ("" if overlap else ", partition")] = {
                "groups": [list(g) for g in grouping.groups], "assignment": dict(grouping.assignment),
                "score": float(grouping.score), "separates": separates(grouping, GEOMETRIC)}
    logging.info("seed %d: affinity done (%.0f s): within geometric %.4f, across %.4f; %s", seed, result["seconds"],
                 row["mean_within_geometric"], row["mean_across"],
                 {key: (g["groups"], g["separates"]) for key, g in row["groupings"].items()})
    return row


def summarize(values: list[float], scale: float = 1.0) -> dict:
    mean, std = mean_std([scale * v for v in values])
    return {"mean": mean, "std": std, "values": [scale * v for v in values]}


def text(summary: dict, digits: int = 3) -> str:
    std = "" if summary["std"] is None else f" ± {summary['std']:.{digits}f}"
    return f"{summary['mean']:.{digits}f}{std}"


def aggregate(per_seed: list[dict], tasks: list) -> dict:
    """Mean ± std over seeds of every architecture's metrics, ΔMTL (%) and time."""
    summary = {}
    for name in per_seed[0]:
        rows = [seed_rows[name] for seed_rows in per_seed]
        summary[name] = {
            "test": {t.name: {m: summarize([r["test"][t.name][m] for r in rows]) for m in t.metric_names}
                     for t in tasks},
            "delta_mtl_percent": summarize([r["delta_mtl"] for r in rows], 100.0),
            "seconds": summarize([r["seconds"] for r in rows]),
            "params": rows[0].get("params"), "flops": rows[0].get("flops")}
    return summary


def table(summary: dict, tasks: list) -> str:
    columns = [(t.name, m) for t in tasks for m in t.metric_names]
    lines = ["| network | " + " | ".join(f"{t} {m}" for t, m in columns) + " | ΔMTL (%) | params | FLOPs | train s |",
             "|---|" + "---:|" * (len(columns) + 4)]
    for name, row in summary.items():
        cells = [text(row["test"][t][m]) for t, m in columns]
        params = "" if row["params"] is None else f"{row['params']:,}"
        flops = "" if row["flops"] is None else f"{row['flops'] / 1e6:.1f} M"
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {text(row['delta_mtl_percent'], 2)} | {params} | "
                     f"{flops} | {text(row['seconds'], 0)} |")
    return "\n".join(lines)


def main(argv):
    del argv
    seeds = [int(s) for s in FLAGS.seeds]
    settings = {name: FLAGS[name].value for name in ("seeds", "num_examples", "image_size", "filters", "head_units",
                                                       "epochs", "batch_size", "learning_rate", "gradnorm_alpha",
                                                       "architectures", "budgets")}
    logging.info("dense study: %s; machine: %s", settings, machine())
    start = time.time()
    flops, architectures, gradnorm, affinity, datasets = {}, [], [], [], {}
    for seed in seeds:
        datasets[seed] = scenes.scenes(num_examples=FLAGS.num_examples, image_size=FLAGS.image_size, seed=seed)
        tasks = [t for t in datasets[seed].tasks if t.name in GEOMETRIC]
        architectures.append(run_architectures(seed, datasets[seed], tasks, flops))
        logging.info("part 1, seed %d done; %.0f s elapsed", seed, time.time() - start)
    summary = aggregate(architectures, tasks)
    best = max(FLAGS.architectures, key=lambda name: summary[name]["delta_mtl_percent"]["mean"])
    logging.info("part 1 done; best architecture by mean ΔMTL: %s", best)
    for seed, rows in zip(seeds, architectures):
        gradnorm.append(run_gradnorm(seed, datasets[seed], tasks, best, rows["single_task"]["test"]))
    equal = [rows[best]["delta_mtl"] for rows in architectures]
    difference = paired_difference([100 * r["delta_mtl"] for r in gradnorm], [100 * d for d in equal])
    balancing = {"architecture": best, "per_seed": gradnorm,
                 "gradnorm": aggregate([{"gradnorm": r} for r in gradnorm], tasks)["gradnorm"],
                 "gradnorm_minus_equal_delta_mtl_percent": {"mean": difference.mean,
                                                            "interval": difference.interval}}
    logging.info("part 2 done; %.0f s elapsed", time.time() - start)
    for seed in seeds:
        affinity.append(run_affinity(seed, datasets[seed]))
    logging.info("part 3 done; %.0f s elapsed", time.time() - start)
    separated = {key: sum(row["groupings"][key]["separates"] for row in affinity) for key in affinity[0]["groupings"]}
    results = {"settings": settings, "machine": machine(), "seconds": round(time.time() - start, 1),
               "architectures": {"per_seed": architectures, "summary": summary}, "balancing": balancing,
               "affinity": {"per_seed": affinity, "separated_seeds": separated,
                            "mean_within_geometric": summarize([r["mean_within_geometric"] for r in affinity]),
                            "mean_across": summarize([r["mean_across"] for r in affinity]),
                            "mean_within_other": summarize([r["mean_within_other"] for r in affinity])}}
    write_json_atomic(FLAGS.out, results)
    print(table({**summary, f"{best} + GradNorm": balancing["gradnorm"]}, tasks))
    print(f"\nGradNorm − equal weights on {best}, ΔMTL (points): {difference.mean:+.2f}, "
          f"95% interval {difference.interval}")
    for key, count in separated.items():
        print(f"TAG {key}: separates the geometric tasks from colour/texture in {count} of {len(seeds)} seeds")
    print(f"affinity within the geometric tasks {text(results['affinity']['mean_within_geometric'], 4)}, "
          f"across {text(results['affinity']['mean_across'], 4)}")
    print(f"\n{len(seeds)} seeds in {time.time() - start:.0f} s; results in {FLAGS.out}; {machine()}")


if __name__ == "__main__":
    app.run(main)
