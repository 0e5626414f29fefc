"""TensorRT plans without TensorRT: the build recipe (the manifest's ``families.tensorrt``) and ``trtexec``
lines, the strong-typing check, and the engine compatibility rules.

Pure functions over plain data (NumPy-free, torch-free; `check_strongly_typed` needs the ``onnx``
package): the exporter, the engine build and the ``tensorrt`` backend all decide here, and the tests
check every decision on any machine.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linearsr_edge.backends.onnx.options import OnnxInt8Options
from linearsr_edge.backends.tensorrt.options import MIN_TENSORRT, TRTOptions
from linearsr_edge.specs import ComponentSpec

ENGINE_DIR = "engines"
TIMING_CACHE = f"{ENGINE_DIR}/timing.cache"
BUILD_SCRIPT = "build_engines.sh"

# TensorRT's explicit quantization: symmetric (zero point 0) S8 activations and weights, full 8-bit
# range, per-channel weights, FP32 biases, and no Q/DQ on the quantized ops' outputs.
TRT_INT8_POLICY = OnnxInt8Options(
    activation_type="int8",
    weight_type="int8",
    reduce_range=False,
    per_channel=True,
    fuse_outputs=False,
    quantize_bias=False,  # TensorRT has no INT32 Q/DQ: biases stay FP32
)


# -- the recipe: the manifest's ``families.tensorrt`` -----------------------------------------------
Profile = dict[str, dict[str, list[int]]]  # input -> {"min" | "opt" | "max": shape}


@dataclass(frozen=True)
class EngineEntry:
    onnx: str  # the graph the engine is built from (relative to the bundle)
    engine: str  # where the engine goes
    profile: Profile


@dataclass(frozen=True)
class GpuTarget:
    """What an engine is built for, or what this device offers."""

    tensorrt: str | None  # "10.3.0.30"
    gpu: str | None  # "Orin (nvgpu)", "NVIDIA H100 80GB HBM3"
    compute_capability: str | None  # "8.7"


@dataclass(frozen=True)
class EnginesRecord(GpuTarget):
    """Where this bundle's engines were built, and with what workspace."""

    workspace_mib: int = 0


@dataclass(frozen=True)
class TensorRTSection:
    """What to build on the device and how (written at export), and what was built (by the engine build)."""

    min_tensorrt: str
    workspace_mib: int
    builder_optimization_level: int
    components: dict[str, EngineEntry]
    trtexec: tuple[str, ...]
    timing_cache: str = TIMING_CACHE
    strongly_typed: bool = True
    engines: EnginesRecord | None = None  # filled by the engine build
    int8_policy: dict[str, Any] | None = None  # trt-int8: the Q/DQ recipe


def shapes_arg(profile: Profile, which: str) -> str:
    """``latent:1x12x8x8,sigma:1``: the form of trtexec's ``--minShapes``."""
    return ",".join(f"{name}:{'x'.join(map(str, shapes[which]))}" for name, shapes in profile.items())


def trtexec_command(spec: ComponentSpec, onnx_file: str, options: TRTOptions) -> list[str]:
    """The ``trtexec`` words that build ``spec``'s engine from the bundle folder (run there)."""
    profile = spec.profile_shapes()
    return [
        "trtexec",
        f"--onnx={onnx_file}",
        f"--saveEngine={ENGINE_DIR}/{spec.name}.plan",
        "--stronglyTyped",
        f"--minShapes={shapes_arg(profile, 'min')}",
        f"--optShapes={shapes_arg(profile, 'opt')}",
        f"--maxShapes={shapes_arg(profile, 'max')}",
        f"--memPoolSize=workspace:{options.workspace_mib}M",
        f"--builderOptimizationLevel={options.builder_optimization_level}",
        f"--timingCacheFile={TIMING_CACHE}",
        "--skipInference",
    ]


def build_recipe(
    specs: Sequence[ComponentSpec], files: dict[str, str], options: TRTOptions, int8_policy: dict | None = None
) -> TensorRTSection:
    """The manifest's ``families.tensorrt``: what to build on the device and how."""
    return TensorRTSection(
        min_tensorrt=MIN_TENSORRT,
        workspace_mib=options.workspace_mib,
        builder_optimization_level=options.builder_optimization_level,
        components={
            s.name: EngineEntry(files[s.name], f"{ENGINE_DIR}/{s.name}.plan", s.profile_shapes()) for s in specs
        },
        trtexec=tuple(shlex.join(trtexec_command(s, files[s.name], options)) for s in specs),
        int8_policy=int8_policy,
    )


def build_script(recipe: TensorRTSection) -> str:
    """``build_engines.sh``: the recipe's trtexec lines, for a device without linearsr-edge."""
    lines = [
        "#!/bin/sh",
        "# Build this bundle's TensorRT engines on the device that runs them (engines are specific to the",
        "# GPU and TensorRT version). With linearsr-edge installed, prefer: linearsr-build-engines .",
        "# which also re-runs the bundle's quality gates on the engines and marks the bundle verified.",
        "set -e",
        'cd "$(dirname "$0")"',
        f"mkdir -p {ENGINE_DIR}",
        *recipe.trtexec,
    ]
    return "\n".join(lines) + "\n"


