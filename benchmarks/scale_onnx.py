#!/usr/bin/env python
"""Paper-scale check: a random SANA-600M-like expert (depth 28, width 1152) exports to ONNX with
external data and runs one NFE in ONNX Runtime at a 32x32 latent. Each phase runs in its own
process so that its peak RSS is its own.

    python -m benchmarks.scale_onnx [--workdir DIR]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from linearsr_edge.config import ModelConfig, bands_from_edges
from linearsr_edge.specs import Profile, expert_spec

CFG = ModelConfig(
    latent_channels=32,
    hidden_size=1152,
    depth=28,
    num_heads=36,
    head_dim=32,
    mlp_ratio=2.5,
    cross_attn_heads=16,
    cross_attn_head_dim=72,
    cond_dim=2304,
    patch_size=1,
    bands=bands_from_edges(()),
)
PROFILE = Profile(min_hw=(32, 32), opt_hw=(32, 32), max_hw=(128, 128), cond_len=(1, 8, 300))


def phase_export(folder: Path) -> dict:
    import torch

    from linearsr_edge.backends.onnx.export import ONNXExporter
    from linearsr_edge.model.denoiser import Denoiser

    torch.manual_seed(0)
    t0 = time.perf_counter()
    model = Denoiser(CFG).eval()
    params = sum(p.numel() for p in model.parameters())
    files = ONNXExporter().export(model, expert_spec(CFG, 0, PROFILE, 1), folder)
    return {
        "params_M": round(params / 1e6, 1),
        "seconds": round(time.perf_counter() - t0, 1),
        "files": {f.name: round(f.stat().st_size / 2**30, 3) for f in files},
    }


def phase_run(folder: Path) -> dict:
    from linearsr_edge.backends.onnx.options import OrtOptions
    from linearsr_edge.backends.onnx.session import ORTSession

    spec = expert_spec(CFG, 0, PROFILE, 1)
    t0 = time.perf_counter()
    sess = ORTSession(folder / "expert_0.onnx", spec, OrtOptions(threads=2))
    load = time.perf_counter() - t0
    feeds = spec.dummy_inputs("opt", batch=1)
    t0 = time.perf_counter()
    out = sess.run(feeds)["velocity"]
    first = time.perf_counter() - t0
    t0 = time.perf_counter()
    sess.run(feeds)
    second = time.perf_counter() - t0
    import numpy as np

    return {
        "load_s": round(load, 1),
        "first_nfe_s": round(first, 2),
        "nfe_s": round(second, 2),
        "finite": bool(np.isfinite(out).all()),
        "shape": list(out.shape),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path)
    ap.add_argument("--phase", choices=("export", "run"))
    args = ap.parse_args()
    if args.phase:
        result = phase_export(args.workdir) if args.phase == "export" else phase_run(args.workdir)
        result["peak_rss_GiB"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)
        print(json.dumps(result))
        return 0
    work = args.workdir or Path(tempfile.mkdtemp(prefix="linearsr-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    for phase in ("export", "run"):
        out = (
            subprocess.run(
                [sys.executable, __file__, "--phase", phase, "--workdir", str(work)],
                check=True,
                capture_output=True,
                text=True,
            )
            .stdout.strip()
            .splitlines()[-1]
        )
        print(f"{phase}: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
