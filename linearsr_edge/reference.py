"""The PyTorch reference: the single source of truth that exports trace and every check compares against.

It is not a runtime backend (a bundle never runs on it, ``auto`` never picks it); it is used by
name where a reference is meant: export verification, quality gates, calibration, tests, and
``linearsr-upscale`` without ``--bundle``. `reference_runtime` is the same `SRRuntime` (one host
loop) over PyTorch modules instead of bundle sessions.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import torch
from torch import nn

from linearsr_edge.errors import ConfigError
from linearsr_edge.model.codec import LatentCodec
from linearsr_edge.model.components import component_module_of
from linearsr_edge.model.experts import SNRExperts
from linearsr_edge.model.folder import ModelFolder, read_model_folder
from linearsr_edge.pipeline.runtime import SRRuntime
from linearsr_edge.pipeline.session import Components, Session
from linearsr_edge.specs import ComponentSpec, Profile, component_specs
from linearsr_edge.tags import TagVocabulary

# The reference takes any size a model can: its specs only bound what no input reaches.
UNBOUNDED = Profile(
    min_hw=(1, 1), opt_hw=(256, 256), max_hw=(1 << 16, 1 << 16), batch=(1, 1, 1 << 12), cond_len=(1, 2, 1 << 12)
)


@torch.inference_mode()
def call_module(module: nn.Module, spec: ComponentSpec, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run ``module`` on named NumPy feeds in the spec's input order; named FP32 NumPy outputs."""
    out = module(*(torch.from_numpy(np.ascontiguousarray(feeds[n])) for n in spec.input_names))
    outs = out if isinstance(out, (tuple, list)) else (out,)
    return {n: o.float().numpy() for n, o in zip(spec.output_names, outs, strict=True)}


class HalfPrecision(nn.Module):
    """A component in FP16 behind FP32 I/O: the model's own precision policy still runs its linear-attention
    reductions and division, the RMS norm and the timestep embedding in FP32 (evidence for FP16 targets
    that cannot run here, such as Core ML off macOS)."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module.half()

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        return self.module(*(a.half() for a in args)).float()


class ReferenceSession(Session):
    """A PyTorch module behind the `Session` interface (validated like every backend's session)."""

    backend = "reference"

    def __init__(self, module: nn.Module, spec: ComponentSpec) -> None:
        super().__init__(spec)
        self.module = module.eval()

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return call_module(self.module, self.spec, feeds)


class ReferenceComponents(Components):
    """A model's PyTorch modules as the components a runtime runs (the reference; not a backend of bundles)."""

    def __init__(
        self, experts: SNRExperts, codec: LatentCodec, tags: TagVocabulary | None, profile: Profile, half: bool
    ) -> None:
        if codec.latent_channels != experts.cfg.latent_channels:
            raise ConfigError(
                f"codec gives {codec.latent_channels} latent channels, model expects {experts.cfg.latent_channels}"
            )
        specs = {s.name: s for s in component_specs(experts.cfg, profile, codec.factor)}
        super().__init__(experts.cfg, codec.factor, specs, tags)
        if half:
            experts, codec = copy.deepcopy(experts), copy.deepcopy(codec)
        self.experts, self.codec, self.half = experts, codec, half
        self.name = "reference-fp16" if half else "reference"

    def open(self, component: str) -> Session:
        module = component_module_of(self.experts, self.codec, component)
        return ReferenceSession(HalfPrecision(module) if self.half else module, self.specs[component])


def reference_runtime(
    experts: SNRExperts,
    codec: LatentCodec,
    tags: TagVocabulary | None = None,
    profile: Profile = UNBOUNDED,
    half: bool = False,
) -> SRRuntime:
    """The reference pipeline: FP32 PyTorch experts and codec in the shared host loop (``half``: copies of
    them in FP16 behind FP32 I/O, see `HalfPrecision`)."""
    return SRRuntime(ReferenceComponents(experts, codec, tags, profile, half))


@dataclass
class ReferenceModel(ModelFolder):
    """A loaded model folder with its PyTorch reference pipeline: ``load_model_folder(path).reference()``."""

    def reference(self) -> SRRuntime:
        """The PyTorch reference pipeline: an `SRRuntime` over this folder's modules."""
        return reference_runtime(self.experts, self.codec, self.tags)


def load_model_folder(folder: str | Path) -> ReferenceModel:
    """Load a model folder (`linearsr_edge.model.folder.read_model_folder`) with its reference attached."""
    loaded = read_model_folder(folder)
    return ReferenceModel(**{f.name: getattr(loaded, f.name) for f in fields(ModelFolder)})
