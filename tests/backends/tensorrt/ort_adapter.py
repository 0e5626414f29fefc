"""The TensorRT family's adapter interface implemented with ONNX Runtime, for Linux tests.

Not a fake of TensorRT: an implementation of `linearsr_edge.backends.tensorrt.adapter.TensorRT`'s interface
in which an "engine" is the bundle's own ONNX graph run by ONNX Runtime, "device memory" is host memory
addressed by integers, and every call is counted, so that the family's session, scratch pool, buffers,
engine build and bookkeeping run here, over the same graphs a Jetson would build engines from. Tests that
use it say so in their names (``..._on_onnx_runtime``).
"""

from __future__ import annotations

import itertools
import threading
from collections import Counter
from pathlib import Path
from typing import ClassVar

import numpy as np
import onnxruntime as ort

from linearsr_edge.backends.tensorrt.adapter import CudaError
from linearsr_edge.backends.tensorrt.plan import GpuTarget
from linearsr_edge.backends.tensorrt.session import TRTBackend


class OrtEngine:
    def __init__(self, serialized: bytes) -> None:
        self.session = ort.InferenceSession(serialized, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.outputs = [o.name for o in self.session.get_outputs()]
        # scratch grows with the network, as TensorRT's activation memory does: the experts need more than the codec
        self.scratch = 1 << max(12, len(serialized).bit_length() - 2)


class OrtContext:
    def __init__(self, engine: OrtEngine) -> None:
        self.engine = engine
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.addresses: dict[str, int] = {}
        self.scratch: tuple[int, int] | None = None
        self._out_shapes: dict[tuple, dict[str, tuple[int, ...]]] = {}


class OrtTensorRT:
    """TensorRT's adapter interface on ONNX Runtime (see the module docstring). Class attributes configure it per
    test; ``calls`` counts every call by name, ``allocations`` maps live pointers to their device."""

    devices = 2
    tensorrt_version = "10.3.0.30"
    fail_load_after: int | None = None  # a load that fails (a corrupt engine), after this many
    fail_execute: bool = False
    instances: ClassVar[list[OrtTensorRT]] = []

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.memory: dict[int, bytearray] = {}
        self.allocations: dict[int, int] = {}  # ptr -> the device current when it was allocated
        self.executions: list[tuple[str, int]] = []  # (thread name, current device) per execute
        self._ids = itertools.count(1 << 20, 1 << 12)
        self._local = threading.local()
        self._lock = threading.Lock()
        type(self).instances.append(self)

    # -- what is here ---------------------------------------------------------------------------
    def version(self) -> str:
        return self.tensorrt_version

    def can_build(self) -> bool:
        return True

    def set_device(self, device: int) -> None:
        self.calls["set_device"] += 1
        if not 0 <= device < self.devices:
            raise CudaError(f"CUDA cudaSetDevice({device}) failed: cudaErrorInvalidDevice")
        self._local.device = device

    def current(self) -> int:
        return getattr(self._local, "device", 0)

    def gpu(self, device: int) -> GpuTarget:
        return GpuTarget(self.tensorrt_version, f"ONNX Runtime stand-in GPU {device}", "8.7")

    # -- building -------------------------------------------------------------------------------
    def build(self, onnx_path: Path, profile, workspace_mib: int, level: int, timing_cache: bytes):
        self.calls["build"] += 1
        return Path(onnx_path).read_bytes(), timing_cache + b"."

    # -- engines and contexts -------------------------------------------------------------------
    def load(self, serialized: bytes) -> OrtEngine:
        self.calls["load"] += 1
        if self.fail_load_after is not None and self.calls["load"] > self.fail_load_after:
            raise CudaError("TensorRT cannot deserialize the engine (built for another TensorRT or GPU?)")
        return OrtEngine(serialized)

    def scratch_bytes(self, engine: OrtEngine) -> int:
        return engine.scratch

    def context(self, engine: OrtEngine) -> OrtContext:
        self.calls["context"] += 1
        return OrtContext(engine)

    def set_scratch(self, context: OrtContext, ptr: int, size: int) -> None:
        if ptr not in self.memory or len(self.memory[ptr]) < size:
            raise CudaError("scratch memory set to a block that is not allocated")
        context.scratch = (ptr, size)

    def set_input_shape(self, context: OrtContext, name: str, shape) -> None:
        context.shapes[name] = tuple(int(v) for v in shape)

    def tensor_shape(self, context: OrtContext, name: str) -> tuple[int, ...]:
        if name in context.engine.inputs:
            return context.shapes[name]
        key = tuple(context.shapes[n] for n in context.engine.inputs)
        if key not in context._out_shapes:  # what TensorRT infers from the input shapes: one run on zeros
            feeds = {n: np.zeros(s, np.float32) for n, s in zip(context.engine.inputs, key, strict=True)}
            if "sigma" in feeds:
                feeds["sigma"][:] = 0.5
            outs = context.engine.session.run(context.engine.outputs, feeds)
            context._out_shapes[key] = {n: o.shape for n, o in zip(context.engine.outputs, outs, strict=True)}
        return context._out_shapes[key][name]

    def set_address(self, context: OrtContext, name: str, ptr: int) -> None:
        context.addresses[name] = ptr

    def execute(self, context: OrtContext, stream) -> None:
        self.calls["execute"] += 1
        self.executions.append((threading.current_thread().name, self.current()))
        if self.fail_execute:
            raise CudaError("TensorRT execute_async_v3 failed")
        if context.scratch is None or context.scratch[0] not in self.memory:
            raise CudaError("the context runs without its scratch memory")
        engine = context.engine
        feeds = {}
        for name in engine.inputs:
            shape = context.shapes[name]
            raw = self.memory[context.addresses[name]]
            feeds[name] = np.frombuffer(bytes(raw[: 4 * int(np.prod(shape))]), np.float32).reshape(shape)
        for name, out in zip(engine.outputs, engine.session.run(engine.outputs, feeds), strict=True):
            data = np.ascontiguousarray(out, np.float32).tobytes()
            self.memory[context.addresses[name]][: len(data)] = data

    # -- memory and streams ---------------------------------------------------------------------
    def malloc(self, nbytes: int) -> int:
        with self._lock:
            ptr = next(self._ids)
            self.memory[ptr] = bytearray(nbytes)
            self.allocations[ptr] = self.current()
        self.calls["malloc"] += 1
        return ptr

    def free(self, ptr: int) -> None:
        with self._lock:
            if ptr not in self.memory:
                raise CudaError("cudaFree of a pointer that is not allocated")
            del self.memory[ptr], self.allocations[ptr]
        self.calls["free"] += 1

    def to_device(self, ptr: int, array: np.ndarray, stream) -> None:
        self.calls["to_device"] += 1
        data = np.ascontiguousarray(array).tobytes()
        self.memory[ptr][: len(data)] = data

    def to_host(self, array: np.ndarray, ptr: int, stream) -> None:
        array[...] = np.frombuffer(bytes(self.memory[ptr][: array.nbytes]), array.dtype).reshape(array.shape)

    def stream(self):
        self.calls["stream"] += 1
        return object()

    def synchronize(self, stream) -> None:
        pass

    def destroy_stream(self, stream) -> None:
        self.calls["destroy_stream"] += 1


class OrtDrivenTRTBackend(TRTBackend):
    """The ``tensorrt`` backend with its vendor calls answered by `OrtTensorRT`."""

    adapter = OrtTensorRT


def backend_with(**settings) -> type[TRTBackend]:
    """A `TRTBackend` whose adapter is an `OrtTensorRT` configured with ``settings`` (class attributes)."""
    adapter = type("ConfiguredOrtTensorRT", (OrtTensorRT,), {**settings, "instances": []})
    return type("ConfiguredTRTBackend", (TRTBackend,), {"adapter": adapter})
