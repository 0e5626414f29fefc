"""The Core ML family: the ``coreml-fp16``, ``coreml-int8`` and ``coreml-w8a8`` targets (one ML program
``.mlpackage`` per component; converts anywhere) and the ``coreml`` backend (macOS only). `register` is its
one registration.

Every Core ML prediction and compile call sits in `linearsr_edge.backends.coreml.adapter`; the rest of the
family is plain Python over plain data and runs in Linux tests.
"""

from __future__ import annotations

from linearsr_edge.backends.coreml.adapter import installed_version
from linearsr_edge.backends.coreml.options import PLATFORM_NOTE, CoreMLInt8Options, CoreMLOptions, CoreMLRuntimeOptions
from linearsr_edge.backends.coreml.plan import CoreMLSection
from linearsr_edge.manifest import register_section
from linearsr_edge.pipeline.session import BackendInfo, register_backend
from linearsr_edge.precision import Precision
from linearsr_edge.targets import TargetInfo, register_target

EXPORT_REQUIRES = ("torch", "coremltools")


def register() -> None:
    register_section("coreml", CoreMLSection)
    exporters = "linearsr_edge.backends.coreml.export"
    register_target(
        TargetInfo(
            name="coreml-fp16",
            format="coreml",
            precision=Precision.FP16,
            requires=EXPORT_REQUIRES,
            extra="coreml-export",
            description="Core ML program, FP16 with FP32 linear-attention islands; Apple silicon (verified on a Mac)",
            exporter=f"{exporters}:CoreMLExporter",
            options=CoreMLOptions,
            calibration="heldout",
        )
    )
    register_target(
        TargetInfo(
            name="coreml-int8",
            format="coreml",
            precision=Precision.INT8,
            requires=EXPORT_REQUIRES,
            extra="coreml-export",
            description="Core ML FP16 (FP32 islands) with per-channel INT8 or 4/6-bit palettized weights",
            exporter=f"{exporters}:CoreMLInt8Exporter",
            options=CoreMLInt8Options,
            calibration="heldout",
        )
    )
    register_target(
        TargetInfo(
            name="coreml-w8a8",
            format="coreml",
            precision=Precision.INT8,
            requires=EXPORT_REQUIRES,
            extra="coreml-export",
            description="Core ML INT8 weights and activations, each expert calibrated on its own band (macOS only)",
            exporter=f"{exporters}:CoreMLW8A8Exporter",
            options=CoreMLInt8Options,
            calibration="full",
            platforms=("darwin",),
            platform_note=(
                "activation quantization runs Core ML predictions, which exist on macOS only; "
                "export coreml-int8 (INT8 weights) here, or coreml-w8a8 on a Mac"
            ),
        )
    )
    register_backend(
        BackendInfo(
            name="coreml",
            formats=("coreml",),
            requires=("coremltools",),
            extra="coreml",
            priority=20,
            runtime="linearsr_edge.backends.coreml.session:CoreMLBackend",
            options=CoreMLRuntimeOptions,
            version=installed_version,
            platforms=("darwin",),
            platform_note=PLATFORM_NOTE,
        )
    )
