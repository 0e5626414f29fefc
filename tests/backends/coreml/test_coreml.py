"""Core ML targets: conversion in full on any OS, checked by reading the saved packages; predictions
(bundle parity) on macOS only, under ``pytest -m macos``.

The checks read the saved ML program (``MLModel(..., skip_model_load=True).get_spec()``) with their
own rules, not with the exporter's report code: an op multiplying two activations is the linear
attention's product, a ``linear`` / ``conv`` op holds the big weight matmuls.
"""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from linearsr_edge.errors import BackendUnavailableError, ConfigError, ExportError, InputSpecError
from tests.helpers import TINY_PROFILE, export_tiny

ct = pytest.importorskip("coremltools", reason="needs coremltools: pip install 'linearsr-edge[coreml-export]'")

FACTOR = 2  # the tiny model's codec factor
TEST_SIZES = ((16, 16), (32, 48), (128, 128))  # the tiny profile's min/opt/max output sizes (no camera size fits)


class CoreMLBundles(dict):
    """The tiny model exported once per precision on first use (``fp16``, ``int8``); ``root / "model"`` is it."""

    def __init__(self, root):
        super().__init__()
        self.root = root

    def __missing__(self, precision: str):
        from linearsr_edge.backends.coreml.options import CoreMLInt8Options

        extra = {"target_options": CoreMLInt8Options(weight_threshold=256)} if precision == "int8" else {}
        self[precision] = export_tiny(self.root, f"coreml-{precision}", **extra)
        return self[precision]


@pytest.fixture(scope="module")
def coreml_bundles(tmp_path_factory):
    return CoreMLBundles(tmp_path_factory.mktemp("coreml"))


def saved_spec(package):
    return ct.models.MLModel(str(package), skip_model_load=True).get_spec()


def main_ops(spec):
    fn = spec.mlProgram.functions["main"]
    return list(fn.block_specializations[fn.opset].operations)


def dtype(op) -> str:
    from coremltools.proto import MIL_pb2

    return MIL_pb2.DataType.Name(op.outputs[0].type.tensorType.dataType)


def const_names(ops) -> set[str]:
    return {o.name for op in ops if op.type == "const" or op.type.startswith("constexpr_") for o in op.outputs}


def argument_names(op, *names):
    return [a.name for n in names if n in op.inputs for a in op.inputs[n].arguments]


# -- the saved programs ---------------------------------------------------------------------------
def test_fp16_keeps_the_linear_attention_fp32_and_runs_the_big_matmuls_in_fp16(coreml_bundles):
    bundle = coreml_bundles["fp16"].bundle
    for name in ("expert_0", "expert_3"):
        ops = main_ops(saved_spec(bundle.file(name)))
        consts = const_names(ops)
        products = [op for op in ops if op.type == "matmul" and not set(argument_names(op, "x", "y")) & consts]
        reductions = [op for op in ops if op.type in ("reduce_sum", "real_div")]
        weights = [op for op in ops if op.type in ("linear", "conv")]
        depth = 2  # tiny model: 2 blocks, each K^T V, Q (K^T V), Q K-sum; a K-sum and one division
        assert len(products) >= 3 * depth and len(reductions) >= 2 * depth
        assert {dtype(op) for op in products + reductions} == {"FLOAT32"}, name
        assert len(weights) > 10 and {dtype(op) for op in weights} == {"FLOAT16"}, name
        # I/O stays FP32 (the program casts inside)
        from coremltools.proto import FeatureTypes_pb2

        io = [*saved_spec(bundle.file(name)).description.input, *saved_spec(bundle.file(name)).description.output]
        assert {f.type.multiArrayType.dataType for f in io} == {FeatureTypes_pb2.ArrayFeatureType.FLOAT32}


