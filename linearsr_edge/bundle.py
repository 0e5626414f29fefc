"""The artifact bundle: one self-describing folder per export, written atomically, verified on load.

```
bundle/
  manifest.json     the typed `Manifest`: schema version, package version, model config, bands, target,
                    precision, each component's files + I/O spec, file digests, profile, tags, golden
                    set, calibration, verification, and each family's own section
  expert_0.onnx ... encoder.onnx, decoder.onnx
  cond/tags.npy     cached tag embeddings [V, D] (no text encoder runs on the device)
  golden.npz        the golden set (`linearsr_edge.quality.golden`)
```

`BundleWriter` builds the bundle in a hidden sibling folder and renames it into place only when
complete, so an export killed part-way leaves no half-written bundle at the destination; every
manifest write goes through it, the engine build's too (`BundleWriter.amend`).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from linearsr_edge.config import ModelConfig
from linearsr_edge.errors import BundleError
from linearsr_edge.fileio import atomic_write_bytes, atomic_write_text, current_umask, disk_bytes
from linearsr_edge.manifest import GOLDEN_FILE, TAGS_FILE, ComponentEntry, Manifest, VerificationRecord
from linearsr_edge.precision import Precision
from linearsr_edge.specs import ComponentSpec, Profile
from linearsr_edge.tags import TagVocabulary

MANIFEST = "manifest.json"
_TMP_PREFIX = ".linearsr-tmp-"
__all__ = ["GOLDEN_FILE", "MANIFEST", "TAGS_FILE", "Bundle", "BundleWriter", "Manifest", "check_destination"]


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass
class Bundle:
    """A bundle on disk whose files matched their digests when it was loaded."""

    path: Path
    manifest: Manifest

    @property
    def cfg(self) -> ModelConfig:
        return self.manifest.cfg

    @property
    def target(self) -> str:
        return self.manifest.target

    @property
    def format(self) -> str:
        return self.manifest.format

    @property
    def precision(self) -> Precision:
        return self.manifest.precision

    @property
    def profile(self) -> Profile:
        return self.manifest.profile

    @property
    def codec_factor(self) -> int:
        return self.manifest.codec_factor

    @property
    def verification(self) -> VerificationRecord:
        return self.manifest.verification

    def component_names(self) -> list[str]:
        return list(self.manifest.components)

    def spec(self, component: str) -> ComponentSpec:
        return self._component(component).spec

    def file(self, component: str) -> Path:
        return self.path / self._component(component).file

    def component_bytes(self, component: str) -> int:
        """Bytes on disk of a component's files (its session's size, for residency budgets)."""
        files = [self.path / f for f in self._component(component).files]
        missing = [f for f in files if not f.exists()]
        if missing:
            raise BundleError(f"{component}'s file {missing[0]} is missing from the bundle")
        return sum(disk_bytes(f) for f in files)

    def _component(self, component: str) -> ComponentEntry:
        comps = self.manifest.components
        if component not in comps:
            raise BundleError(f"{self.path}: no component {component!r}; has {', '.join(comps)}")
        return comps[component]

    def tags(self) -> TagVocabulary | None:
        info = self.manifest.tags
        if info is None:
            return None
        return TagVocabulary(tuple(info.names), np.load(self.path / info.file, allow_pickle=False))

    @classmethod
    def load(cls, path: str | Path, expect_format: str | None = None) -> Bundle:
        """Read and verify: the schema and every field's type, every listed file present with its sha256."""
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
            data = json.loads(mpath.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise BundleError(f"{mpath} is not valid JSON: {exc}") from None
        manifest = Manifest.from_data(data, str(mpath))
        for rel, digest in manifest.files.items():
            fpath = path / rel
            if not fpath.is_file():
                raise BundleError(f"{path}: {rel} is missing")
            if sha256_file(fpath) != digest:
                raise BundleError(f"{path}: {rel} does not match its sha256 in the manifest (tampered or corrupt)")
        if expect_format is not None and manifest.format != expect_format:
            raise BundleError(f"{path} holds {manifest.format} artifacts ({manifest.target}), not {expect_format}")
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
    """Build a bundle in a temporary sibling folder; `commit` hashes its files, writes the manifest and renames
    it into place. `amend` starts from an existing bundle (its files hard-linked, not copied): the only way a
    bundle changes after export (TensorRT engines built on the device)."""

    def __init__(self, out: Path, overwrite: bool = False) -> None:
        self.out = check_destination(out, overwrite)
        self.out.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temps(self.out.parent)
        self.tmp = Path(tempfile.mkdtemp(prefix=f"{_TMP_PREFIX}{os.getpid()}-", dir=self.out.parent))

    @classmethod
    def amend(cls, bundle: Bundle) -> BundleWriter:
        """A writer holding ``bundle``'s files (hard links where the file system allows, else copies); its
        ``commit`` replaces the bundle atomically."""
        writer = cls(bundle.path, overwrite=True)
        for rel in bundle.manifest.files:
            src, dst = bundle.path / rel, writer.tmp / rel
            dst.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(src, dst)
            except OSError:
                shutil.copy2(src, dst)
        return writer

    def __enter__(self) -> BundleWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    def staged(self, manifest: Manifest) -> Bundle:
        """The bundle being written, for checks before the commit (its digests are not recorded yet)."""
        return Bundle(self.tmp, replace(manifest, files={}))

    def write_tags(self, tags: TagVocabulary) -> None:
        (self.tmp / "cond").mkdir(exist_ok=True)
        np.save(self.tmp / TAGS_FILE, tags.embeddings.astype(np.float32), allow_pickle=False)

    def write_bytes(self, rel: str, data: bytes) -> Path:
        """A file of the bundle (``rel`` from its root), written atomically; returns its path."""
        path = self.tmp / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            path.unlink()  # a hard link shared with the old bundle: write a new file, never into the old one
        atomic_write_bytes(path, data)
        return path

    def commit(self, manifest: Manifest) -> Bundle:
        """Hash every file, write ``manifest`` with the digests, swap the folder into place, load it back."""
        files = sorted(p for p in self.tmp.rglob("*") if p.is_file() and p.name != MANIFEST)
        digests = {p.relative_to(self.tmp).as_posix(): sha256_file(p) for p in files}
        manifest = replace(manifest, files=digests)
        atomic_write_text(self.tmp / MANIFEST, json.dumps(manifest.to_data(), indent=2) + "\n")
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
