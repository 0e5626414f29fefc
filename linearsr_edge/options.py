"""Typed options that declare their own command-line flags.

A field made with `flag` carries its flag name and argparse settings in its metadata, so a target
(or the calibration) owns both its typed options and the flags that set them; the CLI adds every
declared flag and refuses a flag that does not apply to the chosen target.
"""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from linearsr_edge.errors import ConfigError


def flag(default: Any, name: str, help: str, invert: bool = False, scope: str = "", **argparse_kw: Any):
    """A dataclass field set by the flag ``name`` (``--int8-ops``).

    ``invert``: a ``store_true`` flag that sets the field to False (``--int8-accurate`` -> ``fuse_outputs=False``).
    ``scope``: a tag the owner uses to say when the flag applies (calibration: ``"full"`` = INT8 only).
    """
    meta = {"flag": name, "help": help, "invert": invert, "scope": scope, "argparse": argparse_kw}
    if isinstance(default, (list, dict, set)):
        return dataclasses.field(default_factory=lambda: type(default)(default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def positive_int(text: str) -> int:
    """An argparse ``type`` for counts and sizes: a user who types ``--threads 0`` reads
    ``argument --threads: must be a positive integer, got '0'``."""
    return _int_at_least(text, 1, "a positive integer")


def non_negative_int(text: str) -> int:
    """An argparse ``type`` for limits where 0 means none: ``must be an integer >= 0, got '-1'``."""
    return _int_at_least(text, 0, "an integer >= 0")


def _int_at_least(text: str, low: int, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be {what}, got {text!r}")
    return value


def flag_fields(cls: type) -> list[dataclasses.Field]:
    return [f for f in dataclasses.fields(cls) if "flag" in f.metadata]


def dest(field: dataclasses.Field) -> str:
    return field.metadata["flag"].lstrip("-").replace("-", "_")


def add_flags(group: argparse._ActionsContainer, cls: type, seen: set[str]) -> None:
    """Add the flags declared by ``cls`` (once each across classes), all defaulting to "not given"."""
    for f in flag_fields(cls):
        name = f.metadata["flag"]
        if name in seen:
            continue
        seen.add(name)
        kw = dict(f.metadata["argparse"])
        if f.metadata["invert"] or f.type in (bool, "bool"):
            kw.setdefault("action", "store_true")
        group.add_argument(name, dest=dest(f), help=f.metadata["help"], default=argparse.SUPPRESS, **kw)


def flags_of(cls: type, scopes: tuple[str, ...] | None = None) -> list[str]:
    """The flags ``cls`` declares (only those whose scope is in ``scopes``, when given)."""
    return [f.metadata["flag"] for f in flag_fields(cls) if scopes is None or f.metadata["scope"] in scopes]


def from_flags(cls: type, given: dict[str, Any], **fixed: Any):
    """An instance of ``cls`` from the given flags (``{dest: value}``); fields not given keep their default."""
    kwargs = dict(fixed)
    for f in flag_fields(cls):
        if dest(f) in given:
            value = given[dest(f)]
            if f.metadata["invert"]:
                value = not value
            elif isinstance(f.default, tuple) and isinstance(value, list):
                value = tuple(value)
            kwargs[f.name] = value
    return cls(**kwargs)


def given_flags(parser: argparse.ArgumentParser, args: argparse.Namespace) -> list[str]:
    """The declared flags (those added with a "not given" default) that appear in ``args``."""
    by_dest = {a.dest: a.option_strings[-1] for a in parser._actions if a.default is argparse.SUPPRESS}
    return [by_dest[d] for d in vars(args) if d in by_dest and by_dest[d].startswith("--")]


def refuse_flags(given: list[str], accepted: list[str], what: str) -> None:
    """`ConfigError` naming every given flag that ``what`` (``target onnx-fp32``) does not accept."""
    refused = [f for f in given if f not in accepted]
    if refused:
        raise ConfigError(
            f"{', '.join(refused)} {'does' if len(refused) == 1 else 'do'} not apply to {what}; "
            f"it accepts {', '.join(accepted) or 'none of these flags'}"
        )


def changed_fields(options: Any) -> dict[str, Any]:
    """The fields of a dataclass instance that differ from their defaults (default factories included)."""
    out = {}
    for f in dataclasses.fields(options):
        if f.default is not dataclasses.MISSING:
            default = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = dataclasses.MISSING
        value = getattr(options, f.name)
        if value != default:
            out[f.name] = value
    return out
