"""Serving cost of the multi-head model (n tasks from k networks) against n single-task models.

    python -m experiments.bench.serving                       # n=9, k=3, the paper's CelebA trunk at 64x64
    python -m experiments.bench.serving --filters=16 --image_size=32 --repeats_1=50 --repeats_64=5

Both sides answer every task for one batch: the multi-head model with one call of its
`serving_default` (k trunks), the separate models with n calls (one per model, in sequence). Each
is measured through `tf.saved_model.load` (in process) and through the dev server (a subprocess,
gRPC, one client), at batch 1 and 64. The alternatives alternate request by request, so a busy
machine slows both alike. Latency is per "every task answered" (p50, p99); throughput is
examples per second of one sequential client. Target (issue 6): the multi-head model costs at
most k/n + 0.1 of the separate models (p50 latency ratio).
"""

from __future__ import annotations

import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from absl import app, flags  # noqa: E402

from experiments.bench import common  # noqa: E402
from serving.client import TFServingClient  # noqa: E402
from tag_tf.export.deployment import write_deployment  # noqa: E402
from serving.dev_server import launch  # noqa: E402
from tag_tf.export import export_multihead  # noqa: E402
from tag_tf.models import build_multitask_model  # noqa: E402

FLAGS = flags.FLAGS
common.define_multihead_flags()
flags.DEFINE_integer("repeats_1", 100, "Measured requests per alternative at batch 1.")
flags.DEFINE_integer("repeats_64", 10, "Measured requests per alternative at batch 64.")


def build_models(base: str) -> tuple[list[str], float]:
    """Export "multihead" (k networks) and "single_<t>" (one per task); returns (model names, seconds)."""
    start = time.time()
    networks, assignment = common.multihead_networks(seed=0)
    export_multihead(networks, assignment, base, "multihead", warmup=False)
    tasks = [task for network in networks for task in network.tasks]
    for task in tasks:
        export_multihead([build_multitask_model(common.trunk(), [task])], {task.name: 0}, base, f"single_{task.name}",
                         warmup=False)
    return ["multihead"] + [f"single_{t.name}" for t in tasks], time.time() - start


def measure(alternatives: dict, repeats: int) -> dict[str, np.ndarray]:
    """Seconds of each request, alternatives alternating (and their order flipping) request by request."""
    names = list(alternatives)
    for fn in alternatives.values():  # warm up (tracing, first-call allocations)
        fn()
        fn()
    times = {name: [] for name in names}
    for r in range(repeats):
        for name in names if r % 2 == 0 else names[::-1]:
            start = time.perf_counter()
            alternatives[name]()
            times[name].append(time.perf_counter() - start)
    return {name: np.array(t) for name, t in times.items()}


def in_process(base: str, models: list[str], batch: np.ndarray) -> dict:
    loaded = {m: tf.saved_model.load(os.path.join(base, m, "1")).signatures["serving_default"] for m in models}
    x = tf.constant(batch)
    return {
        "multi-head": lambda: {k: v.numpy() for k, v in loaded["multihead"](image=x).items()},
        "separate": lambda: [{k: v.numpy() for k, v in loaded[m](image=x).items()} for m in models[1:]],
    }


def through_server(client: TFServingClient, models: list[str], batch: np.ndarray) -> dict:
    return {
        "multi-head": lambda: client.predict("multihead", {"image": batch}, protocol="grpc"),
        "separate": lambda: [client.predict(m, {"image": batch}, protocol="grpc") for m in models[1:]],
    }


def row(path: str, size: int, times: dict[str, np.ndarray]) -> str:
    multi, separate = times["multi-head"], times["separate"]
    ratio = np.median(multi) / np.median(separate)
    target = FLAGS.networks / FLAGS.tasks + 0.1
    cells = []
    for t in (multi, separate):
        cells += [f"{1000 * np.median(t):.1f}", f"{1000 * np.percentile(t, 99):.1f}", f"{size / t.mean():.0f}"]
    return (f"| {path} | {size} | " + " | ".join(cells) + f" | {ratio:.3f} | {'yes' if ratio <= target else 'NO'} |")


def main(argv):
    del argv
    base = tempfile.mkdtemp(prefix="bench_serving_")
    models, seconds = build_models(base)
    print(f"Exported the multi-head model and {FLAGS.tasks} single-task models in {seconds:.0f}s "
          f"({FLAGS.image_size}x{FLAGS.image_size}, {FLAGS.filters} filters).", flush=True)
    paths = write_deployment(base, models)
    rng = np.random.default_rng(0)
    batches = {size: rng.random((size, FLAGS.image_size, FLAGS.image_size, 3)).astype("float32") for size in (1, 64)}
    repeats = {1: FLAGS.repeats_1, 64: FLAGS.repeats_64}
    target = FLAGS.networks / FLAGS.tasks + 0.1
    lines = [f"n={FLAGS.tasks} tasks, k={FLAGS.networks} networks; target: multi-head / separate <= "
             f"k/n + 0.1 = {target:.3f}; {common.machine()}", "",
             "| path | batch | multi-head p50 (ms) | p99 (ms) | examples/s | separate p50 (ms) | p99 (ms) | examples/s "
             "| p50 ratio | within target |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for size, batch in batches.items():
        lines.append(row("tf.saved_model.load", size, measure(in_process(base, models, batch), repeats[size])))
        print(lines[-1], flush=True)
    with launch(paths["models_config"]) as server, \
            TFServingClient("127.0.0.1", server.rest_api_port, server.port, timeout=120) as client:
        for size, batch in batches.items():
            lines.append(row("dev server (gRPC)", size, measure(through_server(client, models, batch), repeats[size])))
            print(lines[-1], flush=True)
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    app.run(main)
