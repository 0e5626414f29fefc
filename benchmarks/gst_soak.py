#!/usr/bin/env python
"""Soak: thousands of frames through the ``linearsr`` element in ``gst-launch-1.0``, its resident memory sampled.

    python -m benchmarks.gst_soak BUNDLE [--frames 5000] [--size 32x24] [--every 250]

``videotestsrc pattern=snow`` (every frame differs) ``! linearsr ! fakesink`` in one gst-launch-1.0 process (the
deployment shape: a C application embedding the system Python); fakesink announces each buffer (``-v``), which
this script counts while it reads the process's VmRSS every ``--every`` frames. Prints the samples and the
least-squares slope of RSS against frames over the second half (after warm-up and the allocators' first growth),
in MB per 1000 frames.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import time
from pathlib import Path

import numpy as np


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--frames", type=int, default=5000)
    ap.add_argument("--size", default="32x24")
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    from linearsr_edge.gst import environment
    from linearsr_edge.machine import machine_line

    w, h = (int(v) for v in args.size.split("x"))
    pipeline = (
        f"videotestsrc num-buffers={args.frames} pattern=snow ! video/x-raw,format=RGB,width={w},height={h} "
        f"! linearsr bundle={args.bundle} threads={args.threads} ! fakesink silent=false"
    )
    print(machine_line(args.threads))
    proc = subprocess.Popen(["gst-launch-1.0", "-v", *pipeline.split()], env={**os.environ, **environment()},
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)  # fmt: skip
    samples: list[tuple[int, float]] = []
    frames, t0 = 0, time.perf_counter()
    for line in proc.stdout:
        if "last-message = chain" not in line:
            continue
        frames += 1
        if frames % args.every == 0:
            samples.append((frames, rss_mb(proc.pid)))
            rate = frames / (time.perf_counter() - t0)
            print(f"frame {frames}: RSS {samples[-1][1]:.1f} MB, {rate:.1f} frames/s", flush=True)
    if proc.wait() != 0 or frames != args.frames:
        raise SystemExit(f"gst-launch-1.0 ended with {proc.returncode} after {frames} frames")
    half = samples[len(samples) // 2 :]
    slope = np.polyfit([n for n, _ in half], [m for _, m in half], 1)[0] * 1000
    first, last = samples[0], samples[-1]
    print(f"\n{args.frames} frames of {w}x{h}; RSS {first[1]:.1f} MB at frame {first[0]}, {last[1]:.1f} MB at the end")
    print(f"slope over the second half: {slope:+.3f} MB per 1000 frames")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
