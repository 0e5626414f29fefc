#!/usr/bin/env python
"""Bind once: the host time per sampler step with the inputs that stay the same across a batch's steps (the LR
latent and the tags) bound once per session (ONNX Runtime: IO binding; OpenVINO: infer-request tensors set
once), against every input passed at every step, on the demo model. Also checks that the images are
bit-identical.

    python -m benchmarks.bind_once [--bundles DIR ...] [--workdir DIR] [--repeats 7] [--threads 2]

Without ``--bundles`` it exports the demo to onnx-fp32 and ov-fp32 in ``--workdir`` (a few minutes).

A step's time is the sampling phase of one upscale (`UpscaleResult.timings["sample"]`) over its expert calls:
what the host loop spends per step. The vendor's time is measured in the same calls, by timing every call
into the vendor's library on the step's path (ONNX Runtime ``InferenceSession.run`` / ``run_with_iobinding``
and the ``IOBinding`` calls; OpenVINO ``InferRequest.infer`` / ``set_tensor`` / ``get_tensor``); host time per
step = step time - vendor time: our validation, feeds and bookkeeping, and the sampler's own arithmetic.
Runs alternate (bound, unbound) so that drift on a shared machine hits both; medians of ``--repeats``.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

SIZES = ((32, 32), (64, 64))  # input frames (H, W): small (host share large) and larger
STEPS = 8


def _export(workdir: Path) -> list[Path]:
    paths = []
    for target in ("onnx-fp32", "ov-fp32"):
        out = workdir / target
        if not (out / "manifest.json").exists():
            subprocess.run(
                [sys.executable, "-m", "linearsr_edge.cli.export", "--target", target, "--out", str(out), "-q"],
                check=True,
            )
        paths.append(out)
    return paths


class VendorClock:
    """Seconds spent inside the vendor's inference calls while active (the entry points wrapped at class level)."""

    def __init__(self) -> None:
        import onnxruntime as ort
        import openvino as ov

        self.calls: list[tuple[float, float]] = []  # (start, seconds) of every vendor call
        ort_calls = ("run", "run_with_iobinding")
        binding = ("bind_cpu_input", "bind_output", "copy_outputs_to_cpu", "clear_binding_outputs")
        self._patched = [(ort.InferenceSession, n) for n in ort_calls] + [(ort.IOBinding, n) for n in binding]
        self._patched += [(ov.InferRequest, n) for n in ("infer", "set_tensor", "get_tensor")]
        self._saved = [(cls, name, cls.__dict__.get(name)) for cls, name in self._patched]
        for cls, name in self._patched:
            setattr(cls, name, self._timed(getattr(cls, name)))

    def _timed(self, call):
        clock = self

        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                clock.calls.append((t0, time.perf_counter() - t0))

        return timed

    def within(self, start: float, end: float) -> float:
        """Vendor seconds of the calls that started in [start, end]."""
        return sum(d for t, d in self.calls if start <= t <= end)

    def close(self) -> None:
        for cls, name, original in self._saved:
            if original is None:
                delattr(cls, name)
            else:
                setattr(cls, name, original)


def measure(path: Path, repeats: int, threads: int) -> list[dict]:
    from linearsr_edge.backends.onnx.options import OrtOptions
    from linearsr_edge.backends.openvino.options import OVOptions
    from linearsr_edge.bundle import Bundle
    from linearsr_edge.pipeline.process import SampleOptions
    from linearsr_edge.runtime import SRRuntime

    bundle = Bundle.load(path)
    options = OrtOptions(threads=threads) if bundle.format == "onnx" else OVOptions(threads=threads, cache=False)
    rows = []
    with SRRuntime.load(bundle, options=options, residency="all", verify="never") as rt:
        bound = rt.process
        unbound = replace(bound, bind=None)
        opts = SampleOptions(steps=STEPS, seed=0)
        for h, w in SIZES:
            frame = np.random.default_rng(h).integers(0, 256, (h, w, 3), dtype=np.uint8)
            steps: dict[str, list[tuple[float, float]]] = {"bound": [], "unbound": []}  # (step, vendor) s
            images = {}
            for mode, process in (("bound", bound), ("unbound", unbound)):  # warm both paths
                images[mode] = process.upscale(frame, opts).image
            clock = VendorClock()
            try:
                for _ in range(repeats):
                    for mode, process in (("bound", bound), ("unbound", unbound)):
                        clock.calls.clear()
                        t0 = time.perf_counter()
                        result = process.upscale(frame, opts)
                        n, t = len(result.plan.sigma), result.timings
                        # the sampling phase only (the codec's calls come before and after it)
                        vendor = clock.within(t0 + t["prepare"], t0 + t["prepare"] + t["sample"])
                        steps[mode].append((t["sample"] / n, vendor / n))
            finally:
                clock.close()
            row = {"bundle": bundle.target, "backend": rt.backend, "frame": f"{w}x{h}"}
            for mode in ("unbound", "bound"):
                step = statistics.median(t for t, _ in steps[mode])
                host = statistics.median(t - v for t, v in steps[mode])
                row[mode] = (step * 1e3, host * 1e3)
            row["identical"] = bool(np.array_equal(images["bound"], images["unbound"]))
            rows.append(row)
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bundles", type=Path, nargs="*", help="onnx / ov bundles of one model (default: export the demo)")
    ap.add_argument("--workdir", type=Path, help="where the demo bundles are exported (default: a temporary folder)")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    from linearsr_edge.machine import machine_line

    with tempfile.TemporaryDirectory() as tmp:
        paths = args.bundles or _export(args.workdir or Path(tmp))
        rows = [row for path in paths for row in measure(path, args.repeats, args.threads)]
    print(machine_line())
    print(f"demo model, {STEPS} steps, {args.threads} threads, medians of {args.repeats}\n")
    print(
        "| bundle | frame | ms/step, every input each step | ms/step, bound once "
        "| host ms/step before | host ms/step after | host after/before | images identical |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---|")
    for r in rows:
        (step0, host0), (step1, host1) = r["unbound"], r["bound"]
        print(
            f"| {r['bundle']} ({r['backend']}) | {r['frame']} | {step0:.2f} | {step1:.2f} | {host0:.3f} | {host1:.3f} "
            f"| {host1 / host0:.2f} | {'yes' if r['identical'] else 'NO'} |"
        )
    return 0 if all(r["identical"] for r in rows) else 1


if __name__ == "__main__":
    raise SystemExit(main())
