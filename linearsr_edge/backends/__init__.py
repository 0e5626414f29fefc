"""The hardware families, one folder each: ``onnx``, ``openvino``, ``tensorrt``, ``coreml``, ``executorch``.

A family holds its options, export, session (runtime), plan and one thin adapter for the vendor calls
that no Linux machine runs, and registers its targets and backend in its own ``register()``. This list is
the one place that names them: a new family is its folder, one name here, its pip extras in
``pyproject.toml`` and a device profile. The registries call `register_builtin` the first time they are
asked, so that importing the core never imports a family; third-party families register through the
``linearsr_edge.targets`` / ``linearsr_edge.backends`` entry points instead.
"""

from __future__ import annotations

import importlib
import threading

FAMILIES = ("onnx", "openvino", "tensorrt", "coreml", "executorch")

_lock = threading.Lock()
_done = False


def register_builtin() -> None:
    """Register every built-in family's targets and backend, once per process."""
    global _done
    with _lock:
        if _done:
            return
        _done = True
        for family in FAMILIES:
            importlib.import_module(f"{__name__}.{family}").register()
