"""OpenVINO targets (ov-fp32/fp16/int8) and the ``openvino`` backend, beyond the shared contract suite.

Everything here runs on this machine's CPU. NPU and GPU are not present: their refusals are
pure logic and tested; a bf16 check runs only on a CPU that OpenVINO says has BF16.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("openvino", reason="requires openvino: pip install 'linearsr-edge[openvino]'")
pytest.importorskip("nncf", reason="requires nncf: pip install 'linearsr-edge[openvino]'")

import openvino as ov

from linearsr_edge.backends.openvino.export import (
    _convert_via_onnx,
    convert,
    island_names,
    precise_nodes,
    product_names,
)
from linearsr_edge.backends.openvino.options import OVOptions
from linearsr_edge.backends.openvino.session import OVSession, check_device
from linearsr_edge.bundle import Bundle
from linearsr_edge.errors import BundleError, ConfigError, InputSpecError
from linearsr_edge.runtime import SRRuntime


def _has_bf16() -> bool:
    return "BF16" in ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")


def _expert_ir(tiny_bundles, target: str, k: int = 0):
    bundle = tiny_bundles(target).bundle
    return bundle, ov.Core().read_model(str(bundle.file(f"expert_{k}")))


# -- the IR -------------------------------------------------------------------------------------
@pytest.mark.parametrize("target", ["ov-fp32", "ov-fp16", "ov-int8"])
def test_ir_marks_the_linear_attention_reductions_precise(target, tiny_bundles):
    _, model = _expert_ir(tiny_bundles, target)
    marked = set(precise_nodes(model))
    ops = {op.get_friendly_name(): op for op in model.get_ordered_ops()}
    attn = [n for n in ops if ".self_attn/" in n]
    reductions = [n for n in attn if ops[n].get_type_name() == "ReduceSum"]
    divisions = [n for n in attn if ops[n].get_type_name() == "Divide"]
    products = [  # K^T V, Q (K^T V), Q K-sum: MatMuls without a weight (weights reach MatMul through Convert/FQ)
        n for n in attn if ops[n].get_type_name() == "MatMul" and "to_" not in n
    ]
    depth = 2
    assert len(reductions) == depth and len(divisions) == depth and len(products) == 3 * depth
    assert set(reductions + divisions + products) <= marked
    weight_matmuls = [n for n in ops if ops[n].get_type_name() == "MatMul" and ".self_attn.to_" in n]
    assert weight_matmuls and not set(weight_matmuls) & marked  # the rule is selective


def test_ir_keeps_names_and_symbolic_axes(tiny_bundles):
    bundle, model = _expert_ir(tiny_bundles, "ov-fp32")
    spec = bundle.spec("expert_0")
    assert [p.get_any_name() for p in model.inputs] == spec.input_names
    assert [p.get_any_name() for p in model.outputs] == spec.output_names
    for port, t in zip(model.inputs, spec.inputs, strict=True):
        shape = port.get_partial_shape()
        for axis, d in enumerate(t.shape):
            assert shape[axis].is_dynamic == isinstance(d, str), (t.name, axis)


def test_fp16_ir_stores_weights_in_fp16_and_is_smaller(tiny_bundles):
    fp32, fp16 = tiny_bundles("ov-fp32").bundle, tiny_bundles("ov-fp16").bundle
    model = ov.Core().read_model(str(fp16.file("expert_0")))
    consts = [op for op in model.get_ordered_ops() if op.get_type_name() == "Constant"]
    big = [c for c in consts if np.prod(list(c.get_output_shape(0))) >= 64]
    assert big and all(c.get_output_element_type(0) == ov.Type.f16 for c in big)
    weights = [(b.path / "expert_0.bin").stat().st_size for b in (fp32, fp16)]
    assert weights[1] < 0.6 * weights[0]


def test_int8_quantizes_weight_matmuls_but_not_the_islands_or_products(tiny_bundles):
    result = tiny_bundles("ov-int8")
    bundle, model = _expert_ir(tiny_bundles, "ov-int8")
    fq_readers = set()
    for op in model.get_ordered_ops():
        if op.get_type_name() == "FakeQuantize":
            fq_readers |= {t.get_node().get_friendly_name() for t in op.output(0).get_target_inputs()}
    assert any("self_attn.to_q" in n for n in fq_readers) and any("ffn.project" in n for n in fq_readers)
    kept = set(island_names(model)) | set(product_names(model))
    assert not fq_readers & kept, sorted(fq_readers & kept)
    assert set(result.bundle.manifest.family("openvino").int8_ignored_nodes) == {f"expert_{k}" for k in range(4)}
    # the codec stays FP32
    codec = ov.Core().read_model(str(bundle.file("encoder")))
    assert not any(op.get_type_name() == "FakeQuantize" for op in codec.get_ordered_ops())


def test_nncf_default_recipe_quantizes_an_island(tiny_bundles):
    """The same expert quantized with ``keep_fp32="none"`` (NNCF decides): NNCF then puts a quantizer in
    front of the linear attention's token sums, which our policy keeps FP32."""
    from linearsr_edge.backends.openvino.export import quantize
    from linearsr_edge.backends.openvino.options import OVInt8Options
    from linearsr_edge.reference import load_model_folder

    spec = tiny_bundles("ov-int8").bundle.spec("expert_0")
    folder = load_model_folder(tiny_bundles.root / "model")
    model = convert(folder.experts[0], spec)
    feeds = [spec.dummy_inputs("opt", batch=1, seed=i) for i in range(4)]
    q = quantize(model, feeds, OVInt8Options(keep_fp32="none"), "expert_0", {})
    islands = set(island_names(q))
    readers = {
        t.get_node().get_friendly_name()
        for op in q.get_ordered_ops()
        if op.get_type_name() == "FakeQuantize"
        for t in op.output(0).get_target_inputs()
    }
    assert readers & islands


