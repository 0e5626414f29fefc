"""The backend-neutral core: reference vs backends, unverified bundles, typed options and flags,
profiles refused before work, expert-major batches, residency, permissions, plugins."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from linearsr_edge.errors import BackendUnavailableError, ConfigError
from linearsr_edge.pipeline.process import SampleOptions
from linearsr_edge.specs import Profile
from tests.helpers import export_args

pytest.importorskip("onnxruntime", reason="requires onnxruntime (the onnx extra)")

from linearsr_edge.build import ExportOptions, build_bundle
from linearsr_edge.cli.export import main as export_main
from linearsr_edge.precision import Precision
from linearsr_edge.reference import load_model_folder
from linearsr_edge.runtime import SRRuntime
from linearsr_edge.targets import TargetInfo


@pytest.fixture(scope="module")
def tiny(tiny_bundles):
    root = tiny_bundles.root
    return root, root / "model", root / "photo.png", tiny_bundles("onnx-fp32").bundle


# ---- the reference is not a backend ---------------------------------------------------------------


def test_auto_without_onnxruntime_names_the_extra(tiny, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(BackendUnavailableError, match=r"pip install 'linearsr-edge\[onnx\]'"):
        SRRuntime.load(tiny[3].path)


def test_target_without_backend_exports_unverified_and_is_never_compared(tiny, monkeypatch, capsys):
    root, model, _, _ = tiny
    from linearsr_edge.reference import ReferenceSession
    from linearsr_edge.targets import TARGETS

    TARGETS.register(
        TargetInfo(
            name="fake-fp32",
            format="fakefmt",
            precision=Precision.FP32,
            requires=(),
            extra="fake",
            description="test target without a backend",
            exporter="linearsr_edge.backends.onnx.export:ONNXExporter",
        )
    )
    references = []  # every run of a reference component (a spy: it still runs the real module)
    original = ReferenceSession._run
    monkeypatch.setattr(ReferenceSession, "_run", lambda self, feeds: references.append(1) or original(self, feeds))
    try:
        out = root / "fake"
        rc = export_main(export_args(model, out, target="fake-fp32"))
        assert rc == 0
        last = capsys.readouterr().out.strip().splitlines()[-1]
        assert "NOT VERIFIED" in last and "fakefmt" in last
        manifest = json.loads((out / "manifest.json").read_text())
        assert manifest["verification"]["verified"] is False and manifest["verification"]["rows"] == []
        assert "no registered runtime backend runs fakefmt" in manifest["verification"]["reason"]
        # The reference ran only to record the golden set that the bundle carries for the device that can
        # verify it (a 4x-steps run and a default run, each with one encode and one decode); it was never
        # compared with anything: no rows.
        steps = load_model_folder(model).cfg.default_steps
        assert len(references) == 4 * steps + steps + 2 * 2
        assert manifest["golden"]["file"] in manifest["files"]
        with pytest.raises(BackendUnavailableError, match="fakefmt"):
            SRRuntime.load(out)
    finally:
        TARGETS.unregister("fake-fp32")


def test_reference_runtime_is_the_same_loop_over_pytorch(tiny):
    _, model, photo, bundle = tiny
    from linearsr_edge.pipeline.imaging import read_image
    from linearsr_edge.quality.parity import psnr

    ref = load_model_folder(model).reference()
    rt = SRRuntime.load(bundle.path)
    assert ref.backend == "reference" and rt.backend == "onnxruntime"
    image = read_image(photo)
    a, b = ref.upscale(image).image, rt.upscale(image).image
    assert psnr(a, b, peak=255.0) >= 60.0  # independent implementations that agree
    assert "reference" not in __import__("linearsr_edge.runtimes", fromlist=["x"]).backend_names()


# ---- flags and thresholds ------------------------------------------------------------------------


def test_fp32_thresholds_are_honoured_and_nothing_is_written(tiny, capsys):
    root, model, photo, _ = tiny
    out = root / "strict"
    assert export_main(export_args(model, out, "--min-expert-sqnr", "200", "--parity-image", str(photo))) == 2
    err = capsys.readouterr().err
    assert "misses its checks for expert_0, expert_1, expert_2, expert_3" in err and ">= 200.0" in err
    assert not out.exists() and not list(root.glob(".linearsr-tmp-*"))


def test_demo_fp32_min_psnr_200_fails_and_writes_nothing(tmp_path, capsys):
    """The demo's FP32 bundle matches PyTorch at ~102 dB end to end (a tiny model's output is bit-identical,
    so only a real model can miss a PSNR floor)."""
    out = tmp_path / "demo"
    args = ["--target", "onnx-fp32", "--out", str(out), "-q", "--max-resolution", "512x512", "--min-psnr", "200"]
    assert export_main(args) == 2
    err = capsys.readouterr().err
    assert "misses its checks for pipeline" in err and "PSNR dB" in err and ">= 200.0" in err
    assert not out.exists() and os.listdir(tmp_path) == []


def _refused_before_work(args: list[str]) -> str:
    """Run the CLI in a fresh interpreter; it must refuse without importing torch (no model was loaded)."""
    code = textwrap.dedent(
        f"""
        import sys
        from linearsr_edge.cli.export import main
        rc = main({args!r})
        assert rc == 2, rc
        assert "torch" not in sys.modules, "refused only after loading the model"
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc.stderr


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--target", "onnx-fp16", "--int8-accurate"], "--int8-accurate does not apply to target onnx-fp16"),
        (["--target", "onnx-fp32", "--calib-dir", "x"], "--calib-dir does not apply to target onnx-fp32"),
        (["--target", "onnx-fp16", "--pooled-calibration"], "--pooled-calibration does not apply"),
        (["--target", "onnx-int8", "--parity-image", "x"], "--parity-image does not apply to target onnx-int8"),
        (["--target", "onnx-fp32", "--max-batch", "0"], "--max-batch: largest batch must be >= 1, got 0"),
        (["--target", "onnx-fp32", "--min-resolution", "2000x2000"], "--min-resolution: minimum resolution"),
        (["--target", "onnx-fp32", "--max-resolution", "32x32"], "--min-resolution: minimum resolution 64x64 is above"),
        (["--target", "onnx-fp32", "--max-tags", "0"], "--max-tags"),
        (["--target", "onnx-fp32", "--opt-resolution", "2000x2000"], "--opt-resolution: optimal resolution"),
    ],
    ids=[
        "int8-flag-on-fp16",
        "calib-on-fp32",
        "pooled-on-fp16",
        "parity-on-int8",
        "batch0",
        "min-above-max",
        "max-below-min",
        "tags0",
        "opt-outside",
    ],
)
def test_bad_flags_are_refused_before_any_work(tmp_path, extra, message):
    err = _refused_before_work([*extra, "--out", str(tmp_path / "b")])
    assert message in err and "Traceback" not in err


