"""`linearsr_edge.serial`: dataclasses to JSON data and back, by field name, every misfit named by its path."""

from __future__ import annotations

import enum
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest

from linearsr_edge.serial import SerialError, from_data, to_data


class Colour(str, enum.Enum):
    RED = "red"
    BLUE = "blue"


@dataclass(frozen=True)
class Inner:
    a: int
    b: float | None = None


@dataclass(frozen=True)
class Outer:
    name: str
    inner: Inner
    pairs: tuple[tuple[int, int], ...]
    fixed: tuple[int, str]
    table: dict[int, Inner]
    colour: Colour
    mode: Literal["x", "y"]
    either: int | str
    anything: Any
    path: Path
    limits: list[float] = field(default_factory=list)
    maybe: Inner | None = None


SAMPLE = Outer(
    name="n",
    inner=Inner(1, -math.inf),
    pairs=((1, 2), (3, 4)),
    fixed=(5, "five"),
    table={7: Inner(7), 8: Inner(8, 0.5)},
    colour=Colour.BLUE,
    mode="y",
    either="text",
    anything={"free": [1, 2]},
    path=Path("a/b.onnx"),
    limits=[math.inf, 1.5],
)


def test_a_round_trip_is_the_identity_through_json_text():
    data = json.loads(json.dumps(to_data(SAMPLE)))
    assert from_data(Outer, data) == SAMPLE
    assert data["inner"]["b"] == "-inf" and data["table"]["7"] == {"a": 7, "b": None}


def test_nan_survives_as_nan():
    back = from_data(Inner, to_data(Inner(1, math.nan)))
    assert math.isnan(back.b)


@pytest.mark.parametrize(
    "path, value, message",
    [
        (("inner", "a"), "one", r"\$\.inner\.a: expected an integer, got text"),
        (("pairs",), [[1, 2, 3]], r"\$\.pairs\[0\]: expected 2 items"),
        (("colour",), "green", r"\$\.colour: expected one of \['red', 'blue'\]"),
        (("mode",), "z", r"\$\.mode: expected one of \['x', 'y'\]"),
        (("table",), {"seven": {"a": 1}}, r"\$\.table: expected integer keys"),
        (("either",), 1.5, r"\$\.either: fits none of"),
        (("path",), 3, r"\$\.path: expected a path"),
    ],
)
def test_a_misfit_names_its_path(path, value, message):
    data = to_data(SAMPLE)
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(SerialError, match=message):
        from_data(Outer, data)


def test_unknown_and_missing_fields_are_refused():
    with pytest.raises(SerialError, match=r"\$: Inner has no field 'c'"):
        from_data(Inner, {"a": 1, "c": 2})
    with pytest.raises(SerialError, match=r"\$: Inner lacks 'a'"):
        from_data(Inner, {"b": 1.0})
    assert from_data(Inner, {"a": 1}) == Inner(1)  # a field with a default may be left out


def test_a_bool_is_not_a_number():
    with pytest.raises(SerialError, match="expected an integer, got a boolean"):
        from_data(Inner, {"a": True})
