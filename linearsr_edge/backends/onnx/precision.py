"""FP16 and calibrated INT8 variants of the ONNX target.

Both start from the FP32 graph of `ONNXExporter` and keep the precision policy's *FP32 islands*
(`linearsr_edge.islands`): the linear attention's reductions over tokens, every division and the
eps Add in front of it, and the RMS-norm arithmetic.
"""

from __future__ import annotations

import logging
import math
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from linearsr_edge.backends.onnx.export import ONNXExporter, save_onnx
from linearsr_edge.backends.onnx.options import OnnxInt8Options
from linearsr_edge.backends.onnx.plan import OnnxSection, PrecisionProbe, ProbeRecord
from linearsr_edge.errors import ExportError, QualityGateError
from linearsr_edge.islands import GraphNode, fp32_islands
from linearsr_edge.specs import ComponentSpec
from linearsr_edge.targets import expert_calibration

log = logging.getLogger(__name__)


def onnx_graph_nodes(model) -> list[GraphNode]:
    """The ONNX graph as `GraphNode` rows for the shared island rule (ONNX op types need no mapping)."""
    return [GraphNode(n.name, n.op_type, tuple(n.input), tuple(n.output)) for n in model.graph.node]


def fp32_island_nodes(model) -> list[str]:
    """Names of the ONNX nodes that must stay FP32 (`linearsr_edge.islands.fp32_islands`)."""
    return fp32_islands(onnx_graph_nodes(model), {i.name for i in model.graph.initializer})


def convert_fp16(model, islands: Sequence[str] | None = None):
    """FP16 graph with FP32 islands and FP32 inputs/outputs."""
    from onnxconverter_common import float16

    block = fp32_island_nodes(model) if islands is None else list(islands)
    # Stale value_info (types recorded at FP32) makes the converter emit casts whose declared types
    # disagree with their producers; drop it and let shape inference re-derive it.
    del model.graph.value_info[:]
    return float16.convert_float_to_float16(model, keep_io_types=True, node_block_list=block)


FP16_MAX = 65504.0
FP16_HEADROOM = 8.0  # every FP16 tensor must stay this far below the FP16 maximum


