"""Export targets: a registry keyed by target name (``onnx-fp32`` ...), and the exporter interface.

A target registers whether or not its package is installed; asking for one whose package is
missing raises `BackendUnavailableError` naming the extra to install. Adding a target is one new
module that calls `register_target`; nothing else changes.
"""

from __future__ import annotations

import abc
import difflib
import importlib.util
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from linearsr_edge.errors import BackendUnavailableError, ConfigError
from linearsr_edge.precision import Precision
from linearsr_edge.specs import ComponentSpec


class Exporter(abc.ABC):
    """Turns one PyTorch component into files in the bundle folder."""

    format: str
    suffix: str
    needs_calibration: bool = False  # True: experts need their own band's inputs

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
    factory: Callable[[], Exporter]

    @property
    def available(self) -> bool:
        return all(importlib.util.find_spec(m) is not None for m in self.requires)


_TARGETS: dict[str, TargetInfo] = {}


def register_target(info: TargetInfo) -> None:
    if info.name in _TARGETS:
        raise ValueError(f"export target {info.name!r} is already registered")
    _TARGETS[info.name] = info


def target_names() -> list[str]:
    return sorted(_TARGETS)


def all_targets() -> list[TargetInfo]:
    return [_TARGETS[n] for n in target_names()]


def get_target(name: str) -> TargetInfo:
    """The registered target ``name``; `ConfigError` with a "did you mean" for a near miss."""
    if name not in _TARGETS:
        near = difflib.get_close_matches(name, _TARGETS, n=1)
        hint = f"; did you mean {near[0]!r}?" if near else ""
        raise ConfigError(f"unknown export target {name!r}{hint} Registered targets: {', '.join(target_names())}")
    info = _TARGETS[name]
    if not info.available:
        missing = [m for m in info.requires if importlib.util.find_spec(m) is None]
        raise BackendUnavailableError(
            f"target {name!r} needs {', '.join(missing)}: pip install 'linearsr-edge[{info.extra}]'"
        )
    return info
