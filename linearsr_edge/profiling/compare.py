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
        }
        for r, b in zip(reports, bundles, strict=True)
    ]


def format_compare(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table (reads in a terminal, pastes into RESULTS.md)."""
    lines = [
        "| bundle | target | backend | size MiB | PSNR vs FP32 (gates) | p50 ms | p95 ms | speed-up |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        q = r["psnr_vs_fp32_db"]
        q = "n/a" if q is None else "identical" if math.isinf(q) else f"{q:.2f} dB"
        lines.append(
            f"| {r['bundle']} | {r['target']} | {r['backend']} | {r['size_mib']:.2f} | {q} | {r['p50_ms']:.1f} "
            f"| {r['p95_ms']:.1f} | {r['speedup']:.2f}x |"
        )
    return "\n".join(lines)
