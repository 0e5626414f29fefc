"""Choosing the export target by measurement on this machine (``linearsr-doctor --measure``,
``linearsr-export --target auto --measure``).

Each candidate target of the device profile is exported (or an existing bundle of it taken), loaded on its
backend, checked against its golden set on this machine (`run_golden`), and timed: the warm per-frame time of
an upscale, plus what the first frame cost from a cold compiled-model cache. `fastest_passing` takes the fastest that
passed; a target that failed its golden set, could not be exported or is not installed is never chosen, however
fast it ran. The answer is cached per machine fingerprint (`MeasuredChoice`, under the cache root's ``measure``
folder); ``--target auto`` without ``--measure`` reads it, else falls back to the profile's static order.
"""

from __future__ import annotations

import hashlib
import json
import logging
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from linearsr_edge.cache import cache_root
from linearsr_edge.checks import QualityThresholds
from linearsr_edge.errors import LinearSRError
from linearsr_edge.fileio import atomic_write_text
from linearsr_edge.machine import machine_summary
from linearsr_edge.serial import from_data, to_data

log = logging.getLogger(__name__)

STATUSES = ("passed", "failed", "unavailable", "error")
FINGERPRINT_KEYS = ("cpu", "isa", "isa_cap", "cores", "arch", "os")


@dataclass(frozen=True)
class Candidate:
    """One target as measured here. ``status``: ``passed`` (its golden set passed on this machine),
    ``failed`` (it did not, or its export gates refused it), ``unavailable`` (not installed here) or ``error``
    (it could not run); ``detail`` says why or how well."""

    target: str
    status: str
    frame_seconds: float | None = None  # warm: the median of the timed upscales
    first_frame_seconds: float | None = None  # load + the first upscale, from an empty compiled-model cache
    detail: str = ""
    bundle: str = ""

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ValueError(f"status must be one of {STATUSES}, got {self.status!r}")


def fastest_passing(candidates: Sequence[Candidate]) -> str | None:
    """The fastest candidate (warm frame time) whose golden set passed; None when none did."""
    passed = [c for c in candidates if c.status == "passed" and c.frame_seconds is not None]
    return min(passed, key=lambda c: c.frame_seconds).target if passed else None


def machine_fingerprint() -> dict[str, Any]:
    """What a measured choice holds for: the CPU, its ISA (and oneDNN's cap), cores, architecture, OS."""
    summary = machine_summary()
    return {k: summary[k] for k in FINGERPRINT_KEYS if k in summary}


def fingerprint_key(fingerprint: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fingerprint, sort_keys=True, default=str).encode()).hexdigest()[:24]


@dataclass(frozen=True)
class MeasuredChoice:
    """A measurement on one machine: the candidates, the chosen target, and what it was measured on."""

    fingerprint: dict[str, Any]
    model: str  # "demo" or the model folder measured
    size: tuple[int, int]  # the input image (height, width) timed
    threads: int
    candidates: tuple[Candidate, ...]
    chosen: str | None
    measured_at: str = ""  # UTC, ISO 8601
    profile: str = ""  # the device profile whose targets were measured

    def to_dict(self) -> dict[str, Any]:
        return to_data(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MeasuredChoice:
        return from_data(cls, data, "measured choice")

    def table(self) -> str:
        """The candidates as a Markdown table, fastest passing first, the chosen one marked."""
        order = sorted(self.candidates, key=lambda c: (c.status != "passed", c.frame_seconds or float("inf")))
        best = next((c.frame_seconds for c in order if c.target == self.chosen), None)
        lines = [
            "| target | golden set | frame s (warm) | x chosen | first frame s (cold) | detail |",
            "|---|---|---:|---:|---:|---|",
        ]
        for c in order:
            frame = "-" if c.frame_seconds is None else f"{c.frame_seconds:.3f}"
            ratio = "-" if c.frame_seconds is None or not best else f"{c.frame_seconds / best:.2f}"
            cold = "-" if c.first_frame_seconds is None else f"{c.first_frame_seconds:.2f}"
            mark = " **(chosen)**" if c.target == self.chosen else ""
            lines.append(f"| {c.target}{mark} | {c.status} | {frame} | {ratio} | {cold} | {c.detail} |")
        return "\n".join(lines)


def choice_path(fingerprint: dict[str, Any] | None = None, folder: Path | None = None) -> Path:
    fp = machine_fingerprint() if fingerprint is None else fingerprint
    return (folder or cache_root("measure")) / f"choice-{fingerprint_key(fp)}.json"


def save_choice(choice: MeasuredChoice, folder: Path | None = None) -> Path:
    path = choice_path(choice.fingerprint, folder)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(choice.to_dict(), indent=2) + "\n")
    return path


