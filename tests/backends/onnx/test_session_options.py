"""ONNX Runtime session options the backend sets itself."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from linearsr_edge.backends.onnx.options import OrtOptions
from linearsr_edge.backends.onnx.session import ORTSession


def _entry(session: ORTSession, key: str) -> str | None:
    try:
        return session._sess.get_session_options().get_session_config_entry(key)
    except Exception:  # ORT raises when the key was never set
        return None


def test_threads_do_not_spin_between_runs_unless_asked(tiny_bundles):
    """The experts are separate sessions taking turns: a spinning pool slowed the next expert 1.6-2x on the demo
    (benchmarks/RESULTS.md), so spinning is off by default; ``spinning=True`` (``--ort-spinning``) leaves ORT's
    default, and a caller's own session_config entry wins."""
    bundle = tiny_bundles("onnx-fp32").bundle
    path, spec = bundle.file("expert_0"), bundle.spec("expert_0")
    quiet = ORTSession(path, spec, OrtOptions(threads=2))
    assert _entry(quiet, "session.intra_op.allow_spinning") == "0" and quiet.settings()["spinning"] is False
    spinning = ORTSession(path, spec, OrtOptions(threads=2, spinning=True))
    assert _entry(spinning, "session.intra_op.allow_spinning") in (None, "", "1")
    assert "spinning" not in spinning.settings()
    own = ORTSession(path, spec, OrtOptions(session_config={"session.intra_op.allow_spinning": "1"}))
    assert _entry(own, "session.intra_op.allow_spinning") == "1"
    feeds = spec.dummy_inputs("opt", batch=1, seed=0)
    np.testing.assert_array_equal(quiet.run(feeds)["velocity"], spinning.run(feeds)["velocity"])


def test_the_flag_is_on_every_cli_that_opens_a_backend():
    from linearsr_edge.cli.upscale import build_parser

    assert "--ort-spinning" in build_parser().format_help()
