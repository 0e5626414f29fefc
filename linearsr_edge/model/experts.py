"""The SNR-routed set of expert denoisers."""

from __future__ import annotations

import torch
from torch import nn

from linearsr_edge.config import ModelConfig
from linearsr_edge.model.denoiser import Denoiser


class SNRExperts(nn.Module):
    """K denoisers; expert k owns the steps whose log-SNR lies in ``cfg.bands[k]``."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.experts = nn.ModuleList(Denoiser(cfg) for _ in cfg.bands)

    def __len__(self) -> int:
        return len(self.experts)

    def __getitem__(self, index: int) -> Denoiser:
        return self.experts[index]

    def expert_for(self, log_snr: float) -> int:
        """Index of the expert owning ``log_snr`` (half-open bands; an edge goes to the upper band)."""
        return self.cfg.expert_for(log_snr)

    def forward(
        self, index: int, latent: torch.Tensor, lr_latent: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor
    ) -> torch.Tensor:
        return self.experts[index](latent, lr_latent, sigma, cond)
