#!/usr/bin/env python
"""Change-aware streaming (``stream(..., reuse="tiles")``) against full tiled recompute, in one run.

    python -m benchmarks.change_aware BUNDLE [--frames 8] [--size 640x360] [--tiles 512 256] [--threads 2]

Three scenes of ``--frames`` frames each, on a real photo (scikit-image's motorcycle, cropped to ``--size``):
``fixed``: the photo as a fixed camera's background with a small object (a 96x64 crop of another photo, 2.7 %
of a 640x360 frame) moving 8 px per frame; ``half``: the left half of the frame panning 8 px per frame (50 %
motion); ``cuts``: every frame a different photo (scene cuts). Per scene and tile size: frames per second of
`SRRuntime.upscale(..., tiling=True, tile=T)` on every frame (full recompute) and with one `TileMemo` kept across
the frames (reuse), the share of tile calls reused, and whether every reused frame equals its full recompute
byte for byte. The first frame of a scene fills the memo and is left out of both rates.
"""

from __future__ import annotations

import argparse
import time

import numpy as np


def scenes(n: int, width: int, height: int) -> dict[str, list[np.ndarray]]:
    from skimage import data, transform

    def fit(img: np.ndarray) -> np.ndarray:
        img = img[..., :3] if img.ndim == 3 else np.stack([img] * 3, axis=2)
        scale = max(height / img.shape[0], width / img.shape[1])
        if scale > 1:
            img = (transform.rescale(img, scale, channel_axis=2) * 255).astype(np.uint8)
        return np.ascontiguousarray(img[:height, :width])

    left, right, _ = data.stereo_motorcycle()
    background, other = fit(left), fit(data.astronaut())
    photos = [fit(p) for p in (data.coffee(), data.chelsea(), data.rocket(), data.astronaut(), right)]
    obj = other[100:164, 180:276]  # 64 x 96
    fixed, half = [], []
    for i in range(n):
        f = background.copy()
        y, x = height // 3, 40 + 8 * i
        f[y : y + obj.shape[0], x : x + obj.shape[1]] = obj
        fixed.append(f)
        h = background.copy()
        h[:, : width // 2] = np.roll(background, 8 * i, axis=1)[:, : width // 2]
        half.append(h)
    cuts = [photos[i % len(photos)] for i in range(n)]
    return {"fixed": fixed, "half": half, "cuts": cuts}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("bundle")
    ap.add_argument("--frames", type=int, default=8)
    ap.add_argument("--size", default="640x360")
    ap.add_argument("--tiles", type=int, nargs="+", default=[512, 256])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--scenes", nargs="+", default=["fixed", "half", "cuts"])
    ap.add_argument("--save", help="write the fixed scene's last reused frame (the object's neighbourhood) here")
    args = ap.parse_args()

    from linearsr_edge.bundle import Bundle
    from linearsr_edge.machine import machine_line
    from linearsr_edge.pipeline.reuse import TileMemo
    from linearsr_edge.pipeline.session import pick_backend
    from linearsr_edge.runtime import SRRuntime

    w, h = (int(v) for v in args.size.split("x"))
    bundle = Bundle.load(args.bundle)
    rt = SRRuntime.load(bundle, options=pick_backend(bundle.format).options(threads=args.threads))
    print(machine_line(args.threads))
    print(f"{bundle.target}, {w}x{h} -> {w * rt.cfg.upscale}x{h * rt.cfg.upscale}, {args.frames} frames per scene\n")
    print("| scene | tile px | tiles | full fps | reuse fps | speed-up | tile calls reused | identical |")
    print("|---|---:|---:|---:|---:|---:|---:|---|")
    clips = scenes(args.frames, w, h)
    for tile in args.tiles:
        rt.upscale(clips["fixed"][0], tiling=True, tile=tile)  # compile this tile's shapes
        for name, frames in ((n, clips[n]) for n in args.scenes):
            memo = TileMemo()
            full_s = reuse_s = 0.0
            identical, reused, calls, tiles = True, 0.0, 0.0, 0
            for i, frame in enumerate(frames):  # alternated: full, then reuse, frame by frame
                t0 = time.perf_counter()
                full = rt.upscale(frame, tiling=True, tile=tile)
                t1 = time.perf_counter()
                mine = rt.upscale(frame, tiling=True, tile=tile, reuse=memo)
                t2 = time.perf_counter()
                identical &= np.array_equal(full.image, mine.image)
                tiles = full.tiles
                if i:
                    full_s, reuse_s = full_s + t1 - t0, reuse_s + t2 - t1
                    reused += mine.timings["tile_calls_reused"]
                    calls += mine.timings["tile_calls"]
            n = len(frames) - 1
            if args.save and name == "fixed":
                from PIL import Image

                s = rt.cfg.upscale
                y, x = (h // 3) * s, (40 + 8 * (len(frames) - 1)) * s
                crop = mine.image[max(0, y - 96 * s // 2) : y + 160 * s, max(0, x - 64 * s) : x + 192 * s]
                Image.fromarray(np.ascontiguousarray(crop)).save(args.save)
                print(f"saved {args.save} ({crop.shape[1]}x{crop.shape[0]}, from the reused frame)")
            print(
                f"| {name} | {tile} | {tiles} | {n / full_s:.3f} | {n / reuse_s:.3f} | **{full_s / reuse_s:.2f}x** "
                f"| {100 * reused / calls:.0f} % | {identical} |",
                flush=True,
            )
    rt.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
