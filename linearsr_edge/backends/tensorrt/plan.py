"""TensorRT plans without TensorRT: optimization profiles, the build recipe and ``trtexec`` lines, the
strong-typing check, the ONNX Runtime TensorRT-EP options, and the engine compatibility rules.

Pure functions (NumPy-free, torch-free; `check_strongly_typed` needs the ``onnx`` package): the
exporter (`linearsr_edge.exporters.tensorrt`), ``linearsr-build-engines`` and the ``tensorrt``
and ``onnxruntime`` backends all decide here, and the tests check every decision on any machine.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from linearsr_edge.exporters.onnx_options import OnnxInt8Options
from linearsr_edge.exporters.tensorrt_options import MIN_TENSORRT, TRTOptions
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


# -- optimization profiles and the recipe ---------------------------------------------------------
def component_profile(spec: ComponentSpec) -> dict[str, dict[str, list[int]]]:
    """``{input: {"min": shape, "opt": shape, "max": shape}}`` from the spec's dims (batch at its
    min/opt/max with every other axis)."""
    return {t.name: {which: list(spec.shape(t, which)) for which in ("min", "opt", "max")} for t in spec.inputs}


def shapes_arg(profile: dict[str, dict[str, list[int]]], which: str) -> str:
    """``latent:1x12x8x8,sigma:1``: the form of trtexec's ``--minShapes`` and ORT's ``trt_profile_*``."""
    return ",".join(f"{name}:{'x'.join(map(str, shapes[which]))}" for name, shapes in profile.items())


def trtexec_command(spec: ComponentSpec, onnx_file: str, options: TRTOptions) -> list[str]:
    """The ``trtexec`` words that build ``spec``'s engine from the bundle folder (run there)."""
    profile = component_profile(spec)
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


def build_recipe(specs: Sequence[ComponentSpec], files: dict[str, str], options: TRTOptions) -> dict[str, Any]:
    """The manifest's ``tensorrt`` entry: what to build on the device and how."""
    return {
        "min_tensorrt": MIN_TENSORRT,
        "strongly_typed": True,
        "workspace_mib": options.workspace_mib,
        "builder_optimization_level": options.builder_optimization_level,
        "timing_cache": TIMING_CACHE,
        "components": {
            s.name: {"onnx": files[s.name], "engine": f"{ENGINE_DIR}/{s.name}.plan", "profile": component_profile(s)}
            for s in specs
        },
        "trtexec": [shlex.join(trtexec_command(s, files[s.name], options)) for s in specs],
        "engines": None,  # filled by linearsr-build-engines: TensorRT version, GPU, compute capability
    }


def build_script(recipe: dict[str, Any]) -> str:
    """``build_engines.sh``: the recipe's trtexec lines, for a device without linearsr-edge."""
    lines = [
        "#!/bin/sh",
        "# Build this bundle's TensorRT engines on the device that runs them (engines are specific to the",
        "# GPU and TensorRT version). With linearsr-edge installed, prefer: linearsr-build-engines .",
        "# which also re-runs the bundle's quality gates on the engines and marks the bundle verified.",
        "set -e",
        'cd "$(dirname "$0")"',
        f"mkdir -p {ENGINE_DIR}",
        *recipe["trtexec"],
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


# -- ONNX Runtime's TensorRT execution provider ---------------------------------------------------
def tensorrt_ep_options(spec: ComponentSpec, cache_dir: Path, workspace_mib: int = 4096) -> dict[str, str]:
    """``TensorrtExecutionProvider`` options for one component: its optimization profile from the spec,
    engine and timing caches under ``cache_dir``, and no FP16/INT8 builder flags. ORT's TensorRT EP
    builds *weakly* typed networks, where ``trt_fp16_enable`` lets TensorRT run the FP32 islands in
    FP16; the graph's own types (FP16 graph, explicit Q/DQ) already say what runs in what."""
    profile = component_profile(spec)
    cache = str(Path(cache_dir) / spec.name)
    return {
        "trt_engine_cache_enable": "True",
        "trt_engine_cache_path": cache,
        "trt_timing_cache_enable": "True",
        "trt_timing_cache_path": cache,
        "trt_max_workspace_size": str(workspace_mib << 20),
        "trt_profile_min_shapes": shapes_arg(profile, "min"),
        "trt_profile_opt_shapes": shapes_arg(profile, "opt"),
        "trt_profile_max_shapes": shapes_arg(profile, "max"),
        "trt_fp16_enable": "False",
        "trt_int8_enable": "False",
    }


# -- engine compatibility -------------------------------------------------------------------------
@dataclass(frozen=True)
class GpuTarget:
    """What an engine is built for, or what this device offers."""

    tensorrt: str | None  # "10.3.0.30"
    gpu: str | None  # "Orin (nvgpu)", "NVIDIA H100 80GB HBM3"
    compute_capability: str | None  # "8.7"

    def to_dict(self) -> dict[str, Any]:
        return {"tensorrt": self.tensorrt, "gpu": self.gpu, "compute_capability": self.compute_capability}


def same_tensorrt(a: str | None, b: str | None) -> bool:
    """Engines load only in the TensorRT release they were built with: major.minor.patch must match."""
    if not a or not b:
        return False
    return a.split(".")[:3] == b.split(".")[:3]


def engine_mismatch(built: dict[str, Any] | None, here: GpuTarget, missing: Sequence[str] = ()) -> str | None:
    """Why this bundle's engines cannot run here (None: they can). ``built``: the manifest's
    ``tensorrt.engines`` entry; ``missing``: engine files that are absent."""
    if not built:
        return "no TensorRT engines have been built for this bundle"
    if missing:
        return f"engine files are missing: {', '.join(missing)}"
    if not same_tensorrt(built.get("tensorrt"), here.tensorrt):
        return f"the engines were built with TensorRT {built.get('tensorrt')}; this device has {here.tensorrt}"
    if built.get("compute_capability") != here.compute_capability or built.get("gpu") != here.gpu:
        return (
            f"the engines were built for {built.get('gpu')} (compute {built.get('compute_capability')}); "
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
