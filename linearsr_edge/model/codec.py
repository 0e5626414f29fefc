"""Latent codecs: image [B, 3, H, W] in [-1, 1] <-> latent [B, C, H / f, W / f].

Two implementations share one interface:

* `PixelUnshuffleCodec` -- a fixed, parameter-free space-to-depth codec (the demo model's);
* `DCAECodec` -- the deep-compression autoencoder (DC-AE) that SANA and LinearSR use, wrapping
  diffusers' ``AutoencoderDC`` loaded from a local diffusers-format folder (never a hub).
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from linearsr_edge.errors import BackendUnavailableError, CheckpointError, ConfigError


class LatentCodec(nn.Module, abc.ABC):
    """Interface: ``factor`` (spatial), ``latent_channels``, ``scaling_factor``, encode, decode, config."""

    factor: int
    latent_channels: int
    scaling_factor: float

    @abc.abstractmethod
    def encode(self, image: torch.Tensor) -> torch.Tensor:
        """image [B, 3, H, W] in [-1, 1], H and W multiples of ``factor`` -> latent [B, C, H/f, W/f]."""

    @abc.abstractmethod
    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        """latent [B, C, h, w] -> image [B, 3, h*f, w*f], nominally in [-1, 1]."""

    @abc.abstractmethod
    def to_config(self) -> dict[str, Any]:
        """JSON-ready description from which `codec_from_config` rebuilds the codec."""


class PixelUnshuffleCodec(LatentCodec):
    """Space-to-depth by ``factor``: 3 * factor^2 latent channels, exact inverse."""

    def __init__(self, factor: int = 4, scaling_factor: float = 1.0) -> None:
        super().__init__()
        if factor < 1:
            raise ConfigError(f"codec factor must be >= 1, got {factor}")
        self.factor, self.scaling_factor = factor, float(scaling_factor)
        self.latent_channels = 3 * factor * factor

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        return F.pixel_unshuffle(image, self.factor) * self.scaling_factor

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(latent / self.scaling_factor, self.factor)

    def to_config(self) -> dict[str, Any]:
        return {"type": "pixel_unshuffle", "factor": self.factor, "scaling_factor": self.scaling_factor}


class DCAECodec(LatentCodec):
    """DC-AE via diffusers ``AutoencoderDC``; the latent is scaled by the autoencoder's scaling factor."""

    def __init__(self, autoencoder: nn.Module, source: str | None = None) -> None:
        super().__init__()
        self.vae = autoencoder
        cfg = autoencoder.config
        self.factor = 2 ** (len(cfg.encoder_block_out_channels) - 1)
        self.latent_channels = cfg.latent_channels
        self.scaling_factor = float(getattr(cfg, "scaling_factor", 1.0) or 1.0)
        self.source = source

    @classmethod
    def from_pretrained(cls, folder: str | Path) -> DCAECodec:
        """Load from a local diffusers folder (``config.json`` + weights); nothing is downloaded."""
        try:
            from diffusers import AutoencoderDC
        except ImportError:
            raise BackendUnavailableError(
                "the DC-AE codec needs diffusers: pip install 'linearsr-edge[dcae]'"
            ) from None
        folder = Path(folder)
        if not (folder / "config.json").is_file():
            raise CheckpointError(f"{folder} is not a diffusers AutoencoderDC folder (no config.json)")
        try:
            vae = AutoencoderDC.from_pretrained(str(folder), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot load AutoencoderDC from {folder}: {exc}") from None
        return cls(vae.eval(), source=str(folder))

    def encode(self, image: torch.Tensor) -> torch.Tensor:
        return self.vae.encode(image).latent * self.scaling_factor

    def decode(self, latent: torch.Tensor) -> torch.Tensor:
        return self.vae.decode(latent / self.scaling_factor).sample

    def to_config(self) -> dict[str, Any]:
        return {"type": "dcae", "path": self.source, "scaling_factor": self.scaling_factor}


def codec_from_config(cfg: dict[str, Any], base_dir: Path | None = None) -> LatentCodec:
    """Rebuild a codec from `LatentCodec.to_config` output (a relative DC-AE path is taken from ``base_dir``)."""
    kind = cfg.get("type")
    if kind == "pixel_unshuffle":
        return PixelUnshuffleCodec(int(cfg.get("factor", 4)), float(cfg.get("scaling_factor", 1.0)))
    if kind == "dcae":
        if not cfg.get("path"):
            raise ConfigError("a dcae codec config needs a 'path' to a local AutoencoderDC folder")
        path = Path(cfg["path"])
        if base_dir is not None and not path.is_absolute():
            path = base_dir / path
        return DCAECodec.from_pretrained(path)
    raise ConfigError(f"unknown codec type {kind!r}; expected 'pixel_unshuffle' or 'dcae'")
