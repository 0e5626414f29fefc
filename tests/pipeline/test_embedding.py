"""Embedding in camera software: frames API, latent tiling, ROI, streams, threads and bad frames."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from linearsr_edge.errors import ConfigError, ImageError, InputSpecError
from linearsr_edge.pipeline import memory
from linearsr_edge.pipeline.imaging import frame_rgb
from linearsr_edge.pipeline.process import SampleOptions
from linearsr_edge.pipeline.tiling import TileGrid, blend, seam_ratio, starts
from linearsr_edge.quality.parity import psnr
from linearsr_edge.runtime import SRRuntime


def _frame(h, w, seed=0):
    """A stationary texture: smooth noise, the same statistics everywhere (seams cannot hide in content)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 3 + 2, w // 3 + 2, 3)).astype(np.float32)
    from PIL import Image

    chans = [np.asarray(Image.fromarray(c).resize((w, h), Image.BICUBIC)) for c in small.transpose(2, 0, 1)]
    return np.clip(np.stack(chans, axis=2), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def runtime(tiny_bundles):
    with SRRuntime.load(tiny_bundles("onnx-fp32").bundle.path, backend="onnxruntime") as rt:
        yield rt


# -- tiles ----------------------------------------------------------------------------------------
def test_tile_grid_covers_with_overlap_and_weights_sum_to_one():
    assert starts(10, 4, 1) == [0, 3, 6]
    assert starts(4, 8, 2) == [0]
    grid = TileGrid(13, 22, 8, 3)
    boxes = grid.boxes()
    covered = np.zeros((13, 22), int)
    for y0, y1, x0, x1 in boxes:
        assert (y1 - y0, x1 - x0) == (8, 8)
        covered[y0:y1, x0:x1] += 1
    assert covered.min() >= 1
    plane = np.random.default_rng(0).standard_normal((2, 13, 22)).astype(np.float32)
    parts = [plane[:, y0:y1, x0:x1] for y0, y1, x0, x1 in boxes]
    out = blend(parts, boxes, [grid.weights(b) for b in boxes], plane.shape)
    assert np.allclose(out, plane, atol=1e-6)  # a convex mix of identical values gives them back
    w = grid.weights(boxes[0])
    assert w[0, 0] == 1.0 and w[-1, -1] < 0.2  # the first tile fades towards its neighbours only
    with pytest.raises(ConfigError, match="overlap < tile"):
        TileGrid(10, 10, 4, 4)


def test_tiled_matches_untiled_and_shows_no_seams(runtime):
    image = _frame(48, 64, seed=2)  # fits the tiny profile whole (output 96x128 <= 128x128)
    untiled = runtime.upscale(image, tiling=False).image
    tiled = runtime.upscale(image, tiling=True, tile=32)
    assert tiled.timings["tiles"] > 4
    assert psnr(untiled, tiled.image, peak=255.0) >= 40.0
    latent_tile, overlap = runtime.tile_size(32)
    f = runtime.process.codec_factor  # output pixels per latent pixel
    grid = TileGrid(tiled.image.shape[0] // f, tiled.image.shape[1] // f, latent_tile, overlap)
    ratio = seam_ratio(tiled.image, grid, f)  # gradient across tile borders / across other latent-pixel lines
    assert abs(ratio - 1) <= 0.10, ratio
    assert abs(seam_ratio(untiled, grid, f) - 1) <= 0.10  # the same lines of the untiled image: no content edge


def test_frames_larger_than_the_profile_are_tiled_or_refused(runtime):
    big = _frame(80, 72, seed=3)  # output 160x144: above the tiny profile's 128x128
    with pytest.raises(InputSpecError, match="outside the bundle's profile"):
        runtime.upscale(big, tiling=False)
    out = runtime.upscale(big)  # tiling=None: tiled automatically
    assert out.image.shape == (160, 144, 3) and out.timings["tiles"] >= 2
    small = runtime.upscale(big[:40, :40]).image
    assert psnr(small, out.image[:80, :80], peak=255.0) > 20.0  # the same scene where the two overlap
    with pytest.raises(ConfigError, match="tile"):
        runtime.upscale(big, tile=0)


def test_a_tile_size_the_bundle_cannot_run_is_refused(runtime):
    lo = runtime.spec("expert_0").dims["height"].min * runtime.process.codec_factor
    with pytest.raises(ConfigError, match=f"below the smallest tile this bundle runs: give a tile of {lo} to"):
        runtime.tile_size(lo - 1)
    assert runtime.tile_size(lo)[0][0] * runtime.process.codec_factor == lo
    assert runtime.tile_size(10_000) == runtime.tile_size(runtime.spec("expert_0").dims["height"].max * 2)


def test_the_plan_fits_the_budget_with_fewer_tiles_per_call_then_smaller_tiles():
    from linearsr_edge.pipeline.memory import plan_tiles, run_bytes
    from tests.conftest import tiny_config

    cfg = tiny_config()
    args = dict(cfg=cfg, codec_factor=2, out_pixels=640 * 480 * 4, min_tile=8, multiple=1, arenas=4, fixed_bytes=0)
    roomy = plan_tiles(tile=(64, 64), max_batch=4, budget=1 << 40, **args)
    assert (roomy.tile, roomy.batch, roomy.fits) == ((64, 64), 4, True)
    one_tile = run_bytes(cfg, 2, 640 * 480 * 4, 64 * 64, 4, 0, cover=(64 / 48) ** 2)
    tight = plan_tiles(tile=(64, 64), max_batch=4, budget=one_tile, **args)
    assert (tight.tile, tight.batch, tight.fits) == ((64, 64), 1, True) and tight.estimate_bytes <= one_tile
    tighter = plan_tiles(tile=(64, 64), max_batch=4, budget=one_tile - 1, **args)
    assert tighter.side < 64 and tighter.batch >= 1 and tighter.fits
    hopeless = plan_tiles(tile=(64, 64), max_batch=4, budget=1, **args)
    assert (hopeless.tile, hopeless.batch, hopeless.fits) == ((8, 8), 1, False)
    pinned = plan_tiles(tile=(16, 24), max_batch=4, budget=1, shrink=False, **args)
    assert pinned.tile == (16, 24) and not pinned.fits  # a restricted policy's tile is never halved


def test_a_frame_over_the_memory_budget_is_tiled_within_it(tiny_bundles, caplog):
    """The same in-profile frame: whole under a roomy budget; tiled, fewer tiles per call, when one piece would
    exceed a small budget; and the result stays the untiled one's within the tiling tests' bound."""
    image = _frame(48, 64, seed=4)
    path = tiny_bundles("onnx-fp32").bundle.path
    with SRRuntime.load(path, backend="onnxruntime", memory_budget=1 << 40) as roomy:
        whole = roomy.upscale(image)
        assert whole.tiles == 0
    with SRRuntime.load(path, backend="onnxruntime") as rt:
        rt.memory_budget = memory.whole_bytes(rt, 48, 64) - 1  # one piece no longer fits
        plan = rt.tile_plan(48, 64)
        assert plan.fits and plan.estimate_bytes <= rt.memory_budget
        tiled = rt.upscale(image)
        assert tiled.tiles > 1 and tiled.tile_px == plan.side * rt.process.codec_factor
        assert psnr(whole.image, tiled.image, peak=255.0) >= 40.0
        with pytest.raises(ConfigError, match="memory_budget must be a positive number of bytes"):
            rt.memory_budget = 0


# -- frames ---------------------------------------------------------------------------------------
def test_frame_conversions():
    rgb = _frame(10, 12)
    assert np.array_equal(frame_rgb(rgb[:, :, ::-1], "bgr"), rgb)
    assert np.array_equal(frame_rgb(np.asfortranarray(rgb)), rgb)
    gray = rgb[:, :, 0]
    assert np.array_equal(frame_rgb(gray), np.stack([gray] * 3, axis=2))
    assert np.array_equal(frame_rgb(gray[:, :, None]), np.stack([gray] * 3, axis=2))
    bgra = np.concatenate([rgb[:, :, ::-1], np.full((10, 12, 1), 7, np.uint8)], axis=2)
    assert np.array_equal(frame_rgb(bgra, "bgr"), rgb)
    assert frame_rgb(rgb[::2, ::3]).flags.c_contiguous


def test_a_frame_comes_back_in_its_own_colour_order(runtime):
    """An OpenCV (BGR) frame comes back BGR, from every entry point, unless ``out_color`` says otherwise; a BGRA
    frame too; ROI and the tiled path as well."""
    rgb = _frame(12, 16, seed=5)
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    want = runtime.upscale(rgb).image
    assert not np.array_equal(want, want[:, :, ::-1])  # the check below can see a swap
    np.testing.assert_array_equal(runtime.upscale(bgr, color="bgr").image, want[:, :, ::-1])
    np.testing.assert_array_equal(runtime.upscale(bgr, color="bgr", out_color="rgb").image, want)
    np.testing.assert_array_equal(runtime.upscale(rgb, out_color="bgr").image, want[:, :, ::-1])
    bgra = np.concatenate([bgr, np.full((12, 16, 1), 9, np.uint8)], axis=2)
    np.testing.assert_array_equal(runtime.upscale(bgra, color="bgr").image, want[:, :, ::-1])
    box = runtime.upscale(rgb, roi=(4, 2, 8, 8)).image
    np.testing.assert_array_equal(runtime.upscale(bgr, color="bgr", roi=(4, 2, 8, 8)).image, box[:, :, ::-1])
    tiled = runtime.upscale(rgb, tiling=True, tile=32).image
    np.testing.assert_array_equal(runtime.upscale(bgr, color="bgr", tiling=True, tile=32).image, tiled[:, :, ::-1])
    batch = runtime.upscale_batch([bgr, bgr], color="bgr")
    assert all(np.array_equal(r.image, want[:, :, ::-1]) for r in batch)
    (streamed,) = list(runtime.stream([bgr], color="bgr", warmup=False))
    np.testing.assert_array_equal(streamed.image, want[:, :, ::-1])
    with pytest.raises(ConfigError, match="out_color must be"):
        runtime.upscale(rgb, out_color="yuv")


@pytest.mark.parametrize(
    "frame, message",
    [
        (np.zeros((8, 8, 3), np.float32), "dtype float32"),
        (np.full((8, 8, 3), np.nan, np.float32), "dtype float32"),
        (np.full((8, 8, 3), np.inf, np.float64), "dtype float64"),
        (np.zeros((8, 8, 3), np.uint16), "dtype uint16"),
        (np.zeros((8, 8, 2), np.uint8), "got shape"),
        (np.zeros((8, 8, 3, 1), np.uint8), "got shape"),
        (np.zeros((0, 8, 3), np.uint8), "empty"),
        (np.zeros((1, 1, 3), np.uint8), "each side must be"),
        ("not an array", "NumPy array"),
    ],
)
def test_bad_frames_get_typed_errors(runtime, frame, message):
    with pytest.raises(ImageError, match=message):
        runtime.upscale(frame)


def test_huge_frame_is_refused_before_any_work(runtime):
    huge = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (16384, 16384, 3))  # no 768 MB allocation here
    with pytest.raises(ImageError, match="above the limit"):
        runtime.upscale(huge)


def test_roi_is_the_box_at_scale(runtime):
    frame = _frame(40, 56, seed=4)
    s = runtime.cfg.upscale
    box = (10, 6, 20, 16)
    out = runtime.upscale(frame, roi=box, roi_margin=0).image
    x, y, w, h = box
    assert out.shape == (h * s, w * s, 3)
    assert np.array_equal(out, runtime.upscale(frame[y : y + h, x : x + w]).image)  # no margin: the crop itself
    with_margin = runtime.upscale(frame, roi=box, roi_margin=8).image  # seen with 8 px of context (clamped)
    y0, x0 = max(0, y - 8), max(0, x - 8)
    context = runtime.upscale(frame[y0 : y + h + 8, x0 : x + w + 8]).image
    assert np.array_equal(with_margin, context[(y - y0) * s : (y - y0 + h) * s, (x - x0) * s : (x - x0 + w) * s])
    for bad in ((50, 0, 10, 10), (0, 0, 0, 5), (0, 0, 57, 4), (1, 2, 3)):
        with pytest.raises(InputSpecError, match="roi"):
            runtime.upscale(frame, roi=bad)


# -- threads and streams --------------------------------------------------------------------------
def test_four_threads_match_serial_output(runtime):
    frames = [_frame(16 + 4 * (i % 3), 24 + 4 * (i % 2), seed=i) for i in range(12)]
    serial = [runtime.upscale(f).image for f in frames]
    results: dict[int, np.ndarray] = {}

    def camera(k: int) -> None:
        for i in range(k, len(frames), 4):
            results[i] = runtime.upscale(frames[i]).image

    threads = [threading.Thread(target=camera, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, want in enumerate(serial):
        assert np.abs(results[i].astype(int) - want).max() <= 1, i


def test_stream_in_order_goes_on_after_bad_frames(runtime):
    bad = [
        np.zeros((16, 24, 3), np.float32),  # float
        np.full((16, 24, 3), np.nan, np.float32),  # NaN
        np.zeros((0, 4, 3), np.uint8),  # empty
        np.zeros((16, 24, 2), np.uint8),  # two channels
        np.zeros((1, 1, 3), np.uint8),  # 1x1
        np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (16384, 16384, 3)),  # 16k x 16k: refused, not allocated
    ]
    good = [_frame(16, 24, seed=i) for i in range(len(bad) + 1)]
    frames = [f for pair in zip(good, bad, strict=False) for f in pair] + [good[-1]]
    results = list(runtime.stream(frames, queue=2))
    assert [r.index for r in results] == list(range(len(frames)))
    assert [r.ok for r in results] == [i % 2 == 0 for i in range(len(frames))]
    assert all(isinstance(r.error, ImageError) for r in results if not r.ok)
    serial = [runtime.upscale(g).image for g in good]
    assert all(np.array_equal(r.image, s) for r, s in zip([r for r in results if r.ok], serial, strict=True))
    assert all(r.seconds > 0 for r in results if r.ok)


def flaky_backend(fail_on: int):
    """ONNX Runtime whose expert sessions fail on their ``fail_on``-th run (counted across experts), as a
    driver might: inside the session's run, where `Session.run` types the failure."""
    from linearsr_edge.backends.onnx.session import OrtBackend
    from linearsr_edge.pipeline.session import Binding

    calls = [0]

    class Flaky(OrtBackend):
        def open(self, component):
            session = super().open(component)
            if component.startswith("expert"):
                run = session._run

                def failing(feeds):
                    calls[0] += 1
                    if calls[0] == fail_on:
                        raise RuntimeError("CUDA error: an illegal memory access was encountered")
                    return run(feeds)

                session._run = failing
                session._bind = lambda static: Binding(session, static)  # every input through _run
            return session

    return Flaky


def test_stream_survives_a_backend_error(runtime):
    from linearsr_edge.backends.onnx.options import OrtOptions
    from linearsr_edge.errors import BackendRunError
    from linearsr_edge.pipeline.runtime import SRRuntime as Core

    frames = [_frame(16, 24, seed=i) for i in range(3)]
    serial = [runtime.upscale(f).image for f in frames]
    steps = len(runtime.process.plan(SampleOptions()))
    backend = flaky_backend(fail_on=steps + 2)  # frame 0 runs whole, frame 1 fails at its 2nd step
    with Core(backend(runtime.bundle, OrtOptions())) as flaky:
        results = list(flaky.stream(frames, warmup=False))
    assert [r.ok for r in results] == [True, False, True]
    assert isinstance(results[1].error, BackendRunError) and "illegal memory access" in str(results[1].error)
    assert "onnxruntime failed to run expert_" in str(results[1].error)
    assert np.array_equal(results[2].image, serial[2]) and np.array_equal(results[0].image, serial[0])


def test_stream_seed_is_fixed_per_stream(runtime):
    frame = _frame(16, 24, seed=9)
    fixed = [r.image for r in runtime.stream([frame] * 3, seed=5)]
    assert all(np.array_equal(fixed[0], f) for f in fixed)
    varied = [r.image for r in runtime.stream([frame] * 3, seed=5, seed_per_frame=True)]
    assert np.array_equal(varied[0], fixed[0]) and not np.array_equal(varied[1], fixed[1])


def test_stream_reports_a_failing_source(runtime):
    def camera():
        yield _frame(16, 24)
        raise OSError("RTSP connection lost")

    it = runtime.stream(camera())
    assert next(it).ok
    with pytest.raises(OSError, match="RTSP"):
        next(it)
    with pytest.raises(ConfigError, match="queue"):
        next(runtime.stream([], queue=0))
