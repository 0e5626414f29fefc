"""The model-folder format: what `linearsr-export --checkpoint` and `linearsr-upscale --model` read.

A model folder holds ``config.json`` (``{"model": ModelConfig, "codec": {...}, "tags": [...]}``),
``experts.safetensors`` (``experts.K.*`` keys) and, when the model takes tags,
``tags.safetensors`` (one ``embeddings`` tensor ``[V, cond_dim]``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from linearsr_edge.config import ModelConfig
from linearsr_edge.errors import CheckpointError, ConfigError
from linearsr_edge.fileio import atomic_write_text
from linearsr_edge.model.checkpoint import load_experts, read_state_dict
from linearsr_edge.model.codec import LatentCodec, codec_from_config
from linearsr_edge.model.experts import SNRExperts
from linearsr_edge.tags import TagVocabulary


@dataclass
class ModelFolder:
    path: Path
    cfg: ModelConfig
    experts: SNRExperts
    codec: LatentCodec
    tags: TagVocabulary | None
    meta: dict[str, Any]


def read_folder_config(folder: Path) -> dict[str, Any]:
    path = folder / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{folder} is not a LinearSR model folder: no config.json")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not valid JSON: {exc}") from None
    for key in ("model", "codec"):
        if key not in data:
            raise ConfigError(f"{path} lacks the {key!r} section")
    return data


def read_model_folder(folder: str | Path) -> ModelFolder:
    """Load config, experts, codec and tag vocabulary from a model folder. Strict. (`linearsr_edge.load_model_folder`
    gives the same with its PyTorch reference pipeline attached.)"""
    folder = Path(folder)
    data = read_folder_config(folder)
    cfg = ModelConfig.from_dict(data["model"])
    experts = load_experts(folder / "experts.safetensors", cfg)
    codec = codec_from_config(data["codec"], base_dir=folder)
    tags = None
    if data.get("tags"):
        table = read_state_dict(folder / "tags.safetensors")
        if "embeddings" not in table:
            raise CheckpointError(f"{folder / 'tags.safetensors'} lacks the 'embeddings' tensor")
        tags = TagVocabulary(tuple(data["tags"]), table["embeddings"].float().numpy().astype(np.float32))
        if tags.dim != cfg.cond_dim:
            raise ConfigError(f"tag embeddings are {tags.dim} wide, model cond_dim is {cfg.cond_dim}")
    return ModelFolder(folder, cfg, experts, codec, tags, data.get("training", {}))


def save_model_folder(
    folder: str | Path,
    experts: SNRExperts,
    codec: LatentCodec,
    tags: TagVocabulary | None = None,
    meta: dict[str, Any] | None = None,
) -> Path:
    """Write a model folder that `read_model_folder` reads back."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {f"experts.{k}": t.detach().contiguous() for k, t in experts.experts.state_dict().items()}
    save_file(tensors, str(folder / "experts.safetensors"))
    data: dict[str, Any] = {"model": experts.cfg.to_dict(), "codec": codec.to_config()}
    if tags is not None:
        save_file(
            {"embeddings": torch.from_numpy(np.ascontiguousarray(tags.embeddings, np.float32))},
            str(folder / "tags.safetensors"),
        )
        data["tags"] = list(tags.names)
    if meta:
        data["training"] = meta
    atomic_write_text(folder / "config.json", json.dumps(data, indent=2) + "\n")
    return folder
