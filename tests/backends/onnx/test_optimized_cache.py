"""ONNX Runtime's optimized graphs in the compiled-model cache: written by the first session, read by the next."""

from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from linearsr_edge.backends.onnx.options import OrtOptions
from linearsr_edge.backends.onnx.session import OrtBackend, ORTSession, optimized_path


def _expert(bundle):
    name = "expert_0"
    files = bundle.manifest.components[name].files
    return bundle.file(name), bundle.spec(name), bundle.manifest.files[files[0]]


def test_the_second_session_reads_the_optimized_graph_and_computes_the_same(tiny_bundles, tmp_path):
    bundle = tiny_bundles("onnx-fp32").bundle
    path, spec, digest = _expert(bundle)
    options = OrtOptions(threads=2, cache_dir=tmp_path)
    first = ORTSession(path, spec, options, digest=digest)
    assert first.cached is not None and first.cached.is_file() and first.cached.parent == tmp_path
    assert first._sess._model_path == str(path)  # made from the bundle's graph, which it optimized and wrote
    second = ORTSession(path, spec, options, digest=digest)
    assert second._sess._model_path == str(first.cached)  # read back, optimizer off
    uncached = ORTSession(path, spec, replace(options, cache=False), digest=digest)
    assert uncached.cached is None
    assert [p.name for p in tmp_path.iterdir()] == [first.cached.name]  # nothing else, no temporary left
    feeds = spec.dummy_inputs("opt", batch=2, seed=3)
    want = uncached.run(feeds)["velocity"]
    np.testing.assert_array_equal(second.run(feeds)["velocity"], want)
    np.testing.assert_array_equal(first.run(feeds)["velocity"], want)


def test_the_key_follows_the_graph_and_the_config_that_changes_the_optimizer(tiny_bundles, tmp_path):
    bundle = tiny_bundles("onnx-fp32").bundle
    path, _, digest = _expert(bundle)
    base = optimized_path(tmp_path, path, digest, OrtOptions(), "1.0")
    assert optimized_path(tmp_path, path, digest, OrtOptions(threads=1), "1.0") == base  # threads: same graph
    others = {
        optimized_path(tmp_path, path, "0" * 64, OrtOptions(), "1.0"),
        optimized_path(tmp_path, path, digest, OrtOptions(session_config={"session.disable_quant_qdq": "1"}), "1.0"),
        optimized_path(tmp_path, path, digest, OrtOptions(), "1.1"),
    }
    assert base not in others and len(others) == 3


def test_an_unreadable_cached_graph_is_replaced(tiny_bundles, tmp_path, caplog):
    bundle = tiny_bundles("onnx-fp32").bundle
    path, spec, digest = _expert(bundle)
    options = OrtOptions(threads=2, cache_dir=tmp_path)
    cached = ORTSession(path, spec, options, digest=digest).cached
    cached.write_bytes(b"not a graph")
    with caplog.at_level(logging.WARNING, logger="linearsr_edge"):
        session = ORTSession(path, spec, options, digest=digest)
    assert "unreadable cached graph" in caplog.text
    assert session._sess._model_path == str(path) and cached.stat().st_size > 1000  # written anew
    feeds = spec.dummy_inputs("opt", batch=1, seed=0)
    fresh = ORTSession(path, spec, replace(options, cache=False))
    np.testing.assert_array_equal(session.run(feeds)["velocity"], fresh.run(feeds)["velocity"])


def test_the_first_run_says_where_it_writes_once(tiny_bundles, tmp_path, caplog):
    bundle = tiny_bundles("onnx-fp32").bundle
    folder = tmp_path / "compiled"
    with caplog.at_level(logging.INFO, logger="linearsr_edge"):
        backend = OrtBackend(bundle, OrtOptions(threads=2, cache_dir=folder))
        for name in bundle.component_names():
            backend.open(name)
    said = [r.getMessage() for r in caplog.records if "caching" in r.getMessage()]
    assert len(said) == 1 and str(folder) in said[0] and "--no-cache" in said[0]
    assert sorted(p.name.split("-")[0] for p in folder.iterdir()) == sorted(bundle.component_names())
