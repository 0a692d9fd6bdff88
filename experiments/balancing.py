"""Loss balancing compared: one all-in-one network per balancer, the same budget of steps.

    python -m experiments.balancing --preset=celeba_sample --image_size=32 --epochs=5 \\
        --out=runs/balancing/results.json

Every balancer trains the same network (same initial weights, same batches in the same order,
the preset's optimizer) for `--epochs` epochs, no early stopping, then is measured on the test
split. Prints a Markdown table (total test error, each task's error, final balancer weights,
seconds) and writes the results to `--out` (atomically).
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags, logging  # noqa: E402

import tag_tf.run as tag_run  # noqa: E402
from tag_tf import balancing  # noqa: E402
from tag_tf.evaluation import grouped
from tag_tf.utils.io import write_json_atomic  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_enum("preset", "celeba_sample", sorted(tag_run.PRESETS), "Settings to start from.")
flags.DEFINE_list("balancers", list(balancing.BALANCERS), f"Balancers to compare, from {balancing.BALANCERS}.")
flags.DEFINE_integer("image_size", None, "Side of the square input images (default: the preset's).")
flags.DEFINE_integer("epochs", None, "Training epochs (default: the preset's).")
flags.DEFINE_integer("steps_per_epoch", None, "Steps per epoch (0 = the whole split; default: the preset's).")
flags.DEFINE_string("out", None, "Where to write the results (JSON).", required=True)


def train_and_measure(config: tag_run.RunConfig, data: tag_run.RunData, backup_dir: str) -> dict:
    """Train the all-in-one network with `config.train.balancer`; its test metrics, weights and time."""
    start = time.time()
    model = tag_run.build_network(config, data, data.tasks)
    history = tag_run.fit(config, data, model, backup_dir)
    test = tag_run.evaluate_per_task(model, tag_run.batches(config, data, "test"))
    weights = {key[len("weight_"):]: float(values[-1]) for key, values in history.history.items()
               if key.startswith("weight_")}
    conflicts = history.history.get("pcgrad_conflicts")
    return {
        "balancer": config.train.balancer,
        "test": test,
        "total_error": grouped.total_error(test),
        "final_weights": weights,
        "conflicting_pairs_per_epoch": [float(c) for c in conflicts] if conflicts else None,
        "seconds": round(time.time() - start, 1),
    }


def format_table(rows: list[dict], tasks: list[str]) -> str:
    short = [t.replace("_", " ") for t in tasks]
    lines = ["| balancer | total test error (%) | " + " | ".join(short) + " | final weights | s |",
             "|---|---:|" + "---:|" * len(tasks) + "---|---:|"]
    for row in rows:
        errors = " | ".join(f"{grouped.task_error(row['test'][t]):.2f}" for t in tasks)
        weights = ", ".join(f"{w:.2f}" for w in row["final_weights"].values()) or "—"
        if row["conflicting_pairs_per_epoch"]:
            weights = "conflicting pairs " + ", ".join(f"{c:.2f}" for c in row["conflicting_pairs_per_epoch"])
        lines.append(f"| {row['balancer']} | {row['total_error']:.2f} | {errors} | {weights} | {row['seconds']:.0f} |")
    return "\n".join(lines)


def main(argv):
    del argv
    for name in FLAGS.balancers:
        if name not in balancing.BALANCERS:
            raise app.UsageError(f"Unknown balancer {name!r}; valid choices: {balancing.BALANCERS}.")
    overrides = {k: FLAGS[k].value for k in ("image_size", "epochs", "steps_per_epoch") if FLAGS[k].value is not None}
    base = tag_run.PRESETS[FLAGS.preset].replace(**overrides)
    data = tag_run.load_data(base)
    tasks = [t.name for t in data.tasks]
    work = os.path.join(os.path.dirname(os.path.abspath(FLAGS.out)), "backups")
    rows = []
    for name in FLAGS.balancers:
        logging.info("training the all-in-one network with balancer %s", name)
        rows.append(train_and_measure(base.replace(balancer=name), data, os.path.join(work, name)))
        logging.info("%s: total test error %.2f (%.0fs)", name, rows[-1]["total_error"], rows[-1]["seconds"])
    settings = {k: v for k, v in base.flat().items() if k != "balancer"}
    write_json_atomic(FLAGS.out, {"settings": settings, "tasks": tasks, "results": rows})
    print(format_table(rows, tasks))
    best = min(rows, key=lambda r: r["total_error"])
    print(f"\nLowest total test error: {best['balancer']} ({best['total_error']:.2f}). Results in {FLAGS.out}.")


if __name__ == "__main__":
    app.run(main)
