"""Statements whose SQL is built once per engine, then run with new values.

peewee builds a statement's SQL from its expression tree at every execution. For a table of
forty-odd columns that takes longer than SQLite takes to run the statement, and a PUT that
waits for its booking (``Prefer: wait``) runs about forty statements. A hot statement is
written once, as the peewee query it would be, over named slots::

    _BY_EXTERNAL_ID = Prepared(lambda slot: Appointment.select().where(
        (Appointment.account == slot("account_id")) & (Appointment.external_id == slot("external_id"))
    ).limit(1))

    row = _BY_EXTERNAL_ID.first(account_id=account_id, external_id=external_id)

Each slot's value goes through the ``db_value`` of the field it is compared with, as peewee
would convert it; a slot assigned in an UPDATE names its field (``slot("now", Job.updated_at)``).
The SQL is kept per engine (its placeholders and dialect differ), so one process may serve
SQLite and PostgreSQL in turn, as the tests do. A statement whose text depends on its call
(the columns an UPDATE sets, the length of an IN list) is a ``Shaped`` family, one
``Prepared`` per shape; an IN list is written with ``each`` and filled with ``spread``.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable
from typing import Any, Generic, TypeVar, cast

from peewee import Context, Field, Model, ModelRaw, ModelSelect, Node

from mappings.db import database

_M = TypeVar("_M", bound=Model)


class _Marker:
    """Where a slot's value goes in the parameters, and how it is converted."""

    __slots__ = ("name", "convert")

    def __init__(self, name: str, convert: Callable[[Any], Any] | None) -> None:
        self.name = name
        self.convert = convert


class _Slot(Node):
    def __init__(self, name: str, field: Field | None) -> None:
        self.name = name
        self.field = field

    def __sql__(self, ctx: Context) -> Context:
        convert = self.field.db_value if self.field is not None else ctx.state.converter
        return cast(Context, ctx.value(_Marker(self.name, convert), converter=False))


def slot(name: str, field: Field | None = None) -> Node:
    """A named value filled in at each run; ``field`` converts it where no comparison says how."""
    return _Slot(name, field)


class Prepared(Generic[_M]):
    """A query built once per engine by ``build(slot)``; run with ``rows``, ``first``,
    ``tuples`` or ``execute`` and a value for every slot."""

    def __init__(self, build: Callable[[Callable[..., Node]], Any]) -> None:
        self._build = build
        self._by_engine: dict[type, tuple[Any, str, list[Any]]] = {}

    def _statement(self, values: dict[str, Any]) -> tuple[Any, str, list[Any]]:
        engine = type(database.obj)
        built = self._by_engine.get(engine)
        if built is None:  # two threads may both build it: the same text, either kept
            query = self._build(slot)
            sql, params = query.sql()
            built = self._by_engine[engine] = (query, sql, params)
        query, sql, template = built
        params = [value if type(value) is not _Marker else _filled(value, values) for value in template]
        return query, sql, params

    def rows(self, **values: Any) -> list[_M]:
        """The model instances a SELECT of one model's columns finds, read to the end (a cursor
        left open keeps SQLite's read snapshot, and a write after it fails instead of waiting)."""
        query, sql, params = self._statement(values)
        if not isinstance(query, ModelSelect):
            raise TypeError("rows() is for a SELECT of a model")
        return list(ModelRaw(query.model, sql, params))  # not model.raw: Booking has a column "raw"

    def first(self, **values: Any) -> _M | None:
        """The first row, or None (give the query a LIMIT 1: every row it finds is read)."""
        found = self.rows(**values)
        return found[0] if found else None

    def tuples(self, **values: Any) -> list[tuple[Any, ...]]:
        """Every row as a tuple, read to the end."""
        _, sql, params = self._statement(values)
        return list(database.execute_sql(sql, params).fetchall())

    def execute(self, **values: Any) -> int:
        """Run an UPDATE or DELETE; the number of rows it changed."""
        _, sql, params = self._statement(values)
        return int(database.execute_sql(sql, params).rowcount)


class Shaped(Generic[_M]):
    """A family of prepared statements, one per shape (any hashable: a tuple of columns, a
    list's length), each built by ``build(slot, shape)`` on first use."""

    MAX_SHAPES = 256  # past this, a shape's statement is built for its call and not kept

    def __init__(self, build: Callable[[Callable[..., Node], Any], Any]) -> None:
        self._build = build
        self._by_shape: dict[Hashable, Prepared[_M]] = {}

    def __call__(self, shape: Hashable) -> Prepared[_M]:
        found = self._by_shape.get(shape)
        if found is None:
            found = Prepared(lambda slot: self._build(slot, shape))
            if len(self._by_shape) < self.MAX_SHAPES:
                self._by_shape[shape] = found
        return found


def each(slot: Callable[..., Node], name: str, count: int) -> list[Node]:
    """``count`` slots for the items of an IN list, filled by ``spread(name, items)``."""
    return [slot(f"{name}[{index}]") for index in range(count)]


def spread(name: str, items: Iterable[Any]) -> dict[str, Any]:
    return {f"{name}[{index}]": item for index, item in enumerate(items)}


def _filled(marker: _Marker, values: dict[str, Any]) -> Any:
    try:
        value = values[marker.name]
    except KeyError:
        raise TypeError(f"no value for the slot {marker.name!r}") from None
    return marker.convert(value) if marker.convert is not None else value
