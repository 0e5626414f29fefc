"""The demo LinearSR shipped inside the package (4x, 4 SNR experts, tag conditioning) and its sample photos."""

from __future__ import annotations

from pathlib import Path

from linearsr_edge.errors import CheckpointError

DEMO_DIR = Path(__file__).resolve().parent
SAMPLES_DIR = DEMO_DIR / "samples"


def load_demo():
    """The demo LinearSR shipped inside the package (4x, 4 SNR experts, tag conditioning)."""
    from linearsr_edge.reference import load_model_folder

    if not (DEMO_DIR / "experts.safetensors").is_file():
        raise CheckpointError(
            f"the demo weights are missing from {DEMO_DIR}; regenerate them with python tools/train_demo.py"
        )
    return load_model_folder(DEMO_DIR)


def sample_images() -> list[Path]:
    """The sample low-resolution photos shipped with the demo."""
    return sorted(SAMPLES_DIR.glob("*.png"))
