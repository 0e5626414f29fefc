"""The ExecuTorch family: ``et-fp32`` and ``et-int8`` exported, run and verified here on XNNPACK.

`tests/backends/test_contract.py` covers both targets like every other (export, every component and the whole
pipeline against the PyTorch reference, the golden set); these tests cover what is ExecuTorch's own: the GELU
it runs as written, the batch it takes row by row, what INT8 quantizes, the manifest section and the artifacts'
metadata, a run that fails, the thread pool.
"""

from __future__ import annotations

import json
import shutil
import warnings

import numpy as np
import pytest

pytest.importorskip("executorch")
torch = pytest.importorskip("torch")

from linearsr_edge.backends.executorch.export import WEIGHTED_OPS, _op  # noqa: E402
from linearsr_edge.backends.executorch.plan import ExecuTorchSection  # noqa: E402
from linearsr_edge.errors import BackendRunError  # noqa: E402
from linearsr_edge.manifest import Manifest  # noqa: E402
from linearsr_edge.runtime import SRRuntime  # noqa: E402
from linearsr_edge.serial import from_data, to_data  # noqa: E402
from tests.helpers import rehash  # noqa: E402


def _reference(tiny_bundles):
    from linearsr_edge.reference import load_model_folder

    return load_model_folder(tiny_bundles.root / "model").reference()


def test_et_fp32_runs_each_component_as_pytorch_does(tiny_bundles):
    """Ten times inside the FP32 tolerance (1e-4): with XNNPACK's own GELU the experts were 2.6e-4 off."""
    bundle = tiny_bundles("et-fp32").bundle
    reference = _reference(tiny_bundles)
    with SRRuntime.load(bundle.path, backend="executorch") as runtime:
        for component in bundle.component_names():
            spec = bundle.spec(component)
            for which in ("min", "opt", "max"):
                feeds = spec.dummy_inputs(which, batch=1, seed=5)
                got, want = runtime.run_component(component, feeds), reference.run_component(component, feeds)
                for name in spec.output_names:
                    assert np.abs(got[name] - want[name]).max() <= 1e-5, (component, which)


def test_xnnpack_gelu_ignores_the_tanh_approximation_so_export_decomposes_it():
    """Why `lower` decomposes GELU: XNNPACK's GELU node computes the erf GELU even for ``approximate="tanh"``
    (the tag projection's). If ExecuTorch fixes this, the first assertion fails and the decomposition can go."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower
    from executorch.runtime import Runtime

    from linearsr_edge.backends.executorch.export import lower

    class Gelu(torch.nn.Module):
        def forward(self, x):
            return torch.nn.functional.gelu(x, approximate="tanh")

    x = torch.linspace(-6, 6, 4096).reshape(16, 256)
    tanh, exact = torch.nn.functional.gelu(x, approximate="tanh"), torch.nn.functional.gelu(x)
    program = torch.export.export(Gelu(), (x,))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()]).to_executorch().buffer
    ours, record = lower(program, spec=None)
    assert record.delegates == 1 and record.delegated_ops > 5 and "gelu" not in record.portable_ops  # all in XNNPACK
    outputs = {}
    for name, buffer in (("plain", plain), ("ours", ours)):
        outputs[name] = Runtime.get().load_program(buffer).load_method("forward").execute([x])[0]
    assert (outputs["plain"] - tanh).abs().max() > 1e-4 and (outputs["plain"] - exact).abs().max() < 1e-5
    assert (outputs["ours"] - tanh).abs().max() < 1e-5


def test_a_batch_runs_row_by_row_with_the_same_result(tiny_bundles):
    bundle = tiny_bundles("et-fp32").bundle
    spec = bundle.spec("expert_2")
    assert spec.sizes.mode == "range" and spec.sizes.max_batch == 1  # the manifest's size policy
    feeds = spec.dummy_inputs("opt", batch=3, seed=9)
    with SRRuntime.load(bundle.path, backend="executorch") as runtime:
        assert runtime.sizes.max_batch == 1
        whole = runtime.run_component("expert_2", feeds)["velocity"]
        rows = [runtime.run_component("expert_2", {k: v[i : i + 1] for k, v in feeds.items()}) for i in range(3)]
    np.testing.assert_array_equal(whole, np.concatenate([r["velocity"] for r in rows]))


LAYOUT_OPS = {"cat", "view", "reshape", "permute", "transpose", "flatten", "unflatten", "to", "_to_copy"}
LAYOUT_OPS |= {"quantize_per_tensor", "_assert_tensor_metadata"}  # a cat re-quantizes; a check reads nothing


def _readers(node) -> set[str]:
    """The ops that read ``node``'s value, looking through layout ops (and the re-quantization of a ``cat``)."""
    found = set()
    for user in node.users:
        op = _op(user.target) if user.op == "call_function" else user.op
        found |= _readers(user) if op in LAYOUT_OPS or op.startswith("dequantize") else {op}
    return found


