"""The ExecuTorch family: the ``et-fp32`` and ``et-int8`` targets (one XNNPACK-delegated ``.pte`` per component,
for Android phones and Arm boards; the same files run on x86) and the ``executorch`` backend. `register` is its
one registration.

ExecuTorch runs on this machine, so the whole family, export and runtime, is tested here end to end; there
is no adapter to keep thin. Its delegates other than XNNPACK (Core ML, Qualcomm QNN, Vulkan, Arm Ethos-U) would
be more targets of this family.
"""

from __future__ import annotations

from linearsr_edge.backends.executorch.options import EtInt8Options, EtOptions
from linearsr_edge.backends.executorch.plan import ExecuTorchSection
from linearsr_edge.manifest import register_section
from linearsr_edge.pipeline.session import BackendInfo, register_backend
from linearsr_edge.precision import Precision
from linearsr_edge.targets import TargetInfo, register_target

EXPORT_REQUIRES = ("torch", "executorch", "torchao")


def _version() -> str:
    from importlib.metadata import version

    return version("executorch")


def register() -> None:
    register_section("executorch", ExecuTorchSection)
    exporters = "linearsr_edge.backends.executorch.export"
    register_target(
        TargetInfo(
            name="et-fp32",
            format="executorch",
            precision=Precision.FP32,
            requires=EXPORT_REQUIRES,
            extra="executorch",
            description="ExecuTorch program per component, FP32 on XNNPACK; Android and Arm CPUs (x86 too)",
            exporter=f"{exporters}:EtExporter",
        )
    )
    register_target(
        TargetInfo(
            name="et-int8",
            format="executorch",
            precision=Precision.INT8,
            requires=EXPORT_REQUIRES,
            extra="executorch",
            description="ExecuTorch XNNPACK INT8 (PT2E) per expert, calibrated on its own log-SNR band",
            exporter=f"{exporters}:EtInt8Exporter",
            options=EtInt8Options,
            calibration="full",
        )
    )
    register_backend(
        BackendInfo(
            name="executorch",
            formats=("executorch",),
            # ExecuTorch's Python runtime links libtorch: PyTorch comes with it
            requires=("executorch", "torch"),
            extra="executorch",
            priority=10,
            runtime="linearsr_edge.backends.executorch.session:EtBackend",
            options=EtOptions,
            version=_version,
        )
    )
