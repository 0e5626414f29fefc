"""Typed options of the ONNX targets (no heavy imports: the CLI reads their flags for ``--help``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from linearsr_edge.errors import BundleError, ConfigError
from linearsr_edge.options import flag
from linearsr_edge.pipeline.session import CachingOptions


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


# Preferred execution providers, best first; only those the installed onnxruntime offers are used.
PROVIDER_ORDER = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CoreMLExecutionProvider",
    "OpenVINOExecutionProvider",
    "CPUExecutionProvider",
)


@dataclass(frozen=True)
class OrtOptions(CachingOptions):
    """ONNX Runtime session options; a CPU session's optimized graph is cached unless ``cache`` is off."""

    # execution providers in priority order (None: the best installed); "tensorrt", "cuda", "cpu" ... or full names
    providers: tuple[str, ...] | None = flag(
        None,
        "--providers",
        "ONNX Runtime execution providers in order, e.g. tensorrt cuda cpu (default: the best installed); "
        "TensorRT EP profiles and caches come from the bundle",
        nargs="+",
        metavar="EP",
    )
    provider_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # "priority": ORT's priority-based node order, which frees tensors as soon as their last reader
    # ran; it cut the FP16 range probe's peak RSS from 7.0 to 2.1 GB (many extra readers per tensor)
    execution_order: str = "default"
    # ORT session config entries, e.g. {"session.x64quantprecision": "1"} (U8U8 kernels on x64 without VNNI,
    # no saturation) or {"session.disable_quant_qdq": "1"} (Q/DQ evaluated as float ops: no integer kernels)
    session_config: dict[str, str] = field(default_factory=dict)
    # CPU sessions draw their activations from one arena shared by the process (ORT's environment allocator)
    # instead of an arena each: an arena keeps its largest run's memory, so four resident experts held four.
    # Measured on the demo (640x480 frame, onnx-fp32): peak RSS 3040 -> 1274 MiB, the same speed.
    shared_arena: bool = True
    # ORT's intra-op threads spin after each run waiting for more work. The experts are separate sessions that
    # take turns, so each expert's call ran beside the previous one's spinning threads: on the demo (4 experts,
    # 2 threads) the experts after the first took 48-60 ms against 25-28 ms, and the image 200 ms against 124 ms
    # without spinning; a one-expert model lost 3.5 % (benchmarks/RESULTS.md). Off unless asked for.
    spinning: bool = flag(
        False,
        "--ort-spinning",
        "let ONNX Runtime's threads spin between runs (default off: the experts take turns, and a spinning pool "
        "slowed the next expert 1.6-2x; on: ~3 %% faster for a one-expert model)",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.providers is not None:
            object.__setattr__(self, "providers", tuple(provider_name(p) for p in self.providers))
        if self.execution_order not in ("default", "priority"):
            raise ConfigError(f"execution_order must be 'default' or 'priority', got {self.execution_order!r}")
        unknown = [p for p in self.provider_options if self.providers is not None and p not in self.providers]
        if unknown:
            raise ConfigError(f"provider_options name providers that are not requested: {unknown}")


SHORT_PROVIDERS = {p.removesuffix("ExecutionProvider").lower(): p for p in PROVIDER_ORDER}


def provider_name(name: str) -> str:
    """``"tensorrt"`` -> ``"TensorrtExecutionProvider"``; full names pass through."""
    return SHORT_PROVIDERS.get(name.lower(), name)


def choose_providers(available: list[str], requested: tuple[str, ...] | None) -> list[str]:
    """Requested providers that are available (in the requested order), else the preferred order."""
    if requested:
        missing = [p for p in requested if p not in available]
        if missing:
            raise BundleError(f"ONNX Runtime providers {missing} are not available here (available: {available})")
        return list(requested)
    return [p for p in PROVIDER_ORDER if p in available] or ["CPUExecutionProvider"]
