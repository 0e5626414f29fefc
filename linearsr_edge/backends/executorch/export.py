"""ExecuTorch export: ``et-fp32`` and ``et-int8``, one XNNPACK-delegated ``.pte`` program per component.

* **Programs.** ``torch.export`` at batch 1 with the spec's other symbolic axes dynamic within the profile
  (height, width, tag length), then ``to_edge_transform_and_lower`` with the XNNPACK partitioner and
  ``to_executorch``. A batch runs row by row (`plan.ROWS_PER_CALL`, the size policy's ``max_batch``).
* **GELU.** XNNPACK's GELU computes the exact (erf) GELU whatever ``approximate`` says, so the tag
  projection's tanh GELU came out up to 4.7e-4 off on one op (2.6e-4 on an expert). Every GELU is
  decomposed into elementary ops before lowering, which XNNPACK runs as written (7e-7 on an expert).
* **INT8** (``et-int8``): PT2E with ExecuTorch's ``XNNPACKQuantizer``: per-channel symmetric INT8 weights,
  per-tensor INT8 activations, observers calibrated on the expert's own log-SNR band. Only ``linear`` and
  ``conv2d`` are quantized; the FP32 islands of `linearsr_edge.islands` and the activation products are
  found on the same graph and left out (recorded per expert). Encoder and decoder stay FP32.

The manifest's ``executorch`` section (`plan.ExecuTorchSection`) records, per program, the ops XNNPACK runs
and those left to ExecuTorch's portable kernels.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from linearsr_edge.backends.executorch.options import EtInt8Options
from linearsr_edge.backends.executorch.plan import ROWS_PER_CALL, ExecuTorchSection, ProgramRecord
from linearsr_edge.backends.executorch.session import quiet_native
from linearsr_edge.errors import ExportError
from linearsr_edge.islands import GraphNode, activation_products, fp32_islands
from linearsr_edge.model.tracing import export_inputs, guard_small_eps
from linearsr_edge.pipeline.sizes import split_rows
from linearsr_edge.specs import ComponentSpec
from linearsr_edge.targets import Exporter, NoOptions, expert_calibration, quiet_library

log = logging.getLogger(__name__)

SUFFIX = ".pte"

# aten ops in the ONNX spelling the island rule reads (others keep their own name: no rule matches them)
_ATEN_OPS = {
    "linear": "Gemm",
    "conv2d": "Conv",
    "matmul": "MatMul",
    "bmm": "MatMul",
    "mm": "MatMul",
    "sum": "ReduceSum",
    "mean": "ReduceMean",
    "div": "Div",
    "pow": "Pow",
    "sqrt": "Sqrt",
    "rsqrt": "Reciprocal",
    "reciprocal": "Reciprocal",
    "softmax": "Softmax",
    "_softmax": "Softmax",
    "scaled_dot_product_attention": "Attention",
    "add": "Add",
    "mul": "Mul",
    "sub": "Sub",
    "sin": "Sin",
    "cos": "Cos",
    "transpose": "Transpose",
    "permute": "Transpose",
    "view": "Reshape",
    "reshape": "Reshape",
    "unflatten": "Reshape",
    "flatten": "Flatten",
    "squeeze": "Squeeze",
    "unsqueeze": "Unsqueeze",
    "expand": "Expand",
    "cat": "Concat",
    "_to_copy": "Cast",
    "to": "Cast",
}
WEIGHTED_OPS = ("linear", "conv2d")  # what et-int8 quantizes


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """ExecuTorch and torchao warn about optional kernels they cannot load and deprecated pytree use, and log
    from C++ (`quiet_native`); their Python warnings and prints are swallowed too."""
    with quiet_library("torchao", logging.ERROR), quiet_native():
        yield


def program_inputs(spec: ComponentSpec) -> tuple[tuple[torch.Tensor, ...], dict]:
    """Batch-1 examples and ``torch.export`` dynamic shapes: every symbolic axis of the spec but the batch."""
    args, dynamic = export_inputs(spec, bounded=True)
    rows = tuple(a[:ROWS_PER_CALL] for a in args)
    fixed = {t.name: {i: d for i, d in dynamic[t.name].items() if t.shape[i] != "batch"} for t in spec.inputs}
    return rows, fixed


def export_program(module: torch.nn.Module, spec: ComponentSpec):
    """``torch.export`` of ``module`` (eps guarded) at batch 1 with the spec's other axes dynamic."""
    guarded, raised = guard_small_eps(module)
    if raised:
        log.info("%s: raised eps < 1e-8 to 1e-6 in %d modules for export", spec.name, len(raised))
    args, dynamic = program_inputs(spec)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return torch.export.export(guarded.eval(), args, dynamic_shapes=dynamic)
    except Exception as exc:  # torch.export raises many types (UserError, GuardOnDataDependent ...)
        raise ExportError(f"{spec.name}: torch.export failed on the spec's dynamic axes: {exc}") from None


