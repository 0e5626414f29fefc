"""The ``tensorrt`` backend and the on-device engine build, on TensorRT's Python API (10.3 to 11) and
``cuda-python`` (no pycuda).

- `build_engines` builds each component's engine from the bundle's ONNX graph as a strongly typed
  network with the recipe's optimization profile, workspace and timing cache, records the
  TensorRT version, GPU and compute capability in the manifest, then re-runs the bundle's golden
  set on the engines: a pass marks the bundle verified.
- `TRTSession` deserializes an engine, allocates device I/O once per input shape, and runs on its
  own CUDA stream. The resident engines of one runtime share one device-memory pool for their
  scratch memory (contexts created with user-managed memory); a lock serializes their runs.
- An engine built for another TensorRT or GPU, or missing, is rebuilt when TensorRT's builder is
  present, else refused with the exact ``linearsr-build-engines`` command
  (`linearsr_edge.tensorrt_plan.engine_action`).

Nothing here runs without TensorRT + CUDA; every decision lives in `linearsr_edge.tensorrt_plan`.
"""

from __future__ import annotations

import json
import logging
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from linearsr_edge.errors import BackendUnavailableError, ConfigError, ExportError, QualityGateError
from linearsr_edge.options import flag
from linearsr_edge.runtimes.base import BackendInfo, BackendOptions, Session, register_backend
from linearsr_edge.tensorrt_plan import GpuTarget, engine_action, engine_mismatch

if TYPE_CHECKING:
    from linearsr_edge.bundle import Bundle

log = logging.getLogger(__name__)
REQUIRES = "requires TensorRT + CUDA (JetPack, or pip install 'linearsr-edge[tensorrt]' with an NVIDIA GPU)"


