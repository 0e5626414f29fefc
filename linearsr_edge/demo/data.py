"""Demo training and evaluation data: photos that ship inside scikit-image, and the degradation.

Nothing is downloaded: the photos are the PNG/JPEG files in ``skimage/data``. Held-out photos
are never used for training.
"""

from __future__ import annotations

import importlib.util
import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

from linearsr_edge.errors import ConfigError
from linearsr_edge.pipeline.imaging import read_image

# photo file -> tags. Grayscale photos are replicated to RGB.
TRAIN_PHOTOS: dict[str, tuple[str, ...]] = {
    "motorcycle_left.png": ("vehicle", "indoor"),
    "motorcycle_right.png": ("vehicle", "indoor"),
    "rocket.jpg": ("vehicle", "outdoor"),
    "hubble_deep_field.jpg": ("space",),
    "ihc.png": ("microscopy",),
    "retina.jpg": ("medical",),
    "color.png": ("texture",),
    "camera.png": ("portrait", "outdoor"),
    "brick.png": ("texture",),
    "grass.png": ("texture", "outdoor"),
    "gravel.png": ("texture", "outdoor"),
    "moon.png": ("space",),
    "coins.png": ("texture",),
    "page.png": ("document",),
    "text.png": ("document", "outdoor"),
    "cell.png": ("microscopy",),
}
HELDOUT_PHOTOS: dict[str, tuple[str, ...]] = {
    "astronaut.png": ("portrait", "space"),
    "coffee.png": ("indoor",),
    "chelsea.png": ("indoor",),
}
# Only tags that some training photo carries: an embedding never trained is noise, not a condition.
TAG_NAMES = ("portrait", "vehicle", "space", "microscopy", "medical", "texture", "document", "outdoor", "indoor")


def skimage_data_dir() -> Path:
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("scikit-image is not installed: pip install 'linearsr-edge[dev]' (it ships the photos)")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


def load_photo(name: str) -> np.ndarray:
    return read_image(skimage_data_dir() / name)


@dataclass(frozen=True)
class Degradation:
    """Real-world-style 4x degradation: optional blur, bicubic downscale, optional noise and JPEG."""

    scale: int = 4
    blur_prob: float = 0.15
    blur_radius: tuple[float, float] = (0.3, 0.8)
    noise_prob: float = 0.15
    noise_sigma: tuple[float, float] = (0.5, 2.0)  # in 8-bit levels
    jpeg_prob: float = 0.15
    jpeg_quality: tuple[int, int] = (75, 95)

    def __call__(self, hr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """``uint8 [H, W, 3]`` (H, W multiples of scale) -> LR ``uint8 [H/s, W/s, 3]``."""
        img = Image.fromarray(hr)
        if rng.random() < self.blur_prob:
            img = img.filter(ImageFilter.GaussianBlur(float(rng.uniform(*self.blur_radius))))
        lr = downscale(np.asarray(img), self.scale)
        if rng.random() < self.noise_prob:
            noise = rng.normal(0.0, rng.uniform(*self.noise_sigma), lr.shape)
            lr = np.clip(np.round(lr + noise), 0, 255).astype(np.uint8)
        if rng.random() < self.jpeg_prob:
            buf = io.BytesIO()
            Image.fromarray(lr).save(buf, format="JPEG", quality=int(rng.integers(*self.jpeg_quality)))
            lr = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB"))
        return lr


def downscale(hr: np.ndarray, scale: int) -> np.ndarray:
    """Clean bicubic (antialiased) downscale by ``scale``."""
    h, w = hr.shape[:2]
    return np.asarray(Image.fromarray(hr).resize((w // scale, h // scale), Image.BICUBIC))


def crop_to_multiple(img: np.ndarray, multiple: int) -> np.ndarray:
    h, w = img.shape[:2]
    return img[: h - h % multiple, : w - w % multiple]


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """PSNR in dB between two uint8 images (peak 255)."""
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10.0 * np.log10(255.0**2 / mse)


SAMPLE_PHOTOS = ("astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "rocket.jpg", "camera.png")


def write_samples(folder: Path, scale: int = 4, side: int = 512) -> list[Path]:
    """Low-resolution sample photos (clean bicubic / scale of a centre crop <= side) for the demo,
    calibration and the quality gates. Returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for name in SAMPLE_PHOTOS:
        hr = load_photo(name)
        h, w = hr.shape[:2]
        ch, cw = min(h, side), min(w, side)
        y, x = (h - ch) // 2, (w - cw) // 2
        lr = downscale(crop_to_multiple(hr[y : y + ch, x : x + cw], scale), scale)
        path = folder / f"{Path(name).stem}_lr.png"
        Image.fromarray(lr).save(path)
        out.append(path)
    return out
