"""OpenVINO sessions for ``openvino`` bundles (IR ``.xml`` + ``.bin``): CPU, GPU (iGPU/Arc), NPU, AUTO.

Three things measured on this project's models decide the defaults:

* The inference precision hint is always set. On CPUs with AVX512-BF16 OpenVINO runs bf16 unless
  told otherwise (~1e-2 error): fast, but not what the bundle's gates verified. The default is
  ``f32`` on CPU and AUTO, ``f16`` on GPU and NPU (their native precision); the FP32 islands of the
  precision policy are marked ``precise`` in the IR and stay FP32 under a bf16/f16 hint.
* Each input shape gets its own statically reshaped compiled model (cached, least recently used
  first out): about 10 % faster than one dynamic model here. ``static_shapes=False`` compiles once.
* NPUs compile static shapes only, and each compile is slow: they need the resolution at load.
"""

from __future__ import annotations

import functools
import logging
from collections import OrderedDict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from linearsr_edge.backends.openvino.options import OVOptions, device_base
from linearsr_edge.backends.openvino.plan import HINT_TYPES, hint_mismatch
from linearsr_edge.errors import BundleError, ConfigError
from linearsr_edge.machine import best_seconds
from linearsr_edge.pipeline.session import Backend, Binding, Feeds, Session
from linearsr_edge.specs import ComponentSpec, SizePolicy

if TYPE_CHECKING:
    pass

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=1)
def core():
    """One OpenVINO ``Core`` per process (plugins load once)."""
    import openvino as ov

    return ov.Core()


def check_device(device: str, available: list[str]) -> None:
    """Refuse a device OpenVINO does not offer here, listing those it does."""
    wanted = device.split(":", 1)[1].split(",") if ":" in device else [device]
    if device_base(device) in ("AUTO", "HETERO", "MULTI") and ":" not in device:
        return
    bases = {device_base(d) for d in available}
    missing = [d for d in wanted if d not in available and not (d.upper() in bases and "." not in d)]
    if missing:
        raise ConfigError(
            f"OpenVINO device {', '.join(missing)} is not available here; available devices: "
            f"{', '.join(available) or 'none'} (plus AUTO)"
        )


def compile_config(options: OVOptions) -> dict[str, Any]:
    """The properties every compile passes: the precision hint always, threads and cache when set."""
    config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": options.hint, "PERFORMANCE_HINT": "LATENCY"}
    if options.threads and device_base(options.device) in ("CPU", "AUTO"):
        config["INFERENCE_NUM_THREADS"] = options.threads
    cache = options.compiled_cache("openvino")
    if cache is not None:
        config["CACHE_DIR"] = str(cache)
    return config


def gemm_gflops(threads: int, n: int) -> float:
    """OpenVINO's float32 ``n x n`` matrix product on the CPU with ``threads`` threads: GFLOP/s, best of 5."""
    import openvino as ov
    from openvino import opset13 as ops

    rng = np.random.default_rng(0)
    a = ops.parameter([n, n], np.float32, name="a")
    model = ov.Model([ops.matmul(a, ops.constant(rng.standard_normal((n, n), dtype=np.float32)), False, False)], [a])
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    request = core().compile_model(model, "CPU", config).create_infer_request()
    x = rng.standard_normal((n, n), dtype=np.float32)
    return 2 * n**3 / best_seconds(lambda: request.infer({0: x})) / 1e9


