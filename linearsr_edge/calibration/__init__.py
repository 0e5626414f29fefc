"""Backend-neutral calibration: band-stratified data from the FP32 reference sampler, and quality thresholds."""

from linearsr_edge.calibration.collect import CalibrationOptions, CalibrationSet, collect, images_from_dir
from linearsr_edge.checks import QualityThresholds

__all__ = ["CalibrationOptions", "CalibrationSet", "QualityThresholds", "collect", "images_from_dir"]
