"""Residency: when component sessions open and close.

``"all"`` opens every component at load and keeps it. ``"one"`` keeps the encoder and decoder
resident and at most one expert: the host loop runs expert-major, so each expert opens once per
`upscale_batch`. An integer is a byte budget for the resident sessions, sized by their files in
the bundle: experts are kept, least recently used first out, while they fit beside the codec.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter, OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from linearsr_edge.errors import ConfigError
from linearsr_edge.pipeline.session import Session

log = logging.getLogger(__name__)

Residency = str | int  # "all", "one", "auto" or a byte budget, as callers write it


@dataclass(frozen=True)
class ResidencyPolicy:
    """Which sessions stay open: ``all``, ``one`` expert at a time, or experts within a ``budget`` of bytes."""

    mode: Literal["all", "one", "budget"]
    budget: int | None = None

    @classmethod
    def parse(cls, value: Residency | ResidencyPolicy) -> ResidencyPolicy | Literal["auto"]:
        if isinstance(value, ResidencyPolicy):
            return value
        if value in ("all", "one"):
            return cls(value)
        if value == "auto":
            return "auto"
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return cls("budget", value)
        raise ConfigError(f"residency must be 'all', 'one', 'auto' or a positive byte budget, got {value!r}")


def check_residency(residency: Residency) -> Residency:
    ResidencyPolicy.parse(residency)
    return residency


def auto_residency(kinds: dict[str, str], sizes: dict[str, int]) -> ResidencyPolicy:
    """``"auto"``: everything when the bundle fits the device profile's memory budget, else the budget
    itself (experts swapped least recently used first), else one expert at a time. The device is only
    detected when the bundle is larger than the smallest budget any profile gives."""
    from linearsr_edge.devices.profiles import builtin_profiles, this_device_profile

    total = sum(sizes.values())
    if total <= min(p.memory_budget_bytes for p in builtin_profiles()):
        return ResidencyPolicy("all")
    profile = this_device_profile()
    if profile is None or total <= profile.memory_budget_bytes:
        return ResidencyPolicy("all")
    codec = sum(sizes.get(n, 0) for n, k in kinds.items() if k != "expert")
    biggest = max((sizes.get(n, 0) for n, k in kinds.items() if k == "expert"), default=0)
    fits = codec + biggest <= profile.memory_budget_bytes
    choice = ResidencyPolicy("budget", profile.memory_budget_bytes) if fits else ResidencyPolicy("one")
    log.info(
        "residency auto: %s (bundle %d MiB, profile %s budget %d MiB)",
        choice.budget or choice.mode,
        total >> 20,
        profile.name,
        profile.memory_budget_bytes >> 20,
    )
    return choice


class ResidentSessions:
    """Opens sessions on demand through ``opener`` and closes experts as the policy requires."""

    def __init__(
        self,
        opener: Callable[[str], Session],
        kinds: dict[str, str],
        sizes: dict[str, int],
        residency: Residency = "all",
    ) -> None:
        policy = ResidencyPolicy.parse(residency)
        self.policy = auto_residency(kinds, sizes) if policy == "auto" else policy
        self._opener, self._kinds, self._sizes = opener, kinds, sizes
        self._open: OrderedDict[str, Session] = OrderedDict()
        self.lock = threading.RLock()
        self.opens: Counter[str] = Counter()
        self.closed_seconds = 0.0  # time spent in sessions that are closed since
        if self.policy.mode == "budget":
            codec = sum(sizes.get(n, 0) for n, k in kinds.items() if k != "expert")
            biggest = max((sizes.get(n, 0) for n, k in kinds.items() if k == "expert"), default=0)
            if codec + biggest > self.policy.budget:
                raise ConfigError(
                    f"residency budget {self.policy.budget:,} bytes is below the codec ({codec:,} bytes) plus the "
                    f"largest expert ({biggest:,} bytes); raise it or use residency='one'"
                )
        eager = list(kinds) if self.policy.mode == "all" else [n for n, k in kinds.items() if k != "expert"]
        try:
            for name in eager:
                self.get(name)
        except BaseException:  # a session that failed to open: close the ones opened before it
            self.close_all()
            raise

    def get(self, name: str) -> Session:
        with self.lock:
            if name in self._open:
                self._open.move_to_end(name)
                return self._open[name]
            if self._kinds.get(name) == "expert":
                self._make_room(name)
            session = self._opener(name)
            self._open[name] = session
            self.opens[name] += 1
            return session

    def _make_room(self, name: str) -> None:
        if self.policy.mode == "all":
            return
        experts = [n for n in self._open if self._kinds.get(n) == "expert"]  # least recently used first
        if self.policy.mode == "one":
            for n in experts:
                self._close(n)
            return
        used = sum(self._sizes.get(n, 0) for n in self._open)
        while experts and used + self._sizes.get(name, 0) > self.policy.budget:
            victim = experts.pop(0)
            used -= self._sizes.get(victim, 0)
            self._close(victim)

    def _close(self, name: str) -> None:
        session = self._open.pop(name)
        self.closed_seconds += session.seconds
        session.close()
        log.debug("closed %s", name)

    def open_names(self) -> list[str]:
        with self.lock:
            return list(self._open)

    def open_sessions(self) -> dict[str, Session]:
        with self.lock:
            return dict(self._open)

    def sessions(self) -> list[Session]:
        with self.lock:
            return list(self._open.values())

    def close_all(self) -> None:
        with self.lock:
            for name in list(self._open):
                self._close(name)

    def seconds(self) -> float:
        """Seconds spent inside sessions since they opened (or `reset_timers`), closed sessions included."""
        return self.closed_seconds + sum(s.seconds for s in self.sessions())

    def reset_timers(self) -> None:
        self.closed_seconds = 0.0
        for s in self.sessions():
            s.seconds, s.calls = 0.0, 0

    def settings(self) -> dict:
        """The settings of the sessions, from one that ran first: a backend may learn what is in force only when it
        compiles (OpenVINO's precision hint)."""
        for session in sorted(self.sessions(), key=lambda s: s.calls == 0):
            settings = session.settings()
            if settings:
                return settings
        return {}
