"""What device this is: Jetson, Android, NVIDIA dGPU, Apple silicon, Intel CPU/iGPU/NPU, an Arm Linux board, or a
generic CPU.

Every probe survives missing files, tools and packages (it reports nothing rather than failing),
and reads the file system under an injectable ``root`` and runs commands through an injectable
``run``, so that tests can stand up a fake ``/proc``, ``/sys`` and ``/etc`` for each family. Pure
Python: OpenVINO is asked for its device list only when it is installed.
"""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from linearsr_edge.machine import cpu_isa

Runner = Callable[[list[str]], str | None]  # argv -> stdout, or None when the tool is missing or fails


def run_tool(argv: list[str], timeout: float = 5.0) -> str | None:
    """Run a probe command; None if it is not installed, fails or hangs."""
    if shutil.which(argv[0]) is None:
        return None
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout if done.returncode == 0 else None


@dataclass
class Accelerator:
    kind: str  # "gpu", "igpu", "npu", "ane"
    name: str
    memory_bytes: int | None = None  # own memory; None where it shares the system's
    backend: str = ""  # how it is reached: "openvino:GPU.0", "cuda:0", "coreml"


@dataclass
class DeviceInfo:
    family: str  # "jetson" | "android" | "nvidia-gpu" | "apple" | "intel" | "arm" | "cpu"
    name: str
    arch: str
    cpu: str
    isa: list[str]
    cores: int
    memory_bytes: int | None
    shared_memory: bool = False  # CPU and accelerator share one memory (Jetson, Apple)
    accelerators: list[Accelerator] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _read(root: Path, rel: str) -> str | None:
    try:
        return (root / rel).read_text(errors="replace")
    except OSError:
        return None


def memory_bytes(root: Path = Path("/")) -> int | None:
    """MemTotal from ``/proc/meminfo`` (None where there is none)."""
    text = _read(root, "proc/meminfo") or ""
    match = re.search(r"^MemTotal:\s+(\d+)\s*kB", text, re.MULTILINE)
    return int(match.group(1)) * 1024 if match else None


def probe_jetson(root: Path = Path("/")) -> dict[str, Any] | None:
    """A Jetson: the model from the device tree and the L4T release (JetPack follows from it)."""
    model = _read(root, "proc/device-tree/model")
    release = _read(root, "etc/nv_tegra_release")
    if not model and not release:
        return None
    model = (model or "NVIDIA Jetson").replace("\x00", "").strip()
    if "jetson" not in model.lower() and not release:
        return None
    info: dict[str, Any] = {"model": model}
    match = re.search(r"R(\d+)\s*\(release\),\s*REVISION:\s*([\d.]+)", release or "")
    if match:
        info["l4t"] = f"{match.group(1)}.{match.group(2)}"
    return info


ARM_ARCHES = ("aarch64", "arm64")


def cpu_arch(root: Path = Path("/")) -> str:
    """The CPU architecture: ``aarch64`` where ``/proc/cpuinfo`` describes an ARMv8 (or later) CPU, else the
    platform's own name (``x86_64`` ...)."""
    text = _read(root, "proc/cpuinfo") or ""
    match = re.search(r"^CPU architecture\s*:\s*(\d+)", text, re.MULTILINE)
    if match and int(match.group(1)) >= 8:
        return "aarch64"
    return platform.machine()


def _props(text: str) -> dict[str, str]:
    """``key=value`` lines (``build.prop``) or ``[key]: [value]`` lines (``getprop``)."""
    props = {}
    for line in text.splitlines():
        match = re.match(r"^\[([^\]]+)\]:\s*\[(.*)\]\s*$", line) or re.match(r"^([\w.]+)=(.*)$", line.strip())
        if match:
            props[match.group(1)] = match.group(2).strip()
    return props


def probe_android(root: Path = Path("/"), run: Runner = run_tool) -> dict[str, Any] | None:
    """Android: the device, its release and SDK level and its SoC, from the build properties
    (``/system/build.prop``, ``/vendor/build.prop``, or ``getprop``); None elsewhere."""
    props: dict[str, str] = {}
    for rel in ("system/build.prop", "vendor/build.prop"):
        props.update(_props(_read(root, rel) or ""))
    if "ro.build.version.sdk" not in props:
        props.update(_props(run(["getprop"]) or ""))
    if "ro.build.version.sdk" not in props:
        return None
    maker, model = props.get("ro.product.manufacturer", ""), props.get("ro.product.model", "Android device")
    info: dict[str, Any] = {
        "model": f"{maker} {model}".strip() if maker and not model.lower().startswith(maker.lower()) else model,
        "release": props.get("ro.build.version.release", "?"),
        "sdk": props["ro.build.version.sdk"],
    }
    soc = props.get("ro.soc.model") or props.get("ro.board.platform")
    if soc:
        info["soc"] = soc
    return info


