#!/usr/bin/env python
"""Embedding figures, each measured in one run: flicker with a fixed against a per-frame seed, throughput
of one runtime shared by 1, 2 and 4 threads, tiled against untiled quality and seams, and a soak of
frames through `SRRuntime.stream` with RSS sampled every 100 frames.

    python -m benchmarks.embedding --part flicker --bundle /tmp/prof/ov-fp32
    python -m benchmarks.embedding --part threads --bundle /tmp/prof/onnx-int8 --frames 24
    python -m benchmarks.embedding --part tiling --bundle /tmp/prof/ov-fp32 --picture docs/tiling.png
    python -m benchmarks.embedding --part soak --frames 2000          # a tiny bundle, built here (torch)
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from linearsr_edge.demo import SAMPLES_DIR
from linearsr_edge.machine import machine_line
from linearsr_edge.pipeline.imaging import read_image
from linearsr_edge.profiling import fit_frame
from linearsr_edge.quality.parity import psnr
from linearsr_edge.runtime import SRRuntime


def scene(frames: int, size: int = 64, box: int = 8, speed: int = 3) -> tuple[list[np.ndarray], list[tuple]]:
    """A static photo with a small bright square moving across it; (frames, square boxes x, y, w, h)."""
    base = fit_frame(read_image(SAMPLES_DIR / "coffee_lr.png"), size, size)
    out, boxes = [], []
    for t in range(frames):
        f = base.copy()
        x, y = 4 + speed * t, size // 2 - box // 2
        f[y : y + box, x : x + box] = (250, 240, 40)
        out.append(f)
        boxes.append((x, y, box, box))
    return out, boxes


def flicker(runtime, frames: int) -> None:
    images, boxes = scene(frames)
    s = runtime.cfg.upscale
    margin = 8 * s
    rows = {}
    for label, per_frame in (("fixed seed (stream default)", False), ("per-frame seed", True)):
        outs = [r.image for r in runtime.stream(images, seed=0, seed_per_frame=per_frame)]
        values = []
        for t in range(1, len(outs)):
            mask = np.ones(outs[t].shape[:2], bool)
            for x, y, w, h in (boxes[t], boxes[t - 1]):
                mask[max(0, y * s - margin) : (y + h) * s + margin, max(0, x * s - margin) : (x + w) * s + margin] = (
                    False
                )
            values.append(psnr(outs[t - 1][mask], outs[t][mask], peak=255.0))
        rows[label] = values
    print(f"flicker: frame-to-frame PSNR of the outputs in static regions ({frames} frames, {machine_line()})")
    print("| seed | mean dB | min dB |\n|---|---:|---:|")
    for label, v in rows.items():
        finite = [x for x in v if np.isfinite(x)]
        mean = "inf (identical)" if not finite else f"{np.mean(finite):.2f}"
        print(f"| {label} | {mean} | {min(v):.2f} |")


def threads(runtime, frames: int) -> None:
    images = [fit_frame(read_image(SAMPLES_DIR / "coffee_lr.png"), 32 + 8 * (i % 3), 48) for i in range(frames)]
    rows = []
    for n in (1, 2, 4):
        runtime.upscale(images[0])

        def camera(k: int, n: int = n) -> None:
            for i in range(k, len(images), n):
                runtime.upscale(images[i])

        t0 = time.perf_counter()
        pool = [threading.Thread(target=camera, args=(k,)) for k in range(n)]
        for t in pool:
            t.start()
        for t in pool:
            t.join()
        rows.append((n, frames / (time.perf_counter() - t0)))
    print(f"threads: one runtime shared by N camera threads, {frames} frames ({machine_line()})")
    print("| threads | frames/s | vs 1 thread |\n|---:|---:|---:|")
    for n, fps in rows:
        print(f"| {n} | {fps:.2f} | {fps / rows[0][1]:.2f}x |")


def tiling(runtime, picture: Path | None) -> None:
    from linearsr_edge.pipeline.tiling import TileGrid, seam_ratio

    image = fit_frame(read_image(SAMPLES_DIR / "chelsea_lr.png"), 96, 128)
    untiled = runtime.upscale(image, tiling=False).image
    print(f"tiling: {image.shape[1]}x{image.shape[0]} input, tiled against untiled ({machine_line()})")
    head = "| tile (output px) | latent tile / overlap | tiles | PSNR vs untiled | seam ratio | untiled, same lines |"
    print(head)
    print("|---:|---|---:|---:|---:|---:|")
    f = runtime.process.codec_factor
    for tile in (256, 192, 128):
        latent, overlap = runtime.tile_size(tile)
        out = runtime.upscale(image, tiling=True, tile=tile)
        grid = TileGrid(out.image.shape[0] // f, out.image.shape[1] // f, latent, overlap)
        ratio, same = seam_ratio(out.image, grid, f), seam_ratio(untiled, grid, f)
        print(
            f"| {tile} | {latent} / {overlap} | {int(out.timings['tiles'])} | "
            f"{psnr(untiled, out.image, peak=255.0):.2f} dB | {ratio:.3f} | {same:.3f} |"
        )
    if picture is not None:
        from PIL import Image, ImageDraw

        out = runtime.upscale(image, tiling=True, tile=128).image
        latent, overlap = runtime.tile_size(128)
        grid = TileGrid(out.shape[0] // f, out.shape[1] // f, latent, overlap)
        marked = Image.fromarray(out.copy())
        draw = ImageDraw.Draw(marked)
        for y0, y1, x0, x1 in grid.boxes():
            draw.rectangle([x0 * f, y0 * f, x1 * f - 1, y1 * f - 1], outline=(255, 0, 0))
        canvas = Image.new("RGB", (out.shape[1] * 3 + 20, out.shape[0]), "white")
        canvas.paste(Image.fromarray(untiled), (0, 0))
        canvas.paste(Image.fromarray(out), (out.shape[1] + 10, 0))
        canvas.paste(marked, (2 * out.shape[1] + 20, 0))
        picture.parent.mkdir(parents=True, exist_ok=True)
        canvas.save(picture)
        print(f"picture: untiled | tiled | tiled with the tiles drawn: {picture}")


def rss_mib() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def soak(runtime, frames: int) -> None:
    rng = np.random.default_rng(0)
    pool = [rng.integers(0, 256, (16 + 4 * (i % 3), 24, 3), dtype=np.uint8) for i in range(16)]
    samples, failed = [], 0
    t0 = time.perf_counter()
    for r in runtime.stream(pool[i % len(pool)] for i in range(frames)):
        failed += not r.ok
        if (r.index + 1) % 100 == 0:
            samples.append((r.index + 1, rss_mib()))
    elapsed = time.perf_counter() - t0
    after = [(n, m) for n, m in samples if n > 200]  # after warm-up
    slope = np.polyfit([n for n, _ in after], [m for _, m in after], 1)[0] * 1000 if len(after) > 1 else float("nan")
    print(f"soak: {frames} frames through stream in {elapsed:.1f} s ({frames / elapsed:.1f} fps), {failed} failed")
    print("RSS MiB every 100 frames: " + ", ".join(f"{m:.1f}" for _, m in samples))
    print(f"slope after 200 frames: {slope:+.3f} MiB per 1000 frames (target < 1); {machine_line()}")


def tiny_bundle(folder: Path) -> Path:
    from tests.helpers import export_tiny

    return export_tiny(folder, "onnx-fp32").bundle.path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--part", choices=("flicker", "threads", "tiling", "soak"), required=True)
    ap.add_argument("--bundle", type=Path, help="bundle folder (soak: default a tiny bundle built here)")
    ap.add_argument("--frames", type=int, default=None)
    ap.add_argument("--threads", type=int, default=None, help="backend threads")
    ap.add_argument("--picture", type=Path, help="tiling: save untiled | tiled | tiles drawn")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.bundle or (tiny_bundle(Path(tmp)) if args.part == "soak" else None)
        if path is None:
            ap.error("--bundle is required for this part")
        from linearsr_edge.bundle import Bundle
        from linearsr_edge.pipeline.session import pick_backend

        info = pick_backend(Bundle.load(path).format)
        with SRRuntime.load(path, backend=info.name, options=info.options(threads=args.threads)) as runtime:
            if args.part == "flicker":
                flicker(runtime, args.frames or 12)
            elif args.part == "threads":
                threads(runtime, args.frames or 24)
            elif args.part == "tiling":
                tiling(runtime, args.picture)
            else:
                soak(runtime, args.frames or 2000)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
