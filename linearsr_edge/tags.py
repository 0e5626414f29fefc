"""Tag ("TAG") conditioning: a vocabulary of tag embeddings, so no text encoder runs on the device."""

from __future__ import annotations

import difflib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from linearsr_edge.errors import ConfigError

NULL_TAG = "<null>"


@dataclass(frozen=True)
class TagVocabulary:
    """Tag names and their embeddings ``[V, D]``; the null tag stands in when no tag is given."""

    names: tuple[str, ...]
    embeddings: np.ndarray

    def __post_init__(self) -> None:
        if self.embeddings.ndim != 2 or self.embeddings.shape[0] != len(self.names):
            raise ConfigError(
                f"tag embeddings must be [V, D] with V = {len(self.names)} names, got {self.embeddings.shape}"
            )
        if NULL_TAG not in self.names:
            raise ConfigError(f"a tag vocabulary must contain the null tag {NULL_TAG!r}")
        if len(set(self.names)) != len(self.names):
            raise ConfigError("tag names must be unique")

    @property
    def dim(self) -> int:
        return int(self.embeddings.shape[1])

    def indices(self, tags: Sequence[str] = ()) -> list[int]:
        """Rows of the given tags followed by the null tag, which is always present (as in training)."""
        tags = [t.strip() for t in tags if t.strip() and t.strip() != NULL_TAG]
        index = {name: i for i, name in enumerate(self.names)}
        rows = []
        for tag in tags:
            if tag not in index:
                near = difflib.get_close_matches(tag, self.names, n=1)
                hint = f"; did you mean {near[0]!r}?" if near else ""
                known = ", ".join(n for n in self.names if n != NULL_TAG)
                raise ConfigError(f"unknown tag {tag!r}{hint} Known tags: {known}")
            rows.append(index[tag])
        return [*rows, index[NULL_TAG]]

    def encode(self, tags: Sequence[str] = ()) -> np.ndarray:
        """Tags -> cond ``[L, D]`` float32: the tags' embeddings, then the null tag's (L = tags + 1)."""
        return self.embeddings[self.indices(tags)].astype(np.float32)
