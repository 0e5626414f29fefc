"""Shared builders for tests: tiny model folders and photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from linearsr_edge.model.codec import PixelUnshuffleCodec
from linearsr_edge.model.experts import SNRExperts
from linearsr_edge.model.folder import save_model_folder
from linearsr_edge.specs import Profile
from linearsr_edge.tags import NULL_TAG, TagVocabulary
from tests.conftest import tiny_config

TINY_PROFILE = Profile(min_hw=(16, 16), opt_hw=(32, 48), max_hw=(128, 128), batch=(1, 1, 4), cond_len=(1, 2, 8))


def tiny_model_folder(path: Path, seed: int = 0) -> Path:
    torch.manual_seed(seed)
    cfg = tiny_config()
    experts = SNRExperts(cfg)
    with torch.no_grad():  # random but not degenerate: perturb the zero-initialised-looking paths
        for p in experts.parameters():
            p.add_(0.02 * torch.randn_like(p))
    tags = TagVocabulary(("portrait", "animal", NULL_TAG), np.random.default_rng(seed).standard_normal((3, 8)))
    return save_model_folder(path, experts, PixelUnshuffleCodec(2), tags)


def write_photo(path: Path, h: int = 20, w: int = 28, seed: int = 0) -> Path:
    """A smooth random colour image (a real photo's statistics matter little for parity)."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (h // 4 + 1, w // 4 + 1, 3), dtype=np.uint8)
    img = Image.fromarray(small).resize((w, h), Image.BICUBIC)
    img.save(path)
    return path


def export_tiny(root: Path, target: str, name: str | None = None, **overrides):
    """Export the tiny model (built under ``root`` once) to ``root / (name or target)``; returns the
    `ExportResult`. Calibration photos and the parity photo are made under ``root`` too."""
    from linearsr_edge.build import ExportOptions, build_bundle
    from linearsr_edge.targets import get_target

    model = root / "model"
    if not (model / "config.json").is_file():
        tiny_model_folder(model)
        (root / "calib").mkdir(exist_ok=True)
        for i in range(5):
            write_photo(root / "calib" / f"p{i}.png", 24, 32, seed=i)
        write_photo(root / "photo.png")
    calibrated = get_target(target).calibration != "none"
    opts = dict(
        target=target,
        out=root / (name or target),
        checkpoint=model,
        profile=TINY_PROFILE,
        progress=False,
        **(
            {"calib_dir": root / "calib", "calibration": tiny_calibration()}
            if calibrated
            else {"parity_image": root / "photo.png"}
        ),
    )
    opts.update(overrides)
    return build_bundle(ExportOptions(**opts))


def tiny_calibration():
    from linearsr_edge.calibration import CalibrationOptions

    return CalibrationOptions(samples_per_expert=8, heldout_samples_per_expert=3, crop=16, progress=False)


def export_args(model: Path, out: Path, *extra: str, target: str = "onnx-fp32") -> list[str]:
    """``linearsr-export`` arguments for the tiny model at a small profile (outputs 16..128 px)."""
    return [
        "--target", target, "--checkpoint", str(model), "--out", str(out), "-q",
        "--max-resolution", "128x128", "--min-resolution", "16x16", "--opt-resolution", "32x32",
        *extra,
    ]  # fmt: skip


def rehash(path: Path, *rels: str) -> None:
    """Make replaced files pass the bundle's hash check: the bundle is internally consistent, only its content
    is wrong."""
    import json

    from linearsr_edge.bundle import sha256_file

    manifest = json.loads((path / "manifest.json").read_text())
    for rel in rels:
        manifest["files"][rel] = sha256_file(path / rel)
    (path / "manifest.json").write_text(json.dumps(manifest))
