"""The Core ML family's adapter interface implemented with ONNX Runtime, for Linux tests.

Not a fake of Core ML: an implementation of `linearsr_edge.backends.coreml.adapter.CoreML`'s interface in
which "compiling" a package records it, and "predicting" runs the same component's ONNX graph (exported
from the same model) in ONNX Runtime. The family's own code (shape plans read back from the manifest,
cond tiling, row splitting, the compiled-model cache) runs here on every call. Tests that use it say so
in their names (``..._on_onnx_runtime``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import ClassVar

import numpy as np
import onnxruntime as ort

from linearsr_edge.backends.coreml.session import CoreMLBackend


class OrtCoreML:
    graphs: Path  # a folder holding <component>.onnx of the same model (an onnx-fp32 bundle)
    instances: ClassVar[list] = []

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.predicted: list[dict[str, tuple[int, ...]]] = []  # the shapes of every prediction
        type(self).instances.append(self)

    def version(self) -> str:
        return "9.0+onnxruntime-stand-in"

    def compile(self, package: Path, destination: Path) -> Path:
        self.calls["compile"] += 1
        destination.mkdir(parents=True)
        (destination / "compiled-from").write_text(package.name)
        return destination

    def load(self, compiled: Path, compute_units: str):
        self.calls["load"] += 1
        component = (compiled / "compiled-from").read_text().removesuffix(".mlpackage")
        return ort.InferenceSession(str(self.graphs / f"{component}.onnx"), providers=["CPUExecutionProvider"])

    def predict(self, model, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        self.predicted.append({n: a.shape for n, a in feeds.items()})
        names = [o.name for o in model.get_outputs()]
        return dict(zip(names, model.run(names, feeds), strict=True))


def coreml_backend_on(graphs: Path) -> type[CoreMLBackend]:
    """The ``coreml`` backend with its Core ML calls answered by ONNX Runtime on the graphs in ``graphs``."""
    adapter = type("OrtCoreMLOn", (OrtCoreML,), {"graphs": Path(graphs), "instances": []})
    return type("OrtDrivenCoreMLBackend", (CoreMLBackend,), {"adapter": adapter})
