"""`SRRuntime`: load a bundle on a backend of its format and run the shared host loop on its sessions.

Lifecycle: `SRRuntime.load` verifies the bundle (hashes, schema), picks the backend (``auto``: the
best installed one for the bundle's format; never the PyTorch reference) and opens sessions
through the residency policy. `upscale` / `upscale_batch` run the one host loop
(`linearsr_edge.process`); `close` releases every session. The reference pipeline is the same
class over PyTorch components (`linearsr_edge.reference.reference_runtime`).
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from linearsr_edge.bundle import Bundle
from linearsr_edge.config import ModelConfig
from linearsr_edge.errors import ConfigError, InputSpecError
from linearsr_edge.imaging import DEFAULT_MAX_OUTPUT_PIXELS, check_output_size, frame_rgb
from linearsr_edge.process import SampleOptions, SRProcess, UpscaleResult
from linearsr_edge.runtimes.base import BackendOptions, Session, choose_backend
from linearsr_edge.runtimes.residency import Residency, ResidentSessions
from linearsr_edge.specs import ComponentSpec
from linearsr_edge.tags import TagVocabulary
from linearsr_edge.tiling import centre_crop_planes, largest_inside

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ComponentCall:
    """One component call recorded by `SRRuntime.traced`: when it started (``perf_counter`` seconds),
    the seconds spent opening its session (0 when resident) and inside the session, and its batch."""

    component: str
    start: float
    open_seconds: float
    seconds: float
    batch: int


@functools.lru_cache(maxsize=1)
def _device_profile():
    """This device's profile (None when no profile matches): tile size, tiles per call, memory budget."""
    from linearsr_edge.devices import detect
    from linearsr_edge.devices.profiles import builtin_profiles, match_profile

    return match_profile(detect(), builtin_profiles())


def _profile_tile() -> int:
    """This device profile's tile size in output pixels (512 when no profile matches)."""
    profile = _device_profile()
    return profile.tile_size if profile is not None else 512


