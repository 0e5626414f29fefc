#!/usr/bin/env python
"""`upscale_batch` of N equal frames against N `upscale` calls, on the demo's `onnx-fp32` bundle,
measured in one run (interleaved repeats, median). Also the same batch with residency ``one``.

    python -m benchmarks.batch_vs_single [--bundle DIR] [--frames 8] [--sizes 32 64] [--repeats 5]

Without --bundle the demo is exported to a temporary folder first (about a minute).
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from linearsr_edge.backends.onnx.options import OrtOptions
from linearsr_edge.runtime import SRRuntime


def export_demo(folder: Path) -> Path:
    from linearsr_edge.build import ExportOptions, build_bundle
    from linearsr_edge.specs import Profile

    out = folder / "demo-fp32"
    build_bundle(
        ExportOptions(target="onnx-fp32", out=out, profile=Profile(max_hw=(512, 512), batch=(1, 1, 8)), progress=False)
    )
    return out


def timed(fn) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path)
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--sizes", type=int, nargs="+", default=[32, 64], help="input sides (output is 4x)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bundle = args.bundle or export_demo(Path(tmp))
        opts = OrtOptions(threads=args.threads)
        rt, one = SRRuntime.load(bundle, options=opts), SRRuntime.load(bundle, options=opts, residency="one")
        print(
            f"machine: {platform.machine()}, {args.threads} threads; bundle {bundle.name}; "
            f"{args.frames} frames per call, median of {args.repeats}"
        )
        print(
            "\n| input | output | latent tokens | N x upscale s | upscale_batch s | batch / singles "
            "| batch, residency one s |\n|---|---|---|---|---|---|---|"
        )
        for side in args.sizes:
            rng = np.random.default_rng(side)
            frames = [rng.integers(0, 256, (side, side, 3), dtype=np.uint8) for _ in range(args.frames)]
            rt.upscale_batch(frames[:2])  # warm-up
            singles, batches, ones = [], [], []
            for _ in range(args.repeats):
                singles.append(timed(lambda f=frames: [rt.upscale(x) for x in f]))
                batches.append(timed(lambda f=frames: rt.upscale_batch(f)))
                ones.append(timed(lambda f=frames: one.upscale_batch(f)))
            s, b, o = (statistics.median(v) for v in (singles, batches, ones))
            print(
                f"| {side}x{side} | {4 * side}x{4 * side} | {side * side} | {s:.2f} | {b:.2f} | **{b / s:.2f}x** "
                f"| {o:.2f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
