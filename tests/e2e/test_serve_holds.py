"""Serving that holds, against a real tritonserver on 127.0.0.1: overload is refused (queue policy), a killed
model instance comes back (the supervisor), a new bundle goes live as a model version without a failed request,
and the fuzzer's odd requests are all answered. The fast variants of ``benchmarks/serve_load.py``: every run
is bounded in requests and seconds, and every server is stopped."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from linearsr_edge.runtime import SRRuntime
from linearsr_edge.serving import loadgen
from linearsr_edge.serving.triton import QueuePolicy, TritonServer, write_repository
from tests.e2e.serving import frame, free_ports, needs_server

pytestmark = needs_server


def _server(bundle=None, repo=None, **kw) -> TritonServer:
    http_port, grpc_port, metrics_port = free_ports(3)
    return TritonServer(bundle, "127.0.0.1", http_port, grpc_port, metrics_port, repo=repo, **kw)


def test_overload_is_refused_with_503_and_the_server_goes_on(demo_bundle):
    """Open-loop load at several times what one instance serves, with a queue of 2: the excess is refused at once
    (503, Triton's queue policy), the rest answered; nothing is left without a reply."""
    image = frame(32, 32, 1)
    with _server(demo_bundle.path, queue=QueuePolicy(max_queue_size=2, timeout_us=0)) as server:
        unloaded = loadgen.closed_loop(server.http_url, image, clients=1, seconds=30, max_requests=4)
        assert all(r.ok for r in unloaded), loadgen.counts(unloaded)
        rate = 4 / np.median([r.latency for r in unloaded])  # 4x what one client at a time gets
        replies = loadgen.open_loop(server.http_url, image, rate=rate, seconds=4)
        counts = loadgen.counts(replies)
        assert set(counts) <= {"ok", "503"}, counts
        assert counts.get("503", 0) > 0 and counts.get("ok", 0) > 0, counts
        assert all("maximum queue size" in r.message for r in replies if r.outcome == "503")
        assert loadgen.closed_loop(server.http_url, image, 1, 30, 1)[0].ok  # still serving


def test_queue_timeout_refuses_a_request_that_waited_too_long(demo_bundle):
    """A timeout shorter than one request: with three clients at once, one waits past it and is refused."""
    image = frame(32, 32, 2)
    with _server(demo_bundle.path, queue=QueuePolicy(max_queue_size=0, timeout_us=1000), max_queue_delay_us=0) as srv:
        replies = loadgen.closed_loop(srv.http_url, image, clients=3, seconds=30, max_requests=12)
    counts = loadgen.counts(replies)
    assert set(counts) <= {"ok", "503"} and counts.get("503", 0) > 0, counts
    assert all("timeout" in r.message.lower() for r in replies if r.outcome == "503")


def test_a_killed_instance_comes_back_within_30_s(demo_bundle):
    """SIGKILL to the model's Python stub under load: requests fail until the supervisor loaded the model again,
    then every one succeeds."""
    image = frame(24, 24, 3)
    events = []
    with _server(demo_bundle.path, notify=events.append) as server:
        with loadgen.Background(server.http_url, image, clients=2, seconds=60, max_requests=2000) as load:
            time.sleep(1.5)
            (stub,) = server.stubs()
            killed = time.monotonic()
            os.kill(stub, signal.SIGKILL)
            deadline = killed + 40
            while not server.restarts and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(2.0)
        replies = load.replies
        assert len(server.restarts) == 1, events
        assert len(server.stubs()) == 1 and server.stubs() != [stub]
    failed = [r for r in replies if not r.ok]
    assert failed, "killing the stub failed no request: the test did not hit the window"
    assert all(r.outcome == "500" and "not healthy" in r.message for r in failed), loadgen.counts(failed)
    assert all(r.sent >= killed - 0.5 for r in failed)  # nothing failed before the kill
    recovered = max(r.done for r in failed)
    assert recovered - killed < 30
    after = [r for r in replies if r.sent > recovered]
    assert after and all(r.ok for r in after)
    assert any("died" in e for e in events) and any("loaded again" in e for e in events)


def test_a_new_version_goes_live_under_load_without_a_failed_request(demo_bundle, tiny_bundles, tmp_path):
    """Version 1 is the demo model (4x), version 2 a tiny one (2x): the output's size tells which bundle answered,
    whatever the version label says. Clients sending throughout see no failure, and switch from one to the other."""
    repo = tmp_path / "models"
    write_repository(demo_bundle.path, repo, "onnxruntime")
    image = frame(16, 24, 4)
    with _server(repo=repo) as server:
        with loadgen.Background(server.http_url, image, clients=2, seconds=90, max_requests=3000) as load:
            time.sleep(1.0)
            write_repository(tiny_bundles("onnx-fp32").bundle.path, repo, "onnxruntime", version=2)
            server.load_model()
            live = time.monotonic()
            time.sleep(1.5)
        replies = load.replies
    assert replies and all(r.ok for r in replies), loadgen.counts(replies)
    old, new = (64, 96, 3), (32, 48, 3)
    assert {(r.version, r.shape) for r in replies} == {("1", old), ("2", new)}
    assert all(r.shape == new for r in replies if r.sent > live)  # once loaded, only the new bundle answers
    first_new = min(r.done for r in replies if r.shape == new)
    assert any(r.done < first_new for r in replies if r.shape == old)  # the old one served before it


def test_fuzz_every_request_is_answered_and_a_good_one_still_matches(demo_bundle):
    """500 random requests (1000 sends: HTTP and gRPC), fixed seed: every one answered (never a dropped
    connection nor a hang), nothing answered as a failure of ours, the model never restarted; then the server
    is ready and a good request equals `SRRuntime`."""
    from linearsr_edge.serving.fuzz import Generator, fuzz, table

    tags = [t for t in demo_bundle.tags().names if t != "<null>"]
    events = []
    with _server(demo_bundle.path, max_pixels=1_000_000, notify=events.append) as server:
        sent = fuzz(server.http_url, server.grpc_url, 500, Generator(seed=24, tags=tags, min_side=16, max_side=40,
                                                                      big_side=600))  # fmt: skip
        by_kind = table(sent)
        assert server.model_ready() and not server.restarts, events
        good = frame(20, 28, 5)
        got = loadgen.Client(server.http_url).send(good, seed=11, keep=True)
        rss = _oversize_grpc(server, mib=96, times=4)
    # oversize bodies are refused after they arrived (this tritonserver has no body bound), and they do not pile
    # up in the server: no gRPC request object is kept for reuse (with Triton's default pool each of the first
    # few kept its message: +96 MiB a request; without, the server's RSS moves by tens of MiB)
    assert rss[-1] - rss[0] < 1.5 * 96 * 2**20, [r // 2**20 for r in rss]
    assert len(sent) == 1000 and len(by_kind) == 16, by_kind
    assert not [s for s in sent if s.outcome.startswith("no reply")], by_kind
    ok = {"http 200", "grpc OK"}
    assert set(by_kind["valid"]) == ok, by_kind["valid"]
    for kind, outcomes in by_kind.items():
        if kind == "malformed":  # Triton's JSON parser answers some bad JSON with 500 (its frontend, not the model)
            continue
        if kind not in ("valid", "tags"):  # a tag string can be valid (",,,portrait,,")
            assert not set(outcomes) & ok, (kind, outcomes)
        assert not {"http 500", "grpc INTERNAL"} & set(outcomes), (kind, outcomes)
    with SRRuntime.load(demo_bundle.path, backend="onnxruntime") as rt:
        from linearsr_edge.pipeline.process import SampleOptions

        want = rt.upscale(good, SampleOptions(seed=11)).image
    assert got.ok and got.shape == want.shape and np.abs(got.image.astype(int) - want).max() <= 1, got


def test_load_runs_target_this_machine_only():
    with pytest.raises(loadgen.LoopbackOnly, match="127.0.0.1"):
        loadgen.closed_loop("10.1.2.3:8000", frame(16, 16), 1, 1, 1)
    assert loadgen.check_loopback("[::1]:8000") and loadgen.check_loopback("localhost:8001")


def test_a_request_that_fails_inside_the_batch_fails_alone(demo_bundle):
    """A negative seed passes the model's request checks and fails inside the runtime's batch: the requests
    batched with it are answered all the same (each is run alone after the batch failed), it gets its 400.
    Too many tags (past the profile's cond_len) fail inside the expert call: 400 too, and the server goes on."""
    from concurrent.futures import ThreadPoolExecutor

    from linearsr_edge.serving.loadgen import Client

    image = frame(24, 24, 6)
    names = [t for t in demo_bundle.tags().names if t != "<null>"]
    with _server(demo_bundle.path, max_queue_delay_us=300_000) as server:
        before = _stats(server)
        seeds = [1, 2, -5, 3, 4, 5]
        with ThreadPoolExecutor(len(seeds)) as pool:
            replies = list(pool.map(lambda s: Client(server.http_url).send(image, seed=s), seeds))
        inferences, executions = (a - b for a, b in zip(_stats(server), before, strict=True))
        many = ",".join((names * 5)[:20]).encode()
        with ThreadPoolExecutor(2) as pool:
            tagged = list(pool.map(lambda _: Client(server.http_url).send(image, tags=many), range(2)))
        after = Client(server.http_url).send(image, seed=1)
    assert executions < inferences == len(seeds)  # they were batched: the bad one had company
    for seed, reply in zip(seeds, replies, strict=True):
        if seed < 0:
            assert reply.outcome == "400" and "seed must be an integer >= 0" in reply.message, reply
        else:
            assert reply.ok, (seed, reply)
    assert all(r.outcome == "400" and "cond_len=21" in r.message for r in tagged), tagged
    assert after.ok and after.digest == replies[0].digest


def _stats(server) -> tuple[int, int]:
    import tritonclient.http as http

    stats = http.InferenceServerClient(server.http_url).get_inference_statistics("linearsr")["model_stats"][0]
    return stats["inference_count"], stats["execution_count"]


def _oversize_grpc(server, mib: int, times: int) -> list[int]:
    """Send a ``mib`` MiB frame over gRPC ``times`` times (each refused: above max_pixels); the server process's
    RSS after each."""
    from linearsr_edge.serving.fuzz import GrpcSender, Request, Tensor

    side = int((mib * 2**20 / 3) ** 0.5)
    request = Request("large", (Tensor("image", "UINT8", (1, side, side, 3), bytes(side * side * 3)),))
    sender = GrpcSender(server.grpc_url)
    rss = []
    try:
        for _ in range(times):
            assert sender(request) == "INVALID_ARGUMENT"
            rss.append(loadgen.process_rss(server.process.pid))
    finally:
        sender.close()
    return rss
