"""The golden set in every bundle, `SRRuntime.verify`, ``load(verify=...)`` and ``linearsr-verify``."""

from __future__ import annotations

import json
import logging
import shutil

import numpy as np
import pytest

from linearsr_edge.backends.onnx.options import OrtOptions
from linearsr_edge.bundle import Bundle
from linearsr_edge.errors import BundleError, QualityGateError
from linearsr_edge.machine import cpu_isa
from linearsr_edge.manifest import GOLDEN_FILE
from linearsr_edge.quality.golden import GoldenSet
from linearsr_edge.runtime import SRRuntime
from tests.helpers import rehash


def _copy(bundle: Bundle, dest):
    shutil.copytree(bundle.path, dest)
    return dest


def test_every_bundle_carries_a_hashed_golden_set(tiny_bundles):
    bundle = tiny_bundles("onnx-int8").bundle
    entry = bundle.manifest.golden
    assert entry.file in bundle.manifest.files and entry.bytes < 2 << 20
    golden = GoldenSet.load(bundle.path / GOLDEN_FILE)
    assert sorted(golden.experts) == [0, 1, 2, 3] and all(len(c) == 2 for c in golden.experts.values())
    side = entry.lr_size[0]
    s = bundle.cfg.upscale
    assert golden.lr.shape == (side, side, 3) and golden.sr.shape == (s * side, s * side, 3)
    for cases in golden.experts.values():
        for case in cases:
            assert case.dsigma < 0 and case.velocity.shape == case.feeds["latent"].shape


def test_golden_cases_come_from_each_experts_band(tiny_bundles):
    from linearsr_edge.config import route
    from linearsr_edge.schedule import log_snr

    bundle = tiny_bundles("onnx-fp32").bundle
    golden = GoldenSet.load(bundle.path / GOLDEN_FILE)
    for k, cases in golden.experts.items():
        assert all(route(bundle.cfg.bands, float(log_snr(c.feeds["sigma"][0]))) == k for c in cases)