def test_int8_weights_cannot_saturate_without_vnni(tiny_bundles):
    """The default recipe (NNCF's overflow fix on every MatMul/Conv) leaves no INT8 weight a U8 x S8 pair sum
    could overflow int16 with, read back from the saved IR; the manifest records it."""
    from linearsr_edge.backends.openvino.export import int8_weights
    from linearsr_edge.backends.openvino.plan import PAIR_SAFE_WEIGHT

    bundle = tiny_bundles("ov-int8").bundle
    for k in range(4):
        weights = int8_weights(ov.Core().read_model(str(bundle.file(f"expert_{k}"))))
        assert len(weights) > 20  # every block's projections and convolutions
        assert max(w for _, _, w in weights) <= PAIR_SAFE_WEIGHT, weights
    record = bundle.manifest.family("openvino").int8_weights
    assert record.exact_without_vnni and record.largest_abs_weight <= PAIR_SAFE_WEIGHT
    assert record.overflow_fix == "all MatMul/Conv" and bundle.manifest.target_options["overflow_fix"] is True


def test_full_range_weights_would_saturate(tiny_bundles):
    """The control: NNCF's default (the first layer fixed only) quantizes to the full 8-bit range, which the
    check above would refuse."""
    from linearsr_edge.backends.openvino.export import int8_weights, quantize
    from linearsr_edge.backends.openvino.options import OVInt8Options
    from linearsr_edge.backends.openvino.plan import PAIR_SAFE_WEIGHT
    from linearsr_edge.reference import load_model_folder

    spec = tiny_bundles("ov-int8").bundle.spec("expert_0")
    folder = load_model_folder(tiny_bundles.root / "model")
    feeds = [spec.dummy_inputs("opt", batch=1, seed=i) for i in range(4)]
    largest = {}
    for fix in (False, True):
        model = quantize(convert(folder.experts[0], spec), feeds, OVInt8Options(overflow_fix=fix), "e", {})
        largest[fix] = max(w for _, _, w in int8_weights(model))
    assert largest[False] > PAIR_SAFE_WEIGHT >= largest[True], largest


_GOLDEN_VELOCITIES = """
import sys, numpy as np
from linearsr_edge.quality.golden import GoldenSet
from linearsr_edge.backends.openvino.options import OVOptions
from linearsr_edge.runtime import SRRuntime
rt = SRRuntime.load(sys.argv[1], options=OVOptions(precision_hint="f32", threads=1))
golden = GoldenSet.load(rt.bundle.path / "golden.npz")
out = {f"e{k}_{i}": rt.run_component(f"expert_{k}", c.feeds)["velocity"]
       for k, cases in golden.experts.items() for i, c in enumerate(cases)}
np.savez(sys.argv[2], **out)
"""


