"""Load on the dev server: concurrent REST and gRPC clients, a hot reload in the middle, every
answer checked (issue 17).

    python -m experiments.bench.serving_load                  # 64 clients x 100 requests, batch 1
    python -m experiments.bench.serving_load --processes=4    # the same clients over 4 processes

The multi-head model of `experiments.bench.serving` (n=9 tasks from k=3 networks, the paper's
CelebA trunk at 64x64) is exported as version 1 and served by the dev server in a subprocess on
127.0.0.1 (`--file_system_poll_wait_seconds`, one gRPC worker thread per gRPC client: REST has a
thread per connection). Version 2 (other weights) is exported beside it; after half the requests
(`--reload_at`) it is copied into the model's base path (atomically) while the clients go on, and
the server picks it up. Every client (half REST, half gRPC, `serving.load`) sends its requests
one after the other; every answer is compared with the Keras networks of the version that gave
it. Prints the settings, p50/p99 latency per protocol, throughput and the lost/wrong line as
Markdown.
"""

from __future__ import annotations

import os
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
from absl import app, flags, logging  # noqa: E402

from experiments.bench import common  # noqa: E402
from serving.dev_server import launch  # noqa: E402
from serving.load import LoadSpec, check_answers, copy_version, run_load  # noqa: E402
from tag_tf.export.deployment import write_deployment  # noqa: E402
from tag_tf.export import check_networks, export_multihead, keras_reference  # noqa: E402

FLAGS = flags.FLAGS
common.define_multihead_flags()
flags.DEFINE_integer("clients", 64, "Concurrent clients: even-numbered ones speak REST, odd-numbered ones "
                     "gRPC, each through its own TFServingClient.")
flags.DEFINE_integer("requests", 100, "Requests per client, one after the other.")
flags.DEFINE_integer("processes", 1, "Client processes the client threads are split over: 1 runs every "
                     "client as a thread of this process; more when one process's GIL holds the clients back.")
flags.DEFINE_float("reload_at", 0.5, "Fraction of all requests done when version 2 is copied into the "
                   "model's base path.")
flags.DEFINE_integer("batch", 1, "Images per request.")
flags.DEFINE_integer("pool", 32, "Distinct images the requests draw from.")
flags.DEFINE_float("poll_seconds", 1.0, "The server's --file_system_poll_wait_seconds.")
flags.DEFINE_float("timeout", 120.0, "Seconds per request attempt (and for the new version to serve).")

MODEL = "tag_load"


def export_versions(base: str, staging: str, pool: np.ndarray) -> tuple[str, dict]:
    """Version 1 in `base`, version 2 (other weights) staged in `staging`; returns (version 2's
    directory, {version: {task: answers of its Keras networks on the pool}})."""
    expected = {}
    for version, folder in ((1, base), (2, staging)):
        networks, assignment = common.multihead_networks(seed=version)
        path = export_multihead(networks, assignment, folder, MODEL, version=version)
        reference = keras_reference(networks, check_networks(networks, assignment), assignment)
        expected[version] = reference("serving_default", {"image": pool})
    return path, expected


def process_cpu_seconds(pid: int) -> float:
    """CPU seconds (user + system) of a running process, from /proc (Linux)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv):
    del argv
    base, staging = tempfile.mkdtemp(prefix="bench_load_"), tempfile.mkdtemp(prefix="bench_load_staged_")
    pool = np.random.default_rng(0).random((FLAGS.pool, FLAGS.image_size, FLAGS.image_size, 3), np.float32)
    start = time.time()
    staged, expected = export_versions(base, staging, pool)
    logging.info("exported versions 1 and 2 in %.0fs", time.time() - start)
    config = write_deployment(base, [MODEL])["models_config"]
    total = FLAGS.clients * FLAGS.requests
    grpc_threads = (FLAGS.clients + 1) // 2
    with launch(config, "127.0.0.1", 300.0, f"--file_system_poll_wait_seconds={FLAGS.poll_seconds}",
                f"--grpc_max_threads={grpc_threads}") as server:
        spec = LoadSpec("127.0.0.1", server.rest_api_port, server.port, MODEL, clients=FLAGS.clients,
                        requests=FLAGS.requests, batch=FLAGS.batch, processes=FLAGS.processes,
                        reload_after=int(FLAGS.reload_at * total), timeout=FLAGS.timeout)
        machine = common.machine()  # the load on the machine as the clients start
        before = process_cpu_seconds(server.process.pid)
        result = run_load(spec, pool, reload=lambda: copy_version(staged, os.path.join(base, MODEL), 2),
                          new_version=2)
        server_cpu = process_cpu_seconds(server.process.pid) - before
    report = check_answers(result, expected)
    first = min(r.started for r in result.requests)
    waited = sum(r.waited for r in result.requests)
    print(f"\nSettings: {FLAGS.clients} clients ({FLAGS.clients // 2 + FLAGS.clients % 2} REST, {FLAGS.clients // 2} "
          f"gRPC) x {FLAGS.requests} requests of {FLAGS.batch} image(s), threads in {FLAGS.processes} client "
          f"process(es); n={FLAGS.tasks} tasks from k={FLAGS.networks} networks, CelebA trunk "
          f"{FLAGS.image_size}x{FLAGS.image_size} ({FLAGS.filters} filters); dev server in a subprocess on "
          f"127.0.0.1 ({grpc_threads} gRPC threads, poll {FLAGS.poll_seconds:g}s); {machine}.")
    print(f"Hot reload: version 2 copied in after {spec.reload_after} requests, at "
          f"{result.reload_started - first:.1f}s; " + (f"served {result.served - result.reload_started:.1f}s later" if result.served else "NEVER served")
          + f"; answers by version: {report.by_version}; gated last requests waited {waited:.1f}s in all.\n")
    print("| protocol | requests | p50 (ms) | p99 (ms) |")
    print("|---|---:|---:|---:|")
    for key in ("rest", "grpc", "all"):
        count = sum(1 for r in result.requests if r.error is None and key in (r.protocol, "all"))
        p50, p99 = report.latency_ms[key]
        print(f"| {key} | {count} | {p50:.1f} | {p99:.1f} |")
    print(f"\nThroughput: {report.requests_per_second:.1f} requests/s "
          f"({report.requests_per_second * FLAGS.batch:.1f} images/s) over {report.seconds:.1f}s.")
    clients_cpu = result.client_cpu_seconds
    print(f"CPU: the clients {clients_cpu:.1f}s ({clients_cpu / report.seconds:.2f} cores), the server "
          f"{server_cpu:.1f}s ({server_cpu / report.seconds:.2f} cores) while the load ran.")
    print(f"Lost: {len(report.lost)}, wrong: {len(report.wrong)}, went back a version: {len(report.went_back)} "
          f"(of {len(result.requests)} requests).")
    for line in (report.lost + report.wrong + report.went_back)[:20]:
        print("  " + line)


if __name__ == "__main__":
    app.run(main)
