"""The TensorRT family's session, scratch pool, buffers, engine build and bookkeeping, run on Linux: the vendor
adapter's interface answered by ONNX Runtime over the bundle's own graphs (`tests.backends.tensorrt.ort_adapter`).

Each of the defects found by reading the code that never ran (shared/notes/never-ran-review.md, 2-9) has a
test here; the first (Core ML's plan) is in ``tests/backends/coreml``.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

from linearsr_edge.backends.tensorrt.adapter import CudaError, TensorRT
from linearsr_edge.backends.tensorrt.engines import build_engines
from linearsr_edge.backends.tensorrt.options import TRTRuntimeOptions
from linearsr_edge.bundle import Bundle
from linearsr_edge.checks import QualityThresholds
from linearsr_edge.errors import BackendRunError, BackendUnavailableError, QualityGateError
from linearsr_edge.pipeline.runtime import SRRuntime
from tests.backends.tensorrt.ort_adapter import OrtDrivenTRTBackend, backend_with


@pytest.fixture
def unbuilt(tiny_bundles, tmp_path):
    """A copy of the tiny trt-fp16 bundle, as exported: graphs and a recipe, no engines."""
    path = tmp_path / "trt-fp16"
    shutil.copytree(tiny_bundles("trt-fp16").bundle.path, path)
    return Bundle.load(path)


@pytest.fixture
def built(unbuilt):
    """The same bundle with engines built on the ONNX Runtime stand-in (one build of every engine)."""
    return build_engines(unbuilt, OrtDrivenTRTBackend, TRTRuntimeOptions(), progress=False).bundle


def _frame(h=12, w=16, seed=1):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_engines_are_built_verified_and_committed_on_onnx_runtime(unbuilt):
    """Engines, a metadata sidecar beside each, the timing cache; the manifest records where they were built and
    the engines' own golden rows (defect 7: under ``rows``, backend ``tensorrt``, no export-host leftovers)."""
    result = build_engines(unbuilt, OrtDrivenTRTBackend, TRTRuntimeOptions(), progress=False)
    bundle = Bundle.load(unbuilt.path)  # digests checked: every new file is hashed
    section = bundle.manifest.family("tensorrt")
    assert section.engines.gpu == "ONNX Runtime stand-in GPU 0" and section.engines.tensorrt == "10.3.0.30"
    for name, entry in section.components.items():
        assert (bundle.path / entry.engine).is_file() and entry.engine in bundle.manifest.files
        sidecar = (bundle.path / f"{entry.engine}.json").read_text()
        assert f'"linearsr.component": "{name}"' in sidecar and '"linearsr.gpu"' in sidecar
    v = bundle.verification
    assert v.verified and v.backend == "tensorrt" and v.reason is None and v.finish_on_device is None
    assert v.rows == tuple(result.report.rows) and len(v.rows) == 9 and all(r.passed for r in v.rows)
    assert v.backend_settings == {"gpu": "ONNX Runtime stand-in GPU 0", "compute_capability": "8.7"}


def test_engines_run_the_graphs_exactly_as_onnx_runtime_does(built):
    with SRRuntime(OrtDrivenTRTBackend(built, TRTRuntimeOptions())) as engines:
        got = engines.upscale(_frame()).image
        assert engines.backend == "tensorrt"
    with SRRuntime.load(built, backend="onnxruntime") as graphs:
        assert np.array_equal(got, graphs.upscale(_frame()).image)


def test_a_load_builds_every_engine_once_and_opening_sessions_builds_nothing(unbuilt):
    """Defect 2: one load of a 6-component bundle made 6 builds of 6 engines. Now the build is a step of its own,
    before any session opens, and only when asked."""
    backend = backend_with()
    options = TRTRuntimeOptions()
    with pytest.raises(BackendUnavailableError, match="linearsr-build-engines"):
        backend.prepare(unbuilt, options, "never")
    assert sum(a.calls["build"] for a in backend.adapter.instances) == 0
    prepared = backend.prepare(unbuilt, options, "if-needed")
    assert sum(a.calls["build"] for a in backend.adapter.instances) == 6
    with SRRuntime(backend(prepared, options), residency="one") as rt:
        rt.upscale(_frame())
        rt.upscale(_frame(seed=2))  # residency one: experts reopen
        assert rt.open_counts()["expert_0"] == 2
    assert backend.prepare(prepared, options, "if-needed") is prepared  # engines match: nothing to do
    assert sum(a.calls["build"] for a in backend.adapter.instances) == 6
    refused = replace(options, rebuild=False)
    assert backend.prepare(prepared, refused, "never") is prepared


