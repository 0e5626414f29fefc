"""Triton serving: the repository, and a real tritonserver on 127.0.0.1 (parity over HTTP and gRPC,
concurrency with dynamic batching, bad requests, shutdown). Servers are always stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from linearsr_edge.backends.onnx.options import OrtOptions
from linearsr_edge.pipeline.process import SampleOptions
from linearsr_edge.runtime import SRRuntime
from tests.e2e.serving import HAVE_SERVER, free_ports, needs_server
from tests.e2e.serving import frame as _frame


def test_repository_files(tiny_bundles, tmp_path, capsys):
    import json

    from linearsr_edge.cli.serve import triton_main

    bundle = tiny_bundles("onnx-fp32").bundle
    repo = tmp_path / "models"
    argv = [str(bundle.path), "--repo", str(repo), "--instances", "3", "--kind", "KIND_GPU", "--threads", "2"]
    assert triton_main([*argv, "--max-queue-delay-us", "500", "--copy-bundle"]) == 0
    config = (repo / "linearsr" / "config.pbtxt").read_text()
    assert 'backend: "python"' in config and "count: 3 kind: KIND_GPU" in config
    assert "max_queue_delay_microseconds: 500" in config and 'name: "tags" data_type: TYPE_UINT8' in config
    out = capsys.readouterr().out
    assert "queue: at most 24 requests wait, none longer than" in out  # sized: a batch of 8 x 3 instances
    assert "--http-max-input-size=" in out and "--model-control-mode=explicit" in out
    assert "timeout_action: REJECT" in config and "max_queue_size: 24" in config
    settings = json.loads((repo / "linearsr" / "1" / "linearsr.json").read_text())
    assert settings["bundle"] == "1/bundle" and settings["options"] == {"threads": 2}
    assert settings["backend"] == "onnxruntime"
    from linearsr_edge.bundle import Bundle

    assert Bundle.load(repo / "linearsr" / "1" / "bundle").manifest.files == bundle.manifest.files
    assert (repo / "linearsr" / "1" / "model.py").read_text().startswith('"""Triton Python-backend model')
    assert triton_main([str(bundle.path), "--repo", str(repo), "--precision-hint", "f32"]) == 2
    assert "--precision-hint does not apply" in capsys.readouterr().err
    fixed = ["--max-queue-size", "5", "--queue-timeout-ms", "250", "--version", "2", "--copy-bundle"]
    assert triton_main([str(bundle.path), "--repo", str(repo), *fixed]) == 0
    out = capsys.readouterr().out
    assert "queue: at most 5 requests wait, none longer than 250 ms (as given)" in out and "measured" not in out
    config = (repo / "linearsr" / "config.pbtxt").read_text()
    assert "max_queue_size: 5" in config and "default_timeout_microseconds: 250000" in config
    from linearsr_edge.serving.triton import versions

    assert versions(repo) == [1, 2] and json.loads((repo / "linearsr" / "2" / "linearsr.json").read_text())[
        "bundle"] == "2/bundle"  # fmt: skip
    assert (repo / "linearsr" / "2" / "bundle" / "manifest.json").is_file()
    for bad in (["--version", "0"], ["--queue-timeout-ms", "-1"]):
        with pytest.raises(SystemExit):
            triton_main([str(bundle.path), "--repo", str(repo), *bad])
        assert "must be" in capsys.readouterr().err
    with pytest.raises(SystemExit) as info:
        triton_main(["--version"])
    assert info.value.code == 0 and "linearsr-triton (linearsr-edge)" in capsys.readouterr().out


SERVER_MAX_PIXELS = 4_000_000  # output pixels: a 640x360 frame (2560x1440 out) passes, 600x600 does not