def fp16_tensors(model, islands: Sequence[str]) -> list[str]:
    """The float tensors that the FP16 graph stores in FP16: graph inputs, outputs of non-island nodes,
    and island outputs read by a non-island node (the cast back to FP16 happens there)."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    floats = {
        v.name
        for v in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output)
        if v.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    }
    island = set(islands)
    readers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            readers.setdefault(name, []).append(node)
    out = [v.name for v in model.graph.input if v.name in floats]
    for node in model.graph.node:
        if node.op_type == "Constant":
            continue
        for name in node.output:
            if name not in floats:
                continue
            if node.name not in island or any(r.name not in island for r in readers.get(name, [])):
                out.append(name)
    return out


def fp16_range_probe(model, spec: ComponentSpec, islands: Sequence[str]) -> dict:
    """Prove, with one FP32 run at the largest profile size, that no FP16 tensor of the converted graph
    overflows: every tensor outside the FP32 islands stays below 65504 / `FP16_HEADROOM`.

    The graph is instrumented with ``ReduceMax(t)`` and ``ReduceMin(t)`` per tensor (scalar outputs,
    no temporaries) and run by ONNX Runtime in FP32; weights are checked directly. FP16
    *precision* is the quality gates' job (SQNR / PSNR against the FP32 reference).
    """
    import onnx
    from onnx import helper, numpy_helper

    from linearsr_edge.backends.onnx.options import OrtOptions
    from linearsr_edge.backends.onnx.session import ORTSession
    from linearsr_edge.specs import TensorSpec

    probe = onnx.ModelProto()
    probe.CopyFrom(model)
    del probe.graph.output[:]
    names = fp16_tensors(model, islands)
    index = {name: i for i, name in enumerate(names)}

    def reduce(name: str) -> list:  # max and min, no full-size temporary (Abs would allocate one per tensor)
        i = index[name]
        for kind in ("max", "min"):
            probe.graph.output.append(helper.make_tensor_value_info(f"__{kind}{i}", onnx.TensorProto.FLOAT, []))
        return [
            helper.make_node("ReduceMax", [name], [f"__max{i}"], keepdims=0),
            helper.make_node("ReduceMin", [name], [f"__min{i}"], keepdims=0),
        ]

    # Each reduction sits right behind its producer, so that no activation outlives its consumers.
    nodes = [n for name in model.graph.input if name.name in index for n in reduce(name.name)]
    for node in model.graph.node:
        nodes.append(node)
        nodes += [n for out in node.output if out in index for n in reduce(out)]
    del probe.graph.node[:]
    probe.graph.node.extend(nodes)
    feeds = spec.dummy_inputs("max", batch=1, seed=3)
    outputs = tuple(TensorSpec(f"__{kind}{i}", ()) for i in range(len(names)) for kind in ("max", "min"))
    probe_spec = ComponentSpec(spec.name, spec.kind, spec.inputs, outputs, spec.dims, spec.tolerance)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "probe.onnx"
        save_onnx(probe, path)
        values = ORTSession(path, probe_spec, OrtOptions(execution_order="priority")).run(feeds)
    largest, where = 0.0, ""
    for i, name in enumerate(names):
        v = max(float(values[f"__max{i}"]), -float(values[f"__min{i}"]))
        if not v < largest:  # NaN counts as the largest
            largest, where = v, name
    weight = max(
        (
            float(np.abs(numpy_helper.to_array(t)).max(initial=0.0))
            for t in model.graph.initializer
            if t.data_type == onnx.TensorProto.FLOAT
        ),
        default=0.0,
    )
    first = feeds[spec.input_names[0]].shape  # [B, C, h, w]: tokens are h * w
    result = {
        "component": spec.name,
        "tokens": int(np.prod(first[2:])),
        "tensors_checked": len(names),
        "largest_fp16_tensor": largest,
        "largest_at": where,
        "largest_weight": weight,
        "limit": FP16_MAX / FP16_HEADROOM,
        "finite": math.isfinite(largest),
    }
    if not (largest < result["limit"] and weight < FP16_MAX):
        raise QualityGateError(
            f"FP16 range probe: {spec.name} reaches {largest:.4g} at {where!r} (largest weight {weight:.4g}) at "
            f"{result['tokens']} tokens, above the FP16 limit {FP16_MAX:g} / {FP16_HEADROOM:g}; the precision "
            "policy does not hold at this resolution: lower --max-resolution or keep this model in FP32"
        )
    return result


class ONNXFP16Exporter(ONNXExporter):
    """FP16 with FP32 islands; every expert's FP16 tensors are range-checked at the largest profile size."""

    def __init__(self, options=None) -> None:
        super().__init__(options)
        self.probes: list[ProbeRecord] = []

    def sections(self) -> dict:
        if not self.probes:
            return {}
        worst = max(self.probes, key=lambda p: p.largest_fp16_tensor)
        return {"onnx": OnnxSection(PrecisionProbe(**vars(worst), per_component=tuple(self.probes)))}

    def export(
        self,
        module: torch.nn.Module,
        spec: ComponentSpec,
        folder: Path,
        calibration: Sequence[dict[str, np.ndarray]] | None = None,
    ) -> list[Path]:
        import onnx

        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            fp32 = super().export(module, spec, Path(tmp))[0]
            model = onnx.load(str(fp32))
        islands = fp32_island_nodes(model)
        if spec.kind == "expert":
            self.probes.append(ProbeRecord(**fp16_range_probe(model, spec, islands)))
        try:
            converted = convert_fp16(model, islands)
        except Exception as exc:  # the converter raises bare ValueError/KeyError on odd graphs
            raise ExportError(f"{spec.name}: FP16 conversion failed: {exc}") from None
        return save_onnx(converted, folder / f"{spec.name}{self.suffix}", self.metadata_for(spec))