def _op(target: Any) -> str:
    """``aten.linear.default`` -> ``linear``; edge ops and Python callables by their short name."""
    name = getattr(target, "__name__", None) or str(target)
    name = str(getattr(target, "_name", name))
    return name.split("::")[-1].split(".")[0]


def lower(program, spec: ComponentSpec) -> tuple[bytes, ProgramRecord]:
    """An exported program lowered to XNNPACK: the ``.pte`` bytes and what runs where."""
    from torch._decomp import get_decompositions

    try:
        with quiet():
            from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
            from executorch.exir import to_edge_transform_and_lower

            program = program.run_decompositions(get_decompositions([torch.ops.aten.gelu.default]))
            edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
            record = program_record(edge.exported_program())
            manager = edge.to_executorch()
            planned = sum(manager.executorch_program.execution_plan[0].non_const_buffer_sizes)
            return manager.buffer, replace(record, planned_bytes=int(planned))
    except Exception as exc:  # the lowering raises many types (ExportError, RuntimeError, InternalError ...)
        raise ExportError(f"{spec.name}: lowering to ExecuTorch/XNNPACK failed: {exc}") from None


_PLUMBING = {"getitem", "sym_size", "executorch_call_delegate", "alloc", "view", "_local_scalar_dense"}


def program_record(edge_program) -> ProgramRecord:
    """Count the ops inside XNNPACK's delegates and those left outside them."""
    graph_module = edge_program.graph_module
    delegates = [n for n in graph_module.graph.nodes if n.op == "call_function" and _op(n.target).endswith("delegate")]
    inside = 0
    for node in delegates:
        lowered = getattr(graph_module, node.args[0].target)
        inside += sum(1 for n in lowered.original_module.graph.nodes if n.op == "call_function")
    outside = Counter(
        _op(n.target)
        for n in graph_module.graph.nodes
        if n.op == "call_function" and _op(n.target) not in _PLUMBING and n not in delegates
    )
    return ProgramRecord(len(delegates), inside, dict(sorted(outside.items())))


def graph_nodes(graph) -> tuple[list[GraphNode], set[str]]:
    """An FX graph as `GraphNode` rows (ONNX spelling) and the names of its constants (parameters, buffers)."""
    constants = {n.name for n in graph.nodes if n.op == "get_attr"}
    nodes = []
    for n in graph.nodes:
        if n.op != "call_function":
            continue
        inputs = tuple(a.name for a in n.all_input_nodes)
        nodes.append(GraphNode(n.name, _ATEN_OPS.get(_op(n.target), _op(n.target)), inputs, (n.name,)))
    return nodes, constants


def kept_fp32(graph) -> set[str]:
    """The nodes the precision policy keeps FP32: the islands and the activation products."""
    nodes, constants = graph_nodes(graph)
    return set(fp32_islands(nodes, constants)) | set(activation_products(nodes, constants))


