"""Export targets: a registry keyed by target name (``onnx-fp32`` ...), and the exporter interface.

A target registers whether or not its package is installed; asking for one whose package is
missing raises `BackendUnavailableError` naming the extra to install. Adding a target is one new
module that calls `register_target`; nothing else changes.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from linearsr_edge.precision import Precision
from linearsr_edge.registry import Registry, missing_modules
from linearsr_edge.specs import ComponentSpec


class Exporter(abc.ABC):
    """Turns one PyTorch component into files in the bundle folder."""

    format: str
    suffix: str
    needs_calibration: bool = False  # True: experts need their own band's inputs

    @classmethod
    def from_options(cls, options: Any) -> Exporter:
        """Build from the `ExportOptions` of a run; exporters with options of their own override this."""
        return cls()

    def manifest_entries(self) -> dict[str, Any]:
        """Settings to record in the bundle manifest (e.g. the INT8 policy)."""
        return {}

    @abc.abstractmethod
    def export(
        self,
        module: torch.nn.Module,
        spec: ComponentSpec,
        folder: Path,
        calibration: Sequence[dict[str, np.ndarray]] | None = None,
    ) -> list[Path]:
        """Write ``folder / (spec.name + suffix)`` (plus any side files); return every file written.

        ``calibration``: recorded input feeds of this component (experts: from its own band).
        """


@dataclass(frozen=True)
class TargetInfo:
    name: str
    format: str
    precision: Precision
    requires: tuple[str, ...]  # importable module names
    extra: str  # pip extra that installs them
    description: str
    factory: type[Exporter]

    @property
    def available(self) -> bool:
        return not missing_modules(self)


TARGETS: Registry[TargetInfo] = Registry("export target")
register_target = TARGETS.register
target_names = TARGETS.names
all_targets = TARGETS.entries
get_target = TARGETS.get
