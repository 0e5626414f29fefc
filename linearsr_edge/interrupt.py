"""Ctrl-C that cannot be lost.

Python raises `KeyboardInterrupt` wherever the main thread happens to be when SIGINT arrives. Inside
a finaliser (``__del__``, a weakref callback: ONNX Runtime sessions and temporary folders have
them) the exception is printed and dropped, and a long export would run on to the end. The
commands install `install`'s handler, which also records the request; long loops call `check`
between units of work, so a dropped interrupt still stops the work at the next one.
"""

from __future__ import annotations

import signal
import threading

_requested = threading.Event()


def _handler(signum, frame) -> None:
    _requested.set()
    raise KeyboardInterrupt


def install() -> None:
    """Start a command: forget earlier requests, and handle SIGINT (main thread only; left alone where
    Python's default handler was replaced, or SIGINT is ignored, as in a background job)."""
    _requested.clear()
    current = signal.getsignal(signal.SIGINT)
    if threading.current_thread() is threading.main_thread() and current in (signal.default_int_handler, _handler):
        signal.signal(signal.SIGINT, _handler)


def reset() -> None:
    """Forget a recorded request (after it was handled)."""
    _requested.clear()


def check() -> None:
    """Raise `KeyboardInterrupt` if an interrupt was requested, even one that a finaliser swallowed."""
    if _requested.is_set():
        raise KeyboardInterrupt