def cached_choice(fingerprint: dict[str, Any] | None = None, folder: Path | None = None) -> MeasuredChoice | None:
    """The choice measured on the machine of ``fingerprint`` (default: this one), or None. A file whose recorded
    fingerprint differs (a copied cache folder) or that cannot be read counts as none."""
    fp = machine_fingerprint() if fingerprint is None else fingerprint
    path = choice_path(fp, folder)
    if not path.is_file():
        return None
    try:
        choice = MeasuredChoice.from_dict(json.loads(path.read_text()))
    except (OSError, ValueError, LinearSRError) as exc:
        log.warning("ignoring the unreadable measured choice %s (%s)", path, exc)
        return None
    return choice if choice.fingerprint == json.loads(json.dumps(fp, default=str)) else None


def time_bundle(
    bundle_path: Path,
    image: np.ndarray,
    threads: int,
    repeats: int = 3,
    thresholds: QualityThresholds | None = None,
) -> Candidate:
    """Load a bundle here, check its golden set, time its first frame from an empty compiled-model cache, then
    the median of ``repeats`` warm upscales of ``image``."""
    from linearsr_edge.bundle import Bundle
    from linearsr_edge.pipeline.runtime import SRRuntime
    from linearsr_edge.pipeline.session import CachingOptions, pick_backend
    from linearsr_edge.quality.verify import run_golden

    bundle = Bundle.load(bundle_path)
    info = pick_backend(bundle.format)
    with tempfile.TemporaryDirectory(prefix="linearsr-measure-") as cold:
        extra = {"cache_dir": Path(cold)} if issubclass(info.options, CachingOptions) else {}
        options = info.options(threads=threads, **extra)
        t0 = time.perf_counter()
        with SRRuntime.load(bundle, backend=info.name, options=options) as rt:
            rt.upscale(image)
            first = time.perf_counter() - t0
            times = []
            for _ in range(repeats):
                t = time.perf_counter()
                rt.upscale(image)
                times.append(time.perf_counter() - t)
            report = run_golden(rt, thresholds)
    worst = min((r for r in report.rows if r.metric == "psnr_db"), key=lambda r: r.value, default=None)
    how = f"end to end {worst.value:.1f} dB (gate {worst.limit:.0f})" if worst is not None else ""
    if report.passed:
        detail = f"{info.name}; {how}" if how else info.name
        return Candidate(bundle.target, "passed", statistics.median(times), first, detail, str(bundle_path))
    failed = ", ".join(report.failed_components)
    return Candidate(
        bundle.target, "failed", statistics.median(times), first, f"golden set failed here: {failed}; {how}",
        str(bundle_path),
    )  # fmt: skip


def measure(
    targets: Sequence[str],
    bundles: Callable[[str], Path],
    image: np.ndarray,
    threads: int,
    repeats: int = 3,
    thresholds: QualityThresholds | None = None,
    on_target: Callable[[str, int, int], None] | None = None,
) -> list[Candidate]:
    """Measure each of ``targets`` (installed ones only): ``bundles(target)`` gives its bundle (exporting it when
    needed; a `QualityGateError` there marks it failed, another `LinearSRError` an error)."""
    from linearsr_edge.errors import QualityGateError
    from linearsr_edge.registry import unavailable_reason
    from linearsr_edge.targets import all_targets

    known = {t.name: t for t in all_targets()}
    out: list[Candidate] = []
    for i, name in enumerate(targets):
        if on_target is not None:
            on_target(name, i, len(targets))
        info = known.get(name)
        if info is None:
            out.append(Candidate(name, "unavailable", detail="not a target of this version"))
            continue
        if not info.available:
            why = unavailable_reason(info) or f"pip install 'linearsr-edge[{info.extra}]'"
            out.append(Candidate(name, "unavailable", detail=why))
            continue
        try:
            out.append(time_bundle(bundles(name), image, threads, repeats, thresholds))
        except QualityGateError as exc:
            out.append(Candidate(name, "failed", detail=str(exc).splitlines()[0][:200]))
        except LinearSRError as exc:
            out.append(Candidate(name, "error", detail=str(exc).splitlines()[0][:200]))
    return out


