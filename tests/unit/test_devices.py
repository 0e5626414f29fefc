"""Device detection against fake /proc, /sys and /etc trees and fake tools, one per family."""

from __future__ import annotations

import platform
from pathlib import Path

import pytest

from linearsr_edge.devices import detect
from linearsr_edge.devices.detect import ARM_ARCHES, probe_android, probe_jetson, probe_openvino
from linearsr_edge.machine import ISA_FLAGS, cpu_isa

X86_FLAGS = "fpu sse2 avx2 fma avx512f avx512_vnni avx512_bf16"


def _tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text)
    return root


def _cpuinfo(model: str, flags: str, key: str = "flags") -> str:
    return f"processor\t: 0\nmodel name\t: {model}\n{key}\t\t: {flags}\n\n"


def no_tools(argv: list[str]) -> None:
    return None


class FakeCore:
    def __init__(self, devices: dict[str, str]) -> None:
        self.available_devices = list(devices)
        self._names = devices

    def get_property(self, device: str, name: str) -> str:
        assert name == "FULL_DEVICE_NAME"
        return self._names[device]


def test_jetson_orin_nano(tmp_path):
    root = _tree(
        tmp_path,
        {
            "proc/device-tree/model": "NVIDIA Jetson Orin Nano Developer Kit\x00",
            "etc/nv_tegra_release": "# R36 (release), REVISION: 3.0, GCID: 36923193, BOARD: generic, EABI: aarch64\n",
            "proc/cpuinfo": _cpuinfo("ARMv8 Processor rev 1 (v8l)", "fp asimd evtstrm aes asimddp", key="Features"),
            "proc/meminfo": "MemTotal:        7802888 kB\n",
        },
    )
    dev = detect(root, run=no_tools, openvino_core=FakeCore({}))
    assert dev.family == "jetson" and dev.name == "NVIDIA Jetson Orin Nano Developer Kit"
    assert dev.details["l4t"] == "36.3.0" and dev.shared_memory and dev.memory_bytes == 7802888 * 1024
    assert dev.isa == ["asimd", "asimddp"] and dev.accelerators[0].backend == "cuda:0"


def test_nvidia_dgpu_through_nvidia_smi(tmp_path):
    root = _tree(tmp_path, {"proc/cpuinfo": _cpuinfo("AMD EPYC 9354", X86_FLAGS)})

    def smi(argv):
        return "NVIDIA L4, 23034\nNVIDIA L4, 23034\n" if argv[0] == "nvidia-smi" else None

    dev = detect(root, run=smi, openvino_core=FakeCore({}))
    assert dev.family == "nvidia-gpu" and dev.name == "NVIDIA L4" and len(dev.accelerators) == 2
    assert dev.accelerators[1].backend == "cuda:1" and dev.accelerators[0].memory_bytes == 23034 << 20


def test_apple_silicon_through_sysctl(tmp_path):
    answers = {"machdep.cpu.brand_string": "Apple M3 Pro\n", "hw.memsize": "38654705664\n", "hw.ncpu": "12\n"}

    def sysctl(argv):
        return answers.get(argv[-1]) if argv[0] == "sysctl" else None

    dev = detect(tmp_path, run=sysctl, openvino_core=FakeCore({}))
    assert dev.family == "apple" and dev.name == "Apple M3 Pro" and dev.cores == 12
    assert dev.memory_bytes == 38654705664 and dev.shared_memory and dev.accelerators[0].kind == "ane"


def test_intel_core_ultra_with_npu(tmp_path):
    root = _tree(tmp_path, {"proc/cpuinfo": _cpuinfo("Intel(R) Core(TM) Ultra 7 155H", "avx2 fma avx_vnni")})
    core = FakeCore(
        {"CPU": "Intel(R) Core(TM) Ultra 7 155H", "GPU": "Intel(R) Arc(TM) Graphics (iGPU)", "NPU": "Intel(R) AI Boost"}
    )
    dev = detect(root, run=no_tools, openvino_core=core)
    assert dev.family == "intel" and dev.isa == ["avx2", "avx_vnni"]
    assert [(a.kind, a.backend) for a in dev.accelerators] == [("igpu", "openvino:GPU"), ("npu", "openvino:NPU")]


