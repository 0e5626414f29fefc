"""The backend-neutral host loop: LR images -> bicubic x s -> encode -> sample the plan -> decode -> SR images.

Pure NumPy + Pillow (no torch): every runtime, the PyTorch reference included, supplies only the
three component functions and runs this same loop.
"""

from __future__ import annotations

import contextlib
import itertools
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from linearsr_edge.config import ModelConfig
from linearsr_edge.errors import ConfigError
from linearsr_edge.pipeline.imaging import (
    DEFAULT_MAX_OUTPUT_PIXELS,
    bicubic_resize,
    check_image,
    check_output_size,
    from_model,
    pad_to_multiple,
    to_model,
)
from linearsr_edge.schedule import StepPlan, make_plan, sample_many
from linearsr_edge.tags import TagVocabulary

if TYPE_CHECKING:
    from linearsr_edge.pipeline.reuse import TileMemo

# Components as functions of NumPy arrays: what every backend provides.
EncodeFn = Callable[[np.ndarray], np.ndarray]  # image [B, 3, H, W] -> latent [B, C, h, w]
DecodeFn = Callable[[np.ndarray], np.ndarray]  # latent -> image
ExpertFn = Callable[[int, dict[str, np.ndarray]], np.ndarray]  # (k, {latent, lr_latent, sigma, cond}) -> velocity
BindFn = Callable[[dict[str, np.ndarray]], AbstractContextManager[ExpertFn]]  # static inputs -> expert(k, rest)
Shapes = dict[str, tuple[int, ...]]  # input name -> shape
PrepareFn = Callable[[dict[str, list[Shapes]]], None]  # component name -> the input shapes a call will run


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

    def __post_init__(self) -> None:
        check_seed(self.seed)


