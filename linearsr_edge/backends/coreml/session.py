"""The ``coreml`` backend (macOS only) for ``coreml`` bundles: one ``.mlpackage`` per component.

* **Compiled once.** Loading an ``.mlpackage`` compiles it to ``.mlmodelc`` (seconds for an
  expert). Each component is compiled once into a cache folder, keyed by the package's sha256
  digests from the manifest and the coremltools version, and every later load opens the compiled
  model (`cache_key`). The compile writes to a temporary sibling that is renamed into place.
* **Compute units** are an option: ``ALL`` (default), ``CPU_AND_NE``, ``CPU_AND_GPU``, ``CPU_ONLY``.
* **Shapes.** A model exported with enumerated shapes takes exactly those (batch 1): a batch runs
  row by row, and a shape outside the list is refused with the list (`check_plan_input`).

On any other OS the backend is registered but unavailable: loading a Core ML bundle raises
`BackendUnavailableError` saying that Core ML runs on macOS.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from linearsr_edge.errors import BundleError, ConfigError
from linearsr_edge.options import flag
from linearsr_edge.runtimes.base import BackendInfo, BackendOptions, Session, register_backend

if TYPE_CHECKING:
    from linearsr_edge.bundle import Bundle

COMPUTE_UNITS = ("ALL", "CPU_AND_NE", "CPU_AND_GPU", "CPU_ONLY")
PLATFORM_NOTE = (
    "Core ML predicts on macOS only (Apple silicon: Neural Engine, GPU, CPU). Run the bundle on a Mac, or "
    "export an onnx-* or ov-* target for this machine"
)


def default_cache_dir() -> Path:
    """``~/Library/Caches/linearsr-edge/coreml`` (or ``$XDG_CACHE_HOME/linearsr-edge/coreml`` elsewhere)."""
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]) / "linearsr-edge" / "coreml"
    return Path.home() / "Library" / "Caches" / "linearsr-edge" / "coreml"


@dataclass(frozen=True)
class CoreMLRuntimeOptions(BackendOptions):
    """Core ML session options. Core ML schedules its own threads: ``threads`` is refused."""

    compute_units: str = flag(
        "ALL",
        "--compute-units",
        "Core ML compute units: ALL (default), CPU_AND_NE (Neural Engine), CPU_AND_GPU, CPU_ONLY",
        choices=COMPUTE_UNITS,
    )
    cache_dir: Path | None = flag(
        None,
        "--coreml-cache-dir",
        "folder of compiled models (.mlmodelc); default ~/Library/Caches/linearsr-edge/coreml",
        type=Path,
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.threads is not None:
            raise ConfigError("Core ML schedules its own threads: drop --threads for the coreml backend")
        if self.compute_units not in COMPUTE_UNITS:
            raise ConfigError(f"compute_units must be one of {', '.join(COMPUTE_UNITS)}, got {self.compute_units!r}")


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
    files = {rel: d for rel, d in bundle.manifest.get("files", {}).items() if rel.startswith(prefix)}
    if files:
        return files
    root = bundle.path / package
    files = {p.relative_to(bundle.path).as_posix(): sha256_file(p) for p in sorted(root.rglob("*")) if p.is_file()}
    if not files:
        raise BundleError(f"Core ML package {root} holds no files")
    return files


def compiled_model(package: Path, key: str, cache_dir: Path) -> Path:
    """The cached ``.mlmodelc`` of ``package``, compiling it first when missing."""
    from coremltools.models.utils import compile_model

    target = cache_dir / f"{package.stem}-{key[:20]}.mlmodelc"
    if target.is_dir():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", dir=cache_dir))
    try:
        try:
            built = Path(compile_model(str(package), str(tmp / target.name)))
        except Exception as exc:  # Core ML's compiler raises RuntimeError / Exception with its message
            raise BundleError(f"Core ML cannot compile {package.name}: {exc}") from None
        try:
            os.replace(built, target)
        except OSError:
            if not target.is_dir():  # another process may have won the race: its copy is as good
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def plan_of(bundle: Bundle, component: str):
    from linearsr_edge.coreml_plan import ShapePlan

    entry = (bundle.manifest.get("coreml") or {}).get("components", {}).get(component)
    if entry is None:
        raise BundleError(f"{bundle.path}: the manifest has no Core ML report for {component}")
    return ShapePlan.from_dict(entry["shapes"])


class CoreMLSession(Session):
    backend = "coreml"

    def __init__(self, bundle: Bundle, component: str, options: CoreMLRuntimeOptions | None = None) -> None:
        import coremltools as ct

        super().__init__(bundle.spec(component))
        self.options = options or CoreMLRuntimeOptions()
        self.plan = plan_of(bundle, component)
        package = bundle.file(component)
        if not package.is_dir():
            raise BundleError(f"Core ML package {package} is missing")
        key = cache_key(package_files(bundle, package.name), ct.__version__)
        self.compiled = compiled_model(package, key, self.options.cache_dir or default_cache_dir())
        try:
            self._model = ct.models.CompiledMLModel(
                str(self.compiled), compute_units=getattr(ct.ComputeUnit, self.options.compute_units)
            )
        except Exception as exc:  # Core ML raises RuntimeError / Exception with the framework's message
            raise BundleError(f"Core ML cannot load {package.name}: {exc}") from None

    def _run(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        from linearsr_edge.coreml_plan import plan_rows

        outs = []
        for row in plan_rows(feeds, self.spec, self.plan):
            result = self._model.predict(row)
            outs.append({n: np.asarray(result[n], np.float32) for n in self.spec.output_names})
        if len(outs) == 1:
            return outs[0]
        return {n: np.concatenate([o[n] for o in outs]) for n in self.spec.output_names}

    def settings(self) -> dict[str, Any]:
        return {"device": self.options.compute_units, "shapes": self.plan.mode, "compiled": str(self.compiled)}

    def close(self) -> None:
        self._model = None


def _version() -> str:
    import coremltools as ct

    return ct.__version__


register_backend(
    BackendInfo(
        name="coreml",
        formats=("coreml",),
        requires=("coremltools",),
        extra="coreml",
        priority=20,
        factory=lambda bundle, component, options: CoreMLSession(bundle, component, options),
        options=CoreMLRuntimeOptions,
        version=_version,
        platforms=("darwin",),
        platform_note=PLATFORM_NOTE,
    )
)
