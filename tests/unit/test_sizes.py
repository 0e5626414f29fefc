"""The size policy on ONNX Runtime: range, listed and pinned, each padded, cropped, tiled and split by the one
shared module (`linearsr_edge.pipeline.sizes`), and each equal (within 1 level) to the unrestricted run of
the frame as the policy fitted it. A backend with a restricted policy (Core ML's listed shapes, an
OpenVINO NPU's pinned size) gets exactly this, on its own sessions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from linearsr_edge.backends.onnx.options import OrtOptions
from linearsr_edge.backends.onnx.session import OrtBackend
from linearsr_edge.bundle import Bundle
from linearsr_edge.errors import ConfigError, InputSpecError
from linearsr_edge.pipeline import sizes
from linearsr_edge.pipeline.process import SampleOptions
from linearsr_edge.pipeline.runtime import SRRuntime
from linearsr_edge.specs import SizePolicy

OPTS = SampleOptions(seed=0)


def _frame(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def runtime_with(bundle, policy: SizePolicy) -> SRRuntime:
    """The bundle on ONNX Runtime, its sessions taking ``policy``'s sizes only."""
    backend = type("PolicyOrtBackend", (OrtBackend,), {"sizes": lambda self: policy})
    return SRRuntime(backend(bundle, OrtOptions()))


@pytest.fixture(scope="module")
def bundle():
    """The tiny model's onnx-fp32 bundle kept in the tests' data (no export, no PyTorch)."""
    return Bundle.load(Path(__file__).resolve().parent.parent / "data" / "v1" / "onnx-fp32")


@pytest.fixture(scope="module")
def free(bundle):
    with SRRuntime(OrtBackend(bundle, OrtOptions())) as rt:
        yield rt


def _close(a, b) -> bool:
    return a.shape == b.shape and int(np.abs(a.astype(int) - b).max()) <= 1


# -- range --------------------------------------------------------------------------------------------
def test_range_runs_any_size_and_splits_calls_to_its_max_batch(bundle, free):
    rt = runtime_with(bundle, SizePolicy(max_batch=2))
    frames = [_frame(12, 16, i) for i in range(3)]
    with rt.traced() as calls:
        got = rt.upscale_batch(frames, OPTS)
    assert max(c.batch for c in calls) == 2  # three frames of one size: calls of 2 and 1
    for frame, result in zip(frames, got, strict=True):
        assert _close(result.image, free.upscale(frame, OPTS).image)
    spec = rt.spec("expert_0")
    feeds = spec.dummy_inputs("opt", batch=3, seed=4)
    with rt.traced() as calls:
        split = rt.run_component("expert_0", feeds)["velocity"]
    assert [c.batch for c in calls] == [2, 1]
    np.testing.assert_allclose(split, free.run_component("expert_0", feeds)["velocity"], rtol=1e-5, atol=1e-5)
    rt.close()


# -- listed -------------------------------------------------------------------------------------------
def test_listed_pads_a_frame_to_the_smallest_size_that_holds_it_and_crops_back(bundle, free):
    rt = runtime_with(bundle, SizePolicy.listed([(64, 64), (32, 48)], max_batch=1))
    frame = _frame(12, 20)  # 24x40 output: padded to 32x48
    assert sizes.plan_frame(rt.sizes, 12, 20, 2, rt.input_limits()) == sizes.FramePlan("pad", (16, 24))
    got = rt.upscale(frame, OPTS).image
    want = free.upscale(sizes.pad_frame(frame, (16, 24)), OPTS).image[:24, :40]
    assert _close(got, want)
    assert sizes.plan_frame(rt.sizes, 16, 24, 2, rt.input_limits()).action == "run"  # a listed size runs as it is
    batch = rt.upscale_batch([frame, _frame(16, 24, 1)], OPTS)  # each frame padded to its own size
    assert _close(batch[0].image, got) and batch[1].image.shape == (32, 48, 3)
    with pytest.raises(InputSpecError, match="larger than every output size this bundle takes"):
        rt.upscale(_frame(40, 40), tiling=False)
    rt.close()


def test_listed_tiles_a_frame_above_every_size_in_listed_squares(bundle, free):
    rt = runtime_with(bundle, SizePolicy.listed([(64, 64), (32, 48)], max_batch=1))
    assert rt.tile_size(512)[0] == (32, 32) and rt.tile_size(40)[0] == (32, 32)  # 64x64 output: the only square
    big = _frame(40, 36, 2)  # 80x72 output: above every listed size
    got = rt.upscale(big, OPTS)
    plan = rt.tile_plan(40, 36)
    want = free.process.upscale_tiled(big, OPTS, plan.tile, plan.overlap, batch=1)
    assert got.tiles == want.tiles > 1 and _close(got.image, want.image)
    wide = _frame(8, 40, 3)  # a side shorter than a tile is padded to one
    got = rt.upscale(wide, OPTS).image
    want = free.process.upscale_tiled(sizes.pad_frame(wide, (32, 40)), OPTS, plan.tile, plan.overlap, batch=1)
    assert _close(got, want.image[:16, :80])
    rt.close()


def test_listed_crops_gate_inputs_to_a_size_it_takes(bundle):
    rt = runtime_with(bundle, SizePolicy.listed([(64, 64), (32, 48)], max_batch=1))
    assert rt.crop_to_profile(np.zeros((30, 30, 3), np.uint8)).shape == (16, 24, 3)
    feeds = rt.spec("expert_0").dummy_inputs("opt", batch=1, seed=0, height=20, width=30)
    assert rt.fit_feeds(feeds)["latent"].shape[2:] == (16, 24)
    no_square = runtime_with(bundle, SizePolicy.listed([(32, 48)]))
    with pytest.raises(ConfigError, match="lists no square output size"):
        no_square.tile_size(64)
    rt.close()
    no_square.close()


# -- pinned -------------------------------------------------------------------------------------------
def test_pinned_pads_smaller_frames_and_tiles_larger_ones_in_tiles_of_its_size(bundle, free):
    rt = runtime_with(bundle, SizePolicy.pinned((32, 48), max_batch=1))
    small = _frame(10, 20)
    assert _close(rt.upscale(small, OPTS).image, free.upscale(sizes.pad_frame(small, (16, 24)), OPTS).image[:20, :40])
    assert rt.tile_size()[0] == (16, 24)  # the pinned size itself, not square
    big = _frame(40, 36, 5)
    with rt.traced() as calls:
        got = rt.upscale(big, OPTS)
    assert {c.batch for c in calls} == {1}  # one row per call
    plan = rt.tile_plan(40, 36)
    want = free.process.upscale_tiled(big, OPTS, (16, 24), plan.overlap, batch=1)
    assert got.tiles == want.tiles > 1 and _close(got.image, want.image)
    rt.close()


def test_policies_refuse_what_cannot_be():
    with pytest.raises(ConfigError, match="a pinned size policy takes exactly one size"):
        SizePolicy("pinned", ((16, 16), (32, 32)))
    with pytest.raises(ConfigError, match="a listed size policy takes at least one size"):
        SizePolicy("listed")
    with pytest.raises(ConfigError, match="max_batch must be a positive integer"):
        SizePolicy(max_batch=0)
    assert SizePolicy.listed([(64, 64), (16, 32)]).sizes == ((16, 32), (64, 64))
