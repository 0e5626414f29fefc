"""OpenVINO IR export: ``ov-fp32``, ``ov-fp16`` (FP16-compressed weights) and ``ov-int8`` (NNCF PTQ per band).

* Conversion runs OpenVINO's PyTorch frontend on the module (``openvino.convert_model``) with the
  spec's names and symbolic axes; where it fails, the ONNX graph of `torch_export_onnx` is
  converted instead. Every symbolic axis of the spec must stay dynamic in the IR.
* The precision policy's FP32 islands (`linearsr_edge.islands`) are marked ``precise`` in the IR
  (the runtime attribute OpenVINO reads as "disable FP16 compression"): under a bf16 or f16
  inference hint (GPU, NPU, a BF16 CPU) those nodes still run in FP32. OpenVINO reads the mark
  but does not write it, so it is added to the saved ``.xml``.
* ``ov-int8``: each expert is quantized by ``nncf.quantize`` (transformer preset) on its own band's
  calibration data, with the islands and the activation products (adaLN modulation, gates) in
  the ignored scope. Encoder and decoder stay FP32, as for ``onnx-int8``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from linearsr_edge.backends.onnx.export import torch_export_onnx, verify_finite
from linearsr_edge.backends.openvino.options import OVInt8Options
from linearsr_edge.backends.openvino.plan import Int8WeightsRecord, OpenVINOSection
from linearsr_edge.errors import ExportError
from linearsr_edge.islands import GraphNode, activation_products, fp32_islands
from linearsr_edge.model.tracing import EXPORT_BATCH, guard_small_eps
from linearsr_edge.specs import ComponentSpec
from linearsr_edge.targets import Exporter, expert_calibration, quiet_library

log = logging.getLogger(__name__)

# OpenVINO op types in the ONNX spelling the island rule uses
_OV_OPS = {
    "Multiply": "Mul",
    "Divide": "Div",
    "Power": "Pow",
    "Subtract": "Sub",
    "Convert": "Cast",
    "Broadcast": "Expand",
    "SoftMax": "Softmax",
    "ScaledDotProductAttention": "Attention",
}
PRECISE = "precise"  # the IR name of OpenVINO's DisableFP16Compression runtime attribute
PRECISE_KEYS = ("DisablePrecisionConversion_0", "precise_0", "disable_fp16_compression_0")  # as read, by version


def ov_graph_nodes(model) -> tuple[list[GraphNode], set[str]]:
    """The model as `GraphNode` rows (values named ``node:port``) and the names of nodes with float outputs."""
    nodes, real = [], set()
    for op in model.get_ordered_ops():
        name = op.get_friendly_name()
        inputs = tuple(
            f"{i.get_source_output().get_node().get_friendly_name()}:{i.get_source_output().get_index()}"
            for i in op.inputs()
        )
        outputs = tuple(f"{name}:{k}" for k in range(op.get_output_size()))
        nodes.append(GraphNode(name, _OV_OPS.get(op.get_type_name(), op.get_type_name()), inputs, outputs))
        if op.get_output_size() and op.get_output_element_type(0).is_real():
            real.add(name)
    return nodes, real


def island_names(model) -> list[str]:
    """The float nodes of the FP32 islands."""
    nodes, real = ov_graph_nodes(model)
    return [n for n in fp32_islands(nodes) if n in real]


def product_names(model) -> list[str]:
    """The float activation x activation products (modulation, gates)."""
    nodes, real = ov_graph_nodes(model)
    return [n for n in activation_products(nodes) if n in real]


def convert(module: torch.nn.Module, spec: ComponentSpec):
    """``ov.Model`` of ``module`` with the spec's input/output names and symbolic axes."""
    import openvino as ov

    guarded, raised = guard_small_eps(module)
    if raised:
        log.info("%s: raised eps < 1e-8 to 1e-6 in %d modules for export", spec.name, len(raised))
    examples = spec.dummy_inputs("opt", batch=EXPORT_BATCH)
    inputs = [
        (t.name, ov.PartialShape([-1 if isinstance(d, str) else d for d in t.shape]), ov.Type(np.dtype(t.dtype)))
        for t in spec.inputs
    ]
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            model = ov.convert_model(
                guarded.eval(),
                example_input=tuple(torch.from_numpy(examples[n]) for n in spec.input_names),
                input=inputs,
            )
    except Exception as exc:  # the frontend raises OpConversionFailure, RuntimeError and others
        log.warning("%s: OpenVINO's PyTorch frontend failed (%s); converting through ONNX", spec.name, exc)
        model = _convert_via_onnx(guarded, spec)
    # the frontend may rename inputs (seen: the decoder's 'latent' came out as '3'); ports keep the
    # forward signature's order, so the spec's names are set on every port
    for port, t in zip((*model.inputs, *model.outputs), (*spec.inputs, *spec.outputs), strict=True):
        port.get_tensor().set_names({t.name})
    check_symbolic_axes(model, spec)
    return model


