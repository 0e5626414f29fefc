"""Typed options of the Core ML targets (no heavy imports: the CLI reads their flags for ``--help``)."""

from __future__ import annotations

from dataclasses import dataclass

from linearsr_edge.backends.coreml.plan import DEPLOYMENT_TARGETS, SHAPE_MODES
from linearsr_edge.errors import ConfigError
from linearsr_edge.options import flag
from linearsr_edge.pipeline.session import CachingOptions
from linearsr_edge.specs import parse_resolution


def _sizes(text: str) -> tuple[tuple[int, int], ...]:
    """``"640x360,1280x720"`` -> ``((360, 640), (720, 1280))`` (H, W)."""
    return tuple(parse_resolution(part) for part in text.split(",") if part.strip())


@dataclass(frozen=True)
class CoreMLOptions:
    """How every Core ML target converts: the oldest OS it runs on and the input shapes it accepts.

    ``shapes="enumerated"`` (default) declares a small list of input shapes, batch 1: the profile's
    min/opt/max output sizes and the common camera sizes between them (or ``sizes``), each with
    every tag count up to the profile's optimum. The Neural Engine runs enumerated shapes only.
    ``"range"`` declares every symbolic axis as a range (batch included): any size in the
    profile runs, on the CPU and GPU.

    Core ML lets an ML program enumerate the shapes of several inputs from macOS 15 / iOS 18 on;
    the experts have four inputs, so that is the default target. Under ``macOS14`` / ``iOS17`` the
    encoder and decoder keep enumerated shapes and the experts get ranges (the export says so).
    """

    deployment_target: str = flag(
        "macOS15",
        "--coreml-target",
        "oldest OS the models run on: macOS15 / iOS18 (default; the experts' enumerated shapes need it), "
        "macOS14 / iOS17 (experts take ranges: no Neural Engine), macOS26 / iOS26, macOS13 / iOS16",
        choices=tuple(DEPLOYMENT_TARGETS),
    )
    shapes: str = flag(
        "enumerated",
        "--coreml-shapes",
        "input shapes: enumerated (a fixed list, batch 1; the Neural Engine needs it) or range (any size "
        "in the profile; CPU and GPU)",
        choices=SHAPE_MODES,
    )
    # output image sizes (H, W) to enumerate; empty: the profile's min/opt/max and camera sizes that fit
    sizes: tuple[tuple[int, int], ...] = flag(
        (),
        "--coreml-sizes",
        "output sizes to enumerate, e.g. 1280x720,1920x1080 (default: the profile's min/opt/max and the "
        "common camera sizes between them)",
        type=_sizes,
        metavar="WxH[,WxH...]",
    )

    def __post_init__(self) -> None:
        if self.deployment_target not in DEPLOYMENT_TARGETS:
            raise ConfigError(
                f"deployment_target must be one of {', '.join(DEPLOYMENT_TARGETS)}, got {self.deployment_target!r}"
            )
        if self.shapes not in SHAPE_MODES:
            raise ConfigError(f"shapes must be 'enumerated' or 'range', got {self.shapes!r}")
        if any(len(s) != 2 or min(s) < 1 for s in self.sizes):
            raise ConfigError(f"sizes must be (height, width) pairs of positive pixels, got {self.sizes!r}")
        if self.sizes and self.shapes != "enumerated":
            raise ConfigError("--coreml-sizes lists enumerated shapes: it needs --coreml-shapes enumerated")


@dataclass(frozen=True)
class CoreMLInt8Options(CoreMLOptions):
    """``coreml-int8``: the FP16 model (FP32 islands) with compressed weights.

    Per-channel symmetric INT8 weights by default (``linear_quantize_weights``); ``palettize_bits`` 4
    or 6 clusters each weight tensor into a 16- or 64-entry lookup table instead (k-means,
    ``palettize_weights``). Tensors smaller than ``weight_threshold`` elements stay FP16.
    """

    palettize_bits: int | None = flag(
        None,
        "--coreml-palettize",
        "4 or 6: palettize weights to 4/6-bit lookup tables instead of INT8 (smaller; check the quality gates)",
        choices=(4, 6),
        type=int,
    )
    weight_threshold: int = flag(
        2048,
        "--coreml-weight-threshold",
        "compress only weight tensors with at least this many elements (default 2048, as coremltools)",
        type=int,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.palettize_bits not in (None, 4, 6):
            raise ConfigError(f"palettize_bits must be 4, 6 or None, got {self.palettize_bits!r}")
        if isinstance(self.weight_threshold, bool) or not isinstance(self.weight_threshold, int):
            raise ConfigError(f"weight_threshold must be an integer, got {self.weight_threshold!r}")
        if self.weight_threshold < 0:
            raise ConfigError(f"weight_threshold must be >= 0, got {self.weight_threshold}")


COMPUTE_UNITS = ("ALL", "CPU_AND_NE", "CPU_AND_GPU", "CPU_ONLY")
PLATFORM_NOTE = (
    "Core ML predicts on macOS only (Apple silicon: Neural Engine, GPU, CPU). Run the bundle on a Mac, or "
    "export an onnx-* or ov-* target for this machine"
)


@dataclass(frozen=True)
class CoreMLRuntimeOptions(CachingOptions):
    """Core ML session options. Core ML schedules its own threads: ``threads`` is refused. Each package is
    compiled once (``.mlmodelc``) into the compiled-model cache (``~/Library/Caches/linearsr-edge/coreml`` by
    default); with ``cache`` off, into a folder that goes with the runtime."""

    compute_units: str = flag(
        "ALL",
        "--compute-units",
        "Core ML compute units: ALL (default), CPU_AND_NE (Neural Engine), CPU_AND_GPU, CPU_ONLY",
        choices=COMPUTE_UNITS,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.threads is not None:
            raise ConfigError("Core ML schedules its own threads: drop --threads for the coreml backend")
        if self.compute_units not in COMPUTE_UNITS:
            raise ConfigError(f"compute_units must be one of {', '.join(COMPUTE_UNITS)}, got {self.compute_units!r}")
