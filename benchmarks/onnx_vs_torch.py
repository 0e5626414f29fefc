#!/usr/bin/env python
"""Per-NFE latency of ONNX Runtime FP32 against PyTorch eager, same model, same resolution, one run.

Also measures SRRuntime's host overhead: the share of a full upscale spent outside the sessions
(plan, dispatch, copies, resize, noise). Prints ratios; never a timed unit test.

    python -m benchmarks.onnx_vs_torch [--latent 64] [--threads 2] [--repeats 20]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from linearsr_edge.backends.onnx.export import ONNXExporter
from linearsr_edge.backends.onnx.options import OrtOptions
from linearsr_edge.backends.onnx.session import ORTSession
from linearsr_edge.config import ModelConfig, bands_from_edges
from linearsr_edge.demo import load_demo
from linearsr_edge.model.denoiser import Denoiser
from linearsr_edge.specs import Profile, expert_spec

# A random model of the size where INT8 pays off on this CPU (the probe's 4.8M-parameter variant).
WIDE = ModelConfig(
    latent_channels=48,
    hidden_size=256,
    depth=4,
    num_heads=8,
    head_dim=32,
    cross_attn_heads=8,
    cross_attn_head_dim=32,
    cond_dim=64,
    bands=bands_from_edges(()),
)


def median_ms(*fns, repeats: int, block: int = 1) -> list[float]:
    """Median ms of each function, measured interleaved (a, b, a, b, ...) so that the machine's
    drift hits every function alike (this machine is shared and noisy).

    ``block > 1``: each turn runs a function ``block`` times and keeps all but the first, for
    functions from different runtimes: one runtime's worker threads keep spinning for a while
    after a call (ONNX Runtime, OpenMP) and slow whatever runs right after them on two cores.
    """
    for fn in fns:  # warm-up
        fn()
        fn()
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, acc in zip(fns, times, strict=True):
            for i in range(block):
                t0 = time.perf_counter()
                fn()
                if i or block == 1:
                    acc.append((time.perf_counter() - t0) * 1e3)
    return [statistics.median(t) for t in times]


def compare(name: str, module: torch.nn.Module, cfg: ModelConfig, latent: int, threads: int, repeats: int) -> float:
    side = latent * 4
    profile = Profile(min_hw=(64, 64), opt_hw=(side, side), max_hw=(max(1024, side), max(1024, side)))
    spec = expert_spec(cfg, 0, profile, 4)
    feeds = spec.dummy_inputs("opt", batch=1, seed=0)
    with tempfile.TemporaryDirectory() as tmp:
        path = ONNXExporter().export(module, spec, Path(tmp))[0]
        sess = ORTSession(path, spec, OrtOptions(threads=threads))
        args = [torch.from_numpy(feeds[n]) for n in spec.input_names]

        def eager():
            with torch.inference_mode():
                module(*args)

        t_torch, t_ort = median_ms(eager, lambda: sess.run(feeds), repeats=repeats)
    params = sum(p.numel() for p in module.parameters()) / 1e6
    print(
        f"| {name} | {params:.2f}M | {latent}x{latent} ({latent * latent} tokens) | {t_torch:.1f} | {t_ort:.1f} "
        f"| **{t_ort / t_torch:.2f}x** |"
    )
    return t_ort / t_torch


def overhead(threads: int, repeats: int) -> None:
    from linearsr_edge.build import ExportOptions, build_bundle
    from linearsr_edge.runtime import SRRuntime

    with tempfile.TemporaryDirectory() as tmp:
        bundle = build_bundle(
            ExportOptions(target="onnx-fp32", out=Path(tmp) / "b", progress=False, profile=Profile(opt_hw=(256, 256)))
        ).bundle
        rt = SRRuntime.load(bundle.path, backend="onnxruntime", options=OrtOptions(threads=threads))
        image = np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)
        rt.upscale(image)
        totals, sessions = [], []
        for _ in range(repeats):
            rt.reset_timers()
            t0 = time.perf_counter()
            rt.upscale(image)
            totals.append(time.perf_counter() - t0)
            sessions.append(rt.session_seconds())
    total, inside = statistics.median(totals), statistics.median(sessions)
    print("\nSRRuntime, demo bundle, 64x64 -> 256x256 (64x64 latent), 4 steps + encode + decode:")
    print(
        f"  total {total * 1e3:.1f} ms, inside sessions {inside * 1e3:.1f} ms, "
        f"outside (plan, dispatch, copies, resize, noise) **{(total - inside) / total * 100:.2f}%**"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--latent", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"machine: {platform.processor() or platform.machine()}, {args.threads} threads, torch {torch.__version__}, "
        f"onnxruntime {ort.__version__}"
    )
    print("\n| model | params | latent | torch eager ms | ORT fp32 ms | ORT / eager |\n|---|---|---|---|---|---|")
    demo = load_demo()
    compare("demo expert (width 128, depth 3)", demo.experts[0], demo.cfg, args.latent, args.threads, args.repeats)
    torch.manual_seed(0)
    compare("random (width 256, depth 4)", Denoiser(WIDE).eval(), WIDE, args.latent, args.threads, args.repeats)
    overhead(args.threads, args.repeats)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
