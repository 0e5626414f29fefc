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
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from linearsr_edge.errors import ConfigError
from linearsr_edge.fileio import disk_bytes
from linearsr_edge.process import SampleOptions, UpscaleResult
from linearsr_edge.runtimes.base import describe_settings

# a pause before each timed run when configurations alternate: ONNX Runtime's worker threads spin for a
# while after a run and would steal the cores from the next configuration's run
SETTLE_SECONDS = 0.05

# how close a precision stays to FP32: the reference of a budget search is the most precise bundle
PRECISION_RANK = {"fp32": 0, "fp16": 1, "bf16": 1, "int8": 2}


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


def gate_psnr(manifest: dict) -> float | None:
    """The end-to-end PSNR against the FP32 PyTorch reference that the bundle's export gates measured."""
    for row in manifest.get("verification", {}).get("rows", []):
        if row.get("component") == "pipeline" and row.get("metric") == "psnr_db":
            value = row.get("value")
            return math.inf if value is None else float(value)  # null: identical to the reference (JSON has no inf)
    return None


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
    from linearsr_edge.imaging import bicubic_resize, from_model, to_model

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

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        (h, w), (oh, ow) = self.input_hw, self.output_hw
        lines = [
            f"{self.bundle} ({self.target}) on {describe_settings(self.settings)}",
            f"{w}x{h} -> {ow}x{oh}, batch {self.batch}, {self.steps} steps ({self.nfe} NFE); "
            f"{self.warmup} warm-up + {self.runs} timed runs",
            "",
            f"{'component':<12} {'calls/img':>9} {'p50 ms':>9} {'p95 ms':>9} {'min ms':>9} {'ms/img':>9}",
        ]
        for name, c in self.components.items():
            lines.append(
                f"{name:<12} {c['calls_per_image']:>9.2f} {c['p50_ms']:>9.2f} {c['p95_ms']:>9.2f} "
                f"{c['min_ms']:>9.2f} {c['ms_per_image']:>9.2f}"
            )
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


# -- several bundles ------------------------------------------------------------------------------
def compare_rows(reports: Sequence[ProfileReport], manifests: Sequence[dict]) -> list[dict[str, Any]]:
    """One row per bundle: target, size on disk, quality against FP32 from its export gates, p50, and the
    speed-up against the first bundle."""
    if not reports:
        return []
    base = reports[0].image["p50_ms"]
    return [
        {
            "bundle": r.bundle,
            "target": r.target,
            "backend": describe_settings(r.settings),
            "size_mib": bundle_disk_bytes(r.bundle) / 2**20,
            "psnr_vs_fp32_db": gate_psnr(m),
            "p50_ms": r.image["p50_ms"],
            "p95_ms": r.image["p95_ms"],
            "speedup": base / r.image["p50_ms"],
        }
        for r, m in zip(reports, manifests, strict=True)
    ]


