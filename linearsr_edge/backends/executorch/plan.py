"""What the ExecuTorch family records in a bundle's manifest (``families.executorch``): per program, what XNNPACK
runs and what is left to ExecuTorch's portable kernels, and for ``et-int8`` what was quantized.

Plain data, no ExecuTorch import: read by any install that reads manifests.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Rows per call of every program: the programs are exported at batch 1 (height, width and the tag length
# dynamic) and a batch runs row by row (the size policy's ``max_batch``). ExecuTorch 1.5.1 lowers a dynamic
# batch axis wrongly for this model: an expert traced at batch 2 fails at batch 1 in XNNPACK's shape
# propagation, and the adaLN modulation alone either cannot be written as a program (``_ViewSpec is
# incompatible with its base``) or, its views kept as copies, is specialised to batch 2
# (tests/backends/executorch/test_executorch.py pins both).
ROWS_PER_CALL = 1


@dataclass(frozen=True)
class ProgramRecord:
    """One component's ``.pte``: the ops inside XNNPACK's delegates, the ops left outside them (by name), the
    activation memory its plan reserves, and for INT8 the products quantized and the nodes kept FP32.

    ``planned_bytes``: ExecuTorch plans every intermediate tensor at its largest size (the profile's maximum)
    and the runtime allocates the plan when it loads the program, whatever frame then runs (384 MiB for a demo
    expert at 1024x1024).
    """

    delegates: int
    delegated_ops: int
    portable_ops: dict[str, int] = field(default_factory=dict)
    quantized: int = 0
    kept_fp32: int = 0
    planned_bytes: int = 0


@dataclass(frozen=True)
class ExecuTorchSection:
    executorch: str  # the exporting package's version
    delegate: str = "xnnpack"
    rows_per_call: int = ROWS_PER_CALL
    components: dict[str, ProgramRecord] = field(default_factory=dict)
