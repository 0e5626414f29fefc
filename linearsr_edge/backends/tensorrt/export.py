"""TensorRT targets: ``trt-fp16`` and ``trt-int8`` as ONNX graphs built into engines *on the device*.

Engines are not portable across GPUs or TensorRT versions, so the export writes the graphs, a
build recipe (optimization profiles from each `ComponentSpec`'s min/opt/max shapes, workspace,
timing cache, ready ``trtexec`` lines, and ``build_engines.sh``) and leaves the bundle
``"verified": false`` until ``linearsr-build-engines`` builds and checks the engines there.

- ``trt-fp16`` is the ``onnx-fp16`` graph: FP16 with explicit Casts around the FP32 islands, for a
  *strongly typed* network (TensorRT 10.3 to 11; TensorRT 11 dropped the FP16/INT8 builder flags:
  every tensor's type comes from the graph). `check_strongly_typed` refuses a graph that needs
  TensorRT to pick a type.
- ``trt-int8`` is explicit quantization the way TensorRT takes it: symmetric INT8 only (every zero
  point 0, so activations are S8, unlike the U8 of ``onnx-int8``), per-channel weights on the output
  axis, per-tensor activations, Q/DQ on both inputs of each quantized MatMul/Conv and none on its
  output (ModelOpt's placement: TensorRT fuses the rest). Calibrated per expert on its band, the FP32
  islands excluded. ONNX Runtime on CPU runs the same S8S8 graph, so its quality gates run here.

This module imports no TensorRT: every decision is a pure function of `linearsr_edge.tensorrt_plan`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from linearsr_edge.backends.onnx.precision import ONNXFP16Exporter, ONNXInt8Exporter
from linearsr_edge.backends.tensorrt.options import TRTOptions
from linearsr_edge.backends.tensorrt.plan import (
    BUILD_SCRIPT,
    TRT_INT8_POLICY,
    build_recipe,
    build_script,
    check_strongly_typed,
)
from linearsr_edge.fileio import atomic_write_text
from linearsr_edge.serial import to_data
from linearsr_edge.specs import ComponentSpec


# -- the exporters --------------------------------------------------------------------------------
class _RecipeMixin:
    """Collects the specs and files exported, and writes the recipe and build script at the end."""

    options: TRTOptions
    int8_policy: dict | None = None

    def _remember(self, spec: ComponentSpec, folder: Path, files: list[Path]) -> list[Path]:
        self._exported = [*getattr(self, "_exported", []), (spec, files[0].name)]
        self._folder = folder
        return files

    def recipe_sections(self) -> dict[str, Any]:
        exported = getattr(self, "_exported", [])
        if not exported:
            return {}
        specs, files = [s for s, _ in exported], {s.name: f for s, f in exported}
        recipe = build_recipe(specs, files, self.options, self.int8_policy)
        script = self._folder / BUILD_SCRIPT
        atomic_write_text(script, build_script(recipe))
        script.chmod(0o755)
        return {"tensorrt": recipe}


class TRTFP16Exporter(_RecipeMixin, ONNXFP16Exporter):
    """The ``onnx-fp16`` graph, checked for strong typing."""

    def __init__(self, options: TRTOptions | None = None) -> None:
        super().__init__(options or TRTOptions())

    def export(self, module, spec, folder, calibration=None) -> list[Path]:
        import onnx

        from linearsr_edge.errors import ExportError

        files = super().export(module, spec, folder, calibration)
        problems = check_strongly_typed(onnx.load(str(files[0]), load_external_data=False))
        if problems:
            raise ExportError(
                f"{spec.name}: the FP16 graph is not valid for a strongly typed TensorRT network: "
                + "; ".join(map(str, problems[:5]))
                + (f" (+{len(problems) - 5} more)" if len(problems) > 5 else "")
            )
        return self._remember(spec, folder, files)

    def sections(self) -> dict:
        return {**super().sections(), **self.recipe_sections()}


class TRTInt8Exporter(_RecipeMixin, ONNXInt8Exporter):
    """Symmetric S8 explicit quantization (`TRT_INT8_POLICY`); encoder and decoder stay FP32."""

    def __init__(self, options: TRTOptions | None = None) -> None:
        super().__init__(TRT_INT8_POLICY)
        self.options = options or TRTOptions()
        self.int8_policy = to_data(TRT_INT8_POLICY)

    def export(self, module, spec, folder, calibration=None) -> list[Path]:
        return self._remember(spec, folder, super().export(module, spec, folder, calibration))

    def sections(self) -> dict:
        return {**super().sections(), **self.recipe_sections()}
