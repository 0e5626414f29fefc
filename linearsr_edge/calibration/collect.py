"""Band-stratified calibration data.

The FP32 reference sampler runs on the user's own images; at every step the expert that owns
the step's log-SNR sees its real inputs, and only those are recorded for that expert. Images are
split into a calibration part and a held-out part (for the quality gates) by image, never by
sample, so the gates measure photos the calibrator never saw.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from linearsr_edge import interrupt
from linearsr_edge.errors import CalibrationError, ImageError
from linearsr_edge.manifest import CalibrationRecord
from linearsr_edge.options import flag
from linearsr_edge.pipeline.imaging import check_image, read_image
from linearsr_edge.pipeline.process import SampleOptions, SRProcess

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}
Feeds = dict[str, np.ndarray]


@dataclass(frozen=True)
class CalibrationOptions:
    samples_per_expert: int = flag(
        16, "--calib-samples", "inputs recorded per expert, in its band (16)", type=int, scope="full"
    )
    heldout_images: int = flag(2, "--heldout-images", "images held out for the quality gates (2)", type=int)
    heldout_samples_per_expert: int = 4  # band inputs from the held-out images, for the SQNR gate
    steps: int | None = flag(
        None, "--calib-steps", "sampling steps while recording (default: 2x the model's)", type=int
    )
    crop: int = 48  # LR crop side for calibration runs (bounds tokens); 0 = whole image
    seed: int = flag(0, "--seed", "calibration seed (0)", type=int)
    max_runs: int = 400  # sampler runs before giving up on filling a band
    pooled: bool = flag(
        False,
        "--pooled-calibration",
        "ablation: calibrate every expert on inputs pooled over all steps, not its own band",
        scope="full",
    )
    progress: bool = True

    def __post_init__(self) -> None:
        for name in ("samples_per_expert", "heldout_images", "heldout_samples_per_expert", "crop", "max_runs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise CalibrationError(f"{name} must be a non-negative integer, got {value!r}")
        if self.steps is not None and (isinstance(self.steps, bool) or self.steps < 1):
            raise CalibrationError(f"calibration steps must be a positive integer, got {self.steps!r}")


@dataclass
class CalibrationSet:
    """Per expert: recorded input feeds (batch 1); plus the held-out images for end-to-end gates."""

    samples: dict[int, list[Feeds]]
    heldout: dict[int, list[Feeds]]
    heldout_images: list[np.ndarray]
    image_names: list[str]
    options: CalibrationOptions
    bands: list[str] = field(default_factory=list)

    def digest(self) -> str:
        """A stable sha256 over every recorded array (names, shapes, dtypes, bytes) in order."""
        h = hashlib.sha256()
        for k in sorted(self.samples):
            h.update(f"expert{k}".encode())
            for feeds in [*self.samples[k], *self.heldout.get(k, [])]:
                for name in sorted(feeds):
                    a = np.ascontiguousarray(feeds[name])
                    h.update(f"{name}{a.shape}{a.dtype}".encode())
                    h.update(a.tobytes())
        for img in self.heldout_images:
            h.update(np.ascontiguousarray(img).tobytes())
        return h.hexdigest()

    def record(self) -> CalibrationRecord:
        """What the manifest records of this calibration."""
        return CalibrationRecord(
            sha256=self.digest(),
            mode="pooled" if self.options.pooled else "band",
            images=tuple(self.image_names),
            heldout_images=len(self.heldout_images),
            heldout_samples_per_expert={str(k): len(v) for k, v in sorted(self.heldout.items())},
            samples_per_expert={str(k): len(v) for k, v in sorted(self.samples.items())},
            seed=self.options.seed,
            crop=self.options.crop,
            bands=tuple(self.bands),
        )


def images_from_dir(folder: str | Path) -> Iterator[tuple[str, np.ndarray]]:
    """(name, uint8 image) for every image file in ``folder``, sorted; errors name the file."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CalibrationError(f"calibration folder not found: {folder}")
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise CalibrationError(f"calibration folder {folder} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    for p in files:
        try:
            yield p.name, read_image(p)
        except ImageError as exc:
            raise CalibrationError(f"calibration image {p} is unreadable: {exc}") from None


def _crops(image: np.ndarray, crop: int, rng: np.random.Generator) -> np.ndarray:
    h, w = image.shape[:2]
    if crop <= 0 or (h <= crop and w <= crop):
        return image
    ch, cw = min(crop, h), min(crop, w)
    y, x = int(rng.integers(h - ch + 1)), int(rng.integers(w - cw + 1))
    return np.ascontiguousarray(image[y : y + ch, x : x + cw])


def collect(
    process: SRProcess,
    images: Iterable[np.ndarray] | Iterable[tuple[str, np.ndarray]],
    opts: CalibrationOptions | None = None,
) -> CalibrationSet:
    """Run the FP32 reference ``process`` on ``images`` and record each expert's inputs in its band.

    ``images`` is any iterable the caller owns: uint8 ``[H, W, 3]`` arrays or (name, array) pairs.
    The last ``heldout_images`` images are kept aside: their band inputs (always stratified) feed
    the per-expert SQNR gate and the images themselves the end-to-end gate.
    """
    opts = opts or CalibrationOptions()
    named = [(item if isinstance(item, tuple) else (f"image_{i}", item)) for i, item in enumerate(images)]
    if not named:
        raise CalibrationError("no calibration images were given")
    for name, img in named:
        try:
            check_image(img, name)
        except ImageError as exc:
            raise CalibrationError(f"calibration image {name}: {exc}") from None
    if len(named) <= opts.heldout_images:
        raise CalibrationError(
            f"{len(named)} calibration images; need more than the {opts.heldout_images} held out for the quality gates"
        )
    split = len(named) - opts.heldout_images
    calib, held = named[:split], named[split:]
    samples = _record(process, [img for _, img in calib], opts.samples_per_expert, opts, opts.pooled, "calibrating")
    heldout = _record(
        process, [img for _, img in held], opts.heldout_samples_per_expert, opts, False, "held-out band data"
    )
    return CalibrationSet(
        samples, heldout, [img for _, img in held], [n for n, _ in named], opts, [str(b) for b in process.cfg.bands]
    )


def _record(
    process: SRProcess,
    images: list[np.ndarray],
    per_expert: int,
    opts: CalibrationOptions,
    pooled_mode: bool,
    desc: str,
) -> dict[int, list[Feeds]]:
    """Sampler runs over ``images`` (round robin, random crops, new seed each run) until every expert
    holds ``per_expert`` inputs from its own band, or, pooled, a pool of all steps' inputs is full."""
    k_experts = process.cfg.num_experts
    if per_expert == 0:  # FP16 targets record held-out data only: no sampler runs, no empty progress bar
        return {k: [] for k in range(k_experts)}
    steps = opts.steps or 2 * process.cfg.default_steps
    samples: dict[int, list[Feeds]] = {k: [] for k in range(k_experts)}
    pool: list[Feeds] = []
    rng = np.random.default_rng(opts.seed)
    inner = process.expert

    def recording(k: int, feeds: Feeds) -> np.ndarray:
        record = {n: a.copy() for n, a in feeds.items()}
        if pooled_mode:
            pool.append(record)
        elif len(samples[k]) < per_expert:
            samples[k].append(record)
        return inner(k, feeds)

    def count() -> int:
        return min(len(pool), total) if pooled_mode else sum(min(len(v), per_expert) for v in samples.values())

    total = per_expert * k_experts
    recorder = SRProcess(process.cfg, process.codec_factor, process.encode, process.decode, recording, process.tags)
    runs = 0
    with tqdm(total=total, desc=desc, unit="sample", disable=not opts.progress) as bar:
        while runs < opts.max_runs and count() < total:
            interrupt.check()
            before = count()
            image = _crops(images[runs % len(images)], opts.crop, rng)
            recorder.upscale(image, SampleOptions(steps=steps, seed=opts.seed + runs))
            bar.update(count() - before)
            runs += 1
    if pooled_mode:
        order = np.random.default_rng(opts.seed).permutation(len(pool))[:per_expert]
        return {k: [pool[i] for i in order] for k in range(k_experts)}
    short = [k for k in range(k_experts) if len(samples[k]) < per_expert]
    if short:
        bands = process.cfg.bands
        detail = "; ".join(f"expert {k} (log-SNR band {bands[k]}) got {len(samples[k])}" for k in short)
        raise CalibrationError(
            f"{desc}: too few samples after {runs} sampler runs ({steps} steps from sigma "
            f"{process.cfg.start_sigma:g}), need {per_expert} per expert: {detail}. The plan may never visit "
            "these bands: raise the calibration steps, or give more or larger images"
        )
    return samples
