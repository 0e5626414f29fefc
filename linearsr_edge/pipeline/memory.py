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

from dataclasses import dataclass

from linearsr_edge.config import ModelConfig
from linearsr_edge.specs import activation_bytes

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
    """Latent tile side and overlap, tiles per expert call, and the estimated peak bytes of the run."""

    tile: int
    overlap: int
    batch: int
    estimate_bytes: int
    fits: bool  # the estimate is within the budget


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
    tile: int,
    min_tile: int,
    multiple: int,
    max_batch: int,
    arenas: int,
    fixed_bytes: int,
    budget: int,
) -> TilePlan:
    """The largest tile batch (up to ``max_batch``) whose estimate fits ``budget``; when one tile of ``tile``
    latent pixels does not fit, halve the tile (down to ``min_tile``). The plan says when nothing fits."""

    def estimate(side: int, batch: int) -> int:
        overlap = _overlap(side, multiple)
        tokens = (side // cfg.patch_size) ** 2 * batch
        cover = overlap_factor(side, overlap)
        return run_bytes(cfg, codec_factor, out_pixels, tokens, arenas, fixed_bytes, cover)

    side = tile
    while True:
        for batch in range(max(1, max_batch), 0, -1):
            need = estimate(side, batch)
            if need <= budget:
                return TilePlan(side, _overlap(side, multiple), batch, need, True)
        smaller = max(min_tile, side // 2 // multiple * multiple)
        if smaller >= side:
            return TilePlan(side, _overlap(side, multiple), 1, estimate(side, 1), False)
        side = smaller


def _overlap(tile: int, multiple: int) -> int:
    """A quarter of the tile, in whole multiples: the feathered seam."""
    return max(multiple, tile // 4 // multiple * multiple)
