"""What the serving tests share: whether a tritonserver is here, free loopback ports, random frames."""

from __future__ import annotations

import importlib.util
import socket

import numpy as np
import pytest

HAVE_SERVER = all(importlib.util.find_spec(m) is not None for m in ("pytriton", "tritonclient"))
needs_server = pytest.mark.skipif(
    not HAVE_SERVER, reason="needs tritonserver (pip install --no-deps nvidia-pytriton) and tritonclient ([serve])"
)


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def frame(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
