"""Value classes without `dataclasses`: importing it (with `inspect`, `ast` and `dis`) and generating
each class's methods cost ``import chatlog`` ~10 ms, which every importing thread paid.

A subclass declares its fields as annotations (``Final``: mypy keeps them unchanged, as
``frozen=True`` did) and assigns them in its own typed ``__init__``, whose parameters are named after
them. Equality, hashing, the repr (fields in declared order) and `replace` come from here.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, ClassVar, TypeVar

    R = TypeVar("R", bound="Record")


class Record:
    """Equality, hash and repr over the fields a subclass declares, in declared order."""

    _fields: ClassVar[tuple[str, ...]] = ()

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._fields = tuple(cls.__annotations__)

    def _values(self) -> tuple[object, ...]:
        return tuple(getattr(self, name) for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record) or type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self._fields)
        return f"{type(self).__name__}({fields})"


def replace(record: R, /, **changes: Any) -> R:
    """A copy of `record` with `changes` (field names), built through its ``__init__`` like
    ``dataclasses.replace``."""
    values: dict[str, Any] = {name: getattr(record, name) for name in record._fields}
    values.update(changes)
    return type(record)(**values)
