"""``linearsr-gst restream``: an RTSP server (gst-rtsp-server) that reads a camera or a file, upscales it with the
``linearsr`` element and serves the result, the NVR shape: RTSP in, decode, super-resolve, encode, RTSP out.

    linearsr-gst restream rtsp://camera/stream --bundle bundles/ov-fp32 --port 8554 --mount /sr
    gst-launch-1.0 rtspsrc location=rtsp://127.0.0.1:8554/sr ! rtpjpegdepay ! jpegdec ! autovideosink

Run in the system Python (PyGObject and GstRtspServer come from Debian: ``gir1.2-gst-rtsp-server-1.0``);
``linearsr-gst restream`` starts it there. Binds 127.0.0.1 unless told otherwise. `launch_line` (the media
pipeline) is plain text and tested without GStreamer.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import sys
from pathlib import Path

CODECS = {
    "jpeg": "jpegenc quality={quality} ! rtpjpegpay name=pay0 pt=26",
    "h264": "x264enc tune=zerolatency speed-preset=ultrafast ! rtph264pay name=pay0 pt=96 config-interval=1",
}


def launch_line(
    source: str,
    bundle: str | None = None,
    codec: str = "jpeg",
    quality: int = 90,
    threads: int = 0,
    steps: int = 0,
    record: str | None = None,
) -> str:
    """The RTSP media's pipeline: ``source`` (an rtsp:// URL, over TCP, or a video file) decoded, through
    ``linearsr`` when a bundle is given, encoded with ``codec`` into the payloader the server serves; ``record``
    also writes the frames the encoder gets, as raw RGB (for checks: a client decodes them up to the codec's
    loss)."""
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
    if source.startswith(("rtsp://", "rtsps://")):
        src = f"rtspsrc location={shlex.quote(source)} protocols=tcp latency=0 ! decodebin"
    else:
        src = f"filesrc location={shlex.quote(str(Path(source)))} ! decodebin"
    sr = ""
    if bundle:
        sr = f" ! videoconvert ! linearsr bundle={shlex.quote(bundle)} threads={threads} steps={steps}"
    # I420 for the encoder: RTP's JPEG payload carries YUV 4:2:0/4:2:2 only, and x264enc wants it too. JPEG's YUV
    # is full range (JFIF; colorimetry 1:4:0:0): a video-range conversion came back 8 % darker (233 -> 215)
    yuv = "video/x-raw,format=I420" + (",colorimetry=1:4:0:0" if codec == "jpeg" else "")
    encode = CODECS[codec].format(quality=quality)
    if record:  # the frames the encoder gets, as RGB: what a client should decode, up to the codec's loss
        rgb = f"videoconvert ! video/x-raw,format=RGB ! filesink location={shlex.quote(record)}"
        body = f"{src}{sr} ! videoconvert ! {yuv} ! tee name=t ! queue ! {encode} t. ! queue ! {rgb}"
    else:
        body = f"{src}{sr} ! videoconvert ! {yuv} ! {encode}"
    return f"( {body} )"


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="linearsr-gst restream",
        description="Serve a camera or file over RTSP, super-resolved by the linearsr element.",
    )
    ap.add_argument("source", help="rtsp:// URL of the camera, or a video file")
    ap.add_argument("--bundle", help="exported bundle (omit to serve the source as it is)")
    ap.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    ap.add_argument("--port", type=int, default=8554)
    ap.add_argument("--mount", default="/sr", help="path of the stream (default /sr)")
    ap.add_argument("--codec", choices=tuple(CODECS), default="jpeg", help="jpeg (plugins-good) or h264 (x264enc)")
    ap.add_argument("--quality", type=int, default=90, help="JPEG quality (default 90)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--steps", type=int, default=0)
    ap.add_argument("--record", help="also write the raw RGB frames it encodes to this file")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    import gi

    gi.require_version("Gst", "1.0")
    gi.require_version("GstRtspServer", "1.0")
    from gi.repository import GLib, Gst, GstRtspServer

    Gst.init(None)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host}: reachable from other machines", file=sys.stderr)
    line = launch_line(args.source, args.bundle, args.codec, args.quality, args.threads, args.steps, args.record)
    server = GstRtspServer.RTSPServer()
    server.set_address(args.host)
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(line)
    factory.set_shared(True)
    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        print(f"cannot serve on {args.host}:{args.port} (in use?)", file=sys.stderr)
        return 2
    loop = GLib.MainLoop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, lambda *_: (loop.quit(), False)[1])
    print(f"serving rtsp://{args.host}:{args.port}{args.mount}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
