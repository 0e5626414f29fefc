#!/usr/bin/env python
"""Time to the first frame per bundle, with a cold and a warm compiled-model cache.

    python -m benchmarks.first_frame --bundles B [B ...] [--repeats 3] [--threads 2] [--size 128]

Each measurement is a fresh Python process: import the package, ``SRRuntime.load`` the bundle, upscale one
``--size`` square frame of the demo photo. Cold: an empty cache root (``LINEARSR_EDGE_CACHE``), so OpenVINO
compiles every model; warm: the same cache root again. The OS page cache is warm in both (the bundle was read
before). Medians of ``--repeats`` rounds, bundles alternated.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
from linearsr_edge import SRRuntime
from linearsr_edge.demo import SAMPLES_DIR
from linearsr_edge.pipeline.imaging import read_image
from linearsr_edge.pipeline.session import pick_backend
from linearsr_edge.bundle import Bundle
imported = time.perf_counter()
bundle = Bundle.load(sys.argv[1])
options = pick_backend(bundle.format).options(threads=int(sys.argv[2]))
rt = SRRuntime.load(bundle.path, options=options)
loaded = time.perf_counter()
size = int(sys.argv[3])
rt.upscale(read_image(SAMPLES_DIR / "astronaut_lr.png")[:size, :size])
done = time.perf_counter()
print(json.dumps({"import": imported - t0, "load": loaded - imported, "frame": done - loaded, "total": done - t0}))
"""


def run(bundle: Path, cache: Path, threads: int, size: int) -> dict[str, float]:
    env = {**os.environ, "LINEARSR_EDGE_CACHE": str(cache), "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(bundle), str(threads), str(size)], capture_output=True, text=True, env=env
    )
    wall = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(out.stderr[-2000:])
    return {**json.loads(out.stdout.strip().splitlines()[-1]), "process": wall}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundles", type=Path, nargs="+", required=True)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--size", type=int, default=128)
    args = ap.parse_args()

    from linearsr_edge.bundle import Bundle
    from linearsr_edge.machine import machine_line

    print(machine_line(args.threads))
    results: dict[tuple[str, str], list[dict[str, float]]] = {}
    for _ in range(args.repeats):
        for path in args.bundles:
            with tempfile.TemporaryDirectory(prefix="linearsr-ttff-") as cache:
                for state in ("cold", "warm"):
                    results.setdefault((str(path), state), []).append(run(path, Path(cache), args.threads, args.size))
    print(f"\n{args.size}x{args.size} frame, medians of {args.repeats}, seconds\n")
    print("| bundle | backend | cache | import | load | first frame | to first frame (process) |")
    print("|---|---|---|---:|---:|---:|---:|")
    for path in args.bundles:
        bundle = Bundle.load(path)
        for state in ("cold", "warm"):
            rows = results[(str(path), state)]
            med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
            print(
                f"| {bundle.target} | {bundle.format} | {state} | {med['import']:.2f} | {med['load']:.2f} "
                f"| {med['frame']:.2f} | {med['process']:.2f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
