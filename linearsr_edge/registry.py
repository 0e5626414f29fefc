"""A name -> entry registry shared by export targets and runtime backends (STYLE point 1).

Entries register whether or not their package is installed; `Registry.get` raises a `ConfigError`
with a "did you mean" for an unknown name and a `BackendUnavailableError` naming the pip extra for
an entry whose package is missing.
"""

from __future__ import annotations

import difflib
import importlib.util
from typing import Generic, Protocol, TypeVar

from linearsr_edge.errors import BackendUnavailableError, ConfigError


class Entry(Protocol):
    name: str
    requires: tuple[str, ...]  # importable module names
    extra: str  # the pip extra that installs them


def missing_modules(entry: Entry) -> list[str]:
    return [m for m in entry.requires if importlib.util.find_spec(m) is None]


E = TypeVar("E", bound=Entry)


class Registry(Generic[E]):
    def __init__(self, kind: str) -> None:
        self.kind = kind  # "export target", "runtime backend"
        self._entries: dict[str, E] = {}

    def register(self, entry: E) -> None:
        if entry.name in self._entries:
            raise ValueError(f"{self.kind} {entry.name!r} is already registered")
        self._entries[entry.name] = entry

    def names(self) -> list[str]:
        return sorted(self._entries)

    def entries(self) -> list[E]:
        return [self._entries[n] for n in self.names()]

    def get(self, name: str) -> E:
        if name not in self._entries:
            near = difflib.get_close_matches(name, self._entries, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            raise ConfigError(f"unknown {self.kind} {name!r}{hint} Registered: {', '.join(self.names())}")
        entry = self._entries[name]
        missing = missing_modules(entry)
        if missing:
            raise BackendUnavailableError(
                f"{self.kind} {name!r} needs {', '.join(missing)}: pip install 'linearsr-edge[{entry.extra}]'"
            )
        return entry
