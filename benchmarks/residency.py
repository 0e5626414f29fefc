#!/usr/bin/env python
"""Residency: peak RSS growth of `SRRuntime` with every expert resident (``all``) against one at a time
(``one``), on a bundle whose four experts have about 50M parameters each. Every measurement runs in
a fresh process; growth is the peak RSS (VmHWM) after the work minus the RSS of the idle process
(imports done, bundle verified, no session open).

    python -m benchmarks.residency [--workdir DIR] [--keep]

Also prints the two references the policy is judged by, from the same bundle and run: one expert
session alone (load + one NFE) and the codec's sessions, and how many times each expert opened.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from linearsr_edge.config import ModelConfig, bands_from_edges

# ~50M parameters per expert: width 512, depth 12 (16 x 32 heads), Mix-FFN x2.5; demo codec (48 channels)
CFG = ModelConfig(
    latent_channels=48,
    hidden_size=512,
    depth=12,
    num_heads=16,
    head_dim=32,
    mlp_ratio=2.5,
    cross_attn_heads=8,
    cross_attn_head_dim=64,
    cond_dim=64,
    bands=bands_from_edges((1.0, 3.0, 5.0)),
    flow_shift=0.15,
    parameterization="residual",
    residual_scale=8.0,
)

CHILD = r"""
import json, sys
import numpy as np

def status(key):
    for line in open("/proc/self/status"):
        if line.startswith(key):
            return int(line.split()[1]) * 1024
from linearsr_edge.bundle import Bundle
from linearsr_edge.runtime import SRRuntime
from linearsr_edge.backends.onnx.options import OrtOptions
from linearsr_edge.backends.onnx.session import ORTSession
mode, path = sys.argv[1], sys.argv[2]
bundle = Bundle.load(path)
frames = [np.random.default_rng(i).integers(0, 256, (24, 32, 3), dtype=np.uint8) for i in range(4)]
opts = OrtOptions(threads=2)
idle = status("VmRSS")
out = {}
if mode == "expert":
    spec = bundle.spec("expert_0")
    session = ORTSession(bundle.file("expert_0"), spec, opts)
    session.run(spec.dummy_inputs("opt", batch=4))
elif mode == "codec":
    rt = SRRuntime.load(bundle, options=opts, residency="one")  # opens the encoder and decoder only
    rt.run_component("encoder", {"image": np.zeros((4, 3, 96, 128), np.float32)})
    rt.run_component("decoder", {"latent": np.zeros((4, 48, 24, 32), np.float32)})
else:
    rt = SRRuntime.load(bundle, options=opts, residency=mode)
    rt.upscale_batch(frames)
    out["opens"] = rt.open_counts()
out["growth"] = status("VmHWM") - idle
out["steady"] = status("VmRSS") - idle  # what stays resident after the work
print(json.dumps(out))
"""


def build(workdir: Path) -> Path:
    import torch

    from linearsr_edge.build import ExportOptions, build_bundle
    from linearsr_edge.model.codec import PixelUnshuffleCodec
    from linearsr_edge.model.experts import SNRExperts
    from linearsr_edge.model.folder import save_model_folder
    from linearsr_edge.specs import Profile

    bundle = workdir / "bundle"
    if (bundle / "manifest.json").is_file():
        return bundle
    torch.manual_seed(0)
    experts = SNRExperts(CFG)
    print(f"experts: 4 x {sum(p.numel() for p in experts[0].parameters()) / 1e6:.1f}M parameters", flush=True)
    model = save_model_folder(workdir / "model", experts, PixelUnshuffleCodec(4))
    t0 = time.perf_counter()
    build_bundle(
        ExportOptions(
            target="onnx-fp32",
            out=bundle,
            checkpoint=model,
            profile=Profile(min_hw=(64, 64), opt_hw=(128, 128), max_hw=(256, 256)),
            overwrite=True,
        )
    )
    print(f"exported onnx-fp32 in {time.perf_counter() - t0:.0f} s", flush=True)
    return bundle


def measure(mode: str, bundle: Path) -> dict:
    proc = subprocess.run([sys.executable, "-c", CHILD, mode, str(bundle)], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"{mode} failed:\n{proc.stderr}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, help="reuse or keep the bundle here (default: a temporary folder)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        bundle = build(workdir)
        files = json.loads((bundle / "manifest.json").read_text())["components"]
        size = {n: c["bytes"] for n, c in files.items()}
        print(f"expert_0.onnx {size['expert_0'] / 2**20:.0f} MiB; 4 frames 32x24 -> 128x96, 4 steps, 2 threads")
        rows = {m: measure(m, bundle) for m in ("expert", "codec", "one", "all")}
    mib = {m: r["growth"] / 2**20 for m, r in rows.items()}
    budget = 1.25 * (mib["expert"] + mib["codec"])
    held = {m: r["steady"] / 2**20 for m, r in rows.items()}
    print("\n| measurement (fresh process each) | peak RSS growth over idle, MiB | resident after, MiB |")
    print("|---|---|---|")
    print(f"| one expert session alone (load + 1 NFE, batch 4) | {mib['expert']:.0f} | {held['expert']:.0f} |")
    print(f"| encoder + decoder sessions | {mib['codec']:.0f} | {held['codec']:.0f} |")
    print(f"| SRRuntime residency='one', upscale_batch of 4 | **{mib['one']:.0f}** | {held['one']:.0f} |")
    print(f"| SRRuntime residency='all', upscale_batch of 4 | **{mib['all']:.0f}** | {held['all']:.0f} |")
    print(
        f"\n'one' / (one expert + codec) = {mib['one'] / (mib['expert'] + mib['codec']):.2f} "
        f"(limit 1.25: {mib['one']:.0f} <= {budget:.0f} MiB {'yes' if mib['one'] <= budget else 'NO'})"
    )
    print(
        f"'all' / one expert session = {mib['all'] / mib['expert']:.2f} experts' worth at the peak, "
        f"{held['all'] / held['expert']:.2f} resident after the batch"
    )
    print(f"expert opens per batch: one {rows['one']['opens']}, all {rows['all']['opens']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
