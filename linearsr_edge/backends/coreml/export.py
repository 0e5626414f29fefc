"""Core ML export: ``coreml-fp16``, ``coreml-int8`` (compressed weights) and ``coreml-w8a8`` (macOS only).

Each component becomes an ML program ``.mlpackage``:

* **Conversion** runs ``torch.export`` with the spec's symbolic axes (tracing fails on DC-AE's
  ``movedim``), then ``coremltools.convert`` with the spec's input and output names and FP32 I/O.
* **Shapes** come from the same `ComponentSpec` numbers as TensorRT's profiles (`shape_plan`):
  an enumerated list at batch 1 by default (what the Neural Engine runs), or ranges.
* **Precision policy.** ``FP16ComputePrecision`` with an op selector keeps the FP32 islands of
  `linearsr_edge.islands` (the linear attention's token reductions and division, the RMS-norm
  arithmetic, softmax attention, the timestep sin/cos chain; the same rule as ``onnx-fp16``) plus
  Core ML's fused ``layer_norm`` in FP32; every other op, the big matmuls included, runs FP16.
* ``coreml-int8`` compresses the FP16 model's weights: per-channel symmetric INT8
  (``linear_quantize_weights``) or 4-/6-bit palettes. ``coreml-w8a8`` also quantizes activations
  (``linear_quantize_activations``), which runs predictions: macOS only, calibrated per expert on
  its own band's data.

Core ML predicts only on macOS, so a bundle exported elsewhere is written ``"verified": false``
and verified on a Mac (``pytest -m macos``, ``linearsr-verify``). The manifest's ``coreml`` entry
is the export report (`model_report`): ops per component, the precision of every linear-attention
op, weight bytes and the supported shapes.
"""

from __future__ import annotations

import logging
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from linearsr_edge.backends.coreml.adapter import CoreML, installed_version
from linearsr_edge.backends.coreml.options import CoreMLInt8Options, CoreMLOptions
from linearsr_edge.backends.coreml.plan import (
    CoreMLReport,
    CoreMLSection,
    LinearAttentionOp,
    ShapePlan,
    calibration_rows,
    shape_plan,
)
from linearsr_edge.errors import ExportError
from linearsr_edge.islands import GraphNode, activation_products, fp32_islands
from linearsr_edge.model.tracing import export_inputs, guard_small_eps
from linearsr_edge.specs import ComponentSpec, SizePolicy
from linearsr_edge.targets import Exporter, expert_calibration, quiet_library

log = logging.getLogger(__name__)

SUFFIX = ".mlpackage"

# MIL op types in the ONNX spelling the island rule uses
_MIL_OPS = {
    "const": "Constant",
    "matmul": "MatMul",
    "linear": "Gemm",
    "conv": "Conv",
    "reduce_sum": "ReduceSum",
    "reduce_mean": "ReduceMean",
    "real_div": "Div",
    "pow": "Pow",
    "sqrt": "Sqrt",
    "rsqrt": "Reciprocal",
    "inverse": "Reciprocal",
    "softmax": "Softmax",
    "scaled_dot_product_attention": "Attention",
    "add": "Add",
    "mul": "Mul",
    "sub": "Sub",
    "sin": "Sin",
    "cos": "Cos",
    "transpose": "Transpose",
    "reshape": "Reshape",
    "squeeze": "Squeeze",
    "expand_dims": "Unsqueeze",
    "cast": "Cast",
    "tile": "Expand",
    "concat": "Concat",
}
# Core ML's fused norm: one op whose FP16 kernel gives no FP32 accumulation guarantee; the policy keeps
# norms FP32 (our RMSNorm is written out in FP32 ops and caught by the shared rule already)
_COREML_NORMS = frozenset({"layer_norm", "instance_norm", "l2_norm", "batch_norm"})
# what the export report lists as the linear attention's ops (token reductions, their products, the division)
LINEAR_ATTENTION_OPS = ("matmul", "reduce_sum", "real_div")


# -- conversion -----------------------------------------------------------------------------------
def export_program(module: torch.nn.Module, spec: ComponentSpec):
    """``torch.export`` of ``module`` with every symbolic axis of the spec dynamic (batch-2 examples)."""
    args, dynamic = export_inputs(spec, bounded=True)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            program = torch.export.export(module.eval(), args, dynamic_shapes=dynamic)
            return program.run_decompositions({})
    except Exception as exc:  # torch.export raises many types (UserError, GuardOnDataDependent ...)
        raise ExportError(f"{spec.name}: torch.export failed on the spec's dynamic axes: {exc}") from None


