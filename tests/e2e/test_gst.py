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


def _launch(env, pipeline: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run([GST, "-m", *pipeline.split()], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(
    ("target", "caps", "out"),
    [
        ("onnx-fp32", "format=RGB,width=30,height=18", "RGB"),  # padded rows (stride 92)
        ("onnx-fp32", "format=BGRx,width=24,height=16", "BGR"),  # another layout out
        ("ov-fp32", "format=BGR,width=24,height=16", "BGR"),
    ],
)
def test_pipeline_frames_equal_the_runtime(gst_env, tiny_bundles, tmp_path, target, caps, out):
    from linearsr_edge.runtime import SRRuntime

    bundle = tiny_bundles(target).bundle
    src, dst = tmp_path / "in.raw", tmp_path / "out.raw"
    frames = 3
    done = _launch(
        gst_env,
        f"videotestsrc num-buffers={frames} pattern=snow ! video/x-raw,{caps},framerate=5/1 ! tee name=t "
        f"! queue ! filesink location={src} t. ! queue ! linearsr bundle={bundle.path} threads=2 steps=2 seed=3 "
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
            want = rt.upscale(np.array(frame), SampleOptions(steps=2, seed=3), color=fmt_in.order,
                              out_color=out_fmt.order).image  # fmt: skip
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