@pytest.fixture(scope="module")
def server(demo_bundle):
    from linearsr_edge.serving.triton import TritonServer

    http_port, grpc_port, metrics_port = free_ports(3)
    bundle = demo_bundle.path
    log = Path(tempfile.mkdtemp()) / "triton.log"
    with TritonServer(
        bundle, "127.0.0.1", http_port, grpc_port, metrics_port, max_queue_delay_us=20000, log=log,
        max_pixels=SERVER_MAX_PIXELS,
    ) as srv:  # fmt: skip
        yield srv


def _infer_http(url, image, **extra):
    import tritonclient.http as http

    client = http.InferenceServerClient(url)
    inputs = [http.InferInput("image", [1, *image.shape], "UINT8")]
    inputs[0].set_data_from_numpy(image[None], binary_data=True)
    if "seed" in extra:
        inputs.append(http.InferInput("seed", [1, 1], "INT64"))
        inputs[-1].set_data_from_numpy(np.array([[extra["seed"]]], np.int64))
    if "tags" in extra:
        raw = extra["tags"] if isinstance(extra["tags"], bytes) else ",".join(extra["tags"]).encode()
        tags = np.frombuffer(raw, np.uint8)[None]
        inputs.append(http.InferInput("tags", list(tags.shape), "UINT8"))
        inputs[-1].set_data_from_numpy(tags)
    result = client.infer("linearsr", inputs, outputs=[http.InferRequestedOutput("image", binary_data=True)])
    return result.as_numpy("image")[0]


def _infer_grpc(url, image):
    import tritonclient.grpc as grpc

    client = grpc.InferenceServerClient(url)
    inp = grpc.InferInput("image", [1, *image.shape], "UINT8")
    inp.set_data_from_numpy(image[None])
    return client.infer("linearsr", [inp]).as_numpy("image")[0]


@needs_server
def test_parity_over_http_and_grpc(server, demo_bundle):
    frames = [_frame(16, 24, 1), _frame(20, 20, 2), _frame(24, 32, 3)]
    with SRRuntime.load(demo_bundle.path, backend="onnxruntime") as rt:
        for frame in frames:
            want = rt.upscale(frame).image
            for got in (_infer_http(server.http_url, frame), _infer_grpc(server.grpc_url, frame)):
                assert got.shape == want.shape and np.abs(got.astype(int) - want).max() <= 1
        seeded = rt.upscale(frames[0], SampleOptions(seed=7, tags=("portrait",))).image
    got = _infer_http(server.http_url, frames[0], seed=7, tags=["portrait"])
    assert np.abs(got.astype(int) - seeded).max() <= 1
    assert "PyCapsule_GetPointer" not in server.log.read_text()  # no traceback in the log per response


@needs_server
def test_nul_bytes_in_tags_are_padding_as_perf_analyzer_sends_them(server, demo_bundle, tmp_path):
    """perf_analyzer sends every input; an all-zero ``tags`` means no tags, NUL padding after a tag is dropped.
    ``linearsr-triton --perf-data`` writes a request perf_analyzer can send: a real frame and a real tag."""
    import json

    from linearsr_edge.cli.serve import triton_main
    from linearsr_edge.serving.perfdata import perf_data

    frame = _frame(16, 24, 4)
    plain = _infer_http(server.http_url, frame, seed=3)
    assert np.array_equal(_infer_http(server.http_url, frame, seed=3, tags=b"\0"), plain)
    assert np.array_equal(_infer_http(server.http_url, frame, seed=3, tags=b"\0\0\0\0"), plain)
    tagged = _infer_http(server.http_url, frame, seed=3, tags=["portrait"])
    assert np.array_equal(_infer_http(server.http_url, frame, seed=3, tags=b"portrait\0\0"), tagged)
    assert not np.array_equal(tagged, plain)  # the tag does change the result: the checks above could fail
    request = perf_data(demo_bundle, 40, 24)["data"][0]
    assert request["image"]["shape"] == [24, 40, 3] and len(request["image"]["content"]) == 24 * 40 * 3
    assert bytes(request["tags"]["content"]) == b"portrait" and request["tags"]["shape"] == [8]
    assert request["seed"] == [0] and request["steps"] == [demo_bundle.cfg.default_steps]
    out = tmp_path / "pa.json"
    assert triton_main([str(demo_bundle.path), "--repo", str(tmp_path / "repo"), "--perf-data", str(out),
                        "--perf-size", "40x24"]) == 0  # fmt: skip
    assert json.loads(out.read_text()) == perf_data(demo_bundle, 40, 24)