def ct_inputs(spec: ComponentSpec, plan: ShapePlan) -> list:
    import coremltools as ct

    if plan.mode == "range":
        dims = {d: ct.RangeDim(lo, hi, default=spec.dims[d].opt, symbol=d) for d, (lo, hi) in plan.ranges.items()}
        return [
            ct.TensorType(t.name, shape=tuple(dims[d] if isinstance(d, str) else d for d in t.shape), dtype=np.float32)
            for t in spec.inputs
        ]
    main = spec.inputs[0].name
    optimum = spec.shapes("opt")[main][2:]
    default = next((i for i, s in enumerate(plan.sets) if s[main][2:] == optimum), 0)  # else the smallest
    inputs = []
    for t in spec.inputs:
        shapes = [s[t.name] for s in plan.sets]
        if len(set(shapes)) == 1:
            inputs.append(ct.TensorType(t.name, shape=shapes[0], dtype=np.float32))
        else:
            inputs.append(
                ct.TensorType(t.name, shape=ct.EnumeratedShapes(shapes, default=shapes[default]), dtype=np.float32)
            )
    return inputs


def mil_graph_nodes(operations) -> list[GraphNode]:
    """MIL ops as `GraphNode` rows; parameters that are not float (axes, flags, shapes) are left out."""
    from coremltools.converters.mil.mil import types

    nodes = []
    for op in operations:
        inputs = []
        for value in op.inputs.values():
            for var in value if isinstance(value, (list, tuple)) else [value]:
                if var.val is None or types.is_float(var.dtype):
                    inputs.append(var.name)
        kind = _MIL_OPS.get(op.op_type, op.op_type)
        nodes.append(GraphNode(op.name, kind, tuple(inputs), tuple(o.name for o in op.outputs)))
    return nodes


def island_op_names(operations) -> set[str]:
    """The ops the precision policy keeps FP32: the shared islands plus Core ML's fused norms."""
    ops = list(operations)
    return set(fp32_islands(mil_graph_nodes(ops))) | {op.name for op in ops if op.op_type in _COREML_NORMS}


class IslandSelector:
    """``FP16ComputePrecision``'s op selector: FP16 everywhere but the FP32 islands (found once per block)."""

    def __init__(self) -> None:
        self._islands: dict[int, set[str]] = {}

    def __call__(self, op) -> bool:
        block = op.enclosing_block
        if id(block) not in self._islands:
            self._islands[id(block)] = island_op_names(block.operations)
        return op.name not in self._islands[id(block)]


def _quiet():
    """coremltools draws progress bars on stderr and warns about untested torch versions."""
    return quiet_library("coremltools", logging.ERROR)


def convert(module: torch.nn.Module, spec: ComponentSpec, options: CoreMLOptions, plan: ShapePlan):
    """An FP16 ML program ``MLModel`` with the FP32 islands (not loaded: that needs macOS) of ``module``."""
    import coremltools as ct

    guarded, raised = guard_small_eps(module)
    if raised:
        log.info("%s: raised eps < 1e-8 to 1e-6 in %d modules for export", spec.name, len(raised))
    program = export_program(guarded, spec)
    try:
        with _quiet():
            return ct.convert(
                program,
                inputs=ct_inputs(spec, plan),
                outputs=[ct.TensorType(name, dtype=np.float32) for name in spec.output_names],
                convert_to="mlprogram",
                minimum_deployment_target=getattr(ct.target, options.deployment_target),
                compute_precision=ct.transform.FP16ComputePrecision(op_selector=IslandSelector()),
                skip_model_load=True,
            )
    except Exception as exc:  # the converter raises ValueError, NotImplementedError, RuntimeError ...
        raise ExportError(f"{spec.name}: Core ML conversion failed ({plan.mode} shapes): {exc}") from None


# -- the report, read back from the saved package -------------------------------------------------
def main_block(spec_proto):
    """The main function's block of a saved ML program (``MLModel(...).get_spec()``)."""
    fn = spec_proto.mlProgram.functions["main"]
    return fn.block_specializations[fn.opset]


def weight_bytes(package: Path) -> int:
    return sum(f.stat().st_size for f in (Path(package) / "Data").rglob("*") if f.is_file() and "weights" in f.parts)


def model_report(package: Path, plan: ShapePlan) -> CoreMLReport:
    """What the saved package holds: op count by type, the dtype of every linear-attention op's output,
    weight bytes and the accepted shapes."""
    import coremltools as ct
    from coremltools.proto import MIL_pb2

    with _quiet():
        proto = ct.models.MLModel(str(package), skip_model_load=True).get_spec()
    ops = list(main_block(proto).operations)
    consts = {o.name for op in ops if op.type.startswith("const") for o in op.outputs}
    attention = []
    for op in ops:
        if op.type not in LINEAR_ATTENTION_OPS:
            continue
        if op.type == "matmul" and any(a.name in consts for a in _arguments(op, ("x", "y"))):
            continue  # a weight product, not the attention's activation x activation product
        dtype = MIL_pb2.DataType.Name(op.outputs[0].type.tensorType.dataType)
        attention.append(LinearAttentionOp(op.type, op.outputs[0].name, dtype))
    return CoreMLReport(
        ops=len([op for op in ops if not op.type.startswith("const")]),
        op_types=dict(sorted(Counter(op.type for op in ops).items())),
        linear_attention=tuple(attention),
        weight_bytes=weight_bytes(package),
        shapes=plan,
        spec_version=proto.specificationVersion,
    )


def _arguments(op, names: Sequence[str]):
    return [a for n in names if n in op.inputs for a in op.inputs[n].arguments]


