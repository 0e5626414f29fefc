"""FP16 and calibrated INT8 variants of the ONNX target.

Both start from the FP32 graph of `ONNXExporter` and keep the same *FP32 islands*: the linear
attention's reductions over tokens (activation x activation MatMuls, ReduceSum), every division
and the eps Add in front of it, and the RMS-norm arithmetic. In FP16 those overflow from about a
thousand tokens; in INT8 an activation x activation product has no fixed scale worth calibrating.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from linearsr_edge.errors import ConfigError
from linearsr_edge.exporters.base import TargetInfo, register_target
from linearsr_edge.exporters.onnx import ExportError, ONNXExporter, save_onnx
from linearsr_edge.precision import Precision
from linearsr_edge.specs import ComponentSpec

log = logging.getLogger(__name__)

_ISLAND_OPS = {"ReduceSum", "ReduceMean", "Div", "Pow", "Sqrt", "Reciprocal", "Softmax"}
_EPS_CONSUMERS = {"Div", "Sqrt", "Reciprocal"}


def fp32_island_nodes(model) -> list[str]:
    """Names of the nodes that must stay FP32 (see the module docstring)."""
    weights = {i.name for i in model.graph.initializer}
    weights |= {n.output[0] for n in model.graph.node if n.op_type == "Constant"}
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    island = []
    for node in model.graph.node:
        if node.op_type == "MatMul" and not any(i in weights for i in node.input):
            island.append(node.name)  # activation x activation: K^T V, Q (K^T V), Q K-sum, QK^T, attn V
        elif node.op_type in _ISLAND_OPS:
            island.append(node.name)
        elif node.op_type == "Add" and any(c.op_type in _EPS_CONSUMERS for c in consumers.get(node.output[0], [])):
            island.append(node.name)  # the eps in front of a division / square root
    return island


def convert_fp16(model):
    """FP16 graph with FP32 islands and FP32 inputs/outputs."""
    from onnxconverter_common import float16

    block = fp32_island_nodes(model)
    # Stale value_info (types recorded at FP32) makes the converter emit casts whose declared types
    # disagree with their producers; drop it and let shape inference re-derive it.
    del model.graph.value_info[:]
    return float16.convert_float_to_float16(model, keep_io_types=True, node_block_list=block)


class ONNXFP16Exporter(ONNXExporter):
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
        try:
            converted = convert_fp16(model)
        except Exception as exc:  # the converter raises bare ValueError/KeyError on odd graphs
            raise ExportError(f"{spec.name}: FP16 conversion failed: {exc}") from None
        return save_onnx(converted, folder / f"{spec.name}{self.suffix}")


@dataclass(frozen=True)
class Int8Policy:
    """What `onnx-int8` quantizes. Defaults measured on this project's models (see DESIGN.md):
    quantizing Mul/Add (adaLN modulation, gates) as well raises the error from ~3 % to ~20 %."""

    op_types: tuple[str, ...] = ("MatMul", "Gemm", "Conv")
    per_channel: bool = True
    activation_type: str = "uint8"  # unsigned activations run faster on x86 (VNNI u8 x s8)
    weight_type: str = "int8"
    method: str = "minmax"  # minmax | entropy | percentile
    keep_islands_fp32: bool = True  # activation x activation MatMuls and reductions stay FP32
    # True: ORT's standard QDQ graph, whose quantized ops re-quantize their outputs so that ORT
    # fuses integer kernels (fast); the Add/Mul behind them then read those re-quantized values.
    # False: quantized ops' outputs and every other consumer stay FP32 (about +4 dB SQNR here, but
    # ORT's CPU EP runs it no faster than FP32). See benchmarks/RESULTS.md.
    fuse_outputs: bool = True
    exclude_nodes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.activation_type not in ("uint8", "int8") or self.weight_type not in ("uint8", "int8"):
            raise ConfigError("activation_type and weight_type must be 'uint8' or 'int8'")
        if self.method not in ("minmax", "entropy", "percentile"):
            raise ConfigError(f"method must be minmax, entropy or percentile, got {self.method!r}")
        if not self.op_types:
            raise ConfigError("op_types must name at least one op type to quantize")


def quantize_int8(src: Path, dst: Path, feeds: Sequence[dict[str, np.ndarray]], policy: Int8Policy) -> None:
    """Static QDQ quantization of ``src`` calibrated on ``feeds`` (this component's own data)."""
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
        exclude += fp32_island_nodes(onnx.load(str(src), load_external_data=False))
    quantize_static(
        str(src),
        str(dst),
        Reader(),
        quant_format=QuantFormat.QDQ,
        op_types_to_quantize=list(policy.op_types),
        per_channel=policy.per_channel,
        activation_type=qtype[policy.activation_type],
        weight_type=qtype[policy.weight_type],
        nodes_to_exclude=exclude,
        calibrate_method=method,
        extra_options={
            "ActivationSymmetric": policy.activation_type == "int8",
            "WeightSymmetric": True,
            **({} if policy.fuse_outputs else {"OpTypesToExcludeOutputQuantization": list(policy.op_types)}),
        },
    )


def restrict_dequantized_consumers(model, op_types: Sequence[str]) -> int:
    """Give every consumer that is not a quantized op back the FP32 tensor.

    ORT shares one Q/DQ pair among all consumers of a tensor, so the residual Add beside a
    quantized MatMul would read fake-quantized values. Returns the number of inputs rewired.
    """
    producer = {o: n for n in model.graph.node for o in n.output}
    rewired = 0
    for dq in [n for n in model.graph.node if n.op_type == "DequantizeLinear"]:
        q = producer.get(dq.input[0])
        if q is None or q.op_type != "QuantizeLinear":
            continue  # a weight's DQ: only its quantized op reads it
        original = q.input[0]
        for node in model.graph.node:
            if node.op_type in op_types or node is dq:
                continue
            for i, name in enumerate(node.input):
                if name == dq.output[0]:
                    node.input[i] = original
                    rewired += 1
    return rewired


class ONNXInt8Exporter(ONNXExporter):
    """Experts: QDQ INT8 calibrated on their own band. Encoder/decoder: FP32 (no band data)."""

    needs_calibration = True

    def __init__(self, policy: Int8Policy | None = None) -> None:
        self.policy = policy or Int8Policy()

    @classmethod
    def from_options(cls, options) -> ONNXInt8Exporter:
        return cls(options.int8_policy)

    def manifest_entries(self) -> dict:
        return {"int8_policy": dict(self.policy.__dict__)}

    def export(
        self,
        module: torch.nn.Module,
        spec: ComponentSpec,
        folder: Path,
        calibration: Sequence[dict[str, np.ndarray]] | None = None,
    ) -> list[Path]:
        if spec.kind != "expert":
            return super().export(module, spec, folder)
        if not calibration:
            raise ExportError(f"{spec.name}: INT8 needs calibration data from the expert's own band")
        with tempfile.TemporaryDirectory(dir=folder) as tmp:
            fp32 = super().export(module, spec, Path(tmp))[0]
            qdq = Path(tmp) / "qdq.onnx"
            quantize_int8(fp32, qdq, calibration, self.policy)
            import onnx

            model = onnx.load(str(qdq))
        if not self.policy.fuse_outputs:
            restrict_dequantized_consumers(model, self.policy.op_types)
        return save_onnx(model, folder / f"{spec.name}{self.suffix}")


_ONNX = ("onnx", "onnxruntime", "onnxscript")
register_target(
    TargetInfo(
        name="onnx-fp16",
        format="onnx",
        precision=Precision.FP16,
        requires=(*_ONNX, "onnxconverter_common"),
        extra="onnx",
        description="ONNX FP16 with FP32 linear-attention islands; FP32 I/O",
        factory=ONNXFP16Exporter,
    )
)
register_target(
    TargetInfo(
        name="onnx-int8",
        format="onnx",
        precision=Precision.INT8,
        requires=_ONNX,
        extra="onnx",
        description="ONNX static QDQ INT8 per expert, calibrated on its own log-SNR band",
        factory=ONNXInt8Exporter,
    )
)
