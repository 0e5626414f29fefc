"""`SRRuntime`: load a bundle on any backend and run the shared sampler loop on its sessions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from linearsr_edge.bundle import Bundle
from linearsr_edge.errors import InputSpecError
from linearsr_edge.imaging import check_image
from linearsr_edge.pipeline import SampleOptions, SRProcess, UpscaleResult
from linearsr_edge.runtimes.base import Session, SessionOptions, get_backend, pick_backend


class SRRuntime:
    """Super-resolution from an exported bundle.

    >>> rt = SRRuntime.load("bundle/")              # backend="auto": best installed for the format
    >>> sr = rt.upscale(image_uint8_hw3).image       # uint8 [H*s, W*s, 3]
    """

    def __init__(self, bundle: Bundle, sessions: dict[str, Session], backend: str) -> None:
        self.bundle, self.sessions, self.backend = bundle, sessions, backend
        self.cfg = bundle.cfg
        self.process = SRProcess(self.cfg, bundle.codec_factor, self._encode, self._decode, self._expert, bundle.tags())

    @classmethod
    def load(cls, path: str | Path | Bundle, backend: str = "auto", options: SessionOptions | None = None) -> SRRuntime:
        """Verify the bundle (hashes, schema) and open one session per component."""
        bundle = path if isinstance(path, Bundle) else Bundle.load(path)
        info = pick_backend(bundle.format) if backend == "auto" else get_backend(backend)
        if bundle.format not in info.formats:
            raise InputSpecError(f"backend {info.name!r} cannot run {bundle.format} bundles ({bundle.target})")
        options = options or SessionOptions()
        sessions = {name: info.factory(bundle, name, options) for name in bundle.component_names()}
        return cls(bundle, sessions, info.name)

    # the three component functions the shared loop calls
    def _encode(self, image: np.ndarray) -> np.ndarray:
        return self.sessions["encoder"].run({"image": image})["latent"]

    def _decode(self, latent: np.ndarray) -> np.ndarray:
        return self.sessions["decoder"].run({"latent": latent})["image"]

    def _expert(self, k: int, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.sessions[f"expert_{k}"].run(feeds)["velocity"]

    def input_limits(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """((min H, max H), (min W, max W)) of an input image whose output fits the exported profile."""
        dims, s = self.bundle.spec("encoder").dims, self.cfg.upscale
        (h_lo, h_hi), (w_lo, w_hi) = ((-(-dims[a].min // s), dims[a].max // s) for a in ("img_height", "img_width"))
        return (h_lo, h_hi), (w_lo, w_hi)

    def check_size(self, height: int, width: int) -> None:
        """Refuse, before any work, an image whose output falls outside the exported profile."""
        (h_lo, h_hi), (w_lo, w_hi) = self.input_limits()
        if not (h_lo <= height <= h_hi and w_lo <= width <= w_hi):
            s = self.cfg.upscale
            raise InputSpecError(
                f"a {width}x{height} input gives a {width * s}x{height * s} output, outside the bundle's profile: "
                f"i.e. input sides in [{h_lo}, {h_hi}] (height) and [{w_lo}, {w_hi}] (width); "
                "re-export with --max-resolution / --min-resolution or tile the image"
            )

    def crop_to_profile(self, image: np.ndarray) -> np.ndarray:
        """Centre-crop an image so that its output fits the largest profile size."""
        (_, max_h), (_, max_w) = self.input_limits()
        h, w = image.shape[:2]
        if h <= max_h and w <= max_w:
            return image
        y, x = max(0, (h - max_h) // 2), max(0, (w - max_w) // 2)
        return np.ascontiguousarray(image[y : y + min(h, max_h), x : x + min(w, max_w)])

    def upscale(self, image: np.ndarray, opts: SampleOptions | None = None, **kwargs) -> UpscaleResult:
        """``uint8 [H, W, 3]`` -> `UpscaleResult` (same contract as `SRPipeline.upscale`)."""
        image = check_image(image)
        self.check_size(*image.shape[:2])
        return self.process.upscale(image, opts, **kwargs)

    def session_seconds(self) -> float:
        return sum(s.seconds for s in self.sessions.values())

    def reset_timers(self) -> None:
        for s in self.sessions.values():
            s.seconds, s.calls = 0.0, 0
