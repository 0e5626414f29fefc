"""Typed options of the ONNX targets (no heavy imports: the CLI reads their flags for ``--help``)."""

from __future__ import annotations

from dataclasses import dataclass

from linearsr_edge.errors import ConfigError
from linearsr_edge.options import flag


@dataclass(frozen=True)
class OnnxInt8Options:
    """What `onnx-int8` quantizes, as ONNX Runtime's static QDQ quantizer takes it.

    Defaults measured on this project's models (benchmarks/RESULTS.md): quantizing Mul/Add
    (adaLN modulation, gates) as well raises the error from ~3 % to ~20 %.
    """

    op_types: tuple[str, ...] = flag(
        ("MatMul", "Gemm", "Conv"),
        "--int8-ops",
        "op types to quantize (default: MatMul Gemm Conv; adding Mul/Add costs ~17 %% error)",
        nargs="+",
        metavar="OP",
    )
    per_channel: bool = True
    activation_type: str = flag(
        "uint8", "--int8-activations", "activation type (default uint8: faster on x86)", choices=("uint8", "int8")
    )
    weight_type: str = "int8"
    method: str = flag(
        "minmax", "--int8-method", "range calibration (default minmax)", choices=("minmax", "entropy", "percentile")
    )
    keep_islands_fp32: bool = True  # activation x activation MatMuls and reductions stay FP32
    # True: ORT's standard QDQ graph, whose quantized ops re-quantize their outputs so that ORT
    # fuses integer kernels (fast); the Add/Mul behind them then read those re-quantized values.
    # False: quantized ops' outputs and every other consumer stay FP32 (about +4 dB SQNR here, but
    # ORT's CPU EP runs it no faster than FP32). See benchmarks/RESULTS.md.
    fuse_outputs: bool = flag(
        True,
        "--int8-accurate",
        "keep quantized ops' outputs and their neighbours in FP32: ~+4 dB SQNR, no speed-up on x86",
        invert=True,
    )
    exclude_nodes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.activation_type not in ("uint8", "int8") or self.weight_type not in ("uint8", "int8"):
            raise ConfigError("activation_type and weight_type must be 'uint8' or 'int8'")
        if self.method not in ("minmax", "entropy", "percentile"):
            raise ConfigError(f"method must be minmax, entropy or percentile, got {self.method!r}")
        if not self.op_types:
            raise ConfigError("op_types must name at least one op type to quantize")
