"""The ONNX Runtime family: the ``onnx-fp32``, ``onnx-fp16`` and ``onnx-int8`` targets and the ``onnxruntime``
backend (CPU everywhere; CUDA, TensorRT, OpenVINO and CoreML execution providers where installed).

`register` is this family's one registration, called once by `linearsr_edge.backends`; nothing heavy is
imported here (exporters and sessions are named by ``"module:name"`` and imported when used).
"""

from __future__ import annotations

from linearsr_edge.backends.onnx.options import OnnxInt8Options, OrtOptions
from linearsr_edge.backends.onnx.plan import OnnxSection
from linearsr_edge.manifest import register_section
from linearsr_edge.pipeline.session import BackendInfo, register_backend
from linearsr_edge.precision import Precision
from linearsr_edge.targets import TargetInfo, register_target

EXPORT_REQUIRES = ("torch", "onnx", "onnxruntime", "onnxscript")


def _version() -> str:
    import onnxruntime as ort

    return ort.__version__


def register() -> None:
    register_section("onnx", OnnxSection)
    register_target(
        TargetInfo(
            name="onnx-fp32",
            format="onnx",
            precision=Precision.FP32,
            requires=EXPORT_REQUIRES,
            extra="export",
            description="ONNX opset 18, FP32; runs anywhere with ONNX Runtime",
            exporter="linearsr_edge.backends.onnx.export:ONNXExporter",
        )
    )
    register_target(
        TargetInfo(
            name="onnx-fp16",
            format="onnx",
            precision=Precision.FP16,
            requires=(*EXPORT_REQUIRES, "onnxconverter_common"),
            extra="export",
            description="ONNX FP16 with FP32 linear-attention islands; FP32 I/O",
            exporter="linearsr_edge.backends.onnx.precision:ONNXFP16Exporter",
            calibration="heldout",
        )
    )
    register_target(
        TargetInfo(
            name="onnx-int8",
            format="onnx",
            precision=Precision.INT8,
            requires=EXPORT_REQUIRES,
            extra="export",
            description="ONNX static QDQ INT8 per expert, calibrated on its own log-SNR band",
            exporter="linearsr_edge.backends.onnx.precision:ONNXInt8Exporter",
            options=OnnxInt8Options,
            calibration="full",
        )
    )
    register_backend(
        BackendInfo(
            name="onnxruntime",
            formats=("onnx", "tensorrt"),  # a TensorRT bundle's graphs are ONNX (TensorRT EP on NVIDIA, CPU anywhere)
            requires=("onnxruntime",),
            extra="onnx",
            priority=10,
            runtime="linearsr_edge.backends.onnx.session:OrtBackend",
            options=OrtOptions,
            version=_version,
            gemm_probe="linearsr_edge.backends.onnx.session:gemm_gflops",
            int8_gemm_probe="linearsr_edge.backends.onnx.session:int8_gemm_gops",
        )
    )
