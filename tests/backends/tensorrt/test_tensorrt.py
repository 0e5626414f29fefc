"""TensorRT targets without TensorRT: profiles, recipe, strong typing, the S8 Q/DQ graph, polygraphy,
engine compatibility, ORT's TensorRT-EP options, the CLI; and, where TensorRT + CUDA exist, engines."""

from __future__ import annotations

import importlib.util
import math
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest

from linearsr_edge.backends.onnx.options import OrtOptions, provider_name
from linearsr_edge.backends.onnx.precision import fp32_island_nodes
from linearsr_edge.backends.onnx.session import tensorrt_ep_options, with_tensorrt_profiles
from linearsr_edge.backends.tensorrt.options import TRTOptions
from linearsr_edge.backends.tensorrt.plan import (
    EnginesRecord,
    GpuTarget,
    check_strongly_typed,
    engine_action,
    engine_mismatch,
    shapes_arg,
    tensor_types,
    trtexec_command,
)
from linearsr_edge.errors import BackendUnavailableError
from tests.helpers import TINY_PROFILE

HAVE_TRT = all(importlib.util.find_spec(m) is not None for m in ("tensorrt", "cuda"))
needs_trt = pytest.mark.skipif(not HAVE_TRT, reason="requires TensorRT + CUDA")


def _expert_spec(tiny_bundles):
    return tiny_bundles("trt-fp16").bundle.spec("expert_0")


