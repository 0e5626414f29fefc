"""What a new user met on first contact (an AVX2-only EPYC, a fresh clone, the README), one test per item."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from linearsr_edge.errors import BundleError
from tests.helpers import tiny_model_folder, write_photo


# -- linearsr-export --------------------------------------------------------------------------------
def test_a_non_empty_out_is_refused_before_the_model_loads(tmp_path, capsys):
    """The model folder does not even exist: the refusal of ``--out`` comes first, not after calibration."""
    from linearsr_edge.cli.export import main

    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "keep.txt").write_text("mine")
    argv = ["--target", "onnx-int8", "--checkpoint", str(tmp_path / "no-such-model"), "--out", str(busy), "-q"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "is not empty; pass --overwrite" in err and "no-such-model" not in err
    assert (busy / "keep.txt").read_text() == "mine"


def test_fp16_exports_draw_no_empty_calibration_bar(tmp_path, capsys):
    from linearsr_edge.calibration import CalibrationOptions, collect
    from linearsr_edge.reference import load_model_folder

    folder = tiny_model_folder(tmp_path / "m")
    process = load_model_folder(folder).reference().process
    images = [np.random.default_rng(i).integers(0, 256, (16, 16, 3), dtype=np.uint8) for i in range(3)]
    capsys.readouterr()
    calib = collect(process, images, CalibrationOptions(samples_per_expert=0, heldout_samples_per_expert=1, crop=16))
    err = capsys.readouterr().err
    assert "calibrating" not in err and "held-out band data" in err  # the held-out bar still shows its work
    assert all(v == [] for v in calib.samples.values()) and all(len(v) == 1 for v in calib.heldout.values())


# -- linearsr-upscale -------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def bundle(tiny_bundles):
    return tiny_bundles("onnx-fp32").bundle


def test_a_tile_that_cannot_work_is_refused(bundle, tmp_path, capsys):
    from linearsr_edge.cli.upscale import main

    photo = write_photo(tmp_path / "p.png", 20, 28)
    assert main([str(photo), "-o", str(tmp_path / "o.png"), "--bundle", str(bundle.path), "--tile", "7"]) == 2
    err = capsys.readouterr().err
    assert "tile 7 px is below the smallest tile this bundle runs" in err and "Traceback" not in err
    assert not (tmp_path / "o.png").exists()


@pytest.mark.parametrize("flag", ["--threads", "--tile", "--steps"])
def test_counts_are_refused_in_command_line_words(bundle, tmp_path, capsys, flag):
    from linearsr_edge.cli.upscale import main

    with pytest.raises(SystemExit) as info:
        main(["in.png", "-o", str(tmp_path / "o.png"), "--bundle", str(bundle.path), flag, "0"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"argument {flag}: must be a positive integer, got '0'" in err and "None" not in err


def test_a_model_folder_given_as_a_bundle_suggests_model(tmp_path, capsys):
    from linearsr_edge.bundle import Bundle
    from linearsr_edge.cli.upscale import main

    model = tiny_model_folder(tmp_path / "m")
    with pytest.raises(BundleError, match="is a model folder, not an exported bundle: pass it as --model"):
        Bundle.load(model)
    photo = write_photo(tmp_path / "p.png")
    assert main([str(photo), "-o", str(tmp_path / "o.png"), "--bundle", str(model)]) == 2
    assert "pass it as --model" in capsys.readouterr().err


def test_the_summary_line_says_when_a_frame_was_tiled(bundle, tmp_path, capsys):
    from linearsr_edge.cli.upscale import main

    out = tmp_path / "o.png"
    small, big = write_photo(tmp_path / "s.png", 20, 28), write_photo(tmp_path / "b.png", 80, 72)
    assert main([str(small), "-o", str(out), "--bundle", str(bundle.path)]) == 0
    assert "tiled" not in capsys.readouterr().out
    assert main([str(big), "-o", str(out), "--bundle", str(bundle.path)]) == 0  # output above the 128x128 profile
    line = capsys.readouterr().out
    assert "72x80 -> " in line and "| tiled: " in line and " tiles of " in line, line


# -- linearsr-verify --------------------------------------------------------------------------------
def test_verify_of_a_tensorrt_bundle_says_what_ran(tiny_bundles, capsys):
    from linearsr_edge.cli.verify import main

    path = str(tiny_bundles("trt-fp16").bundle.path)
    assert main([path, "--no-timing"]) == 0  # the checks passed on the graphs
    out = capsys.readouterr().out
    assert "trt-fp16: PASSED" not in out
    assert "checks passed on onnxruntime, which ran the bundle's graphs; NOT VERIFIED for tensorrt" in out
    assert "linearsr-build-engines" in out


def test_int8_is_compared_with_fp32_of_the_same_runtime(tiny_bundles):
    """The advice of ``linearsr-verify`` over several bundles, from given step times: onnx-int8 slower than
    onnx-fp32 is said; ov-fp32 being faster than onnx-int8 is not (another runtime); the fastest overall is
    named on its own line."""
    from linearsr_edge.cli.verify import _advice

    bundles = {t: tiny_bundles(t).bundle for t in ("onnx-fp32", "onnx-int8", "ov-fp32", "ov-int8")}
    where = "16x16 latent"

    def advice(ms: dict[str, float]) -> str:
        return _advice({t: (bundles[t], v, where) for t, v in ms.items()}) or ""

    text = advice({"onnx-fp32": 300.0, "onnx-int8": 289.0, "ov-fp32": 207.0, "ov-int8": 157.0})
    assert text.splitlines() == [f"fastest here: ov-int8 (157.0 ms per step at {where}): {bundles['ov-int8'].path}"]
    text = advice({"onnx-fp32": 250.0, "onnx-int8": 289.0, "ov-fp32": 207.0, "ov-int8": 157.0})
    assert (
        "INT8 does not pay on this CPU" in text and "for onnx-int8" in text and "against 250.0 ms for onnx-fp32" in text
    )
    assert "ov-fp32" not in text.split("\n", 1)[1]


# -- linearsr-profile -------------------------------------------------------------------------------
def test_nothing_fits_advice_offers_only_what_is_left():
    from linearsr_edge.cli.profile import over_budget_advice
    from linearsr_edge.profiling import BudgetRow

    int8_one_step = BudgetRow("b", "ov-int8", "int8", 1, 300.0, 320.0, 45.0, False)
    text = over_budget_advice(int8_one_step, 150.0)
    assert "INT8" not in text and "--try-steps 1" not in text and "about 50% of its pixels" in text
    fp32_four = BudgetRow("b", "onnx-fp32", "fp32", 4, 300.0, 320.0, 99.0, False)
    text = over_budget_advice(fp32_four, 150.0)
    assert "an INT8 bundle" in text and "--try-steps 1" in text


# -- devices ----------------------------------------------------------------------------------------
def test_the_avx2_profile_order_follows_its_own_figures():
    """The AVX2 profile's order and the figures its reason quotes (those of benchmarks/RESULTS.md) agree: per
    NFE the OpenVINO targets lead and ORT FP32 is last; of the two OpenVINO targets, even per NFE, the one with the
    cheaper cold whole command leads."""
    import re

    from linearsr_edge.devices.profiles import builtin_profiles

    avx2 = next(p for p in builtin_profiles() if p.name == "x86-avx2")
    per_nfe = {t: float(x) for t, x in re.findall(r"(o[nv][a-z]*-[a-z0-9]+) (0\.\d+)x", avx2.reason)}
    assert set(per_nfe) == set(avx2.targets) and "INT8 ran slower" not in avx2.reason
    assert max(per_nfe, key=per_nfe.get) == avx2.targets[-1] == "onnx-fp32"
    assert sorted(avx2.targets[:2]) == ["ov-fp32", "ov-int8"] and abs(per_nfe["ov-fp32"] - per_nfe["ov-int8"]) < 0.05
    cold = r"(0\.\d+)x the PyTorch command with (ov-\w+) and (0\.\d+)x with (ov-\w+)"
    a, first, b, second = re.search(cold, avx2.reason).groups()
    assert avx2.targets[0] == (first if float(a) < float(b) else second)


# -- the device install ------------------------------------------------------------------------------
def test_the_wheel_carries_everything_a_device_needs(tmp_path):
    """What the README's device install copies to the device: a wheel built from the checkout holds the demo
    model and samples, the device profiles and the Triton model file (package data, not only code)."""
    root = Path(__file__).resolve().parents[2]
    cmd = [sys.executable, "-m", "pip", "wheel", str(root), "-w", str(tmp_path), "--no-deps", "--no-build-isolation"]
    subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("linearsr_edge-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in (
        "linearsr_edge/demo/config.json",
        "linearsr_edge/demo/experts.safetensors",
        "linearsr_edge/demo/samples/astronaut_lr.png",
        "linearsr_edge/devices/profiles/x86-avx2.json",
        "linearsr_edge/serving/triton_model.py",
        "linearsr_edge/gst/plugin/python/linearsr.py",
    ):
        assert needed in names, needed
    metadata = next(n for n in names if n.endswith("METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert "Provides-Extra: onnx" in text and 'extra == "onnx"' in text
    assert wheel.name.endswith("-py3-none-any.whl")  # pure Python: one wheel for every device
