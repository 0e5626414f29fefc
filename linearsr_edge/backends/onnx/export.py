"""ONNX export (torch dynamo exporter, opset 18) with the traps measured on this project handled.

* The exporter's optimizer deletes additive constants below 1e-8 (a ``+1e-15`` eps vanishes and
  0/0 gives NaN): components must use eps >= 1e-6, and `export_onnx` refuses an export whose ORT
  output is non-finite where PyTorch's is finite, naming this cause.
* A batch-1 example freezes the batch axis: examples always have batch 2 and every symbolic axis
  of the spec is checked to be symbolic in the saved graph.
* ``movedim`` / negative permutations (DC-AE) make ORT refuse a model: `normalize_transposes`
  rewrites negative ``perm`` entries before saving.
* Graphs are simplified (onnxslim), then checked with ``onnx.checker`` and shape inference.
  Models over 2 GB are saved with external data (``<name>.onnx.data``) and not simplified.
"""

from __future__ import annotations

import contextlib
import io
import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from linearsr_edge.errors import ExportError
from linearsr_edge.model.tracing import SAFE_EPS, SMALL_EPS, export_inputs, guard_small_eps
from linearsr_edge.pipeline.session import Session
from linearsr_edge.reference import call_module
from linearsr_edge.specs import ComponentSpec
from linearsr_edge.targets import Exporter

log = logging.getLogger(__name__)

OPSET = 18
PROTOBUF_LIMIT = 2**31 - 1


def torch_export_onnx(module: torch.nn.Module, spec: ComponentSpec):
    """Run the dynamo exporter on ``module`` with batch-2 examples; returns the in-memory ``ModelProto``."""
    args, dynamic_shapes = export_inputs(spec)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module.eval(),
            args,
            None,
            dynamo=True,
            opset_version=OPSET,
            input_names=spec.input_names,
            output_names=spec.output_names,
            dynamic_shapes=dynamic_shapes,
            verbose=False,
        )
    return program.model_proto


def normalize_transposes(model) -> int:
    """Rewrite negative ``perm`` entries of Transpose nodes (ORT refuses them); returns how many changed."""
    changed = 0
    for node in _all_nodes(model.graph):
        if node.op_type != "Transpose":
            continue
        for attr in node.attribute:
            if attr.name == "perm" and any(p < 0 for p in attr.ints):
                rank = len(attr.ints)
                fixed = [p % rank for p in attr.ints]
                del attr.ints[:]
                attr.ints.extend(fixed)
                changed += 1
    return changed


def _all_nodes(graph):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.g is not None and attr.g.node:
                yield from _all_nodes(attr.g)
            for sub in attr.graphs:
                yield from _all_nodes(sub)


def check_symbolic_axes(model, spec: ComponentSpec) -> None:
    """Every axis the spec calls symbolic must be symbolic (``dim_param``) in the graph's inputs."""
    by_name = {v.name: v for v in model.graph.input}
    for t in spec.inputs:
        if t.name not in by_name:
            raise ExportError(f"{spec.name}: exported graph has no input {t.name!r} (has {list(by_name)})")
        dims = by_name[t.name].type.tensor_type.shape.dim
        for axis, d in enumerate(t.shape):
            if isinstance(d, str) and not dims[axis].dim_param:
                raise ExportError(
                    f"{spec.name}.{t.name}: axis {axis} ({d}) was frozen to {dims[axis].dim_value} by the exporter"
                )


def simplify(model):
    """onnxslim, falling back to the unsimplified graph if it fails (logged)."""
    try:
        import onnxslim
    except ImportError:
        log.warning("onnxslim not installed; saving the unsimplified graph")
        return model
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            return onnxslim.slim(model)
    except Exception as exc:  # onnxslim raises many kinds; the raw graph is still valid
        log.warning("onnxslim failed (%s); saving the unsimplified graph", exc)
        return model