def test_int8_runs_the_same_with_the_cpu_capped_at_avx2(tiny_bundles, tmp_path):
    """The golden inputs through every expert, once on this CPU's own kernels and once with oneDNN capped at
    AVX2 (no VNNI: U8 x S8 products summed in int16 pairs, as on an AVX2-only CPU). With 7-bit weights nothing
    saturates, so both agree to float rounding; the unfixed recipe lost ~7 dB on the demo there
    (benchmarks/ov_int8_portable.py). On an AVX2-only CPU both runs are AVX2 and agree as well."""
    import os
    import subprocess
    import sys

    from linearsr_edge.quality.parity import sqnr

    bundle = tiny_bundles("ov-int8").bundle
    runs = {}
    for name, env in (("native", {}), ("avx2", {"ONEDNN_MAX_CPU_ISA": "AVX2"})):
        out = tmp_path / f"{name}.npz"
        cmd = [sys.executable, "-c", _GOLDEN_VELOCITIES, str(bundle.path), str(out)]
        subprocess.run(cmd, env={**os.environ, **env}, check=True, timeout=300)
        runs[name] = dict(np.load(out))
    assert runs["native"].keys() == runs["avx2"].keys() and len(runs["native"]) >= 4
    for key, native in runs["native"].items():
        assert sqnr(native, runs["avx2"][key]) > 50.0, key


def test_onnx_fallback_conversion_matches_the_reference(tiny_bundles):
    from linearsr_edge.reference import call_module, load_model_folder

    spec = tiny_bundles("ov-fp32").bundle.spec("expert_1")
    folder = load_model_folder(tiny_bundles.root / "model")
    model = _convert_via_onnx(folder.experts[1], spec)
    feeds = spec.dummy_inputs("opt", batch=1, seed=5)
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f32"})
    got = compiled(feeds)[compiled.outputs[0]]
    want = call_module(folder.experts[1], spec, feeds)["velocity"]
    assert np.abs(got - want).max() < 1e-4


# -- the backend --------------------------------------------------------------------------------
def test_verification_ran_with_the_f32_hint(tiny_bundles):
    for target in ("ov-fp32", "ov-fp16", "ov-int8"):
        v = tiny_bundles(target).bundle.verification
        assert v.verified and v.backend == "openvino"
        assert v.backend_settings["precision_hint"] == "f32" and v.backend_settings["device"] == "CPU"


def test_fp32_end_to_end_above_60_db(tiny_bundles):
    row = tiny_bundles("ov-fp32").rows[-1]
    assert row.metric == "psnr_db" and row.value >= 60


def test_static_shapes_compile_per_size_and_match_dynamic(tiny_bundles):
    bundle = tiny_bundles("ov-fp32").bundle
    spec = bundle.spec("expert_2")
    static = OVSession(bundle.file("expert_2"), spec, OVOptions(max_shapes=2))
    dynamic = OVSession(bundle.file("expert_2"), spec, OVOptions(static_shapes=False))
    sizes = [dict(height=8, width=8), dict(height=16, width=8), dict(height=8, width=16)]
    for i, fixed in enumerate(sizes):
        feeds = spec.dummy_inputs("min", seed=i, batch=1, **fixed)
        a, b = static.run(feeds)["velocity"], dynamic.run(feeds)["velocity"]
        assert a.shape == (1, spec.inputs[0].shape[1], fixed["height"], fixed["width"])
        assert np.abs(a - b).max() < 1e-5
    assert len(static._compiled) == 2  # least recently used size evicted
    assert list(static._compiled)[-1][0][2:] == (8, 16)


def test_precision_hint_in_force_is_reported(tiny_bundles):
    bundle = tiny_bundles("ov-fp32").bundle
    with SRRuntime.load(bundle.path, options=OVOptions(threads=1)) as rt:
        rt.run_component("expert_0", bundle.spec("expert_0").dummy_inputs("min", batch=1))
        settings = rt.backend_settings()
        assert settings["backend"] == "openvino" and settings["precision_hint"] == "f32" and settings["threads"] == 1
    if not _has_bf16():
        pytest.skip("this CPU has no BF16: OpenVINO runs f32 whatever the hint")
    with SRRuntime.load(bundle.path, options=OVOptions(precision_hint="bf16")) as rt:
        rt.run_component("expert_0", bundle.spec("expert_0").dummy_inputs("min", batch=1))
        assert rt.backend_settings()["precision_hint"] == "bf16"


