#!/usr/bin/env python
"""Evaluate a model folder (default: the shipped demo) on the held-out photos against bicubic.

python tools/eval_demo.py [--model DIR] [--steps N] [--start-sigma S] [--degraded]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from linearsr_edge.demo import DEMO_DIR
from linearsr_edge.demo.evaluate import evaluate, format_rows
from linearsr_edge.pipeline.process import SampleOptions
from linearsr_edge.reference import load_model_folder


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, default=DEMO_DIR)
    ap.add_argument("--steps", type=int, nargs="*", default=[None])
    ap.add_argument("--start-sigma", type=float, default=None)
    ap.add_argument("--solver", default="euler")
    ap.add_argument("--shift", type=float, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--tags", default="auto", help="'auto' uses each photo's tags, 'none' the null tag")
    ap.add_argument("--degraded", action="store_true", help="degraded LR (blur/noise/JPEG) instead of clean bicubic")
    ap.add_argument("--figure", type=Path, help="write a bicubic | model | ground-truth crop of astronaut here")
    args = ap.parse_args()
    torch.set_num_threads(2)
    folder = load_model_folder(args.model)
    pipe = folder.reference()
    tags = ("auto",) if args.tags == "auto" else ()
    for steps in args.steps:
        opts = SampleOptions(
            steps=steps, start_sigma=args.start_sigma, shift=args.shift, solver=args.solver, seed=args.seed, tags=tags
        )
        rows = evaluate(lambda lr, o: pipe.upscale(lr, o).image, folder.cfg.upscale, opts, args.degraded)
        plan = pipe.process.plan(opts)
        print(
            f"\nsteps={len(plan)} start_sigma={plan.sigma[0]:.3f} solver={args.solver} "
            f"experts={plan.steps_per_expert(folder.cfg.num_experts)} degraded={args.degraded}"
        )
        print(format_rows(rows))
    if args.figure:
        write_figure(args.figure, pipe, folder.cfg.upscale)
    return 0


def write_figure(path: Path, pipe, scale: int) -> None:
    """bicubic | model | ground truth on a 160x160 HR crop of the held-out astronaut, shown 2x."""
    from PIL import Image

    from linearsr_edge.demo.evaluate import heldout_pairs
    from linearsr_edge.pipeline.imaging import bicubic_resize, from_model, to_model

    name, hr, lr = heldout_pairs(scale)[0]
    sr = pipe.upscale(lr, SampleOptions(tags=("portrait", "space"))).image
    bic = from_model(bicubic_resize(to_model(lr), hr.shape[0], hr.shape[1]))
    y, x, side = 60, 160, 160  # the face
    tiles = [im[y : y + side, x : x + side] for im in (bic, sr, hr)]
    gap = np.full((side, 4, 3), 255, np.uint8)
    strip = np.concatenate([tiles[0], gap, tiles[1], gap, tiles[2]], axis=1)
    Image.fromarray(strip).resize((strip.shape[1] * 2, side * 2), Image.NEAREST).save(path)
    print(f"wrote {path} ({name}: bicubic | LinearSR demo | ground truth)")


if __name__ == "__main__":
    raise SystemExit(main())
