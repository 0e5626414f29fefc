"""Core ML shape plans, pure Python: which input shapes a component's ML program accepts.

Shared by the exporter (which declares them to coremltools) and the ``coreml`` backend (which
checks feeds against them and runs batches row by row); built from the same `ComponentSpec`
numbers as TensorRT's optimization profiles. No coremltools or PyTorch import here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from linearsr_edge.errors import ExportError, InputSpecError
from linearsr_edge.pipeline.sizes import centre_crop_planes, largest_inside
from linearsr_edge.serial import from_data, to_data
from linearsr_edge.specs import ComponentSpec

# deployment targets by name, with Core ML's spec generation: macOS N and iOS M share one
DEPLOYMENT_TARGETS = {
    "macOS13": 7,
    "iOS16": 7,
    "macOS14": 8,
    "iOS17": 8,
    "macOS15": 9,
    "iOS18": 9,
    "macOS26": 10,
    "iOS26": 10,
}
# below this generation an ML program may enumerate the shapes of one input only
MULTI_INPUT_ENUMERATION = 9
SHAPE_MODES = ("enumerated", "range")


class ShapeOptions(Protocol):
    """What a plan reads of the Core ML target options (`linearsr_edge.exporters.CoreMLOptions`)."""

    deployment_target: str
    shapes: str  # "enumerated" or "range"
    sizes: tuple[tuple[int, int], ...]  # output sizes (H, W) to enumerate; empty: the defaults


# common camera frame sizes (output pixels, H x W) offered as enumerated shapes when they fit the profile
CAMERA_SIZES = ((360, 640), (480, 640), (540, 960), (720, 1280), (768, 1024), (1080, 1920), (1440, 2560))


@dataclass(frozen=True)
class ShapePlan:
    """The input shapes one component accepts: an enumerated list of input-shape sets, or ranges."""

    mode: str  # "enumerated" or "range"
    sets: tuple[dict[str, tuple[int, ...]], ...] = ()  # enumerated: one {input: shape} per accepted set
    cond_len: int | None = None  # enumerated experts: the one cond length the model takes (see `fit_cond`)
    ranges: dict[str, tuple[int, int]] = field(default_factory=dict)  # range: symbol -> (min, max)
    note: str = ""  # why the mode differs from the one asked for

    def to_dict(self) -> dict[str, Any]:
        return to_data(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ShapePlan:
        return from_data(cls, data, "shapes")

    def varying_inputs(self) -> list[str]:
        """Inputs whose shape differs between the enumerated sets."""
        if not self.sets:
            return []
        return [n for n in self.sets[0] if len({s[n] for s in self.sets}) > 1]


@dataclass(frozen=True)
class LinearAttentionOp:
    """One op of the linear attention in a saved program, and the dtype it computes in."""

    op: str
    name: str
    dtype: str


@dataclass(frozen=True)
class CoreMLReport:
    """What one saved package holds: op counts, the linear attention's dtypes, weight bytes, the accepted shapes."""

    ops: int
    op_types: dict[str, int]
    linear_attention: tuple[LinearAttentionOp, ...]
    weight_bytes: int
    shapes: ShapePlan
    spec_version: int


@dataclass(frozen=True)
class CoreMLSection:
    """The manifest's ``families.coreml``: the deployment target, the converter's version, each package's report."""

    deployment_target: str
    coremltools: str
    components: dict[str, CoreMLReport]


