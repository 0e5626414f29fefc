"""The machine line every benchmark prints: CPU model, the ISA flags that change kernels, threads."""

from __future__ import annotations

import os
import platform
from pathlib import Path

ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16", "asimd", "sve")


def cpu_isa(cpuinfo: Path = Path("/proc/cpuinfo")) -> tuple[str, list[str]]:
    """(CPU model name, the ISA flags of `ISA_FLAGS` it has); ("?", []) where /proc/cpuinfo is absent."""
    try:
        text = cpuinfo.read_text()
    except OSError:
        return platform.processor() or platform.machine(), []
    model, flags = "?", set()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key in ("model name", "Model") and model == "?":
            model = value.strip()
        elif key in ("flags", "Features"):
            flags |= set(value.split())
    return model, [f for f in ISA_FLAGS if f in flags]


def machine_line(threads: int | None = None) -> str:
    model, flags = cpu_isa()
    cores = os.cpu_count()
    t = f", {threads} threads" if threads else ""
    return f"machine: {model}, {cores} cores{t}; ISA: {' '.join(flags) or 'unknown'}"
