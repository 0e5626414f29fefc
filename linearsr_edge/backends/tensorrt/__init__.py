"""The TensorRT family: the ``trt-fp16`` and ``trt-int8`` targets (ONNX graphs and a build recipe; engines are
built on the device) and the ``tensorrt`` backend (Jetson, NVIDIA GPUs). `register` is its one registration.

Every TensorRT and CUDA call sits in `linearsr_edge.backends.tensorrt.adapter`; the rest of the family is
plain Python over plain data and runs in Linux tests.
"""

from __future__ import annotations

from linearsr_edge.backends.onnx import EXPORT_REQUIRES
from linearsr_edge.backends.tensorrt.adapter import installed_version
from linearsr_edge.backends.tensorrt.options import TRTOptions, TRTRuntimeOptions
from linearsr_edge.backends.tensorrt.plan import TensorRTSection
from linearsr_edge.manifest import register_section
from linearsr_edge.pipeline.session import BackendInfo, register_backend
from linearsr_edge.precision import Precision
from linearsr_edge.targets import TargetInfo, register_target


def register() -> None:
    register_section("tensorrt", TensorRTSection)
    exporters = "linearsr_edge.backends.tensorrt.export"
    register_target(
        TargetInfo(
            name="trt-fp16",
            format="tensorrt",
            precision=Precision.FP16,
            requires=(*EXPORT_REQUIRES, "onnxconverter_common"),
            extra="export",
            description="TensorRT strongly typed FP16 (FP32 islands); engines built on the device",
            exporter=f"{exporters}:TRTFP16Exporter",
            options=TRTOptions,
            calibration="heldout",
            verified_by=("tensorrt",),
        )
    )
    register_target(
        TargetInfo(
            name="trt-int8",
            format="tensorrt",
            precision=Precision.INT8,
            requires=EXPORT_REQUIRES,
            extra="export",
            description="TensorRT explicit INT8 (symmetric S8 Q/DQ per expert band); engines built on the device",
            exporter=f"{exporters}:TRTInt8Exporter",
            options=TRTOptions,
            calibration="full",
            verified_by=("tensorrt",),
        )
    )
    register_backend(
        BackendInfo(
            name="tensorrt",
            formats=("tensorrt",),
            requires=("tensorrt", "cuda"),
            extra="tensorrt",
            priority=30,
            runtime="linearsr_edge.backends.tensorrt.session:TRTBackend",
            options=TRTRuntimeOptions,
            version=installed_version,
        )
    )
