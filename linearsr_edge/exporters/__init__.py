"""Exporters, registered by target name. Importing this package registers every target module."""

from linearsr_edge.exporters import onnx as _onnx  # noqa: F401  (registers onnx-fp32)
from linearsr_edge.exporters import onnx_precision as _onnx_precision  # noqa: F401  (onnx-fp16, onnx-int8)
from linearsr_edge.exporters.base import Exporter, TargetInfo, all_targets, get_target, register_target, target_names

__all__ = ["Exporter", "TargetInfo", "all_targets", "get_target", "register_target", "target_names"]
