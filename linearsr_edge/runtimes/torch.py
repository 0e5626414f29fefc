"""The PyTorch reference as a session: the same named arrays in and out as every other backend.

For a bundle, the modules come from the model the bundle was exported from (its manifest
records the source); the bundle's own artifacts are not used.
"""

from __future__ import annotations

import functools
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


@functools.lru_cache(maxsize=4)
def _load_source(kind: str, path: str | None):
    """The model a bundle was exported from, loaded once and shared by the bundle's components."""
    from linearsr_edge.demo import load_demo, load_model_folder

    if kind == "demo":
        return load_demo()
    if kind == "folder" and path:
        return load_model_folder(path)
    raise BundleError("the torch backend needs the source model, which the bundle's manifest does not name")


def _from_bundle(bundle: Bundle, component: str, options: SessionOptions) -> Session:
    from linearsr_edge.components import component_module

    source = bundle.manifest.get("source") or {}
    folder = _load_source(source.get("kind", ""), source.get("path"))
    if options.threads:
        torch.set_num_threads(options.threads)
    return TorchSession(component_module(folder, component), bundle.spec(component))


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