def test_a_hint_the_cpu_cannot_run_is_said_in_one_line():
    from linearsr_edge.backends.openvino.session import hint_mismatch

    why = hint_mismatch("bf16", "f32", "CPU", ["WINOGRAD", "FP32", "INT8", "BIN"])  # an AVX2-only EPYC
    assert why is not None and "runs f32, not the bf16 asked for" in why and "FP32 INT8" in why
    assert "\n" not in why and "--precision-hint bf16" in why
    assert hint_mismatch("bf16", "bfloat16", "CPU", ["BF16", "FP32"]) is None  # OpenVINO's own spelling


def test_the_hint_in_force_is_compared_with_the_one_asked(tiny_bundles, caplog):
    """f16 on a CPU: OpenVINO runs what the CPU has (bf16 on AVX512-BF16, f32 on AVX2) unless it has FP16
    arithmetic. Whatever this CPU does, the runtime reports the precision in force, and warns exactly when
    it is not the one asked for."""
    import logging

    bundle = tiny_bundles("ov-fp32").bundle
    logger = logging.getLogger("linearsr_edge")
    logger.addHandler(caplog.handler)
    try:
        with SRRuntime.load(bundle.path, options=OVOptions(precision_hint="f16")) as rt:
            rt.run_component("expert_0", bundle.spec("expert_0").dummy_inputs("min", batch=1))
            settings = rt.backend_settings()
    finally:
        logger.removeHandler(caplog.handler)
    model = ov.Core().read_model(str(bundle.file("expert_0")))
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "f16"})
    from linearsr_edge.backends.openvino.session import HINT_TYPES

    truth = HINT_TYPES[compiled.get_property("INFERENCE_PRECISION_HINT").to_string()]
    assert settings["precision_hint"] == truth
    if truth != "f16":
        assert settings["precision_hint_asked"] == "f16"
        assert any("not the f16 asked for" in r.getMessage() for r in caplog.records)
        from linearsr_edge.pipeline.session import describe_settings

        assert f"hint {truth} (f16 asked: not on this device)" in describe_settings(settings)
    else:
        assert "precision_hint_asked" not in settings


@pytest.fixture
def bf16_runtime_precisions(tiny_bundles):
    """(original layers, layer type, runtime precision) of the FP16 expert compiled with a bf16 hint."""
    if not _has_bf16():
        pytest.skip("requires a CPU with BF16 (OpenVINO OPTIMIZATION_CAPABILITIES)")
    bundle = tiny_bundles("ov-fp16").bundle
    model = ov.Core().read_model(str(bundle.file("expert_0")))
    compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": "bf16"})
    rows = []
    for op in compiled.get_runtime_model().get_ordered_ops():
        rt = op.get_rt_info()
        rows.append(tuple(rt[k].astype(str) for k in ("originalLayersNames", "layerType", "runtimePrecision")))
    return rows


def test_bf16_hint_keeps_the_marked_islands_in_fp32(bf16_runtime_precisions):
    """The token sums (ReduceSum, K^T V) and the products with Q run FP32 under a bf16 hint. The division
    does not: the CPU plugin rewrites it as x * y^-1 and the new nodes lose the mark (bf16 keeps FP32's
    range, so nothing overflows; documented in benchmarks/RESULTS.md)."""
    rows = bf16_runtime_precisions
    sums = [p for names, kind, p in rows if "self_attn/aten::sum/ReduceSum" in names]
    token_products = [p for names, kind, p in rows if kind == "MatMul" and "self_attn/aten::matmul/MatMul" in names]
    dense = [p for names, kind, p in rows if kind == "FullyConnected"]
    assert len(sums) == 2 and set(sums) == {"f32"}
    assert len(token_products) == 6 and set(token_products) == {"f32"}
    assert "bf16" in dense  # the hint is in force elsewhere: the marks are what keeps the islands FP32


# -- refusals -----------------------------------------------------------------------------------
def test_unknown_device_lists_the_available_ones(tiny_bundles):
    bundle = tiny_bundles("ov-fp32").bundle
    available = ov.Core().available_devices
    with pytest.raises(ConfigError, match=r"device TPU is not available here; available devices: " + available[0]):
        SRRuntime.load(bundle.path, options=OVOptions(device="TPU"))
    with pytest.raises(ConfigError, match="GPU.7"):
        check_device("AUTO:GPU.7,CPU", ["CPU"])
    check_device("AUTO", ["CPU"])  # AUTO alone picks among what is there
    check_device("CPU", ["CPU"])