def test_the_scratch_pool_is_freed_when_the_runtime_closes(built):
    """Defect 3: the shared pool had no release path (7 live allocations after close)."""
    rt = SRRuntime(OrtDrivenTRTBackend(built, TRTRuntimeOptions()))
    rt.upscale(_frame())
    trt = rt.components.trt
    assert rt.components.pool.ptr in trt.allocations and len(trt.allocations) > 6
    rt.close()
    assert trt.allocations == {} and rt.components.pool.ptr == 0
    assert trt.calls["stream"] == trt.calls["destroy_stream"]


def test_device_buffers_are_bounded_per_session(built):
    """Defect 4: six extra frame sizes grew the buffer sets from 6 to 42. Each session keeps at most
    ``max_shapes`` sets, freeing the least recently used."""
    with SRRuntime(OrtDrivenTRTBackend(built, TRTRuntimeOptions())) as rt:
        for i, (h, w) in enumerate([(10, 12), (12, 16), (14, 18), (16, 20), (18, 22), (20, 24), (22, 26)]):
            rt.upscale(_frame(h, w, seed=i))
        for session in rt._residents.sessions():
            assert len(session._io) <= session.max_shapes
        trt = rt.components.trt
        live_buffers = sum(len(b) for s in rt._residents.sessions() for b in s._io.values())
        assert len(trt.allocations) == live_buffers + 1  # the buffers held, and the scratch pool


def test_every_run_makes_its_device_current_on_its_own_thread(built):
    """Defect 5: the current CUDA device is per host thread; it was set only in ``__init__``, so a stream's
    worker thread ran on device 0. Now every run (and allocation) on any thread is on the session's device."""
    options = TRTRuntimeOptions(device=1)
    with SRRuntime(OrtDrivenTRTBackend(built, options)) as rt:
        results = list(rt.stream([_frame(seed=i) for i in range(3)], warmup=False))
        assert all(r.ok for r in results)
        trt = rt.components.trt
        assert {device for _, device in trt.executions} == {1}
        assert any(name == "linearsr-stream-worker" for name, _ in trt.executions)
        assert set(trt.allocations.values()) == {1}


def test_a_cuda_error_is_one_line_from_the_command(unbuilt, capsys):
    """Defect 6: CUDA errors escaped as RuntimeError, a traceback from the CLI; ``cudaSetDevice``'s return was
    ignored in the build. Now they are `CudaError`s (typed), and the command prints one line."""
    from linearsr_edge.cli.common import run_cli

    with pytest.raises(CudaError, match=r"cudaSetDevice\(5\)"):
        build_engines(unbuilt, OrtDrivenTRTBackend, TRTRuntimeOptions(device=5), progress=False)
    code = run_cli(lambda: build_engines(unbuilt, OrtDrivenTRTBackend, TRTRuntimeOptions(device=5)), "prog")
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.count("\n") == 0 and "cudaErrorInvalidDevice" in err and "Traceback" not in err


def test_engines_that_miss_the_gates_are_recorded_as_failing_without_a_command_to_finish(unbuilt):
    """Defect 7, the failure side: the old reason sent the user to the command that had just failed."""
    impossible = QualityThresholds(200.0, 200.0, 200.0)
    manifest = replace(unbuilt.manifest, verification=replace(unbuilt.verification, thresholds=impossible))
    (unbuilt.path / "manifest.json").write_text(__import__("json").dumps(manifest.to_data()))
    bundle = Bundle.load(unbuilt.path)
    with pytest.raises(QualityGateError, match="miss the bundle's quality gates"):
        build_engines(bundle, OrtDrivenTRTBackend, TRTRuntimeOptions(), progress=False)
    v = Bundle.load(unbuilt.path).verification
    assert not v.verified and "ONNX Runtime stand-in GPU 0" in v.reason and v.finish_on_device is None
    assert v.backend == "tensorrt" and v.rows and not all(r.passed for r in v.rows)


def test_sessions_opened_before_a_failing_one_are_closed(built):
    """Defect 8: residency's eager open left the sessions opened before a failing one open."""
    backend = backend_with(fail_load_after=3)
    with pytest.raises(CudaError, match="cannot deserialize"):
        SRRuntime(backend(built, TRTRuntimeOptions()))
    (trt,) = backend.adapter.instances
    assert trt.calls["load"] == 4 and trt.calls["stream"] == trt.calls["destroy_stream"] == 3
    assert trt.allocations == {}  # the three sessions' buffers and the scratch pool: all freed


