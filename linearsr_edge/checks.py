"""What a check is, and the limits checks are held to: one row type for FP32 parity and FP16/INT8 quality gates,
and one `QualityThresholds` per precision. Plain data (no NumPy): bundles record both, and the quality layer
(`linearsr_edge.quality`) computes them.

Every row is one number against one limit: a component's max abs error (must stay at or below), an expert's
SQNR or step SNR, or the pipeline's PSNR in dB (must reach at least).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from linearsr_edge.options import flag
from linearsr_edge.precision import Precision
from linearsr_edge.serial import to_data

METRICS = {"max_abs": "max abs err", "sqnr_db": "SQNR dB", "step_snr_db": "step SNR dB", "psnr_db": "PSNR dB"}


@dataclass(frozen=True)
class CheckRow:
    component: str  # "expert_2", "encoder", "pipeline"
    case: str  # which inputs: "opt b2", "4 held-out band inputs", "end-to-end photo.png"
    metric: str  # "max_abs" (<= limit) | "sqnr_db" | "step_snr_db" | "psnr_db" (>= limit)
    value: float
    limit: float

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {list(METRICS)}, got {self.metric!r}")

    @property
    def passed(self) -> bool:
        if math.isnan(self.value):
            return False
        return self.value <= self.limit if self.metric == "max_abs" else self.value >= self.limit

    def to_dict(self) -> dict:
        """JSON data (``value`` ``"inf"`` when identical to the reference, as `linearsr_edge.serial` writes it)."""
        return to_data(self)


@dataclass(frozen=True)
class QualityThresholds:
    """Per-expert output SQNR against FP32 and end-to-end PSNR against the FP32 pipeline, both in dB.

    FP32 targets measure them on the components' dummy inputs and a parity photo; FP16 / INT8
    targets on held-out band data and held-out photos. Component max abs error (FP32) is each
    spec's own tolerance.
    """

    expert_sqnr_db: float = flag(
        60.0, "--min-expert-sqnr", "per-expert SQNR floor, dB (fp32 60, fp16 40, int8 5)", type=float
    )
    e2e_psnr_db: float = flag(50.0, "--min-psnr", "end-to-end PSNR floor, dB (fp32 50, fp16 45, int8 35)", type=float)
    # the error each expert adds to the sampler's state (see `parity.step_row`). The demo's INT8 experts
    # measure 20.2 / 30.3 / 32.9 / 32.7 dB: the high-noise expert takes the longest steps.
    step_snr_db: float = flag(
        80.0, "--min-step-snr", "per-expert step SNR floor, dB (fp32 80, fp16 35, int8 15)", type=float
    )

    @classmethod
    def default(cls, precision: Precision) -> QualityThresholds:
        return {
            Precision.FP32: cls(60.0, 50.0, 80.0),
            Precision.FP16: cls(40.0, 45.0, 35.0),
            # Low-sigma experts predict noise amplified by 1/sigma, so their output SQNR under INT8 is
            # low (6-17 dB on the demo) while their Euler steps are short; the end-to-end PSNR is the
            # quality gate, the per-expert floor catches broken quantization.
            Precision.INT8: cls(5.0, 35.0, 15.0),
        }[precision]
