"""Load on a TF Serving endpoint (or the dev server): concurrent clients over REST and gRPC, a hot
reload in the middle, and every answer checked against the version that gave it.

    spec = LoadSpec("127.0.0.1", rest_port, grpc_port, "m", clients=64, requests=100, reload_after=3200)
    result = run_load(spec, pool, reload=lambda: copy_version(staged, base, 2), new_version=2)
    report = check_answers(result, {1: answers_v1, 2: answers_v2})   # {version: {task: [pool rows]}}
    assert report.lost == report.wrong == report.went_back == []

The clients: client k speaks REST when k is even, gRPC when odd (its own `TFServingClient`, with
its retries), and sends `requests` predict requests one after the other, each a batch of `batch`
images drawn from `pool` (seeded by k). They run as threads, split over `processes` processes when
one Python process cannot keep up (its GIL serialises the REST bodies' JSON). Once
`reload_after` requests are done, `reload()` runs (e.g. `copy_version`) and the model status is
polled until `new_version` is AVAILABLE; each client's last `gated` requests start only after
that, so the new version answers some requests even when the load is short.

An answer is *lost* when its request failed (after the client's retries); *wrong* unless its
outputs equal (within `atol`) the answers of the version that gave it on the same rows: the
version a gRPC answer names in its model_spec or, for REST (whose predict answer names no version,
in TF Serving either), the one version whose answers it equals. A client *went back* when an
older version answered it after a newer one had.

>>> percentiles_ms([0.010, 0.020, 0.030])
(20.0, 29.8)
"""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import shutil
import threading
import time
from queue import Empty
from typing import Callable, Mapping

import numpy as np

from serving.client import PROTOCOLS, TFServingClient
from tag_tf.utils.io import atomic_directory

POLL_SECONDS = 0.05  # how often the model status is asked while a reload is awaited


@dataclasses.dataclass(frozen=True)
class LoadSpec:
    """Where the load goes and how much of it.

    Attributes:
      host, rest_port, grpc_port, model: the server and the model's name.
      input_name: the `serving_default` input that takes the pool's images.
      clients, requests: concurrent clients (half REST, half gRPC) and requests each.
      batch: images per request.
      processes: client processes the threads are split over (1: all threads in this process).
      reload_after: requests done before `reload()` runs (None: no reload).
      gated: each client's last requests that wait until the new version serves.
      timeout, retries: the clients' seconds per attempt and retries; `timeout` also bounds the
        wait for the new version.
    """

    host: str
    rest_port: int
    grpc_port: int
    model: str
    input_name: str = "image"
    clients: int = 64
    requests: int = 100
    batch: int = 1
    processes: int = 1
    reload_after: int | None = None
    gated: int = 1
    timeout: float = 60.0
    retries: int = 3

    def __post_init__(self):
        if self.clients < 1 or self.requests < 1 or self.batch < 1 or not 1 <= self.processes <= self.clients:
            raise ValueError(f"Need clients, requests, batch >= 1 and 1 <= processes <= clients; got {self.clients}, "
                             f"{self.requests}, {self.batch}, {self.processes}.")
        total = self.clients * self.requests
        if self.reload_after is not None and not 0 <= self.reload_after < total:
            raise ValueError(f"reload_after must be in [0, {total}) (clients x requests), got {self.reload_after}.")
        if not 0 <= self.gated <= self.requests:
            raise ValueError(f"gated must be in [0, requests={self.requests}], got {self.gated}.")


@dataclasses.dataclass(frozen=True)
class Request:
    """One request: who sent it, what it asked, when (epoch seconds), how long it took, the
    answer (outputs and the version it names, None over REST) or the error, and the seconds it
    waited for the new version before it was sent (a gated request)."""

    client: int
    index: int
    protocol: str
    rows: tuple[int, ...]
    started: float
    seconds: float
    version: int | None
    outputs: dict[str, np.ndarray] | None
    error: str | None = None
    waited: float = 0.0


@dataclasses.dataclass(frozen=True)
class LoadResult:
    """Every request, the reload's times (epoch seconds; None when there was none, or for
    `served` when the new version never served within the timeout), and the CPU seconds the
    client processes used from their start (after importing TensorFlow) to their last answer."""

    spec: LoadSpec
    requests: list[Request]
    reload_started: float | None
    served: float | None
    client_cpu_seconds: float = 0.0


@dataclasses.dataclass(frozen=True)
class LoadReport:
    """What `check_answers` found: the faults (each a line naming the request) and the numbers.

    Attributes:
      lost, wrong, went_back: descriptions of failed requests, wrong answers, backward versions.
      by_version: answered requests per version.
      latency_ms: {"rest" | "grpc" | "all": (p50, p99)} over the answered requests.
      seconds: first request's start to last answer; requests_per_second over that span.
    """

    lost: list[str]
    wrong: list[str]
    went_back: list[str]
    by_version: dict[int, int]
    latency_ms: dict[str, tuple[float, float]]
    seconds: float
    requests_per_second: float


