"""onnx-fp16 and onnx-int8: FP32 islands, quality gates, calibration record, failure reports."""

from __future__ import annotations

import collections

import numpy as np
import pytest

from linearsr_edge.checks import QualityThresholds
from linearsr_edge.errors import QualityGateError
from linearsr_edge.specs import Profile
from tests.helpers import export_tiny

onnx = pytest.importorskip("onnx", reason="requires onnx (the onnx extra)")
pytest.importorskip("onnxruntime", reason="requires onnxruntime (the onnx extra)")

from linearsr_edge.backends.onnx.options import OnnxInt8Options  # noqa: E402
from linearsr_edge.backends.onnx.precision import fp32_island_nodes  # noqa: E402

# >= 16k tokens at the largest profile size: 256 x 256 output / codec factor 2 = 128 x 128 latent
BIG_PROFILE = Profile(min_hw=(16, 16), opt_hw=(32, 48), max_hw=(256, 256), batch=(1, 1, 2), cond_len=(1, 2, 8))


@pytest.fixture(scope="module")
def setup(tiny_bundles):
    return tiny_bundles.root, tiny_bundles.root / "model"


def _export(setup, target, name=None, **kw):
    result = export_tiny(setup[0], target, name=name, **kw)
    return result.bundle, result.rows


@pytest.fixture(scope="module")
def int8(tiny_bundles):
    result = tiny_bundles("onnx-int8")
    return result.bundle, result.rows


def test_fp16_passes_gates_without_overflow_at_16k_tokens(setup):
    bundle, rows = _export(setup, "onnx-fp16", name="fp16-big", profile=BIG_PROFILE)
    assert all(r.passed for r in rows) and len(rows) == 9  # per expert SQNR and step SNR, then the pipeline
    probe = bundle.manifest.family("onnx").precision_probe
    assert probe.tokens >= 16384 and probe.finite and 0 < probe.largest_fp16_tensor < probe.limit
    assert len(probe.per_component) == 4 and probe.tensors_checked > 50
    model = onnx.load(str(bundle.file("expert_1")))
    types = collections.Counter(i.data_type for i in model.graph.initializer)
    assert types[onnx.TensorProto.FLOAT16] > types[onnx.TensorProto.FLOAT]  # weights are FP16
    assert [i.type.tensor_type.elem_type for i in model.graph.input] == [onnx.TensorProto.FLOAT] * 4  # FP32 I/O
    q = bundle.verification
    assert q.verified and q.thresholds == QualityThresholds(40.0, 45.0, 35.0)


def test_int8_is_qdq_on_weight_ops_only_and_records_calibration(int8):
    bundle, rows = int8
    assert all(r.passed for r in rows)
    model = onnx.load(str(bundle.file("expert_0")))
    ops = collections.Counter(n.op_type for n in model.graph.node)
    assert ops["QuantizeLinear"] > 0 and ops["DequantizeLinear"] > ops["QuantizeLinear"]
    weights = {i.name for i in model.graph.initializer}
    weight_dq = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in weights}
    quantized = {n.op_type for n in model.graph.node if any(i in weight_dq for i in n.input)}
    assert quantized == {"MatMul", "Gemm", "Conv"}, quantized  # no Mul/Add (modulation, gates)
    islands = set(fp32_island_nodes(model))
    assert len(islands) > 10
    dequantized = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear"}
    assert not [n.name for n in model.graph.node if n.name in islands and set(n.input) & dequantized]
    cal = bundle.manifest.calibration
    assert cal.mode == "band" and len(cal.sha256) == 64 and cal.samples_per_expert["3"] == 8
    assert bundle.manifest.target_options["activation_type"] == "uint8"
    assert bundle.spec("encoder").name == "encoder"  # codec stays FP32
    enc = onnx.load(str(bundle.file("encoder")))
    assert not any(n.op_type == "QuantizeLinear" for n in enc.graph.node)


def test_policy_is_honoured(setup):
    bundle, _ = _export(
        setup,
        "onnx-int8",
        name="int8-mul",
        target_options=OnnxInt8Options(op_types=("MatMul", "Mul")),
        thresholds=QualityThresholds(0.0, 0.0, 0.0),
    )
    model = onnx.load(str(bundle.file("expert_0")))
    consumers = collections.defaultdict(set)
    for n in model.graph.node:
        for i in n.input:
            consumers[i].add(n.op_type)
    quantized = set().union(*(consumers[n.output[0]] for n in model.graph.node if n.op_type == "DequantizeLinear"))
    assert "Mul" in quantized
    weights = {i.name for i in model.graph.initializer}
    weight_dq = {n.output[0] for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in weights}
    assert not any(i in weight_dq for n in model.graph.node if n.op_type == "Conv" for i in n.input[1:2])


def test_missed_gates_name_the_experts_and_write_nothing(setup):
    root, _ = setup
    with pytest.raises(QualityGateError) as info:
        _export(setup, "onnx-int8", name="strict", thresholds=QualityThresholds(90.0, 90.0, 90.0))
    msg = str(info.value)
    assert "expert_0" in msg and "expert_3" in msg and "pipeline" in msg and "SQNR" in msg
    assert not (root / "strict").exists()