@dataclass(frozen=True)
class TRTRuntimeOptions(BackendOptions):
    """TensorRT session options."""

    device: int = flag(0, "--cuda-device", "CUDA device index (default 0)", type=int)
    rebuild: bool = flag(
        True, "--no-rebuild", "refuse engines built for another GPU/TensorRT instead of rebuilding them", invert=True
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if isinstance(self.device, bool) or not isinstance(self.device, int) or self.device < 0:
            raise ConfigError(f"device must be a CUDA device index >= 0, got {self.device!r}")


def _cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        from cuda import cudart  # older cuda-python
    return cudart


def _check(result):
    """cuda-python returns ``(error, *values)``; raise on an error, return the values."""
    err, *values = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise RuntimeError(f"CUDA error {err}")
    return values[0] if len(values) == 1 else values


def this_gpu(device: int = 0) -> GpuTarget:
    """The installed TensorRT and the GPU ``device`` (name, compute capability)."""
    import tensorrt as trt

    cudart = _cudart()
    prop = _check(cudart.cudaGetDeviceProperties(device))
    name = prop.name.decode() if isinstance(prop.name, bytes) else str(prop.name)
    return GpuTarget(trt.__version__, name.strip("\x00"), f"{prop.major}.{prop.minor}")


def _logger():
    import tensorrt as trt

    return trt.Logger(trt.Logger.WARNING)


# -- building engines -----------------------------------------------------------------------------
def build_engine(onnx_path: Path, profile: dict, workspace_mib: int, level: int, timing_cache: bytes) -> tuple:
    """One strongly typed engine from an ONNX graph; returns (serialized engine, updated timing cache)."""
    import tensorrt as trt

    logger = _logger()
    builder = trt.Builder(logger)
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ExportError(f"TensorRT cannot parse {onnx_path.name}: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mib << 20)
    config.builder_optimization_level = level
    opt_profile = builder.create_optimization_profile()
    for name, shapes in profile.items():
        opt_profile.set_shape(name, shapes["min"], shapes["opt"], shapes["max"])
    config.add_optimization_profile(opt_profile)
    cache = config.create_timing_cache(timing_cache)
    config.set_timing_cache(cache, ignore_mismatch=False)
    engine = builder.build_serialized_network(network, config)
    if engine is None:
        raise ExportError(f"TensorRT could not build an engine from {onnx_path.name} (see its log above)")
    return bytes(engine), bytes(config.get_timing_cache().serialize())


def build_engines(bundle_path: str | Path, workspace_mib: int | None = None, device: int = 0, progress: bool = True):
    """Build every engine of a TensorRT bundle on this device, record where in the manifest, re-run the
    golden set on the engines and mark the bundle verified (or raise `QualityGateError`)."""
    from tqdm import tqdm

    from linearsr_edge.bundle import MANIFEST, Bundle, sha256_file
    from linearsr_edge.fileio import atomic_write_bytes, atomic_write_text

    bundle = Bundle.load(bundle_path)
    recipe = bundle.manifest.get("tensorrt")
    if bundle.format != "tensorrt" or not recipe:
        raise ConfigError(f"{bundle.path} is a {bundle.target} bundle, not a TensorRT one (trt-fp16 / trt-int8)")
    try:
        _cudart().cudaSetDevice(device)
        here = this_gpu(device)
    except ImportError:
        raise BackendUnavailableError(f"linearsr-build-engines {REQUIRES}") from None
    workspace = workspace_mib or recipe["workspace_mib"]
    cache_path = bundle.path / recipe["timing_cache"]
    cache = cache_path.read_bytes() if cache_path.is_file() else b""
    (bundle.path / Path(recipe["timing_cache"]).parent).mkdir(exist_ok=True)
    files = {}
    entries = recipe["components"].values()
    for entry in tqdm(entries, desc="build engines", unit="engine", disable=not progress):
        engine, cache = build_engine(
            bundle.path / entry["onnx"], entry["profile"], workspace, recipe["builder_optimization_level"], cache
        )
        atomic_write_bytes(bundle.path / entry["engine"], engine)
        files[entry["engine"]] = sha256_file(bundle.path / entry["engine"])
    atomic_write_bytes(cache_path, cache)
    manifest = json.loads((bundle.path / MANIFEST).read_text())
    manifest["tensorrt"]["engines"] = {**here.to_dict(), "workspace_mib": workspace}
    manifest["files"].update(files)
    atomic_write_text(bundle.path / MANIFEST, json.dumps(manifest, indent=2) + "\n")

    from linearsr_edge.runtimes.sr import SRRuntime

    with SRRuntime.load(bundle.path, backend="tensorrt", options=TRTRuntimeOptions(device=device)) as runtime:
        report = runtime.verify()
    manifest["verification"] = {
        **manifest.get("verification", {}),
        "verified": report.passed,
        "backend": "tensorrt",
        "backend_version": here.tensorrt,
        "backend_settings": {"gpu": here.gpu, "compute_capability": here.compute_capability},
        "golden_rows": [r.to_dict() for r in report.rows],
    }
    if report.passed:
        manifest["verification"].pop("reason", None)
    atomic_write_text(bundle.path / MANIFEST, json.dumps(manifest, indent=2) + "\n")
    if not report.passed:
        raise QualityGateError(
            f"{bundle.path}: the engines miss the bundle's quality gates on {here.gpu}: "
            f"{', '.join(report.failed_components)}"
        )
    return here, report


# -- running engines ------------------------------------------------------------------------------
class DevicePool:
    """Scratch memory shared by the execution contexts of one runtime's resident engines: one block as
    large as the largest engine needs. They run one at a time (``lock``)."""

    def __init__(self) -> None:
        self.ptr, self.size = 0, 0
        self.contexts: weakref.WeakSet = weakref.WeakSet()
        self.lock = threading.Lock()

    def bind(self, context, size: int) -> None:
        cudart = _cudart()
        with self.lock:
            if size > self.size:
                if self.ptr:
                    _check(cudart.cudaFree(self.ptr))
                self.ptr, self.size = _check(cudart.cudaMalloc(size)), size
                for other in self.contexts:
                    _set_memory(other, self.ptr, self.size)
            self.contexts.add(context)
            _set_memory(context, self.ptr, self.size)


def _set_memory(context, ptr: int, size: int) -> None:
    if hasattr(context, "set_device_memory"):  # TensorRT >= 10.1
        context.set_device_memory(ptr, size)
    else:
        context.device_memory = ptr


class TRTSession(Session):
    backend = "tensorrt"

    def __init__(self, bundle: Bundle, component: str, options: TRTRuntimeOptions) -> None:
        import tensorrt as trt

        super().__init__(bundle.spec(component))
        cudart = _cudart()
        _check(cudart.cudaSetDevice(options.device))
        self.options = options
        recipe = bundle.manifest["tensorrt"]
        engine_file = bundle.path / recipe["components"][component]["engine"]
        here = this_gpu(options.device)
        missing = [] if engine_file.is_file() else [engine_file.name]
        mismatch = engine_mismatch(recipe.get("engines"), here, missing)
        action, message = engine_action(mismatch, options.rebuild and hasattr(trt, "Builder"), bundle.path)
        if action == "refuse":
            raise BackendUnavailableError(message)
        if action == "rebuild":
            log.warning("%s: %s", bundle.path, message)
            build_engines(bundle.path, device=options.device)
        self.engine = trt.Runtime(_logger()).deserialize_cuda_engine(engine_file.read_bytes())
        if self.engine is None:
            raise BackendUnavailableError(f"TensorRT cannot deserialize {engine_file}")
        strategy = trt.ExecutionContextAllocationStrategy.USER_MANAGED
        self.context = self.engine.create_execution_context(strategy)
        pool = bundle.__dict__.setdefault("_trt_pool", DevicePool())  # one per loaded bundle (runtime)
        size = getattr(self.engine, "device_memory_size_v2", None) or self.engine.device_memory_size
        pool.bind(self.context, size)
        self.pool = pool
        self.stream = _check(cudart.cudaStreamCreate())
        self._io: dict[tuple, dict[str, tuple[int, int]]] = {}  # input shapes -> {tensor: (device ptr, bytes)}
        self.gpu = here

    def _buffers(self, feeds: dict[str, np.ndarray]) -> dict[str, tuple[int, int]]:
        """Device I/O for these input shapes, allocated once per shape (outputs sized by TensorRT)."""
        key = tuple(feeds[n].shape for n in self.spec.input_names)
        if key not in self._io:
            cudart = _cudart()
            for name, array in feeds.items():
                self.context.set_input_shape(name, array.shape)
            buffers = {}
            for name in (*self.spec.input_names, *self.spec.output_names):
                shape = tuple(self.context.get_tensor_shape(name))
                nbytes = int(np.prod(shape)) * np.dtype(np.float32).itemsize
                buffers[name] = (_check(cudart.cudaMalloc(nbytes)), nbytes)
            self._io[key] = buffers
        return self._io[key]

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        cudart = _cudart()
        h2d, d2h = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice, cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        with self.pool.lock:
            buffers = self._buffers(feeds)
            hosts = {n: np.ascontiguousarray(a, np.float32) for n, a in feeds.items()}
            for name, array in hosts.items():
                self.context.set_input_shape(name, array.shape)
                ptr, nbytes = buffers[name]
                _check(cudart.cudaMemcpyAsync(ptr, array.ctypes.data, nbytes, h2d, self.stream))
            for name, (ptr, _) in buffers.items():
                self.context.set_tensor_address(name, ptr)
            if not self.context.execute_async_v3(self.stream):
                raise RuntimeError(f"TensorRT failed to run {self.spec.name}")
            outputs = {}
            for name in self.spec.output_names:
                out = np.empty(tuple(self.context.get_tensor_shape(name)), np.float32)
                ptr, nbytes = buffers[name]
                _check(cudart.cudaMemcpyAsync(out.ctypes.data, ptr, out.nbytes, d2h, self.stream))
                outputs[name] = out
            _check(cudart.cudaStreamSynchronize(self.stream))
        return outputs

    def settings(self) -> dict[str, Any]:
        return {"device": f"cuda:{self.options.device} {self.gpu.gpu}", "tensorrt": self.gpu.tensorrt}

    def close(self) -> None:
        cudart = _cudart()
        for buffers in self._io.values():
            for ptr, _ in buffers.values():
                cudart.cudaFree(ptr)
        self._io.clear()
        if getattr(self, "stream", None) is not None:
            cudart.cudaStreamDestroy(self.stream)
            self.stream = None
        self.context = self.engine = None


def _version() -> str:
    import tensorrt as trt

    return trt.__version__


register_backend(
    BackendInfo(
        name="tensorrt",
        formats=("tensorrt",),
        requires=("tensorrt", "cuda"),
        extra="tensorrt",
        priority=30,
        factory=lambda bundle, component, options: TRTSession(bundle, component, options),
        options=TRTRuntimeOptions,
        version=_version,
    )
)
