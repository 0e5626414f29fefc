"""The ``linearsr`` GStreamer element in real pipelines (gst-launch-1.0, the Python plugin loader, the system
Python): it is found, its frames equal `SRRuntime.upscale` on two backends, formats and strides are honoured, and
a bad bundle or a bad frame is said on the bus. Skipped where GStreamer or its Python loader is not installed
(``.ci/run`` installs them from Debian)."""

from __future__ import annotations

import os
import shutil
import subprocess

import numpy as np
import pytest

from linearsr_edge.gst import (
    RAW_FORMATS,
    ElementSettings,
    environment,
    frame_from_buffer,
    frame_into_buffer,
    raw_format,
    scaled_size,
    typed_options,
    venv_free_path,
)


# -- the parts that need no GStreamer ------------------------------------------------------------
def test_frames_in_and_out_of_strided_buffers():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (5, 7, 3), dtype=np.uint8)
    for fmt in RAW_FORMATS.values():
        stride = -(-7 * fmt.bpp // 4) * 4 + 8  # padded rows, as GStreamer aligns them, plus some
        data = bytearray(rng.integers(0, 256, stride * 5, dtype=np.uint8).tobytes())
        frame_into_buffer(image, memoryview(data), fmt, stride)
        np.testing.assert_array_equal(frame_from_buffer(bytes(data), fmt, 7, 5, stride), image)
        rows = np.frombuffer(bytes(data), np.uint8).reshape(5, stride)
        if fmt.bpp == 4:
            assert (rows[:, 3 : 7 * 4 : 4] == 255).all()  # the x byte
    with pytest.raises(Exception, match="needs 117 bytes"):
        frame_from_buffer(b"\0" * 100, raw_format("RGB"), 7, 5, 24)
    with pytest.raises(Exception, match="put videoconvert before it"):
        raw_format("I420")


def test_caps_sizes_settings_and_options():
    from linearsr_edge.backends.openvino.options import OVOptions

    assert scaled_size(30, 18, 4, "sink") == (120, 72) and scaled_size(120, 72, 4, "src") == (30, 18)
    with pytest.raises(Exception, match="not 4x an input size"):
        scaled_size(121, 72, 4, "src")
    settings = ElementSettings(bundle="b", threads=2, roi="4, 2,8,6", options="device=CPU; precision-hint=f32")
    assert settings.roi_box() == (4, 2, 8, 6)
    assert typed_options(OVOptions, settings) == OVOptions(threads=2, device="CPU", precision_hint="f32")
    for bad, message in (({"roi": "1,2,3"}, "roi must be"), ({"options": "device"}, "name=value"),
                         ({"steps": -1}, "steps must be 0 or more")):  # fmt: skip
        with pytest.raises(Exception, match=message):
            ElementSettings(**bad)
    with pytest.raises(Exception, match="'colour' is unknown here; known: .*device"):
        typed_options(OVOptions, ElementSettings(options="colour=red"))
    venv = os.path.dirname(shutil.which("python") or "/x/bin/python")
    assert venv_free_path(os.pathsep.join([venv, "/usr/bin"])) in (None, "/usr/bin")


def test_the_helper_cli_says_what_it_needs_in_one_line(capsys):
    from linearsr_edge.cli.gst import main

    assert main(["env"]) == 0
    out = capsys.readouterr().out
    assert "export GST_PLUGIN_PATH=" in out and "linearsr_edge/gst/plugin" in out and "export PYTHONPATH=" in out
    assert main(["run"]) == 2 and "give the command" in capsys.readouterr().err
    assert main(["run", "no-such-gst-tool"]) == 2 and "no-such-gst-tool is not installed" in capsys.readouterr().err
    assert main(["check", "extra"]) == 2 and "check takes no arguments" in capsys.readouterr().err


# -- real pipelines --------------------------------------------------------------------------------
GST = shutil.which("gst-launch-1.0")


@pytest.fixture(scope="module")
def gst_env(tmp_path_factory):
    if GST is None:
        pytest.skip("GStreamer is not installed (apt-get install gstreamer1.0-tools ...; .ci/run does)")
    env = {**os.environ, **environment(), "GST_REGISTRY": str(tmp_path_factory.mktemp("gst") / "registry.bin")}
    found = subprocess.run(["gst-inspect-1.0", "linearsr"], env=env, capture_output=True, text=True, timeout=120)
    if found.returncode != 0:
        loader = subprocess.run(["gst-inspect-1.0", "python"], env=env, capture_output=True, text=True, timeout=60)
        if loader.returncode != 0:
            pytest.skip("GStreamer's Python plugin loader is not installed (gstreamer1.0-python3-plugin-loader)")
        pytest.fail(f"GStreamer does not load the element:\n{found.stderr[-2000:]}")
    return env


def test_gst_inspect_describes_the_element(gst_env):
    out = subprocess.run(["gst-inspect-1.0", "linearsr"], env=gst_env, capture_output=True, text=True).stdout
    assert "LinearSR super-resolution" in out and "Filter/Effect/Video" in out
    for prop in ("bundle", "backend", "threads", "steps", "seed", "tile", "roi", "options", "qos"):
        assert f"  {prop} " in out, prop
    assert "{ (string)RGB, (string)BGR, (string)RGBx, (string)BGRx }" in out


def _launch(env, pipeline: str, timeout: int = 300, verbose: bool = False) -> subprocess.CompletedProcess:
    text = {"encoding": "utf-8", "errors": "replace"}  # whatever the locale
    flags = ["-m", "-v"] if verbose else ["-m"]
    return subprocess.run([GST, *flags, *pipeline.split()], env=env, capture_output=True, timeout=timeout, **text)


@pytest.mark.parametrize(
    ("target", "caps", "out", "extra"),
    [
        ("onnx-fp32", "format=RGB,width=30,height=18", "RGB", ""),  # padded rows (stride 92)
        ("onnx-fp32", "format=BGRx,width=24,height=16", "BGR", ""),  # another layout out
        ("ov-fp32", "format=BGR,width=24,height=16", "BGR", ""),
        ("onnx-fp32", "format=RGB,width=48,height=32", "RGB", "reuse=tiles tile=32"),  # change-aware, tiled
    ],
)
def test_pipeline_frames_equal_the_runtime(gst_env, tiny_bundles, tmp_path, target, caps, out, extra):
    from linearsr_edge.runtime import SRRuntime

    bundle = tiny_bundles(target).bundle
    src, dst = tmp_path / "in.raw", tmp_path / "out.raw"
    frames = 3
    done = _launch(
        gst_env,
        f"videotestsrc num-buffers={frames} pattern=snow ! video/x-raw,{caps},framerate=5/1 ! tee name=t "
        f"! queue ! filesink location={src} t. ! queue ! linearsr bundle={bundle.path} threads=2 steps=2 seed=3 "
        f"{extra} "
        f"! video/x-raw,format={out} ! filesink location={dst}",
    )
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:]
    fields = dict(kv.split("=") for kv in caps.split(","))
    w, h, fmt_in = int(fields["width"]), int(fields["height"]), raw_format(fields["format"])
    s = bundle.cfg.upscale
    in_stride, out_fmt = -(-w * fmt_in.bpp // 4) * 4, raw_format(out)
    out_stride = -(-w * s * out_fmt.bpp // 4) * 4
    raw_in, raw_out = src.read_bytes(), dst.read_bytes()
    assert len(raw_in) == frames * in_stride * h and len(raw_out) == frames * out_stride * h * s
    from linearsr_edge.pipeline.process import SampleOptions

    with SRRuntime.load(bundle.path) as rt:
        previous = None
        for i in range(frames):
            frame = frame_from_buffer(raw_in[i * in_stride * h :], fmt_in, w, h, in_stride)
            got = frame_from_buffer(raw_out[i * out_stride * h * s :], out_fmt, w * s, h * s, out_stride)
            tiled = {"tiling": True, "tile": 32} if "tile=32" in extra else {}
            want = rt.upscale(np.array(frame), SampleOptions(steps=2, seed=3), color=fmt_in.order,
                              out_color=out_fmt.order, **tiled).image  # fmt: skip
            assert np.abs(want.astype(int) - got).max() <= 1, i
            assert previous is None or not np.array_equal(previous, frame)  # the frames differ: a real stream
            previous = np.array(frame)


def test_a_bad_bundle_is_an_error_on_the_bus(gst_env, tmp_path):
    done = _launch(gst_env, f"videotestsrc num-buffers=2 ! video/x-raw,format=RGB,width=16,height=16 "
                            f"! linearsr bundle={tmp_path / 'missing'} ! fakesink")  # fmt: skip
    assert done.returncode != 0
    text = done.stdout + done.stderr
    assert "ERROR: from element" in text and "missing" in text and "Traceback" not in text


def test_a_frame_that_fails_is_dropped_with_a_warning_and_the_stream_goes_on(gst_env, tiny_bundles, tmp_path):
    """The tiny bundle takes inputs of 8 pixels and more: 4x4 frames fail, each said on the bus, and the
    pipeline reaches its end as documented (frames dropped, no output, exit 0)."""
    bundle = tiny_bundles("onnx-fp32").bundle
    dst = tmp_path / "out.raw"
    done = _launch(gst_env, f"videotestsrc num-buffers=3 ! video/x-raw,format=RGB,width=4,height=4 "
                            f"! linearsr bundle={bundle.path} ! filesink location={dst}")  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    warnings = [line for line in (done.stdout + done.stderr).splitlines() if "linearsr: frame at" in line]
    assert len(warnings) == 3 and dst.read_bytes() == b"" and "Traceback" not in done.stdout + done.stderr


# -- RTSP in and out ----------------------------------------------------------------------------------
def test_the_restream_line_reads_rtsp_over_tcp_and_serves_the_encoder():
    from linearsr_edge.gst.restream import launch_line

    line = launch_line("rtsp://127.0.0.1:9/cam", "/b", quality=95, threads=2, record="/tmp/r.raw")
    assert line.startswith("( rtspsrc location=rtsp://127.0.0.1:9/cam protocols=tcp")
    assert "linearsr bundle=/b threads=2" in line and "rtpjpegpay name=pay0" in line
    assert "filesink location=/tmp/r.raw" in line
    plain = launch_line("clip.avi")
    assert "linearsr" not in plain and plain.startswith("( filesrc location=clip.avi")
    with pytest.raises(ValueError, match="codec must be"):
        launch_line("x", codec="vp9")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _serve(env, argv: list[str]):
    """``linearsr-gst restream ...`` started and ready (it printed its URL), or a failure with its output."""
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "linearsr_edge.cli.gst", "restream", *argv], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)  # fmt: skip
    line = proc.stdout.readline()
    if not line.startswith("serving rtsp://127.0.0.1:"):
        proc.kill()
        pytest.fail(f"restream did not start: {line}{proc.stderr.read()[-2000:]}")
    return proc, line.split()[1]


