"""A name -> entry registry shared by export targets and runtime backends (STYLE point 1).

Entries register whether or not their package is installed; `Registry.get` raises a `ConfigError`
with a "did you mean" for an unknown name and a `BackendUnavailableError` naming the pip extra for
an entry whose package is missing, or the operating system an entry needs (Core ML: macOS).

Third parties add entries without editing this package: a distribution declares an entry point in
the registry's group (``linearsr_edge.targets`` or ``linearsr_edge.backends``) whose object is an
entry (a `TargetInfo` / `BackendInfo`), a list of them, or a callable returning either. Entry
points load once, the first time the registry is asked for names or an entry.
"""

from __future__ import annotations

import difflib
import importlib
import importlib.util
import logging
import sys
from collections.abc import Iterable
from typing import Generic, Protocol, TypeVar

from linearsr_edge.errors import BackendUnavailableError, ConfigError

log = logging.getLogger(__name__)


class Entry(Protocol):
    name: str
    requires: tuple[str, ...]  # importable module names
    extra: str  # the pip extra that installs them


PLATFORM_NAMES = {"darwin": "macOS", "linux": "Linux", "win32": "Windows"}


def missing_modules(entry: Entry) -> list[str]:
    return [m for m in entry.requires if importlib.util.find_spec(m) is None]


def wrong_platform(entry: Entry) -> str | None:
    """Why ``entry`` cannot run on this operating system (None: it can). An entry may declare
    ``platforms`` (``sys.platform`` values; empty: any) and a ``platform_note`` saying why."""
    platforms = tuple(getattr(entry, "platforms", ()) or ())
    if not platforms or sys.platform in platforms:
        return None
    names = " or ".join(PLATFORM_NAMES.get(p, p) for p in platforms)
    note = getattr(entry, "platform_note", "")
    here = PLATFORM_NAMES.get(sys.platform, sys.platform)
    return f"{entry.name!r} runs on {names} only, and this machine runs {here}" + (f": {note}" if note else "")


def unavailable_reason(entry: Entry) -> str | None:
    """Why ``entry`` cannot be used here (wrong operating system, or packages missing); None when it can."""
    reason = wrong_platform(entry)
    if reason is not None:
        return reason
    missing = missing_modules(entry)
    if missing:
        return f"{entry.name!r} needs {', '.join(missing)}: pip install 'linearsr-edge[{entry.extra}]'"
    return None


E = TypeVar("E", bound=Entry)


BUILTIN_FAMILIES = "linearsr_edge.backends:register_builtin"


def load_callable(path: str):
    """``"package.module:name"`` -> the object, imported now."""
    module, _, name = path.partition(":")
    return getattr(importlib.import_module(module), name)


class Registry(Generic[E]):
    def __init__(self, kind: str, group: str | None = None, builtins: str | None = BUILTIN_FAMILIES) -> None:
        self.kind = kind  # "export target", "runtime backend"
        self.group = group  # entry-point group for third-party entries
        # "module:function" that registers the built-in entries, called the first time entries are asked for
        # (the core never imports a family: the families register themselves when first needed)
        self._builtins = builtins
        self._entries: dict[str, E] = {}
        self._plugins_loaded = group is None

    def register(self, entry: E) -> None:
        if entry.name in self._entries:
            raise ValueError(f"{self.kind} {entry.name!r} is already registered")
        self._entries[entry.name] = entry

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._entries)

    def entries(self) -> list[E]:
        return [self._entries[n] for n in self.names()]

    def get(self, name: str) -> E:
        self._load_plugins()
        if name not in self._entries:
            near = difflib.get_close_matches(name, self._entries, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ConfigError(f"unknown {self.kind} {name!r}{hint} Registered: {', '.join(self.names())}")
        entry = self._entries[name]
        reason = unavailable_reason(entry)
        if reason is not None:
            raise BackendUnavailableError(f"{self.kind} {reason}")
        return entry

    def _load_plugins(self) -> None:
        if self._builtins is not None:
            builtins, self._builtins = self._builtins, None
            load_callable(builtins)()
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        from importlib.metadata import entry_points

        for ep in entry_points(group=self.group):
            try:
                obj = ep.load()
                obj = obj() if callable(obj) and not hasattr(obj, "requires") else obj
                for entry in obj if isinstance(obj, Iterable) else [obj]:
                    self.register(entry)
            except Exception as exc:  # a broken plugin must not break the built-in entries
                log.warning("ignoring %s plugin %r (%s): %s", self.kind, ep.name, ep.value, exc)
