"""One cache root for everything a device compiles or verifies once: verification passes, ONNX Runtime's
TensorRT engines, Core ML compiled models, OpenVINO compiled models.

``$LINEARSR_EDGE_CACHE`` when set, else the platform's user cache folder: ``~/Library/Caches/linearsr-edge``
on macOS, ``%LOCALAPPDATA%\\linearsr-edge\\Cache`` on Windows, ``$XDG_CACHE_HOME/linearsr-edge`` (default
``~/.cache/linearsr-edge``) elsewhere. Each user of it takes a named subfolder.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from pathlib import Path

log = logging.getLogger(__name__)

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


_announced: set[Path] = set()
_announce_lock = threading.Lock()


def compiled_cache_dir(backend: str, folder: Path | None = None) -> Path:
    """The folder ``backend`` caches compiled models in (``folder``, else the cache root's ``backend`` folder),
    created if missing. The run that creates it says so at INFO, once per process: a first run is slower, and
    the user learns where the disk space went and how to turn it off."""
    path = Path(folder) if folder is not None else cache_root(backend)
    with _announce_lock:
        if path.is_dir() or path in _announced:
            return path
        path.mkdir(parents=True, exist_ok=True)
        _announced.add(path)
    log.info(
        "first run here: caching %s's compiled models in %s (next starts are faster; --no-cache: off)", backend, path
    )
    return path