def test_without_the_op_selector_coreml_would_run_the_attention_sums_in_fp16(tmp_path, tiny_cfg):
    """The control for the test above: blanket FP16 drops the model's ``.float()`` upcasts."""
    from linearsr_edge.backends.coreml.export import ct_inputs, export_program
    from linearsr_edge.backends.coreml.options import CoreMLOptions
    from linearsr_edge.backends.coreml.plan import shape_plan
    from linearsr_edge.model.denoiser import Denoiser
    from linearsr_edge.specs import component_specs

    spec = component_specs(tiny_cfg, TINY_PROFILE, FACTOR)[0]
    plan = shape_plan(spec, CoreMLOptions(shapes="range"), FACTOR)
    model = ct.convert(
        export_program(Denoiser(tiny_cfg).eval(), spec),
        inputs=ct_inputs(spec, plan),
        convert_to="mlprogram",
        minimum_deployment_target=ct.target.macOS15,
        compute_precision=ct.precision.FLOAT16,
        skip_model_load=True,
    )
    ops = main_ops(model.get_spec())
    consts = const_names(ops)
    products = [op for op in ops if op.type == "matmul" and not set(argument_names(op, "x", "y")) & consts]
    assert products and {dtype(op) for op in products} == {"FLOAT16"}


def test_int8_stores_per_channel_int8_weights_at_about_half_the_fp16_bytes(coreml_bundles, tmp_path):
    from linearsr_edge.fileio import disk_bytes

    """One expert through the exporter (a whole bundle is exported on macOS, for the parity test)."""
    from linearsr_edge.backends.coreml.export import CoreMLInt8Exporter
    from linearsr_edge.backends.coreml.options import CoreMLInt8Options
    from linearsr_edge.model.components import component_module
    from linearsr_edge.reference import load_model_folder

    fp16 = coreml_bundles["fp16"].bundle
    exporter = CoreMLInt8Exporter(CoreMLInt8Options(weight_threshold=256))
    exporter.prepare([fp16.spec(n) for n in fp16.component_names()])
    module = component_module(load_model_folder(coreml_bundles.root / "model"), "expert_0")
    (package,) = exporter.export(module, fp16.spec("expert_0"), tmp_path)
    ops = main_ops(saved_spec(package))
    dequant = [op for op in ops if op.type.startswith("constexpr_")]
    assert dequant, "no constexpr dequantize op: weights were not quantized"
    produced = {o.name for op in dequant for o in op.outputs}
    linear_weights = [argument_names(op, "weight")[0] for op in ops if op.type == "linear"]
    assert sum(w in produced for w in linear_weights) >= len(linear_weights) - 4  # the smallest stay FP16
    from coremltools.proto import MIL_pb2

    def tensor(op, name):
        (arg,) = op.inputs[name].arguments
        t = arg.value.type.tensorType
        return MIL_pb2.DataType.Name(t.dataType), [d.constant.size for d in t.dimensions]

    for op in dequant:
        (data_type, data_shape), (scale_type, scale_shape) = tensor(op, "data"), tensor(op, "scale")
        assert data_type == "INT8" and scale_type == "FLOAT16"
        assert scale_shape == [data_shape[0]] + [1] * (len(data_shape) - 1)  # one scale per output channel
    fp16_bytes, int8_bytes = (
        sum(disk_bytes(f) for f in (p / "Data").rglob("weight.bin")) for p in (fp16.file("expert_0"), package)
    )
    ratio = int8_bytes / fp16_bytes
    assert 0.45 < ratio < 0.65, ratio


