#!/usr/bin/env python
"""Size of the golden set a bundle carries: the demo's (as exported) and a 600M-class expert's.

The golden set's size follows the latent channels, the tag embedding width and the profile's
smallest input, not the parameter count: a 600M-class SANA-style expert (width 1152, depth 28,
a 32-channel f32 autoencoder, 2304-wide text embeddings) is written here with random arrays of
exactly the shapes its golden set holds (random data compresses worse than real latents, so this
is an upper bound).

    python -m benchmarks.golden_size [--bundle bundles/demo-fp32]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np

from linearsr_edge.config import ExpertBand, ModelConfig
from linearsr_edge.quality.golden import GoldenCase, GoldenSet
from linearsr_edge.specs import Profile, component_specs


def synthetic(cfg: ModelConfig, profile: Profile, codec_factor: int, per_expert: int = 2, tags: int = 1) -> int:
    """Bytes of a golden set with random arrays of the shapes ``cfg`` at the profile's smallest size gives."""
    rng = np.random.default_rng(0)
    spec = component_specs(cfg, profile, codec_factor)[0]
    shapes = spec.shapes("min", batch=1, cond_len=tags)
    experts = {
        k: [
            GoldenCase(
                {n: rng.standard_normal(s).astype(np.float32) for n, s in shapes.items()},
                rng.standard_normal(shapes["latent"]).astype(np.float32),
                -0.1,
            )
            for _ in range(per_expert)
        ]
        for k in range(len(cfg.bands))
    }
    side = profile.min_hw[0] // cfg.upscale
    lr = rng.integers(0, 256, (side, side, 3), dtype=np.uint8)
    sr = rng.integers(0, 256, (side * cfg.upscale,) * 2 + (3,), dtype=np.uint8)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "golden.npz"
        GoldenSet(experts, lr, sr, cfg.default_steps, 0).save(path)
        return path.stat().st_size


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundle", type=Path, help="an exported bundle: its golden set's recorded size")
    args = ap.parse_args()
    if args.bundle:
        entry = json.loads((args.bundle / "manifest.json").read_text())["golden"]
        print(
            f"{args.bundle}: golden set {entry['bytes'] / 1024:.0f} KiB ({entry['cases_per_expert']} cases per "
            f"expert at {entry['lr_size'][0]}x{entry['lr_size'][1]} LR)"
        )
    bands = tuple(ExpertBand(lo, hi) for lo, hi in ((None, -2.0), (-2.0, 0.0), (0.0, 2.0), (2.0, None)))
    big = ModelConfig(
        latent_channels=32,
        hidden_size=1152,
        depth=28,
        num_heads=36,
        head_dim=32,
        cross_attn_heads=16,
        cross_attn_head_dim=72,
        cond_dim=2304,
        bands=bands,
    )
    for profile in (
        Profile(min_hw=(256, 256), opt_hw=(1024, 1024), max_hw=(2048, 2048)),
        Profile(min_hw=(512, 512), opt_hw=(1024, 1024), max_hw=(2048, 2048)),
    ):
        size = synthetic(big, profile, 32)
        print(
            f"600M-class expert x4 (32-ch latent, f32 codec, cond 2304, null tag as recorded), smallest output "
            f"{profile.min_hw[1]}x{profile.min_hw[0]}: golden set {size / 1024:.0f} KiB (upper bound)"
        )
    demo = ModelConfig(bands=bands)
    print(f"demo shapes, smallest output 64x64, random data: {synthetic(demo, Profile(), 4) / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
