"""Choosing the target by measurement, on real bundles of the tiny model: a target that fails its golden set on
this machine is never chosen, however fast it ran."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from linearsr_edge.checks import QualityThresholds
from linearsr_edge.profiling.choice import Candidate, fastest_passing, measure, measured_choice


def test_a_target_failing_its_golden_set_is_never_chosen(tiny_bundles):
    targets = ("onnx-int8", "onnx-fp32")
    paths = {t: tiny_bundles(t).bundle.path for t in targets}
    image = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    seen = []
    own = measure(targets, paths.__getitem__, image, threads=2, repeats=1, on_target=lambda t, i, n: seen.append(t))
    assert seen == list(targets) and [c.status for c in own] == ["passed", "passed"]  # each bundle's own gates
    assert all(c.frame_seconds > 0 and c.first_frame_seconds >= c.frame_seconds for c in own)
    psnr = {c.target: float(c.detail.split("end to end ")[1].split(" dB")[0]) for c in own}
    assert psnr["onnx-int8"] < psnr["onnx-fp32"]
    # a floor between the two: INT8 now truly fails its golden set here, on its own backend
    floor = (psnr["onnx-int8"] + psnr["onnx-fp32"]) / 2
    strict = QualityThresholds(expert_sqnr_db=5.0, e2e_psnr_db=floor, step_snr_db=15.0)
    cands = measure(targets, paths.__getitem__, image, threads=2, repeats=1, thresholds=strict)
    status = {c.target: c.status for c in cands}
    assert status == {"onnx-int8": "failed", "onnx-fp32": "passed"}
    assert "golden set failed here" in next(c.detail for c in cands if c.target == "onnx-int8")
    choice = measured_choice(cands, "tiny", (16, 16), 2)
    assert choice.chosen == "onnx-fp32"
    # however fast: the failing one made a hundred times faster is still not chosen
    faster = [replace(c, frame_seconds=c.frame_seconds / 100) if c.status == "failed" else c for c in cands]
    assert fastest_passing(faster) == "onnx-fp32"


def test_an_uninstalled_or_unknown_target_is_listed_not_measured(tiny_bundles):
    from linearsr_edge.targets import all_targets

    missing = [t.name for t in all_targets() if not t.available][:1]
    image = np.zeros((16, 16, 3), np.uint8)
    asked = []
    cands = measure(["npu-int4", *missing], lambda t: asked.append(t), image, threads=1, repeats=1)
    assert asked == [] and {c.status for c in cands} == {"unavailable"}
    assert fastest_passing(cands) is None


def test_doctor_and_export_auto_read_the_choice_measured_on_this_machine(tmp_path, monkeypatch, capsys):
    from linearsr_edge.cli import doctor, export
    from linearsr_edge.profiling.choice import Candidate, save_choice

    monkeypatch.setenv("LINEARSR_EDGE_CACHE", str(tmp_path))
    cands = [Candidate("onnx-fp32", "passed", 0.5), Candidate("ov-fp32", "failed", 0.1, detail="golden set failed")]
    save_choice(measured_choice(cands, "demo", (128, 128), 2))
    data = doctor.report()
    assert data["recommended_target"] == "onnx-fp32" and "measured on this machine" in data["reason"]
    assert data["measured_choice"]["chosen"] == "onnx-fp32"
    assert export.auto_target() == "onnx-fp32"
    # the flags of a measurement are refused where they do not apply, in one line
    assert doctor.main(["--size", "64"]) == 2
    assert export.main(["--target", "onnx-fp32", "--measure", "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "--checkpoint, --size and --repeats apply to --measure" in err and "use it with --target auto" in err
    assert not (tmp_path / "b").exists()


_CANDIDATES = [
    Candidate("ov-int8", "failed", 0.01, 1.9, "golden set failed here: expert_0"),
    Candidate("onnx-int8", "passed", 0.30, 1.1, "onnxruntime"),
    Candidate("ov-fp32", "passed", 0.20, 1.5, "openvino"),
]


def test_auto_takes_the_measured_target_when_it_can_be_exported_else_the_profile_order():
    """Needs the export stack (the unit lane's torch-free install can export no target)."""
    from linearsr_edge.cli.doctor import recommend
    from linearsr_edge.devices.profiles import DeviceProfile

    profile = DeviceProfile("p", {}, 1 << 30, ("onnx-fp32", "ov-fp32"), (1280, 720), 512, reason="static")
    assert recommend(profile) == ("onnx-fp32", "static")
    measured = measured_choice(_CANDIDATES, "demo", (128, 128), 2, fingerprint={})
    name, why = recommend(profile, measured)
    assert name == "ov-fp32" and "measured on this machine" in why and "0.200 s per 128x128" in why
    gone = measured_choice([Candidate("npu-int4", "passed", 0.01)], "demo", (128, 128), 2, fingerprint={})
    assert recommend(profile, gone) == ("onnx-fp32", "static")  # not a target of this version
