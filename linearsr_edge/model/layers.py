"""SANA-style building blocks: ReLU linear attention, cross-attention, Mix-FFN, time embedding.

Export rules (STYLE.md point 10): no import-time flags, no environment variables, every
reshape carries a shape comment, and reshapes stay at rank <= 5 with constant inner sizes
(Core ML flexible shapes cannot ``unflatten`` with symbolic sizes).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


class LinearAttention(nn.Module):
    """ReLU linear self-attention (SANA). O(N) in tokens.

    ``out_n = relu(q_n) . (sum_m relu(k_m)^T v_m) / (relu(q_n) . sum_m relu(k_m) + eps)``.

    The two reductions over tokens (K^T V and the K sum) and the division always run in
    FP32, whatever dtype the module runs in: in FP16 the denominator grows ~ N * d * scale^2
    and overflows from about a thousand tokens. ``eps >= 1e-6`` survives FP16 and the ONNX
    optimizer, which deletes additive constants below 1e-8.
    """

    def __init__(self, dim: int, heads: int, head_dim: int, qkv_bias: bool = False, eps: float = 1e-6) -> None:
        super().__init__()
        if eps < 1e-6:
            raise ValueError(f"linear attention eps must be >= 1e-6 (FP16/ONNX-safe), got {eps}")
        self.heads, self.head_dim, self.eps = heads, head_dim, eps
        inner = heads * head_dim
        self.to_q = nn.Linear(dim, inner, bias=qkv_bias)
        self.to_k = nn.Linear(dim, inner, bias=qkv_bias)
        self.to_v = nn.Linear(dim, inner, bias=qkv_bias)
        self.to_out = nn.Linear(inner, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, N, D] -> [B, N, D]."""
        dtype = x.dtype
        q = F.relu(self.to_q(x)).unflatten(-1, (self.heads, self.head_dim))  # [B, N, H, d]
        k = F.relu(self.to_k(x)).unflatten(-1, (self.heads, self.head_dim))  # [B, N, H, d]
        v = self.to_v(x).unflatten(-1, (self.heads, self.head_dim))  # [B, N, H, d]
        q = q.transpose(1, 2).float()  # [B, H, N, d]
        k = k.transpose(1, 2).float()  # [B, H, N, d]
        v = v.transpose(1, 2).float()  # [B, H, N, d]
        kv = torch.matmul(k.transpose(2, 3), v)  # [B, H, d, d]   FP32 reduction over tokens
        k_sum = k.sum(dim=2, keepdim=True).transpose(2, 3)  # [B, H, d, 1]   FP32 reduction over tokens
        num = torch.matmul(q, kv)  # [B, H, N, d]
        den = torch.matmul(q, k_sum)  # [B, H, N, 1]
        out = num / (den + self.eps)  # [B, H, N, d]   FP32 division
        out = out.to(dtype).transpose(1, 2).flatten(2)  # [B, N, H*d]
        return self.to_out(out)


class CrossAttention(nn.Module):
    """Softmax cross-attention from image tokens to the tag embedding."""

    def __init__(self, dim: int, heads: int, head_dim: int) -> None:
        super().__init__()
        self.heads, self.head_dim = heads, head_dim
        inner = heads * head_dim
        self.to_q = nn.Linear(dim, inner)
        self.to_k = nn.Linear(dim, inner)
        self.to_v = nn.Linear(dim, inner)
        self.to_out = nn.Linear(inner, dim)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """x: [B, N, D], cond: [B, L, D] -> [B, N, D]."""
        q = self.to_q(x).unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)  # [B, H, N, d]
        k = self.to_k(cond).unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)  # [B, H, L, d]
        v = self.to_v(cond).unflatten(-1, (self.heads, self.head_dim)).transpose(1, 2)  # [B, H, L, d]
        out = F.scaled_dot_product_attention(q, k, v)  # [B, H, N, d]
        return self.to_out(out.transpose(1, 2).flatten(2))  # [B, N, D]


class MixFFN(nn.Module):
    """GLUMBConv: 1x1 expand to 2*hidden, SiLU, 3x3 depthwise, GLU gate, 1x1 project (no bias)."""

    def __init__(self, dim: int, mlp_ratio: float) -> None:
        super().__init__()
        hidden = int(mlp_ratio * dim)
        self.expand = nn.Conv2d(dim, 2 * hidden, 1)
        self.depthwise = nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1, groups=2 * hidden)
        self.project = nn.Conv2d(hidden, dim, 1, bias=False)

    def forward(self, x: torch.Tensor, height: int, width: int) -> torch.Tensor:
        """x: [B, N, D] with N = height * width -> [B, N, D]."""
        b, _, d = x.shape
        x = x.transpose(1, 2).reshape(b, d, height, width)  # [B, D, h, w]
        x = self.depthwise(F.silu(self.expand(x)))  # [B, 2*hidden, h, w]
        x, gate = x.chunk(2, dim=1)  # 2 x [B, hidden, h, w]
        x = self.project(x * F.silu(gate))  # [B, D, h, w]
        return x.flatten(2).transpose(1, 2)  # [B, N, D]


class TimestepEmbedding(nn.Module):
    """Sinusoidal features of the timestep (cos first, 256 wide) followed by a 2-layer SiLU MLP."""

    def __init__(self, dim: int, freq_dim: int = 256, max_period: float = 10000.0) -> None:
        super().__init__()
        half = freq_dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)  # [freq_dim / 2]
        self.linear_1 = nn.Linear(freq_dim, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        """t: [B] (float timesteps) -> [B, D]."""
        args = t.float()[:, None] * self.freqs[None]  # [B, freq_dim / 2]
        feats = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # [B, freq_dim]
        feats = feats.to(self.linear_1.weight.dtype)
        return self.linear_2(F.silu(self.linear_1(feats)))


class RMSNorm(nn.Module):
    """RMS normalisation over the last axis, computed in FP32, with a learned scale."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        variance = x.float().pow(2).mean(-1, keepdim=True)
        return (x.float() * torch.rsqrt(variance + self.eps)).to(x.dtype) * self.weight


class CondProjection(nn.Module):
    """Tag-embedding projection: Linear, GELU (tanh), Linear; cond_dim -> hidden."""

    def __init__(self, cond_dim: int, dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(cond_dim, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, cond: torch.Tensor) -> torch.Tensor:
        return self.linear_2(F.gelu(self.linear_1(cond), approximate="tanh"))
