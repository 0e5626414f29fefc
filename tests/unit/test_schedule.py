from __future__ import annotations

import numpy as np
import pytest

from linearsr_edge.config import ExpertBand, bands_from_edges
from linearsr_edge.errors import ConfigError
from linearsr_edge.schedule import log_snr, make_plan, sample, sigma_from_log_snr, sigmas

FOUR = bands_from_edges((0.5, 1.6, 3.0))
ONE = (ExpertBand(None, None),)


@pytest.mark.parametrize("shift", [1.0, 3.0, 0.5])
@pytest.mark.parametrize("start", [1.0, 0.5])
def test_sigmas_run_from_start_to_zero(shift, start):
    s = sigmas(7, shift, start)
    assert s.shape == (8,)
    assert s[0] == start and s[-1] == 0.0
    assert np.all(np.diff(s) < 0)


def test_shift_spends_more_steps_at_high_noise():
    assert np.all(sigmas(8, 3.0)[1:-1] > sigmas(8, 1.0)[1:-1])


def test_log_snr_inverse_and_ends():
    s = np.linspace(0.01, 0.99, 50)
    assert np.allclose(sigma_from_log_snr(log_snr(s)), s)
    assert log_snr(1.0) == -np.inf and log_snr(0.0) == np.inf
    assert log_snr(0.5) == 0.0


@pytest.mark.parametrize("bands", [ONE, FOUR], ids=["K=1", "K=4"])
def test_every_sigma_maps_to_exactly_one_expert(bands):
    grid = np.concatenate([np.linspace(1e-6, 1.0, 20001), sigma_from_log_snr(np.array([0.5, 1.6, 3.0]))])
    for s in grid:
        lam = float(log_snr(s))
        owners = [k for k, b in enumerate(bands) if b.contains(lam)]
        assert len(owners) == 1, (s, lam, owners)
        plan = make_plan(bands, 1, start=float(s))
        assert plan.expert[0] == owners[0]


def test_default_demo_plan_visits_all_four_experts():
    plan = make_plan(FOUR, 4, start=0.5)
    assert plan.expert.tolist() == [0, 1, 2, 3]
    assert plan.steps_per_expert(4) == [1, 1, 1, 1]
    assert np.allclose(plan.sigma, [0.5, 0.375, 0.25, 0.125])


def test_plan_rejects_bad_arguments():
    with pytest.raises(ConfigError, match="steps"):
        make_plan(FOUR, 0)
    with pytest.raises(ConfigError, match="solver"):
        make_plan(FOUR, 4, solver="rk4")
    with pytest.raises(ConfigError, match="start sigma"):
        make_plan(FOUR, 4, start=1.5)


def _linear_velocity(x0):
    # the exact flow velocity towards x0 from x_sigma = (1 - s) x0 + s * noise is (x - x0) / s
    return lambda k, x, s: (x - x0) / s


@pytest.mark.parametrize("solver", ["euler", "heun"])
def test_sampler_follows_an_exact_flow(solver):
    rng = np.random.default_rng(0)
    x0, noise = rng.standard_normal((2, 3, 4, 4))
    plan = make_plan(FOUR, 5, start=0.8, solver=solver)
    x = 0.2 * x0 + 0.8 * noise
    seen = []
    out = sample(plan, x, _linear_velocity(x0), on_step=seen.append)
    assert np.allclose(out, x0)
    assert seen == list(range(5))


def test_heun_costs_two_nfe_except_last_step_and_is_more_accurate():
    plan = make_plan(FOUR, 4, solver="heun")
    assert plan.nfe == 7
    calls = []

    def v(k, x, s):
        calls.append(k)
        return np.cos(x) + s  # non-linear: solvers differ

    x = np.array([0.3])
    euler = sample(make_plan(FOUR, 4), x, v)
    heun = sample(plan, x, v)
    fine = sample(make_plan(FOUR, 4000), x, v)
    assert abs(heun - fine) < abs(euler - fine)


def test_sample_many_needs_one_velocity_function_per_state():
    from linearsr_edge.errors import ConfigError
    from linearsr_edge.schedule import make_plan, sample_many

    plan = make_plan(bands_from_edges((0.0,)), 2)
    with pytest.raises(ConfigError, match="2 states but 1 velocity functions"):
        sample_many(plan, [np.zeros(2), np.zeros(2)], [lambda k, x, s: x])
