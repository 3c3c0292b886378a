"""`chatlog._record.Record`: what chatlog's value classes had from ``@dataclass(frozen=True)``."""

from __future__ import annotations

import pickle

import pytest

from chatlog._record import Record, replace
from chatlog.platforms._base import Outcome


class Point(Record):
    x: int
    y: int = 0
    label: str = ""


def test_fields_by_position_or_name_with_defaults_in_declared_order() -> None:
    assert Point(1, 2) == Point(x=1, y=2) == Point(1, y=2, label="")
    assert repr(Point(1, label="a")) == "Point(x=1, y=0, label='a')"
    assert Outcome("retry", 5.0).reason == ""


def test_missing_unknown_and_repeated_arguments_are_refused_as_by_a_dataclass() -> None:
    with pytest.raises(TypeError, match="missing x"):
        Point()  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="takes the fields x, y, label"):
        Point(1, z=2)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        Point(1, x=2)  # type: ignore[misc]
    with pytest.raises(TypeError):
        Point(1, 2, "a", "b")  # type: ignore[call-arg]


def test_immutable_equal_by_value_hashable_and_replace_makes_a_new_one() -> None:
    point = Point(1)
    with pytest.raises(AttributeError, match="immutable"):
        point.x = 2  # type: ignore[misc]
    assert hash(point) == hash(Point(1)) and point != Point(2) and point != (1, 0, "")
    moved = replace(point, y=5)
    assert (moved, point) == (Point(1, 5), Point(1))
    assert pickle.loads(pickle.dumps(moved)) == moved
