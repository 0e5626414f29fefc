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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from linearsr_edge.errors import BundleError, ConfigError, InputSpecError
from linearsr_edge.options import flag
from linearsr_edge.runtimes.base import BackendInfo, BackendOptions, Session, register_backend
from linearsr_edge.specs import ComponentSpec, parse_resolution

if TYPE_CHECKING:
    from linearsr_edge.bundle import Bundle

log = logging.getLogger(__name__)

HINTS = ("f32", "bf16", "f16")
STATIC_ONLY_DEVICES = ("NPU",)  # compile static shapes only


@dataclass(frozen=True)
class OVOptions(BackendOptions):
    """OpenVINO session options."""

    device: str = flag("CPU", "--device", "OpenVINO device: CPU, GPU, NPU, AUTO (or GPU.1, AUTO:GPU,CPU)")
    # None: f32 on CPU and AUTO, f16 on GPU and NPU; always passed to OpenVINO explicitly
    precision_hint: str | None = flag(
        None,
        "--precision-hint",
        "inference precision: f32 (default on CPU, as verified), bf16 (fast on AVX512-BF16/AMX), f16",
        choices=HINTS,
    )
    cache_dir: Path | None = flag(None, "--cache-dir", "folder for OpenVINO's compiled-model cache", type=Path)
    static_shapes: bool = flag(
        True, "--dynamic-shapes", "compile one dynamic model instead of one static model per input size", invert=True
    )
    max_shapes: int = 4  # static compiled models kept per component
    # the *input* image (height, width) this runtime serves; required on static-only devices (NPU)
    resolution: tuple[int, int] | None = flag(
        None,
        "--resolution",
        "pin the input image size WxH at load (required on NPU); other sizes are refused",
        type=parse_resolution,
        metavar="WxH",
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.device, str) or not self.device:
            raise ConfigError(f"device must be a non-empty string such as 'CPU', got {self.device!r}")
        if self.precision_hint is not None and self.precision_hint not in HINTS:
            raise ConfigError(f"precision_hint must be one of {', '.join(HINTS)} or None, got {self.precision_hint!r}")
        if isinstance(self.max_shapes, bool) or not isinstance(self.max_shapes, int) or self.max_shapes < 1:
            raise ConfigError(f"max_shapes must be a positive integer, got {self.max_shapes!r}")
        if self.resolution is not None and (
            len(self.resolution) != 2
            or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in self.resolution)
        ):
            raise ConfigError(f"resolution must be (height, width) in pixels, got {self.resolution!r}")
        base = device_base(self.device)
        if base in STATIC_ONLY_DEVICES and (not self.static_shapes or self.resolution is None):
            raise ConfigError(
                f"OpenVINO {base} compiles static shapes only, and each new shape is a slow compile: fix the input "
                "resolution at load (linearsr-upscale --resolution WxH, or OVOptions(resolution=(height, width)))"
                + ("" if self.static_shapes else " and keep static shapes (drop --dynamic-shapes)")
            )

    @property
    def hint(self) -> str:
        """The precision hint passed to OpenVINO."""
        if self.precision_hint is not None:
            return self.precision_hint
        return "f32" if device_base(self.device) in ("CPU", "AUTO", "HETERO", "MULTI") else "f16"


def device_base(device: str) -> str:
    """``GPU.1`` -> ``GPU``; ``AUTO:GPU,CPU`` -> ``AUTO``."""
    return device.split(":")[0].split(".")[0].upper()


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
    if options.cache_dir is not None:
        config["CACHE_DIR"] = str(options.cache_dir)
    return config


HINT_TYPES = {"f32": "f32", "float32": "f32", "bf16": "bf16", "bfloat16": "bf16", "f16": "f16", "float16": "f16"}
_warned_hints: set[tuple[str, str, str]] = set()  # (device, asked, in force): said once per process


def hint_mismatch(asked: str, in_force: str, device: str, capabilities: list[str]) -> str | None:
    """Why OpenVINO runs another precision than the hint asked (None when it runs the one asked), in one line:
    a CPU without BF16 (or FP16) arithmetic falls back silently, which a user asking for speed must hear."""
    in_force = HINT_TYPES.get(in_force.lower(), in_force)
    if in_force == asked:
        return None
    has = " ".join(capabilities) or "none reported"
    return (
        f"OpenVINO runs {in_force}, not the {asked} asked for: {device} lacks {asked} arithmetic "
        f"(its capabilities: {has}); drop --precision-hint {asked}, or run on a device that has it"
    )


class OVSession(Session):
    backend = "openvino"

    def __init__(
        self, xml: Path, spec: ComponentSpec, options: OVOptions | None = None, pinned: dict[str, int] | None = None
    ) -> None:
        """``pinned``: symbolic axis sizes fixed at load (from ``options.resolution``); others are refused."""
        super().__init__(spec)
        self.options = options or OVOptions()
        self._pinned = dict(pinned or {})
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
            self._compiled[()] = self._compile(self._model)

    def _compile(self, model):
        try:
            compiled = core().compile_model(model, self.options.device, self._config)
        except RuntimeError as exc:
            raise BundleError(f"OpenVINO cannot compile {self.spec.name} for {self.options.device}: {exc}") from None
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

    def _request(self, feeds: dict[str, np.ndarray]):
        if not self.options.static_shapes:
            return self._compiled[()]
        key = tuple(feeds[n].shape for n in self.spec.input_names)
        if key in self._compiled:
            self._compiled.move_to_end(key)
            return self._compiled[key]
        model = self._model.clone()
        model.reshape({n: list(feeds[n].shape) for n in self.spec.input_names})
        request = self._compile(model)
        self._compiled[key] = request
        while len(self._compiled) > self.options.max_shapes:
            self._compiled.popitem(last=False)
        return request

    def _check_pinned(self, feeds: dict[str, np.ndarray]) -> None:
        for t in self.spec.inputs:
            for axis, d in enumerate(t.shape):
                if isinstance(d, str) and d in self._pinned and feeds[t.name].shape[axis] != self._pinned[d]:
                    raise InputSpecError(
                        f"{self.spec.name}.{t.name}: axis {axis} ({d}) is {feeds[t.name].shape[axis]}, but this "
                        f"runtime was loaded for a fixed resolution ({d} = {self._pinned[d]}); load another "
                        "runtime for this size"
                    )

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self._check_pinned(feeds)
        request = self._request(feeds)
        results = request.infer(feeds)
        return {name: np.asarray(results[name]) for name in self.spec.output_names}

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
        self._compiled.clear()
        self._model = None


def pinned_sizes(bundle: Bundle, resolution: tuple[int, int] | None) -> dict[str, int]:
    """Symbolic axis sizes fixed by an input resolution (height, width): output image and latent sides."""
    if resolution is None:
        return {}
    h, w = (v * bundle.cfg.upscale for v in resolution)
    f = bundle.codec_factor
    return {"img_height": h, "img_width": w, "height": h // f, "width": w // f}


def _from_bundle(bundle: Bundle, component: str, options: BackendOptions) -> Session:
    return OVSession(bundle.file(component), bundle.spec(component), options, pinned_sizes(bundle, options.resolution))


def _version() -> str:
    import openvino as ov

    return ov.get_version()


register_backend(
    BackendInfo(
        name="openvino",
        formats=("openvino",),
        requires=("openvino",),
        extra="openvino",
        priority=10,
        factory=_from_bundle,
        options=OVOptions,
        version=_version,
        parity_options=lambda: OVOptions(device="CPU", precision_hint="f32"),
    )
)