@pytest.fixture(scope="module")
def demo_bundle(tmp_path_factory):
    """The demo model as onnx-fp32 at a small profile: its outputs are photos (the tiny model's random weights
    give noise, which no JPEG quality keeps within 40 dB)."""
    from linearsr_edge.build import ExportOptions, build_bundle
    from linearsr_edge.specs import Profile

    out = tmp_path_factory.mktemp("demo") / "onnx-fp32"
    profile = Profile(min_hw=(64, 64), opt_hw=(128, 128), max_hw=(256, 256), batch=(1, 1, 2))
    return build_bundle(ExportOptions(target="onnx-fp32", out=out, profile=profile, progress=False)).bundle


def test_rtsp_in_and_out_on_loopback(gst_env, demo_bundle, tmp_path):
    """An NVR-shaped run on 127.0.0.1: a clip served over RTSP (a camera), restreamed through linearsr over RTSP,
    read back by an RTSP client. The frames it receives match the frames the server encoded (recorded from the
    same pipeline) within JPEG's loss: PSNR >= 40 dB each."""
    from linearsr_edge.quality.parity import psnr

    if subprocess.run(["gst-inspect-1.0", "rtspsrc"], env=gst_env, capture_output=True).returncode != 0:
        pytest.skip("rtspsrc is not installed (gstreamer1.0-plugins-good)")
    server = "import gi; gi.require_version('GstRtspServer', '1.0')"
    if subprocess.run(["/usr/bin/python3", "-c", server], env=gst_env, capture_output=True).returncode != 0:
        pytest.skip("gst-rtsp-server's bindings are not installed (gir1.2-gst-rtsp-server-1.0)")
    bundle = demo_bundle
    w, h, n = 32, 24, 8
    clip = tmp_path / "clip.avi"
    made = _launch(gst_env, f"videotestsrc num-buffers={n} pattern=ball ! video/x-raw,width={w},height={h},"
                            f"framerate=10/1 ! jpegenc quality=98 ! avimux ! filesink location={clip}")  # fmt: skip
    assert made.returncode == 0, made.stderr
    record, got = tmp_path / "encoded.raw", tmp_path / "received.raw"
    camera = sr = None
    try:
        cam_args = [str(clip), "--port", str(_free_port()), "--mount", "/cam", "--quality", "98"]
        camera, cam_url = _serve(gst_env, cam_args)
        sr, sr_url = _serve(gst_env, [cam_url, "--bundle", str(bundle.path), "--port", str(_free_port()),
                                      "--quality", "95", "--threads", "2", "--record", str(record)])  # fmt: skip
        client = _launch(gst_env, f"rtspsrc location={sr_url} protocols=tcp ! rtpjpegdepay ! jpegdec ! videoconvert "
                                  f"! video/x-raw,format=RGB ! filesink location={got}", timeout=240)  # fmt: skip
        assert client.returncode == 0, client.stdout[-2000:] + client.stderr[-2000:]
    finally:
        for proc in (sr, camera):
            if proc is not None:
                proc.terminate()
                proc.wait(timeout=30)
    s = bundle.cfg.upscale
    size = (w * s) * (h * s) * 3
    received = np.frombuffer(got.read_bytes(), np.uint8)
    encoded = np.frombuffer(record.read_bytes(), np.uint8)
    assert received.size >= size and received.size % size == 0 and encoded.size % size == 0
    received, encoded = received.reshape(-1, h * s, w * s, 3), encoded.reshape(-1, h * s, w * s, 3)
    assert len(received) == len(encoded) == n  # over TCP: every frame of the clip, in order
    for i, (frame, sent) in enumerate(zip(received, encoded, strict=True)):  # through JPEG at quality 95
        assert psnr(frame, sent, peak=255.0) >= 40.0, i


def test_timestamps_durations_and_the_frame_rate_are_kept(gst_env, tiny_bundles):
    import re

    bundle = tiny_bundles("onnx-fp32").bundle
    pipeline = (
        "videotestsrc num-buffers=3 ! video/x-raw,format=RGB,width=24,height=16,framerate=5/1 "
        f"! linearsr bundle={bundle.path} threads=1 ! fakesink silent=false"
    )
    done = _launch(gst_env, pipeline, verbose=True)
    assert done.returncode == 0, done.stderr[-2000:]
    chains = re.findall(r"chain .*?\((\d+) bytes, dts: \S+, pts: ([\d:.]+), duration: ([\d:.]+)", done.stdout)
    s = bundle.cfg.upscale
    assert [c[0] for c in chains] == [str(24 * s * 16 * s * 3)] * 3
    assert [c[1] for c in chains] == ["0:00:00.000000000", "0:00:00.200000000", "0:00:00.400000000"]
    assert {c[2] for c in chains} == {"0:00:00.200000000"}
    assert "framerate=(fraction)5/1" in done.stdout  # the output caps keep the rate
