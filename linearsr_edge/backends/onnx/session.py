"""ONNX Runtime sessions: CPU everywhere, plus CUDA / TensorRT / CoreML / OpenVINO EPs when installed."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from linearsr_edge.errors import BundleError, ConfigError
from linearsr_edge.options import flag
from linearsr_edge.runtimes.base import BackendInfo, BackendOptions, Session, register_backend
from linearsr_edge.specs import ComponentSpec

if TYPE_CHECKING:
    from linearsr_edge.bundle import Bundle

log = logging.getLogger(__name__)

# Preferred execution providers, best first; only those the installed onnxruntime offers are used.
PROVIDER_ORDER = (
    "TensorrtExecutionProvider",
    "CUDAExecutionProvider",
    "CoreMLExecutionProvider",
    "OpenVINOExecutionProvider",
    "CPUExecutionProvider",
)


@dataclass(frozen=True)
class OrtOptions(BackendOptions):
    """ONNX Runtime session options."""

    # execution providers in priority order (None: the best installed); "tensorrt", "cuda", "cpu" ... or full names
    providers: tuple[str, ...] | None = flag(
        None,
        "--providers",
        "ONNX Runtime execution providers in order, e.g. tensorrt cuda cpu (default: the best installed); "
        "TensorRT EP profiles and caches come from the bundle",
        nargs="+",
        metavar="EP",
    )
    provider_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    # "priority": ORT's priority-based node order, which frees tensors as soon as their last reader
    # ran; it cut the FP16 range probe's peak RSS from 7.0 to 2.1 GB (many extra readers per tensor)
    execution_order: str = "default"
    # ORT session config entries, e.g. {"session.x64quantprecision": "1"} (U8U8 kernels on x64 without VNNI,
    # no saturation) or {"session.disable_quant_qdq": "1"} (Q/DQ evaluated as float ops: no integer kernels)
    session_config: dict[str, str] = field(default_factory=dict)
    # CPU sessions draw their activations from one arena shared by the process (ORT's environment allocator)
    # instead of an arena each: an arena keeps its largest run's memory, so four resident experts held four.
    # Measured on the demo (640x480 frame, onnx-fp32): peak RSS 3040 -> 1274 MiB, the same speed.
    shared_arena: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.providers is not None:
            object.__setattr__(self, "providers", tuple(provider_name(p) for p in self.providers))
        if self.execution_order not in ("default", "priority"):
            raise ConfigError(f"execution_order must be 'default' or 'priority', got {self.execution_order!r}")
        unknown = [p for p in self.provider_options if self.providers is not None and p not in self.providers]
        if unknown:
            raise ConfigError(f"provider_options name providers that are not requested: {unknown}")


SHORT_PROVIDERS = {p.removesuffix("ExecutionProvider").lower(): p for p in PROVIDER_ORDER}


def provider_name(name: str) -> str:
    """``"tensorrt"`` -> ``"TensorrtExecutionProvider"``; full names pass through."""
    return SHORT_PROVIDERS.get(name.lower(), name)


def choose_providers(available: list[str], requested: tuple[str, ...] | None) -> list[str]:
    """Requested providers that are available (in the requested order), else the preferred order."""
    if requested:
        missing = [p for p in requested if p not in available]
        if missing:
            raise BundleError(f"ONNX Runtime providers {missing} are not available here (available: {available})")
        return list(requested)
    return [p for p in PROVIDER_ORDER if p in available] or ["CPUExecutionProvider"]


_arena_lock = threading.Lock()
_arena_registered = False


def register_shared_arena() -> None:
    """Register one CPU arena with ORT's environment, once per process, for sessions that ask for it
    (``session.use_env_allocators``). It grows as large as the largest single run and serves every
    session; runs that overlap in time take their own parts of it. If the application registered an
    environment allocator of its own, that one is used."""
    global _arena_registered
    import onnxruntime as ort

    with _arena_lock:
        if _arena_registered:
            return
        info = ort.OrtMemoryInfo("Cpu", ort.OrtAllocatorType.ORT_ARENA_ALLOCATOR, 0, ort.OrtMemType.DEFAULT)
        # max_mem 0 (no limit), extend by what is asked (1: kSameAsRequested, not the next power of two)
        try:
            ort.create_and_register_allocator(info, ort.OrtArenaCfg(0, 1, -1, -1))
        except Exception as exc:  # ORT raises its own Fail type when one is registered already
            log.debug("an environment allocator is already registered (%s): using it", exc)
        _arena_registered = True


class ORTSession(Session):
    backend = "onnxruntime"
    thread_safe = True  # InferenceSession.run is safe to call from several threads

    def __init__(self, path: Path, spec: ComponentSpec, options: OrtOptions | None = None) -> None:
        import onnxruntime as ort

        super().__init__(spec)
        options = options or OrtOptions()
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.log_severity_level = 3
        if options.threads:
            so.intra_op_num_threads = options.threads
        if options.execution_order == "priority":
            so.execution_order = ort.ExecutionOrder.PRIORITY_BASED
        if options.shared_arena:
            register_shared_arena()
            so.add_session_config_entry("session.use_env_allocators", "1")
        for key, value in options.session_config.items():
            so.add_session_config_entry(key, str(value))
        providers = choose_providers(ort.get_available_providers(), options.providers)
        with_opts = [(p, options.provider_options.get(p, {})) for p in providers]
        try:
            self._sess = ort.InferenceSession(str(path), sess_options=so, providers=with_opts)
        except Exception as exc:  # ORT raises its own Fail/InvalidGraph/NoSuchFile types
            raise BundleError(f"ONNX Runtime cannot load {path.name}: {exc}") from None
        self.providers = self._sess.get_providers()
        self.session_config = dict(options.session_config)
        self._outputs = [o.name for o in self._sess.get_outputs()]

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(self._outputs, self._sess.run(self._outputs, feeds), strict=True))

    def settings(self) -> dict[str, Any]:
        so = self._sess.get_session_options() if self._sess is not None else None
        settings = {"providers": self.providers, "threads": (so.intra_op_num_threads or None) if so else None}
        if self.session_config:
            settings["session_config"] = dict(self.session_config)
        return settings

    def close(self) -> None:
        self._sess = None


def with_tensorrt_profiles(options: OrtOptions, spec: ComponentSpec, cache_dir: Path) -> OrtOptions:
    """Fill the TensorRT EP's options from the component spec (optimization profile, engine and timing
    caches) when that EP is requested and not configured by the caller."""
    from dataclasses import replace

    from linearsr_edge.tensorrt_plan import tensorrt_ep_options

    ep = "TensorrtExecutionProvider"
    if not options.providers or ep not in options.providers:
        return options
    filled = {**tensorrt_ep_options(spec, cache_dir), **options.provider_options.get(ep, {})}
    return replace(options, provider_options={**options.provider_options, ep: filled})


def _from_bundle(bundle: Bundle, component: str, options: BackendOptions) -> Session:
    spec = bundle.spec(component)
    if isinstance(options, OrtOptions):
        from linearsr_edge.verify import cache_dir

        options = with_tensorrt_profiles(options, spec, cache_dir() / "ort-trt" / bundle.path.name)
    return ORTSession(bundle.file(component), spec, options)


def _version() -> str:
    import onnxruntime as ort

    return ort.__version__


register_backend(
    BackendInfo(
        name="onnxruntime",
        formats=("onnx", "tensorrt"),  # a TensorRT bundle's graphs are ONNX (TensorRT EP on NVIDIA, CPU anywhere)
        requires=("onnxruntime",),
        extra="onnx",
        priority=10,
        factory=_from_bundle,
        options=OrtOptions,
        version=_version,
    )
)