@needs_server
def test_admin_apis_need_the_key_and_inference_does_not(server):
    """Model control, shared memory, logging and trace answer 403 without the key header (Triton's restricted API
    groups), over HTTP and gRPC; with it they answer; inference, health and statistics stay open."""
    import urllib.error
    import urllib.request

    import tritonclient.grpc as grpc

    from linearsr_edge.serving.triton import ADMIN_HEADER, GRPC_ADMIN_HEADER

    def status(path: str, method: str = "GET", key: str | None = None) -> int:
        request = urllib.request.Request(f"http://{server.http_url}{path}", method=method, data=b"{}" if method ==
                                         "POST" else None, headers={ADMIN_HEADER: key} if key else {})  # fmt: skip
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status
        except urllib.error.HTTPError as exc:
            return exc.code

    for path, method in (("/v2/repository/index", "POST"), ("/v2/logging", "GET"), ("/v2/trace/setting", "GET"),
                         ("/v2/systemsharedmemory/status", "GET")):  # fmt: skip
        assert status(path, method) == 403, path
        assert status(path, method, "wrong") == 403, path
        assert status(path, method, server.admin_key) == 200, path
    assert status("/v2/health/ready") == 200 and status("/v2/models/linearsr/stats") == 200
    from linearsr_edge.serving.triton import ServeError

    with pytest.raises(ServeError, match="already running"):  # a second start would orphan the first server
        server.start()
    assert _infer_http(server.http_url, _frame(16, 24)).shape == (64, 96, 3)
    client = grpc.InferenceServerClient(server.grpc_url)
    with pytest.raises(Exception, match="(?i)permission|denied|restricted|unavailable|unauthori"):
        client.get_model_repository_index()
    assert client.get_model_repository_index(headers={GRPC_ADMIN_HEADER: server.admin_key}) is not None


@needs_server
def test_concurrent_clients_are_batched(server, demo_bundle):
    import tritonclient.http as http

    frames = [_frame(16, 24, i) for i in range(8)]
    with SRRuntime.load(demo_bundle.path, backend="onnxruntime") as rt:
        want = [rt.upscale(f).image for f in frames]
    stats = http.InferenceServerClient(server.http_url).get_inference_statistics("linearsr")["model_stats"][0]
    before = (stats["inference_count"], stats["execution_count"])
    failures = []

    def client(k: int) -> None:
        for i in range(8):
            try:
                got = _infer_http(server.http_url, frames[i])
                if np.abs(got.astype(int) - want[i]).max() > 1:
                    failures.append((k, i, "mismatch"))
            except Exception as exc:
                failures.append((k, i, exc))

    threads = [threading.Thread(target=client, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not failures
    stats = http.InferenceServerClient(server.http_url).get_inference_statistics("linearsr")["model_stats"][0]
    inferences, executions = stats["inference_count"] - before[0], stats["execution_count"] - before[1]
    assert inferences == 32 and executions < inferences, (inferences, executions)


@needs_server
@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: np.zeros((1, 16, 24, 3), np.float32), "FP32"),
        (lambda: np.zeros((1, 16, 24), np.uint8), "shape"),
        (lambda: np.zeros((1, 16, 24, 4), np.uint8), "shape"),
        (lambda: np.zeros((1, 0, 0, 3), np.uint8), "empty"),
        (lambda: np.zeros((1, 8, 8, 3), np.uint8), "smaller than this bundle's smallest input"),
        (lambda: np.zeros((1, 600, 600, 3), np.uint8), "above the limit"),
        ("tag", "unknown tag"),
    ],
)
def test_bad_requests_get_400_count_as_failures_and_the_server_goes_on(server, make, message):
    import tritonclient.http as http
    from tritonclient.utils import InferenceServerException, np_to_triton_dtype

    client = http.InferenceServerClient(server.http_url)
    failures = _failure_count(server)
    if make == "tag":
        with pytest.raises(InferenceServerException, match="(?i)tag") as info:
            _infer_http(server.http_url, _frame(16, 24), tags=["no-such-tag"])
    else:
        data = make()
        inp = http.InferInput("image", list(data.shape), np_to_triton_dtype(data.dtype))
        inp.set_data_from_numpy(data, binary_data=True)
        with pytest.raises(InferenceServerException) as info:
            client.infer("linearsr", [inp])
        assert message.lower() in str(info.value).lower() or message in ("FP32", "shape"), str(info.value)
    assert info.value.status() == "400", (info.value.status(), str(info.value))
    if message not in ("FP32", "shape"):  # refused by our model, not by Triton's own input checks
        assert _failure_count(server) == failures + 1
    assert _infer_http(server.http_url, _frame(16, 24)).shape == (64, 96, 3)  # still serving


