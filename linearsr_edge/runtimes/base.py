"""Sessions: named NumPy arrays in, named NumPy arrays out, whatever the backend.

`Session.run` validates against the component's `ComponentSpec` and names the offender, then
calls the backend's `_run`. Backends register by name with the bundle formats they can run;
``auto`` picks the highest-priority available backend for a bundle's format.
"""

from __future__ import annotations

import abc
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from linearsr_edge.errors import BackendUnavailableError, InputSpecError
from linearsr_edge.registry import Registry, missing_modules
from linearsr_edge.specs import ComponentSpec

if TYPE_CHECKING:
    from linearsr_edge.bundle import Bundle


@dataclass(frozen=True)
class SessionOptions:
    """Backend-neutral session options; backends read what applies to them."""

    threads: int | None = None
    providers: tuple[str, ...] | None = None  # ONNX Runtime execution providers, in priority order
    provider_options: dict[str, dict[str, Any]] = field(default_factory=dict)


class Session(abc.ABC):
    """One loaded component. Subclasses implement `_run` only."""

    backend: str = ""

    def __init__(self, spec: ComponentSpec) -> None:
        self.spec = spec
        self.seconds = 0.0  # time spent inside _run, for overhead accounting
        self.calls = 0

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.spec.check(feeds)
        t0 = time.perf_counter()
        out = self._run(feeds)
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        missing = [n for n in self.spec.output_names if n not in out]
        if missing:
            raise InputSpecError(f"{self.spec.name}: backend {self.backend} returned no {missing}")
        return out

    @abc.abstractmethod
    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run validated inputs; return every output named in the spec."""


SessionFactory = Callable[["Bundle", str, SessionOptions], Session]


@dataclass(frozen=True)
class BackendInfo:
    name: str
    formats: tuple[str, ...]  # bundle formats it runs
    requires: tuple[str, ...]
    extra: str
    priority: int  # higher wins for backend="auto"
    factory: SessionFactory

    @property
    def available(self) -> bool:
        return not missing_modules(self)


BACKENDS: Registry[BackendInfo] = Registry("runtime backend")
register_backend = BACKENDS.register
backend_names = BACKENDS.names
get_backend = BACKENDS.get


def pick_backend(fmt: str) -> BackendInfo:
    """The best available backend for a bundle format (``auto``)."""
    fits = [b for b in BACKENDS.entries() if fmt in b.formats]
    usable = sorted((b for b in fits if b.available), key=lambda b: -b.priority)
    if not usable:
        extras = ", ".join(sorted({b.extra for b in fits})) or "?"
        raise BackendUnavailableError(f"no installed backend runs {fmt} bundles; install one of the extras: {extras}")
    return usable[0]
