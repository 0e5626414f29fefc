"""The contract every registered export target and runtime backend must keep.

One suite, parametrised over the registry: export the tiny model, load the bundle with
``backend="auto"`` (the target's own backend), run every component and the whole pipeline, and
compare with the PyTorch reference within the target precision's own thresholds. Registering a
target is enough to put it under test; a target whose packages or backend are missing here is
skipped with the reason.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from linearsr_edge.checks import QualityThresholds
from linearsr_edge.pipeline.session import BACKENDS, pick_backend
from linearsr_edge.precision import Precision
from linearsr_edge.quality.parity import psnr, sqnr
from linearsr_edge.targets import all_targets

TARGETS = [t.name for t in all_targets()]


def test_every_backend_runs_a_format_some_target_writes():
    formats = {t.format for t in all_targets()}
    orphans = [b.name for b in BACKENDS.entries() if not set(b.formats) & formats]
    assert not orphans, f"backends {orphans} run no format a registered target writes: nothing tests them"


@pytest.mark.parametrize("name", TARGETS)
def test_target_contract(name, tiny_bundles):
    from linearsr_edge.reference import load_model_folder
    from linearsr_edge.runtime import SRRuntime
    from linearsr_edge.targets import get_target

    target = next(t for t in all_targets() if t.name == name)
    if not target.available:
        pytest.skip(f"requires {target.extra}: pip install 'linearsr-edge[{target.extra}]'")
    try:  # engines built on the device (TensorRT): the graphs are checked here on another backend of the format
        backend = pick_backend(target.format, exclude=target.verified_by)
    except Exception as exc:
        pytest.skip(f"no backend for {target.format} here: {exc}")
    result = tiny_bundles(name)
    assert result.verification.backend == backend.name
    assert result.verification.verified == (not target.verified_by or backend.name in target.verified_by)
    assert all(r.passed for r in result.verification.rows)
    bundle = result.bundle
    assert bundle.target == name and bundle.format == get_target(name).format
    limits = QualityThresholds.default(target.precision)
    folder = load_model_folder(tiny_bundles.root / "model")
    reference, runtime = folder.reference(), SRRuntime.load(bundle.path, backend=backend.name)
    assert runtime.backend == backend.name != reference.backend

    for component in bundle.component_names():
        spec = bundle.spec(component)
        feeds = spec.dummy_inputs("opt", batch=min(3, spec.dims["batch"].max), seed=11)  # not the build's inputs
        got, want = runtime.run_component(component, feeds), reference.run_component(component, feeds)
        assert set(got) == set(spec.output_names)
        for out in spec.output_names:
            assert got[out].dtype == np.float32 and got[out].shape == want[out].shape
            assert np.isfinite(got[out]).all()
            if target.precision == Precision.FP32:
                assert np.abs(got[out] - want[out]).max() <= spec.tolerance, component
            else:  # FP16 codecs are FP16 too; INT8 codecs stay FP32
                assert sqnr(want[out], got[out]) >= limits.expert_sqnr_db, component

    report = runtime.verify()  # the bundle's own golden set, on this backend
    assert report.passed and report.fingerprint["backend"] == backend.name, report.table()

    frames = [np.random.default_rng(i).integers(0, 256, (14, 18, 3), dtype=np.uint8) for i in range(2)]
    for frame in frames:
        value = psnr(reference.upscale(frame).image, runtime.upscale(frame).image, peak=255.0)
        assert value >= limits.e2e_psnr_db or math.isinf(value), (name, value)
