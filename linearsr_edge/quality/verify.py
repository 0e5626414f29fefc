"""On-device verification, composed around a runtime: run a bundle's golden set on the loaded backend, device
and options, and report the same rows as the export gates, with a fingerprint of where it ran.

`run_golden` is the check; `verify_on_load` runs it once per new fingerprint and caches a passing result
(a JSON file per bundle and fingerprint) under the cache root (`linearsr_edge.cache`). The public
`linearsr_edge.runtime.SRRuntime` offers both as ``verify()`` and ``load(..., verify="first")``; the core
runtime imports neither. Pure NumPy, no PyTorch.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from linearsr_edge.cache import cache_root
from linearsr_edge.checks import CheckRow, QualityThresholds
from linearsr_edge.errors import BundleError, ConfigError, LinearSRError, QualityGateError
from linearsr_edge.fileio import atomic_write_text
from linearsr_edge.machine import machine_summary
from linearsr_edge.quality.golden import GoldenSet
from linearsr_edge.quality.parity import format_rows
from linearsr_edge.serial import from_data
from linearsr_edge.specs import ComponentId

if TYPE_CHECKING:
    from linearsr_edge.bundle import Bundle
    from linearsr_edge.pipeline.runtime import SRRuntime

log = logging.getLogger(__name__)


class VerifyWhen(str, enum.Enum):
    """When `SRRuntime.load` runs the golden set: never, the first time per fingerprint (cached), always."""

    NEVER = "never"
    FIRST = "first"
    ALWAYS = "always"


class OnFail(str, enum.Enum):
    """What a failing golden set does at load: raise `QualityGateError`, or warn."""

    RAISE = "raise"
    WARN = "warn"


def typed(kind: type[enum.Enum], value, what: str):
    """``value`` (a member or its string) as a member of ``kind``; `ConfigError` listing the choices."""
    try:
        return kind(value)
    except ValueError:
        names = [repr(m.value) for m in kind]
        choices = f"{', '.join(names[:-1])} or {names[-1]}"
        raise ConfigError(f"{what} must be {choices}, got {value!r}") from None


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
    """The thresholds the bundle's export gates used."""
    return bundle.verification.thresholds


def fingerprint(runtime: SRRuntime) -> dict[str, Any]:
    """Where a verification ran: backend, its version and settings in force, and the machine (CPU, ISA)."""
    from linearsr_edge.pipeline.session import BACKENDS

    settings = runtime.backend_settings()
    info = next((b for b in BACKENDS.entries() if b.name == runtime.backend), None)
    version = info.version() if info is not None and info.available else "?"
    return {**settings, "backend_version": version, **machine_summary()}


def run_golden(runtime: SRRuntime, thresholds: QualityThresholds | None = None) -> VerifyReport:
    bundle = runtime.bundle
    if bundle is None:
        raise ConfigError("verify() needs a runtime loaded from a bundle (SRRuntime.load)")
    entry = bundle.manifest.golden
    if entry is None:
        raise BundleError(f"{bundle.path} has no golden set (exported by an older version): re-export it to verify")
    golden = GoldenSet.load(bundle.path / entry.file)
    limits = thresholds or bundle_thresholds(bundle)
    rows = golden.rows(
        lambda k, feeds: runtime.run_component(ComponentId.expert(k), feeds)["velocity"],
        lambda lr, opts: runtime.upscale(lr, opts).image,
        limits,
    )
    return VerifyReport(rows, fingerprint(runtime), limits, str(bundle.path))


def cache_key(bundle: Bundle, fp: dict[str, Any]) -> str:
    """One key per bundle content and fingerprint (any file, backend setting or CPU change: a new key)."""
    text = json.dumps({"files": bundle.manifest.files, "fingerprint": fp}, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def verify_on_load(
    runtime: SRRuntime, when: VerifyWhen | str, on_fail: OnFail | str, folder: Path | None = None
) -> VerifyReport | None:
    """``first``: reuse a cached pass for this bundle and fingerprint, else run and cache a pass.
    ``always``: run. ``never``: None. A failure raises `QualityGateError` (``on_fail="raise"``) or logs a
    warning."""
    when, on_fail = typed(VerifyWhen, when, "verify"), typed(OnFail, on_fail, "on_verify_fail")
    if when is VerifyWhen.NEVER:
        return None
    fp = fingerprint(runtime)
    path = (folder or cache_root()) / "verified" / f"{cache_key(runtime.bundle, fp)}.json"
    if when is VerifyWhen.FIRST and path.is_file():
        try:
            data = json.loads(path.read_text())
            rows = [_row(r) for r in data["rows"]]
            return VerifyReport(rows, fp, bundle_thresholds(runtime.bundle), str(runtime.bundle.path), cached=True)
        except (OSError, ValueError, KeyError, TypeError, LinearSRError):
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
    if on_fail is OnFail.RAISE:
        raise QualityGateError(message)
    log.warning("%s", message)
    return report


def _row(data: dict[str, Any]) -> CheckRow:
    return from_data(CheckRow, data, "cached row")
