"""Typed options of the ExecuTorch targets and backend (no heavy imports: the CLI reads their flags for ``--help``)."""

from __future__ import annotations

from dataclasses import dataclass

from linearsr_edge.errors import ConfigError
from linearsr_edge.options import flag
from linearsr_edge.pipeline.session import BackendOptions


@dataclass(frozen=True)
class EtInt8Options:
    """How ``et-int8`` quantizes each expert through PT2E with ExecuTorch's XNNPACK quantizer (per-channel
    symmetric INT8 weights, per-tensor INT8 activations), calibrated on the expert's own log-SNR band.

    Only the weighted products (``linear``, ``conv2d``) are quantized, as in every INT8 target here; the
    precision policy's FP32 islands and the activation products (adaLN modulation, gates) stay FP32.
    ``keep_fp32="none"`` lets the quantizer annotate everything it knows (adds and multiplies too).
    """

    keep_fp32: str = flag(
        "policy",
        "--et-int8-keep",
        "what stays FP32: policy (islands, modulation/gate products; only linear/conv quantized, default) "
        "or none (the XNNPACK quantizer's own choice)",
        choices=("policy", "none"),
    )

    def __post_init__(self) -> None:
        if self.keep_fp32 not in ("policy", "none"):
            raise ConfigError(f"keep_fp32 must be 'policy' or 'none', got {self.keep_fp32!r}")


@dataclass(frozen=True)
class EtOptions(BackendOptions):
    """ExecuTorch runtime options. ``threads`` sizes ExecuTorch's one process-wide thread pool (XNNPACK's):
    the last runtime loaded with it set decides, for every ExecuTorch program in the process."""
