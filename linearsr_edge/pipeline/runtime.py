"""`SRRuntime`: a model's components as sessions, run by the one host loop.

Lifecycle: `SRRuntime.load` reads the bundle (hashes, schema), picks the backend (``auto``: the best
installed one for the bundle's format; never the PyTorch reference), lets it prepare the bundle (TensorRT
engines, only with ``build="if-needed"``) and opens sessions through the residency policy. `upscale` /
`upscale_batch` / `stream` run the one host loop (`linearsr_edge.pipeline.process`); `close` releases every
session, then what the backend's sessions shared. The PyTorch reference is the same class over PyTorch
modules (`linearsr_edge.reference`). Which sizes run, and how the rest is padded, tiled or split, is the
size policy's (`linearsr_edge.pipeline.sizes`); verification is composed around this class
(`linearsr_edge.quality.verify`), never imported by it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import numpy as np

from linearsr_edge.bundle import Bundle
from linearsr_edge.errors import ConfigError, InputSpecError
from linearsr_edge.pipeline import memory, sizes
from linearsr_edge.pipeline.imaging import (
    DEFAULT_MAX_OUTPUT_PIXELS,
    check_output_size,
    frame_rgb,
    output_order,
    result_order,
)
from linearsr_edge.pipeline.process import SampleOptions, SRProcess, UpscaleResult
from linearsr_edge.pipeline.residency import Residency, ResidentSessions
from linearsr_edge.pipeline.reuse import TileMemo
from linearsr_edge.pipeline.session import (
    BackendOptions,
    Binding,
    Build,
    ComponentCall,
    Components,
    Feeds,
    choose_backend,
)
from linearsr_edge.specs import DECODER, ENCODER, ComponentId, ComponentSpec

log = logging.getLogger(__name__)


class SRRuntime:
    """Super-resolution from an exported bundle (or, through `linearsr_edge.reference`, PyTorch modules).

    >>> rt = SRRuntime.load("bundle/")                 # backend="auto", residency="auto"
    >>> sr = rt.upscale(image_uint8_hw3).image          # uint8 [H*s, W*s, 3]
    >>> srs = rt.upscale_batch([a, b, c])               # expert-major; equal sizes share a batch
    """

    def __init__(self, components: Components, residency: Residency = "all") -> None:
        """``components``: a loaded bundle's `Backend` (or the reference's modules); the runtime owns them."""
        self.components = components
        self.memory_budget = None  # see the property: the device profile's unless set
        self._trace: list[ComponentCall] | None = None
        self._prepared: set[frozenset] = set()  # the (session, shapes) sets `_prepare` compiled already
        self._specs = dict(components.specs)
        kinds = {name: spec.kind for name, spec in self._specs.items()}
        try:
            self._residents = ResidentSessions(components.open, kinds, components.component_bytes(), residency)
        except BaseException:  # the sessions it opened are closed already; what they shared goes too
            components.close()
            raise
        self.sizes = components.sizes()
        max_batch = self._specs["expert_0"].dims["batch"].max
        if self.sizes.max_batch is not None:
            max_batch = min(max_batch, self.sizes.max_batch)
        self.process = SRProcess(
            components.cfg, components.codec_factor, self._encode, self._decode, self._expert, components.tags,
            max_batch=max_batch, bind=self._bind_experts, prepare=self._prepare,
        )  # fmt: skip

    @classmethod
    def load(
        cls,
        path: str | Path | Bundle,
        backend: str = "auto",
        options: BackendOptions | None = None,
        residency: Residency = "auto",
        build: Build = "never",
        memory_budget: int | None = None,
    ) -> SRRuntime:
        """Read the bundle (hashes, schema) and open its sessions on ``backend`` per ``residency``.

        ``backend="auto"`` takes the best installed backend for the bundle's format and raises
        `BackendUnavailableError` (naming the pip extra) when none is installed. ``build="if-needed"`` lets the
        backend build what the bundle lacks for this device first (TensorRT engines); ``"never"`` refuses with
        the command that builds it. ``memory_budget``: bytes an upscale may take, which sizes the tiles of
        large frames (default: this device profile's budget). Verify with `linearsr_edge.runtime.SRRuntime`.
        """
        bundle = path if isinstance(path, Bundle) else Bundle.load(path)
        info = choose_backend(bundle.format, backend)
        if bundle.format not in info.formats:
            raise InputSpecError(f"backend {info.name!r} cannot run {bundle.format} bundles ({bundle.target})")
        if build not in ("never", "if-needed"):
            raise ConfigError(f"build must be 'never' or 'if-needed', got {build!r}")
        options = info.check_options(options)
        if backend == "auto":
            from linearsr_edge.machine import cpu_isa

            isa = "/".join(cpu_isa()[1]) or "unknown-ISA"
            log.info("auto: %s for %s (%s) on this %s CPU", info.name, bundle.path.name, bundle.target, isa)
        cls_backend = info.backend_class
        bundle = cls_backend.prepare(bundle, options, build)
        verification = bundle.manifest.verification
        if not verification.verified:
            reason = (verification.reason or "no reason recorded").removeprefix("not verified on this machine: ")
            finish = verification.finish_on_device
            log.warning("%s is not verified: %s%s", bundle.path, reason, f"; finish with: {finish}" if finish else "")
        runtime = cls(cls_backend(bundle, options), residency)
        runtime.memory_budget = memory_budget
        return runtime

    # -- what it runs ------------------------------------------------------------------------
    @property
    def cfg(self):
        return self.components.cfg

    @property
    def backend(self) -> str:
        return self.components.name

    @property
    def bundle(self) -> Bundle | None:
        return self.components.bundle

    @property
    def options(self) -> BackendOptions | None:
        return self.components.options

    def component_names(self) -> list[str]:
        return list(self._specs)

    def spec(self, component: str) -> ComponentSpec:
        if component not in self._specs:
            raise InputSpecError(f"no component {component!r}; has {', '.join(self._specs)}")
        return self._specs[component]

    def run_component(self, component: str, feeds: Feeds) -> Feeds:
        """Run one component on named arrays (validated against its spec), opening it if needed; a batch above
        the size policy's ``max_batch`` runs in several calls."""
        self.spec(component)
        calls = sizes.split_rows(feeds, self.sizes.max_batch) if feeds else [feeds]
        with self._swap_guard():
            return sizes.join_rows([self._call(component, lambda s, f=part: s.run(f), part) for part in calls])

    def _swap_guard(self):
        """Under a residency that swaps sessions, a swap must not close a session another thread runs."""
        return self._residents.lock if self._residents.policy.mode != "all" else contextlib.nullcontext()

    def _call(self, component: str, run: Callable, feeds: Feeds) -> Feeds:
        trace = self._trace
        t0 = time.perf_counter()
        session = self._residents.get(component)
        t1 = time.perf_counter()
        out = run(session)
        if trace is not None:
            batch = len(next(iter(feeds.values()))) if feeds else 0
            trace.append(ComponentCall(component, t0, t1 - t0, time.perf_counter() - t1, batch))
        return out

    def _prepare(self, wanted: dict[str, list[dict[str, tuple[int, ...]]]]) -> None:
        """Let the open sessions that compile per shape compile what the call will run, side by side (one thread
        per core): OpenVINO's compiles release the GIL, and a cold start of the demo's six models spent most of
        its time in them. Sessions the residency policy keeps closed open (and compile) when first run."""
        with self._swap_guard():
            resident = self._residents.open_sessions()
            jobs = [(resident[n], s) for n, shapes in wanted.items() if n in resident for s in shapes]
            jobs = [(session, s) for session, s in jobs if session.compiles]
            # a stream's frames ask for the same shapes every call: those sessions are ready (or compile on use if
            # their cache evicted a shape since), so no thread pool is started per frame
            key = frozenset((id(session), tuple(sorted(s.items()))) for session, s in jobs)
            if not jobs or key in self._prepared:
                return
            if len(self._prepared) >= 64:  # many frame sizes: forget, at worst a set is looked at again
                self._prepared.clear()
            self._prepared.add(key)

            def prepare(job) -> None:
                session, shapes = job
                try:
                    session.prepare(shapes)
                except Exception as exc:  # the run that needs it meets the same failure, typed
                    log.debug("preparing %s for %s failed: %s", session.spec.name, shapes, exc)

            workers = min(len(jobs), os.cpu_count() or 1)
            if workers == 1:
                for job in jobs:
                    prepare(job)
                return
            with ThreadPoolExecutor(workers, thread_name_prefix="linearsr-compile") as pool:
                list(pool.map(prepare, jobs))

    @contextlib.contextmanager
    def _bind_experts(self, static: Feeds) -> Iterator[Callable[[int, Feeds], np.ndarray]]:
        """The host loop's experts with ``static`` (LR latent, tags) bound once per session: ``expert(k, rest)``.
        A session reopened by the residency policy gets a new binding."""
        bindings: dict[tuple[int, int], Binding] = {}

        def expert(k: int, feeds: Feeds) -> np.ndarray:
            name = ComponentId.expert(k)

            def run(session) -> Feeds:
                key = (k, id(session))
                if key not in bindings:
                    bindings[key] = session.bind(static)
                return bindings[key].run(feeds)

            with self._swap_guard():
                return self._call(name, run, {**static, **feeds})["velocity"]

        try:
            yield expert
        finally:
            for binding in bindings.values():
                binding.close()

    @contextlib.contextmanager
    def traced(self) -> Iterator[list[ComponentCall]]:
        """Record every component call made inside the block (for profiling from one thread)."""
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
        """Close every open session, then what they shared; sessions reopen on the next call."""
        self._residents.close_all()
        self.components.close()

    def __enter__(self) -> SRRuntime:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # the three component functions the shared loop calls
    def _encode(self, image: np.ndarray) -> np.ndarray:
        return self.run_component(ENCODER, {"image": image})["latent"]

    def _decode(self, latent: np.ndarray) -> np.ndarray:
        return self.run_component(DECODER, {"latent": latent})["image"]

    def _expert(self, k: int, feeds: Feeds) -> np.ndarray:
        return self.run_component(ComponentId.expert(k), feeds)["velocity"]

    # -- sizes -------------------------------------------------------------------------------
    def input_limits(self) -> sizes.Limits:
        """((min H, max H), (min W, max W)) of an input image whose output fits the exported profile."""
        return sizes.input_limits(self.spec(ENCODER).dims, self.cfg.upscale)

    def check_size(self, height: int, width: int) -> None:
        """Refuse, before any work, an image that cannot run in one piece (see `sizes.check_size`)."""
        sizes.check_size(self.sizes, height, width, self.cfg.upscale, self.input_limits())

    def check_frame(self, height: int, width: int, max_pixels: int = DEFAULT_MAX_OUTPUT_PIXELS) -> None:
        """Refuse, before any work, a frame that no `upscale` call runs: an output above ``max_pixels``, or a side
        below the profile's smallest input (a frame above the profile is tiled, so it passes)."""
        check_output_size(height, width, self.cfg.upscale, max_pixels)
        sizes.check_frame(height, width, self.input_limits())

    def crop_to_profile(self, image: np.ndarray) -> np.ndarray:
        """Centre-crop an image so that its output runs whole (the largest size the policy takes inside it)."""
        return sizes.crop_image_to(self.sizes, image, self.cfg.upscale, self.input_limits())

    def fit_feeds(self, feeds: Feeds) -> Feeds:
        """Expert feeds cropped to a size the policy takes (see `sizes.fit_feeds`)."""
        return sizes.fit_feeds(self.sizes, feeds, self.process.codec_factor)

    def tile_size(self, tile: int | None = None) -> tuple[tuple[int, int], int]:
        """((latent tile h, w), latent overlap) for a tile of ``tile`` output pixels (see `memory.tile_size`)."""
        return memory.tile_size(self, tile)

    def tile_plan(self, height: int, width: int, tile: int | None = None) -> memory.TilePlan:
        """Tiles and tiles per call for a ``height`` x ``width`` frame within `memory_budget` (`memory.plan`)."""
        return memory.plan(self, height, width, tile)

    @property
    def memory_budget(self) -> int:
        """Bytes an upscale may take: set at load, else this device profile's budget (4 GiB on x86)."""
        return memory.budget(self._memory_budget)

    @memory_budget.setter
    def memory_budget(self, value: int | None) -> None:
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"memory_budget must be a positive number of bytes or None, got {value!r}")
        self._memory_budget = value

    # -- the job -----------------------------------------------------------------------------
    def upscale(
        self,
        image: np.ndarray,
        opts: SampleOptions | None = None,
        *,
        color: str = "rgb",
        out_color: str | None = None,
        roi: tuple[int, int, int, int] | None = None,
        roi_margin: int = 16,
        tiling: bool | None = None,
        tile: int | None = None,
        on_step: Callable[[int], None] | None = None,
        reuse: TileMemo | None = None,
    ) -> UpscaleResult:
        """A frame (``uint8 [H, W, 3]``, any layout; see `frame_rgb` for gray, BGRA, ``color="bgr"``) ->
        `UpscaleResult` with ``uint8 [H*s, W*s, 3]`` in the frame's own channel order (``color``), or in
        ``out_color`` when given: an OpenCV frame comes back BGR.

        ``roi=(x, y, w, h)``: upscale only that box (seen with ``roi_margin`` pixels of context around it,
        within the frame); the result is the box at xs. ``tiling``: None tiles a frame larger than the
        exported profile (or the memory budget) in overlapping latent tiles, False refuses it, True always
        tiles; ``tile``: the tile's output size in pixels (default: this device profile's). ``reuse``: a
        `TileMemo` kept across a stream's frames (change-aware streaming: the frame runs tiled, and a tile call
        whose inputs equal the previous frame's is answered from the memo; see `linearsr_edge.pipeline.reuse`).
        """
        result_order(color, out_color)  # a bad order is refused before any work
        rgb = frame_rgb(image, color)
        if reuse is not None:
            if roi is not None or tiling is False:
                raise ConfigError("reuse runs whole frames in tiles: it takes no roi and no tiling=False")
            reuse.start_frame(rgb)
            tiling = True
        result = self._upscale_rgb(rgb, opts, roi, roi_margin, tiling, tile, on_step, reuse)
        result.image = output_order(result.image, color, out_color)
        return result

    def _upscale_rgb(self, image, opts, roi, roi_margin, tiling, tile, on_step, memo=None) -> UpscaleResult:
        if roi is not None:
            image, crop = sizes.roi_window(image, roi, roi_margin, self.cfg.upscale)
            return crop(self._upscale_rgb(image, opts, None, roi_margin, tiling, tile, on_step))
        h, w = image.shape[:2]
        plan = sizes.plan_frame(self.sizes, h, w, self.cfg.upscale, self.input_limits())
        if tiling is None:
            tiling = plan.action == "tile" or memory.whole_over_budget(self, h, w)
        if not tiling:
            self.check_size(h, w)
            padded = image if plan.action != "pad" else sizes.pad_frame(image, plan.pad_to)
            return self._cropped(self.process.upscale(padded, opts, on_step=on_step), h, w)
        tiles = self.tile_plan(h, w, tile)
        # a restricted policy takes whole tiles only: a side shorter than a tile is padded to one
        side = tuple(-(-t * self.process.codec_factor // self.cfg.upscale) for t in tiles.tile)
        padded = sizes.pad_frame(image, (max(h, side[0]), max(w, side[1]))) if self.sizes.restricted else image
        result = self.process.upscale_tiled(
            padded, opts, tiles.tile, tiles.overlap, on_step=on_step, batch=tiles.batch, memo=memo
        )
        return self._cropped(result, h, w)

    def _cropped(self, result: UpscaleResult, height: int, width: int) -> UpscaleResult:
        s = self.cfg.upscale
        if result.image.shape[:2] != (height * s, width * s):
            result.image = sizes.crop_output(result.image, height * s, width * s)
        return result

    def upscale_batch(
        self,
        images: Sequence[np.ndarray],
        opts: SampleOptions | None = None,
        *,
        color: str = "rgb",
        out_color: str | None = None,
        seeds: Sequence[int] | None = None,
        on_step: Callable[[int], None] | None = None,
    ) -> list[UpscaleResult]:
        """Several frames in one expert-major pass (see `SRProcess.upscale_batch`); results in input order, frame
        i seeded with ``seeds[i]`` (default ``opts.seed``), in the frames' channel order (``color``) unless
        ``out_color`` says otherwise. Frames that `upscale` would tile (above the profile or the memory budget)
        are tiled one by one, each equal to its own `upscale`."""
        opts = opts or SampleOptions()
        result_order(color, out_color)
        images = [frame_rgb(img, color, f"image {i}") for i, img in enumerate(images)]
        seeds = [opts.seed] * len(images) if seeds is None else [int(v) for v in seeds]
        if len(seeds) != len(images):
            raise ConfigError(f"{len(images)} images but {len(seeds)} seeds")
        s, limits = self.cfg.upscale, self.input_limits()
        plans = [sizes.plan_frame(self.sizes, *img.shape[:2], s, limits) for img in images]
        big = [
            p.action == "tile" or memory.whole_over_budget(self, *img.shape[:2])
            for p, img in zip(plans, images, strict=True)
        ]
        whole = [i for i, b in enumerate(big) if not b]
        for i in whole:
            self.check_size(*images[i].shape[:2])  # too small: refused before any work
        padded = [sizes.pad_frame(images[i], plans[i].pad_to) if plans[i].pad_to else images[i] for i in whole]
        results: list[UpscaleResult | None] = [None] * len(images)
        done = (
            self.process.upscale_batch(padded, opts, seeds=[seeds[i] for i in whole], on_step=on_step) if whole else []
        )
        for i, result in zip(whole, done, strict=True):
            results[i] = self._cropped(result, *images[i].shape[:2])
        for i in (i for i, b in enumerate(big) if b):
            results[i] = self.upscale(images[i], replace(opts, seed=seeds[i]), on_step=on_step)
        for result in results:
            result.image = output_order(result.image, color, out_color)
        return results

    def warmup(self, size: tuple[int, int] | None = None, opts: SampleOptions | None = None) -> float:
        """One untimed upscale of a gray frame of ``size`` (H, W; default: the profile's optimum input),
        so that the first real frame runs warm; returns its seconds."""
        if size is None:
            dims, s = self.spec(ENCODER).dims, self.cfg.upscale
            size = (max(1, dims["img_height"].opt // s), max(1, dims["img_width"].opt // s))
        t0 = time.perf_counter()
        self.upscale(np.full((*size, 3), 128, np.uint8), opts)
        return time.perf_counter() - t0

    def stream(self, frames, opts: SampleOptions | None = None, **settings):
        """Upscale an iterable of frames on one worker thread; yields a `StreamResult` per frame, in input
        order. ``settings``: those of `linearsr_edge.pipeline.stream.stream` (queue, seed, warm-up, ROI ...)."""
        from linearsr_edge.pipeline.stream import stream

        return stream(self, frames, opts, **settings)

    def backend_settings(self) -> dict:
        """The backend and the settings its sessions run with (threads, device, precision hint in force)."""
        return {"backend": self.backend, **self._residents.settings()}

    def session_seconds(self) -> float:
        """Seconds spent inside sessions since load (or `reset_timers`), closed sessions included."""
        return self._residents.seconds()

    def reset_timers(self) -> None:
        self._residents.reset_timers()