def measured_choice(
    candidates: Sequence[Candidate],
    model: str,
    size: tuple[int, int],
    threads: int,
    profile: str = "",
    fingerprint: dict[str, Any] | None = None,
) -> MeasuredChoice:
    return MeasuredChoice(
        fingerprint=machine_fingerprint() if fingerprint is None else fingerprint,
        model=model,
        size=size,
        threads=threads,
        candidates=tuple(candidates),
        chosen=fastest_passing(candidates),
        measured_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        profile=profile,
    )


@dataclass
class ExportCandidates:
    """``bundles(target)`` for `measure`: each target exported once (with the export's own gates) into
    ``folder``, reused there by later measurements of the same model."""

    folder: Path
    checkpoint: Path | None = None
    progress: bool = True
    base: dict[str, Any] = field(default_factory=dict)  # more `ExportOptions` fields (profile, tags)

    def __call__(self, target: str) -> Path:
        from linearsr_edge.build import ExportOptions, build_bundle
        from linearsr_edge.bundle import Bundle

        out = self.folder / target
        if out.is_dir():
            try:
                Bundle.load(out)
                return out
            except LinearSRError:
                log.info("re-exporting %s: the bundle kept from an earlier measurement does not load", out)
        opts = ExportOptions(target=target, out=out, checkpoint=self.checkpoint, overwrite=True, progress=self.progress)
        return build_bundle(replace(opts, **self.base)).bundle.path


def model_folder_key(checkpoint: Path | None) -> str:
    """The folder name of a model's measured bundles: ``demo``, or the model folder's name and a digest of its
    config and weights' sizes and times (a changed model exports anew)."""
    if checkpoint is None:
        return "demo"
    files = sorted(p for p in Path(checkpoint).iterdir() if p.is_file())
    stamp = [(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    return f"{Path(checkpoint).resolve().name}-{hashlib.sha256(repr(stamp).encode()).hexdigest()[:12]}"


def run_measurement(
    profile,
    checkpoint: Path | None = None,
    size: int = 128,
    repeats: int = 3,
    progress: bool = True,
    export_options: dict[str, Any] | None = None,
) -> tuple[MeasuredChoice, Path]:
    """Measure ``profile``'s targets on this machine with the demo model (or the model folder ``checkpoint``) on a
    ``size`` square crop of the demo photo; save the answer for this machine. Returns it and where it was saved."""
    import os

    from linearsr_edge.demo import SAMPLES_DIR
    from linearsr_edge.pipeline.imaging import read_image

    image = read_image(SAMPLES_DIR / "astronaut_lr.png")
    short = max(0, size - image.shape[0]), max(0, size - image.shape[1])
    if any(short):
        image = np.pad(image, ((0, short[0]), (0, short[1]), (0, 0)), "reflect")
    image = np.ascontiguousarray(image[:size, :size])
    threads = os.cpu_count() or 1
    folder = cache_root("measure") / "bundles" / model_folder_key(checkpoint)
    export = ExportCandidates(folder, checkpoint, progress, dict(export_options or {}))

    def say(target: str, i: int, n: int) -> None:
        if progress:
            log.info("measuring %s (%d/%d): export or reuse, golden set, %d timed upscales", target, i + 1, n, repeats)

    candidates = measure(profile.targets, export, image, threads, repeats, on_target=say)
    model = "demo" if checkpoint is None else str(checkpoint)
    choice = measured_choice(candidates, model, (size, size), threads, profile.name)
    return choice, save_choice(choice)