def test_scratch_size_takes_a_real_zero():
    """Defect 9: ``device_memory_size_v2 or device_memory_size`` took a real 0 for missing (and TensorRT 11
    removed ``device_memory_size``). The adapter's rule, on engines of both API generations."""
    assert TensorRT.scratch_bytes(None, SimpleNamespace(device_memory_size_v2=0)) == 0
    assert TensorRT.scratch_bytes(None, SimpleNamespace(device_memory_size_v2=4096, device_memory_size=1)) == 4096
    assert TensorRT.scratch_bytes(None, SimpleNamespace(device_memory_size=1024)) == 1024


def test_a_failing_engine_run_is_a_backend_run_error(built):
    backend = backend_with(fail_execute=True)
    with SRRuntime(backend(built, TRTRuntimeOptions())) as rt, pytest.raises(BackendRunError) as info:
        rt.upscale(_frame())
    assert "tensorrt failed to run encoder on image [1, 3, 24, 32]" in str(info.value)
    assert isinstance(info.value.__cause__, CudaError)


def test_bound_inputs_are_uploaded_once_per_buffer_set(built):
    """The LR latent and the tags go to the device once per batch, not at every step; the result is the same."""
    with SRRuntime(OrtDrivenTRTBackend(built, TRTRuntimeOptions())) as rt:
        spec = rt.spec("expert_0")
        feeds = spec.dummy_inputs("opt", batch=1, seed=3)
        session = rt._residents.get("expert_0")
        plain = session.run(feeds)
        trt = rt.components.trt
        before = trt.calls["to_device"]
        binding = session.bind({"lr_latent": feeds["lr_latent"], "cond": feeds["cond"]})
        outs = [binding.run({"latent": feeds["latent"], "sigma": feeds["sigma"]}) for _ in range(3)]
        assert trt.calls["to_device"] - before == 4 + 2 + 2  # all four once, then latent and sigma per run
        assert all(np.array_equal(o["velocity"], plain["velocity"]) for o in outs)
        session.run(feeds)  # an unbound run overwrites the buffers: the binding uploads its inputs again
        before = trt.calls["to_device"]
        binding.run({"latent": feeds["latent"], "sigma": feeds["sigma"]})
        assert trt.calls["to_device"] - before == 4
        binding.close()


def test_concurrent_runs_share_the_pool_safely(built):
    with SRRuntime(OrtDrivenTRTBackend(built, TRTRuntimeOptions())) as rt:
        want = rt.upscale(_frame()).image
        outs, errors = [], []

        def work():
            try:
                outs.append(rt.upscale(_frame()).image)
            except Exception as exc:  # a test thread reports, not swallows
                errors.append(exc)

        threads = [threading.Thread(target=work) for _ in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors and all(np.array_equal(o, want) for o in outs)


def test_the_scratch_pool_grows_for_a_larger_engine_and_moves_every_context(built):
    """Residency "one" opens the codec first (small scratch), then an expert (larger): the pool frees the small
    block, allocates the larger one and points every context at it. The output is the resident run's."""
    frame = _frame()
    with SRRuntime(OrtDrivenTRTBackend(built, TRTRuntimeOptions())) as everything:
        want = everything.upscale(frame).image
    with SRRuntime(OrtDrivenTRTBackend(built, TRTRuntimeOptions()), residency="one") as rt:
        pool, trt = rt.components.pool, rt.components.trt
        small = pool.size
        got = rt.upscale(frame).image
        assert pool.size > small and trt.calls["free"] >= 1
        contexts = [s.context for s in rt._residents.sessions()]
        assert len(contexts) == 3 and all(c.scratch == (pool.ptr, pool.size) for c in contexts)
    np.testing.assert_array_equal(got, want)


def test_closing_a_session_twice_is_harmless(built):
    rt = SRRuntime(OrtDrivenTRTBackend(built, TRTRuntimeOptions()))
    session = rt._residents.get("encoder")
    rt.close()
    trt = rt.components.trt
    streams = trt.calls["destroy_stream"]
    session.close()
    assert trt.calls["destroy_stream"] == streams and trt.allocations == {}


def test_a_bundle_of_another_format_is_refused_by_the_engine_steps(tiny_bundles):
    from linearsr_edge.errors import BundleError, ConfigError

    onnx_bundle = tiny_bundles("onnx-fp32").bundle
    with pytest.raises(ConfigError, match="is a onnx-fp32 bundle, not a TensorRT one"):
        build_engines(onnx_bundle, OrtDrivenTRTBackend, TRTRuntimeOptions(), progress=False)
    with pytest.raises(BundleError, match="has no TensorRT recipe: it is a onnx-fp32 bundle"):
        OrtDrivenTRTBackend.prepare(onnx_bundle, TRTRuntimeOptions(), "if-needed")
