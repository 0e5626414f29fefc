"""Runtime backends, registered by name, and `SRRuntime`. Importing registers every backend module."""

from linearsr_edge.runtimes import onnxruntime as _onnxruntime  # noqa: F401  (registers "onnxruntime")
from linearsr_edge.runtimes import torch as _torch  # noqa: F401  (registers "torch")
from linearsr_edge.runtimes.base import (
    BackendInfo,
    Session,
    SessionOptions,
    backend_names,
    get_backend,
    pick_backend,
    register_backend,
)
from linearsr_edge.runtimes.sr import SRRuntime

__all__ = [
    "BackendInfo",
    "SRRuntime",
    "Session",
    "SessionOptions",
    "backend_names",
    "get_backend",
    "pick_backend",
    "register_backend",
]
