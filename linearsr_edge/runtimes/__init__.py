"""The runtime's former home, kept so that code written against it still imports. New code imports from
`linearsr_edge` (``SRRuntime``), `linearsr_edge.pipeline.session` (sessions, backends, the registry) and each
family's ``options`` module (``OrtOptions``, ``OVOptions`` ...)."""

from linearsr_edge.backends.onnx.options import OrtOptions
from linearsr_edge.backends.openvino.options import OVOptions
from linearsr_edge.pipeline.residency import Residency
from linearsr_edge.pipeline.session import (
    BackendInfo,
    BackendOptions,
    Session,
    backend_names,
    choose_backend,
    get_backend,
    pick_backend,
    register_backend,
)
from linearsr_edge.runtime import SRRuntime

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
