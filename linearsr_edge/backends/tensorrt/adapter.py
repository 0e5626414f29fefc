"""Every TensorRT and CUDA call of the family, behind one small interface (`TensorRT`).

TensorRT's Python API (10.3, JetPack 6, to 11) and ``cuda-python`` (no pycuda). Nothing else in the family
imports ``tensorrt`` or ``cuda``: the session, the scratch pool, the buffers, the engine build and its
bookkeeping are plain Python over this interface, and the Linux tests drive them with an implementation of
the same interface that runs the bundle's ONNX graphs in ONNX Runtime (``tests/backends/tensorrt``).
CUDA errors become `CudaError` (a `LinearSRError`: one line from a CLI), naming the call.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np

from linearsr_edge.backends.tensorrt.plan import GpuTarget, Profile
from linearsr_edge.errors import ExportError, LinearSRError


class CudaError(LinearSRError, RuntimeError):
    """A CUDA or TensorRT runtime call failed; the message names the call and the error."""


def installed_version() -> str:
    """The installed TensorRT's version (for reports)."""
    import tensorrt as trt

    return trt.__version__


def _cudart():
    try:
        from cuda.bindings import runtime as cudart  # cuda-python >= 12.6
    except ImportError:
        from cuda import cudart  # older cuda-python
    return cudart


class TensorRT:
    """The vendor: devices, the engine builder, engines and execution contexts, device memory and streams."""

    def __init__(self) -> None:
        import tensorrt as trt

        self.trt = trt
        self.cudart = _cudart()
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._lock = threading.Lock()

    def _check(self, call: str, result):
        """cuda-python returns ``(error, *values)``: raise `CudaError` naming ``call``, else the value(s)."""
        err, *values = result if isinstance(result, tuple) else (result,)
        if int(err) != 0:
            raise CudaError(f"CUDA {call} failed: {err}")
        return values[0] if len(values) == 1 else (tuple(values) if values else None)

    # -- what is here ---------------------------------------------------------------------------
    def version(self) -> str:
        return self.trt.__version__

    def can_build(self) -> bool:
        return hasattr(self.trt, "Builder")

    def set_device(self, device: int) -> None:
        """Make ``device`` current for this host thread (the current device is per thread)."""
        self._check(f"cudaSetDevice({device})", self.cudart.cudaSetDevice(device))

    def gpu(self, device: int) -> GpuTarget:
        prop = self._check(f"cudaGetDeviceProperties({device})", self.cudart.cudaGetDeviceProperties(device))
        name = prop.name.decode() if isinstance(prop.name, bytes) else str(prop.name)
        return GpuTarget(self.version(), name.strip("\x00"), f"{prop.major}.{prop.minor}")

    # -- building -------------------------------------------------------------------------------
    def build(self, onnx_path: Path, profile: Profile, workspace_mib: int, level: int, timing_cache: bytes):
        """One strongly typed engine from an ONNX graph: (serialized engine, updated timing cache)."""
        trt = self.trt
        builder = trt.Builder(self._logger)
        network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
        parser = trt.OnnxParser(network, self._logger)
        if not parser.parse_from_file(str(onnx_path)):
            errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
            raise ExportError(f"TensorRT cannot parse {Path(onnx_path).name}: {errors}")
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
            raise ExportError(f"TensorRT could not build an engine from {Path(onnx_path).name} (see its log above)")
        return bytes(engine), bytes(config.get_timing_cache().serialize())

    # -- engines and contexts -------------------------------------------------------------------
    def load(self, serialized: bytes):
        engine = self.trt.Runtime(self._logger).deserialize_cuda_engine(serialized)
        if engine is None:
            raise CudaError("TensorRT cannot deserialize the engine (built for another TensorRT or GPU?)")
        return engine

    def scratch_bytes(self, engine) -> int:
        """The device memory a context of ``engine`` needs (``device_memory_size_v2`` since TensorRT 10.1; the
        first API was removed in 11)."""
        size = getattr(engine, "device_memory_size_v2", None)
        return int(engine.device_memory_size if size is None else size)

    def context(self, engine):
        """An execution context whose scratch memory the caller provides (`set_scratch`)."""
        return engine.create_execution_context(self.trt.ExecutionContextAllocationStrategy.USER_MANAGED)

    def set_scratch(self, context, ptr: int, size: int) -> None:
        if hasattr(context, "set_device_memory"):  # TensorRT >= 10.1
            context.set_device_memory(ptr, size)
        else:
            context.device_memory = ptr

    def set_input_shape(self, context, name: str, shape: tuple[int, ...]) -> None:
        if not context.set_input_shape(name, tuple(shape)):
            raise CudaError(f"TensorRT refuses the shape {tuple(shape)} for {name}")

    def tensor_shape(self, context, name: str) -> tuple[int, ...]:
        return tuple(context.get_tensor_shape(name))

    def set_address(self, context, name: str, ptr: int) -> None:
        context.set_tensor_address(name, ptr)

    def execute(self, context, stream) -> None:
        if not context.execute_async_v3(stream):
            raise CudaError("TensorRT execute_async_v3 failed")

    # -- memory and streams ---------------------------------------------------------------------
    def malloc(self, nbytes: int) -> int:
        return self._check(f"cudaMalloc({nbytes})", self.cudart.cudaMalloc(nbytes))

    def free(self, ptr: int) -> None:
        self._check("cudaFree", self.cudart.cudaFree(ptr))

    def to_device(self, ptr: int, array: np.ndarray, stream) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        self._check("cudaMemcpyAsync", self.cudart.cudaMemcpyAsync(ptr, array.ctypes.data, array.nbytes, kind, stream))

    def to_host(self, array: np.ndarray, ptr: int, stream) -> None:
        kind = self.cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        self._check("cudaMemcpyAsync", self.cudart.cudaMemcpyAsync(array.ctypes.data, ptr, array.nbytes, kind, stream))

    def stream(self):
        return self._check("cudaStreamCreate", self.cudart.cudaStreamCreate())

    def synchronize(self, stream) -> None:
        self._check("cudaStreamSynchronize", self.cudart.cudaStreamSynchronize(stream))

    def destroy_stream(self, stream) -> None:
        self._check("cudaStreamDestroy", self.cudart.cudaStreamDestroy(stream))
