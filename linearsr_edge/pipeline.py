"""Reference PyTorch pipeline: LR image -> bicubic x s -> encode -> sample the plan -> decode -> SR image.

The host-side steps (resize, pad, noise, plan, sampler loop, residual add-back, crop) live in
`SRProcess` and are shared with every runtime, which only supplies the three components.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

from linearsr_edge.config import ModelConfig
from linearsr_edge.errors import ConfigError
from linearsr_edge.imaging import (
    DEFAULT_MAX_OUTPUT_PIXELS,
    bicubic_resize,
    check_image,
    check_output_size,
    from_model,
    pad_to_multiple,
    to_model,
)
from linearsr_edge.model.codec import LatentCodec
from linearsr_edge.model.experts import SNRExperts
from linearsr_edge.schedule import StepPlan, make_plan, sample
from linearsr_edge.tags import TagVocabulary

# Components as functions of NumPy arrays: what every backend provides.
EncodeFn = Callable[[np.ndarray], np.ndarray]  # image [B, 3, H, W] -> latent [B, C, h, w]
DecodeFn = Callable[[np.ndarray], np.ndarray]  # latent -> image
ExpertFn = Callable[[int, dict[str, np.ndarray]], np.ndarray]  # (k, {latent, lr_latent, sigma, cond}) -> velocity


@dataclass(frozen=True)
class SampleOptions:
    """Per-call sampling options; ``None`` takes the model config's default."""

    steps: int | None = None
    start_sigma: float | None = None
    shift: float | None = None
    solver: str = "euler"
    seed: int = 0
    tags: tuple[str, ...] = ()
    max_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS


@dataclass
class UpscaleResult:
    image: np.ndarray  # uint8 [H*s, W*s, 3]
    plan: StepPlan
    steps_per_expert: list[int]
    seconds: float
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class SRProcess:
    """The backend-neutral host loop around three component functions."""

    cfg: ModelConfig
    codec_factor: int
    encode: EncodeFn
    decode: DecodeFn
    expert: ExpertFn
    tags: TagVocabulary | None = None

    def plan(self, opts: SampleOptions) -> StepPlan:
        steps = self.cfg.default_steps if opts.steps is None else opts.steps
        start = self.cfg.start_sigma if opts.start_sigma is None else opts.start_sigma
        shift = self.cfg.flow_shift if opts.shift is None else opts.shift
        return make_plan(self.cfg.bands, steps, shift, start, opts.solver)

    def cond(self, tags: Sequence[str]) -> np.ndarray:
        if self.tags is None:
            if tags:
                raise ConfigError("this model has no tag vocabulary; pass cond embeddings instead of tags")
            return np.zeros((1, self.cfg.cond_dim), np.float32)
        return self.tags.encode(tags)

    def upscale(
        self,
        image: np.ndarray,
        opts: SampleOptions | None = None,
        cond: np.ndarray | None = None,
        on_step: Callable[[int], None] | None = None,
    ) -> UpscaleResult:
        """``uint8 [H, W, 3]`` -> `UpscaleResult` with ``uint8 [H*s, W*s, 3]``."""
        opts = opts or SampleOptions()
        t0 = time.perf_counter()
        image = check_image(image)
        s = self.cfg.upscale
        h, w = image.shape[:2]
        check_output_size(h, w, s, opts.max_pixels)
        plan = self.plan(opts)
        cond = self.cond(opts.tags) if cond is None else np.asarray(cond, np.float32)
        if cond.ndim != 2 or cond.shape[1] != self.cfg.cond_dim:
            raise ConfigError(f"cond must be [L, {self.cfg.cond_dim}], got {cond.shape}")

        up = bicubic_resize(to_model(image), h * s, w * s)  # [3, sH, sW]
        up, (out_h, out_w) = pad_to_multiple(up, self.codec_factor * self.cfg.patch_size)
        lr_latent = self.encode(up[None]).astype(np.float32)  # [1, C, h', w']
        rng = np.random.default_rng(opts.seed)
        noise = rng.standard_normal(lr_latent.shape, dtype=np.float32)
        sigma0 = float(plan.sigma[0])
        # x0 estimate at the start: the LR latent itself (latent mode) or a zero residual.
        x0_guess = lr_latent if self.cfg.parameterization == "latent" else np.zeros_like(lr_latent)
        x = ((1.0 - sigma0) * x0_guess + sigma0 * noise).astype(np.float32)
        cond_b = cond[None]  # [1, L, D]

        def velocity(k: int, xt: np.ndarray, sigma: float) -> np.ndarray:
            feeds = {
                "latent": xt.astype(np.float32),
                "lr_latent": lr_latent,
                "sigma": np.full((xt.shape[0],), sigma, np.float32),
                "cond": cond_b,
            }
            return self.expert(k, feeds)

        t1 = time.perf_counter()
        x0 = sample(plan, x, velocity, on_step)
        t2 = time.perf_counter()
        if self.cfg.parameterization == "residual":
            x0 = lr_latent + x0 / self.cfg.residual_scale
        out = self.decode(x0.astype(np.float32))[0, :, :out_h, :out_w]
        t3 = time.perf_counter()
        return UpscaleResult(
            image=from_model(out),
            plan=plan,
            steps_per_expert=plan.steps_per_expert(self.cfg.num_experts),
            seconds=t3 - t0,
            timings={"prepare": t1 - t0, "sample": t2 - t1, "decode": t3 - t2},
        )


class SRPipeline:
    """The PyTorch reference: experts + codec (+ tag vocabulary) in FP32 on the CPU."""

    def __init__(self, experts: SNRExperts, codec: LatentCodec, tags: TagVocabulary | None = None) -> None:
        if codec.latent_channels != experts.cfg.latent_channels:
            raise ConfigError(
                f"codec gives {codec.latent_channels} latent channels, model expects {experts.cfg.latent_channels}"
            )
        self.experts, self.codec, self.tags = experts.eval(), codec.eval(), tags
        self.cfg = experts.cfg
        self.process = SRProcess(self.cfg, codec.factor, self._encode, self._decode, self._expert, tags)

    @torch.inference_mode()
    def _encode(self, image: np.ndarray) -> np.ndarray:
        return self.codec.encode(torch.from_numpy(image)).numpy()

    @torch.inference_mode()
    def _decode(self, latent: np.ndarray) -> np.ndarray:
        return self.codec.decode(torch.from_numpy(latent)).numpy()

    @torch.inference_mode()
    def _expert(self, k: int, feeds: dict[str, np.ndarray]) -> np.ndarray:
        t = {name: torch.from_numpy(a) for name, a in feeds.items()}
        return self.experts[k](t["latent"], t["lr_latent"], t["sigma"], t["cond"]).numpy()

    def upscale(self, image: np.ndarray, opts: SampleOptions | None = None, **kwargs) -> UpscaleResult:
        return self.process.upscale(image, opts, **kwargs)
