"""The PyTorch reference as a session: the same named arrays in and out as every other backend.

For a bundle, the modules come from the model the bundle was exported from (its manifest
records the source); the bundle's own artifacts are not used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import torch

from linearsr_edge.errors import BundleError
from linearsr_edge.runtimes.base import BackendInfo, Session, SessionOptions, register_backend
from linearsr_edge.specs import ComponentSpec

if TYPE_CHECKING:
    from linearsr_edge.bundle import Bundle


class TorchSession(Session):
    backend = "torch"

    def __init__(self, module: torch.nn.Module, spec: ComponentSpec) -> None:
        super().__init__(spec)
        self.module = module.eval()

    @torch.inference_mode()
    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        out = self.module(*(torch.from_numpy(feeds[n]) for n in self.spec.input_names))
        outs = out if isinstance(out, (tuple, list)) else (out,)
        return {n: o.numpy() for n, o in zip(self.spec.output_names, outs, strict=True)}


_SOURCES: dict[str, object] = {}  # source key -> loaded ModelFolder, shared by a bundle's components


def _from_bundle(bundle: Bundle, component: str, options: SessionOptions) -> Session:
    from linearsr_edge.components import component_module
    from linearsr_edge.demo import load_demo, load_model_folder

    source = bundle.manifest.get("source", {})
    key = source.get("path") or source.get("kind", "")
    if key not in _SOURCES:
        if source.get("kind") == "demo":
            _SOURCES[key] = load_demo()
        elif source.get("kind") == "folder" and source.get("path"):
            _SOURCES[key] = load_model_folder(source["path"])
        else:
            raise BundleError(f"{bundle.path}: the torch backend needs the source model, which the manifest lacks")
    if options.threads:
        torch.set_num_threads(options.threads)
    return TorchSession(component_module(_SOURCES[key], component), bundle.spec(component))


register_backend(
    BackendInfo(
        name="torch",
        formats=("onnx", "openvino", "coreml", "tensorrt"),
        requires=("torch",),
        extra="dev",
        priority=0,
        factory=_from_bundle,
    )
)