def output_sizes(spec: ComponentSpec, factor: int, sizes: Sequence[tuple[int, int]] = ()) -> list[tuple[int, int]]:
    """Output image sizes (H, W) to enumerate: ``sizes`` if given (each must fit the profile), else the
    profile's min/opt/max and the `CAMERA_SIZES` between them, smallest first."""
    h, w = spec.dims["height"], spec.dims["width"]

    def fits(size: tuple[int, int]) -> bool:
        return all(v % factor == 0 and d.contains(v // factor) for v, d in zip(size, (h, w), strict=True))

    if sizes:
        bad = [s for s in sizes if not fits(s)]
        if bad:
            lo, hi = (h.min * factor, w.min * factor), (h.max * factor, w.max * factor)
            raise ExportError(
                f"--coreml-sizes {', '.join(f'{s[1]}x{s[0]}' for s in bad)} outside the export profile: sizes must lie "
                f"in [{lo[1]}x{lo[0]}, {hi[1]}x{hi[0]}] and be multiples of {h.multiple * factor} px"
            )
        chosen = list(sizes)
    else:
        corners = [(h.min * factor, w.min * factor), (h.opt * factor, w.opt * factor), (h.max * factor, w.max * factor)]
        chosen = corners + [s for s in CAMERA_SIZES if fits(s)]
    return sorted(set(chosen), key=lambda s: (s[0] * s[1], s))


def shape_plan(spec: ComponentSpec, options: ShapeOptions, factor: int) -> ShapePlan:
    """The shapes ``spec`` is converted with (see `CoreMLOptions`)."""
    ranges = {d: (r.min, r.max) for d, r in spec.dims.items()}
    if options.shapes == "range":
        return ShapePlan("range", ranges=ranges)
    length = enumerated_cond_len(spec.dims["cond_len"].max) if "cond_len" in spec.dims else None
    sets = []
    for oh, ow in output_sizes(spec, factor, options.sizes):
        fixed = {"batch": 1, "height": oh // factor, "width": ow // factor, "img_height": oh, "img_width": ow}
        sets.append(spec.shapes("opt", **fixed, **({} if length is None else {"cond_len": length})))
    plan = ShapePlan("enumerated", tuple(sets), cond_len=length)
    if len(plan.varying_inputs()) > 1 and DEPLOYMENT_TARGETS[options.deployment_target] < MULTI_INPUT_ENUMERATION:
        return ShapePlan(
            "range",
            ranges=ranges,
            note=(
                f"{spec.kind} components have {len(plan.varying_inputs())} inputs of varying shape; Core ML "
                f"enumerates the shapes of one input only below macOS 15 / iOS 18 ({options.deployment_target} was "
                "asked): ranges instead, which the Neural Engine does not run"
            ),
        )
    return plan


def enumerated_cond_len(max_len: int, most_tags: int = 3) -> int:
    """The cond length an enumerated expert is converted with: lcm(1, ..., k) for the largest k <= most_tags + 1
    that fits ``max_len``, so that every cond of 1..k rows tiles to it exactly (`fit_cond`).

    The cond length is fixed rather than enumerated: Core ML pairs the i-th enumerated shape of each
    input, and coremltools 9 reorders each input's list on its own (it moves the default shape to the
    front), which would pair latent sizes with the wrong cond lengths.
    """
    best = 1
    for k in range(1, most_tags + 2):
        value = math.lcm(*range(1, k + 1))
        if value <= max_len:
            best = value
    return best


def fit_cond(feeds: dict[str, np.ndarray], plan: ShapePlan, name: str) -> dict[str, np.ndarray]:
    """``cond`` tiled to the plan's fixed length. Exact: the tag tokens feed only a softmax cross-attention
    (each after per-token layers), and a softmax over tokens each repeated r times gives the same weights
    summed per token, so the output is unchanged. `InputSpecError` when the length does not divide."""
    if plan.cond_len is None or "cond" not in feeds:
        return feeds
    length = feeds["cond"].shape[1]
    if length == plan.cond_len:
        return feeds
    if plan.cond_len % length:
        takes = [n for n in range(1, plan.cond_len + 1) if plan.cond_len % n == 0]
        raise InputSpecError(
            f"{name}: this Core ML model takes {', '.join(map(str, takes))} cond rows (tags plus the null tag), got "
            f"{length}; use fewer tags, or export with --coreml-shapes range"
        )
    return {**feeds, "cond": np.tile(feeds["cond"], (1, plan.cond_len // length, 1))}


def check_plan_input(plan: ShapePlan, spec: ComponentSpec, feeds: dict[str, np.ndarray]) -> None:
    """`InputSpecError` unless ``feeds`` (one row of an enumerated plan) is one of its accepted sets."""
    shapes = {n: tuple(feeds[n].shape) for n in spec.input_names}
    if any(shapes == s for s in plan.sets):
        return
    main = spec.inputs[0].name
    offered = sorted({s[main][2:] for s in plan.sets})
    extra = f"; cond length {plan.cond_len}" if plan.cond_len is not None else ""
    raise InputSpecError(
        f"{spec.name}: input shapes {shapes} are not among the shapes this Core ML model enumerates: {main} "
        f"{', '.join(f'{h}x{w}' for h, w in offered)} (H x W){extra}; export with --coreml-sizes to add sizes, "
        "or --coreml-shapes range"
    )


def plan_rows(feeds: dict[str, np.ndarray], spec: ComponentSpec, plan: ShapePlan) -> list[dict[str, np.ndarray]]:
    """The feeds as the model takes them (FP32, contiguous), each checked against the plan: enumerated
    plans take batch 1, so a batch becomes one feed dict per row, with ``cond`` tiled (`fit_cond`)."""
    feeds = {k: np.ascontiguousarray(v, np.float32) for k, v in feeds.items()}
    batch = len(feeds[spec.input_names[0]])
    if plan.mode != "enumerated":
        return [feeds]
    rows = [feeds] if batch == 1 else [{k: v[i : i + 1] for k, v in feeds.items()} for i in range(batch)]
    rows = [fit_cond(row, plan, spec.name) for row in rows]
    for row in rows:
        check_plan_input(plan, spec, row)
    return rows


def calibration_rows(feeds: dict[str, np.ndarray], spec: ComponentSpec, plan: ShapePlan) -> list[dict[str, np.ndarray]]:
    """Recorded expert inputs as the model takes them, for activation calibration: each row's latents
    centre-cropped to the largest enumerated size that fits inside them (calibration crops rarely have an
    enumerated size; a crop keeps the activation statistics). Rows smaller than every size are dropped."""
    if plan.mode != "enumerated":
        return plan_rows(feeds, spec, plan)
    main = spec.inputs[0].name
    fit = largest_inside({s[main][2:] for s in plan.sets}, *feeds[main].shape[2:])
    if fit is None:
        return []
    cropped = centre_crop_planes(feeds, fit)
    return plan_rows(cropped, spec, plan)
