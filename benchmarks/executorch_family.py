#!/usr/bin/env python
"""The ExecuTorch family on this machine: size on disk, what its runtime costs, and XNNPACK INT8 against FP32.

    python -m benchmarks.executorch_family --bundles B [B ...] [--repeats 15] [--threads 2]

* **Size**: each bundle's programs (or graphs) and its golden set, from the manifest's components and files.
* **Runtime cost**, each in its own fresh process: seconds to import the package's runtime and load the bundle
  on its backend, and peak RSS after one 128x128 upscale; and the bytes each backend's packages take on disk
  (ExecuTorch's Python runtime links libtorch, so torch is counted with it).
* **Per NFE**: one expert at a 64x64 latent, alternating the bundles' sessions in one process, medians; the
  ratios against the first bundle. On x86 this stands in for Arm: XNNPACK runs the same ``.pte`` on both.

Speed of the whole command per component and step comes from ``linearsr-profile --compare`` (README).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

CHILD = r"""
import json, resource, sys, time
t0 = time.perf_counter()
from linearsr_edge import SRRuntime
import numpy as np
rt = SRRuntime.load(sys.argv[1], verify="never")
loaded = time.perf_counter() - t0
rt.upscale(np.full((128, 128, 3), 128, np.uint8))
print(json.dumps({"load_s": loaded, "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
                  "backend": rt.backend, "torch": "torch" in sys.modules}))
"""


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*") if f.is_file())


def package_bytes(name: str) -> int:
    import importlib.util

    spec = importlib.util.find_spec(name)
    return folder_bytes(Path(spec.origin).parent) if spec and spec.origin else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundles", type=Path, nargs="+", required=True)
    ap.add_argument("--repeats", type=int, default=15)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import numpy as np

    from linearsr_edge.bundle import Bundle
    from linearsr_edge.machine import machine_line
    from linearsr_edge.runtime import SRRuntime

    print(machine_line())
    bundles = [Bundle.load(p) for p in args.bundles]
    print("\n| bundle | components (programs or graphs) | golden set | whole bundle |\n|---|---:|---:|---:|")
    for b in bundles:
        programs = sum(b.component_bytes(n) for n in b.component_names())
        golden = (b.path / "golden.npz").stat().st_size
        whole = folder_bytes(b.path)
        print(f"| {b.target} | {programs / 2**20:.2f} MiB | {golden / 2**10:.0f} KiB | {whole / 2**20:.2f} MiB |")

    print("\n| bundle | backend | import + load s | peak RSS MiB | imports torch |\n|---|---|---:|---:|---|")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    for b in bundles:
        out = subprocess.run([sys.executable, "-c", CHILD, str(b.path)], capture_output=True, text=True, env=env)
        if out.returncode != 0:
            raise SystemExit(out.stderr)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"| {b.target} | {r['backend']} | {r['load_s']:.2f} | {r['rss'] / 2**20:.0f} | {r['torch']} |")
    sizes = {n: package_bytes(n) for n in ("torch", "executorch", "torchao", "onnxruntime", "openvino")}
    print("\npackages on disk (MiB): " + ", ".join(f"{n} {v / 2**20:.0f}" for n, v in sizes.items() if v))

    runtimes = []
    for b in bundles:
        from linearsr_edge.pipeline.session import pick_backend

        options = pick_backend(b.format).options(threads=args.threads)
        runtimes.append(SRRuntime.load(b.path, options=options, residency="all"))
    spec = bundles[0].spec("expert_1")
    feeds = spec.dummy_inputs("opt", batch=1, seed=0)
    feeds = {
        **feeds,
        "latent": np.random.default_rng(1).standard_normal((1, feeds["latent"].shape[1], 64, 64)),
        "lr_latent": np.random.default_rng(2).standard_normal((1, feeds["latent"].shape[1], 64, 64)),
    }
    feeds = {k: v.astype(np.float32) for k, v in feeds.items()}
    times: list[list[float]] = [[] for _ in runtimes]
    for rt in runtimes:
        rt.run_component("expert_1", feeds)  # warm up
    for _ in range(args.repeats):
        for i, rt in enumerate(runtimes):
            t0 = time.perf_counter()
            rt.run_component("expert_1", feeds)
            times[i].append(time.perf_counter() - t0)
    base = statistics.median(times[0])
    print(f"\nexpert_1 per NFE at a 64x64 latent, batch 1, {args.threads} threads, median of {args.repeats}:")
    print("| bundle | backend | ms / NFE | share of the first |\n|---|---|---:|---:|")
    for b, rt, t in zip(bundles, runtimes, times, strict=True):
        print(f"| {b.target} | {rt.backend} | {statistics.median(t) * 1e3:.2f} | {statistics.median(t) / base:.2f} |")
    for rt in runtimes:
        rt.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