def _pad(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` mirrored at the bottom and right up to ``size`` (H, W)."""
    h, w = image.shape[:2]
    if (h, w) == tuple(size):
        return image
    return np.pad(image, ((0, size[0] - h), (0, size[1] - w), (0, 0)), mode="symmetric")


class SRRuntime:
    """Super-resolution from an exported bundle (or, through `reference_runtime`, from PyTorch modules).

    >>> rt = SRRuntime.load("bundle/")                 # backend="auto", residency="all"
    >>> sr = rt.upscale(image_uint8_hw3).image          # uint8 [H*s, W*s, 3]
    >>> srs = rt.upscale_batch([a, b, c])               # expert-major; equal sizes share a batch
    """

    def __init__(
        self,
        cfg: ModelConfig,
        codec_factor: int,
        specs: dict[str, ComponentSpec],
        opener: Callable[[str], Session],
        backend: str,
        tags: TagVocabulary | None = None,
        residency: Residency = "all",
        sizes: dict[str, int] | None = None,
        bundle: Bundle | None = None,
        options: BackendOptions | None = None,
        output_sizes: Sequence[Sequence[int]] | None = None,
    ) -> None:
        """``output_sizes``: the only output sizes (H, W) the sessions take (Core ML enumerated shapes);
        other frames are padded up to one of them, and cropped back (None: any size in the profile)."""
        self.cfg, self.backend, self.bundle, self.options = cfg, backend, bundle, options
        self.output_sizes = (
            sorted({(int(h), int(w)) for h, w in output_sizes}, key=lambda v: (v[0] * v[1], v))
            if output_sizes
            else None
        )
        self.last_verification = None  # the `VerifyReport` of verify() or of load(verify=...)
        self._trace: list[ComponentCall] | None = None
        self._specs = dict(specs)
        kinds = {name: spec.kind for name, spec in self._specs.items()}
        self._sizes = dict(sizes or {})
        self._memory_budget: int | None = None
        self._residents = ResidentSessions(opener, kinds, self._sizes, residency)
        max_batch = self._specs["expert_0"].dims["batch"].max
        self.process = SRProcess(cfg, codec_factor, self._encode, self._decode, self._expert, tags, max_batch=max_batch)

    @classmethod
    def load(
        cls,
        path: str | Path | Bundle,
        backend: str = "auto",
        options: BackendOptions | None = None,
        residency: Residency = "auto",
        verify: str = "never",
        on_verify_fail: str = "raise",
        memory_budget: int | None = None,
    ) -> SRRuntime:
        """Verify the bundle (hashes, schema) and open its sessions on ``backend`` per ``residency``.

        ``backend="auto"`` takes the best installed backend for the bundle's format and raises
        `BackendUnavailableError` (naming the pip extra) when none is installed. ``verify="first"``
        runs the bundle's golden set once per new fingerprint (backend, settings, CPU) and caches a
        pass; ``"always"`` runs it on every load. A failure raises `QualityGateError`, or with
        ``on_verify_fail="warn"`` logs a warning. ``memory_budget``: bytes an upscale may take, which sizes
        the tiles of large frames (default: this device profile's budget).
        """
        bundle = path if isinstance(path, Bundle) else Bundle.load(path)
        info = choose_backend(bundle.format, backend)
        if backend == "auto":
            from linearsr_edge.machine import cpu_isa

            isa = cpu_isa()[1]
            log.info(
                "auto: %s for %s (%s) on this %s CPU",
                info.name,
                bundle.path.name,
                bundle.target,
                "/".join(isa) or "unknown-ISA",
            )
        if bundle.format not in info.formats:
            raise InputSpecError(f"backend {info.name!r} cannot run {bundle.format} bundles ({bundle.target})")
        options = info.check_options(options)
        if not bundle.verification.get("verified", True):
            reason = bundle.verification.get("reason", "no reason recorded")
            reason = reason.removeprefix("not verified on this machine: ")
            finish = bundle.verification.get("finish_on_device")
            log.warning("%s is not verified: %s%s", bundle.path, reason, f"; finish with: {finish}" if finish else "")
        names = bundle.component_names()
        runtime = cls(
            bundle.cfg,
            bundle.codec_factor,
            {n: bundle.spec(n) for n in names},
            lambda name: info.factory(bundle, name, options),
            info.name,
            tags=bundle.tags(),
            residency=residency,
            sizes={n: bundle.component_bytes(n) for n in names},
            bundle=bundle,
            options=options,
            output_sizes=bundle.manifest.get("output_sizes"),
        )
        runtime.memory_budget = memory_budget
        if verify != "never":
            from linearsr_edge.verify import verify_on_load

            try:
                runtime.last_verification = verify_on_load(runtime, verify, on_verify_fail)
            except BaseException:
                runtime.close()
                raise
        return runtime

    # -- components --------------------------------------------------------------------------
    def component_names(self) -> list[str]:
        return list(self._specs)

    def spec(self, component: str) -> ComponentSpec:
        if component not in self._specs:
            raise InputSpecError(f"no component {component!r}; has {', '.join(self._specs)}")
        return self._specs[component]

    def run_component(self, component: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one component on named arrays (validated against its spec), opening it if needed."""
        self.spec(component)
        if self._residents.policy != "all":  # a swap must not close a session another thread runs
            with self._residents.lock:
                return self._run_component(component, feeds)
        return self._run_component(component, feeds)

    def _run_component(self, component: str, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        trace = self._trace
        if trace is None:
            return self._residents.get(component).run(feeds)
        t0 = time.perf_counter()
        session = self._residents.get(component)
        t1 = time.perf_counter()
        out = session.run(feeds)
        batch = len(next(iter(feeds.values()))) if feeds else 0
        trace.append(ComponentCall(component, t0, t1 - t0, time.perf_counter() - t1, batch))
        return out

    @contextmanager
    def traced(self) -> Iterator[list[ComponentCall]]:
        """Record every component call made inside the block (for profiling from one thread):

        >>> with rt.traced() as calls:
        ...     rt.upscale(image)
        >>> sum(c.seconds for c in calls)        # time inside sessions
        """
        calls: list[ComponentCall] = []
        previous, self._trace = self._trace, calls
        try:
            yield calls
        finally:
            self._trace = previous

    def open_counts(self) -> dict[str, int]:
        """How often each component's session has been opened since load."""
        return dict(self._residents.opens)

    def open_components(self) -> list[str]:
        return self._residents.open_names()

    def close(self) -> None:
        """Close every open session; the runtime reopens them on the next call."""
        self._residents.close_all()

    def __enter__(self) -> SRRuntime:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # the three component functions the shared loop calls
    def _encode(self, image: np.ndarray) -> np.ndarray:
        return self.run_component("encoder", {"image": image})["latent"]

    def _decode(self, latent: np.ndarray) -> np.ndarray:
        return self.run_component("decoder", {"latent": latent})["image"]

    def _expert(self, k: int, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self.run_component(f"expert_{k}", feeds)["velocity"]

    # -- sizes -------------------------------------------------------------------------------
    def input_limits(self) -> tuple[tuple[int, int], tuple[int, int]]:
        """((min H, max H), (min W, max W)) of an input image whose output fits the exported profile."""
        dims, s = self.spec("encoder").dims, self.cfg.upscale
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

    def check_frame(self, height: int, width: int, max_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS) -> None:
        """Refuse, before any work, a frame that no `upscale` call runs: an output above ``max_pixels``, or a side
        below the profile's smallest input (a frame above the profile is tiled, so it passes)."""
        check_output_size(height, width, self.cfg.upscale, max_pixels)
        (h_lo, _), (w_lo, _) = self.input_limits()
        if height < h_lo or width < w_lo:
            raise InputSpecError(
                f"a {width}x{height} frame is smaller than this bundle's smallest input ({w_lo}x{h_lo}); "
                "re-export with a smaller --min-resolution"
            )

    def crop_to_profile(self, image: np.ndarray) -> np.ndarray:
        """Centre-crop an image so that its output fits the largest profile size (for a bundle that takes
        listed output sizes only, the largest listed size that fits inside the image)."""
        (_, max_h), (_, max_w) = self.input_limits()
        h, w = image.shape[:2]
        if self.output_sizes:
            s = self.cfg.upscale
            max_h, max_w = largest_inside([(oh // s, ow // s) for oh, ow in self.output_sizes], h, w) or (max_h, max_w)
        if h <= max_h and w <= max_w:
            return image
        y, x = max(0, (h - max_h) // 2), max(0, (w - max_w) // 2)
        return np.ascontiguousarray(image[y : y + min(h, max_h), x : x + min(w, max_w)])

    def fit_feeds(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Expert feeds with their latents centre-cropped to the largest listed size inside them (unchanged
        when any size runs, or none fits): the quality gates feed recorded band inputs to both sides."""
        if not self.output_sizes:
            return feeds
        f = self.process.codec_factor
        fit = largest_inside([(oh // f, ow // f) for oh, ow in self.output_sizes], *feeds["latent"].shape[2:])
        return feeds if fit is None else centre_crop_planes(feeds, fit)

    def padded_size(self, height: int, width: int) -> tuple[int, int] | None:
        """The input size (H, W) a frame is padded to for a bundle that takes listed output sizes only:
        the smallest listed size that holds it; None when the frame's own size runs."""
        if not self.output_sizes:
            return None
        s = self.cfg.upscale
        if (height * s, width * s) in self.output_sizes:
            return None
        holds = [(oh // s, ow // s) for oh, ow in self.output_sizes if oh >= height * s and ow >= width * s]
        if not holds:
            listed = ", ".join(f"{ow}x{oh}" for oh, ow in self.output_sizes)
            raise InputSpecError(
                f"a {width}x{height} input gives a {width * s}x{height * s} output, larger than every output size "
                f"this bundle takes ({listed}); tile it (tiling=True) or re-export with more sizes"
            )
        return holds[0]  # output_sizes is sorted by area

    def _padded(self, image: np.ndarray, run: Callable[[np.ndarray], UpscaleResult]) -> UpscaleResult:
        """``run`` on ``image`` padded (mirrored at the bottom and right) to `padded_size`, cropped back."""
        h, w = image.shape[:2]
        target = self.padded_size(h, w)
        if target is None:
            return run(image)
        result = run(_pad(image, target))
        s = self.cfg.upscale
        result.image = np.ascontiguousarray(result.image[: h * s, : w * s])
        return result

    # -- the job -----------------------------------------------------------------------------
    def upscale(
        self,
        image: np.ndarray,
        opts: SampleOptions | None = None,
        *,
        color: str = "rgb",
        roi: tuple[int, int, int, int] | None = None,
        roi_margin: int = 16,
        tiling: bool | None = None,
        tile: int | None = None,
        **kwargs,
    ) -> UpscaleResult:
        """A frame (``uint8 [H, W, 3]``, any layout; see `frame_rgb` for gray, BGRA, ``color="bgr"``) ->
        `UpscaleResult` with ``uint8 [H*s, W*s, 3]`` RGB.

        ``roi=(x, y, w, h)``: upscale only that box (seen with ``roi_margin`` pixels of context around it,
        within the frame); the result is the box at xs. ``tiling``: None tiles a frame larger than the
        exported profile in overlapping latent tiles, False refuses it, True always tiles; ``tile``: the
        tile's output size in pixels (default: this device profile's, within the bundle's profile).
        """
        image = frame_rgb(image, color)
        if roi is not None:
            return self._upscale_roi(image, roi, roi_margin, opts, tiling, tile, **kwargs)
        h, w = image.shape[:2]
        if tiling is None:
            tiling = self._too_large(h, w)
        if not tiling:
            self.check_size(h, w)
            return self._padded(image, lambda img: self.process.upscale(img, opts, **kwargs))
        plan = self.tile_plan(h, w, tile)
        if not self.output_sizes:
            return self.process.upscale_tiled(image, opts, plan.tile, plan.overlap, batch=plan.batch, **kwargs)
        # listed sizes: every tile must be a listed square, so a side shorter than a tile is padded to one
        side = -(-plan.tile * self.process.codec_factor // self.cfg.upscale)
        target = (max(h, side), max(w, side))
        result = self.process.upscale_tiled(
            _pad(image, target), opts, plan.tile, plan.overlap, batch=plan.batch, **kwargs
        )
        s = self.cfg.upscale
        result.image = np.ascontiguousarray(result.image[: h * s, : w * s])
        return result

    def _too_large(self, height: int, width: int) -> bool:
        """Above the profile, or (listed output sizes) above every listed size, or in one piece above the memory
        budget: tiled by default."""
        (_, h_hi), (_, w_hi) = self.input_limits()
        if height > h_hi or width > w_hi:
            return True
        s = self.cfg.upscale
        if self.output_sizes and not any(oh >= height * s and ow >= width * s for oh, ow in self.output_sizes):
            return True
        return self._over_budget(self._untiled_bytes(height, width)) and self._can_tile(height, width)

    def _over_budget(self, need: int) -> bool:
        """``need`` bytes above `memory_budget`; the device is detected only when ``need`` exceeds the smallest
        budget any profile gives (a small frame costs no detection)."""
        if self._memory_budget is None:
            from linearsr_edge.devices.profiles import builtin_profiles

            if need <= min(p.memory_budget_bytes for p in builtin_profiles()):
                return False
        return need > self.memory_budget

    # -- memory ------------------------------------------------------------------------------
    @property
    def memory_budget(self) -> int:
        """Bytes an upscale may take: set by ``SRRuntime.load(memory_budget=...)``, else this device profile's
        budget (4 GiB on x86), else half the machine's memory."""
        if self._memory_budget is not None:
            return self._memory_budget
        profile = _device_profile()
        if profile is not None:
            return profile.memory_budget_bytes
        from linearsr_edge.specs import machine_memory_bytes

        return machine_memory_bytes() // 2 or 4 << 30

    @memory_budget.setter
    def memory_budget(self, value: int | None) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"memory_budget must be a positive number of bytes or None, got {value!r}")
        self._memory_budget = value

    def _resident_arenas(self) -> int:
        """Expert sessions that may each hold an activation arena at once, under the residency policy."""
        experts = sum(1 for spec in self._specs.values() if spec.kind == "expert")
        return 1 if self._residents.policy == "one" else experts

    def _fixed_bytes(self) -> int:
        from linearsr_edge.memory import RUNTIME_BASE_BYTES

        return RUNTIME_BASE_BYTES + sum(self._sizes.values())

    def _untiled_bytes(self, height: int, width: int) -> int:
        from linearsr_edge.memory import run_bytes

        s, f, p = self.cfg.upscale, self.process.codec_factor, self.cfg.patch_size
        tokens = -(-height * s // (f * p)) * -(-width * s // (f * p))
        return run_bytes(self.cfg, f, height * width * s * s, tokens, self._resident_arenas(), self._fixed_bytes())

    def _can_tile(self, height: int, width: int) -> bool:
        """A frame tiles when its latent holds at least one of the bundle's smallest tiles."""
        dims = self.spec("expert_0").dims
        lo = max(dims["height"].min, dims["width"].min)
        s, f = self.cfg.upscale, self.process.codec_factor
        return min(height, width) * s // f >= lo

    def tile_plan(self, height: int, width: int, tile: int | None = None):
        """The `TilePlan` for a ``height`` x ``width`` frame: the tile (``tile`` output pixels, else this
        device profile's), its overlap, and the most tiles per expert call (up to the device profile's
        ``tile_batch`` and the bundle's batch) whose estimated peak fits `memory_budget`; a profile tile that
        does not fit even alone is halved. Logs a warning when nothing fits."""
        from linearsr_edge.memory import plan_tiles

        latent, _ = self.tile_size(tile)
        dims = self.spec("expert_0").dims
        profile = _device_profile()
        max_batch = min(dims["batch"].max, profile.tile_batch if profile is not None else 1)
        s = self.cfg.upscale
        shrink = tile is None and not self.output_sizes  # listed sizes: tiles are listed squares
        plan = plan_tiles(
            self.cfg,
            self.process.codec_factor,
            height * width * s * s,
            latent,
            max(dims["height"].min, dims["width"].min) if shrink else latent,
            dims["height"].multiple,
            max_batch,
            self._resident_arenas(),
            self._fixed_bytes(),
            self.memory_budget,
        )
        if not plan.fits:
            log.warning(
                "a %dx%d frame needs about %.1f GiB here even in single %d px tiles, above the memory budget of "
                "%.1f GiB: it may not fit; give a smaller frame or an ROI, or residency='one'",
                width,
                height,
                plan.estimate_bytes / 2**30,
                plan.tile * self.process.codec_factor,
                self.memory_budget / 2**30,
            )
        return plan

    def tile_size(self, tile: int | None = None) -> tuple[int, int]:
        """(latent tile, latent overlap) for an output tile of ``tile`` pixels (default: the device
        profile's tile size), kept within the expert's exported latent sizes."""
        dims = self.spec("expert_0").dims
        lo = max(dims["height"].min, dims["width"].min)
        hi = min(dims["height"].max, dims["width"].max)
        m = dims["height"].multiple
        f = self.process.codec_factor
        if tile is None:
            tile = max(_profile_tile(), lo * f)
        if isinstance(tile, bool) or not isinstance(tile, int):
            raise ConfigError(f"tile must be an integer number of output pixels, got {tile!r}")
        if tile // f < lo:
            raise ConfigError(
                f"tile {tile} px is below the smallest tile this bundle runs: give a tile of {lo * f} to "
                f"{hi * f} output pixels (its profile's smallest and largest latent sides times {f})"
            )
        latent = min(hi, tile // f) // m * m
        if self.output_sizes:  # tiles must be listed squares: the largest not above the request
            squares = sorted(oh // f for oh, ow in self.output_sizes if oh == ow and oh % f == 0)
            if not squares:
                raise ConfigError("this bundle lists no square output size, which tiles need: re-export with one")
            latent = max([q for q in squares if q <= latent] or squares[:1])
        return latent, max(m, latent // 4 // m * m)

    def _upscale_roi(self, image, roi, margin, opts, tiling, tile, **kwargs) -> UpscaleResult:
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
        result = self.upscale(image[y0:y1, x0:x1], opts, tiling=tiling, tile=tile, **kwargs)
        s = self.cfg.upscale
        box = result.image[(y - y0) * s : (y - y0 + bh) * s, (x - x0) * s : (x - x0 + bw) * s]
        result.image = np.ascontiguousarray(box)
        return result

    def warmup(self, size: tuple[int, int] | None = None, opts: SampleOptions | None = None) -> float:
        """One untimed upscale of a gray frame of ``size`` (H, W; default: the profile's optimum input),
        so that the first real frame runs warm; returns its seconds."""
        if size is None:
            dims = self.spec("encoder").dims
            s = self.cfg.upscale
            size = (max(1, dims["img_height"].opt // s), max(1, dims["img_width"].opt // s))
        frame = np.full((*size, 3), 128, np.uint8)
        t0 = time.perf_counter()
        self.upscale(frame, opts)
        return time.perf_counter() - t0

    def stream(
        self,
        frames,
        opts: SampleOptions | None = None,
        *,
        queue: int = 4,
        seed: int | None = None,
        seed_per_frame: bool = False,
        warmup: bool = True,
        **kwargs,
    ):
        """Upscale an iterable of frames on one worker thread; yields a `StreamResult` per frame, in input
        order (see `linearsr_edge.stream`)."""
        from linearsr_edge.stream import stream

        return stream(
            self, frames, opts, queue=queue, seed=seed, seed_per_frame=seed_per_frame, warmup=warmup, **kwargs
        )

    def upscale_batch(
        self,
        images: Sequence[np.ndarray],
        opts: SampleOptions | None = None,
        *,
        color: str = "rgb",
        seeds: Sequence[int] | None = None,
        **kwargs,
    ) -> list[UpscaleResult]:
        """Several frames in one expert-major pass (see `SRProcess.upscale_batch`); results in input order, frame
        i seeded with ``seeds[i]`` (default ``opts.seed``). Frames that `upscale` would tile (above the profile
        or the memory budget) are tiled one by one, each equal to its own `upscale`."""
        opts = opts or SampleOptions()
        images = [frame_rgb(img, color, f"image {i}") for i, img in enumerate(images)]
        seeds = [opts.seed] * len(images) if seeds is None else [int(v) for v in seeds]
        if len(seeds) != len(images):
            raise ConfigError(f"{len(images)} images but {len(seeds)} seeds")
        tiled = [self._too_large(*img.shape[:2]) for img in images]
        for img, big in zip(images, tiled, strict=True):
            if not big:
                self.check_size(*img.shape[:2])  # too small: refused before any work
        results: list[UpscaleResult | None] = [None] * len(images)
        whole = [i for i, big in enumerate(tiled) if not big]
        if whole:
            for i, result in zip(
                whole, self._batch([images[i] for i in whole], opts, [seeds[i] for i in whole], **kwargs), strict=True
            ):
                results[i] = result
        for i, big in enumerate(tiled):
            if big:
                results[i] = self.upscale(images[i], replace(opts, seed=seeds[i]), **kwargs)
        return results

    def _batch(self, images: list[np.ndarray], opts: SampleOptions, seeds: list[int], **kwargs) -> list[UpscaleResult]:
        """Frames that fit the profile, in one `SRProcess.upscale_batch` (padded to listed sizes where the bundle
        takes listed sizes only, and cropped back)."""
        if not self.output_sizes:
            return self.process.upscale_batch(images, opts, seeds=seeds, **kwargs)
        s, sizes = self.cfg.upscale, [img.shape[:2] for img in images]
        targets = [self.padded_size(*hw) or hw for hw in sizes]
        padded = [_pad(img, t) for img, t in zip(images, targets, strict=True)]
        results = self.process.upscale_batch(padded, opts, seeds=seeds, **kwargs)
        for result, (h, w) in zip(results, sizes, strict=True):
            result.image = np.ascontiguousarray(result.image[: h * s, : w * s])
        return results

    def verify(self, thresholds=None):
        """Run the bundle's golden set on this backend, device and options; returns a `VerifyReport`
        (rows like the export gates', a fingerprint, ``passed``). ``thresholds``: a `QualityThresholds`
        (default: the bundle's own)."""
        from linearsr_edge.verify import run_golden

        self.last_verification = run_golden(self, thresholds)
        return self.last_verification

    def backend_settings(self) -> dict:
        """The backend and the settings its sessions run with (threads, device, precision hint in force)."""
        # sessions that ran first: a backend may learn what is in force only when it compiles (OpenVINO's hint)
        for session in sorted(self._residents.sessions(), key=lambda s: s.calls == 0):
            settings = session.settings()
            if settings:
                return {"backend": self.backend, **settings}
        return {"backend": self.backend}

    # -- accounting --------------------------------------------------------------------------
    def session_seconds(self) -> float:
        """Seconds spent inside sessions since load (or `reset_timers`), closed sessions included."""
        return self._residents.closed_seconds + sum(s.seconds for s in self._residents.sessions())

    def reset_timers(self) -> None:
        self._residents.closed_seconds = 0.0
        for s in self._residents.sessions():
            s.seconds, s.calls = 0.0, 0