def test_enumerated_shapes_are_the_declared_ones(coreml_bundles):
    bundle = coreml_bundles["fp16"].bundle
    c, cond_dim = bundle.cfg.latent_channels, bundle.cfg.cond_dim
    latents = {(h // FACTOR, w // FACTOR) for h, w in TEST_SIZES}
    inputs = {i.name: i.type.multiArrayType for i in saved_spec(bundle.file("expert_1")).description.input}
    for name in ("latent", "lr_latent"):
        shapes = [tuple(s.shape) for s in inputs[name].enumeratedShapes.shapes]
        assert sorted(shapes) == sorted((1, c, h, w) for h, w in latents), name
    # the default (the profile's optimum) comes first, in the same order for both latent inputs
    assert tuple(inputs["latent"].enumeratedShapes.shapes[0].shape) == (1, c, 16, 24)
    assert list(inputs["latent"].enumeratedShapes.shapes) == list(inputs["lr_latent"].enumeratedShapes.shapes)
    # sigma and cond are fixed: batch 1, six cond rows (0, 1, 2 tags + null tile to it exactly)
    assert list(inputs["sigma"].shape) == [1] and inputs["sigma"].WhichOneof("ShapeFlexibility") is None
    assert list(inputs["cond"].shape) == [1, 6, cond_dim] and inputs["cond"].WhichOneof("ShapeFlexibility") is None
    decoder = {i.name: i.type.multiArrayType for i in saved_spec(bundle.file("decoder")).description.input}
    assert sorted(tuple(s.shape)[2:] for s in decoder["latent"].enumeratedShapes.shapes) == sorted(latents)
    # the manifest's plan says the same, so the runtime checks feeds against what the package declares
    plan = bundle.manifest.family("coreml").components["expert_1"].shapes
    assert sorted(tuple(s["latent"][2:]) for s in plan.sets) == sorted(latents) and plan.cond_len == 6
    # and the size policy every backend honours lists the same output sizes, one row per call
    policy = bundle.spec("expert_1").sizes
    assert (policy.mode, policy.max_batch, sorted(policy.sizes)) == ("listed", 1, sorted(TEST_SIZES))


def test_tiling_the_cond_rows_leaves_the_expert_output_unchanged(tiny_cfg):
    """The fixed cond length of enumerated experts relies on this: no change beyond float rounding."""
    import torch

    from linearsr_edge.backends.coreml.plan import ShapePlan, fit_cond
    from linearsr_edge.model.denoiser import Denoiser
    from linearsr_edge.specs import component_specs

    torch.manual_seed(0)
    model = Denoiser(tiny_cfg).eval()
    spec = component_specs(tiny_cfg, TINY_PROFILE, FACTOR)[0]
    plan = ShapePlan("enumerated", cond_len=6)
    for length in (1, 2, 3):
        feeds = spec.dummy_inputs("opt", batch=1, seed=length, cond_len=length)
        tiled = fit_cond(feeds, plan, spec.name)
        assert tiled["cond"].shape[1] == 6
        with torch.no_grad():
            a, b = (model(*(torch.from_numpy(f[n]) for n in spec.input_names)) for f in (feeds, tiled))
            other = model(*(torch.from_numpy(v + 1 if n == "cond" else v) for n, v in feeds.items()))
        assert float((a - b).abs().max()) < 1e-5 * float(a.abs().max())
        assert float((a - other).abs().max()) > 1e-3 * float(a.abs().max())  # the cond does matter
    with pytest.raises(InputSpecError, match="takes 1, 2, 3, 6 cond rows"):
        fit_cond(spec.dummy_inputs("opt", batch=1, cond_len=4), plan, spec.name)


def test_export_report_and_unverified_bundle(coreml_bundles):
    from linearsr_edge.manifest import Manifest

    result = coreml_bundles["fp16"]
    raw = json.loads((result.bundle.path / "manifest.json").read_text())
    manifest = Manifest.from_data(raw)
    assert manifest == result.bundle.manifest and raw["families"]["coreml"]["deployment_target"] == "macOS15"
    report = manifest.family("coreml")
    assert report.deployment_target == "macOS15" and report.coremltools == ct.__version__
    expert = report.components["expert_0"]
    assert expert.ops > 50 and expert.op_types["linear"] > 10
    assert len(expert.linear_attention) >= 10
    assert {a.dtype for a in expert.linear_attention} == {"FLOAT32"}
    assert expert.weight_bytes > 0 and expert.shapes.mode == "enumerated"
    # the runtime pads other frames to one of the listed output sizes
    assert sorted(manifest.components["decoder"].spec.sizes.sizes) == sorted(TEST_SIZES)
    verification = manifest.verification
    assert verification.verified is False and "macOS" in verification.reason
    assert verification.finish_on_device.startswith("linearsr-verify ")
    # the package folders are hashed file by file, and the bundle loads (and verifies its hashes)
    assert any(f.startswith("expert_0.mlpackage/") and f.endswith("weight.bin") for f in manifest.files)
    assert result.bundle.component_bytes("expert_0") > expert.weight_bytes


def test_range_shapes_declare_the_profile(tmp_path, tiny_cfg):
    from linearsr_edge.backends.coreml.export import CoreMLExporter
    from linearsr_edge.backends.coreml.options import CoreMLOptions
    from linearsr_edge.model.denoiser import Denoiser
    from linearsr_edge.specs import component_specs

    specs = component_specs(tiny_cfg, TINY_PROFILE, FACTOR)
    exporter = CoreMLExporter(CoreMLOptions(shapes="range"))
    exporter.prepare(specs)
    (package,) = exporter.export(Denoiser(tiny_cfg).eval(), specs[0], tmp_path)
    inputs = {i.name: i.type.multiArrayType for i in saved_spec(package).description.input}
    bounds = [(r.lowerBound, r.upperBound) for r in inputs["latent"].shapeRange.sizeRanges]
    h, w = specs[0].dims["height"], specs[0].dims["width"]
    assert bounds == [(1, 4), (tiny_cfg.latent_channels,) * 2, (h.min, h.max), (w.min, w.max)]
    cond = [(r.lowerBound, r.upperBound) for r in inputs["cond"].shapeRange.sizeRanges]
    assert cond[1] == (TINY_PROFILE.cond_len[0], TINY_PROFILE.cond_len[2])


def test_macos14_enumerates_the_codec_and_gives_the_experts_ranges(tiny_cfg):
    from linearsr_edge.backends.coreml.options import CoreMLOptions
    from linearsr_edge.backends.coreml.plan import shape_plan
    from linearsr_edge.specs import component_specs

    specs = component_specs(tiny_cfg, TINY_PROFILE, FACTOR)
    opts = CoreMLOptions(deployment_target="macOS14")
    expert, decoder = shape_plan(specs[0], opts, FACTOR), shape_plan(specs[-1], opts, FACTOR)
    assert expert.mode == "range" and "macOS 15" in expert.note
    assert decoder.mode == "enumerated" and len(decoder.sets) == len(TEST_SIZES)
    assert expert.to_dict()["note"] == expert.note
    assert shape_plan(specs[0], CoreMLOptions(), FACTOR).mode == "enumerated"


# -- pure logic: sizes, plans, options ------------------------------------------------------------
def test_camera_sizes_that_fit_the_profile_are_enumerated(tiny_cfg):
    from linearsr_edge.backends.coreml.plan import output_sizes
    from linearsr_edge.specs import Profile, component_specs

    profile = Profile(min_hw=(64, 64), opt_hw=(256, 256), max_hw=(720, 1280))
    spec = component_specs(tiny_cfg, profile, 4)[0]
    assert output_sizes(spec, 4) == [(64, 64), (256, 256), (360, 640), (480, 640), (540, 960), (720, 1280)]
    assert output_sizes(spec, 4, [(720, 1280), (64, 64)]) == [(64, 64), (720, 1280)]
    with pytest.raises(ExportError, match="1920x1080 outside the export profile"):
        output_sizes(spec, 4, [(1080, 1920)])


def test_feeds_outside_the_enumerated_shapes_are_refused_with_the_list(tiny_cfg):
    from linearsr_edge.backends.coreml.options import CoreMLOptions
    from linearsr_edge.backends.coreml.plan import enumerated_cond_len, plan_rows, shape_plan
    from linearsr_edge.specs import component_specs

    assert [enumerated_cond_len(m) for m in (1, 2, 5, 6, 11, 12, 16, 300)] == [1, 2, 2, 6, 6, 12, 12, 12]
    spec = component_specs(tiny_cfg, TINY_PROFILE, FACTOR)[0]
    plan = shape_plan(spec, CoreMLOptions(), FACTOR)
    good = spec.dummy_inputs("opt", batch=3, height=16, width=24, cond_len=2)
    rows = plan_rows(good, spec, plan)
    assert len(rows) == 3 and all(r["latent"].shape[0] == 1 and r["cond"].shape[1] == 6 for r in rows)
    np.testing.assert_array_equal(np.concatenate([r["latent"] for r in rows]), good["latent"])
    np.testing.assert_array_equal(rows[1]["cond"][:, 2:4], good["cond"][1:2])
    with pytest.raises(InputSpecError, match=r"8x8, 16x24, 64x64 \(H x W\); cond length 6"):
        plan_rows(spec.dummy_inputs("opt", batch=1, height=20, width=20, cond_len=1), spec, plan)
    ranges = shape_plan(spec, CoreMLOptions(shapes="range"), FACTOR)
    (whole,) = plan_rows(good, spec, ranges)  # ranges take the batch and the cond as they are
    assert whole["latent"].shape[0] == 3 and whole["cond"].shape[1] == 2 and ranges.varying_inputs() == []
    full = spec.dummy_inputs("opt", batch=1, height=16, width=24, cond_len=6)
    (row,) = plan_rows(full, spec, plan)  # a cond of the model's own length goes as it is
    np.testing.assert_array_equal(row["cond"], full["cond"])


def test_calibration_rows_are_cropped_to_an_enumerated_size(tiny_cfg):
    from linearsr_edge.backends.coreml.options import CoreMLOptions
    from linearsr_edge.backends.coreml.plan import calibration_rows, shape_plan
    from linearsr_edge.specs import component_specs

    spec = component_specs(tiny_cfg, TINY_PROFILE, FACTOR)[0]
    plan = shape_plan(spec, CoreMLOptions(), FACTOR)  # latents 8x8, 16x24, 64x64
    feeds = spec.dummy_inputs("opt", batch=2, height=20, width=30, cond_len=1)
    rows = calibration_rows(feeds, spec, plan)
    assert len(rows) == 2 and rows[0]["latent"].shape == (1, tiny_cfg.latent_channels, 16, 24)
    np.testing.assert_array_equal(rows[1]["lr_latent"][0], feeds["lr_latent"][1, :, 2:18, 3:27])  # centred
    assert rows[0]["cond"].shape[1] == 6
    assert calibration_rows(spec.dummy_inputs("opt", batch=1, height=4, width=4), spec, plan) == []
    (whole,) = calibration_rows(feeds, spec, shape_plan(spec, CoreMLOptions(shapes="range"), FACTOR))
    assert whole["latent"].shape == feeds["latent"].shape  # ranges take the rows as recorded


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"deployment_target": "macOS12"}, "deployment_target must be one of"),
        ({"shapes": "flexible"}, "shapes must be"),
        ({"shapes": "range", "sizes": ((64, 64),)}, "needs --coreml-shapes enumerated"),
        ({"palettize_bits": 3}, "palettize_bits"),
        ({"weight_threshold": -1}, "weight_threshold"),
        ({"weight_threshold": 2.5}, "weight_threshold must be an integer"),
        ({"sizes": ((0, 64),)}, r"sizes must be \(height, width\) pairs of positive pixels"),
    ],
)
def test_bad_options_are_refused(kwargs, match):
    from linearsr_edge.backends.coreml.options import CoreMLInt8Options

    with pytest.raises(ConfigError, match=match):
        CoreMLInt8Options(**kwargs)


