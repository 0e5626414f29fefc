"""Upscale a video file or an RTSP stream with OpenCV, whole frames or one region, through `SRRuntime.stream`.

    pip install 'linearsr-edge[onnx,video]'
    python examples/video_upscale.py in.mp4 -o out_x4.mp4 --bundle bundles/onnx-int8
    python examples/video_upscale.py rtsp://camera/stream -o plate.mp4 --bundle B --roi 400,300,96,48 --frames 300

OpenCV decodes BGR frames; the runtime takes them as they are (``color="bgr"``) and gives BGR back, reads ahead a few
frames on its own thread, keeps the noise seed fixed for the whole stream (no flicker in static
regions) and returns results in order. A frame that fails (corrupt decode, backend error) is
reported and skipped; the video goes on.
"""

from __future__ import annotations

import argparse
import sys
import time


def frames(capture, limit: int | None):
    """BGR frames from an OpenCV capture, up to ``limit``."""
    n = 0
    while limit is None or n < limit:
        ok, frame = capture.read()
        if not ok:
            return
        n += 1
        yield frame


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", help="video file or rtsp:// URL")
    ap.add_argument("-o", "--output", required=True, help="output video (.mp4, .avi)")
    ap.add_argument("--bundle", required=True, help="an exported bundle folder (linearsr-export)")
    ap.add_argument("--roi", help="x,y,w,h: upscale only this box (e.g. a licence plate)")
    ap.add_argument("--frames", type=int, help="stop after this many frames")
    ap.add_argument("--steps", type=int, help="sampling steps (default: the model's)")
    ap.add_argument("--threads", type=int, help="backend threads")
    args = ap.parse_args(argv)

    import cv2

    from linearsr_edge import SampleOptions, SRRuntime
    from linearsr_edge.pipeline.session import get_backend, pick_backend

    roi = tuple(int(v) for v in args.roi.split(",")) if args.roi else None
    capture = cv2.VideoCapture(args.source)
    if not capture.isOpened():
        print(f"cannot open {args.source}", file=sys.stderr)
        return 2
    fps = capture.get(cv2.CAP_PROP_FPS) or 25.0
    from linearsr_edge.bundle import Bundle

    bundle = Bundle.load(args.bundle)
    info = pick_backend(bundle.format)
    options = get_backend(info.name).options(threads=args.threads)
    writer, done, failed, t0 = None, 0, 0, time.perf_counter()
    with SRRuntime.load(bundle, backend=info.name, options=options) as runtime:
        results = runtime.stream(frames(capture, args.frames), SampleOptions(steps=args.steps), color="bgr", roi=roi)
        for r in results:
            if not r.ok:
                failed += 1
                print(f"frame {r.index}: skipped ({r.error})", file=sys.stderr)
                continue
            bgr = r.image  # BGR in, BGR out
            if writer is None:
                h, w = bgr.shape[:2]
                writer = cv2.VideoWriter(args.output, cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
            writer.write(bgr)
            done += 1
    capture.release()
    if writer is not None:
        writer.release()
    elapsed = time.perf_counter() - t0
    print(f"{done} frames -> {args.output} ({failed} skipped) in {elapsed:.1f} s, {done / max(elapsed, 1e-9):.2f} fps")
    return 0 if done else 1


if __name__ == "__main__":
    raise SystemExit(main())
