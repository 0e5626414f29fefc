from __future__ import annotations

import numpy as np
import pytest
import torch

from linearsr_edge.errors import ConfigError, ImageError
from linearsr_edge.model.codec import PixelUnshuffleCodec
from linearsr_edge.model.experts import SNRExperts
from linearsr_edge.pipeline.process import SampleOptions
from linearsr_edge.reference import reference_runtime
from linearsr_edge.tags import NULL_TAG, TagVocabulary
from tests.conftest import tiny_config


def make_pipeline(experts: SNRExperts | None = None, **overrides):
    cfg = tiny_config(**overrides)
    torch.manual_seed(0)
    tags = TagVocabulary(("portrait", "animal", NULL_TAG), np.random.default_rng(0).standard_normal((3, 8)))
    return reference_runtime(experts or SNRExperts(cfg), PixelUnshuffleCodec(2), tags)


@pytest.mark.parametrize(("h", "w"), [(8, 8), (7, 13), (5, 2)])
def test_any_size_is_padded_and_cropped_back(h, w, rng):
    pipe = make_pipeline()
    image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    result = pipe.upscale(image)
    assert result.image.shape == (2 * h, 2 * w, 3) and result.image.dtype == np.uint8
    assert result.steps_per_expert == [1, 1, 1, 1]


def test_seeded_and_deterministic(rng):
    pipe = make_pipeline()
    image = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    a = pipe.upscale(image, SampleOptions(seed=1)).image
    b = pipe.upscale(image, SampleOptions(seed=1)).image
    c = pipe.upscale(image, SampleOptions(seed=2)).image
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_tags_change_the_output_and_unknown_tags_are_refused(rng):
    pipe = make_pipeline()
    image = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    a = pipe.upscale(image, SampleOptions(tags=("portrait",))).image
    b = pipe.upscale(image, SampleOptions(tags=("animal",))).image
    assert not np.array_equal(a, b)
    with pytest.raises(ConfigError, match="did you mean 'portrait'"):
        pipe.upscale(image, SampleOptions(tags=("portrat",)))


def test_residual_mode_with_zero_velocity_is_bicubic(rng):
    """A zero model (v = 0) started at sigma ~ 0 leaves a ~zero residual: the output must be the
    bicubic upsample, which proves the LR latent is added back."""
    experts = SNRExperts(tiny_config(start_sigma=1e-4, default_steps=1))
    pipe = make_pipeline(experts)
    for p in experts.parameters():
        torch.nn.init.zeros_(p)
    image = rng.integers(0, 256, (6, 6, 3), dtype=np.uint8)
    out = pipe.upscale(image).image
    from linearsr_edge.pipeline.imaging import bicubic_resize, from_model, to_model

    bic = from_model(bicubic_resize(to_model(image), 12, 12))
    assert np.abs(out.astype(int) - bic.astype(int)).max() <= 1


def test_latent_mode_runs(rng):
    pipe = make_pipeline(parameterization="latent")
    out = pipe.upscale(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8), SampleOptions(steps=2, solver="heun"))
    assert out.plan.nfe == 3


def test_bad_images_are_refused(rng):
    pipe = make_pipeline()
    with pytest.raises(ImageError, match="uint8"):
        pipe.upscale(np.zeros((4, 4, 3), np.float32))
    with pytest.raises(ImageError, match="got shape"):  # gray and BGRA are converted (frame_rgb), 2 channels not
        pipe.upscale(np.zeros((4, 4, 2), np.uint8))
    with pytest.raises(ImageError, match=">= 2 pixels"):
        pipe.upscale(np.zeros((1, 1, 3), np.uint8))
    with pytest.raises(ImageError, match="above the limit"):
        pipe.upscale(np.zeros((40, 40, 3), np.uint8), SampleOptions(max_pixels=1000))


def test_codec_channel_mismatch():
    with pytest.raises(ConfigError, match="latent channels"):
        reference_runtime(SNRExperts(tiny_config()), PixelUnshuffleCodec(4))
