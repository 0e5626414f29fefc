"""Overlapping tiles with feathered blending, for latents (and the codec's pixels) larger than a profile.

A `TileGrid` covers an ``H x W`` plane with ``tile x tile`` windows (smaller where the plane is)
that overlap by at least ``overlap``; the last window of a row or column is flush with the edge.
`blend` puts per-tile results back with weights that ramp linearly across every overlap, so each
pixel is a convex mix and seams fade over the overlap instead of showing as an edge. Pure NumPy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from linearsr_edge.errors import ConfigError


def starts(size: int, tile: int, overlap: int, multiple: int = 1) -> list[int]:
    """Window starts along one axis: stride ``tile - overlap`` (rounded down to ``multiple``), the last
    window ending at ``size``."""
    if tile >= size:
        return [0]
    stride = max(multiple, (tile - overlap) // multiple * multiple)
    out = list(range(0, size - tile, stride))
    return [*out, size - tile]


@dataclass(frozen=True)
class TileGrid:
    height: int
    width: int
    tile: int | tuple[int, int]  # a square side, or (h, w) (a size policy's pinned size)
    overlap: int
    multiple: int = 1  # window starts and sizes stay multiples of this (the model's patch size)

    def __post_init__(self) -> None:
        th, tw = self.tile if isinstance(self.tile, tuple) else (self.tile, self.tile)
        if min(th, tw) < 1 or self.overlap < 0 or self.overlap >= min(th, tw):
            raise ConfigError(f"need 0 <= overlap < tile, got tile {self.tile} and overlap {self.overlap}")
        if th % self.multiple or tw % self.multiple:
            raise ConfigError(f"tile {self.tile} must be a multiple of {self.multiple}")
        object.__setattr__(self, "tile", (th, tw))

    @property
    def tile_hw(self) -> tuple[int, int]:
        return min(self.tile[0], self.height), min(self.tile[1], self.width)

    def boxes(self) -> list[tuple[int, int, int, int]]:
        """``(y0, y1, x0, x1)`` of every window, row by row; all of one size (`tile_hw`)."""
        th, tw = self.tile_hw
        ys = starts(self.height, th, self.overlap, self.multiple)
        xs = starts(self.width, tw, self.overlap, self.multiple)
        return [(y, y + th, x, x + tw) for y in ys for x in xs]

    def weights(self, box: tuple[int, int, int, int], scale: int = 1) -> np.ndarray:
        """``float32 [h, w]`` for window ``box`` (``scale`` times larger: the codec's pixels): 1 inside,
        ramping down across each side shared with a neighbour."""
        y0, y1, x0, x1 = box
        return np.outer(
            _ramp((y1 - y0) * scale, self.overlap * scale, y0 > 0, y1 < self.height),
            _ramp((x1 - x0) * scale, self.overlap * scale, x0 > 0, x1 < self.width),
        ).astype(np.float32)


def _ramp(n: int, overlap: int, before: bool, after: bool) -> np.ndarray:
    """Weights along one axis: rising over ``overlap`` at the start when a window lies before, falling
    at the end when one lies after; never exactly 0, so every pixel has weight."""
    w = np.ones(n, np.float32)
    if overlap > 0:
        ramp = (np.arange(min(overlap, n), dtype=np.float32) + 0.5) / overlap
        if before:
            w[: len(ramp)] = np.minimum(w[: len(ramp)], ramp)
        if after:
            w[n - len(ramp) :] = np.minimum(w[n - len(ramp) :], ramp[::-1])
    return w


def blend(
    parts: Sequence[np.ndarray], boxes: Sequence[tuple[int, int, int, int]], weights: Sequence[np.ndarray], shape
) -> np.ndarray:
    """Weighted sum of ``[..., h, w]`` tiles into ``shape`` (``[..., H, W]``), divided by the weight sum."""
    out = np.zeros(shape, np.float32)
    total = np.zeros(shape[-2:], np.float32)
    for part, (y0, y1, x0, x1), w in zip(parts, boxes, weights, strict=True):
        out[..., y0:y1, x0:x1] += part * w
        total[y0:y1, x0:x1] += w
    return out / total


def seam_ratio(image: np.ndarray, grid: TileGrid, factor: int) -> float:
    """Mean |gradient| of ``image`` (uint8 [H, W, 3], ``factor`` output pixels per grid pixel) across the
    tiles' borders, over the same at every other grid-pixel boundary. 1.0: no seam. Comparing with the
    other grid boundaries (not every pixel) keeps a codec's own block pattern out of the figure."""
    h, w = grid.height, grid.width
    cols = {c for b in grid.boxes() for c in b[2:] if 0 < c < w}
    rows = {r for b in grid.boxes() for r in b[:2] if 0 < r < h}
    o = image.astype(np.float64)
    gx = np.abs(np.diff(o, axis=1)).mean(axis=(0, 2))  # gx[i]: between columns i and i + 1
    gy = np.abs(np.diff(o, axis=0)).mean(axis=(1, 2))
    border = [gx[c * factor - 1] for c in sorted(cols)] + [gy[r * factor - 1] for r in sorted(rows)]
    others = [gx[c * factor - 1] for c in range(1, w) if c not in cols]
    others += [gy[r * factor - 1] for r in range(1, h) if r not in rows]
    if not border or not others:
        return 1.0
    return float(np.mean(border) / np.mean(others))
