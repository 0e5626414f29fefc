"""Fixtures of the end-to-end tests."""

from __future__ import annotations

import pytest

from tests.e2e.serving import HAVE_SERVER


@pytest.fixture(scope="session")
def demo_bundle(tmp_path_factory):
    """The demo model as onnx-fp32, at a small profile (outputs 64..256 px): what the serving tests serve."""
    from linearsr_edge.build import ExportOptions, build_bundle
    from linearsr_edge.specs import Profile

    if not HAVE_SERVER:
        pytest.skip("needs tritonserver and tritonclient")
    out = tmp_path_factory.mktemp("demo") / "onnx-fp32"
    profile = Profile(min_hw=(64, 64), opt_hw=(128, 128), max_hw=(256, 256), batch=(1, 1, 8))
    return build_bundle(ExportOptions(target="onnx-fp32", out=out, profile=profile, progress=False)).bundle
