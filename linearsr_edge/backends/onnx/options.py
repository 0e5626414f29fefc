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
    # 7-bit weights (the portable default): x86 CPUs without VNNI add U8 x S8 products in pairs into 16 bits
    # (vpmaddubsw), which 255 * 127 * 2 overflows and 255 * 64 * 2 does not. Measured on the demo with
    # AVX-512 VNNI: 47.41 dB against 47.55 dB for 8-bit weights; on an AVX2-only CPU 8-bit weights
    # gave 41.4 dB (benchmarks/RESULTS.md).
    reduce_range: bool = flag(
        True,
        "--int8-full-range",
        "8-bit weights: +0.1 dB and ~5%% faster where VNNI or ARM dot products run them, but U8xS8 sums saturate "
        "on x86 without VNNI (-6 dB measured on AVX2)",
        invert=True,
    )
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
    # Conv biases as INT32 (ORT's integer kernels use them); TensorRT takes no INT32 Q/DQ: False keeps them FP32
    quantize_bias: bool = True

    def __post_init__(self) -> None:
        if self.activation_type not in ("uint8", "int8") or self.weight_type not in ("uint8", "int8"):
            raise ConfigError("activation_type and weight_type must be 'uint8' or 'int8'")
        if self.method not in ("minmax", "entropy", "percentile"):
            raise ConfigError(f"method must be minmax, entropy or percentile, got {self.method!r}")
        if not self.op_types:
            raise ConfigError("op_types must name at least one op type to quantize")
