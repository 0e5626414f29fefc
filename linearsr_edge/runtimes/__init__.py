"""Runtime backends, registered by name, and `SRRuntime`. Importing registers every built-in backend.

Nothing here imports PyTorch: a runtime-only install (``pip install 'linearsr-edge[onnx]'``) runs
bundles without it.
"""

from linearsr_edge.runtimes import coreml as _coreml  # noqa: F401  (registers "coreml", macOS only)
from linearsr_edge.runtimes import onnxruntime as _onnxruntime  # noqa: F401  (registers "onnxruntime")
from linearsr_edge.runtimes import openvino as _openvino  # noqa: F401  (registers "openvino")
from linearsr_edge.runtimes import tensorrt as _tensorrt  # noqa: F401  (registers "tensorrt")
from linearsr_edge.runtimes.base import (
    BackendInfo,
    BackendOptions,
    Session,
    backend_names,
    choose_backend,
    get_backend,
    pick_backend,
    register_backend,
)
from linearsr_edge.runtimes.onnxruntime import OrtOptions
from linearsr_edge.runtimes.openvino import OVOptions
from linearsr_edge.runtimes.residency import Residency
from linearsr_edge.runtimes.sr import SRRuntime

__all__ = [
    "BackendInfo",
    "BackendOptions",
    "OVOptions",
    "OrtOptions",
    "Residency",
    "SRRuntime",
    "Session",
    "backend_names",
    "choose_backend",
    "get_backend",
    "pick_backend",
    "register_backend",
]
