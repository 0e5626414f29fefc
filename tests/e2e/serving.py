"""What the serving tests share: whether a tritonserver is here, free loopback ports, random frames."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from linearsr_edge.serving.loadgen import free_ports  # noqa: F401 (the tests import it from here)

HAVE_SERVER = all(importlib.util.find_spec(m) is not None for m in ("pytriton", "tritonclient"))
needs_server = pytest.mark.skipif(
    not HAVE_SERVER, reason="needs tritonserver (pip install --no-deps nvidia-pytriton) and tritonclient ([serve])"
)


def frame(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
