#!/usr/bin/env python
"""The PyTorch reference on a CUDA GPU: half-precision numerics of every demo expert at the largest
profile size (65,536 tokens), against FP32 on the same GPU, and per-NFE latency in FP32 and FP16.

    python -m benchmarks.gpu_reference [--out results.json]

Needs CUDA (it runs on the lent GPU machine, not in CI). The half-precision run uses the model's
own precision policy (linear-attention reductions and division in FP32); its largest FP16 module
output is comparable with the FP32 range probe that `onnx-fp16` runs on the ONNX graph.
"""

from __future__ import annotations

import argparse
import json

import torch

from linearsr_edge.demo import load_demo
from linearsr_edge.model.components import component_module
from linearsr_edge.specs import Profile, expert_spec


def largest_output(module: torch.nn.Module, args) -> tuple[torch.Tensor, float, str]:
    largest = {"v": 0.0, "at": ""}

    def hook(name):
        def fn(_m, _i, out):
            if isinstance(out, torch.Tensor) and out.numel():
                v = float(out.detach().abs().float().max())
                if not v < largest["v"]:
                    largest.update(v=v, at=name)

        return fn

    handles = [m.register_forward_hook(hook(n)) for n, m in module.named_modules() if n]
    with torch.inference_mode():
        out = module(*args)
    for h in handles:
        h.remove()
    return out, largest["v"], largest["at"]


def ms_per_call(fn, repeats: int = 20) -> float:
    for _ in range(3):
        fn()
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    torch.cuda.synchronize()
    start.record()
    for _ in range(repeats):
        fn()
    end.record()
    torch.cuda.synchronize()
    return start.elapsed_time(end) / repeats


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", help="also write the results as JSON here")
    args = ap.parse_args()
    if not torch.cuda.is_available():
        raise SystemExit("needs a CUDA GPU")
    demo = load_demo()
    profile = Profile()  # the export default: outputs up to 1024x1024 = a 256x256 latent
    result = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "experts": [], "latency_ms": {}}
    print(f"{result['gpu']}, torch {torch.__version__}")
    print("\n| expert | tokens | FP16 finite | max error / FP32 range | largest FP16 module output (where) |")
    print("|---|---|---|---|---|")
    for k in range(demo.cfg.num_experts):
        spec = expert_spec(demo.cfg, k, profile, demo.codec.factor)
        feeds = spec.dummy_inputs("max", batch=1, seed=3)  # the inputs of the ONNX range probe
        fp32 = component_module(demo, spec.name).cuda().float()
        args32 = [torch.from_numpy(feeds[n]).cuda() for n in spec.input_names]
        with torch.inference_mode():
            ref = fp32(*args32)
        half = component_module(demo, spec.name).cuda().half()
        out16, largest, where = largest_output(half, [a.half() for a in args32])
        err = float((out16.float() - ref).abs().max() / (ref.max() - ref.min()))
        finite = bool(torch.isfinite(out16).all())
        tokens = feeds["latent"].shape[2] * feeds["latent"].shape[3]
        result["experts"].append(
            {
                "expert": k,
                "tokens": tokens,
                "finite": finite,
                "rel_err": err,
                "largest_fp16_output": largest,
                "at": where,
            }
        )
        print(f"| {k} | {tokens} | {finite} | {err * 100:.3f} % | {largest:.1f} ({where}) |")
        demo.experts[k].float().cpu()
    print("\n| latent | tokens | FP32 ms/NFE | FP16 ms/NFE | FP16 / FP32 |\n|---|---|---|---|---|")
    module = component_module(demo, "expert_1").cuda()
    for side in (64, 128, 256):
        spec = expert_spec(demo.cfg, 1, profile, demo.codec.factor)
        feeds = spec.dummy_inputs("max", batch=1, seed=0, height=side, width=side)
        a32 = [torch.from_numpy(feeds[n]).cuda() for n in spec.input_names]
        a16 = [a.half() for a in a32]
        with torch.inference_mode():
            module.float()
            t32 = ms_per_call(lambda a=a32: module(*a))
            module.half()
            t16 = ms_per_call(lambda a=a16: module(*a))
            module.float()
        result["latency_ms"][f"{side}x{side}"] = {"fp32": t32, "fp16": t16}
        print(f"| {side}x{side} | {side * side} | {t32:.2f} | {t16:.2f} | {t16 / t32:.2f}x |")
    if args.out:
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