def _failure_count(server, reason: str = "INVALID_ARG") -> int:
    """The model's Prometheus counter of failed requests (``linearsr_request_failure``; Triton's own counts a
    Python model's error responses as successes)."""
    import re
    import urllib.request

    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics", timeout=10) as response:
        text = response.read().decode()
    pattern = rf'^linearsr_request_failure\{{[^}}]*reason="{reason}"[^}}]*\}} (\d+)'
    found = re.search(pattern, text, re.MULTILINE)
    assert found, "no linearsr_request_failure counter on /metrics"
    return int(found.group(1))


@needs_server
def test_grpc_bad_request_is_invalid_argument(server):
    import tritonclient.grpc as grpc
    from tritonclient.utils import InferenceServerException

    client = grpc.InferenceServerClient(server.grpc_url)
    inp = grpc.InferInput("image", [1, 600, 600, 3], "UINT8")
    inp.set_data_from_numpy(np.zeros((1, 600, 600, 3), np.uint8))
    with pytest.raises(InferenceServerException) as info:
        client.infer("linearsr", [inp])
    assert info.value.status() == "StatusCode.INVALID_ARGUMENT", info.value.status()


@needs_server
def test_a_frame_above_the_profile_is_tiled_like_upscale(server, demo_bundle):
    frame = _frame(72, 80, 5)  # output 320x288: above the bundle's 256x256, so tiled
    with SRRuntime.load(demo_bundle.path, backend="onnxruntime") as rt:
        want = rt.upscale(frame)
        assert want.tiles > 1
    got = _infer_http(server.http_url, frame)
    assert got.shape == want.image.shape and np.abs(got.astype(int) - want.image).max() <= 1


@needs_server
@pytest.mark.slow
def test_a_640x360_camera_frame_is_answered_like_upscale(server, demo_bundle):
    """Slow: 2560x1440 out, ~90 tiles. The fast variant above tiles an 80x72 frame."""
    frame = _frame(360, 640, 6)
    with SRRuntime.load(demo_bundle.path, backend="onnxruntime") as rt:
        want = rt.upscale(frame).image
    got = _infer_http(server.http_url, frame)
    assert got.shape == (1440, 2560, 3) and np.abs(got.astype(int) - want).max() <= 1


