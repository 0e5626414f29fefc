"""The exportable components of a model as modules with the spec's argument names."""

from __future__ import annotations

import torch
from torch import nn

from linearsr_edge.errors import ConfigError
from linearsr_edge.model.codec import LatentCodec
from linearsr_edge.model.experts import SNRExperts


class EncoderModule(nn.Module):
    def __init__(self, codec: LatentCodec) -> None:
        super().__init__()
        self.codec = codec

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        return self.codec.encode(image)


class DecoderModule(nn.Module):
    def __init__(self, codec: LatentCodec) -> None:
        super().__init__()
        self.codec = codec

    def forward(self, latent: torch.Tensor) -> torch.Tensor:
        return self.codec.decode(latent)


def component_module_of(experts: SNRExperts, codec: LatentCodec, name: str) -> nn.Module:
    """``expert_K`` / ``encoder`` / ``decoder`` as a module taking the spec's inputs in order."""
    if name == "encoder":
        return EncoderModule(codec).eval()
    if name == "decoder":
        return DecoderModule(codec).eval()
    if name.startswith("expert_") and name[7:].isdigit() and int(name[7:]) < experts.cfg.num_experts:
        return experts[int(name[7:])].eval()
    raise ConfigError(f"unknown component {name!r}")


def component_module(folder, name: str) -> nn.Module:
    """A component of a loaded `ModelFolder`."""
    return component_module_of(folder.experts, folder.codec, name)
