"""Every Core ML call that needs macOS, behind one small interface (`CoreML`): compile a package, load the
compiled model on the compute units asked for, predict, and calibrate activation quantization (which predicts).

Nothing else in the family predicts or compiles: the session's shape plans, cond tiling, row splitting and
compiled-model cache are plain Python over this interface, and the Linux tests drive them with an
implementation of the same interface that runs the component's ONNX graph in ONNX Runtime
(``tests/backends/coreml``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from linearsr_edge.errors import BundleError
from linearsr_edge.targets import quiet_library


def installed_version() -> str:
    """The installed coremltools' version (for reports and the compiled-model cache key)."""
    import coremltools as ct

    return ct.__version__


class CoreML:
    """The vendor: coremltools' compiler and ``CompiledMLModel``."""

    def __init__(self) -> None:
        import coremltools as ct

        self.ct = ct

    def version(self) -> str:
        return self.ct.__version__

    def compile(self, package: Path, destination: Path) -> Path:
        """``package`` (.mlpackage) compiled to ``destination`` (.mlmodelc); returns the compiled folder."""
        from coremltools.models.utils import compile_model

        try:
            return Path(compile_model(str(package), str(destination)))
        except Exception as exc:  # Core ML's compiler raises RuntimeError / Exception with its message
            raise BundleError(f"Core ML cannot compile {package.name}: {exc}") from None

    def load(self, compiled: Path, compute_units: str):
        try:
            return self.ct.models.CompiledMLModel(
                str(compiled), compute_units=getattr(self.ct.ComputeUnit, compute_units)
            )
        except Exception as exc:  # Core ML raises RuntimeError / Exception with the framework's message
            raise BundleError(f"Core ML cannot load {compiled.name}: {exc}") from None

    def predict(self, model, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return model.predict(feeds)

    def quantize_activations(self, model, keep: set[str], samples: list[dict[str, np.ndarray]]):
        """``model`` with INT8 activations calibrated on ``samples`` (coremltools runs predictions: macOS only),
        the ops in ``keep`` left in float."""
        from coremltools.optimize.coreml import OpLinearQuantizerConfig, OptimizationConfig, linear_quantize_activations

        config = OptimizationConfig(
            global_config=OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8"),
            op_name_configs=dict.fromkeys(sorted(keep)),
        )
        with quiet_library("coremltools", logging.ERROR):  # its progress bars
            return linear_quantize_activations(model, config, sample_data=samples)