class EtExporter(Exporter):
    """``et-fp32``: one XNNPACK-delegated program per component."""

    def __init__(self, options: Any = None) -> None:
        super().__init__(options if options is not None else NoOptions())
        self.records: dict[str, ProgramRecord] = {}

    def spec_of(self, spec: ComponentSpec) -> ComponentSpec:
        """The programs take one row per call (`plan.ROWS_PER_CALL`); sizes stay the profile's range."""
        return replace(spec, sizes=replace(spec.sizes, max_batch=ROWS_PER_CALL))

    def sections(self) -> dict[str, Any]:
        from importlib.metadata import version

        return {"executorch": ExecuTorchSection(version("executorch"), components=dict(self.records))}

    def export(self, module, spec, folder, calibration=None) -> list[Path]:
        program, quantized, kept = self._program(module, spec, calibration)
        buffer, record = lower(program, spec)
        self.records[spec.name] = replace(record, quantized=quantized, kept_fp32=kept)
        path = folder / f"{spec.name}{SUFFIX}"
        path.write_bytes(buffer)
        write_metadata(path, self.metadata_for(spec))
        return [path, metadata_path(path)]

    def _program(self, module, spec: ComponentSpec, calibration):
        """The program to lower, the products quantized and the nodes kept FP32 (none in FP32)."""
        return export_program(module, spec), 0, 0


def metadata_path(path: Path) -> Path:
    """A ``.pte`` has no field for free metadata: it goes in a JSON sidecar next to it (``expert_0.pte.json``)."""
    return path.with_name(path.name + ".json")


def write_metadata(path: Path, metadata: dict[str, str]) -> None:
    import json

    metadata_path(path).write_text(json.dumps(metadata, indent=1, sort_keys=True) + "\n")


class EtInt8Exporter(EtExporter):
    """``et-int8``: each expert quantized through PT2E on its own band's data; encoder and decoder FP32."""

    def __init__(self, options: EtInt8Options | None = None) -> None:
        super().__init__(options or EtInt8Options())

    def _program(self, module, spec: ComponentSpec, calibration):
        program = export_program(module, spec)
        calibration = expert_calibration(spec, calibration)
        if calibration is None:
            return program, 0, 0
        rows = [row for feeds in calibration for row in split_rows(feeds, ROWS_PER_CALL)]
        converted, quantized, kept = self.quantize(program, spec, rows)
        args, dynamic = program_inputs(spec)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                return torch.export.export(converted, args, dynamic_shapes=dynamic), quantized, kept
        except Exception as exc:  # torch.export raises many types
            raise ExportError(f"{spec.name}: torch.export of the quantized graph failed: {exc}") from None

    def quantize(self, program, spec: ComponentSpec, rows: Sequence[dict]):
        """PT2E on ``program`` calibrated on ``rows``: the converted graph module, the weighted products quantized
        and the nodes the policy kept FP32 (with ``keep_fp32="none"`` the quantizer also takes adds and
        multiplies; the count is then of the weighted products only)."""
        with quiet():
            from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (
                XNNPACKQuantizer,
                get_symmetric_quantization_config,
            )
            from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

        graph_module = program.module()
        quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
        weighted = {
            n.name for n in graph_module.graph.nodes if n.op == "call_function" and _op(n.target) in WEIGHTED_OPS
        }
        chosen, keep = weighted, set()
        if self.options.keep_fp32 == "policy":
            keep = kept_fp32(graph_module.graph)
            chosen = weighted - keep
            # the annotators ask about every node of a pattern, the weights' and biases' get_attr too
            quantizer.set_filter_function(lambda node: node.name in chosen or node.op != "call_function")
        with quiet():
            prepared = prepare_pt2e(graph_module, quantizer)
            with torch.no_grad():
                for row in rows:
                    prepared(*[torch.from_numpy(row[n]) for n in spec.input_names])
            return convert_pt2e(prepared), len(chosen), len(keep)