def test_generic_cpus_and_missing_everything(tmp_path):
    avx2 = _tree(tmp_path / "a", {"proc/cpuinfo": _cpuinfo("AMD EPYC 7B13", "fpu avx2 fma")})
    dev = detect(avx2, run=no_tools, openvino_core=FakeCore({"CPU": "AMD EPYC 7B13"}))
    assert dev.family == "cpu" and dev.isa == ["avx2"]
    empty = detect(tmp_path / "nothing", run=no_tools, openvino_core=FakeCore({}))  # no /proc, no tools
    assert empty.family == ("arm" if platform.machine() in ARM_ARCHES else "cpu")  # the platform's own arch
    assert empty.isa == [] and empty.memory_bytes is None
    assert probe_jetson(tmp_path / "nothing") is None
    assert probe_openvino(FakeCore({"CPU": "x"})) == []


def test_this_machine_reports_exactly_its_cpuinfo_flags():
    dev = detect(run=no_tools)
    real = Path("/proc/cpuinfo")
    if real.is_file():
        listed = {
            f
            for line in real.read_text().splitlines()
            if line.split(":")[0].strip() in ("flags", "Features")
            for f in line.split(":", 1)[1].split()
        }
        assert set(dev.isa) == listed & set(ISA_FLAGS) and dev.isa == cpu_isa()[1]
    assert dev.cores >= 1 and dev.family in ("cpu", "intel", "nvidia-gpu", "jetson", "apple")


ARM_CPUINFO = (
    "processor\t: 0\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics asimddp\n"
    "CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: 0x4\nCPU part\t: 0xd0b\n\n"
)


@pytest.mark.parametrize(
    ("board", "compatible", "soc"),
    [
        ("Raspberry Pi 5 Model B Rev 1.0", "raspberrypi,5-model-b\x00brcm,bcm2712\x00", "bcm2712"),
        ("Radxa ROCK 5B", "radxa,rock-5b\x00rockchip,rk3588\x00", "rk3588"),
    ],
)
def test_arm_linux_boards(tmp_path, board, compatible, soc):
    root = _tree(
        tmp_path,
        {
            "proc/cpuinfo": ARM_CPUINFO,
            "proc/device-tree/model": board + "\x00",
            "proc/device-tree/compatible": compatible,
            "proc/meminfo": "MemTotal:        8245016 kB\n",
        },
    )
    dev = detect(root, run=no_tools, openvino_core=FakeCore({}))
    assert (dev.family, dev.name, dev.arch, dev.details["soc"]) == ("arm", board, "aarch64", soc)
    assert dev.isa == ["asimd", "asimddp"] and dev.memory_bytes == 8245016 * 1024
    from linearsr_edge.devices.profiles import match_profile

    assert match_profile(dev).name == "arm64-linux" and match_profile(dev).targets[0].startswith("et-")


GETPROP = "[ro.build.version.release]: [14]\n[ro.build.version.sdk]: [34]\n[ro.product.manufacturer]: [Google]\n"


def test_android_from_its_build_properties_or_getprop(tmp_path):
    props = "ro.build.version.release=14\nro.build.version.sdk=34\nro.product.model=Pixel 8\nro.soc.model=Tensor G3\n"
    root = _tree(tmp_path / "a", {"proc/cpuinfo": ARM_CPUINFO, "system/build.prop": "# build\n" + props})
    dev = detect(root, run=no_tools, openvino_core=FakeCore({}))
    assert (dev.family, dev.name, dev.arch) == ("android", "Pixel 8", "aarch64")
    assert dev.details == {"model": "Pixel 8", "release": "14", "sdk": "34", "soc": "Tensor G3"}

    def getprop(argv):
        return GETPROP + "[ro.product.model]: [Pixel 8 Pro]\n" if argv == ["getprop"] else None

    other = _tree(tmp_path / "b", {"proc/cpuinfo": ARM_CPUINFO})
    assert probe_android(other, getprop)["model"] == "Google Pixel 8 Pro"
    assert probe_android(other, no_tools) is None  # Arm Linux, not Android
    from linearsr_edge.devices.profiles import match_profile

    assert match_profile(detect(other, run=getprop, openvino_core=FakeCore({}))).name == "android"


