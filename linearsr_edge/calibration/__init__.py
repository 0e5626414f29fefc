"""Backend-neutral calibration: band-stratified data from the FP32 reference sampler, and quality gates."""

from linearsr_edge.calibration.collect import CalibrationOptions, CalibrationSet, collect, images_from_dir
from linearsr_edge.calibration.gates import GateRow, QualityThresholds, format_gates

__all__ = [
    "CalibrationOptions",
    "CalibrationSet",
    "GateRow",
    "QualityThresholds",
    "collect",
    "format_gates",
    "images_from_dir",
]