def weight_bytes(model) -> int:
    """Bytes held by the initializers (``ByteSize()`` itself fails on protos over 2 GB)."""
    import numpy as np
    from onnx import helper

    total = 0
    for t in model.graph.initializer:
        if t.raw_data:
            total += len(t.raw_data)
        else:
            n = int(np.prod(t.dims)) if t.dims else 1
            total += n * np.dtype(helper.tensor_dtype_to_np_dtype(t.data_type)).itemsize
    return total


def is_large(model) -> bool:
    """Past the protobuf limit, with a 64 MiB margin for the graph itself."""
    return weight_bytes(model) >= PROTOBUF_LIMIT - (64 << 20)


def set_metadata(model, metadata: dict[str, str]) -> None:
    """Write ``metadata`` into the model's ``metadata_props`` (replacing keys it already has)."""
    kept = [p for p in model.metadata_props if p.key not in metadata]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in metadata.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, str(value)


def save_onnx(model, path: Path, metadata: dict[str, str] | None = None) -> list[Path]:
    """Save (with ``metadata`` in ``metadata_props``), with external data once the model passes the 2 GB
    protobuf limit."""
    import onnx

    if metadata:
        set_metadata(model, metadata)

    if not is_large(model):
        onnx.save(model, str(path))
        return [path]
    data = path.with_name(path.name + ".data")
    onnx.save(
        model,
        str(path),
        save_as_external_data=True,
        all_tensors_to_one_file=True,
        location=data.name,
        size_threshold=1024,
    )
    return [path, data]


def check_model(path: Path) -> None:
    import onnx

    try:
        onnx.checker.check_model(str(path), full_check=False)
        model = onnx.load(str(path), load_external_data=False)
        onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=False)
    except Exception as exc:  # onnx's checker raises ValidationError and others
        raise ExportError(f"{path.name} fails the ONNX checker: {exc}") from None


def verify_finite(session: Session, module: torch.nn.Module, spec: ComponentSpec, fmt: str = "ONNX") -> None:
    """Catch the small-constant trap: the exported output non-finite where PyTorch's is finite.

    Random inputs rarely hit a zero denominator, so all-zero inputs (every ReLU dead) are tried too.
    """
    random = spec.dummy_inputs("min", batch=1, seed=1)
    zeros = {k: np.zeros_like(v) for k, v in random.items()}
    if "sigma" in zeros:
        zeros["sigma"] = random["sigma"]  # sigma must stay in (0, 1]
    try:
        for feeds in (random, zeros):
            got, ref = session.run(feeds), call_module(module, spec, feeds)
            for name in spec.output_names:
                if np.isfinite(ref[name]).all() and not np.isfinite(got[name]).all():
                    raise ExportError(
                        f"{spec.name}.{name}: {fmt} output has NaN/inf where PyTorch's is finite. A likely cause is "
                        "an additive eps below 1e-8, which exporters' optimizers delete (x / (y + 1e-15) becomes "
                        "0/0); use eps >= 1e-6 or clamp_min on the denominator"
                    )
    finally:
        session.close()


class ONNXExporter(Exporter):
    suffix = ".onnx"

    def export(self, module: torch.nn.Module, spec: ComponentSpec, folder: Path, calibration=None) -> list[Path]:
        guarded, raised = guard_small_eps(module)
        if raised:
            log.info(
                "%s: raised eps < %g to %g in %d modules for export (%s%s)",
                spec.name,
                SMALL_EPS,
                SAFE_EPS,
                len(raised),
                ", ".join(raised[:3]),
                ", ..." if len(raised) > 3 else "",
            )
        model = torch_export_onnx(guarded, spec)
        if not is_large(model):
            model = simplify(model)
        fixed = normalize_transposes(model)
        if fixed:
            log.info("%s: rewrote %d Transpose nodes with negative perm", spec.name, fixed)
        check_symbolic_axes(model, spec)
        model.producer_name = "linearsr-edge"
        path = folder / f"{spec.name}{self.suffix}"
        files = save_onnx(model, path, self.metadata_for(spec))
        check_model(path)
        from linearsr_edge.backends.onnx.session import ORTSession

        verify_finite(ORTSession(path, spec), module, spec)
        return files
