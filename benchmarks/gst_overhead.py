#!/usr/bin/env python
"""Frames through the ``linearsr`` GStreamer element against `SRRuntime.stream` on the same frames, in one run.

    linearsr-gst run /usr/bin/python3 -m benchmarks.gst_overhead BUNDLE [--frames 20] [--size 160x90] [--rounds 3]

Run by the system Python (it has PyGObject; ``linearsr-gst run`` sets the plugin and Python paths). The frames
are ``--size`` crops of the demo photo sliding by one pixel per frame (every frame differs). The element:
``appsrc ! linearsr ! appsink`` in this process, one frame pushed and its result pulled before the next, as a
camera at the element's own pace. The stream: ``SRRuntime.stream`` over the same frames, same threads, steps and
seed. Both warm up on one frame first (untimed). Rounds alternate the two; medians of the per-round frame rates
and per-frame wall times (from one result to the next). Prints both, their ratio, and whether the outputs agree.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np


def frames(n: int, width: int, height: int) -> list[np.ndarray]:
    from linearsr_edge.demo import SAMPLES_DIR
    from linearsr_edge.pipeline.imaging import read_image

    photo = read_image(SAMPLES_DIR / "astronaut_lr.png")
    photo = np.pad(photo, ((0, max(0, height - photo.shape[0])), (0, max(0, width + n - photo.shape[1])), (0, 0)),
                   mode="reflect")  # fmt: skip
    return [np.ascontiguousarray(photo[:height, i : i + width]) for i in range(n + 1)]  # +1: the warm-up


def through_element(bundle: Path, clip: list[np.ndarray], threads: int, steps: int) -> tuple[list[float], list]:
    import gi

    gi.require_version("Gst", "1.0")
    from gi.repository import Gst

    Gst.init(None)
    h, w = clip[0].shape[:2]
    pipeline = Gst.parse_launch(
        f"appsrc name=src format=time caps=video/x-raw,format=RGB,width={w},height={h},framerate=10/1 "
        f"! linearsr bundle={bundle} threads={threads} steps={steps} seed=0 ! appsink name=sink sync=false"
    )
    src, sink = pipeline.get_by_name("src"), pipeline.get_by_name("sink")
    pipeline.set_state(Gst.State.PLAYING)
    stride = -(-w * 3 // 4) * 4
    marks, outputs = [], []
    for i, frame in enumerate(clip):
        padded = np.zeros((h, stride), np.uint8)
        padded[:, : w * 3] = frame.reshape(h, w * 3)
        buf = Gst.Buffer.new_wrapped(padded.tobytes())
        buf.pts = i * Gst.SECOND // 10
        buf.duration = Gst.SECOND // 10
        src.emit("push-buffer", buf)
        sample = sink.emit("try-pull-sample", 120 * Gst.SECOND)
        if sample is None:
            raise SystemExit(f"no output for frame {i}: see the bus ({pipeline.get_bus().pop()})")
        out = sample.get_buffer()
        _, info = out.map(Gst.MapFlags.READ)
        s = sample.get_caps().get_structure(0)
        ow, oh = s.get_int("width")[1], s.get_int("height")[1]
        ostride = -(-ow * 3 // 4) * 4
        outputs.append(np.frombuffer(info.data, np.uint8).reshape(oh, ostride)[:, : ow * 3].reshape(oh, ow, 3).copy())
        out.unmap(info)
        marks.append(time.perf_counter())
    src.emit("end-of-stream")
    pipeline.set_state(Gst.State.NULL)
    return marks[1:], outputs[1:]  # from the warm-up frame's result on


def through_stream(runtime, clip: list[np.ndarray], steps: int) -> tuple[list[float], list]:
    from linearsr_edge.pipeline.process import SampleOptions

    marks, outputs = [], []
    for r in runtime.stream(clip[1:], SampleOptions(steps=steps or None, seed=0), warmup=True):
        marks.append(time.perf_counter())
        outputs.append(r.image)
    return marks, outputs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--frames", type=int, default=20)
    ap.add_argument("--size", default="160x90")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=0)
    args = ap.parse_args()

    from linearsr_edge.bundle import Bundle
    from linearsr_edge.machine import machine_line
    from linearsr_edge.pipeline.session import pick_backend
    from linearsr_edge.runtime import SRRuntime

    w, h = (int(v) for v in args.size.split("x"))
    clip = frames(args.frames, w, h)
    bundle = Bundle.load(args.bundle)
    runtime = SRRuntime.load(bundle, options=pick_backend(bundle.format).options(threads=args.threads))
    print(machine_line(args.threads))
    fps: dict[str, list[float]] = {"element": [], "stream": []}
    per: dict[str, list[float]] = {"element": [], "stream": []}
    same = True
    for _ in range(args.rounds):
        for name in ("element", "stream"):
            if name == "element":
                t0 = time.perf_counter()
                marks, outs = through_element(args.bundle, clip, args.threads, args.steps)
                start = marks[0] - (marks[1] - marks[0]) if len(marks) > 1 else t0
            else:
                marks, outs = through_stream(runtime, clip, args.steps)
                start = marks[0] - (marks[1] - marks[0]) if len(marks) > 1 else marks[0]
            gaps = np.diff([start, *marks])
            fps[name].append(len(marks) / float(gaps.sum()))
            per[name].append(float(np.median(gaps)) * 1e3)
            if name == "element":
                element_outs = outs
            else:
                same &= all(np.abs(a.astype(int) - b).max() <= 1 for a, b in zip(element_outs, outs, strict=True))
    e_fps, s_fps = statistics.median(fps["element"]), statistics.median(fps["stream"])
    e_ms, s_ms = statistics.median(per["element"]), statistics.median(per["stream"])
    print(f"{bundle.target}, {args.frames} frames of {w}x{h} -> {w * bundle.cfg.upscale}x{h * bundle.cfg.upscale}, "
          f"medians of {args.rounds} alternated rounds\n")  # fmt: skip
    print("| path | frames/s | ms per frame |")
    print("|---|---:|---:|")
    print(f"| linearsr element (appsrc ! linearsr ! appsink) | {e_fps:.3f} | {e_ms:.1f} |")
    print(f"| SRRuntime.stream | {s_fps:.3f} | {s_ms:.1f} |")
    print(f"\nelement overhead: {100 * (e_ms / s_ms - 1):+.1f} % per frame; outputs agree within 1 level: {same}")
    runtime.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
