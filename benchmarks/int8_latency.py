#!/usr/bin/env python
"""Per-NFE latency of ONNX Runtime INT8 (static QDQ, U8 activations / S8 per-channel weights on
MatMul/Gemm/Conv) against ONNX Runtime FP32, same model, same resolution, measured in one run.

Both models are calibrated on real band data recorded from the demo pipeline (expert 1's band),
at a 64x64 latent (4096 tokens). Prints ratios; never a timed unit test.

    python -m benchmarks.int8_latency [--latent 64] [--threads 2] [--repeats 30]
"""

from __future__ import annotations

import argparse
import platform
import tempfile
from pathlib import Path

import onnxruntime as ort
import torch

from benchmarks.onnx_vs_torch import WIDE, median_ms
from linearsr_edge.backends.onnx.export import ONNXExporter
from linearsr_edge.backends.onnx.options import OnnxInt8Options, OrtOptions
from linearsr_edge.backends.onnx.precision import ONNXInt8Exporter
from linearsr_edge.backends.onnx.session import ORTSession
from linearsr_edge.calibration import CalibrationOptions, collect
from linearsr_edge.demo import load_demo, sample_images
from linearsr_edge.model.denoiser import Denoiser
from linearsr_edge.pipeline.imaging import read_image
from linearsr_edge.quality.parity import sqnr
from linearsr_edge.specs import Profile, expert_spec


def run(name, module, cfg, feeds_calib, feeds_test, latent, threads, repeats):
    side = latent * 4
    spec = expert_spec(cfg, 0, Profile(min_hw=(64, 64), opt_hw=(side, side), max_hw=(1024, 1024)), 4)
    with tempfile.TemporaryDirectory() as tmp:
        fp32 = ORTSession(ONNXExporter().export(module, spec, Path(tmp))[0], spec, OrtOptions(threads=threads))
        (Path(tmp) / "q").mkdir()
        int8_path = ONNXInt8Exporter(OnnxInt8Options()).export(module, spec, Path(tmp) / "q", calibration=feeds_calib)[
            0
        ]
        int8 = ORTSession(int8_path, spec, OrtOptions(threads=threads))
        t32, t8 = median_ms(lambda: fp32.run(feeds_test), lambda: int8.run(feeds_test), repeats=repeats)
        err = sqnr(fp32.run(feeds_test)["velocity"], int8.run(feeds_test)["velocity"])
    params = sum(p.numel() for p in module.parameters()) / 1e6
    print(f"| {name} | {params:.2f}M | {latent}x{latent} | {t32:.1f} | {t8:.1f} | **{t8 / t32:.2f}x** | {err:.1f} |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latent", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=30)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"machine: {platform.processor() or platform.machine()}, {args.threads} threads, onnxruntime {ort.__version__}"
    )
    demo = load_demo()
    images = [read_image(p) for p in sample_images()]
    calib = collect(
        demo.reference().process,
        images,
        CalibrationOptions(samples_per_expert=16, crop=args.latent, heldout_images=1, progress=False),
    )
    band = 1
    feeds_calib, feeds_test = calib.samples[band], calib.heldout[band][0]
    print("\n| model | params | latent | ORT fp32 ms | ORT int8 ms | int8 / fp32 | SQNR dB |")
    print("|---|---|---|---|---|---|---|")
    run(
        "demo expert 1 (width 128, depth 3)",
        demo.experts[band],
        demo.cfg,
        feeds_calib,
        feeds_test,
        args.latent,
        args.threads,
        args.repeats,
    )
    torch.manual_seed(0)
    run(
        "random (width 256, depth 4)",
        Denoiser(WIDE).eval(),
        WIDE,
        feeds_calib,
        feeds_test,
        args.latent,
        args.threads,
        args.repeats,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
