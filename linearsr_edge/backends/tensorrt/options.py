"""Typed options of the TensorRT targets (no heavy imports: the CLI reads their flags for ``--help``)."""

from __future__ import annotations

from dataclasses import dataclass

from linearsr_edge.errors import ConfigError
from linearsr_edge.options import flag
from linearsr_edge.pipeline.session import BackendOptions

MIN_TENSORRT = "10.3"  # JetPack 6: the oldest TensorRT with strongly typed networks that we build for


@dataclass(frozen=True)
class TRTOptions:
    """What the build recipe asks of TensorRT on the device (the engines are built there)."""

    workspace_mib: int = flag(
        4096, "--trt-workspace", "builder workspace in MiB for the recipe (default 4096; Orin Nano: 1024)", type=int
    )
    builder_optimization_level: int = flag(
        3, "--trt-opt-level", "TensorRT builder optimization level 0-5 (default 3, TensorRT's own)", type=int
    )

    def __post_init__(self) -> None:
        if isinstance(self.workspace_mib, bool) or self.workspace_mib < 64:
            raise ConfigError(f"the TensorRT workspace must be at least 64 MiB, got {self.workspace_mib!r}")
        if not 0 <= self.builder_optimization_level <= 5:
            raise ConfigError(f"the builder optimization level is 0-5, got {self.builder_optimization_level!r}")


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
