"""Exporters, registered by target name. Importing this package registers the built-in targets
(and nothing heavy: each exporter module is imported when an export runs)."""

from linearsr_edge.exporters.base import (
    Exporter,
    NoOptions,
    TargetInfo,
    all_targets,
    get_target,
    register_target,
    target_names,
)
from linearsr_edge.exporters.coreml_options import CoreMLInt8Options, CoreMLOptions
from linearsr_edge.exporters.onnx_options import OnnxInt8Options
from linearsr_edge.exporters.openvino_options import OVInt8Options
from linearsr_edge.exporters.tensorrt_options import TRTOptions
from linearsr_edge.precision import Precision

_ONNX = ("torch", "onnx", "onnxruntime", "onnxscript")
_OV = ("torch", "openvino")
_COREML = ("torch", "coremltools")

register_target(
    TargetInfo(
        name="onnx-fp32",
        format="onnx",
        precision=Precision.FP32,
        requires=_ONNX,
        extra="export",
        description="ONNX opset 18, FP32; runs anywhere with ONNX Runtime",
        exporter="linearsr_edge.exporters.onnx:ONNXExporter",
    )
)
register_target(
    TargetInfo(
        name="onnx-fp16",
        format="onnx",
        precision=Precision.FP16,
        requires=(*_ONNX, "onnxconverter_common"),
        extra="export",
        description="ONNX FP16 with FP32 linear-attention islands; FP32 I/O",
        exporter="linearsr_edge.exporters.onnx_precision:ONNXFP16Exporter",
        calibration="heldout",
    )
)
register_target(
    TargetInfo(
        name="onnx-int8",
        format="onnx",
        precision=Precision.INT8,
        requires=_ONNX,
        extra="export",
        description="ONNX static QDQ INT8 per expert, calibrated on its own log-SNR band",
        exporter="linearsr_edge.exporters.onnx_precision:ONNXInt8Exporter",
        options=OnnxInt8Options,
        calibration="full",
    )
)

register_target(
    TargetInfo(
        name="ov-fp32",
        format="openvino",
        precision=Precision.FP32,
        requires=_OV,
        extra="openvino-export",
        description="OpenVINO IR, FP32; Intel CPU, iGPU, NPU",
        exporter="linearsr_edge.exporters.openvino:OVExporter",
    )
)
register_target(
    TargetInfo(
        name="ov-fp16",
        format="openvino",
        precision=Precision.FP16,
        requires=_OV,
        extra="openvino-export",
        description="OpenVINO IR, FP16-compressed weights; FP32 islands marked precise",
        exporter="linearsr_edge.exporters.openvino:OVFP16Exporter",
        calibration="heldout",
    )
)
register_target(
    TargetInfo(
        name="ov-int8",
        format="openvino",
        precision=Precision.INT8,
        requires=(*_OV, "nncf"),
        extra="openvino-export",
        description="OpenVINO IR, NNCF INT8 per expert, calibrated on its own log-SNR band",
        exporter="linearsr_edge.exporters.openvino:OVInt8Exporter",
        options=OVInt8Options,
        calibration="full",
    )
)

register_target(
    TargetInfo(
        name="trt-fp16",
        format="tensorrt",
        precision=Precision.FP16,
        requires=(*_ONNX, "onnxconverter_common"),
        extra="export",
        description="TensorRT strongly typed FP16 (FP32 islands); engines built on the device",
        exporter="linearsr_edge.exporters.tensorrt:TRTFP16Exporter",
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
        requires=_ONNX,
        extra="export",
        description="TensorRT explicit INT8 (symmetric S8 Q/DQ per expert band); engines built on the device",
        exporter="linearsr_edge.exporters.tensorrt:TRTInt8Exporter",
        options=TRTOptions,
        calibration="full",
        verified_by=("tensorrt",),
    )
)

register_target(
    TargetInfo(
        name="coreml-fp16",
        format="coreml",
        precision=Precision.FP16,
        requires=_COREML,
        extra="coreml-export",
        description="Core ML ML program, FP16 with FP32 linear-attention islands; Apple silicon (verified on macOS)",
        exporter="linearsr_edge.exporters.coreml:CoreMLExporter",
        options=CoreMLOptions,
        calibration="heldout",
    )
)
register_target(
    TargetInfo(
        name="coreml-int8",
        format="coreml",
        precision=Precision.INT8,
        requires=_COREML,
        extra="coreml-export",
        description="Core ML FP16 (FP32 islands) with per-channel INT8 or 4/6-bit palettized weights",
        exporter="linearsr_edge.exporters.coreml:CoreMLInt8Exporter",
        options=CoreMLInt8Options,
        calibration="heldout",
    )
)
register_target(
    TargetInfo(
        name="coreml-w8a8",
        format="coreml",
        precision=Precision.INT8,
        requires=_COREML,
        extra="coreml-export",
        description="Core ML INT8 weights and activations, each expert calibrated on its own band (macOS only)",
        exporter="linearsr_edge.exporters.coreml:CoreMLW8A8Exporter",
        options=CoreMLInt8Options,
        calibration="full",
        platforms=("darwin",),
        platform_note=(
            "activation quantization runs Core ML predictions, which exist on macOS only; "
            "export coreml-int8 (INT8 weights) here, or coreml-w8a8 on a Mac"
        ),
    )
)

__all__ = [
    "CoreMLInt8Options",
    "CoreMLOptions",
    "Exporter",
    "NoOptions",
    "OVInt8Options",
    "OnnxInt8Options",
    "TRTOptions",
    "TargetInfo",
    "all_targets",
    "get_target",
    "register_target",
    "target_names",
]
