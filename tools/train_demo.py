#!/usr/bin/env python
"""Train the demo LinearSR (4x, 4 SNR experts, tag conditioning) on photos shipped in scikit-image.

Reproducible: seeded data, init and sampling; fixed iteration counts. Regenerates the shipped
weights within noise in well under 60 minutes on 2 CPU cores:

    python tools/train_demo.py --out linearsr_edge/demo

Recipe: a shared base denoiser is trained over all noise levels, then each expert starts from
the base (EMA weights) and is fine-tuned on its own log-SNR band only. The model diffuses the
*residual* of the HR latent over the bicubic-upsampled LR latent, scaled to unit spread.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from copy import deepcopy
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from linearsr_edge.config import ModelConfig, bands_from_edges
from linearsr_edge.demo.data import HELDOUT_PHOTOS, TAG_NAMES, TRAIN_PHOTOS, Degradation, load_photo, write_samples
from linearsr_edge.model.codec import PixelUnshuffleCodec
from linearsr_edge.model.denoiser import Denoiser
from linearsr_edge.model.experts import SNRExperts
from linearsr_edge.model.folder import save_model_folder
from linearsr_edge.pipeline.imaging import bicubic_resize, to_model
from linearsr_edge.schedule import shift_sigmas, sigma_from_log_snr
from linearsr_edge.tags import NULL_TAG, TagVocabulary

SCALE = 4
# Default sampling: 4 Euler steps from pure noise with a small flow shift, so the first step
# jumps from sigma 1 to 0.31 (a full estimate of the residual) and the rest refine it:
# sigmas 1, 0.31, 0.13, 0.048 (log-SNR -inf, 1.6, 3.8, 6.0). The band edges sit between them, so
# the default run visits every expert once.
BAND_EDGES = (1.0, 3.0, 5.0)
START_SIGMA = 1.0
STEPS = 4
FLOW_SHIFT = 0.15
MAX_TAGS = 2  # tags per training sample (plus the null tag, always appended)


def model_config(residual_scale: float) -> ModelConfig:
    return ModelConfig(
        latent_channels=3 * SCALE * SCALE,
        hidden_size=128,
        depth=3,
        num_heads=4,
        head_dim=32,
        mlp_ratio=2.5,
        cross_attn_heads=4,
        cross_attn_head_dim=32,
        cond_dim=64,
        patch_size=1,
        bands=bands_from_edges(BAND_EDGES),
        flow_shift=FLOW_SHIFT,
        default_steps=STEPS,
        start_sigma=START_SIGMA,
        parameterization="residual",
        residual_scale=residual_scale,
        upscale=SCALE,
    )


def make_pairs(n: int, crop: int, seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n random (HR crop, bicubic-upsampled degraded LR, tag ids) triples, both images [-1, 1]."""
    rng = np.random.default_rng(seed)
    photos = [(load_photo(name), tags) for name, tags in TRAIN_PHOTOS.items()]
    tag_index = {t: i for i, t in enumerate(TAG_NAMES)}
    null = len(TAG_NAMES)
    degrade = Degradation(scale=SCALE)
    hr_all, up_all, tag_all = [], [], []
    for _ in tqdm(range(n), desc="degrading crops", unit="crop"):
        photo, tags = photos[int(rng.integers(len(photos)))]
        h, w = photo.shape[:2]
        y, x = int(rng.integers(h - crop + 1)), int(rng.integers(w - crop + 1))
        hr = np.rot90(photo[y : y + crop, x : x + crop], k=int(rng.integers(4)))
        if rng.random() < 0.5:
            hr = hr[:, ::-1]
        hr = np.ascontiguousarray(hr)
        lr = degrade(hr, rng)
        hr_all.append(to_model(hr))
        up_all.append(bicubic_resize(to_model(lr), crop, crop))
        chosen = [tag_index[t] for t in tags if rng.random() < 0.7][:MAX_TAGS]
        tag_all.append(chosen + [null] * (MAX_TAGS + 1 - len(chosen)))
    return torch.from_numpy(np.stack(hr_all)), torch.from_numpy(np.stack(up_all)), torch.tensor(tag_all)


