#!/usr/bin/env python
"""Ablation: INT8 calibrated per expert on its own log-SNR band vs on inputs pooled over all steps
(what generic tools do). End-to-end PSNR of each INT8 pipeline against the FP32 pipeline on the
held-out photos (never used for calibration), and per-expert SQNR, in one table.

    python -m benchmarks.calibration_ablation [--samples 16] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import torch

from linearsr_edge.backends.onnx.options import OnnxInt8Options
from linearsr_edge.build import ExportOptions, build_bundle
from linearsr_edge.calibration import CalibrationOptions
from linearsr_edge.checks import QualityThresholds
from linearsr_edge.demo import load_demo
from linearsr_edge.demo.evaluate import heldout_pairs
from linearsr_edge.machine import machine_line
from linearsr_edge.pipeline.process import SampleOptions
from linearsr_edge.quality.parity import psnr
from linearsr_edge.runtime import SRRuntime


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--samples", type=int, default=16, help="calibration inputs per expert")
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = ap.parse_args()
    torch.set_num_threads(2)
    print(f"{machine_line(2)}; onnx-int8 defaults: {OnnxInt8Options()}\n")
    demo = load_demo()
    pipe = demo.reference()
    photos = [(name, lr) for name, _, lr in heldout_pairs(demo.cfg.upscale)]
    opts = SampleOptions(seed=0)
    refs = {name: pipe.upscale(lr, opts).image for name, lr in photos}
    print("| calibration | seed | " + " | ".join(n for n, _ in photos) + " | mean PSNR vs FP32 | expert SQNR dB |")
    print("|---|---|" + "---|" * len(photos) + "---|---|")
    summary: dict[str, list[float]] = {"band": [], "pooled": []}
    for seed in args.seeds:
        for mode in ("band", "pooled"):
            with tempfile.TemporaryDirectory() as tmp:
                calib = CalibrationOptions(
                    samples_per_expert=args.samples, seed=seed, pooled=mode == "pooled", progress=False
                )
                result = build_bundle(
                    ExportOptions(
                        target="onnx-int8",
                        out=Path(tmp) / "b",
                        calibration=calib,
                        progress=False,
                        thresholds=QualityThresholds(0.0, 0.0, 0.0),
                    )
                )
                bundle, rows = result.bundle, result.rows
                rt = SRRuntime.load(bundle.path)
                values = [psnr(refs[n], rt.upscale(lr, opts).image, peak=255.0) for n, lr in photos]
            sq = " / ".join(f"{r.value:.1f}" for r in rows if r.metric == "sqnr_db")
            summary[mode].append(float(np.mean(values)))
            print(
                f"| {mode} | {seed} | "
                + " | ".join(f"{v:.2f}" for v in values)
                + f" | **{np.mean(values):.2f}** | {sq} |"
            )
    b, p = np.mean(summary["band"]), np.mean(summary["pooled"])
    print(f"\nmean over seeds: band-stratified {b:.2f} dB, pooled {p:.2f} dB, difference {b - p:+.2f} dB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
