"""The Core ML family's session and backend, run on Linux: the adapter's interface (compile, load, predict)
answered by ONNX Runtime over the same component's ONNX graph (`tests.backends.coreml.ort_adapter`).

What this covers that only a Mac could before: the shape plan read back from the manifest (the field-order
slip in the old ``ShapePlan.from_dict`` gave ``cond_len == {}`` and a `TypeError` on every expert call), the
tag rows tiled to the model's fixed length, a batch split into rows, frames padded to a listed size and the
compiled-model cache.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from linearsr_edge.backends.coreml.options import CoreMLRuntimeOptions
from linearsr_edge.bundle import Bundle
from linearsr_edge.errors import BundleError, InputSpecError
from linearsr_edge.pipeline.process import SampleOptions
from linearsr_edge.pipeline.runtime import SRRuntime
from tests.backends.coreml.ort_adapter import coreml_backend_on
from tests.helpers import export_tiny

pytest.importorskip("coremltools", reason="needs coremltools to export: pip install 'linearsr-edge[coreml-export]'")


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """(a tiny coreml-fp16 bundle read back from disk, the onnx-fp32 bundle of the same model)."""
    root = tmp_path_factory.mktemp("coreml-on-ort")
    coreml = export_tiny(root, "coreml-fp16").bundle
    graphs = export_tiny(root, "onnx-fp32").bundle
    return Bundle.load(coreml.path), graphs


def _runtime(pair, tmp_path, backend=None):
    coreml, graphs = pair
    backend = backend or coreml_backend_on(graphs.path)
    return SRRuntime(backend(coreml, CoreMLRuntimeOptions(cache_dir=tmp_path / "compiled"))), backend


def test_an_expert_call_from_the_manifest_read_back_runs_on_onnx_runtime(pair, tmp_path):
    """The Core ML expert call path, as a Mac runs it: the plan from the manifest, a batch of 3 split into rows,
    2 tag rows tiled to the model's fixed length; the same velocities as the ONNX graph run directly."""
    coreml, graphs = pair
    plan = coreml.manifest.family("coreml").components["expert_1"].shapes
    assert plan.mode == "enumerated" and isinstance(plan.cond_len, int) and plan.cond_len % 2 == 0
    rt, backend = _runtime(pair, tmp_path)
    spec = rt.spec("expert_1")
    h, w = plan.sets[0]["latent"][2:]
    feeds = spec.dummy_inputs("opt", batch=3, seed=5, height=h, width=w, cond_len=2)
    got = rt.run_component("expert_1", feeds)["velocity"]
    with SRRuntime.load(graphs.path, backend="onnxruntime") as direct:
        want = direct.run_component("expert_1", feeds)["velocity"]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    (adapter,) = backend.adapter.instances
    expert_calls = [c for c in adapter.predicted if "latent" in c and "lr_latent" in c]
    assert len(expert_calls) == 3 and all(c["latent"][0] == 1 and c["cond"][1] == plan.cond_len for c in expert_calls)
    rt.close()