def test_profile_beyond_this_machine_is_refused_with_the_limit(tiny_cfg):
    with pytest.raises(ConfigError, match=r"needs about .* GiB .* keep the maximum at or below about \d+x\d+"):
        Profile(max_hw=(16384, 16384)).check_model(tiny_cfg, 2, memory_bytes=8 << 30)
    Profile(max_hw=(1024, 1024)).check_model(tiny_cfg, 2, memory_bytes=8 << 30)
    with pytest.raises(ConfigError, match="below one latent patch"):
        Profile(min_hw=(1, 1), opt_hw=(8, 8), max_hw=(8, 8)).check_model(tiny_cfg, 2)


def test_max_batch_1_exports_and_runs_batches(tiny):
    root, model, photo, _ = tiny
    assert export_main(export_args(model, root / "b1", "--max-batch", "1", "--parity-image", str(photo))) == 0
    rt = SRRuntime.load(root / "b1")
    assert rt.spec("expert_0").dims["batch"].max == 1
    frames = [np.random.default_rng(i).integers(0, 256, (12, 16, 3), dtype=np.uint8) for i in range(3)]
    batch = rt.upscale_batch(frames)  # three images of one size, one at a time (max batch 1)
    for frame, res in zip(frames, batch, strict=True):
        assert np.abs(rt.upscale(frame).image.astype(int) - res.image.astype(int)).max() <= 1


# ---- batches and residency -----------------------------------------------------------------------


def _frames(shapes, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (*s, 3), dtype=np.uint8) for s in shapes]


