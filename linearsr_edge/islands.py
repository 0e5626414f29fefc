"""The precision policy's FP32 islands, found on any backend's graph.

Every reduced-precision target (ONNX FP16/INT8, OpenVINO FP16/INT8, later TensorRT and Core ML)
keeps the same nodes in FP32: the linear attention's reductions over tokens (activation x
activation MatMuls, ReduceSum), every division and the eps Add in front of it, the RMS-norm
arithmetic, attention softmax, and the timestep embedding's sin/cos chain. In FP16 the token sums
overflow from about a thousand tokens; in INT8 an activation x activation product has no fixed
scale worth calibrating.

Each backend describes its graph as `GraphNode` rows with op types in ONNX spelling (an adapter
maps ``Multiply`` -> ``Mul`` and so on); the rule below is written once. Pure Python: no graph
library is imported here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class GraphNode:
    name: str
    op: str  # op type in ONNX spelling (MatMul, Mul, Div, ReduceSum, Cast, Expand, Attention, ...)
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]


ISLAND_OPS = frozenset({"ReduceSum", "ReduceMean", "Div", "Pow", "Sqrt", "Reciprocal", "Softmax", "Attention"})
_EPS_CONSUMERS = frozenset({"Div", "Sqrt", "Reciprocal"})
_TRIG_ARG_OPS = frozenset({"Mul", "Unsqueeze", "Reshape", "Cast", "Expand", "Div", "Sin", "Cos"})
_LAYOUT_OPS = frozenset({"Transpose", "Reshape", "Squeeze", "Unsqueeze", "Flatten", "Identity", "Expand"})


def constant_values(nodes: Sequence[GraphNode], constants: Iterable[str]) -> set[str]:
    """``constants`` (weights) plus every value computed from constants alone: a weight behind a
    DequantizeLinear, a Convert of an FP16-compressed weight, a reshaped constant."""
    known = set(constants)
    known |= {o for n in nodes if n.op == "Constant" for o in n.outputs}
    changed = True
    while changed:
        changed = False
        for n in nodes:
            if n.inputs and n.op != "Constant" and all(i in known for i in n.inputs if i):
                fresh = [o for o in n.outputs if o not in known]
                if fresh:
                    known.update(fresh)
                    changed = True
    return known


def fp32_islands(nodes: Sequence[GraphNode], constants: Iterable[str] = ()) -> list[str]:
    """Names of the nodes that must stay FP32 (see the module docstring), in graph order first."""
    weights = constant_values(nodes, constants)
    readers: dict[str, list[GraphNode]] = {}
    for node in nodes:
        for name in node.inputs:
            readers.setdefault(name, []).append(node)
    island = []
    for node in nodes:
        if node.op == "MatMul" and not any(i in weights for i in node.inputs):
            island.append(node.name)  # activation x activation: K^T V, Q (K^T V), Q K-sum, QK^T, attn V
        elif node.op in ISLAND_OPS and not all(o in weights for o in node.outputs):
            island.append(node.name)
        elif node.op == "Add" and any(c.op in _EPS_CONSUMERS for o in node.outputs for c in readers.get(o, [])):
            island.append(node.name)  # the eps in front of a division / square root
    # The timestep embedding's sin/cos and their arguments (sigma * 1000 * freq, up to ~1000, where FP16
    # steps by 0.5 rad): the whole chain from the graph input to Sin/Cos stays FP32.
    trig = {n.name for n in nodes if n.op in ("Sin", "Cos")}
    changed = True
    while changed:
        changed = False
        for node in nodes:
            if node.op in _TRIG_ARG_OPS and node.name not in trig:
                after = [c for o in node.outputs for c in readers.get(o, [])]
                if after and all(c.name in trig for c in after):
                    trig.add(node.name)
                    changed = True
    island += sorted(trig - set(island))
    # Layout ops carry an island's value on unchanged (K-sum's Transpose into Q·K-sum): they stay FP32
    # too, or the token sum would be stored in FP16 between two FP32 nodes (found by the range probe).
    producer = {o: n for n in nodes for o in n.outputs}
    members = set(island)
    changed = True
    while changed:
        changed = False
        for node in nodes:
            if node.op in _LAYOUT_OPS and node.name not in members and node.inputs:
                source = producer.get(node.inputs[0])
                if source is not None and source.name in members:
                    members.add(node.name)
                    island.append(node.name)
                    changed = True
    return island


def activation_products(nodes: Sequence[GraphNode], constants: Iterable[str] = ()) -> list[str]:
    """Elementwise ``Mul`` nodes of two activations: the adaLN modulation ``norm(x) * (1 + scale)``, the
    gates ``gate * f(x)``, the GLU gate and the RMS-norm product. Quantizing them costs ~17 % error
    (benchmarks/RESULTS.md), so INT8 recipes keep them in FP32."""
    weights = constant_values(nodes, constants)
    return [n.name for n in nodes if n.op == "Mul" and len(n.inputs) == 2 and not any(i in weights for i in n.inputs)]
