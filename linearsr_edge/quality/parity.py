"""Check reports: one row type for FP32 parity and FP16/INT8 quality gates alike.

Every row is one number against one limit: a component's max abs error (must stay at or below),
an expert's SQNR or the pipeline's PSNR in dB (must reach at least).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from linearsr_edge.checks import METRICS, CheckRow
from linearsr_edge.errors import QualityGateError


def psnr(reference: np.ndarray, test: np.ndarray, peak: float | None = None) -> float:
    """PSNR in dB; ``peak`` defaults to the reference's value range (inf when identical)."""
    ref = reference.astype(np.float64)
    mse = float(np.mean((ref - test.astype(np.float64)) ** 2))
    if peak is None:
        peak = float(ref.max() - ref.min()) or 1.0
    return math.inf if mse == 0 else 10.0 * math.log10(peak**2 / mse)


def sqnr(reference: np.ndarray, test: np.ndarray) -> float:
    """Signal-to-quantisation-noise ratio in dB: ``10 log10(sum ref^2 / sum (ref - test)^2)``."""
    ref = reference.astype(np.float64)
    noise = float(np.sum((ref - test.astype(np.float64)) ** 2))
    return math.inf if noise == 0 else 10.0 * math.log10(float(np.sum(ref**2)) / noise)


def max_abs_row(component: str, case: str, ref: np.ndarray, got: np.ndarray, limit: float) -> CheckRow:
    err = float(np.abs(ref.astype(np.float64) - got.astype(np.float64)).max()) if ref.size else 0.0
    if not np.isfinite(got).all():
        err = math.nan
    return CheckRow(component, case, "max_abs", err, limit)


def sqnr_row(component: str, case: str, refs: Sequence[np.ndarray], tests: Sequence[np.ndarray], limit: float):
    """SQNR over every output concatenated."""
    ref = np.concatenate([r.ravel() for r in refs])
    test = np.concatenate([t.ravel() for t in tests])
    value = sqnr(ref, test) if np.isfinite(test).all() else math.nan
    return CheckRow(component, case, "sqnr_db", value, limit)


def step_row(
    component: str,
    case: str,
    latents: Sequence[np.ndarray],
    refs: Sequence[np.ndarray],
    tests: Sequence[np.ndarray],
    dsigmas: Sequence[float],
    limit: float,
) -> CheckRow:
    """The error an expert adds to the sampler's state, as the sampler sees it: SNR in dB of the Euler
    step's result ``x + dsigma * v_ref`` against ``dsigma * (v_ref - v)``.

    An expert's output SQNR undersells low-noise experts, whose velocity is noise amplified by
    1/sigma while their steps are short; this is the error the step actually commits."""
    signal = np.concatenate([(x + d * r).ravel() for x, r, d in zip(latents, refs, dsigmas, strict=True)])
    noise = np.concatenate([(d * (r - t)).ravel() for r, t, d in zip(refs, tests, dsigmas, strict=True)])
    value = sqnr(signal, signal - noise) if np.isfinite(noise).all() else math.nan
    return CheckRow(component, case, "step_snr_db", value, limit)


def psnr_row(case: str, refs: Sequence[np.ndarray], tests: Sequence[np.ndarray], limit: float) -> CheckRow:
    """Mean PSNR (peak 255) of uint8 pipeline outputs against the reference's (identical images: inf)."""
    values = [psnr(r, t, peak=255.0) for r, t in zip(refs, tests, strict=True)]
    finite = [v for v in values if math.isfinite(v)]
    return CheckRow("pipeline", case, "psnr_db", float(np.mean(finite)) if finite else math.inf, limit)


def format_rows(rows: Sequence[CheckRow]) -> str:
    head = f"{'component':<10} {'case':<30} {'metric':<12} {'value':>10} {'limit':>9}  ok"
    lines = [head, "-" * len(head)]
    for r in rows:
        v = "inf" if math.isinf(r.value) else f"{r.value:.3g}" if r.metric == "max_abs" else f"{r.value:.2f}"
        limit = f"<= {r.limit:.3g}" if r.metric == "max_abs" else f">= {r.limit:.1f}"
        ok = "yes" if r.passed else "NO"
        lines.append(f"{r.component:<10} {r.case[:30]:<30} {METRICS[r.metric]:<12} {v:>10} {limit:>9}  {ok}")
    return "\n".join(lines)


def enforce(rows: Sequence[CheckRow], target: str, out: object) -> None:
    """Raise one `QualityGateError` naming every component that missed a check, with the table."""
    failed = sorted({r.component for r in rows if not r.passed})
    if failed:
        raise QualityGateError(
            f"{target} misses its checks for {', '.join(failed)}; nothing was written to {out}\n" + format_rows(rows)
        )