def test_upscale_batch_of_demo_frames_equals_per_frame_upscale():
    """4 crops of the demo's sample photos, two sizes, on the demo model's reference pipeline."""
    from linearsr_edge.demo import load_demo, sample_images
    from linearsr_edge.pipeline.imaging import read_image

    photos = [read_image(p) for p in sample_images()[:4]]
    frames = [photos[0][:32, :40], photos[1][:24, :24], photos[2][:32, :40], photos[3][:24, :24]]
    rt = load_demo().reference()
    opts = SampleOptions(seed=3)
    batch = rt.upscale_batch(frames, opts)
    assert [r.batch_size for r in batch] == [4] * 4
    for frame, res in zip(frames, batch, strict=True):
        single = rt.upscale(frame, opts).image
        assert single.shape == res.image.shape
        assert np.abs(single.astype(int) - res.image.astype(int)).max() <= 1
    assert not np.array_equal(batch[0].image[:96, :96], batch[1].image[:96, :96])


def test_upscale_batch_on_a_bundle_equals_per_frame_upscale_and_keeps_seeds(tiny):
    rt = SRRuntime.load(tiny[3].path)
    frames = _frames([(12, 16), (20, 8), (12, 16), (12, 16), (20, 8)])
    batch = rt.upscale_batch(frames, SampleOptions(seed=5), seeds=[5, 6, 7, 8, 9])
    for i, (frame, res) in enumerate(zip(frames, batch, strict=True)):
        single = rt.upscale(frame, SampleOptions(seed=5 + i)).image
        assert np.abs(single.astype(int) - res.image.astype(int)).max() <= 1
    with pytest.raises(ConfigError, match="2 images but 1 seeds"):
        rt.upscale_batch(frames[:2], seeds=[1])


def test_residency_one_opens_each_expert_once_per_batch(tiny):
    bundle = tiny[3]
    rt = SRRuntime.load(bundle.path, residency="one")
    assert sorted(rt.open_components()) == ["decoder", "encoder"]  # experts open on demand
    frames = _frames([(12, 16)] * 3 + [(20, 8)] * 2)
    rt.upscale_batch(frames, SampleOptions(steps=8))  # 8 steps over 4 experts, two sizes
    counts = rt.open_counts()
    assert {k: counts[f"expert_{k}"] for k in range(4)} == {0: 1, 1: 1, 2: 1, 3: 1}
    assert counts["encoder"] == counts["decoder"] == 1
    assert [n for n in rt.open_components() if n.startswith("expert")] == ["expert_3"]
    heun = SRRuntime.load(bundle.path, residency="one")
    heun.upscale_batch(frames, SampleOptions(steps=4, solver="heun"))  # second evaluations cross bands
    assert all(heun.open_counts()[f"expert_{k}"] == 1 for k in range(4))
    everything = SRRuntime.load(bundle.path)
    everything.upscale_batch(frames)
    assert set(everything.open_counts().values()) == {1} and len(everything.open_components()) == 6


def test_residency_budget_keeps_what_fits(tiny):
    bundle = tiny[3]
    sizes = {n: bundle.component_bytes(n) for n in bundle.component_names()}
    codec = sizes["encoder"] + sizes["decoder"]
    rt = SRRuntime.load(bundle.path, residency=codec + 2 * sizes["expert_0"] + 10)
    rt.upscale(_frames([(12, 16)])[0])
    assert len([n for n in rt.open_components() if n.startswith("expert")]) == 2
    with pytest.raises(ConfigError, match="below the codec"):
        SRRuntime.load(bundle.path, residency=codec)
    with pytest.raises(ConfigError, match="residency must be"):
        SRRuntime.load(bundle.path, residency="some")


def test_backend_options_are_typed(tiny):
    from linearsr_edge.backends.onnx.options import OrtOptions
    from linearsr_edge.pipeline.session import BackendOptions

    rt = SRRuntime.load(tiny[3].path, options=OrtOptions(threads=1, providers=("CPUExecutionProvider",)))
    assert rt.options.threads == 1
    with pytest.raises(ConfigError, match="takes OrtOptions, got BackendOptions"):
        SRRuntime.load(tiny[3].path, options=BackendOptions(threads=1))
    with pytest.raises(ConfigError, match="threads must be"):
        OrtOptions(threads=0)


# ---- permissions, version, plugins ---------------------------------------------------------------


