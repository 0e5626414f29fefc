"""What the ONNX family records in a bundle's manifest (``families.onnx``): the FP16 range probe of each expert.

Plain data, no ONNX import: read by any install that reads manifests.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ProbeRecord:
    """One expert's FP16 range probe: the largest |value| any FP16 tensor reaches at the largest profile size."""

    component: str
    tokens: int
    tensors_checked: int
    largest_fp16_tensor: float
    largest_at: str
    largest_weight: float
    limit: float
    finite: bool


@dataclass(frozen=True)
class PrecisionProbe(ProbeRecord):
    """The worst expert's probe, and every expert's."""

    per_component: tuple[ProbeRecord, ...] = ()


@dataclass(frozen=True)
class OnnxSection:
    precision_probe: PrecisionProbe | None = None
