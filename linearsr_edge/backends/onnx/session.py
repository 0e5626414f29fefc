"""The ``onnxruntime`` backend: CPU everywhere, plus CUDA / TensorRT / CoreML / OpenVINO EPs when installed.

`OrtBackend` opens one `ORTSession` per component of an ``onnx`` bundle (or a ``tensorrt`` bundle's graphs).
Its CPU sessions share one activation arena (`register_shared_arena`); `ORTSession.bind` keeps the inputs
that stay the same across a sampler's steps in an IO binding.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from linearsr_edge.backends.onnx.options import OrtOptions, choose_providers
from linearsr_edge.cache import cache_root
from linearsr_edge.errors import BundleError
from linearsr_edge.machine import best_seconds, machine_summary
from linearsr_edge.pipeline.session import Backend, Binding, Feeds, Session
from linearsr_edge.specs import ComponentSpec

log = logging.getLogger(__name__)


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


def _product_rate(op: str, x: np.ndarray, weight: np.ndarray, out_type: int, threads: int) -> float:
    """ONNX Runtime's rate of the one-node product ``op(x, weight)`` of two ``n x n`` matrices on the CPU with
    ``threads`` threads, best of 5: 2 operations per multiply-add, in billions per second (the graph is built with
    the ``onnx`` package, which runtime-only installs lack: ImportError there)."""
    import onnxruntime as ort
    from onnx import helper, numpy_helper

    n = x.shape[0]
    graph = helper.make_graph(
        [helper.make_node(op, ["a", "w"], ["y"])],
        op,
        [helper.make_tensor_value_info("a", helper.np_dtype_to_tensor_dtype(x.dtype), [n, n])],
        [helper.make_tensor_value_info("y", out_type, [n, n])],
        [numpy_helper.from_array(weight, "w")],
    )
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return 2 * n**3 / best_seconds(lambda: sess.run(None, {"a": x})) / 1e9


def gemm_gflops(threads: int, n: int) -> float:
    """ONNX Runtime's float32 ``n x n`` MatMul on the CPU with ``threads`` threads: GFLOP/s, best of 5."""
    from onnx import TensorProto

    rng = np.random.default_rng(0)
    w, x = (rng.standard_normal((n, n), dtype=np.float32) for _ in range(2))
    return _product_rate("MatMul", x, w, TensorProto.FLOAT, threads)


def int8_gemm_gops(threads: int, n: int) -> float:
    """ONNX Runtime's ``n x n`` uint8 x int8 -> int32 product (``MatMulInteger``, the kernel its quantized
    MatMuls run) on the CPU with ``threads`` threads: GOP/s (2 per multiply-add), best of 5."""
    from onnx import TensorProto

    rng = np.random.default_rng(0)
    w = rng.integers(-64, 64, (n, n), dtype=np.int8)  # 7-bit, as exported
    x = rng.integers(0, 256, (n, n), dtype=np.uint8)
    return _product_rate("MatMulInteger", x, w, TensorProto.INT32, threads)


CACHE_MAX_BYTES = 1 << 30  # larger graphs are not cached (one protobuf file holds at most 2 GiB)


@functools.lru_cache(maxsize=1)
def _machine() -> dict:
    """What an optimized graph is specific to (read once per process: every session of a bundle asks)."""
    return {k: v for k, v in machine_summary().items() if k in ("cpu", "isa", "arch", "isa_cap")}


def optimized_path(folder: Path, path: Path, digest: str, options: OrtOptions, version: str) -> Path:
    """Where the optimized graph of ``path`` (sha256 ``digest``) is cached: keyed by the graph, ONNX Runtime's
    version, this CPU (level-ALL graphs hold layout transforms for its ISA) and the session config entries, which
    can change what the optimizer does (``session.disable_quant_qdq``)."""
    key = {"graph": digest, "ort": version, "machine": _machine(), "config": options.session_config}
    text = json.dumps(key, sort_keys=True)
    return folder / f"{path.stem}-{hashlib.sha256(text.encode()).hexdigest()[:20]}.onnx"


