"""What the OpenVINO family records in a bundle's manifest (``families.openvino``), and the precision-hint rule.

Plain data, no OpenVINO import.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# x86 without VNNI multiplies U8 activations by S8 weights and adds the products in pairs into int16
# (vpmaddubsw): 2 x 255 x 64 = 32,640 fits, 2 x 255 x 127 = 64,770 saturates.
PAIR_SAFE_WEIGHT = 64

HINT_TYPES = {"f32": "f32", "float32": "f32", "bf16": "bf16", "bfloat16": "bf16", "f16": "f16", "float16": "f16"}


@dataclass(frozen=True)
class Int8WeightsRecord:
    """The INT8 weights as read back from the saved IR: what the recipe gave, not what it asked for."""

    overflow_fix: str  # "all MatMul/Conv" | "first layer (NNCF default)"
    largest_abs_weight: int
    per_component: dict[str, int]

    @property
    def exact_without_vnni(self) -> bool:
        """No U8 x S8 pair sum can saturate int16: the same result with or without VNNI."""
        return self.largest_abs_weight <= PAIR_SAFE_WEIGHT


@dataclass(frozen=True)
class OpenVINOSection:
    int8_ignored_nodes: dict[str, int] = field(default_factory=dict)  # expert -> nodes kept FP32 by the policy
    int8_weights: Int8WeightsRecord | None = None


def hint_mismatch(asked: str, in_force: str, device: str, capabilities: list[str]) -> str | None:
    """Why OpenVINO runs another precision than the hint asked (None when it runs the one asked), in one line:
    a CPU without BF16 (or FP16) arithmetic falls back silently, which a user asking for speed must hear."""
    in_force = HINT_TYPES.get(in_force.lower(), in_force)
    if in_force == asked:
        return None
    has = " ".join(capabilities) or "none reported"
    return (
        f"OpenVINO runs {in_force}, not the {asked} asked for: {device} lacks {asked} arithmetic "
        f"(its capabilities: {has}); drop --precision-hint {asked}, or run on a device that has it"
    )
