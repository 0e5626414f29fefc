"""ONNX export -> bundle -> ONNX Runtime, against PyTorch; the export traps; bundle integrity."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from linearsr_edge.bundle import Bundle
from linearsr_edge.errors import BundleError, ConfigError, ImageError, InputSpecError
from linearsr_edge.model.components import component_module
from linearsr_edge.pipeline.process import SampleOptions
from linearsr_edge.reference import load_model_folder
from linearsr_edge.specs import ComponentSpec, DimRange, TensorSpec
from tests.helpers import TINY_PROFILE

pytest.importorskip("onnxruntime", reason="requires onnxruntime (the onnx extra)")

from linearsr_edge.backends.onnx.export import ExportError, ONNXExporter, normalize_transposes
from linearsr_edge.build import ExportOptions, build_bundle
from linearsr_edge.runtime import SRRuntime


@pytest.fixture(scope="module")
def exported(tiny_bundles):
    result = tiny_bundles("onnx-fp32")
    root = tiny_bundles.root
    return result.bundle, result.rows, root / "model", root / "photo.png"


def test_bundle_layout_and_manifest(exported):
    bundle, rows, _, _ = exported
    names = sorted(p.name for p in bundle.path.iterdir())
    assert names == [
        "cond",
        "decoder.onnx",
        "encoder.onnx",
        "expert_0.onnx",
        "expert_1.onnx",
        "expert_2.onnx",
        "expert_3.onnx",
        "golden.npz",
        "manifest.json",
    ]
    m = json.loads((bundle.path / "manifest.json").read_text())
    assert m["schema_version"] == 2 and m["target"] == "onnx-fp32" and m["precision"] == "fp32"
    assert m["bands"][0] == [None, 0.5] and len(m["files"]) == 8  # 6 components, tags, golden set
    assert m["tags"]["names"] == ["portrait", "animal", "<null>"]
    v = bundle.verification
    assert v.verified is True and v.backend == "onnxruntime" and v.backend_version
    sqnr = [r for r in v.rows if r.metric == "sqnr_db"]
    assert len(sqnr) == 4 and all(r.value > 60 for r in sqnr)
    import onnx

    meta = {p.key: p.value for p in onnx.load(str(bundle.file("expert_2"))).metadata_props}
    assert meta["linearsr.component"] == "expert_2" and meta["linearsr.band"] == str(bundle.cfg.bands[2])
    assert meta["linearsr.precision"] == "fp32" and meta["linearsr.export_id"] == bundle.manifest.export_id
    assert all(r.passed for r in rows)
    assert {r.metric for r in rows} == {"max_abs", "sqnr_db", "psnr_db"}


@pytest.mark.parametrize(("batch", "h", "w", "length"), [(1, 8, 8, 1), (3, 12, 20, 3), (2, 64, 40, 8), (1, 9, 31, 2)])
def test_each_expert_matches_pytorch(exported, batch, h, w, length):
    bundle, _, model, _ = exported
    folder = load_model_folder(model)
    rt = SRRuntime.load(bundle.path, backend="onnxruntime")
    for k in range(4):
        name = f"expert_{k}"
        spec = bundle.spec(name)
        feeds = spec.dummy_inputs("opt", batch=batch, height=h, width=w, cond_len=length, seed=k)
        got = rt.run_component(name, feeds)["velocity"]
        with torch.no_grad():
            ref = component_module(folder, name)(*(torch.from_numpy(feeds[n]) for n in spec.input_names)).numpy()
        assert np.abs(got - ref).max() <= 1e-4


def test_end_to_end_psnr_against_reference(exported):
    bundle, _, model, photo = exported
    from linearsr_edge.pipeline.imaging import read_image
    from linearsr_edge.quality.parity import psnr

    image = read_image(photo)
    for tags in ((), ("animal",)):
        opts = SampleOptions(seed=5, tags=tags)
        ref = load_model_folder(model).reference().upscale(image, opts).image
        got = SRRuntime.load(bundle.path).upscale(image, opts).image
        assert psnr(ref, got, peak=255.0) >= 60.0


def test_bad_images_and_sizes_outside_the_profile(exported):
    rt = SRRuntime.load(exported[0].path)
    with pytest.raises(ImageError, match="got shape"):
        rt.upscale(np.zeros((10, 10, 5), np.uint8))
    with pytest.raises(ImageError, match="uint8"):
        rt.upscale(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(InputSpecError, match="outside the bundle's profile.*input sides in \\[8, 64\\]"):
        rt.upscale(np.zeros((80, 20, 3), np.uint8), tiling=False)  # by default a larger frame is tiled
    with pytest.raises(InputSpecError, match="outside the bundle's profile"):
        rt.upscale(np.zeros((4, 20, 3), np.uint8))


def _copy(bundle, tmp_path):
    import shutil

    dst = tmp_path / "copy"
    shutil.copytree(bundle.path, dst)
    return dst


def test_tampered_missing_and_wrong_schema(exported, tmp_path):
    path = _copy(exported[0], tmp_path)
    data = bytearray((path / "expert_2.onnx").read_bytes())
    data[-10] ^= 0xFF
    (path / "expert_2.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="expert_2.onnx does not match its sha256"):
        SRRuntime.load(path)
    (path / "expert_2.onnx").unlink()
    with pytest.raises(BundleError, match="expert_2.onnx is missing"):
        Bundle.load(path)
    manifest = json.loads((path / "manifest.json").read_text())
    manifest["schema_version"] = 99
    (path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="schema version 99 is not supported"):
        Bundle.load(path)
    (path / "manifest.json").write_text("{")
    with pytest.raises(BundleError, match="not valid JSON"):
        Bundle.load(path)
    (path / "manifest.json").unlink()
    with pytest.raises(BundleError, match="manifest.json is missing"):
        Bundle.load(path)
    with pytest.raises(BundleError, match="not a folder"):
        Bundle.load(tmp_path / "nothing")


def test_non_empty_out_is_refused_without_overwrite(exported, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    opts = ExportOptions(target="onnx-fp32", out=out, checkpoint=exported[2], profile=TINY_PROFILE, progress=False)
    with pytest.raises(BundleError, match="not empty; pass --overwrite"):
        build_bundle(opts)
    assert (out / "keep.txt").read_text() == "mine"


def test_unknown_target_suggests_a_near_name():
    from linearsr_edge.targets import get_target

    with pytest.raises(ConfigError, match="did you mean 'onnx-fp32'"):
        get_target("onnx-fp23")
    from linearsr_edge.pipeline.session import get_backend

    with pytest.raises(ConfigError, match="did you mean 'onnxruntime'"):
        get_backend("onnxruntim")


# ---- the export traps -----------------------------------------------------------------------------


def _toy_spec(name="toy"):
    x = TensorSpec("x", ("batch", 4, "height", "width"))
    return ComponentSpec(
        name,
        "toy",
        (x,),
        (TensorSpec("y", ("batch", 4, "height", "width")),),
        {"batch": DimRange(1, 1, 4), "height": DimRange(2, 4, 16), "width": DimRange(2, 4, 16)},
        1e-4,
    )


class _TinyEpsNorm(torch.nn.Module):
    """x / (sum relu(x) + eps): zero where every value is negative."""

    def __init__(self, eps: float) -> None:
        super().__init__()
        self.eps = eps

    def forward(self, x):
        r = torch.relu(x)
        return r / (r.sum(dim=1, keepdim=True) + self.eps)


class _LiteralEps(torch.nn.Module):
    def forward(self, x):
        r = torch.relu(x)
        return r / (r.sum(dim=1, keepdim=True) + 1e-15)


def test_small_eps_attribute_is_raised_for_export(tmp_path):
    module = _TinyEpsNorm(1e-15)
    files = ONNXExporter().export(module, _toy_spec(), tmp_path)
    assert module.eps == 1e-15  # the caller's module is untouched
    import onnxruntime as ort

    x = -np.ones((1, 4, 4, 4), np.float32)
    x[0, :, 0, 0] = [1, 2, 3, 4]
    y = ort.InferenceSession(str(files[0]), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.isfinite(y).all()
    assert np.allclose(y, module(torch.from_numpy(x)).numpy(), atol=1e-5)


def test_small_literal_eps_is_caught_by_name(tmp_path):
    with pytest.raises(ExportError, match="eps below 1e-8"):
        ONNXExporter().export(_LiteralEps(), _toy_spec(), tmp_path)


def test_batch_axis_stays_dynamic(exported):
    import onnx

    model = onnx.load(str(exported[0].file("expert_0")))
    dims = {i.name: [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim] for i in model.graph.input}
    assert dims["latent"] == ["batch", 12, "height", "width"] and dims["sigma"] == ["batch"]
    assert dims["cond"] == ["batch", "cond_len", 8]


def test_negative_transpose_perm_is_normalised(tmp_path):
    onnx = pytest.importorskip("onnx")
    import onnxruntime as ort
    from onnx import TensorProto, helper

    node = helper.make_node("Transpose", ["x"], ["y"], perm=[0, -1, 1, 2])
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 3, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 2, 3])],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    with pytest.raises(Exception):  # noqa: B017  ORT refuses negative perms (its exception types vary)
        ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    assert normalize_transposes(model) == 1
    onnx.checker.check_model(model)
    x = np.arange(24, dtype=np.float32).reshape(1, 2, 3, 4)
    y = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, {"x": x})[0]
    assert np.array_equal(y, np.transpose(x, (0, 3, 1, 2)))


def test_dcae_encoder_and_decoder_match_pytorch(tmp_path):
    pytest.importorskip("diffusers", reason="requires diffusers (the dcae extra)")
    from linearsr_edge.backends.onnx.session import ORTSession
    from linearsr_edge.model.codec import DCAECodec
    from linearsr_edge.model.components import DecoderModule, EncoderModule
    from linearsr_edge.specs import Profile, codec_specs
    from tests.conftest import tiny_config
    from tests.model.dcae import tiny_dcae_folder

    codec = DCAECodec.from_pretrained(tiny_dcae_folder(tmp_path / "dcae"))
    enc, dec = codec_specs(tiny_config(latent_channels=4), Profile((32, 32), (64, 96), (256, 192)), codec.factor)
    for module, spec in ((EncoderModule(codec), enc), (DecoderModule(codec), dec)):
        session = ORTSession(ONNXExporter().export(module, spec, tmp_path)[0], spec)
        for which, batch, fixed in (
            ("min", 1, {}),
            ("opt", 3, {}),
            ("max", 1, {}),
            ("opt", 2, {"img_height": 160, "img_width": 32, "height": 40, "width": 8}),
        ):
            feeds = spec.dummy_inputs(which, batch=batch, seed=batch, **fixed)
            with torch.no_grad():
                ref = module(*(torch.from_numpy(feeds[n]) for n in spec.input_names)).numpy()
            got = session.run(feeds)[spec.output_names[0]]
            assert got.shape == ref.shape
            assert np.abs(got - ref).max() <= 1e-4, (spec.name, which)


def test_exact_components_and_inf_are_stored_as_valid_json(exported):
    rows = json.loads((exported[0].path / "manifest.json").read_text())["verification"]["rows"]
    enc = [r for r in rows if r["component"] == "encoder"]
    assert enc and all(r["metric"] == "max_abs" and r["value"] == 0 for r in enc)  # pixel unshuffle is exact
    assert not any(isinstance(r["value"], float) and math.isinf(r["value"]) for r in rows)  # valid JSON
    assert any(r["value"] == "inf" for r in rows)  # identical outputs, as the typed manifest writes them


def test_upscale_cli_runs_a_bundle(exported, tmp_path, capsys):
    from linearsr_edge.cli.upscale import main

    bundle, _, _, photo = exported
    for backend in ("auto", "onnxruntime"):
        out = tmp_path / f"{backend}.png"
        assert main([str(photo), "-o", str(out), "--bundle", str(bundle.path), "--backend", backend, "-q"]) == 0
        assert out.is_file()
    assert main([str(photo), "-o", str(tmp_path / "x.png"), "--bundle", str(tmp_path / "none")]) == 2
    assert "bundle not found" in capsys.readouterr().err


def test_parity_images_are_cropped_to_the_profile(exported):
    rt = SRRuntime.load(exported[0].path)
    assert rt.input_limits() == ((8, 64), (8, 64))  # outputs 16..128, upscale 2
    img = np.zeros((100, 30, 3), np.uint8)
    assert rt.crop_to_profile(img).shape == (64, 30, 3)
    small = np.zeros((10, 12, 3), np.uint8)
    assert rt.crop_to_profile(small) is small


def test_external_data_past_the_protobuf_limit(tmp_path, monkeypatch, exported):
    """The 2 GB switch, exercised on a small model by lowering the limit (the paper-scale run is in
    benchmarks/scale_onnx.py)."""
    import linearsr_edge.backends.onnx.export as onnx_export
    from linearsr_edge.backends.onnx.session import ORTSession

    bundle, _, model, _ = exported
    folder = load_model_folder(model)
    monkeypatch.setattr(onnx_export, "PROTOBUF_LIMIT", (64 << 20) + 1000)
    spec = bundle.spec("expert_0")
    files = ONNXExporter().export(component_module(folder, "expert_0"), spec, tmp_path)
    assert [f.name for f in files] == ["expert_0.onnx", "expert_0.onnx.data"]
    assert files[1].stat().st_size > 100_000  # the weights moved out of the protobuf
    feeds = spec.dummy_inputs("opt", batch=2)
    with torch.no_grad():
        ref = component_module(folder, "expert_0")(*(torch.from_numpy(feeds[n]) for n in spec.input_names)).numpy()
    assert np.abs(ORTSession(files[0], spec).run(feeds)["velocity"] - ref).max() <= 1e-4
