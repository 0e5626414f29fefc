"""The typed manifest: every section read and written by field name, schema 1 upgraded, misfits named.

Run over every target's manifest (the schema-1 manifests in ``tests/data/v1`` were written by the exporter
before the typed manifest) and every family's section type. The Core ML shape plan's round trip is the
check that failed before the typed manifest: the hand-written ``ShapePlan.from_dict`` passed its fields in
the wrong order, so ``cond_len`` came back as ``{}``.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest

from linearsr_edge.backends.coreml.plan import ShapePlan
from linearsr_edge.bundle import Bundle
from linearsr_edge.errors import BundleError
from linearsr_edge.manifest import Manifest, section_type
from linearsr_edge.serial import from_data, to_data

DATA = Path(__file__).resolve().parent.parent / "data" / "v1"
V1 = {p.stem: json.loads(p.read_text()) for p in sorted((DATA / "manifests").glob("*.json"))}
V1["onnx-fp32"] = json.loads((DATA / "onnx-fp32" / "manifest.json").read_text())


@pytest.mark.parametrize("target", sorted(V1))
def test_every_targets_manifest_reads_and_round_trips(target):
    manifest = Manifest.from_data(V1[target], target)
    assert manifest.target == target and manifest.schema_version == 2
    data = manifest.to_data()
    again = Manifest.from_data(json.loads(json.dumps(data)), target)  # through JSON text, as on disk
    assert again == manifest
    assert again.to_data() == data


@pytest.mark.parametrize("target", sorted(V1))
def test_every_section_round_trips_on_its_own(target):
    """Each section of the manifest (and each family's) read back from its own JSON data is equal to itself."""
    manifest = Manifest.from_data(V1[target], target)
    sections = [getattr(manifest, f.name) for f in fields(manifest) if is_dataclass(getattr(manifest, f.name))]
    sections += [entry.spec for entry in manifest.components.values()]
    sections += list(manifest.families.values())
    writes_a_section = target.startswith(("ov-int8", "trt-", "coreml-"))
    assert any(type(s).__module__.startswith("linearsr_edge.backends") for s in sections) == writes_a_section
    for section in sections:
        assert from_data(type(section), json.loads(json.dumps(to_data(section)))) == section, type(section)


def test_the_coreml_plan_keeps_its_cond_len():
    """What crashed every Core ML expert call on a Mac: the plan read back from a manifest."""
    manifest = Manifest.from_data(V1["coreml-fp16"], "coreml")
    plan = manifest.family("coreml").components["expert_0"].shapes
    assert plan.mode == "enumerated" and plan.cond_len == 6 and plan.sets and plan.ranges == {}
    assert ShapePlan.from_dict(plan.to_dict()) == plan
    sizes = manifest.components["expert_0"].spec.sizes
    assert sizes.mode == "listed" and sizes.max_batch == 1 and sizes.sizes == ((16, 16), (32, 48), (128, 128))


def test_a_shape_plan_round_trips():
    plan = ShapePlan("enumerated", ({"latent": (1, 12, 8, 8), "cond": (1, 12, 8)},), cond_len=12, note="why")
    assert ShapePlan.from_dict(plan.to_dict()) == plan
    ranges = ShapePlan("range", ranges={"height": (8, 64)})
    assert ShapePlan.from_dict(ranges.to_dict()) == ranges


def test_schema_1_moves_each_familys_entries_into_its_section():
    trt = Manifest.from_data(V1["trt-int8"], "trt-int8").family("tensorrt")
    assert trt.int8_policy["activation_type"] == "int8" and trt.engines is None and trt.components
    ov = Manifest.from_data(V1["ov-int8"], "ov-int8").family("openvino")
    assert set(ov.int8_ignored_nodes) == {f"expert_{k}" for k in range(4)}
    assert ov.int8_weights.exact_without_vnni
    rows = Manifest.from_data(V1["onnx-fp32"], "onnx-fp32").verification.rows
    assert any(math.isinf(r.value) for r in rows)  # schema 1 wrote an infinite PSNR as null


def test_every_family_registers_its_section():
    for family in ("onnx", "openvino", "tensorrt", "coreml"):
        assert is_dataclass(section_type(family)), family


def test_a_misfit_is_named_by_its_path():
    data = copy.deepcopy(V1["coreml-fp16"])
    data["coreml"]["components"]["expert_0"]["shapes"]["cond_len"] = {}
    with pytest.raises(BundleError, match=r"families\.coreml\.components\.expert_0\.shapes\.cond_len"):
        Manifest.from_data(data, "m")
    data = copy.deepcopy(V1["onnx-fp32"])
    data["surprise"] = 1
    with pytest.raises(BundleError, match="Manifest has no field 'surprise'"):
        Manifest.from_data(data, "m")


def test_an_unknown_schema_is_refused_with_the_re_export_command():
    data = {**V1["onnx-fp32"], "schema_version": 7}
    with pytest.raises(BundleError, match="re-export the bundle with this version: linearsr-export --target onnx-fp32"):
        Manifest.from_data(data, "m")


def test_a_bundle_of_schema_1_loads_and_passes_its_golden_set():
    pytest.importorskip("onnxruntime", reason="needs onnxruntime: pip install 'linearsr-edge[onnx]'")
    from linearsr_edge.runtime import SRRuntime

    bundle = Bundle.load(DATA / "onnx-fp32")
    assert bundle.manifest.schema_version == 2 and bundle.target == "onnx-fp32"
    with SRRuntime.load(bundle) as rt:
        report = rt.verify()
    assert report.passed and report.rows[-1].metric == "psnr_db"
