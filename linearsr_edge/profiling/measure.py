"""On-device latency profiling of bundles: what ``linearsr-profile`` measures and prints.

`profile` times whole upscales on one `SRRuntime` after warm-up runs, with every component call
traced (`SRRuntime.traced`): per component and expert p50/p95/min, a per-step timeline, the
whole-image latency and throughput, the time outside sessions (the host loop: resizing, noise,
the solver's updates, validation), peak RSS and the backend settings in force. `compare_rows`
puts several bundles side by side; `budget_search` measures configurations (bundle x steps) and
picks the best quality whose p50 meets a latency budget. Pure NumPy; the plot needs matplotlib.
"""

from __future__ import annotations

import json
import math
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from linearsr_edge.errors import ConfigError
from linearsr_edge.fileio import disk_bytes
from linearsr_edge.pipeline.process import SampleOptions, UpscaleResult
from linearsr_edge.pipeline.session import describe_settings

# a pause before each timed run when configurations alternate: ONNX Runtime's worker threads spin for a
# while after a run and would steal the cores from the next configuration's run
SETTLE_SECONDS = 0.05


def latency(seconds: Sequence[float]) -> dict[str, float]:
    """``{"p50_ms", "p95_ms", "min_ms"}`` of durations in seconds."""
    if not seconds:
        return {"p50_ms": math.nan, "p95_ms": math.nan, "min_ms": math.nan}
    ms = np.asarray(seconds, np.float64) * 1e3
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "min_ms": float(ms.min()),
    }


def peak_rss_bytes() -> int | None:
    """This process's peak resident set size so far (None where `resource` is missing: Windows)."""
    try:
        import resource
    except ImportError:
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)  # macOS: bytes; Linux: KiB


def bundle_disk_bytes(path: str | Path) -> int:
    """Bytes of every file in a bundle folder."""
    return disk_bytes(Path(path))


def to_json(data: Any) -> str:
    """JSON with every non-finite float as null (JSON has no inf; an infinite PSNR means identical)."""

    def clean(v):
        if isinstance(v, float) and not math.isfinite(v):
            return None
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(data), indent=2, default=str)