@needs_server
def test_linearsr_serve_stops_on_sigterm(tiny_bundles):
    http_port, grpc_port, metrics_port = free_ports(3)
    bundle = tiny_bundles("onnx-fp32").bundle.path
    env = {**os.environ, "TMPDIR": tempfile.mkdtemp()}
    cmd = [sys.executable, "-m", "linearsr_edge.cli.serve", str(bundle), "--port", str(http_port)]
    cmd += ["--grpc-port", str(grpc_port), "--metrics-port", str(metrics_port)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines = []
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if "Ctrl-C or SIGTERM" in line:
                break
        text = "".join(lines)
        assert f"http://127.0.0.1:{http_port}/v2/models/linearsr/infer" in text, text
        assert _infer_http(f"127.0.0.1:{http_port}", _frame(16, 24)).shape == (32, 48, 3)
        assert "queue: at most 8 requests wait, none longer than" in text
        proc.send_signal(signal.SIGHUP)  # loads the model again (the newest version goes live)
        line = proc.stdout.readline()
        assert "model loaded; version 1 serves" in line, line
        assert _infer_http(f"127.0.0.1:{http_port}", _frame(16, 24)).shape == (32, 48, 3)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - t0 < 10
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "stopped" in proc.stdout.read()
    assert not list(Path(env["TMPDIR"]).glob("linearsr-serve-*"))  # its temporary repository is gone
    ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert f"--http-port={http_port}" not in ps  # no tritonserver left behind


def test_serve_refuses_without_a_server(tiny_bundles):
    if HAVE_SERVER:
        pytest.skip("tritonserver is installed here")
    from linearsr_edge.cli.serve import serve_main

    assert serve_main([str(tiny_bundles("onnx-fp32").bundle.path)]) == 2


def test_options_travel_to_the_repository(tiny_bundles, tmp_path):
    import json

    from linearsr_edge.serving.triton import write_repository

    model = write_repository(tiny_bundles("onnx-fp32").bundle.path, tmp_path, "onnxruntime", OrtOptions(threads=1))
    settings = json.loads((model / "1" / "linearsr.json").read_text())
    assert settings["options"] == {"threads": 1} and Path(settings["bundle"]).is_absolute()


@needs_server
def test_a_copied_repository_moves_and_still_serves(demo_bundle, tmp_path):
    """``linearsr-triton --copy-bundle`` names no path of this machine; moved elsewhere, the repository serves as
    it is (``linearsr-serve --repo``), equal to the bundle run in process."""
    import json
    import shutil

    from linearsr_edge.cli.serve import triton_main
    from linearsr_edge.serving.triton import TritonServer

    written = tmp_path / "here" / "models"
    assert triton_main([str(demo_bundle.path), "--repo", str(written), "--copy-bundle", "--threads", "1"]) == 0
    text = (written / "linearsr" / "1" / "linearsr.json").read_text()
    settings = json.loads(text)
    assert settings["bundle"] == "1/bundle" and "site_packages" not in settings
    assert str(tmp_path) not in text and sys.prefix not in text
    moved = tmp_path / "elsewhere" / "repo"
    moved.parent.mkdir()
    shutil.move(str(written), str(moved))
    frame = _frame(20, 28, 9)
    with SRRuntime.load(demo_bundle.path, backend="onnxruntime") as rt:
        want = rt.upscale(frame).image
    http_port, grpc_port, metrics_port = free_ports(3)
    with TritonServer(None, "127.0.0.1", http_port, grpc_port, metrics_port, repo=moved) as server:
        got = _infer_http(server.http_url, frame)
    assert got.shape == want.shape and np.abs(got.astype(int) - want).max() <= 1
    assert (moved / "linearsr" / "1" / "bundle" / "manifest.json").is_file()  # serving left the repository as it was


def test_serve_takes_a_bundle_or_a_repository(tiny_bundles, tmp_path, capsys):
    from linearsr_edge.cli.serve import serve_main

    assert serve_main([]) == 2
    assert "give a bundle to serve, or --repo DIR" in capsys.readouterr().err
    assert serve_main(["--repo", str(tmp_path)]) == 2
    assert "is not a repository written by linearsr-triton" in capsys.readouterr().err
    assert serve_main(["--repo", str(tmp_path), "--threads", "2"]) == 2
    assert "a repository is served as written" in capsys.readouterr().err
