#!/usr/bin/env python
"""The roofline table: each target's experts against this machine's SGEMM rate, for the demo model and a wider
4.78M-parameter expert, in one ``linearsr-profile --compare`` run per model.

    python -m benchmarks.roofline [--out DIR] [--targets onnx-fp32 onnx-int8 ov-fp32 ov-int8] [--runs 5]

Bundles are exported under ``--out`` once (kept for later runs). The wide model is the probe's 4.78M-parameter
variant (``benchmarks/onnx_vs_torch.py``'s ``WIDE``: width 256, depth 4, 8 heads; one expert), random weights,
the demo's codec and tags. Prints each model's compare table, then per bundle the expert FLOPs per call, the
achieved GFLOP/s over every expert call of an image, its share of the SGEMM rate (the best float32 product
measured here: NumPy, ONNX Runtime, OpenVINO) and of the experts' own limit: the INT8 product rate (ONNX
Runtime's MatMulInteger, OpenVINO's quantized MatMul) for INT8 bundles, the SGEMM rate for the others.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

TARGETS = ("onnx-fp32", "onnx-int8", "ov-fp32", "ov-int8")


def wide_model(folder: Path) -> Path:
    """The 4.78M-parameter expert as a model folder (random weights, seed 0), written once."""
    if (folder / "config.json").is_file():
        return folder
    import torch

    from benchmarks.onnx_vs_torch import WIDE
    from linearsr_edge.demo import load_demo
    from linearsr_edge.model.experts import SNRExperts
    from linearsr_edge.model.folder import save_model_folder

    torch.manual_seed(0)
    demo = load_demo()
    experts = SNRExperts(WIDE)
    params = sum(p.numel() for p in experts.experts[0].parameters())
    print(f"wide expert: {params / 1e6:.2f}M parameters", file=sys.stderr)
    return save_model_folder(folder, experts, demo.codec, demo.tags)


def export(model: str | None, target: str, out: Path) -> Path:
    if (out / "manifest.json").is_file():
        return out
    cmd = ["linearsr-export", "--target", target, "--out", str(out), "-q", "--overwrite"]
    if model is not None:
        cmd += ["--checkpoint", model]
    subprocess.run(cmd, check=True)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("bundles/roofline"))
    ap.add_argument("--targets", nargs="+", default=list(TARGETS))
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    models = {"demo": None, "wide-4.78M": str(wide_model(args.out / "wide-model"))}
    for name, model in models.items():
        bundles = [export(model, t, args.out / name / t) for t in args.targets]
        cmd = ["linearsr-profile", *map(str, bundles[:1]), "--compare", *map(str, bundles[1:]), "--json", "-q"]
        cmd += ["--runs", str(args.runs), "--threads", str(args.threads)]
        data = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        roof = data["reports"][0]["roofline"]
        int8 = next((r["roofline"]["int8_gops"] for r in data["reports"] if r["roofline"].get("int8_gops")), None)
        print(
            f"\n## {name}: {roof['latent_hw'][1]}x{roof['latent_hw'][0]} latent, {args.threads} threads, "
            f"SGEMM {roof['sgemm_gflops']:.1f} GFLOP/s" + (f", INT8 {int8:.1f} GOP/s\n" if int8 else "\n")
        )
        print(
            "| target | expert GFLOP/call | experts ms/NFE (fastest-slowest) | GFLOP/s | of SGEMM | of limit "
            "| image p50 ms |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for report, row in zip(data["reports"], data["compare"], strict=True):
            experts = {n: c for n, c in report["components"].items() if n.startswith("expert_")}
            gflop = report["roofline"]["components"][min(experts)]["gflop"]
            ms = sorted(c["p50_ms"] for c in experts.values())
            print(
                f"| {report['target']} | {gflop:.3f} | {ms[0]:.1f}-{ms[-1]:.1f} | {row['expert_gflops']:.1f} "
                f"| {100 * row['expert_share_of_sgemm']:.1f}% | {100 * row['expert_share_of_limit']:.1f}% "
                f"| {report['image']['p50_ms']:.1f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
