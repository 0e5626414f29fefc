#!/usr/bin/env python
"""Peak memory of camera-sized frames through ``linearsr-upscale --bundle``, against the device budget.

Each (bundle, frame) runs in its own process, the command a user runs, and its peak RSS is read from
the kernel (``wait4``). Frames above the bundle's profile are tiled; `SRRuntime.tile_plan` sizes the
tiles and the tiles per call from this device profile's memory budget, and its estimate is printed
beside the measurement.

    python -m benchmarks.camera_memory [--bundles B ...] [--sizes 640x480,1280x720] [--threads 2]

Without ``--bundles`` the demo model is exported as ``ov-int8`` and ``onnx-int8`` first.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def peak_rss(cmd: list[str]) -> tuple[int, float, str]:
    """(peak RSS bytes, wall seconds, last output line) of one command run to its end."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{out}")
    return usage.ru_maxrss * 1024, time.perf_counter() - t0, out.strip().splitlines()[-1]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundles", type=Path, nargs="+")
    ap.add_argument("--sizes", default="640x480,1280x720")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    from linearsr_edge.build import ExportOptions, build_bundle
    from linearsr_edge.demo import SAMPLES_DIR
    from linearsr_edge.machine import machine_line
    from linearsr_edge.pipeline.imaging import read_image, write_image
    from linearsr_edge.profiling import fit_frame
    from linearsr_edge.runtime import SRRuntime
    from linearsr_edge.specs import parse_resolution

    print(machine_line(args.threads))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        bundles = args.bundles
        if not bundles:
            bundles = []
            for target in ("ov-int8", "onnx-int8"):
                build_bundle(ExportOptions(target=target, out=root / target, progress=False))
                bundles.append(root / target)
        photo = read_image(SAMPLES_DIR / "astronaut_lr.png")
        rows = []
        for size in args.sizes.split(","):
            h, w = parse_resolution(size)
            frame = root / f"frame_{w}x{h}.png"
            write_image(frame, fit_frame(photo, h, w))
            for bundle in bundles:
                with SRRuntime.load(bundle) as rt:  # the plan the command will make, and the budget
                    plan, budget, tile_px = (
                        rt.tile_plan(h, w),
                        rt.memory_budget,
                        rt.tile_plan(h, w).side * rt.process.codec_factor,
                    )
                cmd = [sys.executable, "-m", "linearsr_edge.cli.upscale", str(frame), "-o", str(root / "out.png")]
                cmd += ["--bundle", str(bundle), "--threads", str(args.threads)]
                rss, wall, summary = peak_rss(cmd)
                rows.append((size, bundle.name, plan, tile_px, budget, rss, wall, summary))
    print("\n| input | bundle | tiles of | per call | estimate GiB | peak RSS GiB | budget GiB | within | wall s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for size, name, plan, tile_px, budget, rss, wall, _ in rows:
        print(
            f"| {size} | {name} | {tile_px} px | {plan.batch} | {plan.estimate_bytes / 2**30:.2f} "
            f"| **{rss / 2**30:.2f}** | {budget / 2**30:.1f} | {'yes' if rss <= budget else 'NO'} | {wall:.1f} |"
        )
    print("\nlast summary line:", rows[-1][-1])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