# -- profiles and the recipe ----------------------------------------------------------------------
def test_profile_from_the_spec(tiny_bundles):
    spec = _expert_spec(tiny_bundles)
    profile = spec.profile_shapes()
    c = tiny_bundles("trt-fp16").bundle.cfg.latent_channels
    # TINY_PROFILE outputs 16..128 px, opt 32x48; codec factor 2 -> latent 8..64, opt 16x24; batch 1/1/4
    (min_h, min_w), (opt_h, opt_w), (max_h, max_w) = (
        (v[0] // 2, v[1] // 2) for v in (TINY_PROFILE.min_hw, TINY_PROFILE.opt_hw, TINY_PROFILE.max_hw)
    )
    assert profile["latent"] == {"min": [1, c, min_h, min_w], "opt": [1, c, opt_h, opt_w], "max": [4, c, max_h, max_w]}
    assert profile["sigma"] == {"min": [1], "opt": [1], "max": [4]}
    assert profile["cond"]["max"][1] == TINY_PROFILE.cond_len[2]
    assert shapes_arg(profile, "opt").split(",")[0] == f"latent:1x{c}x{opt_h}x{opt_w}"


def test_trtexec_recipe(tiny_bundles):
    bundle = tiny_bundles("trt-fp16").bundle
    spec = bundle.spec("expert_2")
    words = trtexec_command(spec, "expert_2.onnx", TRTOptions(workspace_mib=1024))
    assert words[:2] == ["trtexec", "--onnx=expert_2.onnx"] and "--stronglyTyped" in words
    profile = spec.profile_shapes()
    for which in ("min", "opt", "max"):
        assert f"--{which}Shapes={shapes_arg(profile, which)}" in words
    assert "--memPoolSize=workspace:1024M" in words and "--saveEngine=engines/expert_2.plan" in words
    recipe = bundle.manifest.family("tensorrt")
    assert sorted(recipe.components) == sorted(bundle.component_names())
    assert recipe.engines is None and recipe.strongly_typed is True
    assert recipe.components["expert_2"].profile == profile
    script = (bundle.path / "build_engines.sh").read_text()
    assert all(line in script for line in recipe.trtexec)
    assert "build_engines.sh" in bundle.manifest.files  # hashed like every file
    assert shlex.split(recipe.trtexec[0])[0] == "trtexec"


def test_trt_options_are_checked():
    from linearsr_edge.errors import ConfigError

    with pytest.raises(ConfigError, match="at least 64 MiB"):
        TRTOptions(workspace_mib=8)
    with pytest.raises(ConfigError, match="0-5"):
        TRTOptions(builder_optimization_level=9)
    from linearsr_edge.backends.tensorrt.options import TRTRuntimeOptions

    with pytest.raises(ConfigError, match="device must be a CUDA device index >= 0, got -1"):
        TRTRuntimeOptions(device=-1)


def test_an_exporter_that_wrote_nothing_has_no_recipe():
    from linearsr_edge.backends.tensorrt.export import TRTFP16Exporter

    assert TRTFP16Exporter().recipe_sections() == {}


def test_a_constant_of_the_other_float_type_is_caught():
    """A Constant node's type counts like an initializer's: FP16 data added to an FP32 input without a Cast."""
    from onnx import TensorProto, helper, numpy_helper

    const = helper.make_node("Constant", [], ["c"], value=numpy_helper.from_array(np.ones(3, np.float16)))
    add = helper.make_node("Add", ["x", "c"], ["y"], name="mixed")
    graph = helper.make_graph(
        [const, add],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    assert tensor_types(model)["c"] == "float16"
    (problem,) = check_strongly_typed(model)
    assert problem.node == "mixed" and set(problem.types) == {"float", "float16"}


# -- strong typing --------------------------------------------------------------------------------
def test_trt_fp16_graph_is_strongly_typed_and_a_missing_cast_is_caught(tiny_bundles):
    bundle = tiny_bundles("trt-fp16").bundle
    for name in bundle.component_names():
        model = onnx.load(str(bundle.file(name)))
        assert check_strongly_typed(model) == [], name
    model = onnx.load(str(bundle.file("expert_0")))
    assert any(n.op_type == "Cast" for n in model.graph.node)
    # bypass one float16 <-> float32 Cast in front of an Add/Mul/MatMul/Div: the checker must name that reader
    types = tensor_types(model)
    producer = {o: n for n in model.graph.node for o in n.output}

    def float_cast(name: str) -> bool:
        cast = producer.get(name)
        return (
            cast is not None
            and cast.op_type == "Cast"
            and {types.get(cast.input[0]), types.get(name)} == {"float16", "float"}
        )

    victim = next(
        n for n in model.graph.node if n.op_type in ("Add", "Mul", "MatMul", "Div") and any(map(float_cast, n.input))
    )
    i = next(i for i, name in enumerate(victim.input) if float_cast(name))
    victim.input[i] = producer[victim.input[i]].input[0]
    problems = check_strongly_typed(model)
    assert [p.node for p in problems] == [victim.name]
    assert "float16" in problems[0].types and "float" in problems[0].types


# -- the S8 symmetric graph -----------------------------------------------------------------------
def test_trt_int8_graph_is_symmetric_per_channel_and_spares_the_islands(tiny_bundles):
    from onnx import numpy_helper

    int8 = tiny_bundles("trt-int8").bundle
    fp32 = tiny_bundles("onnx-fp32").bundle
    model = onnx.load(str(int8.file("expert_1")))
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    producer = {o: n for n in model.graph.node for o in n.output}
    qdq = [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    assert qdq
    for n in qdq:  # every zero point is int8 and 0 (symmetric: TensorRT takes nothing else)
        assert len(n.input) == 3, n.name
        zp = inits[n.input[2]]
        assert zp.dtype == np.int8 and not zp.any(), n.name

    def dequantized(name: str) -> bool:
        return producer.get(name) is not None and producer[name].op_type == "DequantizeLinear"

    quantized = [
        n for n in model.graph.node if n.op_type in ("MatMul", "Conv", "Gemm") and any(map(dequantized, n.input))
    ]
    assert quantized
    readers = {}
    for n in model.graph.node:
        for i in n.input:
            readers.setdefault(i, []).append(n)
    for node in quantized:
        dqs = [producer.get(i) for i in node.input[:2]]
        assert all(d is not None and d.op_type == "DequantizeLinear" for d in dqs), node.name  # both inputs
        weight_dq = dqs[1]
        w = inits.get(weight_dq.input[0])
        if w is not None:  # per-channel on the output axis
            axis = {a.name: a.i for a in weight_dq.attribute}.get("axis", 1)
            attrs = {a.name: a.i for a in node.attribute}
            # Conv [O, I, kh, kw]: 0; Gemm: B is [N, K] with transB, else [K, N]; MatMul [K, N]: 1
            out_axis = {"Conv": 0, "Gemm": 0 if attrs.get("transB") else 1}.get(node.op_type, w.ndim - 1)
            assert axis % w.ndim == out_axis, node.name
            assert inits[weight_dq.input[1]].shape == (w.shape[out_axis],)
        act_scale = inits[dqs[0].input[1]]
        assert act_scale.size == 1  # per-tensor activations
        assert not any(r.op_type == "QuantizeLinear" for r in readers.get(node.output[0], []))  # no output Q/DQ
    islands = set(fp32_island_nodes(onnx.load(str(fp32.file("expert_1")))))
    assert islands
    for node in model.graph.node:
        if node.name in islands:
            assert not any(map(dequantized, node.input)), node.name
    psnr = next(r for r in int8.verification.rows if r.component == "pipeline")
    assert psnr.passed and psnr.value >= 35.0
    assert int8.verification.backend == "onnxruntime"  # ORT on CPU ran the S8S8 graph
    assert int8.manifest.family("tensorrt").int8_policy["activation_type"] == "int8"


# -- polygraphy (no TensorRT needed) --------------------------------------------------------------
@pytest.mark.parametrize(
    "target",
    ["trt-fp16", pytest.param("trt-int8", marks=pytest.mark.slow)],  # CI: the FP16 graphs (~18 s each)
)
def test_polygraphy_accepts_every_graph(tiny_bundles, tmp_path, target):
    exe = shutil.which("polygraphy", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("polygraphy is not installed (pip install 'linearsr-edge[tensorrt-tools]')")
    bundle = tiny_bundles(target).bundle
    for name in bundle.component_names():
        path = bundle.file(name)
        out = tmp_path / f"{name}.onnx"
        run = subprocess.run(
            [exe, "surgeon", "sanitize", "--fold-constants", str(path), "-o", str(out)], capture_output=True, text=True
        )
        assert run.returncode == 0, run.stdout + run.stderr
        assert onnx.load(str(out)).graph.node
        run = subprocess.run([exe, "inspect", "model", str(path)], capture_output=True, text=True)
        assert run.returncode == 0 and "Node(s)" in run.stdout, run.stdout + run.stderr


# -- engine compatibility -------------------------------------------------------------------------
ORIN = EnginesRecord("10.3.0.30", "Orin (nvgpu)", "8.7", 1024)


@pytest.mark.parametrize(
    "built, here, missing, expect",
    [
        (ORIN, GpuTarget("10.3.0.30", "Orin (nvgpu)", "8.7"), (), None),
        (ORIN, GpuTarget("10.3.0.26", "Orin (nvgpu)", "8.7"), (), None),  # same release, other build number
        (ORIN, GpuTarget("10.7.0.23", "Orin (nvgpu)", "8.7"), (), "built with TensorRT 10.3.0.30"),
        (ORIN, GpuTarget("10.3.0.30", "NVIDIA H100 80GB HBM3", "9.0"), (), "built for Orin (nvgpu)"),
        (ORIN, GpuTarget("10.3.0.30", "Orin (nvgpu)", "8.7"), ("expert_0.plan",), "missing: expert_0.plan"),
        (None, GpuTarget("10.3.0.30", "Orin (nvgpu)", "8.7"), (), "no TensorRT engines"),
        (ORIN, GpuTarget(None, None, None), (), "this device has None"),
    ],
)
def test_engine_compatibility_rules(built, here, missing, expect):
    mismatch = engine_mismatch(built, here, missing)
    if expect is None:
        assert mismatch is None
        assert engine_action(mismatch, False, "b")[0] == "use"
    else:
        assert expect in mismatch
        assert engine_action(mismatch, True, "b") == ("rebuild", f"{mismatch}: rebuilding them here")
        action, message = engine_action(mismatch, False, "my bundles/trt")
        assert action == "refuse" and message.endswith("linearsr-build-engines 'my bundles/trt'")


# -- ONNX Runtime's TensorRT EP -------------------------------------------------------------------
def test_ort_tensorrt_ep_options_from_the_spec(tiny_bundles, tmp_path):
    spec = _expert_spec(tiny_bundles)
    opts = tensorrt_ep_options(spec, tmp_path, workspace_mib=512)
    profile = spec.profile_shapes()
    assert opts["trt_profile_min_shapes"] == shapes_arg(profile, "min")
    assert opts["trt_profile_max_shapes"] == shapes_arg(profile, "max")
    assert opts["trt_engine_cache_path"] == str(tmp_path / spec.name) and opts["trt_engine_cache_enable"] == "True"
    assert opts["trt_max_workspace_size"] == str(512 << 20)
    assert opts["trt_fp16_enable"] == "False"  # the graph's types decide: no FP16 islands demoted
    plain = OrtOptions(threads=1)
    assert with_tensorrt_profiles(plain, spec, tmp_path) is plain
    ep = OrtOptions(
        providers=("tensorrt", "cuda"), provider_options={"TensorrtExecutionProvider": {"trt_fp16_enable": "True"}}
    )
    assert ep.providers == ("TensorrtExecutionProvider", "CUDAExecutionProvider")
    filled = with_tensorrt_profiles(ep, spec, tmp_path).provider_options["TensorrtExecutionProvider"]
    assert filled["trt_profile_opt_shapes"] == shapes_arg(profile, "opt")
    assert filled["trt_fp16_enable"] == "True"  # the caller's own setting wins
    assert provider_name("CPU") == "CPUExecutionProvider" and provider_name("MyEP") == "MyEP"


# -- the commands ---------------------------------------------------------------------------------
def test_export_trt_fp16_cli_says_how_to_finish(tmp_path, capsys):
    from linearsr_edge.cli import export as export_cli
    from tests.helpers import export_args, tiny_model_folder, write_photo

    model = tiny_model_folder(tmp_path / "model")
    calib = tmp_path / "calib"
    calib.mkdir()
    for i in range(4):
        write_photo(calib / f"p{i}.png", 24, 32, seed=i)
    out = tmp_path / "trt"
    argv = export_args(model, out, "--calib-dir", str(calib), target="trt-fp16")
    assert export_cli.main(argv) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert "NOT VERIFIED" in lines[-2] and "engines, built on the device" in lines[-2]
    assert lines[-1] == f"to finish, on the device: linearsr-build-engines {out}"


def test_build_engines_cli(tiny_bundles, capsys):
    from linearsr_edge.cli import build_engines

    bundle = tiny_bundles("trt-int8").bundle
    assert build_engines.main([str(bundle.path), "--print"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[1:] == list(bundle.manifest.family("tensorrt").trtexec)
    assert build_engines.main([str(tiny_bundles("onnx-fp32").bundle.path)]) == 2
    assert "trt-fp16 / trt-int8 only" in capsys.readouterr().err
    if not HAVE_TRT:
        assert build_engines.main([str(bundle.path), "-q"]) == 2
        assert "linearsr-edge[tensorrt]" in capsys.readouterr().err


@pytest.mark.skipif(HAVE_TRT, reason="checks the refusal where TensorRT is missing")
def test_tensorrt_backend_refuses_without_tensorrt(tiny_bundles):
    from linearsr_edge import SRRuntime

    with pytest.raises(BackendUnavailableError, match=r"linearsr-edge\[tensorrt\]"):
        SRRuntime.load(tiny_bundles("trt-fp16").bundle.path, backend="tensorrt")


def test_trt_bundle_runs_its_graphs_on_onnxruntime(tiny_bundles, caplog):
    """Without TensorRT a TensorRT bundle's graphs run on ONNX Runtime (with a warning: unverified), and
    the trt-fp16 graph is the onnx-fp16 graph: the same output."""
    from linearsr_edge.runtime import SRRuntime

    image = np.random.default_rng(1).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    with caplog.at_level("WARNING"), SRRuntime.load(tiny_bundles("trt-fp16").bundle.path, backend="onnxruntime") as rt:
        out = rt.upscale(image).image
    assert "not verified" in caplog.text
    with SRRuntime.load(tiny_bundles("onnx-fp16").bundle.path, backend="onnxruntime") as rt:
        assert np.array_equal(out, rt.upscale(image).image)


# -- on the device (TensorRT + CUDA) --------------------------------------------------------------
@pytest.mark.tensorrt
@needs_trt
@pytest.mark.parametrize("target, floor", [("trt-fp16", 45.0), ("trt-int8", 35.0)])
def test_engines_build_and_match_the_reference(tiny_bundles, tmp_path, target, floor):
    from linearsr_edge.backends.tensorrt.engines import build_engines
    from linearsr_edge.backends.tensorrt.session import TRTBackend
    from linearsr_edge.bundle import Bundle

    path = tmp_path / target
    shutil.copytree(tiny_bundles(target).bundle.path, path)
    built = build_engines(Bundle.load(path), TRTBackend, progress=False)
    manifest = Bundle.load(path).manifest
    assert manifest.verification.verified and manifest.family("tensorrt").engines.gpu == built.here.gpu
    end_to_end = built.report.rows[-1].value
    assert math.isinf(end_to_end) or end_to_end >= floor


@pytest.mark.tensorrt
@needs_trt
def test_tensorrt_per_nfe_against_ort_cuda(tiny_bundles, tmp_path):
    """Per-NFE latency of one expert: the TensorRT engine against ONNX Runtime's CUDA EP (printed; the
    engine must not be slower)."""
    from linearsr_edge import SRRuntime

    path = tmp_path / "trt"
    shutil.copytree(tiny_bundles("trt-fp16").bundle.path, path)
    spec = tiny_bundles("trt-fp16").bundle.spec("expert_0")
    feeds = spec.dummy_inputs("opt", batch=1, seed=0)

    def median_ms(rt) -> float:
        rt.run_component("expert_0", feeds)
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            rt.run_component("expert_0", feeds)
            times.append(time.perf_counter() - t0)
        return 1e3 * float(np.median(times))

    with SRRuntime.load(path, backend="tensorrt", build="if-needed") as trt_rt:
        trt_ms = median_ms(trt_rt)
    with SRRuntime.load(path, backend="onnxruntime", options=OrtOptions(providers=("cuda",))) as ort_rt:
        ort_ms = median_ms(ort_rt)
    print(f"per NFE: TensorRT {trt_ms:.3f} ms, ORT CUDA {ort_ms:.3f} ms ({ort_ms / trt_ms:.2f}x)")
    assert trt_ms <= ort_ms * 1.1
