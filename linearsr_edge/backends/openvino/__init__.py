"""The OpenVINO family: the ``ov-fp32``, ``ov-fp16`` and ``ov-int8`` targets (IR ``.xml`` + ``.bin``) and the
``openvino`` backend (Intel CPU, iGPU, NPU, AUTO). `register` is its one registration."""

from __future__ import annotations

from linearsr_edge.backends.openvino.options import OVInt8Options, OVOptions
from linearsr_edge.backends.openvino.plan import OpenVINOSection
from linearsr_edge.manifest import register_section
from linearsr_edge.pipeline.session import BackendInfo, register_backend
from linearsr_edge.precision import Precision
from linearsr_edge.targets import TargetInfo, register_target

EXPORT_REQUIRES = ("torch", "openvino")


def _version() -> str:
    import openvino as ov

    return ov.get_version()


def register() -> None:
    register_section("openvino", OpenVINOSection)
    exporters = "linearsr_edge.backends.openvino.export"
    register_target(
        TargetInfo(
            name="ov-fp32",
            format="openvino",
            precision=Precision.FP32,
            requires=EXPORT_REQUIRES,
            extra="openvino-export",
            description="OpenVINO IR, FP32; Intel CPU, iGPU, NPU",
            exporter=f"{exporters}:OVExporter",
        )
    )
    register_target(
        TargetInfo(
            name="ov-fp16",
            format="openvino",
            precision=Precision.FP16,
            requires=EXPORT_REQUIRES,
            extra="openvino-export",
            description="OpenVINO IR, FP16-compressed weights; FP32 islands marked precise",
            exporter=f"{exporters}:OVFP16Exporter",
            calibration="heldout",
        )
    )
    register_target(
        TargetInfo(
            name="ov-int8",
            format="openvino",
            precision=Precision.INT8,
            requires=(*EXPORT_REQUIRES, "nncf"),
            extra="openvino-export",
            description="OpenVINO IR, NNCF INT8 per expert, calibrated on its own log-SNR band",
            exporter=f"{exporters}:OVInt8Exporter",
            options=OVInt8Options,
            calibration="full",
        )
    )
    register_backend(
        BackendInfo(
            name="openvino",
            formats=("openvino",),
            requires=("openvino",),
            extra="openvino",
            priority=10,
            runtime="linearsr_edge.backends.openvino.session:OVBackend",
            options=OVOptions,
            version=_version,
            parity_options=OVOptions(device="CPU", precision_hint="f32", cache=False),
            gemm_probe="linearsr_edge.backends.openvino.session:gemm_gflops",
            int8_gemm_probe="linearsr_edge.backends.openvino.session:int8_gemm_gops",
        )
    )