def test_frames_are_padded_to_a_listed_size_like_the_unrestricted_run_of_the_padded_frame(pair, tmp_path):
    _, graphs = pair
    rt, _ = _runtime(pair, tmp_path)
    assert rt.sizes.mode == "listed" and rt.sizes.max_batch == 1
    frame = np.random.default_rng(2).integers(0, 256, (12, 20, 3), dtype=np.uint8)  # 24x40 output: not listed
    got = rt.upscale(frame, SampleOptions(seed=0)).image
    target = rt.sizes.holding(24, 40)
    padded = np.pad(frame, ((0, target[0] // 2 - 12), (0, target[1] // 2 - 20), (0, 0)), mode="symmetric")
    with SRRuntime.load(graphs.path, backend="onnxruntime") as free:
        want = free.upscale(padded, SampleOptions(seed=0)).image[:24, :40]
    assert got.shape == want.shape and np.abs(got.astype(int) - want).max() <= 1
    rt.close()


def test_packages_compile_once_into_the_cache(pair, tmp_path):
    rt, backend = _runtime(pair, tmp_path)
    rt.close()
    again, _ = _runtime(pair, tmp_path, backend)
    again.upscale(np.zeros((8, 8, 3), np.uint8))
    again.close()
    compiles = [a.calls["compile"] for a in backend.adapter.instances]
    assert compiles == [6, 0]
    assert len(list((tmp_path / "compiled").glob("*.mlmodelc"))) == 6


def test_a_shape_outside_the_list_and_a_missing_package_are_refused(pair, tmp_path):
    coreml, graphs = pair
    rt, _ = _runtime(pair, tmp_path)
    spec = rt.spec("expert_0")
    odd = spec.dummy_inputs("min", batch=1, seed=1, height=10, width=12)  # in the profile, not listed
    with pytest.raises(InputSpecError, match="not among the shapes this Core ML model enumerates"):
        rt.run_component("expert_0", odd)
    rt.close()
    broken = tmp_path / "broken"
    shutil.copytree(coreml.path, broken)
    shutil.rmtree(broken / "decoder.mlpackage")
    bundle = Bundle(broken, coreml.manifest)  # as loaded before the package went missing
    backend = coreml_backend_on(graphs.path)
    with pytest.raises(BundleError, match="decoder.mlpackage is missing"):
        SRRuntime(backend(bundle, CoreMLRuntimeOptions(cache_dir=tmp_path / "c")))


def test_a_compile_raced_by_another_process_keeps_the_winners_model(pair, tmp_path):
    """Two processes compile the same package: the loser's rename fails on the winner's folder, and the
    winner's compiled model is used."""
    from linearsr_edge.backends.coreml.session import compiled_model

    coreml, graphs = pair
    adapter = coreml_backend_on(graphs.path).adapter()
    cache = tmp_path / "cache"
    target = cache / "expert_0-0123456789abcdef0123.mlmodelc"

    class Raced(type(adapter)):
        def compile(self, package, destination):
            built = super().compile(package, destination)
            target.mkdir(parents=True)  # the other process finished first
            (target / "compiled-from").write_text("winner")
            return built

    got = compiled_model(Raced(), coreml.file("expert_0"), "0123456789abcdef0123" + "0" * 44, cache)
    assert got == target and (target / "compiled-from").read_text() == "winner"
    assert [p.name for p in cache.iterdir()] == [target.name]  # the loser's temporary folder is gone


def test_a_package_without_files_is_refused(pair, tmp_path):
    from dataclasses import replace

    from linearsr_edge.backends.coreml.session import package_files

    coreml, _ = pair
    staged = tmp_path / "staged"
    (staged / "expert_0.mlpackage").mkdir(parents=True)
    bundle = Bundle(staged, replace(coreml.manifest, files={}))  # being written: digests of the files themselves
    with pytest.raises(BundleError, match="expert_0.mlpackage holds no files"):
        package_files(bundle, "expert_0.mlpackage")


def test_a_failing_predict_on_onnx_runtime_is_a_backend_run_error(pair, tmp_path):
    """The Core ML session's predict, answered by ONNX Runtime over a graph that fails at run time
    (`tests.backends.test_run_errors.failing_graph`)."""
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, RuntimeException

    from linearsr_edge.errors import BackendRunError
    from tests.backends.test_run_errors import failing_graph

    coreml, graphs = pair
    broken = tmp_path / "graphs"
    shutil.copytree(graphs.path, broken)
    failing_graph(broken / "expert_0.onnx", broken / "expert_0.onnx")
    backend = coreml_backend_on(broken)
    with SRRuntime(backend(coreml, CoreMLRuntimeOptions(cache_dir=tmp_path / "c"))) as rt:
        h, w = coreml.manifest.family("coreml").components["expert_0"].shapes.sets[0]["latent"][2:]
        feeds = rt.spec("expert_0").dummy_inputs("opt", batch=1, seed=0, height=h, width=w, cond_len=1)
        with pytest.raises(BackendRunError) as info:
            rt.run_component("expert_0", feeds)
    message = str(info.value)
    assert message.startswith("coreml failed to run expert_0 on latent [1, ") and "cond [1, " in message
    assert isinstance(info.value.__cause__, (Fail, InvalidArgument, RuntimeException))