def test_compiled_model_cache_key_follows_the_package_and_the_compiler():
    from linearsr_edge.backends.coreml.session import cache_key

    files = {"expert_0.mlpackage/Manifest.json": "a" * 64, "expert_0.mlpackage/Data/weight.bin": "b" * 64}
    key = cache_key(files, "9.0")
    assert key == cache_key(dict(reversed(files.items())), "9.0")
    assert key != cache_key({**files, "expert_0.mlpackage/Data/weight.bin": "c" * 64}, "9.0")
    assert key != cache_key(files, "9.1")


def test_the_cache_key_of_a_bundle_being_written_matches_the_committed_one(coreml_bundles):
    """Export gates run on the staged bundle, before the manifest holds digests: the key must not change."""
    from dataclasses import replace

    from linearsr_edge.backends.coreml.session import cache_key, package_files
    from linearsr_edge.bundle import Bundle

    bundle = coreml_bundles["fp16"].bundle
    staged = Bundle(bundle.path, replace(bundle.manifest, files={}))
    committed = package_files(bundle, "expert_0.mlpackage")
    assert package_files(staged, "expert_0.mlpackage") == committed
    assert len(committed) >= 2 and all(rel.startswith("expert_0.mlpackage/") for rel in committed)
    assert cache_key(committed, "9.0") != cache_key(package_files(bundle, "expert_1.mlpackage"), "9.0")