def copy_version(version_dir: str, model_dir: str, version: int) -> str:
    """Copy a SavedModel version directory into `model_dir` as `version`, atomically (copied under a
    hidden name, then renamed): a server polling `model_dir` never sees half a copy. Returns the path."""
    target = os.path.join(model_dir, str(version))
    if os.path.exists(target):
        raise ValueError(f"{target} exists; versions are never overwritten.")
    with atomic_directory(target) as tmp:
        shutil.copytree(version_dir, tmp, dirs_exist_ok=True)
    return target


def run_load(spec: LoadSpec, pool: np.ndarray, reload: Callable[[], object] | None = None,
             new_version: int | None = None) -> LoadResult:
    """Run the clients of `spec` on `pool` ([N, ...] images) and the reload (see the module
    docstring); returns every request. Raises what `reload()` raised, after the clients finish."""
    if (spec.reload_after is None) != (reload is None) or (reload is None) != (new_version is None):
        raise ValueError("Give reload_after, reload and new_version together, or none of them.")
    context = multiprocessing.get_context("spawn")  # TF and gRPC do not survive a fork
    shared = _Shared(context)
    if reload is None:
        shared.served.set()
    timeline: dict = {}
    reloader = threading.Thread(target=_reload, args=(spec, shared, reload, new_version, timeline), daemon=True)
    groups = [list(range(p, spec.clients, spec.processes)) for p in range(spec.processes)]
    if spec.processes == 1:
        outcome: list[tuple[list[Request], float]] = []
        runner = threading.Thread(target=lambda: outcome.append(_run_clients(spec, pool, groups[0], shared)),
                                  daemon=True)
        runner.start()
        _start(shared, spec.clients, spec.timeout)
        if reload is not None:
            reloader.start()
        runner.join()
        (records, cpu), = outcome
    else:
        queue = context.Queue()
        workers = [context.Process(target=_process_main, args=(spec, pool, group, shared, queue), daemon=True)
                   for group in groups]
        for worker in workers:
            worker.start()
        _start(shared, spec.clients, spec.timeout + 120)  # each process imports TensorFlow first
        if reload is not None:
            reloader.start()
        records, cpu = _collect(queue, workers)
    shared.done_all.set()
    if reload is not None:
        reloader.join()
    if "error" in timeline:
        raise timeline["error"]
    return LoadResult(spec, sorted(records, key=lambda r: (r.client, r.index)),
                      timeline.get("started"), timeline.get("served"), cpu)


class _Shared:
    """What the clients' processes and the reloader share: counters and events."""

    def __init__(self, context):
        self.ready, self.done = context.Value("i", 0), context.Value("i", 0)
        self.go, self.served, self.done_all = context.Event(), context.Event(), context.Event()


def _start(shared: _Shared, clients: int, timeout: float) -> None:
    """Wait until every client is ready (clients made, TensorFlow imported), then let them go."""
    deadline = time.time() + timeout
    while shared.ready.value < clients:
        if time.time() > deadline:
            raise RuntimeError(f"Only {shared.ready.value} of {clients} clients were ready after {timeout:.0f}s.")
        time.sleep(0.01)
    shared.go.set()


def _collect(queue, workers) -> tuple[list[Request], float]:
    """The requests and CPU seconds every client process puts on `queue`; RuntimeError if one dies
    without."""
    records, cpu, missing = [], 0.0, len(workers)
    while missing:
        try:
            requests, seconds = queue.get(timeout=1.0)
            records, cpu, missing = records + requests, cpu + seconds, missing - 1
        except Empty:
            dead = [w.exitcode for w in workers if w.exitcode not in (None, 0)]
            if dead:
                raise RuntimeError(f"A client process died (exit codes {dead}); its requests are lost.") from None
    for worker in workers:
        worker.join()
    return records, cpu


def _reload(spec: LoadSpec, shared: _Shared, reload, new_version: int, timeline: dict) -> None:
    """Once `reload_after` requests are done: reload(), then poll the status until `new_version`
    serves (at most `spec.timeout` seconds); the gated requests go either way."""
    try:
        while shared.done.value < spec.reload_after and not shared.done_all.is_set():
            time.sleep(0.005)
        timeline["started"] = time.time()
        reload()
        with TFServingClient(spec.host, spec.rest_port, spec.grpc_port, timeout=spec.timeout,
                             retries=spec.retries) as client:
            deadline = time.time() + spec.timeout
            while time.time() < deadline:
                if {"version": new_version, "state": "AVAILABLE"} in client.status(spec.model):
                    timeline["served"] = time.time()
                    break
                time.sleep(POLL_SECONDS)
    except Exception as error:  # re-raised by run_load once the clients are done
        timeline["error"] = error
    finally:
        shared.served.set()


def _process_main(spec: LoadSpec, pool: np.ndarray, clients: list[int], shared: _Shared, queue) -> None:
    queue.put(_run_clients(spec, pool, clients, shared))


