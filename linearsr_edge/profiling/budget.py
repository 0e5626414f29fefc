"""What fits a latency budget: ``linearsr-profile --budget-ms`` measures bundles x steps (x tiles) and picks the
best quality whose p50 (or p95) fits."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from linearsr_edge.errors import ConfigError
from linearsr_edge.pipeline.process import SampleOptions
from linearsr_edge.profiling.measure import _call, profile_many

# how close a precision stays to FP32: the reference of a budget search is the most precise bundle
PRECISION_RANK = {"fp32": 0, "fp16": 1, "bf16": 1, "int8": 2}


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


def reference_order(precisions: Sequence[str]) -> list[int]:
    """Bundle indices, most precise first (FP32 before FP16 before INT8; ties keep the given order)."""
    return sorted(range(len(precisions)), key=lambda i: PRECISION_RANK.get(str(precisions[i]), 9))


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

    from linearsr_edge.quality.parity import psnr

    if budget_ms <= 0:
        raise ConfigError(f"the budget must be positive, got {budget_ms} ms")
    if stat not in ("p50", "p95"):
        raise ConfigError(f"the budget applies to p50 or p95, got {stat!r}")
    if not steps_grid or min(steps_grid) < 1:
        raise ConfigError(f"steps to try must be positive integers, got {list(steps_grid)}")
    ref = runtimes[reference_order([rt.bundle.precision.value for rt in runtimes])[0]]
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
        precision = rt.bundle.precision.value
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
