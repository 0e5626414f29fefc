#!/usr/bin/env python
"""Per-NFE time against token count, 1k to 64k tokens, for one bundle: linear attention claims O(N).

    python -m benchmarks.scaling BUNDLE [--repeats 7] [--threads 2] [--plot docs/scaling.png]

Times one expert call (expert_1) and the codec (encoder + decoder) at square-ish latents from 32x32 (1k tokens)
to 256x256 (64k tokens), medians of ``--repeats`` alternating calls after a warm-up, and fits the log-log slope
of the expert's time between 4k and 64k tokens (1.0: linear). Prints the table, the slope, and the codec's share
of an image's time at 4 steps.

``--ops`` (OpenVINO bundles): also where the expert's time goes at each size, from OpenVINO's per-node counters
(``PERF_COUNT``) of the same static compile: matrix products and convolutions (INT8 or FP32 kernels), the FP32
islands (the nodes the IR marks precise), layout ops (Transpose, Reorder, Split, Reshape, Concat) and the rest
(norms, fused elementwise subgraphs), each as a share and with its own log-log slope: which part grows faster
than the tokens.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import numpy as np

LATENTS = ((32, 32), (32, 64), (64, 64), (64, 128), (128, 128), (128, 256), (256, 256))
GEMM = ("MatMul", "FullyConnected", "Convolution", "GroupConvolution")
LAYOUT = ("Transpose", "Reorder", "VariadicSplit", "Split", "Reshape", "Concat", "Gather")
CLASSES = ("INT8 GEMM/conv", "FP32 GEMM/conv", "FP32 islands", "layout", "other")


def op_class(node_name: str, node_type: str, exec_type: str, islands: set[str]) -> str:
    if node_name in islands:
        return "FP32 islands"
    if node_type.startswith(GEMM):
        integer = "I8" in exec_type or "U8" in exec_type or "Quantized" in node_type
        return "INT8 GEMM/conv" if integer else "FP32 GEMM/conv"
    return "layout" if node_type in LAYOUT else "other"


def op_times(xml: Path, feeds: dict[str, np.ndarray], threads: int, repeats: int) -> dict[str, float]:
    """ms per call by class (`CLASSES`), from OpenVINO's per-node counters: the median over ``repeats`` calls."""
    import openvino as ov

    from linearsr_edge.backends.openvino.export import precise_nodes

    core = ov.Core()
    model = core.read_model(str(xml))
    islands = set(precise_nodes(model))
    model.reshape({k: list(v.shape) for k, v in feeds.items()})
    config = {"INFERENCE_PRECISION_HINT": "f32", "PERF_COUNT": True, "INFERENCE_NUM_THREADS": threads}
    request = core.compile_model(model, "CPU", config).create_infer_request()
    request.infer(feeds)
    per_class: dict[str, list[float]] = {k: [] for k in CLASSES}
    for _ in range(repeats):
        request.infer(feeds)
        sums = dict.fromkeys(CLASSES, 0.0)
        for p in request.profiling_info:
            sums[op_class(p.node_name, p.node_type, p.exec_type, islands)] += p.real_time.total_seconds() * 1e3
        for k, v in sums.items():
            per_class[k].append(v)
    return {k: statistics.median(v) for k, v in per_class.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle", type=Path)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--plot", type=Path)
    ap.add_argument("--ops", action="store_true", help="OpenVINO bundles: the expert's time by op class")
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
    rows, ops = [], []
    if args.ops and bundle.format != "openvino":
        raise SystemExit("--ops reads OpenVINO's per-node counters: give an OpenVINO bundle")
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
        if args.ops:
            ops.append((h * w, op_times(bundle.file("expert_1"), feeds, args.threads, args.repeats)))
    fit = [(n, t) for n, t, _ in rows if 4096 <= n <= 65536]
    slope = float(np.polyfit(np.log([n for n, _ in fit]), np.log([t for _, t in fit]), 1)[0])
    print(f"\nlog-log slope of expert time against tokens, 4k-64k: {slope:.3f}")
    if ops:
        print("\nexpert_1's time by op class (OpenVINO's per-node counters), share of the counted time\n")
        print("| tokens | counted ms | " + " | ".join(CLASSES) + " |")
        print("|---:|---:|" + "---:|" * len(CLASSES))
        for n, t in ops:
            total = sum(t.values())
            print(f"| {n} | {total:.2f} | " + " | ".join(f"{100 * t[k] / total:.1f}%" for k in CLASSES) + " |")
        big = [(n, t) for n, t in ops if 4096 <= n <= 65536]
        slopes = []
        for k in CLASSES:
            if all(t[k] > 0 for _, t in big):
                fitted = np.polyfit(np.log([n for n, _ in big]), np.log([t[k] for _, t in big]), 1)[0]
                slopes.append(f"{k} {fitted:.2f}")
        print(f"\nlog-log slope by class, 4k-64k: {', '.join(slopes)}")
    if args.plot is not None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        n = [r[0] for r in rows]
        if ops:
            fig, (ax, right) = plt.subplots(1, 2, figsize=(11, 4))
            bottom = np.zeros(len(ops))
            for k in CLASSES:
                share = np.array([100 * t[k] / sum(t.values()) for _, t in ops])
                right.bar([str(x) for x, _ in ops], share, bottom=bottom, label=k)
                bottom += share
            right.set_xlabel("tokens")
            right.set_ylabel("% of the expert's counted time")
            right.set_title("where the time goes (OpenVINO per-node counters)")
            right.legend(fontsize=7, loc="lower left")
            right.tick_params(axis="x", labelsize=7)
        else:
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