def _run_clients(spec: LoadSpec, pool: np.ndarray, clients: list[int], shared: _Shared
                 ) -> tuple[list[Request], float]:
    """One thread per client; returns their requests and this process's CPU seconds meanwhile."""
    cpu = time.process_time()
    records: list[Request] = []
    threads = [threading.Thread(target=_client, args=(spec, pool, k, shared, records)) for k in clients]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return records, time.process_time() - cpu


def _client(spec: LoadSpec, pool: np.ndarray, k: int, shared: _Shared, records: list[Request]) -> None:
    protocol = PROTOCOLS[k % 2]
    rng = np.random.default_rng(k)
    with TFServingClient(spec.host, spec.rest_port, spec.grpc_port, timeout=spec.timeout,
                         retries=spec.retries) as client:
        with shared.ready.get_lock():
            shared.ready.value += 1
        shared.go.wait()
        for i in range(spec.requests):
            rows = tuple(int(r) for r in rng.integers(0, len(pool), spec.batch))
            waited = 0.0
            if i >= spec.requests - spec.gated:
                gate = time.perf_counter()
                shared.served.wait()
                waited = time.perf_counter() - gate
            started, start = time.time(), time.perf_counter()
            try:
                outputs, version = client.predict_with_version(spec.model, {spec.input_name: pool[list(rows)]},
                                                               protocol=protocol)
                error = None
            except Exception as failure:  # a lost request: recorded and reported, never hidden
                outputs, version, error = None, None, f"{type(failure).__name__}: {failure}"
            records.append(Request(k, i, protocol, rows, started, time.perf_counter() - start, version, outputs, error,
                                   waited))
            with shared.done.get_lock():
                shared.done.value += 1


def check_answers(result: LoadResult, expected: Mapping[int, Mapping[str, np.ndarray]],
                  atol: float = 1e-5) -> LoadReport:
    """Check every request of `result` against `expected` ({version: {output: answers for every
    pool row}}, from the Keras networks of each version); see the module docstring. ValueError
    when two versions' answers are too close to tell a REST answer's version apart."""
    _check_distinguishable(expected, atol)
    lost, wrong, went_back = [], [], []
    by_version: dict[int, int] = {}
    last_version: dict[int, int] = {}
    for r in result.requests:
        name = f"client {r.client} ({r.protocol}) request {r.index}"
        if r.error is not None:
            lost.append(f"{name}: {r.error}")
            continue
        candidates = [r.version] if r.version is not None else list(expected)
        matching = [v for v in candidates if v in expected and _equal(r.outputs, expected[v], r.rows, atol)]
        if not matching:
            named = f"version {r.version}" if r.version is not None else f"any of versions {sorted(expected)}"
            wrong.append(f"{name}: the answer is not {named}'s on rows {list(r.rows)}")
            continue
        version = matching[0]
        by_version[version] = by_version.get(version, 0) + 1
        if version < last_version.get(r.client, version):
            went_back.append(f"{name}: answered by version {version} after version {last_version[r.client]}")
        last_version[r.client] = max(version, last_version.get(r.client, version))
    answered = [r for r in result.requests if r.error is None]
    latency = {p: percentiles_ms([r.seconds for r in answered if r.protocol == p]) for p in PROTOCOLS}
    latency["all"] = percentiles_ms([r.seconds for r in answered])
    span = (max(r.started + r.seconds for r in result.requests) - min(r.started for r in result.requests)
            if result.requests else 0.0)
    return LoadReport(lost, wrong, went_back, dict(sorted(by_version.items())), latency, span,
                      len(answered) / span if span else 0.0)


def percentiles_ms(seconds: list[float]) -> tuple[float, float]:
    """(p50, p99) in milliseconds; NaN for no samples."""
    if not seconds:
        return float("nan"), float("nan")
    p50, p99 = np.percentile(np.asarray(seconds) * 1000, [50, 99])
    return round(float(p50), 3), round(float(p99), 3)


def _equal(outputs: Mapping[str, np.ndarray], expected: Mapping[str, np.ndarray], rows, atol: float) -> bool:
    if sorted(outputs) != sorted(expected):
        return False
    return all(np.allclose(outputs[k], np.asarray(expected[k])[list(rows)], atol=atol, rtol=0) for k in expected)


def _check_distinguishable(expected: Mapping[int, Mapping[str, np.ndarray]], atol: float) -> None:
    """Every pool row's answers differ between any two versions by more than 10·atol somewhere
    (versions with different outputs differ anyway)."""
    versions = sorted(expected)
    for i, a in enumerate(versions):
        for b in versions[i + 1:]:
            if sorted(expected[a]) != sorted(expected[b]):
                continue
            gaps = [np.abs(np.asarray(expected[a][k]) - np.asarray(expected[b][k])) for k in expected[a]]
            gap = np.max([g.reshape(len(g), -1).max(axis=1) for g in gaps], axis=0)  # per pool row
            if gap.min() <= 10 * atol:
                raise ValueError(f"Versions {a} and {b} answer pool row {int(gap.argmin())} alike (within "
                                 f"{gap.min():.2g}); a REST answer's version could not be told.")
