"""Sessions and backends: named NumPy arrays in, named NumPy arrays out, whatever the hardware.

* `Session`: one loaded component. `Session.run` validates against the component's `ComponentSpec`
  and names the offender, calls the backend's `_run`, and turns any exception raised inside it into a
  `BackendRunError` naming the component, the backend and the input shapes (the cause chained).
  `Session.bind` binds the inputs that stay the same across a sampler's steps (the LR latent and the
  tags) once; a backend that can keep them on its side (ONNX Runtime's IO binding, OpenVINO's
  infer-request tensors, TensorRT's device buffers) overrides `Session._bind`.
* `Backend`: one bundle loaded on one backend. It opens the sessions, holds what they share (a device
  memory pool), says which input sizes they take (`sizes`), and is closed by the runtime last.
* `BackendInfo` and the registry: backends register by name with the bundle formats they run and the
  typed options they take; ``auto`` picks the highest-priority installed backend for a bundle's format.

The PyTorch reference is deliberately *not* a backend (see `linearsr_edge.reference`): a bundle is only
ever run by a backend of its own format.
"""

from __future__ import annotations

import abc
import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from linearsr_edge.errors import BackendRunError, BackendUnavailableError, ConfigError, InputSpecError
from linearsr_edge.options import flag, positive_int
from linearsr_edge.registry import Registry, load_callable, unavailable_reason, wrong_platform
from linearsr_edge.specs import ComponentSpec, SizePolicy

if TYPE_CHECKING:
    from linearsr_edge.bundle import Bundle
    from linearsr_edge.config import ModelConfig

Feeds = dict[str, np.ndarray]
Build = Literal["never", "if-needed"]  # what `SRRuntime.load` may build before opening sessions (engines)


@dataclass(frozen=True)
class BackendOptions:
    """What every backend takes; each backend subclasses this with its own fields."""

    threads: int | None = flag(None, "--threads", "intra-op threads (default: the backend's)", type=positive_int)

    def __post_init__(self) -> None:
        if self.threads is not None and (isinstance(self.threads, bool) or self.threads < 1):
            raise ConfigError(f"threads must be a positive integer or None, got {self.threads!r}")


@dataclass(frozen=True)
class CachingOptions(BackendOptions):
    """Options of a backend that compiles each model for this device (OpenVINO, ONNX Runtime, Core ML): the
    compiled models are cached by default, so that the next process starts warm."""

    cache: bool = flag(True, "--no-cache", "do not cache compiled models (every run compiles anew)", invert=True)
    cache_dir: Path | None = flag(
        None,
        "--cache-dir",
        "folder of the compiled-model cache (default: the backend's folder under the cache root, "
        "$LINEARSR_EDGE_CACHE or ~/.cache/linearsr-edge)",
        type=Path,
    )

    def compiled_cache(self, backend: str) -> Path | None:
        """The folder this backend caches its compiled models in (None: ``cache`` is off); said once per
        process, at INFO, when this run creates it."""
        if not self.cache:
            return None
        from linearsr_edge.cache import compiled_cache_dir

        return compiled_cache_dir(backend, self.cache_dir)


def shapes_of(feeds: Feeds) -> str:
    """``latent [1, 12, 8, 8], sigma [1]`` for messages."""
    return ", ".join(f"{n} {list(np.shape(a))}" for n, a in feeds.items())


@dataclass(frozen=True)
class ComponentCall:
    """One component call recorded by `SRRuntime.traced`: when it started (``perf_counter`` seconds),
    the seconds spent opening its session (0 when resident) and inside the session, and its batch."""

    component: str
    start: float
    open_seconds: float
    seconds: float
    batch: int


class Binding:
    """Inputs bound once for several runs of one session; `run` takes the others. This base binding merges
    them into each run; a backend's binding keeps them on its side instead. Used by one caller (thread) at
    a time; every caller binds its own."""

    def __init__(self, session: Session, static: Feeds) -> None:
        self.session, self.static = session, static

    def run(self, feeds: Feeds) -> Feeds:
        """Validate the bound and the given inputs together against the spec, and run (timed, failures typed)."""
        everything = {**self.static, **feeds}
        self.session.spec.check(everything)
        return self.session._timed(self._run, feeds, everything)

    def _run(self, feeds: Feeds) -> Feeds:
        return self.session._run({**self.static, **feeds})

    def close(self) -> None:
        """Release what the binding holds."""


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

    def run(self, feeds: Feeds) -> Feeds:
        """Validate ``feeds`` against the spec, run them, and check every output came back."""
        self.spec.check(feeds)
        return self._timed(self._run, feeds)

    def bind(self, static: Feeds) -> Binding:
        """Bind ``static`` (some of the spec's inputs) for the runs of one caller: ``binding.run(rest)``."""
        unknown = [n for n in static if n not in self.spec.input_names]
        if unknown:
            raise InputSpecError(f"{self.spec.name}: no inputs {unknown} to bind (has {self.spec.input_names})")
        return self._bind(static)

    def _bind(self, static: Feeds) -> Binding:
        return Binding(self, static)

    # whether `prepare` does work (compiles): the runtime then prepares its sessions side by side
    compiles: bool = False

    def prepare(self, shapes: dict[str, tuple[int, ...]]) -> None:  # noqa: B027  (most need nothing)
        """Get ready to run inputs of these shapes before the first run does (OpenVINO compiles its static model
        for them). Runs under the session's lock; a failure is left to the run that meets it."""

    def _timed(self, call: Callable[[Feeds], Feeds], feeds: Feeds, named: Feeds | None = None) -> Feeds:
        """``call(feeds)`` under the session's lock (unless thread safe), timed, its failures typed (naming the
        shapes of ``named``, default ``feeds``: a binding names its bound inputs too)."""
        with contextlib.nullcontext() if self.thread_safe else self._lock:
            t0 = time.perf_counter()
            try:
                out = call(feeds)
            except (InputSpecError, BackendRunError):  # the caller's feeds, or already named
                raise
            except Exception as exc:  # whatever the backend raises: typed, named, the cause chained
                named = feeds if named is None else named
                ordered = {n: named[n] for n in self.spec.input_names if n in named}  # the spec's order
                raise BackendRunError(self.spec.name, self.backend, shapes_of(ordered or named), exc) from exc
            elapsed = time.perf_counter() - t0
        with self._stats_lock:
            self.seconds += elapsed
            self.calls += 1
        missing = [n for n in self.spec.output_names if n not in out]
        if missing:
            raise InputSpecError(f"{self.spec.name}: backend {self.backend} returned no {missing}")
        return out

    @abc.abstractmethod
    def _run(self, feeds: Feeds) -> Feeds:
        """Run validated inputs; return every output named in the spec."""

    def settings(self) -> dict[str, Any]:
        """The backend settings in force (threads, device, precision hint ...), for timing reports."""
        return {}

    def close(self) -> None:  # noqa: B027  (sessions without resources need nothing)
        """Release what the session holds; it is not used again."""


