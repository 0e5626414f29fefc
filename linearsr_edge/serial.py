"""Dataclasses to JSON data and back, by field name, driven by the type hints: no hand-written ``from_dict``.

`to_data` writes a dataclass (nested dataclasses, tuples, lists, dicts, enums, paths) as JSON data;
`from_data` reads it back into the type the hints name, by keyword, checking every value's type and
naming the path of the first one that does not fit (``manifest.coreml.components.expert_0.shapes.cond_len:
expected int, got dict``), and refusing keys the type does not have. A round trip is the identity for
every type built from the supported parts: a field order slip cannot happen, and a test over every
type proves it.
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import math
import types
import typing
from pathlib import Path
from typing import Any

from linearsr_edge.errors import ConfigError

_NONFINITE = {"inf": math.inf, "-inf": -math.inf, "nan": math.nan}


class SerialError(ConfigError):
    """JSON data does not fit the type that reads it; ``path`` names where."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path


def to_data(value: Any) -> Any:
    """JSON data for ``value``: dataclasses by field name, enums by value, tuples as lists, paths as text, and
    non-finite floats as ``"inf"``, ``"-inf"``, ``"nan"`` (JSON has none)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_data(getattr(value, f.name)) for f in dataclasses.fields(value) if f.init}
    if isinstance(value, enum.Enum):
        return to_data(value.value)
    if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
        return value
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, dict):
        return {str(k): to_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_data(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # a NumPy scalar
        return to_data(value.item())
    raise TypeError(f"cannot write {type(value).__name__} as JSON data")


def from_data(tp: Any, data: Any, path: str = "$") -> Any:
    """``data`` (JSON) read as the type ``tp``; `SerialError` names the first value that does not fit."""
    origin = typing.get_origin(tp)
    if tp is Any:
        return data
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        if data is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return from_data(option, data, path)
            except SerialError as exc:
                errors.append(str(exc))
        raise SerialError(path, f"fits none of {_name(tp)} ({'; '.join(errors)})")
    if origin is typing.Literal:
        if data not in typing.get_args(tp):
            raise SerialError(path, f"expected one of {list(typing.get_args(tp))}, got {data!r}")
        return data
    if origin in (tuple, list):
        if not isinstance(data, list):
            raise SerialError(path, f"expected a list ({_name(tp)}), got {_kind(data)}")
        args = typing.get_args(tp)
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(data) != len(args):
                raise SerialError(path, f"expected {len(args)} items ({_name(tp)}), got {len(data)}")
            return tuple(from_data(a, d, f"{path}[{i}]") for i, (a, d) in enumerate(zip(args, data, strict=True)))
        item = args[0] if args else Any
        items = [from_data(item, d, f"{path}[{i}]") for i, d in enumerate(data)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(data, dict):
            raise SerialError(path, f"expected an object ({_name(tp)}), got {_kind(data)}")
        key_type, value_type = typing.get_args(tp) or (str, Any)
        return {_key(key_type, k, path): from_data(value_type, v, f"{path}.{k}") for k, v in data.items()}
    if isinstance(tp, type) and dataclasses.is_dataclass(tp):
        return _dataclass(tp, data, path)
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        try:
            return tp(data)
        except ValueError:
            raise SerialError(path, f"expected one of {[m.value for m in tp]}, got {data!r}") from None
    if tp is float:
        if isinstance(data, str) and data in _NONFINITE:
            return _NONFINITE[data]
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            raise SerialError(path, f"expected a number, got {_kind(data)}")
        return float(data)
    if tp is int:
        if isinstance(data, bool) or not isinstance(data, int):
            raise SerialError(path, f"expected an integer, got {_kind(data)}")
        return data
    if tp in (str, bool):
        if not isinstance(data, tp):
            raise SerialError(path, f"expected {tp.__name__}, got {_kind(data)}")
        return data
    if tp is Path:
        if not isinstance(data, str):
            raise SerialError(path, f"expected a path, got {_kind(data)}")
        return Path(data)
    if tp is type(None):
        if data is not None:
            raise SerialError(path, f"expected null, got {_kind(data)}")
        return None
    raise TypeError(f"{path}: cannot read the type {_name(tp)}")


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _dataclass(cls: type, data: Any, path: str) -> Any:
    if not isinstance(data, dict):
        raise SerialError(path, f"expected an object ({cls.__name__}), got {_kind(data)}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise SerialError(path, f"{cls.__name__} has no field {', '.join(map(repr, unknown))}")
    missing = [
        n
        for n, f in fields.items()
        if n not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise SerialError(path, f"{cls.__name__} lacks {', '.join(map(repr, missing))}")
    hints = _hints(cls)
    kwargs = {name: from_data(hints[name], value, f"{path}.{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except (ValueError, TypeError) as exc:  # the type's own validation
        raise SerialError(path, str(exc)) from None


def _key(tp: Any, key: str, path: str) -> Any:
    if tp is int:
        try:
            return int(key)
        except ValueError:
            raise SerialError(path, f"expected integer keys, got {key!r}") from None
    return from_data(tp, key, f"{path}.{key}")


def _kind(data: Any) -> str:
    return {dict: "an object", list: "a list", str: "text", bool: "a boolean", type(None): "null"}.get(
        type(data), type(data).__name__
    )


def _name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")