# -- macOS only -----------------------------------------------------------------------------------
@pytest.mark.skipif(sys.platform == "darwin", reason="checks the refusal off macOS")
def test_off_macos_a_coreml_bundle_refuses_to_load_saying_why(coreml_bundles):
    from linearsr_edge.pipeline.session import get_backend
    from linearsr_edge.runtime import SRRuntime

    with pytest.raises(BackendUnavailableError, match="runs on macOS only, and this machine runs Linux"):
        SRRuntime.load(coreml_bundles["fp16"].bundle.path)
    with pytest.raises(BackendUnavailableError, match="Core ML predicts on macOS only"):
        get_backend("coreml")


@pytest.mark.skipif(sys.platform == "darwin", reason="checks the refusal off macOS")
def test_off_macos_w8a8_is_refused_before_any_work(tmp_path, capsys):
    from linearsr_edge.cli.export import main

    code = main(["--target", "coreml-w8a8", "--out", str(tmp_path / "b"), "-q"])
    err = capsys.readouterr().err
    assert code != 0 and "runs on macOS only" in err and "activation quantization runs Core ML predictions" in err
    assert "Traceback" not in err and not (tmp_path / "b").exists()


macos = pytest.mark.skipif(sys.platform != "darwin", reason="Core ML predicts on macOS only")


