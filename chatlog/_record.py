"""Value classes without `dataclasses`: importing it (with `inspect`, `ast` and `dis`) and generating
each class's methods cost ``import chatlog`` ~10 ms, which every importing thread paid.

A subclass of `Record` declares its fields as a frozen dataclass would (annotations, defaults after
them) and gets what one has: ``__init__`` (positional or by name, in declared order), equality, hash,
repr, immutability, and `replace`. Nothing is generated: the methods here read the fields that
``__init_subclass__`` collected. Type checkers read the same as for a dataclass (``dataclass_transform``).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any, ClassVar, TypeVar

    from typing_extensions import dataclass_transform

    R = TypeVar("R", bound="Record")
else:
    def dataclass_transform(**_options: object) -> object:
        """What type checkers read (PEP 681); nothing at run time."""
        return lambda cls: cls


@dataclass_transform(eq_default=True, frozen_default=True)
class Record:
    """The base of chatlog's value classes: fields from the subclass's own annotations."""

    _fields: ClassVar[tuple[str, ...]] = ()
    _defaults: ClassVar[dict[str, object]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._fields = tuple(cls.__annotations__)
        cls._defaults = {name: cls.__dict__[name] for name in cls._fields if name in cls.__dict__}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        fields = self._fields
        given = dict(zip(fields, args, strict=False))
        repeated = [name for name in kwargs if name not in fields or name in given]
        if len(args) > len(fields) or repeated:
            raise TypeError(f"{type(self).__name__}() takes the fields {', '.join(fields)}; got "
                            f"{len(args)} positional and {', '.join(kwargs) or 'no'} keyword arguments")
        values = {**self._defaults, **given, **kwargs}
        missing = [name for name in fields if name not in values]
        if missing:
            raise TypeError(f"{type(self).__name__}() is missing {', '.join(missing)}")
        self.__dict__.update(values)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable: make a new one with replace()")

    def __delattr__(self, name: str) -> None:
        raise AttributeError(f"{type(self).__name__} is immutable")

    def _values(self) -> tuple[object, ...]:
        return tuple(self.__dict__[name] for name in self._fields)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Record) or type(other) is not type(self):
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={self.__dict__[name]!r}" for name in self._fields)
        return f"{type(self).__name__}({fields})"


def replace(record: R, /, **changes: Any) -> R:
    """A copy of `record` with `changes` (field names), built through its ``__init__`` like
    ``dataclasses.replace``."""
    return type(record)(**{**{name: record.__dict__[name] for name in record._fields}, **changes})
