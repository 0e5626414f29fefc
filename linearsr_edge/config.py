"""Model configuration: a frozen, validated, JSON round-trippable description of a LinearSR model.

The log-SNR line is split into contiguous *bands*, one per expert denoiser. A band is
half-open, ``[low, high)``; ``None`` stands for minus or plus infinity so that the JSON
stays standard (no ``Infinity`` literals).
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from linearsr_edge.errors import ConfigError

PARAMETERIZATIONS = ("latent", "residual")
LR_CONDITIONING = ("concat",)


@dataclass(frozen=True)
class ExpertBand:
    """A half-open log-SNR interval ``[low, high)`` owned by one expert; ``None`` is unbounded."""

    low: float | None
    high: float | None

    def __post_init__(self) -> None:
        for name in ("low", "high"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ConfigError(f"band {name} must be a finite number or None (unbounded), got {value!r}")
        if self.low is not None and self.high is not None and not self.low < self.high:
            raise ConfigError(f"band low must be below high, got [{self.low}, {self.high})")

    def contains(self, log_snr: float) -> bool:
        above = self.low is None or log_snr >= self.low
        below = self.high is None or log_snr < self.high
        return above and below

    def __str__(self) -> str:
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "+inf" if self.high is None else f"{self.high:g}"
        return f"[{low}, {high})"


def bands_from_edges(edges: Sequence[float]) -> tuple[ExpertBand, ...]:
    """K-1 ascending interior edges -> K bands tiling the whole log-SNR line."""
    bounds: list[float | None] = [None, *edges, None]
    return tuple(ExpertBand(lo, hi) for lo, hi in itertools.pairwise(bounds))


def validate_bands(bands: Sequence[ExpertBand]) -> None:
    """Raise `ConfigError` unless the bands tile (-inf, +inf) in order, with no gap or overlap."""
    if not bands:
        raise ConfigError("a model needs at least one expert band")
    if bands[0].low is not None:
        raise ConfigError(f"the first band must start at -inf (low=None), got {bands[0]}")
    if bands[-1].high is not None:
        raise ConfigError(f"the last band must end at +inf (high=None), got {bands[-1]}")
    for i, (a, b) in enumerate(itertools.pairwise(bands)):
        if a.high is None or b.low is None:
            raise ConfigError(f"band {i} {a} and band {i + 1} {b}: only the outer ends may be unbounded")
        if a.high < b.low:
            raise ConfigError(f"gap between band {i} {a} and band {i + 1} {b}")
        if a.high > b.low:
            raise ConfigError(f"band {i} {a} overlaps band {i + 1} {b}")


def route(bands: Sequence[ExpertBand], log_snr: float) -> int:
    """Index of the band that owns ``log_snr`` (half-open bands: an edge belongs to the upper band)."""
    if math.isnan(log_snr):
        raise ConfigError("log-SNR is NaN; sigma must lie in (0, 1]")
    edges = [b.high for b in bands[:-1]]
    return bisect.bisect_right(edges, log_snr)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture, conditioning and sampling defaults of a LinearSR model (all experts share it)."""

    latent_channels: int = 48
    hidden_size: int = 128
    depth: int = 3
    num_heads: int = 4
    head_dim: int = 32
    mlp_ratio: float = 2.5
    cross_attn_heads: int = 4
    cross_attn_head_dim: int = 32
    cond_dim: int = 64
    patch_size: int = 1
    lr_conditioning: str = "concat"
    bands: tuple[ExpertBand, ...] = field(default_factory=lambda: (ExpertBand(None, None),))
    flow_shift: float = 1.0
    default_steps: int = 4
    start_sigma: float = 1.0
    parameterization: str = "latent"
    residual_scale: float = 1.0
    upscale: int = 4
    timestep_scale: float = 1000.0
    norm_eps: float = 1e-6
    attn_eps: float = 1e-6
    qkv_bias: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "bands", tuple(self.bands))
        self._validate()

    def _validate(self) -> None:
        positive = (
            "latent_channels",
            "hidden_size",
            "depth",
            "num_heads",
            "head_dim",
            "cross_attn_heads",
            "cross_attn_head_dim",
            "cond_dim",
            "patch_size",
            "default_steps",
            "upscale",
        )
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be a positive integer, got {value!r}")
        if self.num_heads * self.head_dim != self.hidden_size:
            raise ConfigError(
                f"num_heads * head_dim must equal hidden_size: {self.num_heads} * {self.head_dim} "
                f"= {self.num_heads * self.head_dim} != {self.hidden_size}"
            )
        if self.mlp_ratio <= 0 or int(self.mlp_ratio * self.hidden_size) < 1:
            raise ConfigError(f"mlp_ratio must be > 0, got {self.mlp_ratio}")
        if self.lr_conditioning not in LR_CONDITIONING:
            raise ConfigError(f"lr_conditioning must be one of {LR_CONDITIONING}, got {self.lr_conditioning!r}")
        if self.parameterization not in PARAMETERIZATIONS:
            raise ConfigError(f"parameterization must be one of {PARAMETERIZATIONS}, got {self.parameterization!r}")
        if not (self.residual_scale > 0 and math.isfinite(self.residual_scale)):
            raise ConfigError(f"residual_scale must be a positive number, got {self.residual_scale}")
        if not 0.0 < self.start_sigma <= 1.0:
            raise ConfigError(f"start_sigma must lie in (0, 1], got {self.start_sigma}")
        if not self.flow_shift > 0:
            raise ConfigError(f"flow_shift must be > 0, got {self.flow_shift}")
        # eps below 1e-6 vanishes in FP16 and is deleted by the ONNX optimizer (0/0 -> NaN).
        if not 1e-6 <= self.attn_eps <= 1e-2:
            raise ConfigError(f"attn_eps must lie in [1e-6, 1e-2] to survive FP16 and ONNX export, got {self.attn_eps}")
        if not all(isinstance(b, ExpertBand) for b in self.bands):
            raise ConfigError("bands must be ExpertBand instances")
        validate_bands(self.bands)

    @property
    def num_experts(self) -> int:
        return len(self.bands)

    @property
    def in_channels(self) -> int:
        """Channels entering the patch embedding: the noisy latent concatenated with the LR latent."""
        return 2 * self.latent_channels

    def expert_for(self, log_snr: float) -> int:
        return route(self.bands, log_snr)

    # -- JSON ---------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["bands"] = [[b.low, b.high] for b in self.bands]
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        if not isinstance(data, dict):
            raise ConfigError(f"a model config must be a JSON object, got {type(data).__name__}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown model config keys: {', '.join(unknown)}")
        kwargs = dict(data)
        if "bands" in kwargs:
            try:
                kwargs["bands"] = tuple(ExpertBand(lo, hi) for lo, hi in kwargs["bands"])
            except (TypeError, ValueError) as exc:
                if isinstance(exc, ConfigError):
                    raise
                raise ConfigError(f"bands must be a list of [low, high] pairs: {exc}") from None
        try:
            return cls(**kwargs)
        except TypeError as exc:
            raise ConfigError(str(exc)) from None

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            from linearsr_edge.fileio import atomic_write_text

            atomic_write_text(Path(path), text + "\n")
        return text

    @classmethod
    def from_json(cls, source: str | Path) -> ModelConfig:
        """Read a config from a JSON file path or a JSON string."""
        path = Path(source) if not str(source).lstrip().startswith("{") else None
        try:
            text = path.read_text() if path is not None else str(source)
            return cls.from_dict(json.loads(text))
        except FileNotFoundError:
            raise ConfigError(f"model config not found: {path}") from None
        except json.JSONDecodeError as exc:
            raise ConfigError(f"model config {path or '<string>'} is not valid JSON: {exc}") from None

    @classmethod
    def from_diffusers_config(cls, source: str | Path | dict[str, Any], **overrides: Any) -> ModelConfig:
        """Build a config from a diffusers ``SanaTransformer2DModel`` ``config.json``.

        LinearSR concatenates the LR latent to the noisy latent, so ``in_channels`` must be
        twice ``out_channels``. Sampling fields (bands, steps, ...) come from ``overrides``.
        """
        if isinstance(source, dict):
            cfg = source
        else:
            path = Path(source)
            if path.is_dir():
                path = path / "config.json"
            try:
                cfg = json.loads(path.read_text())
            except FileNotFoundError:
                raise ConfigError(f"diffusers config not found: {path}") from None
            except json.JSONDecodeError as exc:
                raise ConfigError(f"diffusers config {path} is not valid JSON: {exc}") from None
        unsupported = {
            "qk_norm": None,
            "guidance_embeds": False,
            "interpolation_scale": None,
            "norm_elementwise_affine": False,
        }
        for key, expected in unsupported.items():
            if cfg.get(key, expected) != expected:
                raise ConfigError(f"diffusers config sets {key}={cfg[key]!r}; only {key}={expected!r} is supported")
        out_ch = cfg.get("out_channels") or cfg["in_channels"]
        if cfg["in_channels"] != 2 * out_ch:
            raise ConfigError(
                f"in_channels ({cfg['in_channels']}) must be 2 x out_channels ({out_ch}): "
                "LinearSR concatenates the LR latent to the noisy latent"
            )
        heads, head_dim = cfg["num_attention_heads"], cfg["attention_head_dim"]
        if cfg.get("cross_attention_dim", heads * head_dim) != heads * head_dim:
            raise ConfigError("cross_attention_dim must equal num_attention_heads * attention_head_dim")
        kwargs: dict[str, Any] = dict(
            latent_channels=out_ch,
            hidden_size=heads * head_dim,
            depth=cfg["num_layers"],
            num_heads=heads,
            head_dim=head_dim,
            mlp_ratio=cfg.get("mlp_ratio", 2.5),
            cross_attn_heads=cfg["num_cross_attention_heads"],
            cross_attn_head_dim=cfg["cross_attention_head_dim"],
            cond_dim=cfg["caption_channels"],
            patch_size=cfg.get("patch_size", 1),
            norm_eps=max(cfg.get("norm_eps", 1e-6), 1e-6),
            qkv_bias=bool(cfg.get("attention_bias", False)),
        )
        kwargs.update(overrides)
        return cls(**kwargs)