@pytest.mark.macos
@macos
@pytest.mark.parametrize("precision, floor_db", [("fp16", 45.0), ("int8", 35.0)])
def test_bundle_parity_on_macos(coreml_bundles, precision, floor_db):
    """End to end against the PyTorch reference, on a photo of an enumerated size (output 32x48, the optimum)."""
    from linearsr_edge.pipeline.imaging import read_image
    from linearsr_edge.pipeline.process import SampleOptions
    from linearsr_edge.quality.parity import psnr
    from linearsr_edge.reference import load_model_folder
    from linearsr_edge.runtime import SRRuntime
    from tests.helpers import write_photo

    result = coreml_bundles[precision]
    assert result.verification.verified, result.verification.reason  # its export gates ran on Core ML
    root = result.bundle.path.parent
    reference = load_model_folder(root / "model").reference()
    runtime = SRRuntime.load(result.bundle.path, backend="coreml")
    image = read_image(write_photo(root / "mac.png", 16, 24))
    ref = reference.upscale(image, SampleOptions(seed=0)).image
    got = runtime.upscale(image, SampleOptions(seed=0)).image
    assert psnr(ref, got) >= floor_db


@pytest.mark.macos
@macos
def test_w8a8_quantizes_activations_per_band_and_passes_its_gates_on_macos(coreml_bundles):
    from linearsr_edge.calibration import CalibrationOptions

    calibration = CalibrationOptions(samples_per_expert=8, heldout_samples_per_expert=3, crop=24, progress=False)
    result = export_tiny(coreml_bundles.root, "coreml-w8a8", calibration=calibration)  # 48x48 output: in profile
    assert result.verification.verified, result.verification.reason
    ops = main_ops(saved_spec(result.bundle.file("expert_0")))
    assert any(op.type == "quantize" for op in ops) and any(op.type.startswith("constexpr_") for op in ops)


@pytest.mark.macos
@macos
def test_compiled_models_are_cached_on_macos(coreml_bundles, tmp_path):
    from linearsr_edge.backends.coreml.options import CoreMLRuntimeOptions
    from linearsr_edge.runtime import SRRuntime

    options = CoreMLRuntimeOptions(cache_dir=tmp_path / "cache")
    SRRuntime.load(coreml_bundles["fp16"].bundle.path, backend="coreml", options=options).close()
    compiled = sorted(p.name for p in (tmp_path / "cache").iterdir())
    assert len(compiled) == 6 and all(p.endswith(".mlmodelc") for p in compiled)
    SRRuntime.load(coreml_bundles["fp16"].bundle.path, backend="coreml", options=options).close()
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == compiled