def test_bundle_exported_with_umask_022_is_readable_by_other_users(tiny, tmp_path):
    _, model, photo, _ = tiny
    shared = Path("/tmp") / f"linearsr-umask-{os.getpid()}"
    shared.mkdir(mode=0o755, exist_ok=True)
    os.chmod(shared, 0o755)
    old = os.umask(0o022)
    try:
        out = shared / "bundle"
        assert export_main(export_args(model, out, "--parity-image", str(photo), "--overwrite")) == 0
    finally:
        os.umask(old)
    try:
        for p in [out, *out.rglob("*")]:
            mode = stat.S_IMODE(p.stat().st_mode)
            assert mode == (0o755 if p.is_dir() else 0o644), (p, oct(mode))
        system_python = next((p for p in ("/usr/bin/python3", "/usr/local/bin/python3") if os.path.exists(p)), None)
        if os.geteuid() == 0 and system_python:  # read every file as 'nobody', as an NVR service user would
            code = (
                "import os, sys\n"
                "for d, _, fs in os.walk(sys.argv[1]):\n"
                "    [open(os.path.join(d, f), 'rb').read() for f in fs]"
            )
            proc = subprocess.run(
                [system_python, "-c", code, str(out)], capture_output=True, text=True, user=65534, timeout=60, cwd="/"
            )
            assert proc.returncode == 0, proc.stderr
    finally:
        import shutil

        shutil.rmtree(shared, ignore_errors=True)


def test_version():
    import linearsr_edge

    assert linearsr_edge.__version__ and linearsr_edge.__version__ != "0+unknown"
    out = subprocess.run(
        [sys.executable, "-m", "linearsr_edge.cli.export", "--version"], capture_output=True, text=True, check=True
    ).stdout
    assert linearsr_edge.__version__ in out
    from linearsr_edge import SRRuntime as Lazy

    assert Lazy is SRRuntime


def test_third_party_targets_and_backends_load_from_entry_points(tmp_path, monkeypatch):
    pkg = tmp_path / "acme_npu.py"
    pkg.write_text(
        textwrap.dedent(
            """
        from linearsr_edge.targets import TargetInfo
        from linearsr_edge.precision import Precision

        def targets():
            return [TargetInfo("acme-int8", "acme", Precision.INT8, (), "acme", "Acme NPU",
                               "acme_npu:AcmeExporter")]
        """
        )
    )
    dist = tmp_path / "acme_npu-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-npu\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[linearsr_edge.targets]\nacme = acme_npu:targets\n\n[linearsr_edge.backends]\nbroken = acme_npu:missing\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    from linearsr_edge.registry import Registry

    targets = Registry("export target", group="linearsr_edge.targets")
    assert "acme-int8" in targets.names() and targets.get("acme-int8").format == "acme"
    backends = Registry("runtime backend", group="linearsr_edge.backends")
    assert backends.names() == []  # a broken plugin is skipped with a warning, never fatal


