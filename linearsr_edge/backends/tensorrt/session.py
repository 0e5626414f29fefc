"""The ``tensorrt`` backend: engines built for this device, run through the vendor adapter.

* `TRTBackend.prepare` checks, before any session opens, that the bundle's engines were built for this
  GPU and TensorRT; when not, it builds them only with ``SRRuntime.load(..., build="if-needed")`` (and the
  options allow it), else refuses with the exact ``linearsr-build-engines`` command. Opening a session
  never builds anything.
* `TRTSession` deserializes an engine, keeps device I/O per input shape (the most recently used
  ``max_shapes`` sets; older ones are freed), and runs on its own CUDA stream, making its device current
  on the calling thread each time (the current device is per host thread).
* The resident engines of one runtime share one scratch-memory pool (`DevicePool`, owned by the backend
  and freed when the runtime closes); a lock serializes their runs.
* `TRTSession.bind` uploads the inputs that stay the same across a sampler's steps once per buffer set.

Every TensorRT and CUDA call goes through `linearsr_edge.backends.tensorrt.adapter`.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from typing import TYPE_CHECKING, Any

import numpy as np

from linearsr_edge.backends.tensorrt.adapter import TensorRT
from linearsr_edge.backends.tensorrt.options import TRTRuntimeOptions
from linearsr_edge.backends.tensorrt.plan import engine_action, engine_mismatch
from linearsr_edge.errors import BackendUnavailableError, BundleError
from linearsr_edge.pipeline.session import Backend, Binding, Build, Feeds, Session
from linearsr_edge.specs import ComponentSpec

if TYPE_CHECKING:
    from linearsr_edge.bundle import Bundle

log = logging.getLogger(__name__)


class DevicePool:
    """Scratch memory shared by the execution contexts of one runtime's resident engines: one block as large
    as the largest engine needs; their runs take ``lock``. `release` frees it (the runtime's close)."""

    def __init__(self, trt: TensorRT) -> None:
        self.trt = trt
        self.ptr, self.size = 0, 0
        self.contexts: list[Any] = []
        self.lock = threading.Lock()

    def bind(self, context, size: int) -> None:
        with self.lock:
            if size > self.size:
                if self.ptr:
                    self.trt.free(self.ptr)
                self.ptr, self.size = self.trt.malloc(size), size
                for other in self.contexts:
                    self.trt.set_scratch(other, self.ptr, self.size)
            self.contexts.append(context)
            self.trt.set_scratch(context, self.ptr, self.size)

    def unbind(self, context) -> None:
        with self.lock:
            self.contexts = [c for c in self.contexts if c is not context]

    def release(self) -> None:
        with self.lock:
            if self.ptr:
                self.trt.free(self.ptr)
            self.ptr, self.size, self.contexts = 0, 0, []


class TRTSession(Session):
    backend = "tensorrt"

    def __init__(
        self, trt: TensorRT, spec: ComponentSpec, engine: bytes, device: int, pool: DevicePool, max_shapes: int = 4
    ) -> None:
        super().__init__(spec)
        self.trt, self.device, self.pool, self.max_shapes = trt, device, pool, max_shapes
        trt.set_device(device)
        self.engine = trt.load(engine)
        self.context = trt.context(self.engine)
        pool.bind(self.context, trt.scratch_bytes(self.engine))
        self.stream = trt.stream()
        self._io: OrderedDict[tuple, dict[str, tuple[int, int]]] = OrderedDict()  # input shapes -> name: (ptr, bytes)
        self._uploaded: dict[tuple, Binding] = {}  # buffer set -> the binding whose static inputs it holds

    def _buffers(self, feeds: Feeds) -> tuple[tuple, dict[str, tuple[int, int]]]:
        """Device I/O for these input shapes (outputs sized by TensorRT), allocated once per shape; past
        ``max_shapes`` sets, the least recently used is freed."""
        key = tuple(feeds[n].shape for n in self.spec.input_names)
        if key in self._io:
            self._io.move_to_end(key)
            return key, self._io[key]
        for name, array in feeds.items():
            self.trt.set_input_shape(self.context, name, array.shape)
        buffers = {}
        for name in (*self.spec.input_names, *self.spec.output_names):
            nbytes = int(np.prod(self.trt.tensor_shape(self.context, name))) * np.dtype(np.float32).itemsize
            buffers[name] = (self.trt.malloc(nbytes), nbytes)
        self._io[key] = buffers
        while len(self._io) > self.max_shapes:
            old, evicted = self._io.popitem(last=False)
            self._uploaded.pop(old, None)
            for ptr, _ in evicted.values():
                self.trt.free(ptr)
        return key, buffers

    def _run(self, feeds: Feeds) -> Feeds:
        return self._execute(feeds, None)

    def _execute(self, feeds: Feeds, binding: TRTBinding | None) -> Feeds:
        """Upload ``feeds`` (and, for a binding whose static inputs this buffer set does not hold, those), run,
        download the outputs."""
        trt = self.trt
        with self.pool.lock:
            trt.set_device(self.device)  # this host thread's current device
            every = feeds if binding is None else {**binding.static, **feeds}
            key, buffers = self._buffers(every)
            upload = dict(feeds)
            if binding is None:
                self._uploaded.pop(key, None)
            elif self._uploaded.get(key) is not binding:
                upload.update(binding.static)
                self._uploaded[key] = binding
            for name, array in every.items():
                trt.set_input_shape(self.context, name, array.shape)
            for name, array in upload.items():
                host = np.ascontiguousarray(array, np.float32)
                trt.to_device(buffers[name][0], host, self.stream)
            for name, (ptr, _) in buffers.items():
                trt.set_address(self.context, name, ptr)
            trt.execute(self.context, self.stream)
            outputs = {}
            for name in self.spec.output_names:
                out = np.empty(trt.tensor_shape(self.context, name), np.float32)
                trt.to_host(out, buffers[name][0], self.stream)
                outputs[name] = out
            trt.synchronize(self.stream)
        return outputs

    def _bind(self, static: Feeds) -> Binding:
        return TRTBinding(self, static)

    def settings(self) -> dict[str, Any]:
        gpu = self.trt.gpu(self.device)
        return {"device": f"cuda:{self.device} {gpu.gpu}", "tensorrt": gpu.tensorrt}

    def close(self) -> None:
        if self.context is None:
            return
        with self.pool.lock:
            self.trt.set_device(self.device)
            for buffers in self._io.values():
                for ptr, _ in buffers.values():
                    self.trt.free(ptr)
            self._io.clear()
            self._uploaded.clear()
            self.trt.destroy_stream(self.stream)
        self.pool.unbind(self.context)
        self.stream = self.context = self.engine = None


class TRTBinding(Binding):
    """Static inputs uploaded once per buffer set; each run uploads the others."""

    def _run(self, feeds: Feeds) -> Feeds:
        return self.session._execute(feeds, self)

    def close(self) -> None:
        uploaded = getattr(self.session, "_uploaded", {})
        for key in [k for k, b in uploaded.items() if b is self]:
            del uploaded[key]


class TRTBackend(Backend):
    name = "tensorrt"
    adapter: type = TensorRT  # the vendor interface (the Linux tests give an ONNX Runtime one)

    @classmethod
    def prepare(cls, bundle: Bundle, options: TRTRuntimeOptions, build: Build) -> Bundle:
        """The bundle if its engines were built for this GPU and TensorRT; else built now (``build="if-needed"``
        and ``options.rebuild``, where TensorRT's builder is present), else refused with the command."""
        section = bundle.manifest.family("tensorrt")
        if section is None:
            raise BundleError(f"{bundle.path} has no TensorRT recipe: it is a {bundle.target} bundle")
        trt = cls.adapter()
        trt.set_device(options.device)
        missing = [e.engine for e in section.components.values() if not (bundle.path / e.engine).is_file()]
        mismatch = engine_mismatch(section.engines, trt.gpu(options.device), missing)
        may_build = build == "if-needed" and options.rebuild and trt.can_build()
        action, message = engine_action(mismatch, may_build, bundle.path)
        if action == "use":
            return bundle
        if action == "refuse":
            raise BackendUnavailableError(message)
        log.warning("%s: %s", bundle.path, message)
        from linearsr_edge.backends.tensorrt.engines import build_engines

        return build_engines(bundle, cls, options, progress=False).bundle

    def __init__(self, bundle: Bundle, options: TRTRuntimeOptions) -> None:
        super().__init__(bundle, options)
        self.trt = type(self).adapter()
        self.pool = DevicePool(self.trt)
        self.section = bundle.manifest.family("tensorrt")

    def open(self, component: str) -> Session:
        engine = (self.bundle.path / self.section.components[component].engine).read_bytes()
        return TRTSession(self.trt, self.specs[component], engine, self.options.device, self.pool)

    def close(self) -> None:
        self.pool.release()