# -- FP16 evidence without a Mac ------------------------------------------------------------------
def test_half_precision_with_the_policy_stays_finite_and_within_the_fp16_gates(tmp_path):
    """PyTorch half precision with the model's precision policy, at the largest enumerated shape of the tiny
    profile (128x128 output, 4,096 tokens), against FP32: the evidence Core ML FP16 cannot give off macOS.
    (`benchmarks/coreml_export.py --part fp16` runs the demo at 1024x1024, 65,536 tokens.)"""
    import torch

    from linearsr_edge.checks import QualityThresholds
    from linearsr_edge.model.components import component_module
    from linearsr_edge.pipeline.imaging import read_image
    from linearsr_edge.pipeline.process import SampleOptions
    from linearsr_edge.precision import Precision
    from linearsr_edge.quality.parity import psnr, sqnr
    from linearsr_edge.reference import HalfPrecision, load_model_folder, reference_runtime
    from linearsr_edge.specs import component_specs
    from tests.helpers import tiny_model_folder, write_photo

    gates = QualityThresholds.default(Precision.FP16)
    folder = load_model_folder(tiny_model_folder(tmp_path / "model"))
    for spec in component_specs(folder.cfg, TINY_PROFILE, FACTOR)[: folder.cfg.num_experts]:
        feeds = spec.dummy_inputs("max", batch=1, seed=3, cond_len=2)
        args = [torch.from_numpy(feeds[n]) for n in spec.input_names]
        with torch.inference_mode():
            ref = component_module(folder, spec.name)(*args).numpy()
            half = HalfPrecision(component_module(load_model_folder(tmp_path / "model"), spec.name))(*args).numpy()
        assert np.isfinite(half).all(), spec.name
        assert gates.expert_sqnr_db <= sqnr(ref, half) < 120, spec.name  # < 120: it did run in half precision
    image = read_image(write_photo(tmp_path / "big.png", 64, 64))  # output 128x128, the largest enumerated
    sample = SampleOptions(seed=0)
    fp32 = folder.reference().upscale(image, sample).image
    fp16 = reference_runtime(folder.experts, folder.codec, folder.tags, half=True).upscale(image, sample).image
    assert gates.e2e_psnr_db <= psnr(fp32, fp16) < 120
    assert next(folder.experts[0].parameters()).dtype == torch.float32  # the reference was left in FP32