def quantize_int8(
    src: Path,
    dst: Path,
    feeds: Sequence[dict[str, np.ndarray]],
    policy: OnnxInt8Options,
    islands: set[str] | None = None,
) -> None:
    """Static QDQ quantization of ``src`` calibrated on ``feeds`` (this component's own data).

    ``islands``: the FP32 island nodes of ``src`` (found here when not given)."""
    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(feeds)

        def get_next(self):
            return next(self._it, None)

    qtype = {"uint8": QuantType.QUInt8, "int8": QuantType.QInt8}
    method = {
        "minmax": CalibrationMethod.MinMax,
        "entropy": CalibrationMethod.Entropy,
        "percentile": CalibrationMethod.Percentile,
    }[policy.method]
    exclude = list(policy.exclude_nodes)
    if policy.keep_islands_fp32:
        exclude += (
            sorted(islands) if islands is not None else fp32_island_nodes(onnx.load(str(src), load_external_data=False))
        )
    quantize_static(
        str(src),
        str(dst),
        Reader(),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=list(policy.op_types),
        per_channel=policy.per_channel,
        reduce_range=policy.reduce_range,
        activation_type=qtype[policy.activation_type],
        weight_type=qtype[policy.weight_type],
        nodes_to_exclude=exclude,
        calibrate_method=method,
        extra_options={
            "ActivationSymmetric": policy.activation_type == "int8",
            "WeightSymmetric": True,
            "QuantizeBias": policy.quantize_bias,
            **({} if policy.fuse_outputs else {"OpTypesToExcludeOutputQuantization": list(policy.op_types)}),
        },
    )


def restrict_dequantized_consumers(model, rewire: Callable[[Any], bool]) -> int:
    """Give the nodes selected by ``rewire`` the FP32 tensor instead of its quantize-dequantize copy.

    ORT shares one Q/DQ pair among all consumers of a tensor, so an FP32 island (or, in accurate
    mode, the residual Add beside a quantized MatMul) would read fake-quantized values. Q/DQ pairs
    left without readers are removed. Returns the number of inputs rewired.
    """
    producer = {o: n for n in model.graph.node for o in n.output}
    original = {}
    for dq in (n for n in model.graph.node if n.op_type == "DequantizeLinear"):
        q = producer.get(dq.input[0])
        if q is not None and q.op_type == "QuantizeLinear":  # an activation's pair (weights have DQ only)
            original[dq.output[0]] = q.input[0]
    rewired = 0
    for node in model.graph.node:
        if node.op_type in ("QuantizeLinear", "DequantizeLinear") or not rewire(node):
            continue
        for i, name in enumerate(node.input):
            if name in original:
                node.input[i] = original[name]
                rewired += 1
    _prune_unread(model, ("DequantizeLinear", "QuantizeLinear"))
    return rewired


def _prune_unread(model, op_types: tuple[str, ...]) -> None:
    """Remove nodes of ``op_types`` whose outputs nothing reads (repeatedly: DQ first, then its Q)."""
    while True:
        read = {i for n in model.graph.node for i in n.input} | {o.name for o in model.graph.output}
        dead = [n for n in model.graph.node if n.op_type in op_types and not any(o in read for o in n.output)]
        if not dead:
            return
        for n in dead:
            model.graph.node.remove(n)


class ONNXInt8Exporter(ONNXExporter):
    """Experts: QDQ INT8 calibrated on their own band. Encoder/decoder: FP32 (no band data)."""

    def __init__(self, options: OnnxInt8Options | None = None) -> None:
        super().__init__(options or OnnxInt8Options())
        self.policy: OnnxInt8Options = self.options

    def export(
        self,
        module: torch.nn.Module,
        spec: ComponentSpec,
        folder: Path,
        calibration: Sequence[dict[str, np.ndarray]] | None = None,
    ) -> list[Path]:
        calibration = expert_calibration(spec, calibration)
        if calibration is None:
            return super().export(module, spec, folder)
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            fp32 = super().export(module, spec, Path(tmp))[0]
            qdq = Path(tmp) / "qdq.onnx"
            import onnx

            islands = set(fp32_island_nodes(onnx.load(str(fp32), load_external_data=False)))
            if not self.policy.keep_islands_fp32:
                islands = set()
            quantize_int8(fp32, qdq, calibration, self.policy, islands)
            model = onnx.load(str(qdq))
        quantized = set(self.policy.op_types)
        if self.policy.fuse_outputs:  # ORT's fused graph; only the FP32 islands get their FP32 inputs back
            restrict_dequantized_consumers(model, lambda n: n.name in islands)
        else:
            restrict_dequantized_consumers(model, lambda n: n.op_type not in quantized or n.name in islands)
        return save_onnx(model, folder / f"{spec.name}{self.suffix}", self.metadata_for(spec))