def _sources(node) -> set[str]:
    """The ops whose values reach ``node``, looking back through layout ops, re-quantization and a fused relu."""
    if isinstance(node, (list, tuple)):
        return set().union(*(_sources(n) for n in node))
    if node.op != "call_function":
        return {node.op}  # a graph input
    op = _op(node.target)
    if op in LAYOUT_OPS | {"relu"} or op.startswith("dequantize"):
        return _sources(node.args[0])
    return {op}


def test_et_int8_quantizes_only_the_weighted_products(tiny_bundles):
    """PT2E on one tiny expert: INT8 weights on the linears and convs only, activations quantized only where
    they enter or leave one (as XNNPACK runs a quantized linear: INT8 in, INT8 out); the linear attention's
    products, the modulation, the gates and the norms compute in FP32. The manifest counts both."""
    from linearsr_edge.backends.executorch.export import EtInt8Exporter, export_program
    from linearsr_edge.build import component_module
    from linearsr_edge.reference import load_model_folder

    spec = tiny_bundles("et-int8").bundle.spec("expert_1")  # first: it writes the model folder
    folder = load_model_folder(tiny_bundles.root / "model")
    rows = [spec.dummy_inputs("opt", batch=1, seed=s) for s in range(3)]
    program = export_program(component_module(folder, "expert_1"), spec)
    converted, quantized, kept = EtInt8Exporter().quantize(program, spec, rows)
    nodes = [n for n in converted.graph.nodes if n.op == "call_function"]
    for q in (n for n in nodes if "quantize_per_tensor" in str(n.target) and "dequantize" not in str(n.target)):
        sources, read_by = _sources(q.args[0]), {op for dq in q.users for op in _readers(dq)}
        # every quantization point is a weighted product's input or output: none inside the islands or products
        assert sources <= set(WEIGHTED_OPS) or read_by <= set(WEIGHTED_OPS), (q.name, sources, read_by)
    per_channel = [n for n in nodes if "dequantize_per_channel" in str(n.target)]
    assert {_op(u.target) for n in per_channel for u in n.users} == set(WEIGHTED_OPS)
    assert len(per_channel) == quantized
    record = tiny_bundles("et-int8").bundle.manifest.family("executorch").components["expert_1"]
    assert record.quantized == quantized > 0 and record.kept_fp32 == kept > 0
    assert tiny_bundles("et-int8").bundle.manifest.family("executorch").components["encoder"].quantized == 0


def test_the_manifest_section_and_the_artifacts_metadata(tiny_bundles):
    bundle = tiny_bundles("et-int8").bundle
    section = bundle.manifest.family("executorch")
    assert isinstance(section, ExecuTorchSection) and section.rows_per_call == 1 and section.delegate == "xnnpack"
    assert set(section.components) == set(bundle.component_names())
    assert all(r.delegates >= 1 and r.delegated_ops > 0 for r in section.components.values())
    assert from_data(ExecuTorchSection, json.loads(json.dumps(to_data(section)))) == section
    data = json.loads((bundle.path / "manifest.json").read_text())
    assert Manifest.from_data(json.loads(json.dumps(Manifest.from_data(data).to_data()))) == bundle.manifest
    meta = json.loads((bundle.path / "expert_3.pte.json").read_text())
    assert meta["linearsr.component"] == "expert_3" and meta["linearsr.target"] == "et-int8"
    assert "linearsr.band" in meta and "linearsr.band" not in json.loads((bundle.path / "decoder.pte.json").read_text())
    assert "expert_3.pte.json" in bundle.manifest.files  # hashed like every file of the bundle


