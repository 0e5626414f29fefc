"""The measured target choice: what is chosen, and the per-machine cache that ``--target auto`` reads
(the measurement itself runs in tests/pipeline/test_measure.py)."""

from __future__ import annotations

import json

import pytest

from linearsr_edge.profiling.choice import (
    Candidate,
    MeasuredChoice,
    cached_choice,
    choice_path,
    fastest_passing,
    measured_choice,
    save_choice,
)

FP_A = {"cpu": "AMD EPYC", "isa": ["avx2", "avx512f", "avx512_vnni"], "cores": 2, "arch": "x86_64", "os": "Linux"}
FP_B = {**FP_A, "isa": ["avx2"]}  # the same CPU name without VNNI: another machine for the choice


def _candidates() -> list[Candidate]:
    return [
        Candidate("ov-int8", "failed", 0.01, 1.9, "golden set failed here: expert_0"),  # the fastest
        Candidate("onnx-int8", "passed", 0.30, 1.1, "onnxruntime"),
        Candidate("ov-fp32", "passed", 0.20, 1.5, "openvino"),
        Candidate("onnx-fp32", "error", None, None, "cannot load"),
        Candidate("trt-fp16", "unavailable", detail="pip install 'linearsr-edge[tensorrt]'"),
    ]


def test_the_fastest_passing_target_is_chosen_and_a_failing_one_never_is():
    cands = _candidates()
    assert fastest_passing(cands) == "ov-fp32"
    fastest_failing = [Candidate(c.target, c.status, 0.0 if c.status != "passed" else c.frame_seconds) for c in cands]
    assert fastest_passing(fastest_failing) == "ov-fp32"
    assert fastest_passing([c for c in cands if c.status != "passed"]) is None
    with pytest.raises(ValueError, match="status"):
        Candidate("x", "great")


def test_a_choice_round_trips_through_its_file(tmp_path):
    choice = measured_choice(_candidates(), "demo", (128, 128), 2, "x86-avx512-vnni", fingerprint=FP_A)
    assert MeasuredChoice.from_dict(json.loads(json.dumps(choice.to_dict()))) == choice
    path = save_choice(choice, tmp_path)
    assert path == choice_path(FP_A, tmp_path) and cached_choice(FP_A, tmp_path) == choice
    table = choice.table()
    assert table.index("ov-fp32 **(chosen)**") < table.index("onnx-int8") < table.index("ov-int8")


def test_the_cache_is_keyed_by_the_machine_fingerprint(tmp_path):
    save_choice(measured_choice(_candidates(), "demo", (128, 128), 2, fingerprint=FP_A), tmp_path)
    assert cached_choice(FP_B, tmp_path) is None
    assert choice_path(FP_A, tmp_path) != choice_path(FP_B, tmp_path)
    # a file copied under another machine's name (a cache folder moved between machines) is not taken
    choice_path(FP_B, tmp_path).write_text(choice_path(FP_A, tmp_path).read_text())
    assert cached_choice(FP_B, tmp_path) is None
    choice_path(FP_A, tmp_path).write_text("{not json")
    assert cached_choice(FP_A, tmp_path) is None
