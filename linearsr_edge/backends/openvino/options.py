"""Typed options of the OpenVINO targets (no heavy imports: the CLI reads their flags for ``--help``)."""

from __future__ import annotations

from dataclasses import dataclass

from linearsr_edge.errors import ConfigError
from linearsr_edge.options import flag
from linearsr_edge.pipeline.session import CachingOptions
from linearsr_edge.specs import parse_resolution


@dataclass(frozen=True)
class OVInt8Options:
    """How `ov-int8` runs NNCF's post-training quantization on each expert (with its own band's data).

    ``keep_fp32="policy"`` puts the precision policy's FP32 islands (linear-attention reductions and
    division, softmax attention, the timestep sin/cos chain) and the activation x activation
    products (adaLN modulation, gates) in NNCF's ignored scope; ``"none"`` leaves the choice to
    NNCF's transformer preset (the recipe a user of optimum-intel would get).
    """

    preset: str = flag(
        "performance",
        "--ov-int8-preset",
        "NNCF preset: performance (symmetric activations, default) or mixed (asymmetric activations)",
        choices=("performance", "mixed"),
    )
    keep_fp32: str = flag(
        "policy",
        "--ov-int8-keep",
        "what stays FP32: policy (precision islands and modulation/gate products, default) or none (NNCF decides)",
        choices=("policy", "none"),
    )
    fast_bias_correction: bool = True
    # NNCF's overflow fix on every MatMul/Conv weight (7-bit weights, as `onnx-int8`'s ``reduce_range``): x86 CPUs
    # without VNNI add U8 x S8 products in pairs into 16 bits, which 8-bit weights overflow. Measured on the
    # demo: 51.0 dB end to end on AVX2 against 44.7 dB without it; on AVX-512 VNNI it costs ~0.3 dB
    # (benchmarks/RESULTS.md). NNCF's own default fixes the first layer only.
    overflow_fix: bool = flag(
        True,
        "--ov-int8-full-range",
        "8-bit weights (NNCF's default): a little more precise where VNNI runs them, but U8xS8 pair sums "
        "saturate on x86 without VNNI (-6 dB measured on AVX2)",
        invert=True,
    )
    # INT8 weights only (``nncf.compress_weights``, optimum-intel's ``--weight-format int8``): activations stay
    # FP32, no calibration data is used; a smaller file, but no integer kernels (see benchmarks/RESULTS.md)
    weights_only: bool = flag(
        False,
        "--ov-int8-weights-only",
        "compress weights to INT8 only (no activation quantization, no calibration): smaller, not faster",
    )

    def __post_init__(self) -> None:
        if self.preset not in ("performance", "mixed"):
            raise ConfigError(f"preset must be 'performance' or 'mixed', got {self.preset!r}")
        if self.keep_fp32 not in ("policy", "none"):
            raise ConfigError(f"keep_fp32 must be 'policy' or 'none', got {self.keep_fp32!r}")


HINTS = ("f32", "bf16", "f16")
STATIC_ONLY_DEVICES = ("NPU",)  # compile static shapes only


@dataclass(frozen=True)
class OVOptions(CachingOptions):
    """OpenVINO session options; compiled models are cached (OpenVINO's ``CACHE_DIR``) unless ``cache`` is off."""

    device: str = flag("CPU", "--device", "OpenVINO device: CPU, GPU, NPU, AUTO (or GPU.1, AUTO:GPU,CPU)")
    # None: f32 on CPU and AUTO, f16 on GPU and NPU; always passed to OpenVINO explicitly
    precision_hint: str | None = flag(
        None,
        "--precision-hint",
        "inference precision: f32 (default on CPU, as verified), bf16 (fast on AVX512-BF16/AMX), f16",
        choices=HINTS,
    )
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
