"""Frames and feeds fitted to a `SizePolicy`, the same way for every backend: pad, crop, tile, split rows.

A bundle's components take any size in the profile (``range``), only some sizes (``listed``: Core ML's
enumerated shapes) or one size (``pinned``: an OpenVINO NPU). The runtime asks `plan_frame` what to do
with a frame: run it as it is, pad it (mirrored at the bottom and right) to the smallest size that
holds it and crop the result back, or tile it in tiles the policy takes. `split_rows` cuts a call's
batch to the policy's ``max_batch`` (1: row by row) and `join_rows` puts the outputs back. Pure NumPy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np

from linearsr_edge.errors import ConfigError, InputSpecError
from linearsr_edge.specs import SizePolicy

Feeds = dict[str, np.ndarray]


@dataclass(frozen=True)
class FramePlan:
    """What a frame of ``height`` x ``width`` (input pixels) gets: ``run`` as it is, ``pad`` to ``pad_to`` (input
    pixels) and crop back, or ``tile``."""

    action: Literal["run", "pad", "tile"]
    pad_to: tuple[int, int] | None = None


Limits = tuple[tuple[int, int], tuple[int, int]]  # ((min H, max H), (min W, max W)) of an input image


def input_limits(dims, scale: int) -> Limits:
    """((min H, max H), (min W, max W)) of an input image whose output fits the encoder's ``dims``."""
    return tuple((-(-dims[a].min // scale), dims[a].max // scale) for a in ("img_height", "img_width"))


def check_size(policy: SizePolicy, height: int, width: int, scale: int, limits: Limits) -> None:
    """Refuse an input whose output, in one piece, falls outside the exported profile or above every size a
    restricted policy takes."""
    (h_lo, h_hi), (w_lo, w_hi) = limits
    out = f"a {width}x{height} input gives a {width * scale}x{height * scale} output"
    if not (h_lo <= height <= h_hi and w_lo <= width <= w_hi):
        raise InputSpecError(
            f"{out}, outside the bundle's profile: i.e. input sides in [{h_lo}, {h_hi}] (height) and [{w_lo}, "
            f"{w_hi}] (width); re-export with --max-resolution / --min-resolution or tile the image"
        )
    if policy.holding(height * scale, width * scale) is None and policy.restricted:
        raise InputSpecError(
            f"{out}, larger than every output size this bundle takes ({policy.describe()}); tile the image "
            "(tiling=None or True), or re-export with a larger size"
        )


def check_frame(height: int, width: int, limits: Limits) -> None:
    """Refuse a frame below the profile's smallest input (a frame above it is tiled, so it passes)."""
    (h_lo, _), (w_lo, _) = limits
    if height < h_lo or width < w_lo:
        raise InputSpecError(
            f"a {width}x{height} frame is smaller than this bundle's smallest input ({w_lo}x{h_lo}); "
            "re-export with a smaller --min-resolution"
        )


def roi_window(image: np.ndarray, roi, margin: int, scale: int):
    """(the ROI ``(x, y, w, h)`` with ``margin`` pixels of context around it within the frame, a function that
    crops an upscale of that window to the box at ``scale``)."""
    h, w = image.shape[:2]
    try:
        x, y, bw, bh = (int(v) for v in roi)
    except (TypeError, ValueError):
        raise InputSpecError(f"roi must be (x, y, w, h) integers, got {roi!r}") from None
    if bw < 1 or bh < 1 or x < 0 or y < 0 or x + bw > w or y + bh > h:
        raise InputSpecError(f"roi {(x, y, bw, bh)} is not a box inside the {w}x{h} frame")
    if margin < 0:
        raise ConfigError(f"roi_margin must be >= 0, got {margin}")
    x0, y0 = max(0, x - margin), max(0, y - margin)
    x1, y1 = min(w, x + bw + margin), min(h, y + bh + margin)

    def crop(result):
        box = result.image[(y - y0) * scale : (y - y0 + bh) * scale, (x - x0) * scale : (x - x0 + bw) * scale]
        result.image = np.ascontiguousarray(box)
        return result

    return image[y0:y1, x0:x1], crop


def plan_frame(policy: SizePolicy, height: int, width: int, scale: int, limits: Limits) -> FramePlan:
    """What to do with a frame: run it, pad it to the smallest size the policy takes that holds it, or tile it."""
    (_, h_hi), (_, w_hi) = limits
    if height > h_hi or width > w_hi:
        return FramePlan("tile")
    if not policy.restricted or policy.takes(height * scale, width * scale):
        return FramePlan("run")
    holder = policy.holding(height * scale, width * scale)
    if holder is None:
        return FramePlan("tile")
    return FramePlan("pad", (holder[0] // scale, holder[1] // scale))


def pad_frame(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` (``[H, W, 3]``) mirrored at the bottom and right up to ``size`` (H, W)."""
    h, w = image.shape[:2]
    if (h, w) == tuple(size):
        return image
    if size[0] < h or size[1] < w:
        raise InputSpecError(f"cannot pad a {w}x{h} frame down to {size[1]}x{size[0]}")
    return np.pad(image, ((0, size[0] - h), (0, size[1] - w), (0, 0)), mode="symmetric")


def crop_output(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The top-left ``height`` x ``width`` of an output (what a padded frame gives back)."""
    return np.ascontiguousarray(image[:height, :width])


def tile_shape(policy: SizePolicy, requested: int, factor: int, low: int, high: int) -> tuple[int, int]:
    """The latent tile (h, w) for a requested side of ``requested`` latent pixels: any side in ``[low, high]``
    for a range policy; the largest listed square not above it (else the smallest) for a listed one; the
    pinned size itself for a pinned one."""
    if policy.mode == "range":
        side = max(low, min(high, requested))
        return side, side
    if policy.mode == "pinned":
        h, w = policy.sizes[0]
        return h // factor, w // factor
    squares = sorted(h // factor for h, w in policy.sizes if h == w and h % factor == 0)
    if not squares:
        raise ConfigError("this bundle lists no square output size, which tiles need: re-export with one")
    side = max([q for q in squares if q <= requested] or squares[:1])
    return side, side


def largest_inside(sizes: Iterable[tuple[int, int]], height: int, width: int) -> tuple[int, int] | None:
    """The largest (by area) of ``sizes`` (H, W) that fits inside ``height x width``; None when none does."""
    inside = [(h, w) for h, w in sizes if h <= height and w <= width]
    return max(inside, key=lambda v: (v[0] * v[1], v)) if inside else None


def centre_crop_planes(arrays: Feeds, size: tuple[int, int]) -> Feeds:
    """Every ``[B, C, H, W]`` array cropped to ``size`` (H, W) about its centre; other arrays as they are."""
    out = {}
    for name, a in arrays.items():
        if a.ndim == 4:
            y, x = (a.shape[2] - size[0]) // 2, (a.shape[3] - size[1]) // 2
            a = np.ascontiguousarray(a[:, :, y : y + size[0], x : x + size[1]])
        out[name] = a
    return out


def fit_feeds(policy: SizePolicy, feeds: Feeds, factor: int) -> Feeds:
    """Expert feeds with their latents centre-cropped to the largest size the policy takes inside them
    (unchanged for a range policy, or when none fits): the quality gates feed recorded band inputs to both
    the reference and the bundle."""
    if not policy.restricted:
        return feeds
    fit = largest_inside([(h // factor, w // factor) for h, w in policy.sizes], *feeds["latent"].shape[2:])
    return feeds if fit is None else centre_crop_planes(feeds, fit)


def crop_image_to(policy: SizePolicy, image: np.ndarray, scale: int, limits) -> np.ndarray:
    """Centre-crop an input image so that its output runs whole: within the profile (``limits``) and, for a
    restricted policy, at the largest size it takes inside the image."""
    (_, max_h), (_, max_w) = limits
    h, w = image.shape[:2]
    if policy.restricted:
        fit = largest_inside([(oh // scale, ow // scale) for oh, ow in policy.sizes], h, w)
        max_h, max_w = fit or (max_h, max_w)
    if h <= max_h and w <= max_w:
        return image
    y, x = max(0, (h - max_h) // 2), max(0, (w - max_w) // 2)
    return np.ascontiguousarray(image[y : y + min(h, max_h), x : x + min(w, max_w)])


def split_rows(feeds: Feeds, max_batch: int | None) -> list[Feeds]:
    """The feeds cut into calls of at most ``max_batch`` rows (None: one call)."""
    batch = len(next(iter(feeds.values())))
    if max_batch is None or batch <= max_batch:
        return [feeds]
    return [{k: v[i : i + max_batch] for k, v in feeds.items()} for i in range(0, batch, max_batch)]


def join_rows(outputs: list[Feeds]) -> Feeds:
    """Per-call outputs concatenated along the batch axis, in order."""
    if len(outputs) == 1:
        return outputs[0]
    return {name: np.concatenate([o[name] for o in outputs]) for name in outputs[0]}
