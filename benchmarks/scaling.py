#!/usr/bin/env python
"""Per-NFE time against token count, 1k to 64k tokens, for one bundle: linear attention claims O(N).

    python -m benchmarks.scaling BUNDLE [--repeats 7] [--threads 2] [--plot docs/scaling.png]

Times one expert call (expert_1) and the codec (encoder + decoder) at square-ish latents from 32x32 (1k tokens)
to 256x256 (64k tokens), medians of ``--repeats`` alternating calls after a warm-up, and fits the log-log slope
of the expert's time between 4k and 64k tokens (1.0: linear). Prints the table, the slope, and the codec's share
of an image's time at 4 steps.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

LATENTS = ((32, 32), (32, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--plot", type=Path)
    args = ap.parse_args()

    from linearsr_edge.bundle import Bundle
    from linearsr_edge.machine import machine_line
    from linearsr_edge.pipeline.session import pick_backend
    from linearsr_edge.runtime import SRRuntime

    bundle = Bundle.load(args.bundle)
    options = pick_backend(bundle.format).options(threads=args.threads)
    runtime = SRRuntime.load(bundle.path, options=options, residency="all")
    spec, factor = bundle.spec("expert_1"), bundle.codec_factor
    rng = np.random.default_rng(0)
    rows = []
    print(machine_line(args.threads))
    print(f"{bundle.target} on {runtime.backend}, {args.threads} threads, medians of {args.repeats}\n")
    print("| latent | tokens | expert ms / NFE | encoder + decoder ms | codec share at 4 steps |")
    print("|---|---:|---:|---:|---:|")
    for h, w in LATENTS:
        if h > spec.dims["height"].max or w > spec.dims["width"].max:
            continue
        feeds = spec.dummy_inputs("opt", batch=1, seed=0)
        c = feeds["latent"].shape[1]
        feeds["latent"] = rng.standard_normal((1, c, h, w), dtype=np.float32)
        feeds["lr_latent"] = rng.standard_normal((1, c, h, w), dtype=np.float32)
        image = rng.random((1, 3, h * factor, w * factor), dtype=np.float32)
        calls = {
            "expert": lambda f=feeds: runtime.run_component("expert_1", f),
            "codec": lambda i=image, f=feeds: (
                runtime.run_component("encoder", {"image": i}),
                runtime.run_component("decoder", {"latent": f["latent"]}),
            ),
        }
        times = {k: [] for k in calls}
        for fn in calls.values():
            fn()
        for _ in range(args.repeats):
            for k, fn in calls.items():
                t0 = time.perf_counter()
                fn()
                times[k].append((time.perf_counter() - t0) * 1e3)
        expert, codec = statistics.median(times["expert"]), statistics.median(times["codec"])
        share = codec / (codec + args.steps * expert)
        rows.append((h * w, expert, codec))
        print(f"| {w}x{h} | {h * w} | {expert:.2f} | {codec:.2f} | {100 * share:.1f}% |")
    fit = [(n, t) for n, t, _ in rows if 4096 <= n <= 65536]
    slope = float(np.polyfit(np.log([n for n, _ in fit]), np.log([t for _, t in fit]), 1)[0])
    print(f"\nlog-log slope of expert time against tokens, 4k-64k: {slope:.3f}")
    if args.plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        n = [r[0] for r in rows]
        fig, ax = plt.subplots(figsize=(6, 4))
        ax.loglog(n, [r[1] for r in rows], "o-", label="expert, per NFE")
        ax.loglog(n, [r[2] for r in rows], "s--", label="encoder + decoder")
        ref = rows[2][1] if len(rows) > 2 else rows[0][1]
        ax.loglog(n, [ref * x / n[min(2, len(n) - 1)] for x in n], ":", color="grey", label="O(N) through 4k")
        ax.set_xlabel("tokens (latent pixels)")
        ax.set_ylabel("ms")
        ax.set_title(f"{bundle.target}, {args.threads} threads: slope {slope:.2f} (4k-64k)")
        ax.legend()
        fig.tight_layout()
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=110)
        print(f"plot: {args.plot}")
    runtime.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