def test_npu_needs_a_fixed_resolution():
    with pytest.raises(ConfigError, match=r"NPU compiles static shapes only.*--resolution WxH"):
        OVOptions(device="NPU")
    with pytest.raises(ConfigError, match="drop --dynamic-shapes"):
        OVOptions(device="NPU", resolution=(64, 64), static_shapes=False)
    assert OVOptions(device="NPU", resolution=(64, 64)).hint == "f16"
    assert OVOptions(device="GPU.1").hint == "f16" and OVOptions().hint == "f32"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(precision_hint="fp8"), "precision_hint must be one of"),
        (dict(max_shapes=0), "max_shapes must be a positive integer"),
        (dict(resolution=(0, 5)), "resolution must be"),
        (dict(device=""), "device must be a non-empty string"),
        (dict(threads=0), "threads must be a positive integer"),
    ],
)
def test_bad_options_are_refused(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        OVOptions(**kwargs)


def test_a_pinned_resolution_is_a_size_policy_other_frames_are_fitted_to(tiny_bundles):
    """``--resolution`` (an NPU compiles static shapes only) pins the size: the sessions see that size alone,
    one row per call; a smaller frame is padded to it and a larger one tiled in tiles of it."""
    from linearsr_edge.specs import SizePolicy

    bundle = tiny_bundles("ov-fp32").bundle
    image = np.random.default_rng(0).integers(0, 256, (12, 16, 3), dtype=np.uint8)
    with SRRuntime.load(bundle.path, options=OVOptions(resolution=(12, 16))) as rt:
        assert rt.sizes == SizePolicy.pinned((24, 32), max_batch=1)
        with rt.traced() as calls:
            assert rt.upscale(image).image.shape == (24, 32, 3)
            assert rt.upscale(image[:8]).image.shape == (16, 32, 3)  # padded to 12x16 and cropped back
            big = np.random.default_rng(1).integers(0, 256, (30, 20, 3), dtype=np.uint8)
            assert rt.upscale(big).image.shape == (60, 40, 3)  # tiled in 24x32 tiles
        assert {c.batch for c in calls} == {1}
        shapes = {key for s in rt._residents.sessions() for key in s._compiled}
        assert {k[0][2:] for k in shapes} <= {(24, 32), (12, 16)}  # the image at 24x32, latents at 12x16


def test_missing_bin_is_named(tiny_bundles, tmp_path):
    import shutil

    src = tiny_bundles("ov-fp32").bundle.path
    copy = tmp_path / "b"
    shutil.copytree(src, copy)
    (copy / "expert_1.bin").unlink()
    with pytest.raises(BundleError, match="expert_1.bin is missing"):
        Bundle.load(copy)
    with pytest.raises(BundleError, match=r"IR file .*expert_1.bin is missing"):
        OVSession(copy / "expert_1.xml", Bundle(copy, tiny_bundles("ov-fp32").bundle.manifest).spec("expert_1"))


def test_onnx_bundle_refuses_the_openvino_backend(tiny_bundles):
    with pytest.raises(InputSpecError, match="backend 'openvino' cannot run onnx bundles"):
        SRRuntime.load(tiny_bundles("onnx-fp32").bundle.path, backend="openvino")


# -- the commands -------------------------------------------------------------------------------
def test_upscale_command_takes_openvino_flags_and_reports_the_hint(tiny_bundles, tmp_path, capsys):
    from linearsr_edge.cli.upscale import main
    from tests.helpers import write_photo

    photo = write_photo(tmp_path / "in.png", 12, 16)
    bundle = str(tiny_bundles("ov-int8").bundle.path)
    out = tmp_path / "out.png"
    assert main([str(photo), "-o", str(out), "--bundle", bundle, "--threads", "1", "--precision-hint", "f32"]) == 0
    line = capsys.readouterr().out
    assert "openvino (CPU, hint f32, 1 threads)" in line and out.stat().st_size > 0
    assert main([str(photo), "-o", str(out), "--bundle", bundle, "--device", "TPU"]) == 2
    assert "device TPU is not available here; available devices:" in capsys.readouterr().err
    assert main([str(photo), "-o", str(out), "--bundle", bundle, "--device", "NPU"]) == 2
    assert "--resolution WxH" in capsys.readouterr().err


def test_upscale_command_refuses_flags_of_another_backend(tiny_bundles, tmp_path, capsys):
    from linearsr_edge.cli.upscale import main
    from tests.helpers import write_photo

    photo = write_photo(tmp_path / "in.png", 12, 16)
    onnx = str(tiny_bundles("onnx-fp32").bundle.path)
    assert main([str(photo), "-o", str(tmp_path / "o.png"), "--bundle", onnx, "--precision-hint", "bf16"]) == 2
    assert "--precision-hint does not apply to backend onnxruntime; it accepts --threads" in capsys.readouterr().err
    model = str(tiny_bundles.root / "model")
    assert main([str(photo), "-o", str(tmp_path / "o.png"), "--model", model, "--device", "CPU"]) == 2
    assert "--device: backend options apply to --bundle only" in capsys.readouterr().err


def test_export_command_takes_the_ov_int8_flags(tiny_bundles, tmp_path, capsys):
    from linearsr_edge.cli.export import main

    assert main(["--target", "ov-fp16", "--ov-int8-preset", "mixed", "--out", str(tmp_path / "x")]) == 2
    assert "--ov-int8-preset does not apply to target ov-fp16" in capsys.readouterr().err


def test_residency_one_and_the_compiled_model_cache(tiny_bundles, tmp_path):
    bundle = tiny_bundles("ov-fp32").bundle
    images = [np.random.default_rng(i).integers(0, 256, (12, 16, 3), dtype=np.uint8) for i in range(2)]
    cache = tmp_path / "ov-cache"
    with SRRuntime.load(bundle.path, residency="one", options=OVOptions(cache_dir=cache)) as rt:
        assert rt.open_components() == ["encoder", "decoder"]
        rt.upscale_batch(images)
        assert sum(name.startswith("expert_") for name in rt.open_components()) == 1
        assert all(rt.open_counts()[f"expert_{k}"] == 1 for k in range(4))
    assert any(cache.iterdir())  # OpenVINO wrote compiled blobs for the next load


def test_a_frozen_or_renamed_axis_is_refused(tiny_bundles):
    import torch

    from linearsr_edge.backends.openvino.export import check_symbolic_axes
    from linearsr_edge.errors import ExportError
    from linearsr_edge.reference import load_model_folder

    spec = tiny_bundles("ov-fp32").bundle.spec("decoder")
    folder = load_model_folder(tiny_bundles.root / "model")
    example = spec.dummy_inputs("opt", batch=2)["latent"]
    static = ov.convert_model(
        _decoder(folder),
        example_input=(torch.from_numpy(example),),
        input=[("latent", ov.PartialShape(list(example.shape)), ov.Type.f32)],
    )
    static.inputs[0].get_tensor().set_names({"latent"})  # the frontend names it '3' (see convert)
    with pytest.raises(ExportError, match=r"decoder.latent: axis 0 \(batch\) was frozen to 2"):
        check_symbolic_axes(static, spec)
    static.inputs[0].get_tensor().set_names({"z"})
    with pytest.raises(ExportError, match="converted model has no input 'latent'"):
        check_symbolic_axes(static, spec)


def _decoder(folder):
    from linearsr_edge.model.components import component_module

    return component_module(folder, "decoder")


def test_int8_exporters_refuse_an_expert_without_band_data(tiny_bundles, tmp_path):
    from linearsr_edge.backends.onnx.precision import ONNXInt8Exporter
    from linearsr_edge.backends.openvino.export import OVInt8Exporter
    from linearsr_edge.errors import ExportError
    from linearsr_edge.reference import load_model_folder

    spec = tiny_bundles("ov-int8").bundle.spec("expert_2")
    folder = load_model_folder(tiny_bundles.root / "model")
    for cls in (ONNXInt8Exporter, OVInt8Exporter):
        with pytest.raises(ExportError, match="expert_2: INT8 needs calibration data from the expert's own band"):
            cls().export(folder.experts[2], spec, tmp_path, calibration=[])
    assert not any(tmp_path.iterdir())


def test_every_ir_says_what_it_is_in_its_rt_info(tiny_bundles):
    """An expert lifted out of the bundle (into an app, Triton or DeepStream) names its model, component, band,
    precision and export, read back by OpenVINO itself."""
    bundle = tiny_bundles("ov-int8").bundle
    model = ov.Core().read_model(str(bundle.file("expert_1")))

    def info(key: str) -> str:
        return model.get_rt_info(["linearsr", key]).astype(str)

    assert info("component") == "expert_1" and info("band") == str(bundle.cfg.bands[1])
    assert info("precision") == "int8" and info("target") == "ov-int8"
    assert info("export_id") == bundle.manifest.export_id and len(bundle.manifest.export_id) == 16
    decoder = ov.Core().read_model(str(bundle.file("decoder")))
    assert decoder.get_rt_info(["linearsr", "component"]).astype(str) == "decoder"
    assert not decoder.has_rt_info(["linearsr", "band"])  # only experts have a band


def test_a_call_compiles_its_shapes_side_by_side_before_it_runs(tiny_bundles):
    """Before a call runs, the runtime tells each resident session the shapes it will run (`SRProcess.shapes`)
    and OpenVINO compiles them in parallel: a wrong prediction would leave a second compiled shape per session
    (the one prepared and the one run), and unused experts would compile for nothing."""
    from linearsr_edge.pipeline.process import SampleOptions

    bundle = tiny_bundles("ov-fp32").bundle
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 256, (12, 16, 3), dtype=np.uint8) for _ in range(2)]
    images.append(rng.integers(0, 256, (20, 8, 3), dtype=np.uint8))
    with SRRuntime.load(bundle.path, residency="all", options=OVOptions(threads=2, cache=False)) as rt:
        prepared = []
        original = rt.process.prepare
        rt.process.prepare = lambda wanted: (prepared.append(wanted), original(wanted))
        opts = SampleOptions(steps=2, tags=("portrait",) if rt.process.tags else ())
        plan = rt.process.plan(opts)
        used = {f"expert_{k}" for k, n in enumerate(plan.steps_per_expert(rt.cfg.num_experts)) if n}
        assert len(used) < rt.cfg.num_experts  # the check below sees experts left out
        sessions = rt._residents.open_sessions()
        rt.upscale_batch(images, opts)
        assert len(prepared) == 1 and set(prepared[0]) == {"encoder", "decoder", *used}
        for name, session in sessions.items():
            compiled = set(session._compiled)
            if name.startswith("expert_") and name not in used:
                assert compiled == set()
            else:  # two sizes: the pair shares a batch of 2, the third image runs alone
                want = {tuple(tuple(s[n]) for n in session.spec.input_names) for s in prepared[0][name]}
                assert compiled == want and len(want) == 2


