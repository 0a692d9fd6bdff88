"""The end of `make demo`: serve a run's export with the dev server, ask it over REST and gRPC about
a few test images, print every task's answer beside the true label, and stop the server.

    python -m serving.demo_query --run_dir=runs/demo

>>> print(format_answers(["a", "b"], {"a": np.array([0.9]), "b": np.array([[0.2, 0.8]])},
...                      {"a": np.array([0.9]), "b": np.array([[0.2, 0.8]])}, {"a": [1], "b": [1]}))
image  task  label  REST answer       gRPC answer
0      a     1      0.900             0.900
0      b     1      [0.20, 0.80] → 1  [0.20, 0.80] → 1
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from serving.client import TFServingClient  # noqa: E402
from serving.dev_server import launch  # noqa: E402
from tag_tf.utils.io import read_json  # noqa: E402
from tag_tf.run import RunConfig, load_data  # noqa: E402
from tag_tf.run.rundir import RunDir  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("run_dir", None, "A run directory whose export stage has run (e.g. runs/demo).")
flags.DEFINE_integer("examples", 2, "Test images to ask about.")


def format_answers(tasks, rest: dict, grpc: dict, labels: dict) -> str:
    """A table: one row per (image, task) with the label and both protocols' answers."""
    def show(value):
        value = np.asarray(value)
        if value.ndim == 0:
            return f"{float(value):.3f}"
        if value.ndim == 1:
            return "[" + ", ".join(f"{v:.2f}" for v in value) + f"] → {int(np.argmax(value))}"
        return f"map {list(value.shape)}, mean {float(value.mean()):.3f}"  # a dense task's answer

    def show_label(value):
        value = np.asarray(value)
        return f"{value:g}" if value.ndim == 0 else f"map {list(value.shape)}"

    rows = [("image", "task", "label", "REST answer", "gRPC answer")]
    for i in range(len(next(iter(rest.values())))):
        rows += [(str(i), t, show_label(labels[t][i]), show(rest[t][i]), show(grpc[t][i])) for t in tasks]
    widths = [max(len(r[c]) for r in rows) for c in range(5)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)


def main(argv):
    del argv
    if not FLAGS.run_dir:
        raise app.UsageError("--run_dir is required.")
    run = RunDir(FLAGS.run_dir)
    export = run.export_summary
    if not os.path.exists(export):
        raise app.UsageError(f"{export} not found: run the pipeline (its export stage) first.")
    summary = read_json(export)
    model = summary["models"][-1]["name"]  # the largest budget k
    data = load_data(RunConfig.from_json(read_json(run.config)))
    images, labels = next(iter(data.splits["test"].batch(FLAGS.examples)))
    tasks = [t.name for t in data.tasks]
    start = time.time()
    with launch(run.join(summary["models_config"])) as server:
        print(f"Dev server up in {time.time() - start:.1f}s (gRPC {server.port}, REST {server.rest_api_port}); "
              f"asking model {model} about {FLAGS.examples} test images.")
        with TFServingClient("127.0.0.1", server.rest_api_port, server.port, timeout=30) as client:
            signature = client.metadata(model)["metadata"]["signature_def"]["signature_def"]["serving_default"]
            input_name = next(iter(signature["inputs"]))
            rest = client.predict(model, {input_name: images.numpy()}, protocol="rest")
            grpc = client.predict(model, {input_name: images.numpy()}, protocol="grpc")
    print(format_answers(tasks, rest, grpc, {t: labels[t].numpy() for t in tasks}))
    agree = all(np.allclose(rest[t], grpc[t], atol=1e-5) for t in tasks)
    print(f"REST and gRPC answers {'agree' if agree else 'DIFFER'}; the server is stopped.")
    if not agree:
        raise SystemExit(1)


if __name__ == "__main__":
    app.run(main)
