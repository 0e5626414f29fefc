"""The bundle manifest, typed: frozen dataclasses per section, read and written by field name.

`Manifest` holds what every bundle records (target, model, components and their specs, file digests,
tags, golden set, calibration, verification); each hardware family owns one section under ``families``
(``families.coreml``: the Core ML report and shape plans; ``families.tensorrt``: the engine recipe), whose
type the family registers with `register_section`. `Manifest.from_data` reads schema 2, and schema 1 (the
bundles exported before the typed manifest) through `upgrade_v1`; every value is checked against its
type and a misfit is named by its path. No hand-written ``from_dict``: `linearsr_edge.serial` reads every
section by field name, so a round trip is the identity (tests prove it for every section and target).
"""

from __future__ import annotations

import copy
import threading
from dataclasses import dataclass, field, replace
from typing import Any

from linearsr_edge.checks import CheckRow, QualityThresholds
from linearsr_edge.config import ModelConfig
from linearsr_edge.errors import BundleError, ConfigError
from linearsr_edge.precision import Precision
from linearsr_edge.registry import BUILTIN_FAMILIES, load_callable
from linearsr_edge.serial import SerialError, from_data, to_data
from linearsr_edge.specs import ComponentSpec, Profile, SizePolicy

SCHEMA_VERSION = 2
READS = (1, 2)  # schema versions this version reads (1 is upgraded on load)
TAGS_FILE = "cond/tags.npy"
GOLDEN_FILE = "golden.npz"


@dataclass(frozen=True)
class SourceRecord:
    kind: str  # "demo" | "folder"
    path: str | None = None


@dataclass(frozen=True)
class ComponentEntry:
    file: str  # the main artifact (a Core ML package is a folder)
    files: tuple[str, ...]
    bytes: int
    spec: ComponentSpec


@dataclass(frozen=True)
class TagsRecord:
    names: tuple[str, ...]
    file: str = TAGS_FILE


@dataclass(frozen=True)
class CalibrationRecord:
    sha256: str
    mode: str  # "band" | "pooled"
    images: tuple[str, ...]
    heldout_images: int
    heldout_samples_per_expert: dict[str, int]
    samples_per_expert: dict[str, int]
    seed: int
    crop: int
    bands: tuple[str, ...]


@dataclass(frozen=True)
class GoldenRecord:
    file: str
    bytes: int
    cases_per_expert: dict[str, int]
    lr_size: tuple[int, int]
    steps: int
    seed: int


@dataclass(frozen=True)
class VerificationRecord:
    """Whether the bundle is verified, where its checks ran, and the rows they gave."""

    verified: bool
    thresholds: QualityThresholds
    rows: tuple[CheckRow, ...] = ()
    backend: str | None = None
    backend_version: str | None = None
    backend_settings: dict[str, Any] | None = None
    machine: dict[str, Any] | None = None  # the CPU and ISA the checks ran on: INT8 results depend on it
    reason: str | None = None  # why it is not verified
    finish_on_device: str | None = None  # the command that verifies it where it runs

    @property
    def passed(self) -> bool:
        return all(r.passed for r in self.rows)


# -- the families' sections -------------------------------------------------------------------------
_sections: dict[str, type] = {}
_sections_lock = threading.Lock()
_builtins_loaded = False


def register_section(family: str, section: type) -> None:
    """The dataclass that reads and writes ``families.<family>`` (a family registers it in its ``register``)."""
    with _sections_lock:
        if _sections.get(family, section) is not section:
            raise ValueError(f"a manifest section for {family!r} is already registered")
        _sections[family] = section


def section_type(family: str) -> type | None:
    global _builtins_loaded
    if not _builtins_loaded:
        _builtins_loaded = True
        load_callable(BUILTIN_FAMILIES)()
    return _sections.get(family)