def test_a_strided_input_runs_as_its_contiguous_copy(tiny_bundles):
    """A tile is a strided view of the frame. OpenVINO's shared tensors do not keep their array alive: the
    contiguous copy of a view was freed before the inference read it (garbage out, up to 1.7e6 on the demo's
    encoder). Runs and bindings hold their copies now."""
    bundle = tiny_bundles("ov-fp32").bundle
    encoder = OVSession(bundle.file("encoder"), bundle.spec("encoder"), OVOptions(threads=2, cache=False))
    frame = np.random.default_rng(0).standard_normal((1, 3, 40, 56), dtype=np.float32)
    view = frame[:, :, 4:36, 8:40]  # not contiguous
    assert not view.flags.c_contiguous
    want = encoder.run({"image": np.ascontiguousarray(view)})["latent"]
    for _ in range(3):  # the freed memory is reused by the next allocation: a few tries show it
        np.testing.assert_array_equal(encoder.run({"image": view})["latent"], want)
    expert = OVSession(bundle.file("expert_0"), bundle.spec("expert_0"), OVOptions(threads=2, cache=False))
    feeds = expert.spec.dummy_inputs("min", batch=1, seed=1)
    wide = {n: np.repeat(a, 2, axis=-1) if a.ndim == 4 else a for n, a in feeds.items()}
    strided = {n: a[..., ::2] if a.ndim == 4 else a for n, a in wide.items()}
    binding = expert.bind({"lr_latent": strided["lr_latent"], "cond": strided["cond"]})
    got = binding.run({"latent": strided["latent"], "sigma": strided["sigma"]})["velocity"]
    np.testing.assert_array_equal(got, expert.run({n: np.ascontiguousarray(a) for n, a in strided.items()})["velocity"])
