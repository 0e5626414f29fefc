"""What every exporter does to a PyTorch component before its converter sees it, whatever the format:
example inputs with the spec's symbolic axes for ``torch.export`` (`export_inputs`), and tiny ``eps``
constants raised where the ONNX optimizer or FP16 would lose them (`guard_small_eps`)."""

from __future__ import annotations

import copy

import torch

from linearsr_edge.specs import ComponentSpec

EXPORT_BATCH = 2  # a batch-1 example makes the exporter specialise the batch axis


def export_inputs(spec: ComponentSpec, bounded: bool = False) -> tuple[tuple[torch.Tensor, ...], dict]:
    """Batch-2 example inputs and ``torch.export`` dynamic shapes: one ``Dim`` per symbolic axis of the spec
    (``bounded``: with the spec's min/max, and sizes that must be multiples of m as m times a symbol)."""
    from torch.export import Dim

    def dim(name: str):
        if not bounded:
            return Dim(name)
        r = spec.dims[name]
        if r.multiple == 1:
            return Dim(name, min=r.min, max=r.max)
        return Dim(f"{name}_q", min=r.min // r.multiple, max=r.max // r.multiple) * r.multiple

    examples = spec.dummy_inputs("opt", batch=EXPORT_BATCH)
    args = tuple(torch.from_numpy(examples[n]) for n in spec.input_names)
    symbols = {d: dim(d) for t in spec.inputs for d in t.shape if isinstance(d, str)}
    dynamic_shapes = {t.name: {i: symbols[d] for i, d in enumerate(t.shape) if isinstance(d, str)} for t in spec.inputs}
    return args, dynamic_shapes


SMALL_EPS = 1e-8  # the exporter's optimizer deletes additive constants below this
SAFE_EPS = 1e-6  # survives the optimizer and FP16


def guard_small_eps(module: torch.nn.Module) -> tuple[torch.nn.Module, list[str]]:
    """A copy of ``module`` whose float ``eps`` attributes below 1e-8 are raised to 1e-6.

    Third-party layers such as diffusers' DC-AE linear attention add ``eps=1e-15`` to a
    denominator; the exported graph would lose it and divide 0 by 0. The original module is
    left untouched (parity is measured against it).
    """
    risky = [
        name
        for name, m in module.named_modules()
        if isinstance(getattr(m, "eps", None), float) and 0 <= m.eps < SMALL_EPS
    ]
    if not risky:
        return module, []
    guarded = copy.deepcopy(module)
    for name, m in guarded.named_modules():
        if name in risky:
            m.eps = SAFE_EPS
    return guarded, [n or type(module).__name__ for n in risky]