class Components(abc.ABC):
    """What a runtime runs: a model's components as sessions, and what it must know of them. A loaded bundle's
    `Backend` is one; the PyTorch reference (`linearsr_edge.reference`) is another."""

    name: str = ""  # the backend's name in reports
    bundle: Bundle | None = None
    options: BackendOptions | None = None

    def __init__(self, cfg: ModelConfig, codec_factor: int, specs: dict[str, ComponentSpec], tags) -> None:
        self.cfg, self.codec_factor, self.specs, self.tags = cfg, codec_factor, dict(specs), tags

    @abc.abstractmethod
    def open(self, component: str) -> Session:
        """The session of one component."""

    def sizes(self) -> SizePolicy:
        """The input sizes the sessions take: the components' own policy (the most restricted of them, with the
        smallest ``max_batch``); a backend's option may pin one."""
        policies = [spec.sizes for spec in self.specs.values()]
        base = next((p for p in policies if p.restricted), policies[0])
        batches = [p.max_batch for p in policies if p.max_batch is not None]
        return replace(base, max_batch=min(batches)) if batches else base

    def component_bytes(self) -> dict[str, int]:
        """Each component's bytes (its session's size, for residency budgets); empty when unknown."""
        return {}

    def close(self) -> None:  # noqa: B027  (most share nothing)
        """Release what the sessions shared; called after every session closed."""


class Backend(Components):
    """One bundle loaded on one backend: opens its components' sessions and holds what they share (a device
    memory pool, a compiled-model cache). The runtime that loaded it owns it, and closes it after its sessions."""

    def __init__(self, bundle: Bundle, options: BackendOptions) -> None:
        names = bundle.component_names()
        super().__init__(bundle.cfg, bundle.codec_factor, {n: bundle.spec(n) for n in names}, bundle.tags())
        self.bundle, self.options = bundle, options

    @classmethod
    def prepare(cls, bundle: Bundle, options: BackendOptions, build: Build) -> Bundle:
        """Make the bundle runnable here before any session opens, or refuse (TensorRT: engines built for this
        device, built now only with ``build="if-needed"``). Returns the bundle to load (the same by default)."""
        return bundle

    def component_bytes(self) -> dict[str, int]:
        return {n: self.bundle.component_bytes(n) for n in self.specs}


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


@dataclass(frozen=True)
class BackendInfo:
    name: str
    formats: tuple[str, ...]  # bundle formats it runs
    requires: tuple[str, ...]
    extra: str
    priority: int  # higher wins for backend="auto"
    runtime: str | type[Backend]  # the `Backend` subclass, or "package.module:Class" (imported when used)
    options: type[BackendOptions] = BackendOptions
    version: Callable[[], str] = lambda: "?"  # the installed package's version, for reports
    # the options a bundle's verification runs with (exact arithmetic: e.g. OpenVINO's f32 hint);
    # None: the defaults
    parity_options: BackendOptions | None = None
    platforms: tuple[str, ...] = ()  # ``sys.platform`` values it runs on; empty: any
    platform_note: str = ""  # why, and what to do elsewhere
    # "module:function(threads, n) -> GFLOP/s": this backend's float32 n x n matrix product rate with ``threads``
    # threads, for linearsr-profile's roofline (the limit is the best rate of any installed backend and NumPy)
    gemm_probe: str = ""
    # the same for its INT8 product (uint8 x int8 as its quantized MatMuls run), GOP/s: INT8 bundles' limit
    int8_gemm_probe: str = ""

    @property
    def available(self) -> bool:
        return unavailable_reason(self) is None

    @property
    def backend_class(self) -> type[Backend]:
        return load_callable(self.runtime) if isinstance(self.runtime, str) else self.runtime

    def check_options(self, options: BackendOptions | None) -> BackendOptions:
        """The options to open sessions with: defaults for None, refused when typed for another backend."""
        if options is None:
            return self.options()
        if not isinstance(options, self.options):
            raise ConfigError(f"backend {self.name!r} takes {self.options.__name__}, got {type(options).__name__}")
        return options

    def verification_options(self) -> BackendOptions:
        return self.parity_options if self.parity_options is not None else self.options()


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
