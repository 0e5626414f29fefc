"""Typed options of the TensorRT targets (no heavy imports: the CLI reads their flags for ``--help``)."""

from __future__ import annotations

from dataclasses import dataclass

from linearsr_edge.errors import ConfigError
from linearsr_edge.options import flag

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
