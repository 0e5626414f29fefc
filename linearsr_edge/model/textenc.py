"""Encode tags once, at export time, with the checkpoint's own text encoder (a local transformers
folder); the bundle caches the embeddings so no text encoder runs on the device.

Each tag becomes one ``[D]`` vector: the encoder's last hidden state, mean-pooled over the tag's
tokens (attention mask). The null tag is the encoding of the empty string.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from linearsr_edge.errors import BackendUnavailableError, CheckpointError, ConfigError
from linearsr_edge.tags import NULL_TAG, TagVocabulary


def encode_tags(folder: str | Path, tags: Sequence[str], dim: int) -> TagVocabulary:
    """Tags -> `TagVocabulary` of ``[len(tags) + 1, dim]`` (the tags, then the null tag)."""
    try:
        import torch
        from transformers import AutoModel, AutoTokenizer
    except ImportError:
        raise BackendUnavailableError("--text-encoder needs transformers: pip install transformers") from None
    folder = Path(folder)
    if not (folder / "config.json").is_file():
        raise CheckpointError(f"{folder} is not a transformers model folder (no config.json)")
    if not tags:
        raise ConfigError("--text-encoder needs the --tags to encode")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = AutoModel.from_pretrained(str(folder), local_files_only=True).eval()
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"cannot load the text encoder from {folder}: {exc}") from None
    texts = [*tags, ""]
    rows = []
    with torch.inference_mode():
        for text in texts:
            batch = tokenizer([text], return_tensors="pt")
            hidden = model(**batch).last_hidden_state  # [1, T, H]
            mask = batch["attention_mask"][..., None].to(hidden.dtype)  # [1, T, 1]
            rows.append(((hidden * mask).sum(1) / mask.sum(1).clamp_min(1)).squeeze(0).float().numpy())
    table = np.stack(rows).astype(np.float32)
    if table.shape[1] != dim:
        raise ConfigError(f"the text encoder gives {table.shape[1]}-wide embeddings; the model's cond_dim is {dim}")
    return TagVocabulary((*tags, NULL_TAG), table)