def _convert_via_onnx(module: torch.nn.Module, spec: ComponentSpec):
    import onnx
    import openvino as ov

    proto = torch_export_onnx(module, spec)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"{spec.name}.onnx"
        onnx.save(proto, str(path))
        try:
            return ov.convert_model(str(path))
        except Exception as exc:
            raise ExportError(f"{spec.name}: OpenVINO converts neither the module nor its ONNX graph: {exc}") from None


def check_symbolic_axes(model, spec: ComponentSpec) -> None:
    """Inputs carry the spec's names, and every axis the spec calls symbolic is dynamic in the model."""
    names = {p.get_any_name(): p for p in model.inputs}
    for t in spec.inputs:
        if t.name not in names:
            raise ExportError(f"{spec.name}: converted model has no input {t.name!r} (has {sorted(names)})")
        shape = names[t.name].get_partial_shape()
        for axis, d in enumerate(t.shape):
            if isinstance(d, str) and not shape[axis].is_dynamic:
                raise ExportError(f"{spec.name}.{t.name}: axis {axis} ({d}) was frozen to {shape[axis]} by conversion")


def mark_precise(xml_path: Path, names: Sequence[str]) -> int:
    """Add the ``precise`` runtime attribute to the named layers of a saved IR; returns how many."""
    tree = ET.parse(xml_path)
    wanted, marked = set(names), 0
    for layer in tree.getroot().iter("layer"):
        if layer.get("name") not in wanted:
            continue
        rt = layer.find("rt_info")
        if rt is None:
            rt = ET.Element("rt_info")
            data = layer.find("data")
            layer.insert(0 if data is None else list(layer).index(data) + 1, rt)
        if not any(a.get("name") == PRECISE for a in rt.findall("attribute")):
            ET.SubElement(rt, "attribute", {"name": PRECISE, "version": "0"})
        marked += 1
    tree.write(xml_path, encoding="utf-8", xml_declaration=True)
    return marked


def precise_nodes(model) -> list[str]:
    """Names of the nodes OpenVINO will keep in their original (FP32) precision."""
    return [
        op.get_friendly_name() for op in model.get_ordered_ops() if any(k in op.get_rt_info() for k in PRECISE_KEYS)
    ]


def save_ir(model, path: Path, compress_to_fp16: bool, metadata: dict[str, str] | None = None) -> list[Path]:
    """Save ``path`` (.xml) and its .bin, with ``metadata`` in the model's ``rt_info`` (under ``linearsr``), then
    mark the FP32 islands as found in the saved graph."""
    import openvino as ov

    for key, value in (metadata or {}).items():
        model.set_rt_info(str(value), ["linearsr", key.removeprefix("linearsr.")])
    ov.save_model(model, str(path), compress_to_fp16=compress_to_fp16)
    saved = ov.Core().read_model(str(path))
    islands = island_names(saved)
    marked = mark_precise(path, islands)
    if marked < len(set(islands)):
        raise ExportError(f"{path.name}: marked {marked} of {len(set(islands))} FP32 island nodes (names not unique?)")
    return [path, path.with_suffix(".bin")]


