"""Flow-matching schedule, the step plan and the sampler loop. Pure NumPy, stateless.

``x_sigma = (1 - sigma) * x0 + sigma * noise`` and the model predicts the velocity
``v = noise - x0``, so one Euler step from ``sigma`` to ``sigma_next`` is
``x + (sigma_next - sigma) * v``. The plan is computed once on the host; every runtime
runs `sample` with its own ``velocity_fn``, so the loop never branches on the backend.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from linearsr_edge.config import ExpertBand, route
from linearsr_edge.errors import ConfigError

SOLVERS = ("euler", "heun")

# velocity_fn(expert_index, x, sigma) -> velocity, same shape as x. ``sigma`` is a Python float.
VelocityFn = Callable[[int, np.ndarray, float], np.ndarray]


def shift_sigmas(t: np.ndarray, shift: float) -> np.ndarray:
    """SANA's time shift: ``shift * t / (1 + (shift - 1) * t)``; shift > 1 spends more steps at high noise."""
    return shift * t / (1.0 + (shift - 1.0) * t)


def unshift_sigma(sigma: float, shift: float) -> float:
    """Inverse of `shift_sigmas` for one value."""
    return sigma / (shift - (shift - 1.0) * sigma)


def sigmas(steps: int, shift: float = 1.0, start: float = 1.0) -> np.ndarray:
    """``steps + 1`` sigmas from ``start`` down to exactly 0, shifted. Shape ``[steps + 1]``, float64."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ConfigError(f"steps must be a positive integer, got {steps!r}")
    if not 0.0 < start <= 1.0:
        raise ConfigError(f"start sigma must lie in (0, 1], got {start}")
    if not shift > 0:
        raise ConfigError(f"shift must be > 0, got {shift}")
    t = np.linspace(unshift_sigma(start, shift), 0.0, steps + 1)
    out = shift_sigmas(t, shift)
    out[0], out[-1] = start, 0.0
    return out


def log_snr(sigma: np.ndarray | float) -> np.ndarray:
    """``2 ln((1 - sigma) / sigma)``: -inf at sigma = 1, +inf at sigma = 0."""
    s = np.asarray(sigma, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return 2.0 * (np.log1p(-s) - np.log(s))


def sigma_from_log_snr(lam: np.ndarray | float) -> np.ndarray:
    """Inverse of `log_snr`: ``sigma = 1 / (1 + exp(lam / 2))``."""
    return 1.0 / (1.0 + np.exp(np.asarray(lam, dtype=np.float64) / 2.0))


@dataclass(frozen=True)
class StepPlan:
    """One row per step. Arrays have shape ``[steps]``.

    ``expert_next`` is the expert owning ``sigma_next`` (used by Heun's second evaluation;
    -1 where ``sigma_next`` is 0 and the step falls back to Euler).
    """

    sigma: np.ndarray
    sigma_next: np.ndarray
    log_snr: np.ndarray
    expert: np.ndarray
    expert_next: np.ndarray
    solver: str = "euler"

    def __len__(self) -> int:
        return len(self.sigma)

    @property
    def nfe(self) -> int:
        """Network evaluations the plan costs."""
        if self.solver == "euler":
            return len(self)
        return len(self) + int(np.count_nonzero(self.expert_next >= 0))

    def steps_per_expert(self, num_experts: int) -> list[int]:
        return np.bincount(self.expert, minlength=num_experts).tolist()


def make_plan(
    bands: Sequence[ExpertBand],
    steps: int,
    shift: float = 1.0,
    start: float = 1.0,
    solver: str = "euler",
) -> StepPlan:
    """The step plan: sigma_i, sigma_{i+1}, log-SNR(sigma_i) and the expert that owns each step."""
    if solver not in SOLVERS:
        raise ConfigError(f"solver must be one of {SOLVERS}, got {solver!r}")
    s = sigmas(steps, shift, start)
    lam = log_snr(s[:-1])
    expert = np.array([route(bands, float(v)) for v in lam], dtype=np.int64)
    nxt = s[1:]
    expert_next = np.array([route(bands, float(log_snr(v))) if v > 0 else -1 for v in nxt], dtype=np.int64)
    return StepPlan(sigma=s[:-1], sigma_next=nxt, log_snr=lam, expert=expert, expert_next=expert_next, solver=solver)


def euler_step(x: np.ndarray, v: np.ndarray, sigma: float, sigma_next: float) -> np.ndarray:
    return x + (sigma_next - sigma) * v


def sample(
    plan: StepPlan,
    x: np.ndarray,
    velocity_fn: VelocityFn,
    on_step: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Run the plan from ``x`` (the noisy start at ``plan.sigma[0]``) to sigma 0.

    Heun (second order, two NFE per step) averages the velocity at both ends of a step
    and falls back to Euler on the final step into sigma 0.
    """
    return sample_many(plan, [x], [velocity_fn], on_step)[0]


def sample_many(
    plan: StepPlan,
    xs: Sequence[np.ndarray],
    velocity_fns: Sequence[VelocityFn],
    on_step: Callable[[int], None] | None = None,
) -> list[np.ndarray]:
    """`sample` for several independent states in lockstep (one velocity function each).

    Every state takes step i before any state takes step i + 1, and within a step every first
    evaluation runs before any (Heun) second one. The plan's experts never decrease along that
    order (bands are contiguous), so the evaluations run expert-major: all of expert k's, then
    expert k + 1's, and a runtime that keeps one expert resident opens each expert once.
    """
    if len(xs) != len(velocity_fns):
        raise ConfigError(f"{len(xs)} states but {len(velocity_fns)} velocity functions")
    xs = list(xs)
    for i in range(len(plan)):
        sigma, sigma_next = float(plan.sigma[i]), float(plan.sigma_next[i])
        k, k_next = int(plan.expert[i]), int(plan.expert_next[i])
        vs = [fn(k, x, sigma) for fn, x in zip(velocity_fns, xs, strict=True)]
        nxt = [euler_step(x, v, sigma, sigma_next) for x, v in zip(xs, vs, strict=True)]
        if plan.solver == "heun" and k_next >= 0:
            v2s = [fn(k_next, x, sigma_next) for fn, x in zip(velocity_fns, nxt, strict=True)]
            nxt = [x + (sigma_next - sigma) * 0.5 * (v + v2) for x, v, v2 in zip(xs, vs, v2s, strict=True)]
        xs = nxt
        if on_step is not None:
            on_step(i)
    return xs
