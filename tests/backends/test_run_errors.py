"""A backend that fails while running: `BackendRunError` naming the component, the backend and the input
shapes, the vendor's exception chained, and one line from the CLI.

The failure is real: the bundle's ``expert_0`` is replaced by a graph with the same inputs and outputs that
loads and compiles but cannot run (a Reshape to ``[batch, 7, -1, 5]``, which no latent of the profile fills),
run by ONNX Runtime and OpenVINO here, and by the Core ML family's session over ONNX Runtime in
``tests/backends/coreml/test_session_on_onnx_runtime.py``.
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest

from linearsr_edge.errors import BackendRunError
from linearsr_edge.runtime import SRRuntime
from tests.helpers import rehash, write_photo

onnx = pytest.importorskip("onnx")


def failing_graph(model_path, out_path) -> None:
    """``model_path``'s inputs and outputs around one Reshape that fails at run time."""
    from onnx import helper, numpy_helper

    model = onnx.load(str(model_path))
    shape = numpy_helper.from_array(np.array([0, 7, -1, 5], np.int64), "bad_shape")
    node = helper.make_node("Reshape", ["latent", "bad_shape"], [model.graph.output[0].name])
    graph = helper.make_graph([node], "fails_at_run", model.graph.input, model.graph.output, [shape])
    onnx.save(helper.make_model(graph, opset_imports=model.opset_import), str(out_path))


def broken_copy(bundle, tmp_path, name: str):
    folder = tmp_path / name
    shutil.copytree(bundle.path, folder)
    return folder


def _expect(info: pytest.ExceptionInfo, backend: str, cause_type: type) -> None:
    message = str(info.value)
    assert message.startswith(f"{backend} failed to run expert_0 on latent [1, ")
    assert "lr_latent [1, " in message and "cond [1, " in message and "\n" not in message
    assert info.value.component == "expert_0" and info.value.backend == backend
    assert isinstance(info.value.__cause__, cause_type)


def test_onnx_runtime_run_failure_is_a_backend_run_error(tiny_bundles, tmp_path):
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidArgument, RuntimeException

    folder = broken_copy(tiny_bundles("onnx-fp32").bundle, tmp_path, "broken-onnx")
    failing_graph(folder / "expert_0.onnx", folder / "expert_0.onnx")
    rehash(folder, "expert_0.onnx")
    with SRRuntime.load(folder, backend="onnxruntime") as rt, pytest.raises(BackendRunError) as info:
        rt.upscale(np.zeros((16, 24, 3), np.uint8))
    _expect(info, "onnxruntime", (RuntimeError, Fail, InvalidArgument, RuntimeException))  # IO binding: RuntimeError


def test_openvino_run_failure_is_a_backend_run_error(tiny_bundles, tmp_path):
    ov = pytest.importorskip("openvino")

    folder = broken_copy(tiny_bundles("ov-fp32").bundle, tmp_path, "broken-ov")
    failing_graph(tiny_bundles("onnx-fp32").bundle.file("expert_0"), tmp_path / "failing.onnx")
    ov.save_model(ov.convert_model(str(tmp_path / "failing.onnx")), str(folder / "expert_0.xml"))
    rehash(folder, "expert_0.xml", "expert_0.bin")
    with SRRuntime.load(folder, backend="openvino") as rt, pytest.raises(BackendRunError) as info:
        rt.upscale(np.zeros((16, 24, 3), np.uint8))
    _expect(info, "openvino", RuntimeError)


def test_the_cli_prints_one_line(tiny_bundles, tmp_path, capsys):
    from linearsr_edge.cli.upscale import main

    folder = broken_copy(tiny_bundles("onnx-fp32").bundle, tmp_path, "broken-cli")
    failing_graph(folder / "expert_0.onnx", folder / "expert_0.onnx")
    rehash(folder, "expert_0.onnx")
    photo = write_photo(tmp_path / "in.png", 16, 24)
    code = main([str(photo), "--bundle", str(folder), "-o", str(tmp_path / "out.png"), "-q"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code != 0 and not (tmp_path / "out.png").exists()
    assert len(err) == 1 and err[0].startswith("linearsr-upscale: error: onnxruntime failed to run expert_0 on latent")
