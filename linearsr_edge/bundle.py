"""The artifact bundle: one self-describing folder per export, written atomically, verified on load.

```
bundle/
  manifest.json     schema version, package version, model config, bands, target, precision,
                    each component's files + sha256 + I/O spec, profile, tags, verification, calibration
  expert_0.onnx ... encoder.onnx, decoder.onnx
  cond/tags.npy     cached tag embeddings [V, D] (no text encoder runs on the device)
```

`BundleWriter` builds the bundle in a hidden sibling folder and renames it into place only when
complete, so an export killed part-way leaves no half-written bundle at the destination.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from linearsr_edge.config import ModelConfig
from linearsr_edge.errors import BundleError, ConfigError
from linearsr_edge.fileio import atomic_write_text, current_umask, disk_bytes
from linearsr_edge.specs import ComponentSpec, Profile
from linearsr_edge.tags import TagVocabulary

SCHEMA_VERSION = 1
MANIFEST = "manifest.json"
TAGS_FILE = "cond/tags.npy"
_TMP_PREFIX = ".linearsr-tmp-"


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class Bundle:
    """A verified bundle on disk."""

    path: Path
    manifest: dict[str, Any]

    @property
    def cfg(self) -> ModelConfig:
        return ModelConfig.from_dict(self.manifest["model"])

    @property
    def target(self) -> str:
        return self.manifest["target"]

    @property
    def format(self) -> str:
        return self.manifest["format"]

    @property
    def profile(self) -> Profile:
        return Profile.from_dict(self.manifest["profile"])

    @property
    def codec_factor(self) -> int:
        return int(self.manifest["codec"]["factor"])

    def component_names(self) -> list[str]:
        return list(self.manifest["components"])

    def spec(self, component: str) -> ComponentSpec:
        return ComponentSpec.from_dict(self._component(component)["spec"])

    def file(self, component: str) -> Path:
        return self.path / self._component(component)["file"]

    def component_bytes(self, component: str) -> int:
        """Bytes on disk of a component's files (its session's size, for residency budgets)."""
        entry = self._component(component)
        return sum(disk_bytes(self.path / f) for f in entry.get("files", [entry["file"]]))

    @property
    def verification(self) -> dict[str, Any]:
        """``{"verified": bool, "reason" | "backend": ...}``; bundles from before the field count as verified."""
        return self.manifest.get("verification") or {"verified": True}

    def _component(self, component: str) -> dict[str, Any]:
        comps = self.manifest["components"]
        if component not in comps:
            raise BundleError(f"{self.path}: no component {component!r}; has {', '.join(comps)}")
        return comps[component]

    def tags(self) -> TagVocabulary | None:
        info = self.manifest.get("tags")
        if not info:
            return None
        return TagVocabulary(tuple(info["names"]), np.load(self.path / TAGS_FILE, allow_pickle=False))

    @classmethod
    def load(cls, path: str | Path, expect_format: str | None = None) -> Bundle:
        """Read and verify: schema version, every listed file present with its sha256."""
        path = Path(path)
        if not path.is_dir():
            raise BundleError(f"bundle not found: {path} is not a folder")
        mpath = path / MANIFEST
        if not mpath.is_file():
            if (path / "config.json").is_file() and (path / "experts.safetensors").is_file():
                raise BundleError(
                    f"{path} is a model folder, not an exported bundle: pass it as --model (linearsr-upscale) or "
                    f"--checkpoint (linearsr-export), or export it first: linearsr-export --checkpoint {path} ..."
                )
            raise BundleError(f"{path} is not a bundle: {MANIFEST} is missing")
        try:
            manifest = json.loads(mpath.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BundleError(f"{mpath} is not valid JSON: {exc}") from None
        version = manifest.get("schema_version") if isinstance(manifest, dict) else None
        if version != SCHEMA_VERSION:
            raise BundleError(
                f"{mpath}: schema version {version!r} is not supported (this linearsr-edge reads {SCHEMA_VERSION}); "
                "re-export the bundle with this version"
            )
        for key in ("target", "format", "model", "codec", "components", "files", "profile"):
            if key not in manifest:
                raise BundleError(f"{mpath}: the manifest lacks {key!r}")
        for rel, digest in manifest["files"].items():
            fpath = path / rel
            if not fpath.is_file():
                raise BundleError(f"{path}: {rel} is missing")
            actual = sha256_file(fpath)
            if actual != digest:
                raise BundleError(f"{path}: {rel} does not match its sha256 in the manifest (tampered or corrupt)")
        if expect_format is not None and manifest["format"] != expect_format:
            raise BundleError(
                f"{path} holds {manifest['format']} artifacts ({manifest['target']}), not {expect_format}"
            )
        try:
            ModelConfig.from_dict(manifest["model"])
        except ConfigError as exc:
            raise BundleError(f"{mpath}: invalid model config: {exc}") from None
        return cls(path, manifest)


def check_destination(out: Path, overwrite: bool = False) -> Path:
    """Refuse, before any work, a destination a bundle cannot be written to: a file, or a non-empty folder
    without ``overwrite``. Returns the resolved path."""
    out = Path(out).resolve()
    if out.exists() and not out.is_dir():
        raise BundleError(f"{out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise BundleError(f"{out} is not empty; pass --overwrite to replace it, or choose another --out")
    return out


class BundleWriter:
    """Build a bundle in a temporary sibling folder; `commit` verifies and renames it into place."""

    def __init__(self, out: Path, overwrite: bool = False) -> None:
        self.out = check_destination(out, overwrite)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(self.out.parent)
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-", dir=self.out.parent))
        self.manifest: dict[str, Any] = {}

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def write_tags(self, tags: TagVocabulary) -> None:
        (self.tmp / "cond").mkdir(exist_ok=True)
        np.save(self.tmp / TAGS_FILE, tags.embeddings.astype(np.float32), allow_pickle=False)

    def commit(self) -> Bundle:
        """Hash every file, write the manifest, swap the folder into place, verify it."""
        files = sorted(p for p in self.tmp.rglob("*") if p.is_file() and p.name != MANIFEST)
        self.manifest["files"] = {p.relative_to(self.tmp).as_posix(): sha256_file(p) for p in files}
        self.manifest["schema_version"] = SCHEMA_VERSION
        atomic_write_text(self.tmp / MANIFEST, json.dumps(self.manifest, indent=2, sort_keys=False) + "\n")
        old = None
        if self.out.exists():
            old = self.out.with_name(f"{_TMP_PREFIX}{os.getpid()}-old-{self.out.name}")
            os.rename(self.out, old)
        os.chmod(self.tmp, 0o777 & ~current_umask())  # mkdtemp makes 0700; a bundle is as readable as any folder
        os.rename(self.tmp, self.out)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
        return Bundle.load(self.out)


def _remove_stale_temps(parent: Path) -> None:
    """Temporary folders of exports whose process is gone (killed part-way) are removed."""
    for p in parent.glob(f"{_TMP_PREFIX}*"):
        try:
            pid = int(p.name[len(_TMP_PREFIX) :].split("-", 1)[0])
        except ValueError:
            continue
        if pid != os.getpid() and not _pid_alive(pid):
            shutil.rmtree(p, ignore_errors=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