class OVExporter(Exporter):
    """``ov-fp32``; ``ov-fp16`` sets `compress_to_fp16`."""

    suffix = ".xml"
    compress_to_fp16 = False

    def export(self, module: torch.nn.Module, spec: ComponentSpec, folder: Path, calibration=None) -> list[Path]:
        return self._save(convert(module, spec), module, spec, folder)

    def _save(self, model, module: torch.nn.Module, spec: ComponentSpec, folder: Path) -> list[Path]:
        from linearsr_edge.backends.openvino.options import OVOptions
        from linearsr_edge.backends.openvino.session import OVSession

        files = save_ir(model, folder / f"{spec.name}{self.suffix}", self.compress_to_fp16, self.metadata_for(spec))
        session = OVSession(files[0], spec, OVOptions(device="CPU", precision_hint="f32"))
        verify_finite(session, module, spec, fmt="OpenVINO")
        return files


class OVFP16Exporter(OVExporter):
    compress_to_fp16 = True


def int8_weights(model) -> list[tuple[str, tuple[int, ...], int]]:
    """``(name, shape, largest |w|)`` of every INT8 weight constant that a pair-summing kernel reads: all but
    depthwise kernels (group-convolution weights ``[G, 1, 1, kh, kw]``), which sum no channel pairs."""
    import openvino as ov

    out = []
    for op in model.get_ordered_ops():
        if op.get_type_name() != "Constant" or op.get_output_element_type(0) != ov.Type.i8:
            continue
        shape = tuple(op.get_output_shape(0))
        if len(shape) == 5 and shape[1] == shape[2] == 1:
            continue
        out.append((op.get_friendly_name(), shape, int(np.abs(op.get_data().astype(np.int16)).max(initial=0))))
    return out


class OVInt8Exporter(OVExporter):
    """Experts: NNCF INT8 calibrated on their own band. Encoder/decoder: FP32 (no band data)."""

    def __init__(self, options: OVInt8Options | None = None) -> None:
        super().__init__(options or OVInt8Options())
        self.ignored: dict[str, int] = {}
        self.largest_weight: dict[str, int] = {}

    def sections(self) -> dict:
        section = OpenVINOSection(dict(self.ignored))
        if self.largest_weight:
            overflow_fix = "all MatMul/Conv" if self.options.overflow_fix else "first layer (NNCF default)"
            record = Int8WeightsRecord(overflow_fix, max(self.largest_weight.values()), dict(self.largest_weight))
            section = OpenVINOSection(dict(self.ignored), record)
        return {"openvino": section}

    def export(
        self,
        module: torch.nn.Module,
        spec: ComponentSpec,
        folder: Path,
        calibration: Sequence[dict[str, np.ndarray]] | None = None,
    ) -> list[Path]:
        calibration = expert_calibration(spec, calibration)
        if calibration is None:
            return super().export(module, spec, folder)
        model = convert(module, spec)
        files = self._save(quantize(model, calibration, self.options, spec.name, self.ignored), module, spec, folder)
        import openvino as ov

        weights = int8_weights(ov.Core().read_model(str(files[0])))
        if weights:
            self.largest_weight[spec.name] = max(w for _, _, w in weights)
        return files


def quantize(model, feeds: Sequence[dict[str, np.ndarray]], options: OVInt8Options, name: str, record: dict) -> object:
    """``nncf.quantize`` on this component's own calibration feeds, keeping the policy's nodes FP32
    (or, with ``options.weights_only``, ``nncf.compress_weights`` to INT8, no data needed)."""
    import nncf
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters

    if options.weights_only:
        with quiet_library("nncf"):
            return nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
    ignored = island_names(model) + product_names(model) if options.keep_fp32 == "policy" else []
    record[name] = len(ignored)
    preset = {"performance": nncf.QuantizationPreset.PERFORMANCE, "mixed": nncf.QuantizationPreset.MIXED}
    overflow = nncf.OverflowFix.ENABLE if options.overflow_fix else nncf.OverflowFix.FIRST_LAYER
    advanced = AdvancedQuantizationParameters(overflow_fix=overflow)
    with quiet_library("nncf"):
        return nncf.quantize(
            model,
            nncf.Dataset(list(feeds)),
            preset=preset[options.preset],
            model_type=nncf.ModelType.TRANSFORMER,
            subset_size=len(feeds),
            fast_bias_correction=options.fast_bias_correction,
            ignored_scope=nncf.IgnoredScope(names=ignored, validate=False),
            advanced_parameters=advanced,
        )
