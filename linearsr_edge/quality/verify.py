"""On-device verification: run a bundle's golden set on the loaded backend, device and options, and
report the same rows as the export gates, with a fingerprint of where it ran.

`SRRuntime.verify` is the call; ``SRRuntime.load(..., verify="first")`` runs it once per new
fingerprint and caches a passing result (a JSON file per bundle and fingerprint) in the user's
cache folder, ``$LINEARSR_EDGE_CACHE`` or ``~/.cache/linearsr-edge``. Pure NumPy, no PyTorch.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from linearsr_edge.calibration.gates import QualityThresholds
from linearsr_edge.errors import BundleError, ConfigError, QualityGateError
from linearsr_edge.fileio import atomic_write_text
from linearsr_edge.golden import GOLDEN_FILE, GoldenSet
from linearsr_edge.machine import machine_summary
from linearsr_edge.parity import CheckRow, format_rows
from linearsr_edge.precision import Precision

if TYPE_CHECKING:
    from linearsr_edge.bundle import Bundle
    from linearsr_edge.runtimes.sr import SRRuntime

log = logging.getLogger(__name__)

VerifyWhen = Literal["never", "first", "always"]
OnFail = Literal["raise", "warn"]


@dataclass
class VerifyReport:
    rows: list[CheckRow]
    fingerprint: dict[str, Any]
    thresholds: QualityThresholds
    bundle: str = ""
    cached: bool = False  # read from the cache, not run now
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)

    @property
    def failed_components(self) -> list[str]:
        return sorted({r.component for r in self.rows if not r.passed})

    def to_dict(self) -> dict[str, Any]:
        return {
            "bundle": self.bundle,
            "passed": self.passed,
            "fingerprint": self.fingerprint,
            "thresholds": self.thresholds.__dict__,
            "rows": [r.to_dict() for r in self.rows],
            **self.extra,
        }

    def table(self) -> str:
        return format_rows(self.rows)


def bundle_thresholds(bundle: Bundle) -> QualityThresholds:
    """The thresholds the bundle's export gates used (precision defaults for fields it lacks)."""
    base = QualityThresholds.default(Precision(bundle.manifest.get("precision", "fp32")))
    recorded = (bundle.verification or {}).get("thresholds") or {}
    known = {k: float(v) for k, v in recorded.items() if k in base.__dict__}
    return QualityThresholds(**{**base.__dict__, **known})


def fingerprint(runtime: SRRuntime) -> dict[str, Any]:
    """Where a verification ran: backend, its version and settings in force, and the machine (CPU, ISA)."""
    from linearsr_edge.runtimes.base import BACKENDS

    settings = runtime.backend_settings()
    info = next((b for b in BACKENDS.entries() if b.name == runtime.backend), None)
    version = info.version() if info is not None and info.available else "?"
    return {**settings, "backend_version": version, **machine_summary()}


def run_golden(runtime: SRRuntime, thresholds: QualityThresholds | None = None) -> VerifyReport:
    bundle = runtime.bundle
    if bundle is None:
        raise ConfigError("verify() needs a runtime loaded from a bundle (SRRuntime.load)")
    entry = bundle.manifest.get("golden")
    if not entry:
        raise BundleError(f"{bundle.path} has no golden set (exported by an older version): re-export it to verify")
    golden = GoldenSet.load(bundle.path / entry.get("file", GOLDEN_FILE))
    limits = thresholds or bundle_thresholds(bundle)
    rows = golden.rows(
        lambda k, feeds: runtime.run_component(f"expert_{k}", feeds)["velocity"],
        lambda lr, opts: runtime.upscale(lr, opts).image,
        limits,
    )
    return VerifyReport(rows, fingerprint(runtime), limits, str(bundle.path))


def cache_dir() -> Path:
    root = os.environ.get("LINEARSR_EDGE_CACHE")
    return Path(root) if root else Path.home() / ".cache" / "linearsr-edge"


def cache_key(bundle: Bundle, fp: dict[str, Any]) -> str:
    """One key per bundle content and fingerprint (any file, backend setting or CPU change: a new key)."""
    text = json.dumps({"files": bundle.manifest.get("files", {}), "fingerprint": fp}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def verify_on_load(runtime: SRRuntime, when: VerifyWhen, on_fail: OnFail, folder: Path | None = None) -> VerifyReport:
    """``first``: reuse a cached pass for this bundle and fingerprint, else run and cache a pass.
    ``always``: run. A failure raises `QualityGateError` (``on_fail="raise"``) or logs a warning."""
    if when not in ("first", "always"):
        raise ConfigError(f"verify must be 'never', 'first' or 'always', got {when!r}")
    if on_fail not in ("raise", "warn"):
        raise ConfigError(f"on_verify_fail must be 'raise' or 'warn', got {on_fail!r}")
    fp = fingerprint(runtime)
    path = (folder or cache_dir()) / "verified" / f"{cache_key(runtime.bundle, fp)}.json"
    if when == "first" and path.is_file():
        try:
            data = json.loads(path.read_text())
            rows = [_row(r) for r in data["rows"]]
            return VerifyReport(rows, fp, bundle_thresholds(runtime.bundle), str(runtime.bundle.path), cached=True)
        except (OSError, ValueError, KeyError, TypeError):
            log.warning("ignoring an unreadable verification cache file %s", path)
    report = run_golden(runtime)
    if report.passed:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(report.to_dict(), indent=2, default=str) + "\n")
        log.info("verified %s on %s: passed (cached as %s)", runtime.bundle.path, runtime.backend, path.name)
        return report
    message = (
        f"{runtime.bundle.path} fails its golden set on this device ({runtime.backend}; "
        f"{', '.join(fp.get('isa', [])) or 'unknown ISA'}) for {', '.join(report.failed_components)}\n{report.table()}"
    )
    if on_fail == "raise":
        raise QualityGateError(message)
    log.warning("%s", message)
    return report


def _row(data: dict[str, Any]) -> CheckRow:
    value = float("inf") if data["value"] is None else float(data["value"])  # JSON has no inf
    return CheckRow(data["component"], data["case"], data["metric"], value, float(data["limit"]))
