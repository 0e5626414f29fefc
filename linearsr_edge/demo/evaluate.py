"""Held-out evaluation of a model folder against bicubic: PSNR and SSIM at 4x on photos never trained on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from linearsr_edge.demo.data import HELDOUT_PHOTOS, Degradation, crop_to_multiple, downscale, load_photo, psnr
from linearsr_edge.pipeline.imaging import bicubic_resize, from_model, to_model
from linearsr_edge.pipeline.process import SampleOptions


@dataclass(frozen=True)
class EvalRow:
    photo: str
    psnr_bicubic: float
    psnr_model: float
    ssim_bicubic: float
    ssim_model: float


def ssim(a: np.ndarray, b: np.ndarray) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(a, b, channel_axis=2, data_range=255))


def heldout_pairs(scale: int, degraded: bool = False, seed: int = 0) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """(name, HR uint8, LR uint8) for each held-out photo; clean bicubic LR unless ``degraded``."""
    rng = np.random.default_rng(seed)
    out = []
    for name in HELDOUT_PHOTOS:
        hr = crop_to_multiple(load_photo(name), scale)
        lr = Degradation(scale=scale)(hr, rng) if degraded else downscale(hr, scale)
        out.append((name, hr, lr))
    return out


def evaluate(upscale_fn, scale: int, opts: SampleOptions, degraded: bool = False) -> list[EvalRow]:
    """``upscale_fn(lr_uint8, opts) -> sr_uint8``; one row per held-out photo."""
    rows = []
    for name, hr, lr in heldout_pairs(scale, degraded):
        tagged = SampleOptions(**{**opts.__dict__, "tags": HELDOUT_PHOTOS[name]}) if opts.tags == ("auto",) else opts
        sr = upscale_fn(lr, tagged)
        bic = from_model(bicubic_resize(to_model(lr), hr.shape[0], hr.shape[1]))
        rows.append(EvalRow(name, psnr(bic, hr), psnr(sr, hr), ssim(bic, hr), ssim(sr, hr)))
    return rows


def format_rows(rows: list[EvalRow]) -> str:
    lines = ["| photo | bicubic PSNR | model PSNR | gain dB | bicubic SSIM | model SSIM |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(
            f"| {r.photo} | {r.psnr_bicubic:.2f} | {r.psnr_model:.2f} | {r.psnr_model - r.psnr_bicubic:+.2f} "
            f"| {r.ssim_bicubic:.4f} | {r.ssim_model:.4f} |"
        )
    mb = np.mean([r.psnr_bicubic for r in rows])
    mm = np.mean([r.psnr_model for r in rows])
    sb = np.mean([r.ssim_bicubic for r in rows])
    sm = np.mean([r.ssim_model for r in rows])
    lines.append(f"| **mean** | {mb:.2f} | {mm:.2f} | {mm - mb:+.2f} | {sb:.4f} | {sm:.4f} |")
    return "\n".join(lines)
