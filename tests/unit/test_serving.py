"""The serving settings that need no server: the queue policy, the repository's versions, the body bound, the
fuzzer's requests, the loopback guard."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from linearsr_edge.errors import ConfigError
from linearsr_edge.serving import fuzz, loadgen
from linearsr_edge.serving.triton import QueuePolicy, config_pbtxt, max_input_bytes, versions


def test_queue_policy_is_sized_from_one_request_and_written_into_the_config():
    policy = QueuePolicy.sized(0.1, max_batch=8, instances=2)
    assert policy == QueuePolicy(max_queue_size=16, timeout_us=3_200_000)  # 2 x (8 waiting + 8 running) x 0.1 s
    text = config_pbtxt(8, 2000, 2, "KIND_CPU", policy)
    block = text[text.index("dynamic_batching") :]
    assert "timeout_action: REJECT" in block and "default_timeout_microseconds: 3200000" in block
    assert "max_queue_size: 16" in block and block.index("max_queue_size") < block.index("instance_group")
    assert "version_policy: { latest: { num_versions: 1 } }" in text
    assert "default_queue_policy" not in config_pbtxt(8, 2000, 1, "KIND_CPU")  # None: Triton's unbounded queue
    assert QueuePolicy.sized(1e-7, 1, 1).timeout_us == 10_000  # never below 10 ms


@pytest.mark.parametrize("fields", [{"max_queue_size": -1}, {"timeout_us": 1.5}, {"max_queue_size": True}])
def test_queue_policy_refuses_what_triton_would_misread(fields):
    with pytest.raises(ConfigError, match="queue policy"):
        dataclasses.replace(QueuePolicy(4, 1000), **fields)
    with pytest.raises(ConfigError, match="latency"):
        QueuePolicy.sized(0.0, 8, 1)


def test_versions_are_the_numbered_folders_with_a_model(tmp_path):
    model = tmp_path / "linearsr"
    assert versions(tmp_path) == []
    for name in ("1", "10", "2", "bundle", "3"):
        (model / name).mkdir(parents=True)
    for name in ("1", "10", "2", "bundle"):
        (model / name / "model.py").write_text("")
    assert versions(tmp_path) == [1, 2, 10]  # "3" has no model yet; "bundle" is no version


def test_the_body_bound_holds_the_largest_frame_as_json():
    bound = max_input_bytes(4_000_000, 4)  # 250,000 input pixels, 750,000 values of up to "255,"
    assert bound == 4 * 750_000 + 65536
    assert max_input_bytes(4_000_000, 1) > bound


def test_the_fuzzer_is_reproducible_and_makes_every_kind():
    def draw(seed):
        gen = fuzz.Generator(seed, ["portrait", "space"], 16, 40, 600)
        return [gen() for _ in range(500)]

    first, again = draw(3), draw(3)
    assert [(r.kind, r.tensors, r.malformed) for r in first] == [(r.kind, r.tensors, r.malformed) for r in again]
    assert {r.kind for r in first} == set(fuzz.Generator(0, [], 16, 40, 600).kinds)
    assert [r.kind for r in draw(4)] != [r.kind for r in first]
    for r in first:
        image = next((t for t in r.tensors if t.name == "image"), None)
        if r.kind == "valid":
            assert image.datatype == "UINT8" and len(image.shape) == 4 and image.shape[-1] == 3
            assert min(image.shape[1:3]) >= 16 and max(image.shape[1:3]) <= 40
            assert len(image.data) == int(np.prod(image.shape))
        if r.kind == "truncated":
            assert len(image.data) < int(np.prod(image.shape))
        if r.kind == "steps":
            steps = next(t for t in r.tensors if t.name == "steps")
            assert not 1 <= int(np.frombuffer(steps.data, np.int32)[0]) <= 16


@pytest.mark.parametrize("url", ["10.0.0.2:8000", "0.0.0.0:8001", "example.com:80", "192.168.1.1"])
def test_load_runs_refuse_other_machines(url):
    with pytest.raises(loadgen.LoopbackOnly, match="this machine only"):
        loadgen.check_loopback(url)
    for local in ("127.0.0.1:8000", "localhost:1", "[::1]:8000"):
        assert loadgen.check_loopback(local) == local


@pytest.mark.parametrize("seed", [-1, 1.5, True, "3"])
def test_a_seed_is_an_integer_at_least_0(seed):
    from linearsr_edge.pipeline.process import SampleOptions, check_seed

    with pytest.raises(ConfigError, match="seed must be an integer >= 0"):
        SampleOptions(seed=seed)
    assert check_seed(np.int64(7)) == 7 and SampleOptions(seed=0).seed == 0


def test_the_server_command_bounds_bodies_where_the_binary_can(tmp_path):
    from pathlib import Path

    from linearsr_edge.serving.triton import TritonInstall, TritonServer

    install = TritonInstall(Path("/bin/echo"), (), Path("stub"), None)
    server = TritonServer(tmp_path, http_port=1, grpc_port=2, metrics_port=3)  # not started
    bounded = server.command(install, tmp_path / "models", tmp_path / "backends", max_input=123)
    assert "--http-max-input-size=123" in bounded and "--grpc-infer-allocation-pool-size=0" in bounded
    assert "--model-control-mode=explicit" in bounded and "--load-model=linearsr" in bounded
    assert not any(a.startswith("--http-max-input-size") for a in server.command(install, tmp_path, tmp_path))
    # whether a binary takes a flag is read from its --help (GNU echo's lists --help, and no server flag)
    assert install.has_flag("--help") and not install.has_flag("--http-max-input-size")
