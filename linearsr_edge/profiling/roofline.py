"""How far a run is from what this CPU can do: each component's FLOPs, and this machine's measured SGEMM rate.

* **FLOPs** of an expert call, counted from the model config at the call's latent size and tag count: the
  multiply-adds of every linear, convolution and attention product (2 FLOPs each), as PyTorch's
  ``FlopCounterMode`` counts them (``tests/pipeline/test_roofline.py`` holds the two counts equal). Reductions,
  norms and elementwise ops are not counted: they move memory, and a component dominated by them shows as far
  from the limit. The codec: 0 for the pixel-unshuffle codec (reshapes only); unknown (None) for others.
* **The limit**: one large float32 matrix product in a child process with the profiled thread count, best of
  a few runs, by NumPy's BLAS and by each installed backend that registers a probe (`BackendInfo.gemm_probe`:
  OpenVINO's oneDNN reached 427 GFLOP/s on two Zen 4 cores where NumPy's OpenBLAS reached 255); the best is the
  limit. INT8 bundles are held against the INT8 limit instead: the best uint8 x int8 product rate of the backends
  that register an INT8 probe (`BackendInfo.int8_gemm_probe`; GOP/s, 2 per multiply-add). Cached per machine
  (CPU, ISA, cores) and thread count under the cache root.

No family named: the backends' probes come from the registry.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from linearsr_edge.cache import cache_root
from linearsr_edge.config import ModelConfig
from linearsr_edge.errors import LinearSRError
from linearsr_edge.fileio import atomic_write_text
from linearsr_edge.machine import best_seconds, machine_summary

TIME_FEATURES = 256  # TimestepEmbedding's sinusoidal width


def expert_flops(cfg: ModelConfig, latent_hw: tuple[int, int], cond_len: int, batch: int = 1) -> int:
    """FLOPs (2 per multiply-add) of one expert call on a ``latent_hw`` latent with ``cond_len`` tag rows."""
    p, d = cfg.patch_size, cfg.hidden_size
    n = (latent_hw[0] // p) * (latent_hw[1] // p)  # tokens
    inner, heads, head_dim = cfg.num_heads * cfg.head_dim, cfg.num_heads, cfg.head_dim
    c_heads, c_dim = cfg.cross_attn_heads, cfg.cross_attn_head_dim
    cross = c_heads * c_dim
    hidden = int(cfg.mlp_ratio * d)
    macs = n * cfg.in_channels * p * p * d  # patch embedding
    macs += TIME_FEATURES * d + d * d + d * 6 * d  # timestep MLP and the adaLN projection
    macs += cond_len * (cfg.cond_dim * d + d * d)  # tag projection
    block = 4 * n * d * inner  # self-attention q, k, v, out
    block += heads * (2 * n * head_dim * head_dim + n * head_dim)  # K^T V, Q (K^T V), Q K-sum
    block += 2 * n * d * cross + 2 * cond_len * d * cross  # cross-attention q, out; k, v
    block += 2 * c_heads * n * cond_len * c_dim  # scores and their product with V
    block += n * d * 2 * hidden + n * 2 * hidden * 9 + n * hidden * d  # Mix-FFN: expand, depthwise 3x3, project
    macs += cfg.depth * block
    macs += n * d * p * p * cfg.latent_channels  # final projection
    return 2 * macs * batch


def component_flops(
    cfg: ModelConfig, kind: str, latent_hw: tuple[int, int], cond_len: int, codec: str, batch: int = 1
) -> int | None:
    """FLOPs of one call of a component of ``kind`` (expert, encoder, decoder); None where not counted."""
    if kind == "expert":
        return expert_flops(cfg, latent_hw, cond_len, batch)
    return 0 if codec == "pixel_unshuffle" else None


def numpy_gflops(threads: int, n: int) -> float:
    """NumPy's float32 ``n x n`` product (its BLAS; threads from the environment the caller set): GFLOP/s, best of 5."""
    import numpy as np

    rng = np.random.default_rng(0)
    a, b = rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)
    return 2 * n**3 / best_seconds(lambda: a @ b) / 1e9


def probe_all(threads: int, n: int) -> dict[str, float]:
    """The float32 product rate of NumPy and of every installed backend that registers a probe (GFLOP/s by name);
    a probe that cannot run here is left out."""
    from linearsr_edge.pipeline.session import BACKENDS
    from linearsr_edge.registry import load_callable

    rates = {"numpy": numpy_gflops(threads, n)}
    for backend in BACKENDS.entries():
        if not backend.available:
            continue
        for name, probe in ((backend.name, backend.gemm_probe), (INT8 + backend.name, backend.int8_gemm_probe)):
            if probe:
                try:
                    rates[name] = float(load_callable(probe)(threads, n))
                except Exception:  # a probe missing a package or a device here is skipped
                    continue
    return rates


INT8 = "int8:"  # the prefix of INT8 rates among the measured ones


_CHILD = (
    "import json, sys; from linearsr_edge.profiling.roofline import probe_all; "
    "print(json.dumps(probe_all(int(sys.argv[1]), int(sys.argv[2]))))"
)


def _key(threads: int) -> str:
    m = machine_summary()
    isa = "+".join(m["isa"]) or "none"
    cap = m.get("isa_cap", "")
    return f"v2|{m['cpu']}|{isa}|{m['cores']}|{cap}|threads={threads}"  # v2: with INT8 rates


def sgemm_rates(threads: int, n: int = 1536, cache: Path | None = None, refresh: bool = False) -> dict[str, float]:
    """This machine's float32 matrix-product rates in GFLOP/s with ``threads`` threads, by implementation (NumPy
    and each installed backend's probe), measured once per machine and thread count in a child process (its
    BLAS threads set from the start), then read from the cache."""
    path = Path(cache or cache_root("roofline")) / "gemm-rates.json"
    try:
        known = json.loads(path.read_text())
    except (OSError, ValueError):
        known = {}
    key = _key(threads)
    if key in known and not refresh:
        return {k: float(v) for k, v in known[key].items()}
    env = {**os.environ, **{v: str(threads) for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, str(threads), str(n)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]  # the exception's own line
        raise LinearSRError(f"the SGEMM probe failed: {last}")
    measured = {k: float(v) for k, v in json.loads(done.stdout.strip().splitlines()[-1]).items()}
    known[key] = measured
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(known, indent=1, sort_keys=True))
    return measured


def sgemm_rate(threads: int, n: int = 1536, cache: Path | None = None, refresh: bool = False) -> tuple[float, str]:
    """The limit: the best float32 product rate any implementation here reaches (GFLOP/s), and which one."""
    rates = {k: v for k, v in sgemm_rates(threads, n, cache, refresh).items() if not k.startswith(INT8)}
    best = max(rates, key=rates.get)
    return rates[best], best


def int8_rate(threads: int, n: int = 1536, cache: Path | None = None) -> tuple[float, str] | None:
    """The INT8 limit: the best uint8 x int8 product rate a backend here reaches (GOP/s), and which one; None when
    no installed backend has an INT8 probe."""
    rates = {k[len(INT8) :]: v for k, v in sgemm_rates(threads, n, cache).items() if k.startswith(INT8)}
    if not rates:
        return None
    best = max(rates, key=rates.get)
    return rates[best], best
