from __future__ import annotations

import pytest
import torch

from linearsr_edge.errors import CheckpointError, ConfigError
from linearsr_edge.model.codec import DCAECodec, PixelUnshuffleCodec, codec_from_config


def test_pixel_unshuffle_is_exact_and_round_trips_config():
    codec = PixelUnshuffleCodec(4, scaling_factor=2.0)
    x = torch.rand(2, 3, 16, 24) * 2 - 1
    z = codec.encode(x)
    assert z.shape == (2, 48, 4, 6)
    assert torch.equal(codec.decode(z), x)
    again = codec_from_config(codec.to_config())
    assert isinstance(again, PixelUnshuffleCodec) and again.to_config() == codec.to_config()


def test_dcae_loads_from_local_folder_and_runs(tmp_path):
    pytest.importorskip("diffusers", reason="requires diffusers (the dcae extra)")
    from tests.model.dcae import tiny_dcae_folder

    folder = tiny_dcae_folder(tmp_path / "dcae")
    codec = codec_from_config({"type": "dcae", "path": "dcae", "scaling_factor": 0.41}, base_dir=tmp_path)
    assert isinstance(codec, DCAECodec)
    assert (codec.factor, codec.latent_channels, codec.scaling_factor) == (4, 4, 0.41)
    x = torch.rand(1, 3, 32, 48) * 2 - 1
    with torch.no_grad():
        z = codec.encode(x)
        y = codec.decode(z)
    assert z.shape == (1, 4, 8, 12) and y.shape == x.shape
    with torch.no_grad():
        raw = codec.vae.encode(x).latent
    assert torch.allclose(z, raw * 0.41)
    with pytest.raises(CheckpointError, match="not a diffusers AutoencoderDC folder"):
        DCAECodec.from_pretrained(folder / "missing")


def test_unknown_codec_type():
    with pytest.raises(ConfigError, match="unknown codec type"):
        codec_from_config({"type": "vqgan"})
    with pytest.raises(ConfigError, match="needs a 'path'"):
        codec_from_config({"type": "dcae"})