def check_seed(seed) -> int:
    """A noise seed: an integer >= 0 (NumPy's generators take no other)."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be an integer >= 0, got {seed!r}")
    return int(seed)


@dataclass
class UpscaleResult:
    image: np.ndarray  # uint8 [H*s, W*s, 3]
    plan: StepPlan
    steps_per_expert: list[int]
    seconds: float  # the whole call (for a batch: the whole batch)
    timings: dict[str, float] = field(default_factory=dict)
    batch_size: int = 1  # images that shared this call
    tiles: int = 0  # latent tiles the frame was cut into (0: untiled)
    tile_px: int = 0  # their side in output pixels


@dataclass
class _Group:
    """Images of one size that run as one batch."""

    indices: list[int]
    lr_latent: np.ndarray  # [n, C, h, w]
    x: np.ndarray  # [n, C, h, w], the noisy start
    out_hw: tuple[int, int]


@dataclass
class SRProcess:
    """The backend-neutral host loop around three component functions."""

    cfg: ModelConfig
    codec_factor: int
    encode: EncodeFn
    decode: DecodeFn
    expert: ExpertFn
    tags: TagVocabulary | None = None
    max_batch: int = 1 << 30  # the components' largest batch
    # binds the inputs that stay the same across a batch's steps (LR latent, tags) once: a context giving
    # ``expert(k, {latent, sigma})``; None: every step passes every input to ``expert``
    bind: BindFn | None = None
    # told, before a call's first component runs, every component and input shape the call will run, so that a
    # backend that compiles per shape compiles them all at once (side by side); None: nothing to prepare
    prepare: PrepareFn | None = None

    def shapes(self, plan: StepPlan, sizes: Sequence[tuple[int, int, int]], cond_len: int) -> dict[str, list[Shapes]]:
        """What `upscale_batch` runs for groups of ``(images, height, width)`` input images: each component
        (``encoder``, the experts ``plan`` uses, ``decoder``) with its input shapes."""
        s, f, m = self.cfg.upscale, self.codec_factor, self.codec_factor * self.cfg.patch_size
        c, d = self.cfg.latent_channels, self.cfg.cond_dim
        wanted: dict[str, list[Shapes]] = {"encoder": []}
        wanted.update({f"expert_{k}": [] for k, n in enumerate(plan.steps_per_expert(self.cfg.num_experts)) if n})
        wanted["decoder"] = []
        for n, h, w in sizes:
            ph, pw = -(-h * s // m) * m, -(-w * s // m) * m
            latent = (n, c, ph // f, pw // f)
            wanted["encoder"].append({"image": (n, 3, ph, pw)})
            wanted["decoder"].append({"latent": latent})
            for name in wanted:
                if name.startswith("expert_"):
                    expert = {"latent": latent, "lr_latent": latent, "sigma": (n,), "cond": (n, cond_len, d)}
                    wanted[name].append(expert)
        return wanted

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
        return self.upscale_batch([image], opts, cond, on_step)[0]

    def upscale_batch(
        self,
        images: Sequence[np.ndarray],
        opts: SampleOptions | None = None,
        cond: np.ndarray | None = None,
        on_step: Callable[[int], None] | None = None,
        seeds: Sequence[int] | None = None,
    ) -> list[UpscaleResult]:
        """Several ``uint8 [H, W, 3]`` images, expert-major: every image's steps of band k run before band k + 1.

        Images of equal size share one batch (up to ``max_batch``); other sizes run beside them in
        lockstep. Image i draws its noise from ``seeds[i]`` (default ``opts.seed``), so its result
        equals ``upscale(images[i])`` with that seed.
        """
        opts = opts or SampleOptions()
        t0 = time.perf_counter()
        images = [check_image(img, f"image {i}") for i, img in enumerate(images)]
        if not images:
            return []
        seeds = [opts.seed] * len(images) if seeds is None else list(seeds)
        if len(seeds) != len(images):
            raise ConfigError(f"{len(images)} images but {len(seeds)} seeds")
        for seed in seeds:
            check_seed(seed)
        s = self.cfg.upscale
        for img in images:
            check_output_size(img.shape[0], img.shape[1], s, opts.max_pixels)
        plan = self.plan(opts)
        cond = self.cond(opts.tags) if cond is None else np.asarray(cond, np.float32)
        if cond.ndim != 2 or cond.shape[1] != self.cfg.cond_dim:
            raise ConfigError(f"cond must be [L, {self.cfg.cond_dim}], got {cond.shape}")
        batches = self._batches(images)
        if self.prepare is not None:
            self.prepare(self.shapes(plan, [(len(b), *images[b[0]].shape[:2]) for b in batches], cond.shape[0]))
        groups = [self._prepare(images, idx, seeds, float(plan.sigma[0])) for idx in batches]

        def velocity_for(expert: ExpertFn):
            def velocity(k: int, xt: np.ndarray, sigma: float) -> np.ndarray:
                latent = xt.astype(np.float32, copy=False)
                return expert(k, {"latent": latent, "sigma": np.full((xt.shape[0],), sigma, np.float32)})

            return velocity

        t1 = time.perf_counter()
        with contextlib.ExitStack() as stack:  # each group's LR latent and tags bound once for all its steps
            experts = [
                stack.enter_context(
                    self._bound({"lr_latent": g.lr_latent, "cond": np.repeat(cond[None], len(g.indices), axis=0)})
                )
                for g in groups
            ]
            finals = sample_many(plan, [g.x for g in groups], [velocity_for(e) for e in experts], on_step)
        t2 = time.perf_counter()
        outputs: dict[int, np.ndarray] = {}
        for g, x0 in zip(groups, finals, strict=True):
            if self.cfg.parameterization == "residual":
                x0 = g.lr_latent + x0 / self.cfg.residual_scale
            decoded = self.decode(x0.astype(np.float32))  # [n, 3, H', W']
            for j, i in enumerate(g.indices):
                outputs[i] = from_model(decoded[j, :, : g.out_hw[0], : g.out_hw[1]])
        t3 = time.perf_counter()
        timings = {"prepare": t1 - t0, "sample": t2 - t1, "decode": t3 - t2}
        per = plan.steps_per_expert(self.cfg.num_experts)
        return [UpscaleResult(outputs[i], plan, per, t3 - t0, dict(timings), len(images)) for i in range(len(images))]

    def upscale_tiled(
        self,
        image: np.ndarray,
        opts: SampleOptions | None = None,
        tile: int | tuple[int, int] = 64,
        overlap: int = 16,
        cond: np.ndarray | None = None,
        on_step: Callable[[int], None] | None = None,
        batch: int | None = None,
        memo: TileMemo | None = None,
    ) -> UpscaleResult:
        """``upscale`` in overlapping latent tiles of ``tile`` (latent pixels, ``overlap`` shared).

        The codec encodes and decodes tile by tile, blended with feathered weights; the sampler runs
        on the whole latent, one noise field for the whole image, and at every step each tile's
        velocity is blended into one velocity field before the step, so neighbouring tiles agree on
        the state they continue from. Tiles share expert calls, ``batch`` at a time (default ``max_batch``;
        each call's activations grow with it).
        """
        from linearsr_edge.pipeline.tiling import TileGrid, blend

        opts = opts or SampleOptions()
        t0 = time.perf_counter()
        image = check_image(image)
        s, f = self.cfg.upscale, self.codec_factor
        check_output_size(image.shape[0], image.shape[1], s, opts.max_pixels)
        plan = self.plan(opts)
        cond = self.cond(opts.tags) if cond is None else np.asarray(cond, np.float32)
        h, w = image.shape[:2]
        up = bicubic_resize(to_model(image), h * s, w * s)
        up, out_hw = pad_to_multiple(up, f * self.cfg.patch_size)
        lh, lw = up.shape[1] // f, up.shape[2] // f
        grid = TileGrid(lh, lw, tile, overlap, self.cfg.patch_size)
        boxes = grid.boxes()
        pixel_boxes = [tuple(v * f for v in b) for b in boxes]
        step = 1 if memo is not None else max(1, min(self.max_batch, batch or self.max_batch))

        def batched(fn, parts: list[np.ndarray], stage: str = "", tolerance: float = 0.0) -> list[np.ndarray]:
            out = []
            for j in range(0, len(parts), step):
                if memo is None:
                    out.extend(fn(np.stack(parts[j : j + step])))
                else:
                    out.extend(memo.call((stage, j), lambda f: fn(f["x"]), {"x": parts[j][None]}, tolerance))
            return out

        # input levels in the model's [-1, 1], through the bicubic upscale the encoder reads (it can amplify a
        # pixel's change up to 1.6x: cubic kernel weights summing to 1.25 in absolute value per axis)
        tolerance = 0.0 if memo is None else memo.threshold * 1.6 / 127.5
        enc = batched(self.encode, [up[:, y0:y1, x0:x1] for y0, y1, x0, x1 in pixel_boxes], "encoder", tolerance)
        del up  # the host arrays grow with the output: free each as soon as it is used (memory.host_bytes)
        lr_latent = blend(enc, boxes, [grid.weights(b) for b in boxes], (enc[0].shape[0], lh, lw))[None]
        del enc
        noise = np.random.default_rng(opts.seed).standard_normal(lr_latent.shape, np.float32)
        x = self._start(lr_latent, noise, float(plan.sigma[0]))
        del noise
        weights = [grid.weights(b) for b in boxes]

        evaluations = itertools.count()  # the expert calls' order in the frame: the memo's key for each

        def velocity(k: int, xt: np.ndarray, sigma: float) -> np.ndarray:
            parts = []
            evaluation = next(evaluations)
            for j in range(0, len(boxes), step):
                chunk = boxes[j : j + step]
                n = len(chunk)
                feeds = {
                    "latent": np.stack([xt[0, :, y0:y1, x0:x1] for y0, y1, x0, x1 in chunk]).astype(np.float32),
                    "lr_latent": np.stack([lr_latent[0, :, y0:y1, x0:x1] for y0, y1, x0, x1 in chunk]),
                    "sigma": np.full((n,), sigma, np.float32),
                    "cond": np.repeat(cond[None], n, axis=0),
                }
                if memo is None:
                    parts.extend(self.expert(k, feeds))
                else:
                    parts.extend(memo.call(("expert", evaluation, k, j), lambda f, k=k: self.expert(k, f), feeds))
            return blend(parts, boxes, weights, xt.shape[1:])[None]

        t1 = time.perf_counter()
        (x0,) = sample_many(plan, [x], [velocity], on_step)
        t2 = time.perf_counter()
        if self.cfg.parameterization == "residual":
            x0 = lr_latent + x0 / self.cfg.residual_scale
        x0 = x0.astype(np.float32)
        dec = batched(self.decode, [x0[0, :, y0:y1, x0_:x1] for y0, y1, x0_, x1 in boxes], "decoder")
        pixels = blend(dec, pixel_boxes, [grid.weights(b, f) for b in boxes], (dec[0].shape[0], lh * f, lw * f))
        out = from_model(pixels[:, : out_hw[0], : out_hw[1]])
        t3 = time.perf_counter()
        timings = {"prepare": t1 - t0, "sample": t2 - t1, "decode": t3 - t2, "tiles": float(len(boxes))}
        if memo is not None:
            timings.update(tile_calls=float(memo.computed + memo.reused), tile_calls_reused=float(memo.reused))
        per = plan.steps_per_expert(self.cfg.num_experts)
        return UpscaleResult(out, plan, per, t3 - t0, timings, tiles=len(boxes), tile_px=max(grid.tile_hw) * f)

    def _bound(self, static: dict[str, np.ndarray]) -> AbstractContextManager[ExpertFn]:
        if self.bind is not None:
            return self.bind(static)
        return contextlib.nullcontext(lambda k, feeds: self.expert(k, {**static, **feeds}))

    def _batches(self, images: list[np.ndarray]) -> list[list[int]]:
        """Indices grouped by image size, in first-seen order, each group cut to ``max_batch``."""
        by_size: dict[tuple[int, int], list[int]] = {}
        for i, img in enumerate(images):
            by_size.setdefault(img.shape[:2], []).append(i)
        step = max(1, self.max_batch)
        return [idx[j : j + step] for idx in by_size.values() for j in range(0, len(idx), step)]

    def _prepare(self, images: list[np.ndarray], indices: list[int], seeds: list[int], sigma0: float) -> _Group:
        s = self.cfg.upscale
        ups = []
        for i in indices:
            h, w = images[i].shape[:2]
            up = bicubic_resize(to_model(images[i]), h * s, w * s)  # [3, sH, sW]
            up, out_hw = pad_to_multiple(up, self.codec_factor * self.cfg.patch_size)
            ups.append(up)
        lr_latent = self.encode(np.stack(ups)).astype(np.float32)  # [n, C, h', w']
        shape = (1, *lr_latent.shape[1:])
        noise = np.concatenate([np.random.default_rng(seeds[i]).standard_normal(shape, np.float32) for i in indices])
        # x0 estimate at the start: the LR latent itself (latent mode) or a zero residual.
        return _Group(list(indices), lr_latent, self._start(lr_latent, noise, sigma0), out_hw)

    def _start(self, lr_latent: np.ndarray, noise: np.ndarray, sigma0: float) -> np.ndarray:
        """The noisy state at ``sigma0``: the x0 estimate (the LR latent itself, or a zero residual) mixed
        with ``noise``."""
        x0_guess = lr_latent if self.cfg.parameterization == "latent" else np.zeros_like(lr_latent)
        return ((1.0 - sigma0) * x0_guess + sigma0 * noise).astype(np.float32)
