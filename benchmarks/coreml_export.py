#!/usr/bin/env python
"""Core ML on a machine without a Mac: conversion cost, and FP16 evidence from PyTorch.

    python -m benchmarks.coreml_export [--part convert|fp16|all] [--workdir DIR] [--skip-600m]

``convert``: wall time and peak RSS of ``linearsr-export --target coreml-fp16`` / ``coreml-int8`` on
the demo (the whole command: calibration data for the gates, conversion, report), then of one
SANA-600M-class expert (the `benchmarks.scale_onnx` configuration) through the exporter alone. Each
run is its own process, so its peak RSS is its own.

``fp16``: the FP16 evidence Core ML cannot give off macOS. Each demo expert runs in PyTorch half
precision with the model's precision policy (`linearsr_edge.reference.HalfPrecision`) at the largest
enumerated shape (1024x1024 output, 65,536 tokens), against FP32: finite or not, SQNR against the
expert gate (40 dB). Then the whole pipeline in half precision at that size against FP32, against
the end-to-end FP16 gate (45 dB). Half-precision matmuls are slow on a CPU: this part takes minutes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.scale_onnx import CFG, PROFILE
from linearsr_edge.machine import machine_line

PEAK = "import resource; peak_gib = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)\n"


def run_child(code: str, *args: str) -> dict:
    """``python -c code args`` in its own process (its last stdout line is JSON with its own peak RSS)."""
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"child failed:\n{done.stderr[-3000:]}")
    out = json.loads(done.stdout.strip().splitlines()[-1])
    out["seconds"] = round(seconds, 1)
    return out


EXPORT_DEMO = (
    """
import json, sys
from linearsr_edge.cli.export import main
code = main(["--target", sys.argv[1], "--out", sys.argv[2], "-q"])
m = json.load(open(sys.argv[2] + "/manifest.json"))
comps = m["coreml"]["components"]
"""
    + PEAK
    + """
weights = sum(c["weight_bytes"] for c in comps.values())
print(json.dumps({"peak_rss_gib": peak_gib, "exit": code, "weight_bytes": weights,
                  "ops": {k: c["ops"] for k, c in comps.items()}}))
"""
)

EXPORT_600M = (
    """
import json, sys, time
from pathlib import Path
import torch
from benchmarks.scale_onnx import CFG, PROFILE
from linearsr_edge.backends.coreml.export import CoreMLExporter, CoreMLInt8Exporter
from linearsr_edge.model.denoiser import Denoiser
from linearsr_edge.specs import expert_spec
torch.manual_seed(0)
model = Denoiser(CFG).eval()
spec = expert_spec(CFG, 0, PROFILE, 1)
exporter = (CoreMLInt8Exporter if sys.argv[1] == "int8" else CoreMLExporter)()
t0 = time.perf_counter()
(package,) = exporter.export(model, spec, Path(sys.argv[2]))
report = exporter.report[spec.name]
"""
    + PEAK
    + """
print(json.dumps({"peak_rss_gib": peak_gib, "params_M": round(sum(p.numel() for p in model.parameters()) / 1e6, 1),
                  "convert_s": round(time.perf_counter() - t0, 1), "weight_bytes": report["weight_bytes"],
                  "ops": report["ops"], "shapes": len(report["shapes"].get("sets", []))}))
"""
)


def part_convert(workdir: Path, skip_600m: bool) -> dict:
    results = {}
    for target in ("coreml-fp16", "coreml-int8"):
        results[f"demo {target}"] = run_child(EXPORT_DEMO, target, str(workdir / target))
        print(target, results[f"demo {target}"], flush=True)
    if not skip_600m:
        for precision in ("fp16", "int8"):
            folder = workdir / f"600m-{precision}"
            folder.mkdir()
            results[f"600M expert {precision}"] = run_child(EXPORT_600M, precision, str(folder))
            print(precision, results[f"600M expert {precision}"], flush=True)
    return results


def part_fp16() -> dict:
    import numpy as np
    import torch

    from linearsr_edge.demo import load_demo
    from linearsr_edge.model.components import component_module
    from linearsr_edge.pipeline.process import SampleOptions
    from linearsr_edge.quality.parity import psnr, sqnr
    from linearsr_edge.reference import HalfPrecision, reference_runtime
    from linearsr_edge.specs import Profile, expert_spec

    torch.set_num_threads(2)
    demo = load_demo()
    largest = Profile().max_hw  # the default export's largest enumerated output size
    results: dict = {"output": f"{largest[1]}x{largest[0]}"}
    for k in range(demo.cfg.num_experts):
        spec = expert_spec(demo.cfg, k, Profile(), demo.codec.factor)
        feeds = spec.dummy_inputs("max", batch=1, seed=k, cond_len=2)
        args = [torch.from_numpy(feeds[n]) for n in spec.input_names]
        module = component_module(demo, spec.name)
        with torch.inference_mode():
            ref = module(*args).numpy()
            t0 = time.perf_counter()
            half = HalfPrecision(component_module(load_demo(), spec.name))(*args).numpy()
        results[spec.name] = {
            "tokens": int(np.prod(args[0].shape[2:])),
            "finite": bool(np.isfinite(half).all()),
            "sqnr_db": round(sqnr(ref, half), 2),
            "half_seconds": round(time.perf_counter() - t0, 1),
        }
        print(spec.name, results[spec.name], flush=True)
    from PIL import Image
    from skimage import data  # the 512x512 astronaut photo ships inside scikit-image (a dev dependency)

    side = (largest[1] // demo.cfg.upscale, largest[0] // demo.cfg.upscale)
    lr = np.asarray(Image.fromarray(data.astronaut()).resize(side, Image.BICUBIC))
    sample = SampleOptions(seed=0)
    fp32 = demo.reference().upscale(lr, sample).image
    t0 = time.perf_counter()
    fp16 = reference_runtime(demo.experts, demo.codec, demo.tags, half=True).upscale(lr, sample).image
    results["end_to_end"] = {
        "lr": list(lr.shape[:2]),
        "psnr_db": round(psnr(fp32, fp16), 2),
        "finite": bool(np.isfinite(fp16.astype(np.float64)).all()),
        "half_seconds": round(time.perf_counter() - t0, 1),
    }
    print("end to end", results["end_to_end"], flush=True)
    return results


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", choices=("convert", "fp16", "all"), default="all")
    ap.add_argument("--workdir", type=Path, help="where bundles are written (default: a temporary folder)")
    ap.add_argument("--skip-600m", action="store_true", help="convert the demo only")
    args = ap.parse_args()
    print(machine_line(), f"| 600M-class expert: {CFG.hidden_size} wide, {CFG.depth} deep, {PROFILE}")
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        if args.part in ("convert", "all"):
            results["convert"] = part_convert(workdir, args.skip_600m)
        if args.part in ("fp16", "all"):
            results["fp16"] = part_fp16()
    print(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
