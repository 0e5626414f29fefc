"""What this machine is, for reports and fingerprints: CPU model, the ISA flags that change kernels,
cores, architecture. Pure Python; reads ``/proc/cpuinfo`` under an injectable root (tests use a
fake tree) and survives its absence (macOS, Windows).
"""

from __future__ import annotations

import os
import platform
from pathlib import Path

# flags that change which kernels run (x86: AVX2, AVX-512, VNNI, BF16, AMX; ARM: NEON as asimd, SVE)
ISA_FLAGS = (
    "avx2",
    "avx512f",
    "avx512_vnni",
    "avx_vnni",
    "avx512_bf16",
    "amx_tile",
    "amx_int8",
    "amx_bf16",
    "asimd",
    "asimddp",
    "sve",
)


def cpu_isa(root: Path = Path("/")) -> tuple[str, list[str]]:
    """(CPU model name, the `ISA_FLAGS` it has); (the platform's processor name, []) without /proc/cpuinfo."""
    try:
        text = (Path(root) / "proc" / "cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine() or "?", []
    model, flags = "?", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model", "Hardware") and model == "?":
            model = value.strip()
        elif key in ("flags", "Features"):
            flags |= set(value.split())
    return model, [f for f in ISA_FLAGS if f in flags]


# oneDNN's ISA cap (OpenVINO's CPU kernels honour it): ONEDNN_MAX_CPU_ISA=AVX2 runs as an AVX2-only CPU would
ISA_CAP_VARIABLE = "ONEDNN_MAX_CPU_ISA"


def machine_summary(root: Path = Path("/")) -> dict:
    """``{"cpu", "isa", "cores", "arch", "os"}`` (plus ``isa_cap`` when oneDNN's kernels are capped): the
    machine part of a verification fingerprint."""
    model, flags = cpu_isa(root)
    summary = {"cpu": model, "isa": flags, "cores": os.cpu_count(), "arch": platform.machine(), "os": platform.system()}
    if os.environ.get(ISA_CAP_VARIABLE):
        summary["isa_cap"] = os.environ[ISA_CAP_VARIABLE]
    return summary


def machine_line(threads: int | None = None) -> str:
    """``machine: AMD EPYC, 2 cores, 2 threads; ISA: avx2 avx512f ...`` for benchmark output."""
    model, flags = cpu_isa()
    t = f", {threads} threads" if threads else ""
    cap = f" (oneDNN capped at {os.environ[ISA_CAP_VARIABLE]})" if os.environ.get(ISA_CAP_VARIABLE) else ""
    return f"machine: {model}, {os.cpu_count()} cores{t}; ISA: {' '.join(flags) or 'unknown'}{cap}"


def best_seconds(fn, repeats: int = 5) -> float:
    """The fastest of ``repeats`` timed calls of ``fn``, after one untimed call (threads started, caches warm)."""
    import time

    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best
