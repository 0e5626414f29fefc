"""Sessions: named NumPy arrays in, named NumPy arrays out, whatever the backend.

`Session.run` validates against the component's `ComponentSpec` and names the offender, then
calls the backend's `_run`. Backends register by name with the bundle formats they can run and
the typed options they take; ``auto`` picks the highest-priority installed backend for a
bundle's format. The PyTorch reference is deliberately *not* a backend (see
`linearsr_edge.reference`): a bundle is only ever run by a backend of its own format.
"""

from __future__ import annotations

import abc
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from linearsr_edge.errors import BackendUnavailableError, ConfigError, InputSpecError
from linearsr_edge.options import flag, positive_int
from linearsr_edge.registry import Registry, unavailable_reason, wrong_platform
from linearsr_edge.specs import ComponentSpec

if TYPE_CHECKING:
    from linearsr_edge.bundle import Bundle


@dataclass(frozen=True)
class BackendOptions:
    """What every backend takes; each backend subclasses this with its own fields."""

    threads: int | None = flag(None, "--threads", "intra-op threads (default: the backend's)", type=positive_int)

    def __post_init__(self) -> None:
        if self.threads is not None and (isinstance(self.threads, bool) or self.threads < 1):
            raise ConfigError(f"threads must be a positive integer or None, got {self.threads!r}")


class Session(abc.ABC):
    """One loaded component. Subclasses implement `_run` (and `close` if they hold resources)."""

    backend: str = ""
    # whether _run may be called from several threads at once (ONNX Runtime: yes); else run serializes
    thread_safe: bool = False

    def __init__(self, spec: ComponentSpec) -> None:
        self.spec = spec
        self._lock = threading.Lock()  # serializes _run unless thread_safe
        self._stats_lock = threading.Lock()
        self.seconds = 0.0  # time spent inside _run, for overhead accounting
        self.calls = 0

    def run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.spec.check(feeds)
        with contextlib.nullcontext() if self.thread_safe else self._lock:
            t0 = time.perf_counter()
            out = self._run(feeds)
            elapsed = time.perf_counter() - t0
        with self._stats_lock:
            self.seconds += elapsed
            self.calls += 1
        missing = [n for n in self.spec.output_names if n not in out]
        if missing:
            raise InputSpecError(f"{self.spec.name}: backend {self.backend} returned no {missing}")
        return out

    @abc.abstractmethod
    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run validated inputs; return every output named in the spec."""

    def settings(self) -> dict[str, Any]:
        """The backend settings in force (threads, device, precision hint ...), for timing reports."""
        return {}

    def close(self) -> None:  # noqa: B027  (sessions without resources need nothing)
        """Release what the session holds; it is not used again."""


def describe_settings(settings: dict) -> str:
    """``openvino CPU, f32, 2 threads`` from `SRRuntime.backend_settings`."""
    parts = [str(settings.get("backend", "?"))]
    if settings.get("device"):
        parts.append(str(settings["device"]))
    if settings.get("providers"):
        parts.append("+".join(p.removesuffix("ExecutionProvider") for p in settings["providers"]))
    if settings.get("precision_hint"):
        asked = settings.get("precision_hint_asked")
        parts.append(f"hint {settings['precision_hint']}" + (f" ({asked} asked: not on this device)" if asked else ""))
    parts.append(f"{settings['threads']} threads" if settings.get("threads") else "default threads")
    return " ".join(parts[:1]) + (f" ({', '.join(parts[1:])})" if len(parts) > 1 else "")


SessionFactory = Callable[["Bundle", str, BackendOptions], Session]


@dataclass(frozen=True)
class BackendInfo:
    name: str
    formats: tuple[str, ...]  # bundle formats it runs
    requires: tuple[str, ...]
    extra: str
    priority: int  # higher wins for backend="auto"
    factory: SessionFactory
    options: type[BackendOptions] = BackendOptions
    version: Callable[[], str] = lambda: "?"  # the installed package's version, for reports
    # the options a bundle's verification runs with (exact arithmetic: e.g. OpenVINO's f32 hint);
    # None: the defaults
    parity_options: Callable[[], BackendOptions] | None = None
    platforms: tuple[str, ...] = ()  # ``sys.platform`` values it runs on; empty: any
    platform_note: str = ""  # why, and what to do elsewhere

    @property
    def available(self) -> bool:
        return unavailable_reason(self) is None

    def check_options(self, options: BackendOptions | None) -> BackendOptions:
        """The options to open sessions with: defaults for None, refused when typed for another backend."""
        if options is None:
            return self.options()
        if not isinstance(options, self.options):
            raise ConfigError(f"backend {self.name!r} takes {self.options.__name__}, got {type(options).__name__}")
        return options

    def verification_options(self) -> BackendOptions:
        return self.parity_options() if self.parity_options is not None else self.options()


BACKENDS: Registry[BackendInfo] = Registry("runtime backend", group="linearsr_edge.backends")
register_backend = BACKENDS.register
backend_names = BACKENDS.names
get_backend = BACKENDS.get


def choose_backend(fmt: str, name: str = "auto") -> BackendInfo:
    """The backend ``name`` (``"auto"``: the best installed one for the bundle format ``fmt``)."""
    return pick_backend(fmt) if name == "auto" else get_backend(name)


def backends_for(fmt: str) -> list[BackendInfo]:
    """Every registered backend of a bundle format, installed or not."""
    return [b for b in BACKENDS.entries() if fmt in b.formats]


def pick_backend(fmt: str, exclude: tuple[str, ...] = ()) -> BackendInfo:
    """The best installed backend for a bundle format (``auto``), none of ``exclude``;
    `BackendUnavailableError` names the extra (or the OS the format needs)."""
    fits = [b for b in backends_for(fmt) if b.name not in exclude]
    usable = sorted((b for b in fits if b.available), key=lambda b: -b.priority)
    if not usable:
        if not fits:
            raise BackendUnavailableError(f"no registered runtime backend runs {fmt} bundles")
        elsewhere = [wrong_platform(b) for b in fits]
        if all(elsewhere):
            raise BackendUnavailableError(f"no backend runs {fmt} bundles on this machine: " + "; ".join(elsewhere))
        fits = [b for b, r in zip(fits, elsewhere, strict=True) if r is None]
        extras = " or ".join(f"pip install 'linearsr-edge[{e}]'" for e in sorted({b.extra for b in fits}))
        raise BackendUnavailableError(f"no installed backend runs {fmt} bundles: {extras}")
    return usable[0]
