"""Parity reports: every output's max abs error and PSNR against the PyTorch reference."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np


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


@dataclass(frozen=True)
class ParityRow:
    component: str
    case: str  # which inputs: "opt b2", "min b1", "end-to-end <image>"
    max_abs: float
    psnr_db: float
    limit: str  # the check it is held to
    passed: bool

    def to_dict(self) -> dict:
        d = asdict(self)
        d["psnr_db"] = None if math.isinf(self.psnr_db) else round(self.psnr_db, 2)  # JSON has no inf
        return d


def format_report(rows: list[ParityRow]) -> str:
    head = f"{'component':<12} {'case':<28} {'max abs err':>12} {'PSNR dB':>8}  {'limit':<16} ok"
    lines = [head, "-" * len(head)]
    for r in rows:
        p = "inf" if math.isinf(r.psnr_db) else f"{r.psnr_db:.1f}"
        lines.append(
            f"{r.component:<12} {r.case:<28} {r.max_abs:>12.3g} {p:>8}  {r.limit:<16} {'yes' if r.passed else 'NO'}"
        )
    return "\n".join(lines)
