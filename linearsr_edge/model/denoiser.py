"""One LinearSR expert denoiser: a SANA-style linear diffusion transformer with LR concat."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from linearsr_edge.config import ModelConfig
from linearsr_edge.model.layers import (
    CondProjection,
    CrossAttention,
    LinearAttention,
    MixFFN,
    RMSNorm,
    TimestepEmbedding,
)


class DenoiserBlock(nn.Module):
    """adaLN-single modulated [linear self-attention, cross-attention, Mix-FFN]."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        d = cfg.hidden_size
        self.norm1 = nn.LayerNorm(d, elementwise_affine=False, eps=cfg.norm_eps)
        self.self_attn = LinearAttention(d, cfg.num_heads, cfg.head_dim, qkv_bias=cfg.qkv_bias, eps=cfg.attn_eps)
        self.cross_attn = CrossAttention(d, cfg.cross_attn_heads, cfg.cross_attn_head_dim)
        self.norm2 = nn.LayerNorm(d, elementwise_affine=False, eps=cfg.norm_eps)
        self.ffn = MixFFN(d, cfg.mlp_ratio)
        self.mod_table = nn.Parameter(torch.randn(6, d) / d**0.5)

    def forward(self, x: torch.Tensor, cond: torch.Tensor, mod: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """x: [B, N, D], cond: [B, L, D], mod: [B, 6*D] -> [B, N, D]."""
        mods = self.mod_table[None] + mod.unflatten(1, (6, -1))  # [B, 6, D]
        shift_a, scale_a, gate_a, shift_f, scale_f, gate_f = mods.chunk(6, dim=1)  # 6 x [B, 1, D]
        h = self.norm1(x) * (1 + scale_a) + shift_a
        x = x + gate_a * self.self_attn(h)
        x = x + self.cross_attn(x, cond)
        h = self.norm2(x) * (1 + scale_f) + shift_f
        return x + gate_f * self.ffn(h, height, width)


class Denoiser(nn.Module):
    """One expert: ``(latent, lr_latent, sigma, cond) -> velocity``.

    Shapes: latent, lr_latent [B, C, h, w] (h, w multiples of the patch size); sigma [B]
    in (0, 1]; cond [B, L, cond_dim]; velocity [B, C, h, w].
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        d, p = cfg.hidden_size, cfg.patch_size
        self.patch_embed = nn.Conv2d(cfg.in_channels, d, kernel_size=p, stride=p)
        self.time_embed = TimestepEmbedding(d)
        self.time_mod = nn.Linear(d, 6 * d)
        self.cond_proj = CondProjection(cfg.cond_dim, d)
        self.cond_norm = RMSNorm(d, eps=1e-5)
        self.blocks = nn.ModuleList(DenoiserBlock(cfg) for _ in range(cfg.depth))
        self.final_norm = nn.LayerNorm(d, elementwise_affine=False, eps=1e-6)
        self.final_mod_table = nn.Parameter(torch.randn(2, d) / d**0.5)
        self.final_proj = nn.Linear(d, p * p * cfg.latent_channels)

    def forward(
        self, latent: torch.Tensor, lr_latent: torch.Tensor, sigma: torch.Tensor, cond: torch.Tensor
    ) -> torch.Tensor:
        p, c = self.cfg.patch_size, self.cfg.latent_channels
        x = self.patch_embed(torch.cat([latent, lr_latent], dim=1))  # [B, D, h, w]
        b, _, h, w = x.shape
        x = x.flatten(2).transpose(1, 2)  # [B, N, D]
        temb = self.time_embed(sigma * self.cfg.timestep_scale).to(x.dtype)  # [B, D]
        mod = self.time_mod(F.silu(temb))  # [B, 6*D]
        cond = self.cond_norm(self.cond_proj(cond))  # [B, L, D]
        for block in self.blocks:
            x = block(x, cond, mod, h, w)
        shift, scale = (self.final_mod_table[None] + temb[:, None]).chunk(2, dim=1)  # 2 x [B, 1, D]
        x = self.final_proj(self.final_norm(x) * (1 + scale) + shift)  # [B, N, p*p*C]
        return self._unpatchify(x, b, h, w, p, c)

    @staticmethod
    def _unpatchify(x: torch.Tensor, b: int, h: int, w: int, p: int, c: int) -> torch.Tensor:
        """[B, N, (p, p, C)] -> [B, C, h*p, w*p] with rank <= 4 tensors (Core ML's limit is 5)."""
        if p == 1:
            return x.transpose(1, 2).reshape(b, c, h, w)  # [B, C, h, w]
        x = x.unflatten(-1, (p * p, c)).transpose(2, 3).flatten(2)  # [B, N, (C, p, p)]
        x = x.transpose(1, 2).reshape(b, c * p * p, h, w)  # [B, C*p*p, h, w]
        return F.pixel_shuffle(x, p)  # [B, C, h*p, w*p]
