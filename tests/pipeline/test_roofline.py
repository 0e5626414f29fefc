"""The roofline's two measures: FLOPs counted from the config against PyTorch's own count, and the SGEMM rate's
cache keyed by the machine and the thread count."""

from __future__ import annotations

import json

import pytest

from linearsr_edge.profiling.roofline import (
    INT8,
    _key,
    component_flops,
    expert_flops,
    int8_rate,
    sgemm_rate,
    sgemm_rates,
)
from tests.conftest import tiny_config

torch = pytest.importorskip("torch")


def _torch_flops(cfg, latent_hw, cond_len, batch=1) -> int:
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from linearsr_edge.model.denoiser import Denoiser

    model = Denoiser(cfg).eval()
    h, w = latent_hw
    args = (
        torch.randn(batch, cfg.latent_channels, h, w),
        torch.randn(batch, cfg.latent_channels, h, w),
        torch.rand(batch),
        torch.randn(batch, cond_len, cfg.cond_dim),
    )
    # the math path: the CPU's fused attention kernel is not counted by FlopCounterMode (0 FLOPs)
    with torch.no_grad(), sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(*args)
    return counter.get_total_flops()


@pytest.mark.parametrize(("latent_hw", "cond_len", "batch"), [((8, 8), 1, 1), ((16, 24), 3, 2), ((32, 32), 8, 1)])
def test_expert_flops_equal_pytorchs_count(latent_hw, cond_len, batch):
    cfg = tiny_config()
    assert expert_flops(cfg, latent_hw, cond_len, batch) == _torch_flops(cfg, latent_hw, cond_len, batch)


def test_the_demo_experts_flops_and_a_patch_size_of_two():
    from linearsr_edge.demo import DEMO_DIR
    from linearsr_edge.model.folder import read_model_folder

    cfg = read_model_folder(DEMO_DIR).cfg
    assert expert_flops(cfg, (64, 64), 2) == _torch_flops(cfg, (64, 64), 2)
    patched = tiny_config(patch_size=2)
    assert expert_flops(patched, (16, 16), 2) == _torch_flops(patched, (16, 16), 2)
    # linear attention: twice the tokens, about twice the work (not four times)
    ratio = expert_flops(cfg, (128, 128), 2) / expert_flops(cfg, (64, 128), 2)
    assert 1.95 < ratio < 2.0
    assert component_flops(cfg, "decoder", (64, 64), 2, "pixel_unshuffle") == 0
    assert component_flops(cfg, "decoder", (64, 64), 2, "dcae") is None


def test_the_sgemm_rate_is_the_best_of_every_probe_measured_once_per_machine_and_thread_count(tmp_path):
    from linearsr_edge.pipeline.session import BACKENDS

    rate, by = sgemm_rate(1, n=256, cache=tmp_path)
    stored = json.loads((tmp_path / "gemm-rates.json").read_text())
    assert set(stored) == {_key(1)} and "threads=1" in _key(1)
    rates = stored[_key(1)]
    fp32 = {k: v for k, v in rates.items() if not k.startswith(INT8)}
    int8 = {k[len(INT8) :]: v for k, v in rates.items() if k.startswith(INT8)}
    probes = {b.name for b in BACKENDS.entries() if b.gemm_probe and b.available}
    assert "numpy" in fp32 and set(fp32) - {"numpy"} <= probes and "openvino" in fp32  # installed here
    assert all(v > 0.1 for v in rates.values()) and rate == max(fp32.values()) and rates[by] == rate
    # INT8: a rate per backend with an INT8 probe; the INT8 limit is their best, never a float32 rate
    assert set(int8) == {b.name for b in BACKENDS.entries() if b.int8_gemm_probe and b.available} >= {"openvino"}
    assert int8_rate(1, n=256, cache=tmp_path) == (max(int8.values()), max(int8, key=int8.get))
    rates["numpy"] = 12345.0  # the cache answers, not a new measurement
    (tmp_path / "gemm-rates.json").write_text(json.dumps(stored))
    assert sgemm_rate(1, n=256, cache=tmp_path) == (12345.0, "numpy")
    assert sgemm_rate(2, n=256, cache=tmp_path)[0] != 12345.0  # another thread count: measured
    assert len(json.loads((tmp_path / "gemm-rates.json").read_text())) == 2
    assert sgemm_rate(1, n=256, cache=tmp_path, refresh=True)[0] != 12345.0


def test_a_failed_probe_is_a_typed_error_and_the_doctor_still_answers(tmp_path, monkeypatch, capsys):
    from linearsr_edge.errors import LinearSRError

    with pytest.raises(LinearSRError, match="the SGEMM probe failed: .*negative dimensions"):
        sgemm_rates(1, n=-1, cache=tmp_path)  # the child cannot make a -1 x -1 matrix
    assert not (tmp_path / "gemm-rates.json").exists()  # nothing cached from a failure

    import linearsr_edge.profiling.roofline as roofline
    from linearsr_edge.cli.doctor import main

    monkeypatch.setattr(roofline, "sgemm_rates", lambda threads: sgemm_rates(threads, n=-1, cache=tmp_path))
    assert main([]) == 0
    assert "limit:    not measured: the SGEMM probe failed" in capsys.readouterr().out