def test_export_command_refuses_int8_flags_for_fp16_and_a_size_outside_the_profile(tmp_path, capsys):
    from linearsr_edge.cli.export import main

    code = main(["--target", "coreml-fp16", "--coreml-palettize", "4", "--out", str(tmp_path / "a"), "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "--coreml-palettize does not apply to target coreml-fp16" in err
    code = main(["--target", "coreml-fp16", "--coreml-sizes", "4096x2160", "--out", str(tmp_path / "b"), "-q"])
    err = capsys.readouterr().err
    assert code != 0 and "4096x2160 outside the export profile" in err and "Traceback" not in err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_palettized_weights_are_4_bit_lookup_tables(coreml_bundles, tmp_path):
    from coremltools.proto import MIL_pb2

    from linearsr_edge.backends.coreml.export import CoreMLInt8Exporter
    from linearsr_edge.backends.coreml.options import CoreMLInt8Options
    from linearsr_edge.model.components import component_module
    from linearsr_edge.reference import load_model_folder

    fp16 = coreml_bundles["fp16"].bundle
    exporter = CoreMLInt8Exporter(CoreMLInt8Options(palettize_bits=4, weight_threshold=256))
    exporter.prepare([fp16.spec(n) for n in fp16.component_names()])
    module = component_module(load_model_folder(coreml_bundles.root / "model"), "expert_0")
    (package,) = exporter.export(module, fp16.spec("expert_0"), tmp_path)
    luts = [op for op in main_ops(saved_spec(package)) if op.type == "constexpr_lut_to_dense"]
    assert len(luts) > 10
    for op in luts:
        (indices,) = op.inputs["indices"].arguments
        assert MIL_pb2.DataType.Name(indices.value.type.tensorType.dataType) == "UINT4"
    report = exporter.report["expert_0"]
    assert report.weight_bytes < 0.4 * fp16.manifest.family("coreml").components["expert_0"].weight_bytes


# -- listed sizes: padding, tiling and gate crops are the shared size policy's (tests/pipeline/test_sizes.py) --
def test_runtime_refusals_name_the_problem(tiny_bundles):
    from linearsr_edge.backends.coreml.options import CoreMLRuntimeOptions
    from linearsr_edge.backends.coreml.session import plan_of
    from linearsr_edge.errors import BundleError

    with pytest.raises(ConfigError, match="Core ML schedules its own threads"):
        CoreMLRuntimeOptions(threads=2)
    with pytest.raises(ConfigError, match="compute_units must be one of ALL, CPU_AND_NE"):
        CoreMLRuntimeOptions(compute_units="NE")
    with pytest.raises(BundleError, match="no Core ML report for expert_0"):
        plan_of(tiny_bundles("onnx-fp32").bundle, "expert_0")


def test_every_package_says_what_it_is_in_its_metadata(coreml_bundles):
    """A package lifted out of the bundle (into an app) names its model, component, band, precision and export,
    read back by coremltools from the saved package."""
    bundle = coreml_bundles["fp16"].bundle
    meta = ct.models.MLModel(str(bundle.file("expert_3")), skip_model_load=True).user_defined_metadata
    assert meta["linearsr.component"] == "expert_3" and meta["linearsr.band"] == str(bundle.cfg.bands[3])
    assert meta["linearsr.precision"] == "fp16" and meta["linearsr.target"] == "coreml-fp16"
    assert meta["linearsr.export_id"] == bundle.manifest.export_id
    encoder = ct.models.MLModel(str(bundle.file("encoder")), skip_model_load=True).user_defined_metadata
    assert encoder["linearsr.component"] == "encoder" and "linearsr.band" not in encoder


def test_w8a8_calibrates_experts_on_their_band_rows_and_keeps_the_islands_in_float(tiny_cfg):
    """What coreml-w8a8 hands Core ML's activation calibration (which predicts, so it runs on a Mac): each expert's
    recorded rows cropped to an enumerated size, and the ops left in float: the FP32 islands and the activation
    products. The codec gets none (no band data)."""
    from linearsr_edge.backends.coreml.export import activation_calibration, convert
    from linearsr_edge.backends.coreml.options import CoreMLInt8Options
    from linearsr_edge.backends.coreml.plan import shape_plan
    from linearsr_edge.model.denoiser import Denoiser
    from linearsr_edge.specs import component_specs

    specs = component_specs(tiny_cfg, TINY_PROFILE, FACTOR)
    spec, options = specs[0], CoreMLInt8Options()
    plan = shape_plan(spec, options, FACTOR)
    model = convert(Denoiser(tiny_cfg).eval(), spec, options, plan)
    recorded = [spec.dummy_inputs("opt", batch=2, seed=s, height=20, width=30, cond_len=1) for s in range(2)]
    samples, keep = activation_calibration(model, spec, plan, recorded)
    assert len(samples) == 4 and {r["latent"].shape for r in samples} == {(1, tiny_cfg.latent_channels, 16, 24)}
    ops = {op.name: op.op_type for op in model._mil_program.functions["main"].operations}
    assert keep <= set(ops) and {"reduce_sum", "matmul"} <= {ops[n] for n in keep}
    assert not any(ops[n] in ("linear", "conv") for n in keep)  # the weight products are quantized
    assert activation_calibration(model, specs[-1], plan, recorded) == ([], set())  # the decoder: no band data
    tiny = [spec.dummy_inputs("opt", batch=1, height=4, width=4)]
    with pytest.raises(ExportError, match="every calibration sample is smaller than the smallest enumerated size"):
        activation_calibration(model, spec, plan, tiny)


def test_a_module_torch_export_or_core_ml_cannot_take_is_an_export_error(tiny_cfg):
    import torch

    from linearsr_edge.backends.coreml.export import convert, export_program
    from linearsr_edge.backends.coreml.options import CoreMLOptions
    from linearsr_edge.backends.coreml.plan import shape_plan
    from linearsr_edge.specs import component_specs

    class DataDependent(torch.nn.Module):  # a branch on the values: torch.export refuses it
        def forward(self, latent, lr_latent, sigma, cond):
            return latent * 2 if latent.sum() > 0 else latent

    class Spectral(torch.nn.Module):  # an FFT: no Core ML op for it
        def forward(self, latent, lr_latent, sigma, cond):
            return torch.fft.fft2(latent).real + lr_latent

    spec = component_specs(tiny_cfg, TINY_PROFILE, FACTOR)[0]
    with pytest.raises(ExportError, match="expert_0: torch.export failed on the spec's dynamic axes"):
        export_program(DataDependent(), spec)
    plan = shape_plan(spec, CoreMLOptions(shapes="range"), FACTOR)
    with pytest.raises(ExportError, match=r"expert_0: Core ML conversion failed \(range shapes\)"):
        convert(Spectral(), spec, CoreMLOptions(shapes="range"), plan)


def test_the_backend_reports_the_installed_coremltools():
    from linearsr_edge.pipeline.session import BACKENDS

    (info,) = [b for b in BACKENDS.entries() if b.name == "coreml"]
    assert info.version() == ct.__version__