def fit_frame(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """``image`` (uint8 [H, W, 3]) resized with the model's bicubic to exactly ``height`` x ``width``."""
    from linearsr_edge.pipeline.imaging import bicubic_resize, from_model, to_model

    if image.shape[:2] == (height, width):
        return np.ascontiguousarray(image)
    return from_model(bicubic_resize(to_model(image), height, width))


@dataclass
class _Run:
    start: float
    seconds: float
    calls: list  # ComponentCall
    step_ends: list[float]
    result: UpscaleResult


@dataclass
class ProfileReport:
    """What `profile` measured; `to_dict` is the ``--json`` form, `table` the terminal one."""

    bundle: str
    target: str
    settings: dict[str, Any]  # backend and settings in force
    machine: dict[str, Any]
    input_hw: tuple[int, int]
    output_hw: tuple[int, int]
    batch: int
    steps: int
    nfe: int
    warmup: int
    runs: int
    image: dict[str, float]  # whole upscale call, ms
    throughput_ips: float  # images per second at the p50
    components: dict[str, dict[str, float]]  # name -> p50/p95/min ms per call, calls per image, ms per image
    timeline: list[dict[str, Any]]  # per step: step, expert, sigma, p50/p95/min ms
    session_ms: float  # p50 over runs: inside sessions
    open_ms: float  # p50 over runs: opening sessions (residency swaps)
    outside_ms: float  # p50 over runs: the host loop outside sessions
    peak_rss_bytes: int | None
    gantt: list[dict[str, Any]] = field(default_factory=list)  # the median run's calls: label, start_ms, ms
    # FLOPs and achieved GFLOP/s per component against this machine's SGEMM rate (`add_roofline`); empty if not run
    roofline: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def _limit_line(self) -> str:
        r = self.roofline
        rows = f"{r['cond_len']} tag row" + ("s" if r["cond_len"] != 1 else "")
        int8 = (
            f"; the experts' limit: INT8 {r['int8_gops']:.1f} GOP/s ({r['int8_by']}'s uint8 x int8 product)"
            if r.get("int8_gops")
            else ""
        )
        return (
            f"limit: SGEMM {r['sgemm_gflops']:.1f} GFLOP/s with {r['threads']} threads (float32, {r['sgemm_by']}'s, "
            f"the best measured on this machine){int8}; experts at a {r['latent_hw'][1]}x{r['latent_hw'][0]} latent, "
            f"{rows}"
        )

    def table(self) -> str:
        (h, w), (oh, ow) = self.input_hw, self.output_hw
        lines = [
            f"{self.bundle} ({self.target}) on {describe_settings(self.settings)}",
            f"{w}x{h} -> {ow}x{oh}, batch {self.batch}, {self.steps} steps ({self.nfe} NFE); "
            f"{self.warmup} warm-up + {self.runs} timed runs",
            "",
            f"{'component':<12} {'calls/img':>9} {'p50 ms':>9} {'p95 ms':>9} {'min ms':>9} {'ms/img':>9}",
        ]
        roof = self.roofline.get("components", {})
        if roof:
            lines[-1] += f" {'GFLOP/call':>10} {'GFLOP/s':>8} {'of limit':>8}"
        for name, c in self.components.items():
            line = (
                f"{name:<12} {c['calls_per_image']:>9.2f} {c['p50_ms']:>9.2f} {c['p95_ms']:>9.2f} "
                f"{c['min_ms']:>9.2f} {c['ms_per_image']:>9.2f}"
            )
            r = roof.get(name)
            if r is not None:
                line += "".join(
                    f" {'n/a':>{width}}" if r[key] is None else f" {r[key] * scale:>{width}.{digits}f}"
                    for key, width, digits, scale in (("gflop", 10, 3, 1), ("gflops", 8, 1, 1), ("share", 7, 1, 100))
                ) + ("%" if r["share"] is not None else " ")
            lines.append(line)
        lines += ["", f"{'step':>4} {'expert':>6} {'sigma':>7} {'p50 ms':>9} {'p95 ms':>9} {'min ms':>9}"]
        for s in self.timeline:
            lines.append(
                f"{s['step']:>4} {s['expert']:>6} {s['sigma']:>7.3f} {s['p50_ms']:>9.2f} {s['p95_ms']:>9.2f} "
                f"{s['min_ms']:>9.2f}"
            )
        img = self.image
        rss = "n/a" if self.peak_rss_bytes is None else f"{self.peak_rss_bytes / 2**20:.0f} MiB"
        whole = img["p50_ms"] or math.nan
        lines += [
            "",
            f"whole image: p50 {img['p50_ms']:.2f} ms, p95 {img['p95_ms']:.2f} ms, min {img['min_ms']:.2f} ms; "
            f"throughput {self.throughput_ips:.2f} images/s",
            f"inside sessions {self.session_ms:.2f} ms, opening sessions {self.open_ms:.2f} ms, "
            f"outside sessions {self.outside_ms:.2f} ms ({100 * self.outside_ms / whole:.1f}% of the p50)",
            f"peak RSS {rss}",
            *([self._limit_line()] if self.roofline else []),
            f"machine: {self.machine.get('cpu')}, {self.machine.get('cores')} cores; "
            f"ISA: {' '.join(self.machine.get('isa', [])) or 'unknown'}",
        ]
        return "\n".join(lines)


def _call(runtime, images, opts: SampleOptions, seeds, tile: int | None, on_step=None) -> UpscaleResult:
    """One batch call, or with ``tile`` (output pixels) one tiled upscale of the first image."""
    if tile is None:
        return runtime.upscale_batch(images, opts, seeds=seeds, on_step=on_step)[0]
    return runtime.upscale(images[0], replace(opts, seed=seeds[0]), tiling=True, tile=tile, on_step=on_step)


def _timed_run(runtime, images: list[np.ndarray], opts: SampleOptions, seeds: list[int], tile=None) -> _Run:
    step_ends: list[float] = []
    with runtime.traced() as calls:
        t0 = time.perf_counter()
        mark = lambda i: step_ends.append(time.perf_counter())  # noqa: E731
        result = _call(runtime, images, opts, seeds, tile, mark)
        seconds = time.perf_counter() - t0
    return _Run(t0, seconds, calls, step_ends, result)


def profile(
    runtime,
    image: np.ndarray,
    opts: SampleOptions | None = None,
    runs: int = 10,
    warmup: int = 2,
    batch: int = 1,
    on_run: Callable[[], None] | None = None,
) -> ProfileReport:
    """Time ``runs`` upscales of ``batch`` copies of ``image`` (seeds ``opts.seed + i``) after ``warmup``
    untimed ones; ``on_run`` is called after every run (a progress bar)."""
    return profile_many([(runtime, opts or SampleOptions())], image, runs, warmup, batch, on_run)[0]


def profile_many(
    configs: Sequence[tuple],
    image: np.ndarray,
    runs: int = 10,
    warmup: int = 2,
    batch: int = 1,
    on_run: Callable[[], None] | None = None,
) -> list[ProfileReport]:
    """`profile` for several (runtime, options) configurations, interleaved: every configuration's warm-up,
    then round after round one timed run of each, so that drift in a shared machine's load falls on all
    of them alike instead of on whichever ran last. A configuration is ``(runtime, opts)`` or
    ``(runtime, opts, tile)``: a tiled upscale with tiles of ``tile`` output pixels (batch 1)."""
    from linearsr_edge.machine import machine_summary

    if runs < 1 or warmup < 0 or batch < 1:
        raise ConfigError(f"need runs >= 1, warmup >= 0 and batch >= 1; got {runs}, {warmup}, {batch}")
    images = [image] * batch
    configs = [(*c, None) if len(c) == 2 else tuple(c) for c in configs]
    seeds = [[opts.seed + i for i in range(batch)] for _, opts, _ in configs]
    for (runtime, opts, tile), s in zip(configs, seeds, strict=True):
        for _ in range(warmup):
            _call(runtime, images, opts, s, tile)
            if on_run is not None:
                on_run()
    timed: list[list[_Run]] = [[] for _ in configs]
    for _ in range(runs):
        for (runtime, opts, tile), s, done in zip(configs, seeds, timed, strict=True):
            if len(configs) > 1:
                time.sleep(SETTLE_SECONDS)
            done.append(_timed_run(runtime, images, opts, s, tile))
            if on_run is not None:
                on_run()
    machine = machine_summary()
    return [
        _report(runtime, done, image.shape[:2], batch, warmup, machine)
        for (runtime, _, _), done in zip(configs, timed, strict=True)
    ]


def add_roofline(report: ProfileReport, runtime, opts: SampleOptions | None = None, sgemm_gflops: float | None = None):
    """Fill ``report.roofline``: each component's FLOPs per call at the profiled size (`roofline.component_flops`),
    the GFLOP/s its p50 achieves, and that as a share of this machine's SGEMM rate with the same threads, and of
    its own limit: the INT8 product rate for the experts of an INT8 bundle, else the SGEMM rate."""
    from linearsr_edge.precision import Precision
    from linearsr_edge.profiling.roofline import component_flops, int8_rate, sgemm_rate

    opts = opts or SampleOptions()
    threads = report.settings.get("threads") or os.cpu_count() or 1
    rate, by = (sgemm_gflops, "given") if sgemm_gflops is not None else sgemm_rate(threads)
    int8 = None
    if runtime.bundle is not None and runtime.bundle.precision == Precision.INT8 and sgemm_gflops is None:
        int8 = int8_rate(threads)
    factor, s = runtime.process.codec_factor, runtime.cfg.upscale
    latent = (report.input_hw[0] * s // factor, report.input_hw[1] * s // factor)
    cond_len = int(runtime.process.cond(opts.tags).shape[0])
    codec = runtime.bundle.manifest.codec.get("type", "") if runtime.bundle is not None else ""
    components = {}
    for name, c in report.components.items():
        kind = runtime.spec(name).kind
        flops = component_flops(runtime.cfg, kind, latent, cond_len, codec, report.batch)
        gflops = None if not flops or c["p50_ms"] <= 0 else flops / (c["p50_ms"] * 1e-3) / 1e9  # 0: a reshape
        limit = "int8" if int8 is not None and kind == "expert" else "sgemm"
        components[name] = {
            "gflop": None if flops is None else flops / 1e9,
            "gflops": gflops,
            "limit": limit,
            "share": None if gflops is None else gflops / (int8[0] if limit == "int8" else rate),
            "share_of_sgemm": None if gflops is None else gflops / rate,
        }
    report.roofline = {
        "sgemm_gflops": rate,
        "sgemm_by": by,
        "int8_gops": None if int8 is None else int8[0],
        "int8_by": None if int8 is None else int8[1],
        "threads": threads,
        "latent_hw": list(latent),
        "cond_len": cond_len,
        "components": components,
    }
    return report


def _report(runtime, timed: list[_Run], input_hw, batch: int, warmup: int, machine: dict) -> ProfileReport:
    plan = timed[0].result.plan
    runs = len(timed)
    by_component: dict[str, list[float]] = {}
    for run in timed:
        for c in run.calls:
            by_component.setdefault(c.component, []).append(c.seconds)
    order = sorted(by_component, key=lambda n: (n != "encoder", n == "decoder", n))
    components = {}
    for name in order:
        stats = latency(by_component[name])
        images = runs * batch
        calls, total = len(by_component[name]), sum(by_component[name])
        components[name] = {**stats, "calls_per_image": calls / images, "ms_per_image": total * 1e3 / images}
    steps: list[list[float]] = [[] for _ in range(len(plan))]
    for run in timed:
        encoded = [c.start + c.open_seconds + c.seconds for c in run.calls if c.component == "encoder"]
        previous = max(encoded) if encoded else run.start
        for i, end in enumerate(run.step_ends):
            steps[i].append(end - previous)
            previous = end
    timeline = [
        {"step": i, "expert": int(plan.expert[i]), "sigma": float(plan.sigma[i]), **latency(steps[i])}
        for i in range(len(plan))
    ]
    whole = [r.seconds for r in timed]
    inside = [sum(c.seconds for c in r.calls) for r in timed]
    opening = [sum(c.open_seconds for c in r.calls) for r in timed]
    outside = [w - i - o for w, i, o in zip(whole, inside, opening, strict=True)]
    median_run = sorted(timed, key=lambda r: r.seconds)[runs // 2]
    gantt = [
        {"label": c.component, "start_ms": (c.start - median_run.start) * 1e3, "ms": (c.open_seconds + c.seconds) * 1e3}
        for c in median_run.calls
    ]
    image = latency(whole)
    s = runtime.cfg.upscale
    bundle = runtime.bundle
    return ProfileReport(
        bundle=str(bundle.path) if bundle is not None else "(reference)",
        target=bundle.target if bundle is not None else "pytorch",
        settings=runtime.backend_settings(),
        machine=machine,
        input_hw=tuple(input_hw),
        output_hw=(input_hw[0] * s, input_hw[1] * s),
        batch=batch,
        steps=len(plan),
        nfe=plan.nfe,
        warmup=warmup,
        runs=runs,
        image=image,
        throughput_ips=batch * 1e3 / image["p50_ms"],
        components=components,
        timeline=timeline,
        session_ms=float(np.median(inside)) * 1e3,
        open_ms=float(np.median(opening)) * 1e3,
        outside_ms=float(np.median(outside)) * 1e3,
        peak_rss_bytes=peak_rss_bytes(),
        gantt=gantt,
    )
