"""Several bundles side by side: ``linearsr-profile --compare``'s table."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from linearsr_edge.bundle import Bundle
from linearsr_edge.pipeline.session import describe_settings
from linearsr_edge.profiling.measure import ProfileReport, bundle_disk_bytes


def gate_psnr(bundle: Bundle) -> float | None:
    """The end-to-end PSNR against the FP32 PyTorch reference that the bundle's export gates measured."""
    for row in bundle.verification.rows:
        if row.component == "pipeline" and row.metric == "psnr_db":
            return row.value  # inf: identical to the reference
    return None


def expert_rate(report: ProfileReport) -> tuple[float, float, float] | None:
    """(GFLOP/s, share of the SGEMM rate, share of the experts' own limit: the INT8 rate for an INT8 bundle) over
    every expert call of an image; None without a roofline."""
    roof = report.roofline.get("components", {})
    counted = [(roof[n]["gflop"], c) for n, c in report.components.items() if n.startswith("expert_") and n in roof]
    if not counted or any(g is None for g, _ in counted):
        return None
    ms = sum(c["ms_per_image"] for _, c in counted)
    gflops = sum(g * c["calls_per_image"] for g, c in counted) / (ms * 1e-3)
    limit = report.roofline.get("int8_gops") or report.roofline["sgemm_gflops"]
    return gflops, gflops / report.roofline["sgemm_gflops"], gflops / limit


def compare_rows(reports: Sequence[ProfileReport], bundles: Sequence[Bundle]) -> list[dict[str, Any]]:
    """One row per bundle: target, size on disk, quality against FP32 from its export gates, p50, and the
    speed-up against the first bundle."""
    if not reports:
        return []
    base = reports[0].image["p50_ms"]
    return [
        {
            "bundle": r.bundle,
            "target": r.target,
            "backend": describe_settings(r.settings),
            "size_mib": bundle_disk_bytes(r.bundle) / 2**20,
            "psnr_vs_fp32_db": gate_psnr(b),
            "p50_ms": r.image["p50_ms"],
            "p95_ms": r.image["p95_ms"],
            "speedup": base / r.image["p50_ms"],
            **roof_columns(r),
        }
        for r, b in zip(reports, bundles, strict=True)
    ]


def roof_columns(report: ProfileReport) -> dict[str, float | None]:
    rate = expert_rate(report)
    names = ("expert_gflops", "expert_share_of_sgemm", "expert_share_of_limit")
    return dict(zip(names, rate if rate is not None else (None, None, None), strict=True))


def format_compare(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table (reads in a terminal, pastes into RESULTS.md)."""
    roof = any(r.get("expert_gflops") is not None for r in rows)
    lines = [
        "| bundle | target | backend | size MiB | PSNR vs FP32 (gates) | p50 ms | p95 ms | speed-up |"
        + (" experts GFLOP/s | of SGEMM | of limit |" if roof else ""),
        "|---|---|---|---:|---:|---:|---:|---:|" + ("---:|---:|---:|" if roof else ""),
    ]
    for r in rows:
        q = r["psnr_vs_fp32_db"]
        q = "n/a" if q is None else "identical" if math.isinf(q) else f"{q:.2f} dB"
        line = (
            f"| {r['bundle']} | {r['target']} | {r['backend']} | {r['size_mib']:.2f} | {q} | {r['p50_ms']:.1f} "
            f"| {r['p95_ms']:.1f} | {r['speedup']:.2f}x |"
        )
        if roof:
            g, share, own = (r.get(k) for k in ("expert_gflops", "expert_share_of_sgemm", "expert_share_of_limit"))
            line += " n/a | n/a | n/a |" if g is None else f" {g:.1f} | {100 * share:.1f}% | {100 * own:.1f}% |"
        lines.append(line)
    return "\n".join(lines)