class ORTSession(Session):
    """One ONNX graph on ONNX Runtime. With ``digest`` (the graph's sha256) and the cache on, a CPU session's
    optimized graph is written to the compiled-model cache by the first process and read by the next ones with
    the optimizer off (`optimized_path`)."""

    backend = "onnxruntime"
    thread_safe = True  # InferenceSession.run is safe to call from several threads

    def __init__(
        self, path: Path, spec: ComponentSpec, options: OrtOptions | None = None, digest: str | None = None
    ) -> None:
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
        if not options.spinning:  # unless the caller's session_config says otherwise
            for key in ("session.intra_op.allow_spinning", "session.inter_op.allow_spinning"):
                if key not in options.session_config:
                    so.add_session_config_entry(key, "0")
        for key, value in options.session_config.items():
            so.add_session_config_entry(key, str(value))
        providers = choose_providers(ort.get_available_providers(), options.providers)
        with_opts = [(p, options.provider_options.get(p, {})) for p in providers]
        folder = options.compiled_cache("onnxruntime") if digest and providers == ["CPUExecutionProvider"] else None
        self.cached: Path | None = None  # the optimized graph this session was read from, or written to
        if folder is not None and path.is_file() and path.stat().st_size <= CACHE_MAX_BYTES:
            self.cached = optimized_path(folder, path, digest, options, ort.__version__)
            self._sess = self._from_cache(ort, so, with_opts)
            if self._sess is not None:
                path = self.cached
        if self._sess is None:
            tmp = None
            if self.cached is not None:  # written beside its final name, renamed once the session is made
                tmp = self.cached.with_name(f".{self.cached.name}.{os.getpid()}.{threading.get_ident()}")
                so.optimized_model_filepath = str(tmp)
            try:
                self._sess = ort.InferenceSession(str(path), sess_options=so, providers=with_opts)
            except Exception as exc:  # ORT raises its own Fail/InvalidGraph/NoSuchFile types
                raise BundleError(f"ONNX Runtime cannot load {path.name}: {exc}") from None
            finally:
                if tmp is not None and tmp.is_file() and self._sess is not None:
                    os.replace(tmp, self.cached)
                elif tmp is not None:
                    tmp.unlink(missing_ok=True)
        self.providers = self._sess.get_providers()
        self.session_config = dict(options.session_config)
        self.spinning = options.spinning or options.session_config.get("session.intra_op.allow_spinning") == "1"
        self._outputs = [o.name for o in self._sess.get_outputs()]

    _sess = None

    def _from_cache(self, ort, so, providers):
        """A session of the cached optimized graph (optimizer off: it ran when the graph was written), or None when
        there is none; an unreadable one is removed."""
        if not self.cached.is_file():
            return None
        level = so.graph_optimization_level
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            return ort.InferenceSession(str(self.cached), sess_options=so, providers=providers)
        except Exception as exc:  # a truncated or foreign file: written anew below
            log.warning("ignoring the unreadable cached graph %s (%s)", self.cached, str(exc).splitlines()[0])
            self.cached.unlink(missing_ok=True)
            so.graph_optimization_level = level
            return None

    def _run(self, feeds: Feeds) -> Feeds:
        return dict(zip(self._outputs, self._sess.run(self._outputs, feeds), strict=True))

    def _bind(self, static: Feeds) -> Binding:
        return OrtBinding(self, static)

    def settings(self) -> dict[str, Any]:
        so = self._sess.get_session_options() if self._sess is not None else None
        settings = {"providers": self.providers, "threads": (so.intra_op_num_threads or None) if so else None}
        if so is not None and not self.spinning:
            settings["spinning"] = False
        if self.session_config:
            settings["session_config"] = dict(self.session_config)
        return settings

    def close(self) -> None:
        self._sess = None


class OrtBinding(Binding):
    """ONNX Runtime's IO binding with the static inputs bound once; each run binds the others and the outputs
    (ONNX Runtime allocates them) and runs the binding. One per caller: runs of one session may overlap."""

    def __init__(self, session: ORTSession, static: Feeds) -> None:
        super().__init__(session, static)
        self._io = session._sess.io_binding()
        # held as long as the binding: whether ORT copies a bound array or reads it in place is its business
        self._held = {name: np.ascontiguousarray(array) for name, array in static.items()}
        for name, array in self._held.items():
            self._io.bind_cpu_input(name, array)

    def _run(self, feeds: Feeds) -> Feeds:
        sess = self.session._sess
        held = {name: np.ascontiguousarray(array) for name, array in feeds.items()}  # alive through the run
        for name, array in held.items():
            self._io.bind_cpu_input(name, array)
        for name in self.session._outputs:
            self._io.bind_output(name)
        sess.run_with_iobinding(self._io)
        outputs = self._io.copy_outputs_to_cpu()
        self._io.clear_binding_outputs()
        return dict(zip(self.session._outputs, outputs, strict=True))

    def close(self) -> None:
        self._io = None


def tensorrt_ep_options(spec: ComponentSpec, cache_dir: Path, workspace_mib: int = 4096) -> dict[str, str]:
    """``TensorrtExecutionProvider`` options for one component: its optimization profile from the spec,
    engine and timing caches under ``cache_dir``, and no FP16/INT8 builder flags. ORT's TensorRT EP
    builds *weakly* typed networks, where ``trt_fp16_enable`` lets TensorRT run the FP32 islands in
    FP16; the graph's own types (FP16 graph, explicit Q/DQ) already say what runs in what."""
    profile = spec.profile_shapes()
    cache = str(Path(cache_dir) / spec.name)

    def shapes(which: str) -> str:  # trtexec's --minShapes form: latent:1x12x8x8,sigma:1
        return ",".join(f"{name}:{'x'.join(map(str, s[which]))}" for name, s in profile.items())

    return {
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": cache,
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": cache,
        "trt_max_workspace_size": str(workspace_mib << 20),
        "trt_profile_min_shapes": shapes("min"),
        "trt_profile_opt_shapes": shapes("opt"),
        "trt_profile_max_shapes": shapes("max"),
        "trt_fp16_enable": "False",
        "trt_int8_enable": "False",
    }


def with_tensorrt_profiles(options: OrtOptions, spec: ComponentSpec, cache_dir: Path) -> OrtOptions:
    """Fill the TensorRT EP's options from the component spec (optimization profile, engine and timing
    caches) when that EP is requested and not configured by the caller."""
    ep = "TensorrtExecutionProvider"
    if not options.providers or ep not in options.providers:
        return options
    filled = {**tensorrt_ep_options(spec, cache_dir), **options.provider_options.get(ep, {})}
    return replace(options, provider_options={**options.provider_options, ep: filled})


class OrtBackend(Backend):
    name = "onnxruntime"

    def open(self, component: str) -> Session:
        spec = self.specs[component]
        options = with_tensorrt_profiles(self.options, spec, cache_root("ort-trt") / self.bundle.path.name)
        files = self.bundle.manifest.components[component].files
        digest = self.bundle.manifest.files.get(files[0]) if len(files) == 1 else None  # no external data
        return ORTSession(self.bundle.file(component), spec, options, digest=digest)