def int8_gemm_gops(threads: int, n: int) -> float:
    """OpenVINO's ``n x n`` INT8 product on the CPU with ``threads`` threads: uint8 activations (a FakeQuantize, as
    NNCF writes them) times int8 weights, which its low-precision transformations run as one integer MatMul;
    GOP/s (2 per multiply-add), best of 5."""
    import openvino as ov
    from openvino import opset13 as ops

    rng = np.random.default_rng(0)

    def scalar(v: float):
        return ops.constant(np.array(v, np.float32))

    a = ops.parameter([n, n], np.float32, name="a")
    quantized = ops.fake_quantize(a, scalar(0.0), scalar(2.55), scalar(0.0), scalar(2.55), 256)
    weight = ops.multiply(ops.convert(ops.constant(rng.integers(-64, 64, (n, n), dtype=np.int8)), "f32"), scalar(0.01))
    model = ov.Model([ops.matmul(quantized, weight, False, False)], [a])
    config = {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY"}
    request = core().compile_model(model, "CPU", config).create_infer_request()
    x = rng.random((n, n), dtype=np.float32) * 2.5
    return 2 * n**3 / best_seconds(lambda: request.infer({0: x})) / 1e9


_warned_hints: set[tuple[str, str, str]] = set()  # (device, asked, in force): said once per process


class OVSession(Session):
    backend = "openvino"

    def __init__(self, xml: Path, spec: ComponentSpec, options: OVOptions | None = None) -> None:
        super().__init__(spec)
        self.options = options or OVOptions()
        self._bound_to: dict[int, OVBinding] = {}  # infer request -> the binding whose static tensors it holds
        xml = Path(xml)
        for f in (xml, xml.with_suffix(".bin")):
            if not f.is_file():
                raise BundleError(f"OpenVINO IR file {f} is missing")
        ov_core = core()
        check_device(self.options.device, ov_core.available_devices)
        try:
            self._model = ov_core.read_model(str(xml))
        except RuntimeError as exc:
            raise BundleError(f"OpenVINO cannot read {xml.name}: {exc}") from None
        self._config = compile_config(self.options)
        self._compiled: OrderedDict[tuple, Any] = OrderedDict()  # shape key -> infer request
        self._in_force: dict[str, Any] = {}
        if not self.options.static_shapes:
            try:
                self._compiled[()] = self._compile(self._model)
            except RuntimeError as exc:
                raise BundleError(
                    f"OpenVINO cannot compile {self.spec.name} for {self.options.device}: {exc}"
                ) from None

    def _compile(self, model):
        """An infer request of ``model`` compiled with the options; a failure while running (a static shape
        compiled on first use) reaches the caller as OpenVINO raised it, and `Session.run` types it."""
        compiled = core().compile_model(model, self.options.device, self._config)
        in_force = compiled.get_property("INFERENCE_PRECISION_HINT").to_string()
        self._in_force = {
            "precision_hint": HINT_TYPES.get(in_force.lower(), in_force),
            "execution_devices": list(compiled.get_property("EXECUTION_DEVICES")),
        }
        if self.options.precision_hint is not None and device_base(self.options.device) == "CPU":
            key = (self.options.device, self.options.precision_hint, self._in_force["precision_hint"])
            capabilities = list(core().get_property("CPU", "OPTIMIZATION_CAPABILITIES"))
            why = hint_mismatch(self.options.precision_hint, in_force, self.options.device, capabilities)
            if why is not None:
                self._in_force["precision_hint_asked"] = self.options.precision_hint
                if key not in _warned_hints:
                    _warned_hints.add(key)
                    log.warning("%s", why)
        return compiled.create_infer_request()

    compiles = True

    def prepare(self, shapes: dict[str, tuple[int, ...]]) -> None:
        """Compile the static model of these input shapes now (the runtime compiles its components side by side)."""
        if self.options.static_shapes and set(shapes) >= set(self.spec.input_names):
            with self._lock:
                self._request_for({n: tuple(shapes[n]) for n in self.spec.input_names})

    def _request(self, feeds: dict[str, np.ndarray]):
        return self._request_for({n: feeds[n].shape for n in self.spec.input_names})

    def _request_for(self, shapes: dict[str, tuple[int, ...]]):
        if not self.options.static_shapes:
            return self._compiled[()]
        key = tuple(tuple(shapes[n]) for n in self.spec.input_names)
        if key in self._compiled:
            self._compiled.move_to_end(key)
            return self._compiled[key]
        model = self._model.clone()
        model.reshape({n: list(shapes[n]) for n in self.spec.input_names})
        request = self._compile(model)
        self._compiled[key] = request
        while len(self._compiled) > self.options.max_shapes:
            _, evicted = self._compiled.popitem(last=False)
            self._bound_to.pop(id(evicted), None)
        return request

    def _run(self, feeds: Feeds) -> Feeds:
        request = self._request(feeds)
        self._bound_to.pop(id(request), None)  # every input set anew
        return self._infer(request, feeds)

    def _infer(self, request, feeds: Feeds) -> Feeds:
        """Set ``feeds`` on ``request`` sharing their memory (no copy), infer, and copy the outputs out. A shared
        ``ov.Tensor`` does not keep its array alive: the contiguous copies of non-contiguous inputs are held here
        until the inference is done (a tile's strided view, freed at once, read as garbage)."""
        import openvino as ov

        held = {name: np.ascontiguousarray(array) for name, array in feeds.items()}
        for name, array in held.items():
            request.set_tensor(name, ov.Tensor(array, shared_memory=True))
        request.infer()
        return {name: np.array(request.get_tensor(name).data) for name in self.spec.output_names}

    def _bind(self, static: Feeds) -> Binding:
        return OVBinding(self, static)

    def settings(self) -> dict[str, Any]:
        return {
            "device": self.options.device,
            "precision_hint": self._in_force.get("precision_hint", self.options.hint),
            "threads": self.options.threads,
            "static_shapes": self.options.static_shapes,
            **({"execution_devices": self._in_force["execution_devices"]} if self._in_force else {}),
            **(
                {"precision_hint_asked": self._in_force["precision_hint_asked"]}
                if "precision_hint_asked" in self._in_force
                else {}
            ),
        }

    def close(self) -> None:
        self._bound_to.clear()
        self._compiled.clear()
        self._model = None


class OVBinding(Binding):
    """The static inputs set once on each infer request this binding uses (sharing their memory: no copy per
    step); each run sets the others the same way and infers. Runs of one OpenVINO session serialize."""

    def __init__(self, session: OVSession, static: Feeds) -> None:
        import openvino as ov

        super().__init__(session, static)
        self._held = {n: np.ascontiguousarray(a) for n, a in static.items()}  # alive as long as the tensors
        self._static = {n: ov.Tensor(a, shared_memory=True) for n, a in self._held.items()}
        self._set_on: set[int] = set()  # infer requests holding this binding's static tensors

    def _run(self, feeds: Feeds) -> Feeds:
        session = self.session
        request = session._request({**self.static, **feeds})
        if session._bound_to.get(id(request)) is not self:
            for name, tensor in self._static.items():
                request.set_tensor(name, tensor)
            session._bound_to[id(request)] = self
        return session._infer(request, feeds)

    def close(self) -> None:
        for key, owner in list(self.session._bound_to.items()):
            if owner is self:
                del self.session._bound_to[key]


class OVBackend(Backend):
    name = "openvino"

    def open(self, component: str) -> Session:
        return OVSession(self.bundle.file(component), self.specs[component], self.options)

    def sizes(self) -> SizePolicy:
        """``resolution`` pins the input size (an NPU compiles static shapes only): other frames are padded to it
        or tiled in tiles of it, one row per call."""
        if self.options.resolution is None:
            return super().sizes()
        s = self.cfg.upscale
        return SizePolicy.pinned((self.options.resolution[0] * s, self.options.resolution[1] * s), max_batch=1)