def test_a_tampered_golden_file_is_refused(tiny_bundles, tmp_path):
    path = _copy(tiny_bundles("onnx-fp32").bundle, tmp_path / "b")
    data = bytearray((path / GOLDEN_FILE).read_bytes())
    data[len(data) // 2] ^= 0xFF
    (path / GOLDEN_FILE).write_bytes(bytes(data))
    with pytest.raises(BundleError, match="golden.npz does not match its sha256"):
        Bundle.load(path)


@pytest.mark.parametrize("target", ["onnx-fp32", "onnx-fp16", "onnx-int8"])
def test_verify_passes_with_a_fingerprint(target, tiny_bundles):
    bundle = tiny_bundles(target).bundle
    with SRRuntime.load(bundle.path, options=OrtOptions(threads=1)) as rt:
        report = rt.verify()
    assert report.passed, report.table()
    metrics = [(r.component, r.metric) for r in report.rows]
    assert ("expert_3", "sqnr_db") in metrics and ("expert_3", "step_snr_db") in metrics
    assert metrics[-1] == ("pipeline", "psnr_db")
    fp = report.fingerprint
    assert fp["backend"] == "onnxruntime" and fp["threads"] == 1 and fp["backend_version"] != "?"
    assert fp["isa"] == cpu_isa()[1]


def _broken_int8(tiny_bundles, tmp_path, k: int = 2):
    """The good INT8 bundle with expert ``k`` replaced by a copy calibrated on inputs 100x too small:
    its activation ranges clip almost everything."""
    from linearsr_edge.backends.onnx.precision import ONNXInt8Exporter
    from linearsr_edge.reference import load_model_folder

    good = tiny_bundles("onnx-int8").bundle
    path = _copy(good, tmp_path / "broken")
    spec = good.spec(f"expert_{k}")
    folder = load_model_folder(tiny_bundles.root / "model")
    feeds = [spec.dummy_inputs("opt", batch=1, seed=i) for i in range(4)]
    tiny = [{n: (a * 0.01 if n != "sigma" else a) for n, a in f.items()} for f in feeds]
    (tmp_path / "q").mkdir()
    files = ONNXInt8Exporter().export(folder.experts[k], spec, tmp_path / "q", calibration=tiny)
    shutil.copy(files[0], path / f"expert_{k}.onnx")
    rehash(path, f"expert_{k}.onnx")
    return path


def test_verification_catches_a_wrongly_quantized_expert(tiny_bundles, tmp_path):
    path = _broken_int8(tiny_bundles, tmp_path)
    with SRRuntime.load(path) as rt:
        report = rt.verify()
    assert not report.passed and "expert_2" in report.failed_components
    assert not {"expert_0", "expert_1", "expert_3"} & set(report.failed_components)
    with pytest.raises(QualityGateError, match="fails its golden set on this device .* for .*expert_2"):
        SRRuntime.load(path, verify="always")


def test_verify_first_caches_per_fingerprint(tiny_bundles, tmp_path, monkeypatch):
    monkeypatch.setenv("LINEARSR_EDGE_CACHE", str(tmp_path / "cache"))
    bundle = tiny_bundles("onnx-fp16").bundle
    rt = SRRuntime.load(bundle.path, verify="first")
    assert rt.last_verification.passed and not rt.last_verification.cached
    rt.close()
    cached = list((tmp_path / "cache" / "verified").glob("*.json"))
    assert len(cached) == 1
    rt = SRRuntime.load(bundle.path, verify="first")
    assert rt.last_verification.cached and rt.last_verification.passed
    rt.close()
    rt = SRRuntime.load(bundle.path, verify="first", options=OrtOptions(threads=1))  # another fingerprint
    assert not rt.last_verification.cached
    rt.close()
    assert len(list((tmp_path / "cache" / "verified").glob("*.json"))) == 2


def test_a_failing_verification_can_warn_and_is_never_cached(tiny_bundles, tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("LINEARSR_EDGE_CACHE", str(tmp_path / "cache"))
    path = _broken_int8(tiny_bundles, tmp_path)
    logger = logging.getLogger("linearsr_edge")
    logger.addHandler(caplog.handler)
    try:
        rt = SRRuntime.load(path, verify="first", on_verify_fail="warn")
    finally:
        logger.removeHandler(caplog.handler)
    assert not rt.last_verification.passed
    rt.close()
    assert any("expert_2" in r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert not (tmp_path / "cache" / "verified").exists()


def test_a_bundle_without_a_golden_set_says_so(tiny_bundles, tmp_path):
    path = _copy(tiny_bundles("onnx-fp32").bundle, tmp_path / "old")
    manifest = json.loads((path / "manifest.json").read_text())
    del manifest["golden"]
    (path / "manifest.json").write_text(json.dumps(manifest))
    with SRRuntime.load(path) as rt, pytest.raises(BundleError, match="has no golden set .* re-export"):
        rt.verify()


def test_verify_command(tiny_bundles, tmp_path, capsys):
    from linearsr_edge.cli.verify import main

    good = [str(tiny_bundles(t).bundle.path) for t in ("onnx-int8", "onnx-fp32")]
    assert main([*good, "--threads", "1", "--runs", "2"]) == 0
    out = capsys.readouterr().out
    assert "onnx-int8: PASSED" in out and "onnx-fp32: PASSED" in out and "ISA:" in out
    assert "one expert step at" in out and "the kernel path costs" in out
    broken = str(_broken_int8(tiny_bundles, tmp_path))
    assert main([broken, "--json", "--no-timing"]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["reports"][0]["passed"] is False
    check = data["reports"][0]["kernel_check"]
    assert abs(check["kernel_cost_db"]) < 3.0  # 7-bit weights cannot saturate: kernels = float emulation
    assert main([broken, "--device", "CPU"]) == 2
    assert "--device does not apply to backend onnxruntime" in capsys.readouterr().err


def test_the_manifest_records_the_machine_the_gates_ran_on(tiny_bundles):
    v = tiny_bundles("onnx-int8").bundle.verification
    assert v.machine["isa"] == cpu_isa()[1] and v.machine["cores"] >= 1
    assert v.thresholds.step_snr_db == 15.0
    steps = [r for r in v.rows if r.metric == "step_snr_db"]
    assert len(steps) == 4 and all(r.passed for r in steps)


def test_the_step_gate_refuses_an_export(tiny_bundles, tmp_path):
    from linearsr_edge.checks import QualityThresholds
    from linearsr_edge.cli.export import _thresholds
    from linearsr_edge.targets import get_target
    from tests.helpers import export_tiny

    tiny_bundles("onnx-fp16")  # the tiny model and photos exist under root
    with pytest.raises(QualityGateError, match=r"misses its checks for expert_0, expert_1, expert_2, expert_3"):
        export_tiny(tiny_bundles.root, "onnx-fp16", name="strict", thresholds=QualityThresholds(40.0, 45.0, 300.0))
    assert not (tiny_bundles.root / "strict").exists()
    flags = _thresholds(get_target("onnx-int8"), {"min_step_snr": 22.5})
    assert flags == QualityThresholds(5.0, 35.0, 22.5)


def _int8_weights(path) -> list[np.ndarray]:
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    return [numpy_helper.to_array(t) for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8]


def test_default_int8_weights_cannot_saturate_16_bit_pair_sums(tiny_bundles):
    """x86 without VNNI adds U8 x S8 products in pairs into int16 (vpmaddubsw). The default 7-bit weights
    keep every pair sum in range by construction; 8-bit weights (--int8-full-range) can leave it."""
    from linearsr_edge.backends.onnx.options import OnnxInt8Options
    from tests.helpers import export_tiny

    def pair_max(weights: list[np.ndarray]) -> int:  # the largest |u8 * w + u8 * w|
        return 2 * 255 * max(int(np.abs(w.astype(np.int32)).max()) for w in weights)

    default = _int8_weights(tiny_bundles("onnx-int8").bundle.file("expert_0"))
    assert default and pair_max(default) <= np.iinfo(np.int16).max
    full = export_tiny(
        tiny_bundles.root, "onnx-int8", name="full-range", target_options=OnnxInt8Options(reduce_range=False)
    )
    assert full.bundle.manifest.target_options["reduce_range"] is False
    assert pair_max(_int8_weights(full.bundle.file("expert_0"))) > np.iinfo(np.int16).max


def test_golden_set_round_trip_shares_what_is_shared(tiny_bundles, tmp_path):
    golden = GoldenSet.load(tiny_bundles("onnx-fp32").bundle.path / GOLDEN_FILE)
    odd = golden.experts[1][0]
    odd.feeds["lr_latent"] = odd.feeds["lr_latent"] + 1.0  # one case that differs: stored on its own
    golden.save(tmp_path / "g.npz")
    back = GoldenSet.load(tmp_path / "g.npz")
    with np.load(tmp_path / "g.npz") as data:
        own = [k for k in data.files if k.endswith("_lr_latent") and not k.startswith("shared")]
    assert own == ["e1_0_lr_latent"]
    for k, cases in golden.experts.items():
        for a, b in zip(cases, back.experts[k], strict=True):
            assert a.dsigma == b.dsigma and np.array_equal(a.velocity, b.velocity)
            assert all(np.array_equal(a.feeds[n], b.feeds[n]) for n in a.feeds)
    assert np.array_equal(golden.sr, back.sr) and (golden.steps, golden.seed) == (back.steps, back.seed)


def test_a_sigma_outside_the_plan_is_refused_not_given_a_zero_step(tiny_bundles):
    from linearsr_edge.pipeline.process import SampleOptions
    from linearsr_edge.quality.golden import step_deltas
    from linearsr_edge.reference import load_model_folder

    tiny_bundles("onnx-fp32")
    process = load_model_folder(tiny_bundles.root / "model").reference().process
    delta = step_deltas(process, SampleOptions(steps=4))
    plan = process.plan(SampleOptions(steps=4))
    assert delta(float(plan.sigma[1])) == pytest.approx(float(plan.sigma_next[1] - plan.sigma[1]))
    with pytest.raises(BundleError, match="sigma 0.123 is not a step of the 4-step plan"):
        delta(0.123)


def test_bad_verify_options_are_refused(tiny_bundles, capsys):
    from linearsr_edge.cli.verify import main
    from linearsr_edge.errors import ConfigError

    path = tiny_bundles("onnx-fp32").bundle.path
    with pytest.raises(ConfigError, match="verify must be 'never', 'first' or 'always'"):
        SRRuntime.load(path, verify="sometimes")
    with pytest.raises(ConfigError, match="on_verify_fail must be 'raise' or 'warn'"):
        SRRuntime.load(path, verify="always", on_verify_fail="ignore")
    assert main([str(path), "--runs", "0"]) == 2
    assert "--runs must be at least 1" in capsys.readouterr().err
