"""linearsr-edge: take LinearSR (linear-attention diffusion super-resolution) to edge hardware.

``from linearsr_edge import SRRuntime`` runs an exported bundle (no PyTorch needed);
``load_model_folder`` / ``load_demo`` load a PyTorch model (needs the ``torch`` extra).
Names load lazily, so importing the package costs nothing.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("linearsr-edge")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

_LAZY = {
    "SRRuntime": "linearsr_edge.runtime",
    "SampleOptions": "linearsr_edge.pipeline.process",
    "UpscaleResult": "linearsr_edge.pipeline.process",
    "Bundle": "linearsr_edge.bundle",
    "load_model_folder": "linearsr_edge.reference",
    "save_model_folder": "linearsr_edge.model.folder",
    "load_demo": "linearsr_edge.demo",
    "ExportOptions": "linearsr_edge.build",
    "build_bundle": "linearsr_edge.build",
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'linearsr_edge' has no attribute {name!r}")
