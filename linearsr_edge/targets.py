"""Export targets: a registry keyed by target name (``onnx-fp32`` ...), and the exporter interface.

A target registers whether or not its package is installed; asking for one whose package is
missing raises `BackendUnavailableError` naming the extra to install. Adding a target is one new
module and one `register_target` call; third parties register through the
``linearsr_edge.targets`` entry-point group. Registration imports nothing heavy: the exporter
class is named by ``"module:Class"`` and imported when an export runs.
"""

from __future__ import annotations

import abc
import contextlib
import importlib
import io
import logging
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np

from linearsr_edge.errors import ConfigError, ExportError
from linearsr_edge.precision import Precision
from linearsr_edge.registry import Registry, unavailable_reason
from linearsr_edge.specs import ComponentSpec

if TYPE_CHECKING:
    import torch


@contextlib.contextmanager
def quiet_library(logger: str, level: int = logging.WARNING) -> Iterator[None]:
    """Run a converter library quietly: its logger at ``level`` or above, its warnings ignored, and the
    progress bars it draws on stdout/stderr swallowed (NNCF, coremltools)."""
    lib_log = logging.getLogger(logger)
    before = lib_log.level
    lib_log.setLevel(max(before, level))
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        lib_log.setLevel(before)


@dataclass(frozen=True)
class NoOptions:
    """A target without options of its own."""


class Exporter(abc.ABC):
    """Turns one PyTorch component into files in the bundle folder."""

    def __init__(self, options: Any = None) -> None:
        self.options = options
        # what every artifact says of itself (model, target, precision, export id, package version), set by the
        # build before the first export; `metadata_for` adds the component and its band
        self.metadata: dict[str, str] = {}
        self.bands: dict[str, str] = {}  # expert name -> its log-SNR band, set with ``metadata``

    def prepare(self, specs: Sequence[ComponentSpec]) -> None:  # noqa: B027  (most exporters need nothing)
        """Called once with every component's spec before the first `export` (e.g. to read the codec factor)."""

    def spec_of(self, spec: ComponentSpec) -> ComponentSpec:
        """The spec as this target exported it (its size policy: Core ML's listed sizes); the manifest keeps it."""
        return spec

    def sections(self) -> dict[str, Any]:
        """The manifest sections of the families this export used (``{"onnx": OnnxSection(...)}``), after every
        component is exported."""
        return {}

    def metadata_for(self, spec: ComponentSpec) -> dict[str, str]:
        """The metadata written into one component's artifact (ONNX ``metadata_props``, OpenVINO ``rt_info``, Core
        ML ``user_defined_metadata``, TensorRT's engine sidecar): what a lifted file is and where it came from."""
        meta = {"linearsr.component": spec.name, **{f"linearsr.{k}": v for k, v in self.metadata.items()}}
        if spec.name in self.bands:
            meta["linearsr.band"] = self.bands[spec.name]
        return meta

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


Calibration = Literal["none", "heldout", "full"]


def expert_calibration(
    spec: ComponentSpec, calibration: Sequence[dict[str, np.ndarray]] | None
) -> Sequence[dict[str, np.ndarray]] | None:
    """INT8 quantizes the experts only, each on its own band's data: None for the encoder and decoder
    (they stay FP32, having no band data); `ExportError` for an expert without data."""
    if spec.kind != "expert":
        return None
    if not calibration:
        raise ExportError(f"{spec.name}: INT8 needs calibration data from the expert's own band")
    return calibration


@dataclass(frozen=True)
class TargetInfo:
    name: str
    format: str  # the bundle format; a backend of this format verifies and runs it
    precision: Precision
    requires: tuple[str, ...]  # importable module names
    extra: str  # pip extra that installs them
    description: str
    exporter: str | type[Exporter]  # "package.module:Class", imported when an export runs
    options: type = NoOptions  # the target's own typed options (fields may declare CLI flags)
    # none: no calibration data; heldout: held-out images and band data for the gates only;
    # full: band-stratified calibration samples as well (INT8)
    calibration: Calibration = "none"
    # the backends whose pass marks a bundle verified (empty: any backend of the format). TensorRT
    # bundles are checked here on ONNX Runtime (the same graphs) but verified only on their engines.
    verified_by: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()  # ``sys.platform`` values the export runs on; empty: any
    platform_note: str = ""  # why, and what to do elsewhere

    @property
    def available(self) -> bool:
        return unavailable_reason(self) is None

    def check_options(self, options: Any) -> Any:
        if options is None:
            return self.options()
        if not isinstance(options, self.options):
            raise ConfigError(f"target {self.name!r} takes {self.options.__name__}, got {type(options).__name__}")
        return options

    def make_exporter(self, options: Any = None) -> Exporter:
        cls = self.exporter
        if isinstance(cls, str):
            module, _, name = cls.partition(":")
            cls = getattr(importlib.import_module(module), name)
        return cls(self.check_options(options))


TARGETS: Registry[TargetInfo] = Registry("export target", group="linearsr_edge.targets")
register_target = TARGETS.register
target_names = TARGETS.names
all_targets = TARGETS.entries
get_target = TARGETS.get