# -- the exporters --------------------------------------------------------------------------------
class CoreMLExporter(Exporter):
    """``coreml-fp16``: FP16 compute with FP32 islands, FP32 I/O."""

    def __init__(self, options: CoreMLOptions | None = None) -> None:
        super().__init__(options or CoreMLOptions())
        self.factor = 1
        self.report: dict[str, CoreMLReport] = {}
        self._said: set[str] = set()

    def prepare(self, specs: Sequence[ComponentSpec]) -> None:
        """Read the codec factor (output pixels per latent pixel) and refuse sizes outside the profile now."""
        codec = next((s for s in specs if "img_height" in s.dims), None)
        if codec is not None:
            self.factor = codec.dims["img_height"].opt // codec.dims["height"].opt
        for spec in specs:
            shape_plan(spec, self.options, self.factor)

    def spec_of(self, spec: ComponentSpec) -> ComponentSpec:
        """Enumerated shapes: the component takes the listed output sizes only, one row per call."""
        plan = self.report[spec.name].shapes
        if plan.mode != "enumerated":
            return spec
        main = spec.inputs[0].name  # image (encoder) or latent: [1, C, H, W]
        scale = 1 if main == "image" else self.factor
        sizes = sorted({(s[main][2] * scale, s[main][3] * scale) for s in plan.sets})
        return replace(spec, sizes=SizePolicy.listed(sizes, max_batch=1))

    def sections(self) -> dict[str, Any]:
        return {"coreml": CoreMLSection(self.options.deployment_target, installed_version(), dict(self.report))}

    def export(self, module, spec, folder, calibration=None) -> list[Path]:
        plan = shape_plan(spec, self.options, self.factor)
        if plan.note and plan.note not in self._said:
            self._said.add(plan.note)  # once per export, not per expert
            log.warning("%s", plan.note)
        model = self._compress(convert(module, spec, self.options, plan), spec, calibration)
        return [self._save(model, spec, folder, plan)]

    def _compress(self, model, spec: ComponentSpec, calibration):
        return model

    def _save(self, model, spec: ComponentSpec, folder: Path, plan: ShapePlan) -> Path:
        path = folder / f"{spec.name}{SUFFIX}"
        model.user_defined_metadata.update(self.metadata_for(spec))
        with _quiet():
            model.save(str(path))
        self.report[spec.name] = model_report(path, plan)
        return path


class CoreMLInt8Exporter(CoreMLExporter):
    """``coreml-int8``: the FP16 model with per-channel INT8 (or 4/6-bit palettized) weights."""

    def __init__(self, options: CoreMLInt8Options | None = None) -> None:
        super().__init__(options or CoreMLInt8Options())

    def _compress(self, model, spec, calibration):
        return compress_weights(model, self.options)


def compress_weights(model, options: CoreMLInt8Options):
    from coremltools.optimize.coreml import (
        OpLinearQuantizerConfig,
        OpPalettizerConfig,
        OptimizationConfig,
        linear_quantize_weights,
        palettize_weights,
    )

    with _quiet():
        if options.palettize_bits:
            config = OpPalettizerConfig(
                mode="kmeans", nbits=options.palettize_bits, weight_threshold=options.weight_threshold
            )
            return palettize_weights(model, OptimizationConfig(global_config=config))
        config = OpLinearQuantizerConfig(
            mode="linear_symmetric", dtype="int8", granularity="per_channel", weight_threshold=options.weight_threshold
        )
        return linear_quantize_weights(model, OptimizationConfig(global_config=config))


class CoreMLW8A8Exporter(CoreMLInt8Exporter):
    """``coreml-w8a8`` (macOS): INT8 activations calibrated per expert on its own band, INT8 weights.

    The FP32 islands and the activation products (modulation, gates) are left unquantized, as for
    the other INT8 targets; encoder and decoder get INT8 weights only (they have no band data).
    """

    def _compress(self, model, spec, calibration):
        samples, keep = activation_calibration(model, spec, shape_plan(spec, self.options, self.factor), calibration)
        if samples:
            model = CoreML().quantize_activations(model, keep, samples)
        return compress_weights(model, self.options)


def activation_calibration(model, spec: ComponentSpec, plan: ShapePlan, calibration):
    """(the samples activation quantization calibrates ``model`` on, the ops it leaves in float): an expert's
    recorded band inputs as the model takes them (`calibration_rows`), and the FP32 islands plus the
    activation products; no samples for the codec (it has no band data)."""
    calibration = expert_calibration(spec, calibration)
    if calibration is None:
        return [], set()
    usable = [row for feeds in calibration for row in calibration_rows(feeds, spec, plan)]
    if not usable:
        raise ExportError(
            f"{spec.name}: every calibration sample is smaller than the smallest enumerated size; record "
            "larger crops (CalibrationOptions.crop) or enumerate a smaller size (--coreml-sizes)"
        )
    ops = list(model._mil_program.functions["main"].operations)
    return usable, island_op_names(ops) | set(activation_products(mil_graph_nodes(ops)))
