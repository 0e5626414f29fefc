#!/usr/bin/env python
"""OpenVINO against PyTorch eager and ONNX Runtime, and against the two NNCF recipes a user of
optimum-intel would pick instead of band-calibrated ``ov-int8``; all measured in one run.

Part ``nfe``: per-NFE latency of one expert (the 4.8M-parameter width-256 model, 64x64 latent =
4096 tokens) on every backend and hint, as a ratio to PyTorch eager FP32, with the SQNR of each
output against eager's on a held-out band input. Timed in interleaved blocks of three calls
(the first of each block dropped), so that one runtime's spinning threads do not slow the next.

Part ``peers``: the demo model exported three ways with the same calibration photos: ``ov-int8``
(band calibration, the precision policy's FP32 nodes kept), NNCF weight-only INT8
(``nncf.compress_weights``, optimum-intel's ``--weight-format int8``), and NNCF's full PTQ with
calibration pooled over all steps and NNCF's own choice of nodes. Each bundle's end-to-end PSNR
against the FP32 reference on the held-out photos comes from its own verification; per-NFE latency
of the demo experts is measured interleaved.

Part ``command``: the whole ``linearsr-upscale --bundle`` command (start-up included) on a 128x128
photo against the PyTorch reference command, median of 3, interleaved.

    python -m benchmarks.openvino_speed [--part nfe peers command] [--threads 2] [--repeats 20]
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

import openvino as ov
import torch

from benchmarks.onnx_vs_torch import WIDE, median_ms
from linearsr_edge.backends.onnx.export import ONNXExporter
from linearsr_edge.backends.onnx.options import OnnxInt8Options, OrtOptions
from linearsr_edge.backends.onnx.precision import ONNXInt8Exporter
from linearsr_edge.backends.onnx.session import ORTSession
from linearsr_edge.backends.openvino.export import OVExporter, OVInt8Exporter
from linearsr_edge.backends.openvino.options import OVInt8Options, OVOptions
from linearsr_edge.backends.openvino.session import OVSession
from linearsr_edge.calibration import CalibrationOptions, collect
from linearsr_edge.demo import load_demo, sample_images
from linearsr_edge.machine import machine_line
from linearsr_edge.model.denoiser import Denoiser
from linearsr_edge.pipeline.imaging import read_image
from linearsr_edge.quality.parity import sqnr
from linearsr_edge.specs import Profile, expert_spec

BAND = 1  # the expert whose band data calibrates and tests the per-NFE models


def band_data(latent: int):
    demo = load_demo()
    images = [read_image(p) for p in sample_images()]
    opts = CalibrationOptions(samples_per_expert=16, crop=latent, heldout_images=1, progress=False)
    return collect(demo.reference().process, images, opts)


def part_nfe(latent: int, threads: int, repeats: int) -> None:
    calib = band_data(latent)
    feeds_calib, feeds = calib.samples[BAND], calib.heldout[BAND][0]
    torch.manual_seed(0)
    module = Denoiser(WIDE).eval()
    side = latent * 4
    spec = expert_spec(WIDE, 0, Profile(min_hw=(64, 64), opt_hw=(side, side), max_hw=(1024, 1024)), 4)
    args = [torch.from_numpy(feeds[n]) for n in spec.input_names]

    def eager():
        with torch.inference_mode():
            return {"velocity": module(*args).numpy()}

    rows: list[tuple[str, object]] = [("PyTorch eager FP32", eager)]
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for sub in ("ort32", "ort8", "ov32", "ov8", "ovw", "ovn"):
            (tmp / sub).mkdir()
        ort32 = ONNXExporter().export(module, spec, tmp / "ort32")[0]
        ort8 = ONNXInt8Exporter(OnnxInt8Options()).export(module, spec, tmp / "ort8", calibration=feeds_calib)[0]
        ov32 = OVExporter().export(module, spec, tmp / "ov32")[0]
        ov8 = OVInt8Exporter(OVInt8Options()).export(module, spec, tmp / "ov8", calibration=feeds_calib)[0]
        ovw = OVInt8Exporter(OVInt8Options(weights_only=True)).export(
            module, spec, tmp / "ovw", calibration=feeds_calib
        )[0]
        ovn = OVInt8Exporter(OVInt8Options(keep_fp32="none")).export(
            module, spec, tmp / "ovn", calibration=feeds_calib
        )[0]
        rows += [
            ("ORT FP32", ORTSession(ort32, spec, OrtOptions(threads=threads)).run),
            ("ORT INT8 (onnx-int8)", ORTSession(ort8, spec, OrtOptions(threads=threads)).run),
        ]
        for label, path in (
            ("ov-fp32", ov32),
            ("ov-int8", ov8),
            ("NNCF INT8 weight-only", ovw),
            ("NNCF PTQ, NNCF's own ignored scope", ovn),
        ):
            for hint in ("f32", "bf16"):
                session = OVSession(path, spec, OVOptions(threads=threads, precision_hint=hint))
                rows.append((f"{label} ({hint} hint)", session.run))
        calls = [(lambda fn=fn: fn(feeds) if fn is not eager else fn()) for _, fn in rows]
        times = median_ms(*calls, repeats=max(1, repeats // 2), block=3)  # several runtimes: see median_ms
        want = eager()["velocity"]
        params = sum(p.numel() for p in module.parameters()) / 1e6
        print(f"\nPer NFE: random expert (width 256, depth 4, {params:.2f}M params), {latent}x{latent} latent")
        print("\n| backend | ms | / eager | SQNR vs eager dB |\n|---|---|---|---|")
        for (label, fn), ms in zip(rows, times, strict=True):
            got = (fn() if fn is eager else fn(feeds))["velocity"]
            print(f"| {label} | {ms:.1f} | **{ms / times[0]:.2f}x** | {sqnr(want, got):.1f} |")


def build(target: str, out: Path, **kw):
    from linearsr_edge.build import ExportOptions, build_bundle

    return build_bundle(ExportOptions(target=target, out=out, progress=False, **kw))


def part_peers(root: Path, threads: int, repeats: int) -> dict[str, Path]:
    """Build the demo bundles (kept under ``root`` for part ``command``) and compare them."""
    base = CalibrationOptions(progress=False)
    recipes = {
        "ov-int8 (band calibration, policy keeps FP32 nodes)": dict(target_options=OVInt8Options()),
        "NNCF INT8 weight-only": dict(target_options=OVInt8Options(weights_only=True)),
        "NNCF PTQ pooled over all steps, NNCF's scope": dict(
            target_options=OVInt8Options(keep_fp32="none"), calibration=replace(base, pooled=True)
        ),
    }
    paths, results = {}, {}
    t0 = time.perf_counter()
    paths["ov-fp32"] = build("ov-fp32", root / "ov-fp32").bundle.path
    for i, (label, kw) in enumerate(recipes.items()):
        kw.setdefault("calibration", base)
        result = build("ov-int8", root / f"int8-{i}", **kw)
        paths[label], results[label] = result.bundle.path, result
    print(f"\n(built 4 demo bundles in {time.perf_counter() - t0:.0f} s)")
    spec = results[next(iter(recipes))].bundle.spec(f"expert_{BAND}")
    feeds = band_data(64).heldout[BAND][0]
    fns, labels = [], []
    for label in ["ov-fp32", *recipes]:
        for hint in ("f32", "bf16"):
            s = OVSession(paths[label] / f"expert_{BAND}.xml", spec, OVOptions(threads=threads, precision_hint=hint))
            fns.append(lambda s=s: s.run(feeds))
            labels.append((label, hint))
    times = dict(zip(labels, median_ms(*fns, repeats=repeats), strict=True))
    print(f"\nDemo model (4 experts, width 128, depth 3), expert {BAND} per NFE at 64x64 latent; PSNR of the")
    print("pipeline against the FP32 reference, mean over the held-out photos (each bundle's own gate):")
    print("\n| recipe | PSNR dB | expert SQNR dB (0-3) | f32 hint ms | bf16 hint ms | / ov-fp32 (f32) |")
    print("|---|---|---|---|---|---|")
    ref = times[("ov-fp32", "f32")]
    bf = times[("ov-fp32", "bf16")]
    print(f"| ov-fp32 | - | - | {ref:.1f} | {bf:.1f} | 1.00x / {bf / ref:.2f}x |")
    for label, result in results.items():
        rows = result.verification.rows
        e2e, sq = rows[-1].value, " / ".join(f"{r.value:.1f}" for r in rows[:-1])
        a, b = times[(label, "f32")], times[(label, "bf16")]
        print(f"| {label} | **{e2e:.2f}** | {sq} | {a:.1f} | {b:.1f} | {a / ref:.2f}x / {b / ref:.2f}x |")
    return paths


def part_command(paths: dict[str, Path], threads: int) -> None:
    photo = next(p for p in sample_images() if p.name == "astronaut_lr.png")
    h, w = read_image(photo).shape[:2]
    cli = [sys.executable, "-m", "linearsr_edge.cli.upscale", str(photo), "-q"]
    exe = [*cli, "--threads", str(threads)]
    ours = next(k for k in paths if k.startswith("ov-int8"))
    commands = {
        "PyTorch reference (linearsr-upscale, no --bundle)": cli,
        "ov-fp32 --bundle (f32 hint)": [*exe, "--bundle", str(paths["ov-fp32"])],
        "ov-int8 --bundle (f32 hint)": [*exe, "--bundle", str(paths[ours])],
        "ov-int8 --bundle (bf16 hint)": [*exe, "--bundle", str(paths[ours]), "--precision-hint", "bf16"],
    }
    times: dict[str, list[float]] = {k: [] for k in commands}
    with tempfile.TemporaryDirectory() as tmp:
        cached = [*commands["ov-int8 --bundle (f32 hint)"], "--cache-dir", str(Path(tmp) / "cache")]
        commands["ov-int8 --bundle (f32 hint), --cache-dir warmed by one run"] = cached
        times[next(reversed(commands))] = []
        subprocess.run([*cached, "-o", str(Path(tmp) / "out.png")], check=True)  # fills the cache, untimed
        for _ in range(3):
            for label, cmd in commands.items():
                t0 = time.perf_counter()
                subprocess.run([*cmd, "-o", str(Path(tmp) / "out.png")], check=True)
                times[label].append(time.perf_counter() - t0)
    print(f"\nWhole command, {w}x{h} -> {w * 4}x{h * 4}, start-up included, median of 3 (interleaved):")
    print("\n| command | s | / reference |\n|---|---|---|")
    ref = statistics.median(next(iter(times.values())))
    for label, ts in times.items():
        print(f"| {label} | {statistics.median(ts):.2f} | **{statistics.median(ts) / ref:.2f}x** |")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", nargs="+", choices=("nfe", "peers", "command"), default=["nfe", "peers", "command"])
    ap.add_argument("--latent", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{machine_line(args.threads)}\ntorch {torch.__version__}, openvino {ov.get_version()}")
    print(f"OpenVINO CPU capabilities: {' '.join(ov.Core().get_property('CPU', 'OPTIMIZATION_CAPABILITIES'))}")
    if "nfe" in args.part:
        part_nfe(args.latent, args.threads, args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        paths = part_peers(Path(tmp), args.threads, args.repeats) if {"peers", "command"} & set(args.part) else {}
        if "command" in args.part:
            part_command(paths, args.threads)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