# -- profiles and linearsr-doctor -----------------------------------------------------------------
def _device(**kw):
    from linearsr_edge.devices import DeviceInfo

    base = dict(family="cpu", name="x", arch="x86_64", cpu="x", isa=["avx2"], cores=4, memory_bytes=8 << 30)
    return DeviceInfo(**{**base, **kw})


def test_profiles_match_each_family():
    from linearsr_edge.devices import Accelerator
    from linearsr_edge.devices.profiles import builtin_profiles, match_profile

    profiles = builtin_profiles()
    assert len(profiles) >= 12 and len({p.name for p in profiles}) == len(profiles)
    cases = {
        "x86-avx2": _device(),
        "x86-avx512-vnni": _device(isa=["avx2", "avx512f", "avx512_vnni"]),
        "arm64-linux": _device(family="arm", name="Raspberry Pi 5 Model B Rev 1.0", arch="aarch64", isa=["asimd"]),
        "android": _device(family="android", name="Google Pixel 8", arch="aarch64", isa=["asimd", "asimddp"]),
        "jetson-orin-nano-8gb": _device(family="jetson", name="NVIDIA Jetson Orin Nano Developer Kit", arch="aarch64"),
        "jetson-agx-orin-64gb": _device(family="jetson", name="Jetson AGX Orin", arch="aarch64"),
        "apple-m3": _device(family="apple", name="Apple M3 Pro", arch="arm64"),
        "intel-core-ultra-npu": _device(family="intel", accelerators=[Accelerator("npu", "Intel(R) AI Boost")]),
        "nvidia-gpu": _device(family="nvidia-gpu", name="NVIDIA L4"),
    }
    for expected, device in cases.items():
        assert match_profile(device, profiles).name == expected, expected
    # INT8 pays only with VNNI: the AVX2 profile prefers FP32 (measured, benchmarks/RESULTS.md)
    assert match_profile(cases["x86-avx2"]).targets[0].endswith("fp32")
    assert match_profile(cases["x86-avx512-vnni"]).targets[0].endswith("int8")


def test_a_user_profile_overrides_fields_and_bad_ones_are_named(tmp_path):
    from linearsr_edge.devices.profiles import load_profile, match_profile
    from linearsr_edge.errors import ConfigError

    base = match_profile(_device())
    (tmp_path / "mine.json").write_text('{"memory_budget_bytes": 1073741824, "targets": ["onnx-int8"]}')
    mine = load_profile(tmp_path / "mine.json", base=base)
    assert mine.memory_budget_bytes == 1 << 30 and mine.targets == ("onnx-int8",)
    assert mine.tile_size == base.tile_size and "mine.json" in mine.source
    for text, match in (
        ('{"tile": 3}', "unknown fields \\['tile'\\]"),
        ('{"tile_size": 3}', "tile_size must be an integer >= 16"),
        ("[1, 2]", "must hold a JSON object"),
        ("{", "cannot read device profile"),
    ):
        (tmp_path / "bad.json").write_text(text)
        with pytest.raises(ConfigError, match=match):
            load_profile(tmp_path / "bad.json", base=base)


def test_residency_auto_takes_the_profiles_budget():
    from linearsr_edge.devices import detect
    from linearsr_edge.devices.profiles import match_profile
    from linearsr_edge.pipeline.residency import ResidencyPolicy, auto_residency

    budget = match_profile(detect()).memory_budget_bytes
    kinds = {"expert_0": "expert", "expert_1": "expert", "encoder": "encoder", "decoder": "decoder"}

    def sizes(expert: int, codec: int = 1 << 20) -> dict[str, int]:
        return {"expert_0": expert, "expert_1": expert, "encoder": codec, "decoder": codec}

    everything, one = ResidencyPolicy("all"), ResidencyPolicy("one")
    assert auto_residency(kinds, sizes(1 << 20)) == everything  # a small bundle: no detection needed
    assert auto_residency(kinds, sizes(budget // 3)) == everything
    # both experts do not fit, one does
    assert auto_residency(kinds, sizes(budget * 2 // 3)) == ResidencyPolicy("budget", budget)
    assert auto_residency(kinds, sizes(budget)) == one  # not even one expert beside the codec
