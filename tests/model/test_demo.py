"""The shipped demo model: it loads, exercises every path, and beats bicubic on held-out photos."""

from __future__ import annotations

import json

import numpy as np
import pytest

from linearsr_edge.demo import DEMO_DIR, load_demo, sample_images
from linearsr_edge.demo.data import HELDOUT_PHOTOS, TRAIN_PHOTOS
from linearsr_edge.pipeline.imaging import read_image
from linearsr_edge.pipeline.process import SampleOptions

pytest.importorskip("skimage", reason="requires scikit-image (the dev extra), which ships the photos")


@pytest.fixture(scope="module")
def demo():
    return load_demo()


def test_demo_exercises_every_path(demo):
    cfg = demo.cfg
    assert cfg.num_experts == 4 and cfg.lr_conditioning == "concat" and cfg.parameterization == "residual"
    assert demo.tags is not None and len(demo.tags.names) > 2
    plan = demo.reference().process.plan(SampleOptions())
    assert plan.steps_per_expert(4) == [1, 1, 1, 1]  # the default run visits all 4 experts
    size = sum(p.stat().st_size for p in DEMO_DIR.glob("*.safetensors"))
    assert size <= 25 * 2**20
    meta = json.loads((DEMO_DIR / "config.json").read_text())["training"]
    assert not set(meta["heldout_photos"]) & set(meta["train_photos"])
    assert set(meta["heldout_photos"]) == set(HELDOUT_PHOTOS) and set(meta["train_photos"]) == set(TRAIN_PHOTOS)
    assert sample_images()


def test_beats_bicubic_on_heldout_photos(demo):
    from linearsr_edge.demo.evaluate import evaluate

    pipe = demo.reference()
    rows = evaluate(lambda lr, o: pipe.upscale(lr, o).image, demo.cfg.upscale, SampleOptions(tags=("auto",)))
    gain = np.mean([r.psnr_model - r.psnr_bicubic for r in rows])
    assert gain >= 0.5, rows
    assert np.mean([r.ssim_model for r in rows]) > np.mean([r.ssim_bicubic for r in rows])


def test_tags_matter(demo):
    pipe = demo.reference()
    lr = read_image(sample_images()[0])[:32, :32]
    a = pipe.upscale(lr, SampleOptions(tags=("portrait",))).image
    b = pipe.upscale(lr, SampleOptions(tags=("document",))).image
    assert not np.array_equal(a, b)