class Trainer:
    def __init__(self, cfg: ModelConfig, data, batch: int, seed: int) -> None:
        self.cfg, self.batch = cfg, batch
        self.codec = PixelUnshuffleCodec(SCALE)
        hr, up, self.tag_ids = data
        with torch.no_grad():
            self.lr_lat = self.codec.encode(up)
            self.x0 = (self.codec.encode(hr) - self.lr_lat) * cfg.residual_scale
        self.gen = torch.Generator().manual_seed(seed)

    def sigmas(self, sigma_range: tuple[float, float]) -> torch.Tensor:
        """Uniform in the range, plus the sampler's own sigmas where they fall in it: sigma = 1 exactly
        (the first step) and the shifted schedule's low-noise region."""
        lo, hi = sigma_range
        u = torch.rand(self.batch, generator=self.gen)
        sigma = lo + (hi - lo) * u
        shifted = torch.from_numpy(shift_sigmas(u.numpy(), FLOW_SHIFT)).float()
        pick = torch.rand(self.batch, generator=self.gen)
        in_range = (shifted >= lo) & (shifted <= hi)
        sigma = torch.where((pick < 0.4) & in_range, shifted, sigma)
        if hi >= 1.0:
            sigma = torch.where(pick > 0.8, torch.ones_like(sigma), sigma)
        return sigma

    def batch_at(self, sigma_range: tuple[float, float]):
        idx = torch.randint(len(self.x0), (self.batch,), generator=self.gen)
        sigma = self.sigmas(sigma_range)
        noise = torch.randn(self.x0[idx].shape, generator=self.gen)
        x0 = self.x0[idx]
        s = sigma[:, None, None, None]
        return (1 - s) * x0 + s * noise, self.lr_lat[idx], sigma, self.tag_ids[idx], noise - x0

    def run(
        self,
        model: Denoiser,
        tag_table: torch.nn.Parameter,
        iters: int,
        sigma_range,
        lr: float,
        desc: str,
        train_tags: bool,
    ) -> Denoiser:
        params = list(model.parameters()) + ([tag_table] if train_tags else [])
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
        ema = deepcopy(model).eval()
        warm = max(1, iters // 20)
        bar = tqdm(range(iters), desc=desc, unit="it")
        running = None
        for it in bar:
            scale = min(1.0, (it + 1) / warm) * 0.5 * (1 + math.cos(math.pi * it / iters))
            for g in opt.param_groups:
                g["lr"] = lr * max(scale, 0.02)
            xt, lr_lat, sigma, tags, target = self.batch_at(sigma_range)
            pred = model(xt, lr_lat, sigma, tag_table[tags])
            loss = torch.nn.functional.mse_loss(pred, target)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            decay = min(0.999, (1 + it) / (10 + it))
            with torch.no_grad():
                for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
                    pe.lerp_(pm, 1 - decay)
            running = loss.item() if running is None else 0.98 * running + 0.02 * loss.item()
            if it % 50 == 0:
                bar.set_postfix(loss=f"{running:.4f}")
        return ema


def band_sigma_range(cfg: ModelConfig, k: int, floor: float = 0.02) -> tuple[float, float]:
    band = cfg.bands[k]
    hi = 1.0 if band.low is None else float(sigma_from_log_snr(band.low))
    lo = floor if band.high is None else float(sigma_from_log_snr(band.high))
    return max(lo, floor), hi


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("linearsr_edge/demo"), help="model folder to write")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--pairs", type=int, default=3000, help="pre-degraded training crops")
    ap.add_argument("--crop", type=int, default=128, help="HR crop side (LR side = crop / 4)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--base-iters", type=int, default=3000)
    ap.add_argument("--expert-iters", type=int, default=500)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t0 = time.time()

    data = make_pairs(args.pairs, args.crop, args.seed)
    with torch.no_grad():
        codec = PixelUnshuffleCodec(SCALE)
        spread = float((codec.encode(data[0]) - codec.encode(data[1])).std())
    residual_scale = round(1.0 / spread, 2)
    cfg = model_config(residual_scale)
    trainer = Trainer(cfg, data, args.batch, args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    tag_table = torch.nn.Parameter(torch.randn(len(TAG_NAMES) + 1, cfg.cond_dim, generator=gen))

    base = trainer.run(Denoiser(cfg), tag_table, args.base_iters, (0.02, 1.0), args.lr, "base (all sigmas)", True)
    experts = []
    for k in range(cfg.num_experts):
        rng = band_sigma_range(cfg, k)
        experts.append(
            trainer.run(
                deepcopy(base).train(),
                tag_table.detach(),
                args.expert_iters,
                rng,
                args.lr * 0.3,
                f"expert {k} {cfg.bands[k]}",
                False,
            )
        )
    minutes = (time.time() - t0) / 60

    final = SNRExperts(cfg)
    for k, e in enumerate(experts):
        final.experts[k].load_state_dict(e.state_dict())
    vocab = TagVocabulary((*TAG_NAMES, NULL_TAG), tag_table.detach().numpy().copy())
    save_model_folder(
        args.out,
        final,
        codec,
        vocab,
        {
            "command": "python tools/train_demo.py " + shlex.join(argv if argv is not None else sys.argv[1:]),
            "seed": args.seed,
            "pairs": args.pairs,
            "crop": args.crop,
            "batch": args.batch,
            "base_iters": args.base_iters,
            "expert_iters": args.expert_iters,
            "minutes": round(minutes, 1),
            "threads": args.threads,
            "torch": torch.__version__,
            "train_photos": sorted(TRAIN_PHOTOS),
            "heldout_photos": sorted(HELDOUT_PHOTOS),
        },
    )
    write_samples(args.out / "samples", SCALE)
    print(f"wrote {args.out} in {minutes:.1f} min (residual scale {residual_scale})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
