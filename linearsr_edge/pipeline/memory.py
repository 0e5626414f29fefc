"""How much memory an upscale needs, roughly, so that tiling keeps within the device's memory budget.

A frame above the exported profile is tiled; how large its tiles are and how many run in one call
decide the peak, beside the host loop's own arrays, which grow with the output. Three parts, each
an estimate measured against this project's runs (``benchmarks/camera_memory.py``):

* **the host loop**: float32 planes the size of the output (the bicubic image, the latents, the
  noise, the state, the blended velocity, the per-tile parts, the decoded pixels): `host_bytes`;
* **the sessions**: each expert session that stays resident may keep an activation arena as large
  as its largest call (OpenVINO's infer requests keep one per compiled shape; ONNX Runtime's
  sessions here share one arena, so this counts them high): `specs.activation_bytes` per call;
* **the runtime itself** (interpreter, libraries, weights): `RUNTIME_BASE_BYTES` plus the bundle's
  files.

`plan_tiles` picks the largest tile batch (and, if even one tile is too much, a smaller tile) whose
estimate fits the budget. Pure Python: no NumPy work, no backend.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from linearsr_edge.config import ModelConfig
from linearsr_edge.devices.profiles import builtin_profiles, this_device_profile
from linearsr_edge.errors import ConfigError
from linearsr_edge.pipeline.sizes import tile_shape
from linearsr_edge.specs import activation_bytes, machine_memory_bytes

log = logging.getLogger(__name__)

FLOAT = 4
# the interpreter, NumPy, Pillow and one backend's libraries, measured idle after SRRuntime.load (~0.35 GiB)
RUNTIME_BASE_BYTES = 512 << 20


def overlap_factor(tile: int, overlap: int) -> float:
    """How many times tiles cover each latent pixel, about: (tile / stride)^2."""
    return (tile / max(1, tile - overlap)) ** 2


def host_bytes(cfg: ModelConfig, codec_factor: int, out_pixels: int, cover: float = 1.0) -> int:
    """The host loop's peak arrays for ``out_pixels`` output pixels: the 3-channel float image, and latent
    planes (C channels at 1/f^2 of the pixels): LR latent, noise, state, velocity, the solver's temporary,
    and the tiles' encodings and velocities, each ``cover`` times the plane (1 untiled)."""
    latent = cfg.latent_channels / codec_factor**2
    return int(FLOAT * out_pixels * (3 + latent * (5 + 2 * cover)))


@dataclass(frozen=True)
class TilePlan:
    """Latent tile (h, w) and overlap, tiles per expert call, and the estimated peak bytes of the run."""

    tile: tuple[int, int]
    overlap: int
    batch: int
    estimate_bytes: int
    fits: bool  # the estimate is within the budget

    @property
    def side(self) -> int:
        """The tile's longer side in latent pixels."""
        return max(self.tile)


def run_bytes(
    cfg: ModelConfig,
    codec_factor: int,
    out_pixels: int,
    call_tokens: int,
    arenas: int,
    fixed_bytes: int,
    cover: float = 1.0,
) -> int:
    """The estimated peak of one upscale: the runtime, the host arrays and ``arenas`` session arenas each
    sized for an expert call of ``call_tokens`` tokens (all its batch rows)."""
    return fixed_bytes + host_bytes(cfg, codec_factor, out_pixels, cover) + arenas * activation_bytes(cfg, call_tokens)