# -- the strong-typing check ----------------------------------------------------------------------
FLOAT_TYPES = ("float", "float16", "bfloat16", "double")  # onnx.TensorProto type names, lower case
# ops whose float inputs TensorRT requires to share one type (in a strongly typed network nothing
# converts implicitly: a mix needs an explicit Cast); input positions, None = all
SAME_TYPE_INPUTS: dict[str, tuple[int, ...] | None] = {
    **dict.fromkeys(
        ("Add", "Sub", "Mul", "Div", "Pow", "Max", "Min", "Sum", "Mean", "MatMul", "Gemm", "Concat"),
        None,
    ),
    "Conv": None,
    "ConvTranspose": None,
    "Where": (1, 2),
    "LayerNormalization": (0, 1, 2),
    "GroupNormalization": (0, 1, 2),
    "InstanceNormalization": (0, 1, 2),
    "BatchNormalization": (0, 1, 2, 3, 4),
    "Expand": (0,),
}


@dataclass(frozen=True)
class TypingProblem:
    node: str
    op_type: str
    types: tuple[str, ...]  # the float types it reads

    def __str__(self) -> str:
        return f"{self.node} ({self.op_type}) mixes {', '.join(self.types)} without a Cast"


def tensor_types(model) -> dict[str, str]:
    """Every tensor's element type name (after ONNX shape inference), initializers included."""
    import onnx

    inferred = onnx.shape_inference.infer_shapes(model)
    types: dict[str, str] = {}
    for v in (*inferred.graph.input, *inferred.graph.value_info, *inferred.graph.output):
        types[v.name] = onnx.TensorProto.DataType.Name(v.type.tensor_type.elem_type).lower()
    for t in inferred.graph.initializer:
        types[t.name] = onnx.TensorProto.DataType.Name(t.data_type).lower()
    for n in inferred.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    types[n.output[0]] = onnx.TensorProto.DataType.Name(a.t.data_type).lower()
    return types


def check_strongly_typed(model) -> list[TypingProblem]:
    """Where the graph leaves a type choice to TensorRT: ops of `SAME_TYPE_INPUTS` whose float inputs
    differ, and float tensors whose type shape inference cannot tell. Empty: valid for
    ``NetworkDefinitionCreationFlag.STRONGLY_TYPED`` (every precision change is an explicit Cast)."""
    types = tensor_types(model)
    floats = set(FLOAT_TYPES)
    problems = []
    for node in model.graph.node:
        positions = SAME_TYPE_INPUTS.get(node.op_type, ())
        if positions == ():
            continue
        names = [n for i, n in enumerate(node.input) if n and (positions is None or i in positions)]
        seen = [types.get(n, "undefined") for n in names]
        read = tuple(sorted({t for t in seen if t in floats}))
        if len(read) > 1 or ("undefined" in seen and read):
            problems.append(TypingProblem(node.name or node.output[0], node.op_type, tuple(sorted(set(seen)))))
    return problems


# -- engine compatibility -------------------------------------------------------------------------
def same_tensorrt(a: str | None, b: str | None) -> bool:
    """Engines load only in the TensorRT release they were built with: major.minor.patch must match."""
    if not a or not b:
        return False
    return a.split(".")[:3] == b.split(".")[:3]


def engine_mismatch(built: EnginesRecord | None, here: GpuTarget, missing: Sequence[str] = ()) -> str | None:
    """Why this bundle's engines cannot run here (None: they can). ``built``: the manifest's record of the
    engine build; ``missing``: engine files that are absent."""
    if built is None:
        return "no TensorRT engines have been built for this bundle"
    if missing:
        return f"engine files are missing: {', '.join(missing)}"
    if not same_tensorrt(built.tensorrt, here.tensorrt):
        return f"the engines were built with TensorRT {built.tensorrt}; this device has {here.tensorrt}"
    if built.compute_capability != here.compute_capability or built.gpu != here.gpu:
        return (
            f"the engines were built for {built.gpu} (compute {built.compute_capability}); "
            f"this GPU is {here.gpu} (compute {here.compute_capability})"
        )
    return None


def engine_action(mismatch: str | None, can_build: bool, bundle: str | Path) -> tuple[str, str]:
    """``("use" | "rebuild" | "refuse", message)``: rebuild where TensorRT's builder is present, else refuse
    with the exact command that builds the engines on this device."""
    if mismatch is None:
        return "use", "engines match this device"
    if can_build:
        return "rebuild", f"{mismatch}: rebuilding them here"
    return "refuse", f"{mismatch}. Build them on this device with: linearsr-build-engines {shlex.quote(str(bundle))}"
