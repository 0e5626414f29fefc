#!/usr/bin/env python
"""The whole ``linearsr-upscale`` command on a small photo: a bundle against the PyTorch reference command.

    python -m benchmarks.whole_command --bundles B [B ...] [--repeats 5] [--size 128] [--isa avx2]

Each run is the real command in a fresh process, timed from the outside (interpreter start, imports, load,
compile, the frame, writing the PNG): ``linearsr-upscale PHOTO -o OUT -q`` (PyTorch, the demo model) and
``linearsr-upscale --bundle B PHOTO -o OUT -q``. A round runs the PyTorch command, then per bundle a cold run
(an empty cache root, ``LINEARSR_EDGE_CACHE``: every model compiles) and a warm one (the same cache root
again); rounds alternate so that drift of a shared machine falls on every command alike. It prints the
medians and each bundle's ratio to the PyTorch command. PHOTO is the ``--size`` square top-left crop of the
demo's astronaut sample.

``--isa avx2`` caps the children as an AVX2-only x86 CPU runs: oneDNN (OpenVINO's CPU plugin and PyTorch's
convolutions, ``ONEDNN_MAX_CPU_ISA``), MKL (``MKL_ENABLE_INSTRUCTIONS``) and PyTorch's own kernels
(``ATEN_CPU_CAPABILITY``). ONNX Runtime's MLAS kernels have no such switch and keep the machine's ISA.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

AVX2_CAP = {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ATEN_CPU_CAPABILITY": "avx2"}


def timed(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    out = subprocess.run(argv, capture_output=True, text=True, env=env)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed:\n{out.stderr[-2000:]}")
    return seconds


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bundles", type=Path, nargs="+", required=True)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--size", type=int, default=128)
    ap.add_argument("--isa", choices=("native", "avx2"), default="native")
    args = ap.parse_args()

    from PIL import Image

    from linearsr_edge.bundle import Bundle
    from linearsr_edge.demo import SAMPLES_DIR
    from linearsr_edge.machine import machine_line

    cli = shutil.which("linearsr-upscale")
    if cli is None:
        raise SystemExit("linearsr-upscale is not on PATH: pip install -e . first")
    env = {**os.environ, **(AVX2_CAP if args.isa == "avx2" else {})}
    if args.isa == "avx2":
        os.environ.update(AVX2_CAP)  # for machine_line's note
    print(machine_line())
    targets = {str(b): Bundle.load(b).target for b in args.bundles}
    times: dict[str, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="linearsr-cmd-") as tmp:
        photo, out = Path(tmp) / "photo.png", Path(tmp) / "out.png"
        Image.open(SAMPLES_DIR / "astronaut_lr.png").convert("RGB").crop((0, 0, args.size, args.size)).save(photo)
        for r in range(args.repeats):
            times.setdefault("pytorch", []).append(timed([cli, str(photo), "-o", str(out), "-q"], env))
            for b in args.bundles:
                cache = Path(tmp) / f"cache-{r}-{targets[str(b)]}"
                run_env = {**env, "LINEARSR_EDGE_CACHE": str(cache)}
                argv = [cli, "--bundle", str(b), str(photo), "-o", str(out), "-q"]
                for state in ("cold", "warm"):
                    times.setdefault(f"{b}|{state}", []).append(timed(argv, run_env))
                shutil.rmtree(cache, ignore_errors=True)
            print(f"round {r + 1}/{args.repeats} done", flush=True)
    torch_s = statistics.median(times["pytorch"])
    span = f"{min(times['pytorch']):.2f}-{max(times['pytorch']):.2f}"
    runs = f"medians of {args.repeats} alternated runs ({args.isa})"
    print(f"\n{args.size}x{args.size} photo, the whole command, {runs}\n")
    print("| command | cache | seconds (median) | runs | x PyTorch command |")
    print("|---|---|---:|---|---:|")
    print(f"| linearsr-upscale (PyTorch reference, demo) | - | {torch_s:.2f} | {span} | 1.00 |")
    for b in args.bundles:
        for state in ("cold", "warm"):
            runs = times[f"{b}|{state}"]
            med = statistics.median(runs)
            print(
                f"| linearsr-upscale --bundle {targets[str(b)]} | {state} | {med:.2f} | "
                f"{min(runs):.2f}-{max(runs):.2f} | **{med / torch_s:.2f}** |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