def test_runtime_and_upscale_cli_run_with_torch_unimportable(tiny, tmp_path):
    """The fast twin of CI's runtime-only venv: torch is made unimportable before anything loads."""
    _, _, photo, bundle = tiny
    out = tmp_path / "out.png"
    code = textwrap.dedent(
        f"""
        import sys
        sys.modules["torch"] = None  # any 'import torch' now raises ImportError
        import numpy as np
        from linearsr_edge import SRRuntime
        from linearsr_edge.cli.upscale import main
        sr = SRRuntime.load({str(bundle.path)!r}).upscale(np.full((10, 12, 3), 128, np.uint8)).image
        assert sr.shape == (20, 24, 3)
        assert main([{str(photo)!r}, "-o", {str(out)!r}, "--bundle", {str(bundle.path)!r}, "-q"]) == 0
        rc = main([{str(photo)!r}, "-o", {str(out)!r}])  # the PyTorch reference needs torch: a clear error
        assert rc == 2, rc
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd="/")
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and "pip install 'linearsr-edge[torch]'" in proc.stderr


def test_unverified_bundle_warns_once_on_load(tiny, tmp_path):
    import logging
    import shutil

    copy = tmp_path / "unverified"
    shutil.copytree(tiny[3].path, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["verification"] = {
        **manifest["verification"],
        "verified": False,
        "reason": "exported where no onnx backend was installed",
    }
    (copy / "manifest.json").write_text(json.dumps(manifest))

    class Collect(logging.Handler):
        def __init__(self) -> None:
            super().__init__(logging.WARNING)
            self.messages: list[str] = []

        def emit(self, record: logging.LogRecord) -> None:
            self.messages.append(record.getMessage())

    handler, logger = Collect(), logging.getLogger("linearsr_edge.pipeline.runtime")
    logger.addHandler(handler)
    try:
        SRRuntime.load(copy)
        assert handler.messages == [f"{copy} is not verified: exported where no onnx backend was installed"]
        SRRuntime.load(tiny[3].path)
        assert len(handler.messages) == 1  # a verified bundle loads silently
    finally:
        logger.removeHandler(handler)


def test_int8_without_calibration_samples_is_refused_before_work(tmp_path):
    from linearsr_edge.calibration import CalibrationOptions

    opts = ExportOptions(
        target="onnx-int8", out=tmp_path / "b", calibration=CalibrationOptions(samples_per_expert=0), progress=False
    )
    with pytest.raises(ConfigError, match="--calib-samples must be >= 1"):
        build_bundle(opts)
    assert not (tmp_path / "b").exists()
    from linearsr_edge.backends.onnx.options import OrtOptions

    with pytest.raises(ConfigError, match="execution_order must be"):
        OrtOptions(execution_order="fast")


def test_wrongly_typed_options_and_unknown_components_are_refused(tiny, tmp_path, capsys):
    from linearsr_edge.backends.onnx.options import OnnxInt8Options, OrtOptions
    from linearsr_edge.errors import InputSpecError

    with pytest.raises(ConfigError, match="target 'onnx-fp32' takes NoOptions, got OnnxInt8Options"):
        build_bundle(ExportOptions(target="onnx-fp32", out=tmp_path / "b", target_options=OnnxInt8Options()))
    with pytest.raises(ConfigError, match="provider_options name providers that are not requested"):
        OrtOptions(providers=("CPUExecutionProvider",), provider_options={"CUDAExecutionProvider": {}})
    with pytest.raises(InputSpecError, match="no component 'expert_9'"):
        SRRuntime.load(tiny[3].path).run_component("expert_9", {})
    from linearsr_edge.cli.upscale import main as upscale_main

    out = str(tmp_path / "o.png")
    assert upscale_main([str(tiny[2]), "-o", out, "--bundle", str(tiny[3].path), "--residency", "some"]) == 2
    assert "residency must be 'all', 'one', 'auto' or a positive byte budget" in capsys.readouterr().err


def test_an_interrupt_swallowed_by_a_finaliser_still_stops_the_work():
    """SIGINT raised inside ``__del__`` is printed and dropped by Python; `interrupt.check` still sees it."""
    import gc
    import os
    import signal

    from linearsr_edge import interrupt

    previous = signal.getsignal(signal.SIGINT)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        interrupt.install()
        interrupt.check()  # nothing requested yet

        class Finalised:
            def __del__(self):
                os.kill(os.getpid(), signal.SIGINT)  # the handler runs here, inside the finaliser

        Finalised()
        gc.collect()
        with pytest.raises(KeyboardInterrupt):
            interrupt.check()
    finally:
        interrupt.reset()  # or every later check in this process would stop its work
        signal.signal(signal.SIGINT, previous)
    interrupt.check()


def test_cpu_isa_reads_a_fake_root_and_this_machine(tmp_path):
    from linearsr_edge.machine import ISA_FLAGS, cpu_isa, machine_summary

    (tmp_path / "proc").mkdir()
    (tmp_path / "proc" / "cpuinfo").write_text(
        "processor\t: 0\nmodel name\t: Fake CPU\nflags\t\t: fpu sse2 avx2 fma\n\n"
        "processor\t: 1\nmodel name\t: Fake CPU\nflags\t\t: fpu sse2 avx2 fma avx512f\n"
    )
    assert cpu_isa(tmp_path) == ("Fake CPU", ["avx2", "avx512f"])
    assert cpu_isa(tmp_path / "missing")[1] == []  # no /proc: no flags, no error
    real = Path("/proc/cpuinfo")
    if real.is_file():
        listed = {f for line in real.read_text().splitlines() if line.startswith("flags") for f in line.split()}
        assert set(cpu_isa()[1]) == listed & set(ISA_FLAGS)
    assert machine_summary()["cores"] >= 1