def test_islands_cover_the_linear_attention(int8):
    bundle, _ = int8
    import tempfile
    from pathlib import Path

    from linearsr_edge.backends.onnx.export import ONNXExporter
    from linearsr_edge.model.components import component_module
    from linearsr_edge.reference import load_model_folder

    folder = load_model_folder(bundle.manifest.source.path)
    with tempfile.TemporaryDirectory() as tmp:
        path = ONNXExporter().export(component_module(folder, "expert_0"), bundle.spec("expert_0"), Path(tmp))[0]
        model = onnx.load(str(path))
    island = set(fp32_island_nodes(model))
    by_op = collections.Counter(n.op_type for n in model.graph.node if n.name in island)
    depth = folder.cfg.depth
    assert by_op["ReduceSum"] >= depth and by_op["Div"] >= depth
    assert by_op["MatMul"] >= 3 * depth  # K^T V, Q (K^T V), Q K-sum per block (+ cross-attention)
    assert by_op["Transpose"] >= depth  # K-sum's transpose carries the token sum into Q K-sum
    assert by_op["Sin"] == by_op["Cos"] == 1 and by_op["Mul"] >= 1  # timestep phases and their argument
    weights = {i.name for i in model.graph.initializer}
    assert not any(
        n.name in island
        for n in model.graph.node
        if n.op_type in ("MatMul", "Gemm") and any(i in weights for i in n.input)
    )


def test_int8_output_stays_close_to_the_reference(int8, setup):
    bundle, _ = int8
    from linearsr_edge.quality.parity import psnr
    from linearsr_edge.reference import load_model_folder
    from linearsr_edge.runtime import SRRuntime

    rt = SRRuntime.load(bundle.path)
    ref = load_model_folder(setup[1]).reference()
    img = np.random.default_rng(3).integers(0, 256, (16, 20, 3), dtype=np.uint8)
    got, want = rt.upscale(img).image, ref.upscale(img).image
    assert 35.0 <= psnr(want, got, peak=255.0) < 90.0  # close, and not the reference itself


def test_range_probe_refuses_an_fp16_tensor_near_the_limit(tmp_path):
    """A tensor outside the islands that reaches 1/8 of the FP16 maximum at the largest size is refused,
    naming the tensor; the same graph at a smaller scale passes."""
    import torch

    from linearsr_edge.backends.onnx.export import ONNXExporter
    from linearsr_edge.backends.onnx.precision import fp16_range_probe
    from linearsr_edge.errors import QualityGateError
    from tests.backends.onnx.test_export import _toy_spec

    class Scaled(torch.nn.Module):
        def __init__(self, scale: float) -> None:
            super().__init__()
            self.scale = scale

        def forward(self, x):
            return torch.tanh(x * self.scale) * 2.0  # x * scale is FP16 in the converted graph

    for scale, ok in ((100.0, True), (5000.0, False)):
        (tmp_path / f"s{int(scale)}").mkdir()
        path = ONNXExporter().export(Scaled(scale), _toy_spec(), tmp_path / f"s{int(scale)}")[0]
        model = onnx.load(str(path))
        if ok:
            assert fp16_range_probe(model, _toy_spec(), fp32_island_nodes(model))["largest_fp16_tensor"] < 8188
        else:
            with pytest.raises(QualityGateError, match="above the FP16 limit 65504 / 8"):
                fp16_range_probe(model, _toy_spec(), fp32_island_nodes(model))


def test_islands_reading_a_shared_qdq_pair_get_the_fp32_tensor_back():
    """ORT shares one Q/DQ pair among every reader of a tensor: an island MatMul beside a quantized one
    would read fake-quantized values. The pass rewires it to the FP32 tensor and drops unread pairs."""
    from onnx import TensorProto, helper, numpy_helper

    from linearsr_edge.backends.onnx.precision import restrict_dequantized_consumers

    w = numpy_helper.from_array(np.ones((4, 4), np.float32), "w")
    scale = numpy_helper.from_array(np.array(0.1, np.float32), "s")
    zero = numpy_helper.from_array(np.array(0, np.uint8), "z")
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], name="q"),
        helper.make_node("DequantizeLinear", ["xq", "s", "z"], ["xdq"], name="dq"),
        helper.make_node("MatMul", ["xdq", "w"], ["y"], name="quantized"),  # a weight MatMul keeps its DQ
        helper.make_node("Transpose", ["xdq"], ["xt"], name="t", perm=[1, 0]),
        helper.make_node("MatMul", ["xt", "xdq"], ["gram"], name="island"),  # activation x activation
    ]
    graph = helper.make_graph(
        nodes,
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 4])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, [4, 4]) for n in ("y", "gram")],
        [w, scale, zero],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    islands = set(fp32_island_nodes(model))
    assert islands == {"island"}
    assert restrict_dequantized_consumers(model, lambda n: n.name in islands) == 1
    by_name = {n.name: n for n in model.graph.node}
    assert list(by_name["island"].input) == ["xt", "x"]  # reads no DQ output any more
    assert list(by_name["t"].input) == ["xdq"]  # layout ops *into* an island are not followed (see the note)
    assert list(by_name["quantized"].input) == ["xdq", "w"]  # still reads the pair, which therefore stays
    restrict_dequantized_consumers(model, lambda n: n.op_type != "QuantizeLinear")  # accurate mode: all read x
    assert not [n for n in model.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