@dataclass(frozen=True)
class Manifest:
    """Everything a bundle says about itself (``manifest.json``)."""

    target: str
    format: str
    precision: Precision
    model: dict[str, Any]  # `ModelConfig.to_dict`
    codec: dict[str, Any]  # the codec's config, with its spatial ``factor``
    bands: tuple[tuple[float | None, float | None], ...]  # log-SNR [low, high) per expert; None: unbounded
    profile: Profile
    components: dict[str, ComponentEntry]
    verification: VerificationRecord
    source: SourceRecord = SourceRecord("unknown")
    package_version: str = "?"
    created: str = ""
    export_id: str = ""  # written into every artifact's metadata too: what a lifted file belongs to
    files: dict[str, str] = field(default_factory=dict)  # relative path -> sha256 (filled at commit)
    tags: TagsRecord | None = None
    calibration: CalibrationRecord | None = None
    golden: GoldenRecord | None = None
    target_options: dict[str, Any] = field(default_factory=dict)  # the target's options as exported
    families: dict[str, Any] = field(default_factory=dict)  # family -> its section (a registered dataclass)
    schema_version: int = SCHEMA_VERSION

    @property
    def cfg(self) -> ModelConfig:
        return ModelConfig.from_dict(self.model)

    @property
    def codec_factor(self) -> int:
        return int(self.codec["factor"])

    def family(self, name: str) -> Any:
        """The section of family ``name`` (None when the bundle has none)."""
        return self.families.get(name)

    def with_family(self, name: str, section: Any) -> Manifest:
        return replace(self, families={**self.families, name: section})

    def to_data(self) -> dict[str, Any]:
        return to_data(replace(self, schema_version=SCHEMA_VERSION))

    @classmethod
    def from_data(cls, data: dict[str, Any], where: str = "manifest") -> Manifest:
        """Read schema 1 or 2; `BundleError` names the value that does not fit, or the version it cannot read."""
        if not isinstance(data, dict):
            raise BundleError(f"{where}: a manifest is a JSON object, got {type(data).__name__}")
        version = data.get("schema_version")
        if version not in READS:
            raise BundleError(
                f"{where}: schema version {version!r} is not supported (this linearsr-edge reads "
                f"{', '.join(map(str, READS))}); re-export the bundle with this version: linearsr-export --target "
                f"{data.get('target', 'TARGET')} --out NEW_FOLDER"
            )
        if version == 1:
            data = upgrade_v1(data)
        try:
            manifest = from_data(cls, data, where)
            families = {}
            for name, section in manifest.families.items():
                kind = section_type(name)
                families[name] = section if kind is None else from_data(kind, section, f"{where}.families.{name}")
            manifest = replace(manifest, families=families)
            manifest.cfg  # noqa: B018  (the model config must be valid)
        except (SerialError, ConfigError) as exc:
            raise BundleError(f"{where}: {exc}") from None
        return manifest


# -- schema 1 -----------------------------------------------------------------------------------------
V1_FAMILY_KEYS = {  # schema 1 kept each family's entries at the top level
    "precision_probe": ("onnx", "precision_probe"),
    "int8_ignored_nodes": ("openvino", "int8_ignored_nodes"),
    "int8_weights": ("openvino", "int8_weights"),
    "int8_policy": ("tensorrt", "int8_policy"),
}


def upgrade_v1(data: dict[str, Any]) -> dict[str, Any]:
    """A schema-1 manifest as schema 2: the families' top-level entries moved under ``families``, Core ML's
    ``output_sizes`` into each enumerated component's size policy, check rows as `CheckRow` writes them."""
    data = copy.deepcopy(data)
    families: dict[str, dict[str, Any]] = {}
    for key, (family, name) in V1_FAMILY_KEYS.items():
        if key in data:
            families.setdefault(family, {})[name] = data.pop(key)
    weights = families.get("openvino", {}).get("int8_weights")
    if isinstance(weights, dict):
        weights.pop("exact_without_vnni", None)  # derived from the largest weight: a property now
    if data.get("tensorrt"):
        families.setdefault("tensorrt", {}).update(data.pop("tensorrt"))
    data.pop("tensorrt", None)
    coreml = data.pop("coreml", None)
    listed = data.pop("output_sizes", None)
    if coreml:
        families["coreml"] = coreml
        for name, report in coreml.get("components", {}).items():
            plan = report.get("shapes", {})
            if plan.get("mode") == "enumerated" and "image" in plan.get("sets", [{}])[0]:
                sizes = sorted({tuple(s["image"][2:]) for s in plan["sets"]})
            elif plan.get("mode") == "enumerated" and listed:
                sizes = [tuple(v) for v in listed]
            else:
                continue
            spec = data["components"][name]["spec"]
            spec["sizes"] = to_data(SizePolicy.listed(sizes, max_batch=1))
    verification = data.get("verification")
    if isinstance(verification, dict):
        rows = verification.pop("golden_rows", None) or verification.get("rows", [])
        verification["rows"] = [_v1_row(r) for r in rows]
    data["families"] = families
    data["schema_version"] = SCHEMA_VERSION
    return data


def _v1_row(row: dict[str, Any]) -> dict[str, Any]:
    row = {k: v for k, v in row.items() if k != "passed"}
    if row.get("value") is None:  # schema 1 wrote an infinite PSNR (identical outputs) as null
        row["value"] = "inf"
    return row
