#!/usr/bin/env python
"""Which ``onnx-int8`` graph holds its quality on every CPU: the candidates, and the kernel path.

Builds the demo model's ``onnx-fp32`` bundle and four ``onnx-int8`` variants (U8 x S8 with 8-bit
weights; 7-bit weights with ``reduce_range``, the default; S8 x S8; the accurate graph), all from the same calibration
photos, then reports for each, in one run on this CPU:

* end-to-end PSNR against the FP32 reference on the held-out photos, run with ONNX Runtime's
  integer kernels (what the device runs), and the same graph with ``session.disable_quant_qdq``
  (every Q/DQ evaluated as float ops: the quantization alone, no integer kernel). Their difference
  is what the kernel path costs on this CPU: ~0 where VNNI holds the U8 x S8 sums, several dB where
  AVX2's 16-bit pair sums saturate;
* the per-NFE latency of expert 1 at a 64x64 latent against ORT FP32 (interleaved blocks).

    python -m benchmarks.int8_portable [--threads 2] [--repeats 10]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

from benchmarks.onnx_vs_torch import median_ms
from linearsr_edge.backends.onnx.options import OnnxInt8Options, OrtOptions
from linearsr_edge.build import ExportOptions, build_bundle
from linearsr_edge.calibration import CalibrationOptions, images_from_dir
from linearsr_edge.demo import load_demo, sample_images
from linearsr_edge.machine import machine_line
from linearsr_edge.pipeline.process import SampleOptions
from linearsr_edge.quality.parity import psnr
from linearsr_edge.runtime import SRRuntime

VARIANTS = {
    "full range (U8 x S8)": OnnxInt8Options(reduce_range=False),
    "reduce_range (U8 x S7), the default": OnnxInt8Options(),
    "S8 x S8": OnnxInt8Options(activation_type="int8", reduce_range=False),
    "accurate (FP32 around quantized ops)": OnnxInt8Options(fuse_outputs=False, reduce_range=False),
}
EMULATED = {"session.disable_quant_qdq": "1"}


def heldout_psnr(path: Path, images, refs, threads: int, config: dict) -> float:
    opts = OrtOptions(threads=threads, session_config=config)
    with SRRuntime.load(path, backend="onnxruntime", options=opts) as rt:
        outs = [rt.upscale(img, SampleOptions(seed=0)).image for img in images]
    return float(np.mean([psnr(r, o, peak=255.0) for r, o in zip(refs, outs, strict=True)]))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeats", type=int, default=10)
    args = ap.parse_args()
    print(f"{machine_line(args.threads)}\nonnxruntime {ort.__version__}")
    photos = sample_images()[0].parent
    held = [img for _, img in images_from_dir(photos)][-CalibrationOptions().heldout_images :]
    reference = load_demo().reference()
    refs = [reference.upscale(img, SampleOptions(seed=0)).image for img in held]
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        fp32 = build_bundle(ExportOptions(target="onnx-fp32", out=root / "fp32", progress=False)).bundle
        built = {}
        for i, (label, options) in enumerate(VARIANTS.items()):
            result = build_bundle(
                ExportOptions(target="onnx-int8", out=root / f"int8-{i}", progress=False, target_options=options)
            )
            built[label] = result
        spec = fp32.spec("expert_1")
        feeds = spec.dummy_inputs("opt", batch=1, seed=0, height=64, width=64)
        sessions = [SRRuntime.load(fp32.path, options=OrtOptions(threads=args.threads))]
        sessions += [SRRuntime.load(r.bundle.path, options=OrtOptions(threads=args.threads)) for r in built.values()]
        calls = [lambda rt=rt: rt.run_component("expert_1", feeds) for rt in sessions]
        times = median_ms(*calls, repeats=args.repeats, block=3)
        for rt in sessions:
            rt.close()
        print("\nDemo model, onnx-int8 variants; PSNR against the FP32 reference on the held-out photos")
        print(f"({len(held)}: the export gates' own); expert 1 per NFE at 64x64 latent, {args.threads} threads.\n")
        print(
            "| variant | PSNR, integer kernels | PSNR, Q/DQ as float ops | kernel cost dB | expert SQNR 0-3 dB "
            "| step SNR 0-3 dB | ms / NFE | / ORT FP32 |"
        )
        print("|---|---|---|---|---|---|---|---|")
        print(f"| ORT FP32 | - | - | - | - | - | {times[0]:.1f} | 1.00x |")
        for (label, result), ms in zip(built.items(), times[1:], strict=True):
            path = result.bundle.path
            real = heldout_psnr(path, held, refs, args.threads, {})
            ideal = heldout_psnr(path, held, refs, args.threads, EMULATED)
            rows = result.verification.rows
            sq = " / ".join(f"{r.value:.1f}" for r in rows if r.metric == "sqnr_db")
            st = " / ".join(f"{r.value:.1f}" for r in rows if r.metric == "step_snr_db")
            print(
                f"| {label} | **{real:.2f}** | {ideal:.2f} | {ideal - real:+.2f} | {sq} | {st} | {ms:.1f} "
                f"| {ms / times[0]:.2f}x |"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