def format_compare(rows: Sequence[dict[str, Any]]) -> str:
    """A Markdown table (reads in a terminal, pastes into RESULTS.md)."""
    lines = [
        "| bundle | target | backend | size MiB | PSNR vs FP32 (gates) | p50 ms | p95 ms | speed-up |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        q = r["psnr_vs_fp32_db"]
        q = "n/a" if q is None else "identical" if math.isinf(q) else f"{q:.2f} dB"
        lines.append(
            f"| {r['bundle']} | {r['target']} | {r['backend']} | {r['size_mib']:.2f} | {q} | {r['p50_ms']:.1f} "
            f"| {r['p95_ms']:.1f} | {r['speedup']:.2f}x |"
        )
    return "\n".join(lines)


# -- latency budget -------------------------------------------------------------------------------
@dataclass
class BudgetRow:
    bundle: str
    target: str
    precision: str
    steps: int
    p50_ms: float
    p95_ms: float
    quality_db: float  # PSNR against the reference configuration's output (inf: the reference itself)
    fits: bool
    tile: int | None = None  # output pixels per tile; None: untiled


@dataclass
class BudgetAnswer:
    budget_ms: float
    reference: str  # "onnx-fp32 at 4 steps"
    rows: list[BudgetRow]
    best: BudgetRow | None

    def to_dict(self) -> dict[str, Any]:
        return {
            "budget_ms": self.budget_ms,
            "reference": self.reference,
            "rows": [asdict(r) for r in self.rows],
            "best": None if self.best is None else asdict(self.best),
        }


def reference_order(manifests: Sequence[dict]) -> list[int]:
    """Bundle indices, most precise first (FP32 before FP16 before INT8; ties keep the given order)."""
    return sorted(range(len(manifests)), key=lambda i: PRECISION_RANK.get(manifests[i].get("precision", ""), 9))


def choose(rows: Sequence[BudgetRow]) -> BudgetRow | None:
    """The best quality among the rows that fit; equal quality: the faster. None when nothing fits."""
    fitting = [r for r in rows if r.fits]
    return max(fitting, key=lambda r: (r.quality_db, -r.p50_ms)) if fitting else None


def budget_search(
    runtimes: Sequence[Any],
    image: np.ndarray,
    steps_grid: Sequence[int],
    budget_ms: float,
    base: SampleOptions,
    runs: int = 5,
    warmup: int = 1,
    on_run: Callable[[], None] | None = None,
    stat: str = "p50",
    tiles: Sequence[int | None] = (None,),
) -> BudgetAnswer:
    """Measure every (bundle, steps, tile) configuration on ``image`` (interleaved, see `profile_many`) and pick
    the best quality whose p50 meets ``budget_ms``. Quality: the PSNR of the configuration's output
    against the reference configuration, the most precise bundle at the model's default steps (the plan
    its export gates check). ``runtimes``: one open `SRRuntime` per bundle, all of one model. ``stat``:
    the latency that must fit, ``"p50"`` or ``"p95"``. ``tiles``: tile sizes in output pixels to try
    (None: untiled, or tiled as `SRRuntime.upscale` decides for a frame above the profile)."""

    from linearsr_edge.parity import psnr

    if budget_ms <= 0:
        raise ConfigError(f"the budget must be positive, got {budget_ms} ms")
    if stat not in ("p50", "p95"):
        raise ConfigError(f"the budget applies to p50 or p95, got {stat!r}")
    if not steps_grid or min(steps_grid) < 1:
        raise ConfigError(f"steps to try must be positive integers, got {list(steps_grid)}")
    manifests = [rt.bundle.manifest for rt in runtimes]
    ref = runtimes[reference_order(manifests)[0]]
    default_steps = ref.cfg.default_steps
    reference = ref.upscale(image, replace(base, steps=default_steps)).image
    configs = [(rt, replace(base, steps=n), tile) for rt in runtimes for n in sorted(set(steps_grid)) for tile in tiles]
    reports = profile_many(configs, image, runs, warmup, 1, on_run)
    rows = []
    for (rt, opts, tile), report in zip(configs, reports, strict=True):
        is_ref = rt is ref and opts.steps == default_steps and tile is None
        out = _call(rt, [image], opts, [opts.seed], tile).image
        quality = math.inf if is_ref else psnr(reference, out, peak=255.0)
        p50 = report.image["p50_ms"]
        precision = rt.bundle.manifest.get("precision", "?")
        rows.append(
            BudgetRow(
                report.bundle,
                report.target,
                precision,
                opts.steps,
                p50,
                report.image["p95_ms"],
                quality,
                report.image[f"{stat}_ms"] <= budget_ms,
                tile,
            )
        )
    rows.sort(key=lambda r: (-r.quality_db, r.p50_ms))
    return BudgetAnswer(budget_ms, f"{ref.bundle.target} at {default_steps} steps", rows, choose(rows))


def format_budget(answer: BudgetAnswer) -> str:
    lines = [
        f"quality: PSNR of each configuration's output against {answer.reference} (the reference)",
        "| bundle | target | steps | tile | p50 ms | p95 ms | PSNR vs reference | within budget |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]
    for r in answer.rows:
        q = "reference" if math.isinf(r.quality_db) else f"{r.quality_db:.2f} dB"
        lines.append(
            f"| {r.bundle} | {r.target} | {r.steps} | {r.tile or '-'} | {r.p50_ms:.1f} | {r.p95_ms:.1f} | {q} | "
            f"{'yes' if r.fits else 'no'} |"
        )
    return "\n".join(lines)


# -- plot ---------------------------------------------------------------------------------------
def plot_report(report: ProfileReport, path: str | Path) -> Any:
    """A PNG: the median run's timeline (every component call, steps numbered) above the per-component
    time per image with the host loop beside it. Needs matplotlib (``pip install 'linearsr-edge[plot]'``)."""
    from linearsr_edge.errors import BackendUnavailableError

    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise BackendUnavailableError("--plot needs matplotlib: pip install 'linearsr-edge[plot]'") from None
    names = list(report.components)
    cmap = plt.get_cmap("tab10")
    colour = {n: cmap(i % 10) for i, n in enumerate(names)}
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(10, 6), gridspec_kw={"height_ratios": [0.6, 1.4]})
    step = 0
    for g in report.gantt:
        top.barh(0, g["ms"], left=g["start_ms"], color=colour[g["label"]], edgecolor="white", linewidth=0.5)
        if g["label"].startswith("expert"):
            label = f"step {step}" if g["ms"] > 0.06 * report.image["p50_ms"] else str(step)
            top.text(g["start_ms"] + g["ms"] / 2, 0, label, ha="center", va="center", fontsize=8, color="white")
            step += 1
    top.set_yticks([])
    top.set_xlabel("ms since the call started (the median run; gaps: the host loop outside sessions)")
    top.set_title(
        f"{report.target}: {report.output_hw[1]}x{report.output_hw[0]} output, {report.steps} steps, "
        f"p50 {report.image['p50_ms']:.1f} ms, {describe_settings(report.settings)}",
        fontsize=10,
    )
    handles = [plt.Rectangle((0, 0), 1, 1, color=colour[n]) for n in names]
    top.legend(handles, names, ncol=min(6, len(names)), fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.45))
    labels = [*names, "outside sessions", "opening sessions"]
    values = [report.components[n]["ms_per_image"] for n in names] + [report.outside_ms, report.open_ms]
    colours = [colour[n] for n in names] + ["0.6", "0.8"]
    y = np.arange(len(labels))
    bottom.barh(y, values, color=colours)
    for yi, v in zip(y, values, strict=True):
        bottom.text(v, yi, f" {v:.1f}", va="center", fontsize=8)
    bottom.set_yticks(y, labels, fontsize=9)
    bottom.invert_yaxis()
    bottom.set_xlabel("ms per image (sum of calls, median over runs for the host)")
    bottom.set_xlim(0, max(values) * 1.15 if max(values) > 0 else 1)
    isa = " ".join(report.machine.get("isa", [])) or "unknown ISA"
    fig.suptitle(f"{report.bundle} on {report.machine.get('cpu')} ({isa})", fontsize=9, color="0.3")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return fig
