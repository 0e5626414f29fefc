"""Device profiles: one small JSON file per device family, shipped in the package.

Each holds a memory budget for the runtime, the export targets in order of preference, the largest
resolution worth running and a tile size. `match_profile` picks the most specific profile that
matches a detected device; a user's own JSON file overrides any field (`load_profile`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from linearsr_edge.devices.detect import DeviceInfo
from linearsr_edge.errors import ConfigError

PROFILE_DIR = Path(__file__).parent / "profiles"


@dataclass(frozen=True)
class DeviceProfile:
    name: str
    match: dict[str, Any]  # family, name_contains (any), isa_all, arch (any), accelerator (kind)
    memory_budget_bytes: int
    targets: tuple[str, ...]  # export targets, best first
    max_resolution: tuple[int, int]  # (width, height)
    tile_size: int
    reason: str = ""
    # tiles per expert call when a large frame is tiled: 1 on CPUs (batching tiles measured slower there and
    # multiplies the activations held), more on GPUs, which run a batch in about the time of one tile
    tile_batch: int = 1
    priority: int = 0  # higher: tried first
    source: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        where = self.source or self.name
        if (
            isinstance(self.memory_budget_bytes, bool)
            or not isinstance(self.memory_budget_bytes, int)
            or self.memory_budget_bytes < 1
        ):
            raise ConfigError(f"profile {where}: memory_budget_bytes must be a positive integer")
        if not self.targets or not all(isinstance(t, str) for t in self.targets):
            raise ConfigError(f"profile {where}: targets must list at least one target name")
        if len(self.max_resolution) != 2 or any(not isinstance(v, int) or v < 8 for v in self.max_resolution):
            raise ConfigError(f"profile {where}: max_resolution must be [width, height], each >= 8")
        if not isinstance(self.tile_size, int) or self.tile_size < 16:
            raise ConfigError(f"profile {where}: tile_size must be an integer >= 16")
        if isinstance(self.tile_batch, bool) or not isinstance(self.tile_batch, int) or self.tile_batch < 1:
            raise ConfigError(f"profile {where}: tile_batch must be a positive integer")

    def matches(self, device: DeviceInfo) -> bool:
        m = self.match
        if "family" in m and device.family != m["family"]:
            return False
        if "name_contains" in m and not any(s.lower() in device.name.lower() for s in m["name_contains"]):
            return False
        if "arch" in m and device.arch not in m["arch"]:
            return False
        if "isa_all" in m and not set(m["isa_all"]) <= set(device.isa):
            return False
        return not ("accelerator" in m and not any(a.kind == m["accelerator"] for a in device.accelerators))


def _from_dict(data: dict[str, Any], source: str) -> DeviceProfile:
    known = {f.name for f in fields(DeviceProfile)} - {"source"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"profile {source}: unknown fields {unknown} (known: {sorted(known)})")
    try:
        return DeviceProfile(
            **{
                **data,
                "targets": tuple(data["targets"]),
                "max_resolution": tuple(data["max_resolution"]),
                "match": dict(data.get("match", {})),
            },
            source=source,
        )
    except (KeyError, TypeError) as exc:
        raise ConfigError(f"profile {source}: {exc}") from None


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read device profile {path}: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"device profile {path} must hold a JSON object")
    return data


@functools.lru_cache(maxsize=1)
def builtin_profiles() -> tuple[DeviceProfile, ...]:
    """The shipped profiles, most specific (highest priority) first; read once per process (every
    ``SRRuntime.load`` with residency ``auto`` asks for them)."""
    profiles = [_from_dict(_read(p), p.name) for p in sorted(PROFILE_DIR.glob("*.json"))]
    return tuple(sorted(profiles, key=lambda p: -p.priority))


def match_profile(device: DeviceInfo, profiles: Sequence[DeviceProfile] | None = None) -> DeviceProfile | None:
    """The highest-priority profile that matches ``device`` (None if none does)."""
    return next((p for p in (profiles or builtin_profiles()) if p.matches(device)), None)


@functools.lru_cache(maxsize=1)
def this_device_profile() -> DeviceProfile | None:
    """The profile of the device this runs on (None when none matches); detected once per process."""
    from linearsr_edge.devices.detect import detect

    return match_profile(detect())


def load_profile(path: Path, base: DeviceProfile | None = None) -> DeviceProfile:
    """A user's profile file: a whole profile, or (with ``base``) only the fields to override."""
    data = _read(path)
    if base is None:
        return _from_dict(data, str(path))
    merged = {f.name: getattr(base, f.name) for f in fields(DeviceProfile) if f.name != "source"}
    merged.update(data)
    return replace(_from_dict(merged, str(path)), source=f"{base.source or base.name} + {path}")
