"""Change-aware streaming: a tile call whose inputs did not change is answered from the memo, and every frame
equals its full tiled recompute byte for byte, on ONNX Runtime and OpenVINO."""

from __future__ import annotations

import numpy as np
import pytest

from linearsr_edge.errors import ConfigError
from linearsr_edge.pipeline.process import SampleOptions
from linearsr_edge.pipeline.reuse import TileMemo
from linearsr_edge.runtime import SRRuntime

TILE = 32  # output pixels: the tiny model's 32x48 frames cut into several tiles


def _frames() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    background = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
    frames = [background.copy()]
    for i in range(3):  # a small object moving over the fixed background
        f = background.copy()
        f[4:10, 2 + 4 * i : 8 + 4 * i] = (255, 0, 0)
        frames.append(f)
    frames.append(frames[-1].copy())  # nothing moved
    frames.append(rng.integers(0, 256, (32, 48, 3), dtype=np.uint8))  # a cut
    return frames


@pytest.mark.parametrize("target", ["onnx-fp32", "ov-fp32"])
def test_reused_tiles_give_the_full_recompute_byte_for_byte(tiny_bundles, target):
    opts = SampleOptions(steps=3, seed=2)
    with SRRuntime.load(tiny_bundles(target).bundle.path) as rt:
        memo, shares = TileMemo(), []
        for frame in _frames():
            full = rt.upscale(frame, opts, tiling=True, tile=TILE)
            mine = rt.upscale(frame, opts, tiling=True, tile=TILE, reuse=memo)
            assert full.tiles > 2 and np.array_equal(mine.image, full.image)
            assert mine.timings["tile_calls"] == memo.computed + memo.reused
            shares.append(memo.share_reused)
    first, moved, still, cut = shares[0], shares[1:4], shares[4], shares[5]
    assert first == 0.0 and all(0.0 < s < 1.0 for s in moved)  # only what the object reached ran again
    assert still == 1.0 and cut == 0.0  # an unchanged frame runs nothing; a cut runs everything


def test_the_stream_reuses_tiles_and_reports_it(tiny_bundles):
    frames = _frames()[:4]
    opts = SampleOptions(steps=2, seed=1)
    with SRRuntime.load(tiny_bundles("onnx-fp32").bundle.path) as rt:
        full = [r.image for r in rt.stream(frames, opts, tiling=True, tile=TILE, warmup=False)]
        mine = list(rt.stream(frames, opts, tile=TILE, reuse="tiles"))
    assert all(np.array_equal(a, b.image) for a, b in zip(full, mine, strict=True))
    reused = [r.result.timings["tile_calls_reused"] for r in mine]
    assert reused[0] == 0 and all(n > 0 for n in reused[1:])


def test_a_threshold_forgives_sensor_noise_at_the_encoder(tiny_bundles):
    frame = _frames()[0]
    noisy = np.clip(frame.astype(np.int16) + np.random.default_rng(3).integers(-1, 2, frame.shape), 0, 255)
    noisy = noisy.astype(np.uint8)
    with SRRuntime.load(tiny_bundles("onnx-fp32").bundle.path) as rt:
        exact, tolerant = TileMemo(), TileMemo(threshold=1)
        for memo in (exact, tolerant):
            first = rt.upscale(frame, tiling=True, tile=TILE, reuse=memo).image
            again = rt.upscale(noisy, tiling=True, tile=TILE, reuse=memo).image
            if memo is tolerant:  # within the threshold: the previous frame's result, every call reused
                assert memo.share_reused == 1.0 and np.array_equal(again, first)
            else:
                assert memo.share_reused == 0.0 and not np.array_equal(again, first)


def test_bad_reuse_settings_are_refused(tiny_bundles):
    frame = _frames()[0]
    with pytest.raises(ConfigError, match="threshold must be in"):
        TileMemo(threshold=300)
    with SRRuntime.load(tiny_bundles("onnx-fp32").bundle.path) as rt:
        with pytest.raises(ConfigError, match="takes no roi"):
            rt.upscale(frame, roi=(0, 0, 16, 16), reuse=TileMemo())
        with pytest.raises(ConfigError, match="reuse must be None or 'tiles'"):
            list(rt.stream([frame], reuse="frames"))
        with pytest.raises(ConfigError, match="drop seed_per_frame"):
            list(rt.stream([frame], reuse="tiles", seed_per_frame=True))