def plan_tiles(
    cfg: ModelConfig,
    codec_factor: int,
    out_pixels: int,
    tile: tuple[int, int],
    min_tile: int,
    multiple: int,
    max_batch: int,
    arenas: int,
    fixed_bytes: int,
    budget: int,
    shrink: bool = True,
) -> TilePlan:
    """The largest tile batch (up to ``max_batch``) whose estimate fits ``budget``; when one tile of ``tile``
    latent pixels does not fit and ``shrink``, halve the tile (down to ``min_tile``). The plan says when
    nothing fits."""

    def estimate(shape: tuple[int, int], batch: int) -> int:
        overlap = _overlap(min(shape), multiple)
        tokens = (shape[0] // cfg.patch_size) * (shape[1] // cfg.patch_size) * batch
        cover = overlap_factor(min(shape), overlap)
        return run_bytes(cfg, codec_factor, out_pixels, tokens, arenas, fixed_bytes, cover)

    shape = tile
    while True:
        for batch in range(max(1, max_batch), 0, -1):
            need = estimate(shape, batch)
            if need <= budget:
                return TilePlan(shape, _overlap(min(shape), multiple), batch, need, True)
        side = max(min_tile, max(shape) // 2 // multiple * multiple)
        if not shrink or side >= max(shape):
            return TilePlan(shape, _overlap(min(shape), multiple), 1, estimate(shape, 1), False)
        shape = (side, side)


def _overlap(tile: int, multiple: int) -> int:
    """A quarter of the tile, in whole multiples: the feathered seam."""
    return max(multiple, tile // 4 // multiple * multiple)


# -- a runtime's tiles ----------------------------------------------------------------------------
def budget(explicit: int | None) -> int:
    """``explicit``, else this device profile's memory budget, else half the machine's memory."""
    if explicit is not None:
        return explicit
    profile = this_device_profile()
    if profile is not None:
        return profile.memory_budget_bytes
    return machine_memory_bytes() // 2 or 4 << 30


def _arenas(runtime) -> int:
    """Expert sessions that may each hold an activation arena at once, under the residency policy."""
    experts = sum(1 for spec in runtime._specs.values() if spec.kind == "expert")
    return 1 if runtime._residents.policy.mode == "one" else experts


def _fixed_bytes(runtime) -> int:
    return RUNTIME_BASE_BYTES + sum(runtime.components.component_bytes().values())


def whole_bytes(runtime, height: int, width: int) -> int:
    """The estimated peak bytes of an upscale of a ``height`` x ``width`` frame in one piece."""
    cfg, f, s, patch = runtime.cfg, runtime.process.codec_factor, runtime.cfg.upscale, runtime.cfg.patch_size
    tokens = -(-height * s // (f * patch)) * -(-width * s // (f * patch))
    return run_bytes(cfg, f, height * width * s * s, tokens, _arenas(runtime), _fixed_bytes(runtime))


def whole_over_budget(runtime, height: int, width: int) -> bool:
    """The frame in one piece would exceed the budget, and it can be tiled (its latent holds the smallest tile).
    The device is detected only for a frame above the smallest budget any profile gives."""
    s, f = runtime.cfg.upscale, runtime.process.codec_factor
    need = whole_bytes(runtime, height, width)
    if runtime._memory_budget is None and need <= min(p.memory_budget_bytes for p in builtin_profiles()):
        return False
    dims = runtime.spec("expert_0").dims
    fits_a_tile = min(height, width) * s // f >= max(dims["height"].min, dims["width"].min)
    return need > runtime.memory_budget and fits_a_tile


def tile_size(runtime, tile: int | None = None) -> tuple[tuple[int, int], int]:
    """((latent tile h, w), latent overlap) for a tile of ``tile`` output pixels (default: the device profile's
    tile size), within the expert's exported latent sizes and of a size the size policy takes."""
    dims = runtime.spec("expert_0").dims
    lo = max(dims["height"].min, dims["width"].min)
    hi = min(dims["height"].max, dims["width"].max)
    m = dims["height"].multiple
    f = runtime.process.codec_factor
    if tile is None:
        profile = this_device_profile()
        tile = max(profile.tile_size if profile is not None else 512, lo * f)
    if isinstance(tile, bool) or not isinstance(tile, int):
        raise ConfigError(f"tile must be an integer number of output pixels, got {tile!r}")
    if tile // f < lo:
        raise ConfigError(
            f"tile {tile} px is below the smallest tile this bundle runs: give a tile of {lo * f} to "
            f"{hi * f} output pixels (its profile's smallest and largest latent sides times {f})"
        )
    shape = tile_shape(runtime.sizes, min(hi, tile // f) // m * m, f, lo, hi)
    return shape, _overlap(min(shape), m)


def plan(runtime, height: int, width: int, tile: int | None = None) -> TilePlan:
    """The `TilePlan` for a ``height`` x ``width`` frame: the tile (``tile`` output pixels, else this device
    profile's), its overlap, and the most tiles per expert call (up to the device profile's ``tile_batch`` and
    the bundle's batch) whose estimated peak fits the runtime's budget; a profile tile that does not fit even
    alone is halved. Logs a warning when nothing fits."""
    shape, _ = tile_size(runtime, tile)
    dims = runtime.spec("expert_0").dims
    profile = this_device_profile()
    max_batch = min(runtime.process.max_batch, profile.tile_batch if profile is not None else 1)
    s, f = runtime.cfg.upscale, runtime.process.codec_factor
    found = plan_tiles(
        runtime.cfg, f, height * width * s * s, shape, max(dims["height"].min, dims["width"].min),
        dims["height"].multiple, max_batch, _arenas(runtime), _fixed_bytes(runtime), runtime.memory_budget,
        shrink=tile is None and not runtime.sizes.restricted,  # a restricted policy's tiles are its sizes
    )  # fmt: skip
    if not found.fits:
        log.warning(
            "a %dx%d frame needs about %.1f GiB here even in single %d px tiles, above the memory budget of %.1f GiB: "
            "it may not fit; give a smaller frame or an ROI, or residency='one'",
            width, height, found.estimate_bytes / 2**30, found.side * f, runtime.memory_budget / 2**30,
        )  # fmt: skip
    return found
