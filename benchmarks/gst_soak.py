#!/usr/bin/env python
"""Soak: thousands of frames through the ``linearsr`` element, resident memory sampled as they go.

    linearsr-gst run /usr/bin/python3 -m benchmarks.gst_soak BUNDLE [--frames 5000] [--size 32x32] [--every 250]

``appsrc ! linearsr ! appsink`` in this process (the system Python), one frame pushed and pulled at a time; the
frames are the demo photo's crops sliding by a pixel (all differ). Prints RSS every ``--every`` frames and the
least-squares slope of RSS against frames over the second half of the run (after warm-up and the allocators'
first growth), in MB per 1000 frames.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from benchmarks.gst_overhead import frames


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--frames", type=int, default=5000)
    ap.add_argument("--size", default="32x32")
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import gi

    gi.require_version("Gst", "1.0")
    from gi.repository import Gst

    from linearsr_edge.machine import machine_line

    Gst.init(None)
    w, h = (int(v) for v in args.size.split("x"))
    clip = frames(64, w, h)  # cycled: 65 distinct frames
    stride = -(-w * 3 // 4) * 4
    payloads = []
    for frame in clip:
        padded = np.zeros((h, stride), np.uint8)
        padded[:, : w * 3] = frame.reshape(h, w * 3)
        payloads.append(padded.tobytes())
    pipeline = Gst.parse_launch(
        f"appsrc name=src format=time caps=video/x-raw,format=RGB,width={w},height={h},framerate=30/1 "
        f"! linearsr bundle={args.bundle} threads={args.threads} ! appsink name=sink sync=false"
    )
    src, sink = pipeline.get_by_name("src"), pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    print(machine_line(args.threads))
    samples: list[tuple[int, float]] = []
    t0 = time.perf_counter()
    for i in range(args.frames):
        buf = Gst.Buffer.new_wrapped(payloads[i % len(payloads)])
        buf.pts = i * Gst.SECOND // 30
        src.emit("push-buffer", buf)
        if sink.emit("try-pull-sample", 120 * Gst.SECOND) is None:
            raise SystemExit(f"no output for frame {i}")
        if (i + 1) % args.every == 0:
            samples.append((i + 1, rss_mb()))
            print(f"frame {i + 1}: RSS {samples[-1][1]:.1f} MB, {(i + 1) / (time.perf_counter() - t0):.1f} frames/s",
                  flush=True)  # fmt: skip
    src.emit("end-of-stream")
    pipeline.set_state(Gst.State.NULL)
    half = samples[len(samples) // 2 :]
    slope = np.polyfit([n for n, _ in half], [m for _, m in half], 1)[0] * 1000
    first, last = samples[0], samples[-1]
    print(f"\n{args.frames} frames of {w}x{h}; RSS {first[1]:.1f} MB at frame {first[0]}, {last[1]:.1f} MB at the end")
    print(f"slope over the second half: {slope:+.3f} MB per 1000 frames")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
