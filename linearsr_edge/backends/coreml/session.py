"""The ``coreml`` backend (macOS only) for ``coreml`` bundles: one ``.mlpackage`` per component.

* **Compiled once.** Loading an ``.mlpackage`` compiles it to ``.mlmodelc`` (seconds for an
  expert). Each component is compiled once into the cache root's ``coreml`` folder (or the option's),
  keyed by the package's sha256 digests from the manifest and the compiler's version, and every later
  load opens the compiled model (`cache_key`). The compile writes to a temporary sibling that is renamed
  into place.
* **Compute units** are an option: ``ALL`` (default), ``CPU_AND_NE``, ``CPU_AND_GPU``, ``CPU_ONLY``.
* **Shapes.** A model exported with enumerated shapes takes exactly those (batch 1): the runtime pads
  frames to the listed sizes and splits batches into rows from the size policy; the session tiles the
  tags to the model's fixed length (`fit_cond`) and refuses any other shape with the list.

Every call that needs macOS goes through `linearsr_edge.backends.coreml.adapter`. On any other OS the
backend is registered but unavailable: loading a Core ML bundle raises `BackendUnavailableError` saying
that Core ML runs on macOS.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from linearsr_edge.backends.coreml.adapter import CoreML
from linearsr_edge.backends.coreml.options import CoreMLRuntimeOptions
from linearsr_edge.backends.coreml.plan import ShapePlan, plan_rows
from linearsr_edge.errors import BundleError
from linearsr_edge.pipeline.session import Backend, Feeds, Session
from linearsr_edge.specs import ComponentSpec

if TYPE_CHECKING:
    from linearsr_edge.bundle import Bundle


def cache_key(package_files: dict[str, str], tool_version: str) -> str:
    """A digest of the package's files (relative path -> sha256, from the manifest) and the coremltools
    version: the compiled model is reused only for exactly this package and compiler."""
    h = hashlib.sha256(tool_version.encode())
    for rel, digest in sorted(package_files.items()):
        h.update(f"\n{rel}\0{digest}".encode())
    return h.hexdigest()


def package_files(bundle: Bundle, package: str) -> dict[str, str]:
    """Relative path -> sha256 of every file inside ``package`` (a folder of the bundle): the manifest's
    digests (checked when the bundle loaded), or, in a bundle still being written (its gates run before
    the digests are recorded), digests of the files themselves."""
    from linearsr_edge.bundle import sha256_file

    prefix = package.rstrip("/") + "/"
    files = {rel: d for rel, d in bundle.manifest.files.items() if rel.startswith(prefix)}
    if files:
        return files
    root = bundle.path / package
    files = {p.relative_to(bundle.path).as_posix(): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}
    if not files:
        raise BundleError(f"Core ML package {root} holds no files")
    return files


def compiled_model(coreml: CoreML, package: Path, key: str, cache_dir: Path) -> Path:
    """The cached ``.mlmodelc`` of ``package``, compiling it first when missing."""
    target = cache_dir / f"{package.stem}-{key[:20]}.mlmodelc"
    if target.is_dir():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=cache_dir))
    try:
        built = coreml.compile(package, tmp / target.name)
        try:
            os.replace(built, target)
        except OSError:
            if not target.is_dir():  # another process may have won the race: its copy is as good
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def plan_of(bundle: Bundle, component: str) -> ShapePlan:
    """The shape plan a component was converted with (the manifest's ``families.coreml``)."""
    section = bundle.manifest.family("coreml")
    report = None if section is None else section.components.get(component)
    if report is None:
        raise BundleError(f"{bundle.path}: the manifest has no Core ML report for {component}")
    return report.shapes


class CoreMLSession(Session):
    backend = "coreml"

    def __init__(
        self, coreml: CoreML, spec: ComponentSpec, compiled: Path, plan: ShapePlan, compute_units: str
    ) -> None:
        super().__init__(spec)
        self.coreml, self.plan, self.compiled, self.compute_units = coreml, plan, compiled, compute_units
        self._model = coreml.load(compiled, compute_units)

    def _run(self, feeds: Feeds) -> Feeds:
        outs = []
        for row in plan_rows(feeds, self.spec, self.plan):
            result = self.coreml.predict(self._model, row)
            outs.append({n: np.asarray(result[n], np.float32) for n in self.spec.output_names})
        if len(outs) == 1:
            return outs[0]
        return {n: np.concatenate([o[n] for o in outs]) for n in self.spec.output_names}

    def settings(self) -> dict[str, Any]:
        return {"device": self.compute_units, "shapes": self.plan.mode, "compiled": str(self.compiled)}

    def close(self) -> None:
        self._model = None


class CoreMLBackend(Backend):
    name = "coreml"
    adapter: type = CoreML  # the vendor interface (the Linux tests give an ONNX Runtime one)

    def __init__(self, bundle: Bundle, options: CoreMLRuntimeOptions) -> None:
        super().__init__(bundle, options)
        self.coreml = type(self).adapter()
        self._scratch: tempfile.TemporaryDirectory | None = None  # compiled models when the cache is off

    def _compiled_dir(self) -> Path:
        folder = self.options.compiled_cache("coreml")
        if folder is not None:
            return folder
        if self._scratch is None:
            self._scratch = tempfile.TemporaryDirectory(prefix="linearsr-coreml-")
        return Path(self._scratch.name)

    def close(self) -> None:
        if self._scratch is not None:
            self._scratch.cleanup()
            self._scratch = None

    def open(self, component: str) -> Session:
        package = self.bundle.file(component)
        if not package.is_dir():
            raise BundleError(f"Core ML package {package} is missing")
        key = cache_key(package_files(self.bundle, package.name), self.coreml.version())
        compiled = compiled_model(self.coreml, package, key, self._compiled_dir())
        plan = plan_of(self.bundle, component)
        return CoreMLSession(self.coreml, self.specs[component], compiled, plan, self.options.compute_units)
