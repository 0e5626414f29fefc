#!/usr/bin/env python
"""``ov-int8`` with and without NNCF's overflow fix (7-bit weights), on this CPU and on AVX2.

Exports the demo model's ``ov-int8`` twice from the same calibration photos (8-bit weights, NNCF's
default fix of the first layer only; and the overflow fix on every MatMul/Conv, this project's
default), then measures each bundle's export gates (expert SQNR and step SNR on the held-out band
inputs, end-to-end PSNR against the FP32 PyTorch reference on the held-out photos), its golden set
and the per-NFE time of expert 1 at a 64x64 latent, in two child processes:

* this CPU's own ISA;
* ``ONEDNN_MAX_CPU_ISA=AVX2``: oneDNN (OpenVINO's CPU kernels) capped at AVX2, no VNNI, which
  runs the U8 x S8 products the way an AVX2-only CPU does (``vpmaddubsw``: pairs summed into int16).
  The cap reproduces the AVX2-only machine's figure for the unfixed tiny model to the last digit
  (4.90 dB, issue "ov-int8 fails on AVX2").

    python -m benchmarks.ov_int8_portable [--threads 2] [--repeats 10]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

AVX2_CAP = {"ONEDNN_MAX_CPU_ISA": "AVX2"}


def _gates(bundle_path: Path) -> dict:
    """The export gates of an exported bundle, recomputed on this process's ISA (same calibration seed)."""
    from linearsr_edge.backends.openvino.options import OVOptions
    from linearsr_edge.build import ExportOptions, _gate_rows, calibrate, resolve_source
    from linearsr_edge.bundle import Bundle
    from linearsr_edge.checks import QualityThresholds
    from linearsr_edge.precision import Precision
    from linearsr_edge.runtime import SRRuntime
    from linearsr_edge.targets import get_target

    bundle = Bundle.load(bundle_path)
    target = get_target(bundle.target)
    opts = ExportOptions(target=bundle.target, out=bundle_path, progress=False)
    source = resolve_source(opts)
    calib = calibrate(source, target, opts)
    with SRRuntime.load(bundle, backend="openvino", options=OVOptions(precision_hint="f32")) as runtime:
        rows = _gate_rows(source, runtime, calib, QualityThresholds.default(Precision.INT8), False)
        golden = runtime.verify().rows[-1].value
    return {
        "sqnr": [r.value for r in rows if r.metric == "sqnr_db"],
        "step": [r.value for r in rows if r.metric == "step_snr_db"],
        "psnr": rows[-1].value,
        "golden_psnr": golden,
    }


def _measure(paths: list[Path], threads: int, repeats: int) -> list[dict]:
    from benchmarks.onnx_vs_torch import median_ms
    from linearsr_edge.backends.openvino.options import OVOptions
    from linearsr_edge.machine import machine_line
    from linearsr_edge.runtime import SRRuntime

    print(machine_line(threads), os.environ.get("ONEDNN_MAX_CPU_ISA", "(no ISA cap)"), file=sys.stderr)
    out = [_gates(p) for p in paths]
    runtimes = [SRRuntime.load(p, options=OVOptions(threads=threads, precision_hint="f32")) for p in paths]
    feeds = runtimes[0].spec("expert_1").dummy_inputs("opt", batch=1, seed=0, height=64, width=64)
    calls = [lambda rt=rt: rt.run_component("expert_1", feeds) for rt in runtimes]
    for entry, ms in zip(out, median_ms(*calls, repeats=repeats, block=3), strict=True):
        entry["ms_per_nfe"] = ms
    for rt in runtimes:
        rt.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--measure", type=Path, nargs="+", help=argparse.SUPPRESS)  # the child's job
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(_measure(args.measure, args.threads, args.repeats)))
        return 0

    from linearsr_edge.backends.openvino.options import OVInt8Options
    from linearsr_edge.build import ExportOptions, build_bundle
    from linearsr_edge.machine import machine_line

    print(machine_line(args.threads))
    variants = {
        "8-bit weights (NNCF default: first layer fixed)": OVInt8Options(overflow_fix=False),
        "7-bit weights (overflow fix everywhere), the default": OVInt8Options(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for i, options in enumerate(variants.values()):
            out = Path(tmp) / f"ov-int8-{i}"
            build_bundle(ExportOptions(target="ov-int8", out=out, progress=False, target_options=options))
            paths.append(out)
        results = {}
        for isa, extra in (("this CPU", {}), ("AVX2 (oneDNN cap)", AVX2_CAP)):
            cmd = [sys.executable, "-m", "benchmarks.ov_int8_portable", "--measure", *map(str, paths)]
            cmd += ["--threads", str(args.threads), "--repeats", str(args.repeats)]
            done = subprocess.run(cmd, env={**os.environ, **extra}, capture_output=True, text=True, check=True)
            results[isa] = json.loads(done.stdout.strip().splitlines()[-1])
    print("\nDemo model, ov-int8 from the same calibration photos; gates recomputed under each ISA")
    print(f"(held-out band inputs and the 2 held-out photos); expert 1 per NFE at 64x64, {args.threads} threads.\n")
    print("| weights | ISA | pipeline PSNR (gate) | golden PSNR | expert SQNR 0-3 dB | step SNR 0-3 dB | ms / NFE |")
    print("|---|---|---|---|---|---|---|")
    for isa, rows in results.items():
        for label, r in zip(variants, rows, strict=True):
            sq = " / ".join(f"{v:.2f}" for v in r["sqnr"])
            st = " / ".join(f"{v:.1f}" for v in r["step"])
            print(
                f"| {label} | {isa} | **{r['psnr']:.2f}** | {r['golden_psnr']:.2f} | {sq} | {st} "
                f"| {r['ms_per_nfe']:.1f} |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