def test_the_planned_memory_is_read_back_from_the_program_and_counted(tiny_bundles):
    """ExecuTorch reserves each program's planned activations when it loads: the manifest records them (read
    independently here from the ``.pte`` itself) and residency and tile budgets count them."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    bundle = tiny_bundles("et-fp32").bundle
    section = bundle.manifest.family("executorch")
    with SRRuntime.load(bundle.path, backend="executorch") as runtime:
        counted = runtime.components.component_bytes()
    for name in bundle.component_names():
        parsed = deserialize_pte_binary(bundle.file(name).read_bytes())
        program = getattr(parsed, "program", parsed)
        planned = sum(program.execution_plan[0].non_const_buffer_sizes)
        assert section.components[name].planned_bytes == planned > 0, name
        assert counted[name] == bundle.component_bytes(name) + planned


def test_a_program_that_fails_while_running_is_a_backend_run_error(tiny_bundles, tmp_path):
    """A real failure: ``expert_0.pte`` replaced by a program with the same inputs whose latent may be at most
    8x8, given a 16x24 latent (a 16x24 frame, upscaled 2x, codec factor 2): ExecuTorch refuses to resize its
    input at run time."""
    from torch.export import Dim

    from linearsr_edge.backends.executorch.export import lower

    class Small(torch.nn.Module):
        def forward(self, latent, lr_latent, sigma, cond):
            return latent * 2 + lr_latent

    folder = tmp_path / "broken-et"
    shutil.copytree(tiny_bundles("et-fp32").bundle.path, folder)
    spec = tiny_bundles("et-fp32").bundle.spec("expert_0")
    feeds = spec.dummy_inputs("min", batch=1, seed=0)
    feeds["cond"] = np.zeros((1, 2, feeds["cond"].shape[2]), np.float32)  # a length-1 example would fix the axis
    side = {2: Dim("h", min=2, max=8), 3: Dim("w", min=2, max=8)}
    program = torch.export.export(
        Small(),
        tuple(torch.from_numpy(feeds[n]) for n in spec.input_names),
        dynamic_shapes={"latent": side, "lr_latent": side, "sigma": None, "cond": {1: Dim("l", min=1, max=8)}},
    )
    (folder / "expert_0.pte").write_bytes(lower(program, spec)[0])
    rehash(folder, "expert_0.pte")
    with SRRuntime.load(folder, backend="executorch", verify="never") as rt, pytest.raises(BackendRunError) as info:
        rt.upscale(np.zeros((16, 24, 3), np.uint8))
    message = str(info.value)
    assert message.startswith("executorch failed to run expert_0 on latent [1, 12, 16, 24], ") and "\n" not in message
    assert isinstance(info.value.__cause__, RuntimeError)


def test_threads_resize_the_process_pool(tiny_bundles):
    from linearsr_edge.backends.executorch.options import EtOptions
    from linearsr_edge.backends.executorch.session import thread_count

    before = thread_count()
    try:
        with SRRuntime.load(tiny_bundles("et-fp32").bundle.path, backend="executorch", options=EtOptions(threads=1)):
            assert thread_count() == 1
    finally:
        from linearsr_edge.backends.executorch.session import set_threads

        set_threads(before)
    assert thread_count() == before


def test_executorch_still_lowers_a_dynamic_batch_wrongly():
    """Why the programs take one row per call (`plan.ROWS_PER_CALL`): the adaLN modulation of one block, traced at
    batch 2 with a dynamic batch axis, cannot be written as a program, and with its views kept as copies it
    fails at batch 1 (its shapes were specialised to the example). If this starts failing after an ExecuTorch
    upgrade, export a dynamic batch instead."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import ExecutorchBackendConfig, to_edge_transform_and_lower
    from executorch.runtime import Runtime
    from torch.export import Dim

    class Modulated(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.table = torch.nn.Parameter(torch.randn(6, 32))
            self.norm = torch.nn.LayerNorm(32, elementwise_affine=False)

        def forward(self, x, mod):
            shift, scale, *_ = (self.table[None] + mod.unflatten(1, (6, -1))).chunk(6, dim=1)
            return self.norm(x) * (1 + scale) + shift

    batch = Dim("batch", min=1, max=4)
    program = torch.export.export(
        Modulated(), (torch.randn(2, 64, 32), torch.randn(2, 192)), dynamic_shapes={"x": {0: batch}, "mod": {0: batch}}
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
        with pytest.raises(Exception, match="_ViewSpec is incompatible"):  # the default config: no program
            edge.to_executorch()
        edge = to_edge_transform_and_lower(program, partitioner=[XnnpackPartitioner()])
        buffer = edge.to_executorch(ExecutorchBackendConfig(remove_view_copy=False)).buffer
    method = Runtime.get().load_program(buffer).load_method("forward")
    method.execute([torch.randn(2, 64, 32), torch.randn(2, 192)])  # the example's batch runs
    with pytest.raises(RuntimeError):  # views kept as copies: a program, specialised to batch 2
        method.execute([torch.randn(1, 64, 32), torch.randn(1, 192)])
