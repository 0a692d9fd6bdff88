"""Load on the dev server with a hot reload in the middle (serving.load): every answer checked
against the Keras networks of the version that gave it, none lost; and the checker itself catches
lost, wrong and backward answers."""

import dataclasses
import os

import numpy as np
import pytest

from serving.dev_server import DevServer
from serving.load import LoadResult, LoadSpec, Request, check_answers, copy_version, run_load
from tag_tf.export.deployment import model_server_config


@pytest.fixture(scope="module")
def versions(tmp_path_factory, tiny_multihead):
    """(model folder with version 1, staged version 2 elsewhere, pool, {version: expected answers})."""
    base = str(tmp_path_factory.mktemp("export"))
    staging = str(tmp_path_factory.mktemp("staging"))
    tiny_multihead.export(base, warmup=False)
    newer = type(tiny_multihead)(seed=1)
    staged = newer.export(staging, version=2)  # with warmup requests, replayed on the reload
    pool = tiny_multihead.images(12, seed=3)
    return os.path.join(base, "m"), staged, pool, {1: tiny_multihead.expected(pool), 2: newer.expected(pool)}


def test_load_with_a_hot_reload_every_answer_right_none_lost(versions):
    """8 clients (4 REST, 4 gRPC) x 10 requests of 2 images; version 2 is copied in after 40."""
    model_dir, staged, pool, expected = versions
    with DevServer(model_server_config({"m": model_dir}), port=0, rest_api_port=0, poll_seconds=0.1) as server:
        spec = LoadSpec("127.0.0.1", server.rest_api_port, server.port, "m", clients=8, requests=10, batch=2,
                        reload_after=40, gated=2, timeout=30)
        result = run_load(spec, pool, reload=lambda: copy_version(staged, model_dir, 2), new_version=2)
        assert server.registry.versions("m") == [2]  # the latest policy dropped version 1
    report = check_answers(result, expected)
    assert report.lost == [] and report.wrong == [] and report.went_back == []
    assert sum(report.by_version.values()) == len(result.requests) == 80
    assert set(report.by_version) == {1, 2}
    assert result.reload_started < result.served
    first, last = min(r.started for r in result.requests), max(r.started for r in result.requests)
    assert first < result.reload_started < last  # the reload ran while the clients did
    assert {r.protocol for r in result.requests} == {"rest", "grpc"}
    assert {r.version for r in result.requests if r.protocol == "grpc"} == {1, 2}  # named by the answers
    for key in ("rest", "grpc", "all"):
        p50, p99 = report.latency_ms[key]
        assert 0 < p50 <= p99
    assert report.requests_per_second > 0


def test_checker_finds_lost_wrong_and_backward_answers(versions):
    """Real answers of both versions, one of them tampered with: each fault is named."""
    _, _, pool, expected = versions
    spec = LoadSpec("127.0.0.1", 1, 2, "m", clients=2, requests=4)

    def answer(client, index, version, named, rows=(0, 5)):
        outputs = {task: value[list(rows)] for task, value in expected[version].items()}
        return Request(client, index, "grpc" if named else "rest", rows, 100.0 + index, 0.01,
                       version if named else None, outputs)

    good = [answer(0, 0, 1, False), answer(0, 1, 2, False), answer(1, 0, 1, True), answer(1, 1, 2, True)]
    wrong = dataclasses.replace(answer(1, 2, 1, True), version=2)  # version 1's answer, named 2
    back = answer(0, 2, 1, False)  # REST, version 1 after version 2
    lost = Request(1, 3, "grpc", (1,), 104.0, 0.5, None, None, "TFServingError: StatusCode.UNAVAILABLE: down")
    report = check_answers(LoadResult(spec, good + [wrong, back, lost], None, None), expected)
    assert report.lost == ["client 1 (grpc) request 3: TFServingError: StatusCode.UNAVAILABLE: down"]
    assert report.wrong == ["client 1 (grpc) request 2: the answer is not version 2's on rows [0, 5]"]
    assert report.went_back == ["client 0 (rest) request 2: answered by version 1 after version 2"]
    assert report.by_version == {1: 3, 2: 2}
    with pytest.raises(ValueError, match="Versions 1 and 2 answer pool row 0 alike"):
        check_answers(LoadResult(spec, good, None, None), {1: expected[1], 2: expected[1]})


def test_copy_version_refuses_to_overwrite_and_leaves_no_temporary(versions, tmp_path):
    _, staged, _, _ = versions
    target = copy_version(staged, str(tmp_path), 7)
    assert sorted(os.listdir(tmp_path)) == ["7"] and os.path.exists(os.path.join(target, "saved_model.pb"))
    with pytest.raises(ValueError, match="versions are never overwritten"):
        copy_version(staged, str(tmp_path), 7)


def test_load_spec_refuses_impossible_settings():
    with pytest.raises(ValueError, match="reload_after must be in"):
        LoadSpec("h", 1, 2, "m", clients=2, requests=3, reload_after=6)
    with pytest.raises(ValueError, match="1 <= processes <= clients"):
        LoadSpec("h", 1, 2, "m", clients=2, processes=3)
