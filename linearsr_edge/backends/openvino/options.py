"""Typed options of the OpenVINO targets (no heavy imports: the CLI reads their flags for ``--help``)."""

from __future__ import annotations

from dataclasses import dataclass

from linearsr_edge.errors import ConfigError
from linearsr_edge.options import flag


@dataclass(frozen=True)
class OVInt8Options:
    """How `ov-int8` runs NNCF's post-training quantization on each expert (with its own band's data).

    ``keep_fp32="policy"`` puts the precision policy's FP32 islands (linear-attention reductions and
    division, softmax attention, the timestep sin/cos chain) and the activation x activation
    products (adaLN modulation, gates) in NNCF's ignored scope; ``"none"`` leaves the choice to
    NNCF's transformer preset (the recipe a user of optimum-intel would get).
    """

    preset: str = flag(
        "performance",
        "--ov-int8-preset",
        "NNCF preset: performance (symmetric activations, default) or mixed (asymmetric activations)",
        choices=("performance", "mixed"),
    )
    keep_fp32: str = flag(
        "policy",
        "--ov-int8-keep",
        "what stays FP32: policy (precision islands and modulation/gate products, default) or none (NNCF decides)",
        choices=("policy", "none"),
    )
    fast_bias_correction: bool = True
    # NNCF's overflow fix on every MatMul/Conv weight (7-bit weights, as `onnx-int8`'s ``reduce_range``): x86 CPUs
    # without VNNI add U8 x S8 products in pairs into 16 bits, which 8-bit weights overflow. Measured on the
    # demo: 51.0 dB end to end on AVX2 against 44.7 dB without it; on AVX-512 VNNI it costs ~0.3 dB
    # (benchmarks/RESULTS.md). NNCF's own default fixes the first layer only.
    overflow_fix: bool = flag(
        True,
        "--ov-int8-full-range",
        "8-bit weights (NNCF's default): a little more precise where VNNI runs them, but U8xS8 pair sums "
        "saturate on x86 without VNNI (-6 dB measured on AVX2)",
        invert=True,
    )
    # INT8 weights only (``nncf.compress_weights``, optimum-intel's ``--weight-format int8``): activations stay
    # FP32, no calibration data is used; a smaller file, but no integer kernels (see benchmarks/RESULTS.md)
    weights_only: bool = flag(
        False,
        "--ov-int8-weights-only",
        "compress weights to INT8 only (no activation quantization, no calibration): smaller, not faster",
    )

    def __post_init__(self) -> None:
        if self.preset not in ("performance", "mixed"):
            raise ConfigError(f"preset must be 'performance' or 'mixed', got {self.preset!r}")
        if self.keep_fp32 not in ("policy", "none"):
            raise ConfigError(f"keep_fp32 must be 'policy' or 'none', got {self.keep_fp32!r}")
