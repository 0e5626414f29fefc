"""One cache root for everything a device compiles or verifies once: verification passes, ONNX Runtime's
TensorRT engines, Core ML compiled models, OpenVINO compiled models.

``$LINEARSR_EDGE_CACHE`` when set, else the platform's user cache folder: ``~/Library/Caches/linearsr-edge``
on macOS, ``%LOCALAPPDATA%\\linearsr-edge\\Cache`` on Windows, ``$XDG_CACHE_HOME/linearsr-edge`` (default
``~/.cache/linearsr-edge``) elsewhere. Each user of it takes a named subfolder.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

VARIABLE = "LINEARSR_EDGE_CACHE"


def cache_root(part: str = "") -> Path:
    """The cache root, or its subfolder ``part`` (``"verified"``, ``"coreml"``, ``"openvino"``, ``"ort-trt"``)."""
    if os.environ.get(VARIABLE):
        root = Path(os.environ[VARIABLE])
    elif sys.platform == "darwin":
        root = Path.home() / "Library" / "Caches" / "linearsr-edge"
    elif sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        root = Path(os.environ["LOCALAPPDATA"]) / "linearsr-edge" / "Cache"
    else:
        root = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "linearsr-edge"
    return root / part if part else root
