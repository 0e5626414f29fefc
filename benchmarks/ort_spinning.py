#!/usr/bin/env python
"""ONNX Runtime with and without spinning threads between runs, whole image, one process, interleaved.

    python -m benchmarks.ort_spinning BUNDLE [BUNDLE ...] [--runs 9] [--threads 2]

Each bundle is loaded twice, ``OrtOptions(spinning=True)`` (ORT's own default) and ``OrtOptions()`` (ours:
off), and profiled with `profile_many` (runs interleaved); prints the image p50 and each expert's p50.
"""

from __future__ import annotations

import argparse
from pathlib import Path


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundles", type=Path, nargs="+")
    ap.add_argument("--runs", type=int, default=9)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    from linearsr_edge import SRRuntime
    from linearsr_edge.backends.onnx.options import OrtOptions
    from linearsr_edge.demo import SAMPLES_DIR
    from linearsr_edge.machine import machine_line
    from linearsr_edge.pipeline.imaging import read_image
    from linearsr_edge.pipeline.process import SampleOptions
    from linearsr_edge.profiling import profile_many

    print(machine_line(args.threads))
    image = read_image(SAMPLES_DIR / "astronaut_lr.png")[:64, :64]
    print("| bundle | threads spin | image p50 ms | experts p50 ms |\n|---|---|---:|---|")
    for path in args.bundles:
        runtimes = [
            SRRuntime.load(path, options=OrtOptions(threads=args.threads, spinning=spin)) for spin in (True, False)
        ]
        reports = profile_many([(rt, SampleOptions()) for rt in runtimes], image, runs=args.runs, warmup=2)
        for spin, report in zip((True, False), reports, strict=True):
            experts = " / ".join(f"{c['p50_ms']:.1f}" for n, c in report.components.items() if n.startswith("expert"))
            print(f"| {report.target} ({path.parent.name}) | {spin} | {report.image['p50_ms']:.1f} | {experts} |")
        for rt in runtimes:
            rt.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