def probe_arm_board(root: Path = Path("/")) -> dict[str, Any] | None:
    """An Arm Linux board's model and SoC from the device tree (Raspberry Pi 5, RK3588 boards ...)."""
    model = (_read(root, "proc/device-tree/model") or "").replace("\x00", "").strip()
    compatible = [c for c in (_read(root, "proc/device-tree/compatible") or "").split("\x00") if c]
    if not model and not compatible:
        return None
    info: dict[str, Any] = {"model": model or compatible[0]}
    socs = [c.split(",", 1)[1] for c in compatible if "," in c]
    if socs:
        info["soc"] = socs[-1]  # the device tree lists the board first and the SoC last
    return info


def probe_nvidia_gpus(run: Runner = run_tool) -> list[Accelerator]:
    """Discrete NVIDIA GPUs through ``nvidia-smi`` (name and memory)."""
    out = run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"])
    gpus = []
    for i, line in enumerate((out or "").strip().splitlines()):
        name, _, mem = line.rpartition(",")
        if name.strip():
            mib = int(mem.strip()) if mem.strip().isdigit() else None
            gpus.append(Accelerator("gpu", name.strip(), mib * (1 << 20) if mib else None, f"cuda:{i}"))
    return gpus


def probe_apple(run: Runner = run_tool) -> dict[str, Any] | None:
    """Apple silicon through ``sysctl``: the chip, unified memory; every M-series chip has a Neural Engine."""
    chip = run(["sysctl", "-n", "machdep.cpu.brand_string"])
    if not chip or "apple" not in chip.lower():
        return None
    mem = run(["sysctl", "-n", "hw.memsize"])
    cores = run(["sysctl", "-n", "hw.ncpu"])
    return {
        "chip": chip.strip(),
        "memory_bytes": int(mem.strip()) if mem and mem.strip().isdigit() else None,
        "cores": int(cores.strip()) if cores and cores.strip().isdigit() else None,
    }


def probe_openvino(core: Any = None) -> list[Accelerator]:
    """OpenVINO's devices other than the CPU (Intel iGPU/Arc, NPU) with their ``FULL_DEVICE_NAME``."""
    if core is None:
        try:
            import openvino as ov
        except ImportError:
            return []
        try:
            core = ov.Core()
        except RuntimeError:
            return []
    found = []
    for device in getattr(core, "available_devices", []):
        if device.startswith("CPU"):
            continue
        try:
            name = str(core.get_property(device, "FULL_DEVICE_NAME"))
        except RuntimeError:
            name = device
        kind = "npu" if device.startswith("NPU") else "igpu" if "(iGPU)" in name or "Graphics" in name else "gpu"
        found.append(Accelerator(kind, name, None, f"openvino:{device}"))
    return found


def detect(root: Path = Path("/"), run: Runner = run_tool, openvino_core: Any = None) -> DeviceInfo:
    """The device this runs on, from the most specific family that answers."""
    root = Path(root)
    model, isa = cpu_isa(root)
    base = {
        "arch": cpu_arch(root),
        "cpu": model,
        "isa": isa,
        "cores": os.cpu_count() or 1,
        "memory_bytes": memory_bytes(root),
    }
    jetson = probe_jetson(root)
    if jetson is not None:
        accel = [Accelerator("gpu", f"{jetson['model']} integrated GPU", None, "cuda:0")]
        return DeviceInfo("jetson", jetson["model"], **base, shared_memory=True, accelerators=accel, details=jetson)
    android = probe_android(root, run)
    if android is not None:
        return DeviceInfo("android", android["model"], **base, shared_memory=True, details=android)
    apple = probe_apple(run) if platform.system() == "Darwin" or run is not run_tool else None
    if apple is not None:
        base.update(cpu=apple["chip"], memory_bytes=apple["memory_bytes"] or base["memory_bytes"])
        base["cores"] = apple["cores"] or base["cores"]
        accel = [Accelerator("ane", "Apple Neural Engine", None, "coreml")]
        return DeviceInfo("apple", apple["chip"], **base, shared_memory=True, accelerators=accel, details=apple)
    gpus = probe_nvidia_gpus(run)
    if gpus:
        return DeviceInfo("nvidia-gpu", gpus[0].name, **base, accelerators=gpus)
    intel = probe_openvino(openvino_core)
    if "intel" in model.lower() or intel:
        return DeviceInfo("intel", model, **base, accelerators=intel)
    if base["arch"] in ARM_ARCHES:
        board = probe_arm_board(root) or {}
        return DeviceInfo("arm", board.get("model") or model, **base, details=board)
    return DeviceInfo("cpu", model, **base)
