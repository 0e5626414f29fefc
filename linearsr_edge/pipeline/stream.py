"""`SRRuntime.stream`: frames in, results out, in order, through a bounded queue and one worker thread.

Concurrency model. One `SRRuntime` may be shared by any number of threads: sessions that are not
thread safe serialize their own runs (ONNX Runtime's run concurrently), the residency policy
never closes a session another thread is running, and the host loop keeps no state between calls.
What is per stream: its queue, its worker, its seed, and its frame counter. A stream is an
iterator for one consumer; run several streams (one per camera) on one runtime.

Each frame gets a `StreamResult`. A frame that cannot be upscaled (wrong dtype or shape, empty,
outside the profile and ``tiling=False``, or a backend error) carries its exception in ``error``
and ``image`` None; the stream goes on with the next frame. With a fixed seed (the default) every
frame of a stream draws the same noise, so static regions do not flicker from frame to frame.
"""

from __future__ import annotations

import queue as queues
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace

import numpy as np

from linearsr_edge.errors import ConfigError
from linearsr_edge.pipeline.process import SampleOptions, UpscaleResult

_END = object()


@dataclass
class StreamResult:
    index: int  # the frame's position in the input
    image: np.ndarray | None  # uint8 [H*s, W*s, 3] RGB, None when the frame failed
    seconds: float  # the upscale of this frame (queue waits excluded)
    error: BaseException | None = None
    result: UpscaleResult | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def stream(
    runtime,
    frames: Iterable[np.ndarray],
    opts: SampleOptions | None = None,
    *,
    queue: int = 4,
    seed: int | None = None,
    seed_per_frame: bool = False,
    warmup: bool = True,
    color: str = "rgb",
    out_color: str | None = None,
    roi: tuple[int, int, int, int] | None = None,
    roi_margin: int = 16,
    tiling: bool | None = None,
    tile: int | None = None,
    reuse: str | None = None,
    reuse_threshold: float = 0.0,
) -> Iterator[StreamResult]:
    """See `SRRuntime.stream`. ``queue``: frames read ahead of the worker (bounded: a fast camera waits
    instead of filling memory). ``seed``: the stream's noise seed (default ``opts.seed``);
    ``seed_per_frame`` adds the frame index (flickers; for comparison). ``warmup``: one untimed run at
    the first frame's size before it. ``color``, ``out_color``, ``roi``, ``roi_margin``, ``tiling``, ``tile``: as
    for `SRRuntime.upscale`, for every frame (results come back in the frames' channel order by default).
    ``reuse="tiles"``: change-aware streaming for fixed cameras (`linearsr_edge.pipeline.reuse`): frames run tiled,
    and a tile is recomputed only when its inputs changed since the previous frame (byte for byte, or within
    ``reuse_threshold`` input levels at the encoder); every result's ``timings`` count the tile calls reused."""
    if reuse not in (None, "tiles"):
        raise ConfigError(f"reuse must be None or 'tiles', got {reuse!r}")
    if reuse is not None and seed_per_frame:
        raise ConfigError("reuse='tiles' needs one noise seed for the stream: drop seed_per_frame")
    from linearsr_edge.pipeline.reuse import TileMemo

    memo = TileMemo(threshold=reuse_threshold) if reuse else None
    framing = {"color": color, "out_color": out_color, "roi": roi, "roi_margin": roi_margin, "tiling": tiling}
    framing.update(tile=tile, reuse=memo)
    if isinstance(queue, bool) or not isinstance(queue, int) or queue < 1:
        raise ConfigError(f"queue must be a positive integer, got {queue!r}")
    opts = opts or SampleOptions()
    base_seed = opts.seed if seed is None else int(seed)
    inbox: queues.Queue = queues.Queue(maxsize=queue)
    outbox: queues.Queue = queues.Queue(maxsize=queue)
    stop = threading.Event()

    def put(q: queues.Queue, item) -> bool:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return True
            except queues.Full:
                continue
        return False

    def read() -> None:
        try:
            for i, frame in enumerate(frames):
                if not put(inbox, (i, frame)):
                    return
        except BaseException as exc:  # the source itself failed (a camera dropped): end the stream with it
            put(inbox, (-1, exc))
        put(inbox, _END)

    def work() -> None:
        warmed = not warmup
        while not stop.is_set():
            try:
                item = inbox.get(timeout=0.1)
            except queues.Empty:
                continue
            if item is _END or item[0] < 0:
                put(outbox, item)
                return
            i, frame = item
            frame_opts = replace(opts, seed=base_seed + (i if seed_per_frame else 0))
            try:
                if not warmed:
                    warmed = True
                    # untimed (a bad frame fails below); without the memo, which the first frame fills for real
                    runtime.upscale(frame, frame_opts, **{**framing, "reuse": None, "tiling": tiling or bool(memo)})
                t0 = time.perf_counter()
                result = runtime.upscale(frame, frame_opts, **framing)
                out = StreamResult(i, result.image, time.perf_counter() - t0, None, result)
            except Exception as exc:  # this frame fails, the stream goes on
                out = StreamResult(i, None, 0.0, exc)
            if not put(outbox, out):
                return

    reader = threading.Thread(target=read, name="linearsr-stream-reader", daemon=True)
    worker = threading.Thread(target=work, name="linearsr-stream-worker", daemon=True)
    reader.start()
    worker.start()
    try:
        while True:
            item = outbox.get()
            if item is _END:
                return
            if isinstance(item, tuple):  # the source raised
                raise item[1]
            yield item
    finally:
        stop.set()
        worker.join(timeout=5)
        reader.join(timeout=1)
