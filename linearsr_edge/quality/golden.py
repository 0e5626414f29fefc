"""The golden set: a few FP32 reference cases shipped in every bundle, so that quality can be proven
where the bundle runs (another CPU, a Jetson, a Mac), not only where it was exported.

Per expert: inputs recorded from the FP32 sampler in the expert's own band at the profile's
smallest size, with the FP32 velocity and the step's delta-sigma. One end-to-end case: a small LR
image, its sampling options and the FP32 reference's SR output. Stored in ``golden.npz`` (hashed
in the manifest like every file). Pure NumPy: `SRRuntime.verify` reads it without PyTorch.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from linearsr_edge.errors import BundleError
from linearsr_edge.pipeline.process import SampleOptions, SRProcess
from linearsr_edge.quality.parity import CheckRow, psnr_row, sqnr_row, step_row

INPUTS = ("latent", "lr_latent", "sigma", "cond")
SHARED = ("lr_latent", "cond")


@dataclass
class GoldenCase:
    feeds: dict[str, np.ndarray]  # one expert's inputs, batch 1
    velocity: np.ndarray  # the FP32 reference's output
    dsigma: float  # the step's sigma_next - sigma (negative)


@dataclass
class GoldenSet:
    experts: dict[int, list[GoldenCase]]
    lr: np.ndarray  # uint8 [h, w, 3]
    sr: np.ndarray  # uint8 [h*s, w*s, 3], the FP32 reference's output
    steps: int
    seed: int

    def save(self, path: Path) -> None:
        arrays: dict[str, np.ndarray] = {"lr": self.lr, "sr": self.sr, "meta": np.array([self.steps, self.seed])}
        first = next(iter(c for cases in self.experts.values() for c in cases))
        for name in SHARED:  # one recording run: every case has the same LR latent and tags; stored once
            arrays[f"shared_{name}"] = first.feeds[name]
        for k, cases in self.experts.items():
            for i, case in enumerate(cases):
                for name in INPUTS:
                    if name not in SHARED or not np.array_equal(case.feeds[name], arrays[f"shared_{name}"]):
                        arrays[f"e{k}_{i}_{name}"] = case.feeds[name]
                arrays[f"e{k}_{i}_velocity"] = case.velocity
                arrays[f"e{k}_{i}_dsigma"] = np.array(case.dsigma)
        buf = io.BytesIO()
        np.savez_compressed(buf, **arrays)
        Path(path).write_bytes(buf.getvalue())

    @classmethod
    def load(cls, path: Path) -> GoldenSet:
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {k: data[k] for k in data.files}
        except (OSError, ValueError) as exc:
            raise BundleError(f"cannot read the golden set {path}: {exc}") from None
        experts: dict[int, list[GoldenCase]] = {}
        for key in sorted(k for k in arrays if k.endswith("_velocity")):
            k, i = (int(v) for v in key[1:].split("_")[:2])
            feeds = {n: arrays.get(f"e{k}_{i}_{n}", arrays.get(f"shared_{n}")) for n in INPUTS}
            experts.setdefault(k, []).append(GoldenCase(feeds, arrays[key], float(arrays[f"e{k}_{i}_dsigma"])))
        steps, seed = (int(v) for v in arrays["meta"])
        return cls(experts, arrays["lr"], arrays["sr"], steps, seed)

    def rows(self, run_expert, upscale, limits) -> list[CheckRow]:
        """Check a runtime against the reference outputs: per expert the output SQNR and the step SNR, then
        the end-to-end PSNR. ``run_expert(k, feeds) -> velocity``; ``upscale(lr, SampleOptions) -> uint8``."""
        rows = []
        for k, cases in sorted(self.experts.items()):
            name, n = f"expert_{k}", len(cases)
            refs = [c.velocity for c in cases]
            tests = [run_expert(k, c.feeds) for c in cases]
            rows.append(sqnr_row(name, f"{n} golden band inputs", refs, tests, limits.expert_sqnr_db))
            latents = [c.feeds["latent"] for c in cases]
            rows.append(
                step_row(name, f"{n} golden steps", latents, refs, tests, [c.dsigma for c in cases], limits.step_snr_db)
            )
        sr = upscale(self.lr, SampleOptions(steps=self.steps, seed=self.seed))
        h, w = self.lr.shape[:2]
        rows.append(psnr_row(f"golden {w}x{h} photo, {self.steps} steps", [self.sr], [sr], limits.e2e_psnr_db))
        return rows


def step_deltas(process: SRProcess, opts: SampleOptions):
    """``delta(sigma) -> sigma_next - sigma`` for the steps of the plan ``opts`` makes (``sigma`` as the
    expert saw it, float32); a sigma the plan does not hold is refused, never given a zero step."""
    plan = process.plan(opts)
    deltas = {float(np.float32(s)): float(n - s) for s, n in zip(plan.sigma, plan.sigma_next, strict=True)}

    def delta(sigma: float) -> float:
        key = float(np.float32(sigma))
        if key in deltas:
            return deltas[key]
        near = [d for s, d in deltas.items() if math.isclose(s, key, rel_tol=1e-6)]
        if not near:
            raise BundleError(f"sigma {sigma:g} is not a step of the {len(plan)}-step plan")
        return near[0]

    return delta


def record_golden(process: SRProcess, image: np.ndarray, per_expert: int = 2, seed: int = 0) -> GoldenSet:
    """Run the FP32 reference ``process`` on ``image`` (uint8, already at the golden size): record up to
    ``per_expert`` inputs of each expert from a run with four times the model's steps (every band
    visited more than once), then one default run for the end-to-end case."""
    steps = 4 * process.cfg.default_steps
    record = SampleOptions(steps=steps, seed=seed + 1)
    delta = step_deltas(process, record)
    cases: dict[int, list[GoldenCase]] = {k: [] for k in range(process.cfg.num_experts)}
    inner = process.expert

    def recording(k: int, feeds: dict[str, np.ndarray]) -> np.ndarray:
        out = inner(k, feeds)
        if len(cases[k]) < per_expert:
            dsigma = delta(float(feeds["sigma"][0]))
            cases[k].append(GoldenCase({n: feeds[n][:1].copy() for n in INPUTS}, out[:1].copy(), dsigma))
        return out

    recorder = SRProcess(process.cfg, process.codec_factor, process.encode, process.decode, recording, process.tags)
    recorder.upscale(image, record)
    missing = [k for k, v in cases.items() if not v]
    if missing:
        raise BundleError(f"golden set: the {steps}-step plan never visits experts {missing}")
    sr = process.upscale(image, SampleOptions(seed=seed)).image
    return GoldenSet(cases, image, sr, process.cfg.default_steps, seed)
