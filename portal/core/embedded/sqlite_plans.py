"""Statements compiled once for `sqlite3`, and how values go in and rows come out.

`plan_for` compiles a SQLAlchemy statement for the dialect once per process: its SQL, the order
of its placeholders, the statement's own values (literals it compares with) and the dialect's
conversions in both directions. `values` picks a call's parameters in that order. A statement
of numbered rows (`NAME_N`: row N's NAME, as a chat batch's are) may take its rows in place
(`placed_values`): each row's values one after another between the statement's own, no dict between.
`engine.InlineConnection` runs the plans.
"""

from __future__ import annotations

import functools
import itertools
import operator
from collections import namedtuple
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, NamedTuple, cast

import sqlalchemy as sa
from sqlalchemy.engine import Compiled
from sqlalchemy.sql.compiler import SQLCompiler

# Statements kept compiled for `sqlite3`; they are built once, so a few dozen.
MAX_PLANS = 512


class Plan(NamedTuple):
    """A statement compiled for `sqlite3`: its SQL, and how values go in and come out."""

    statement: Any  # kept, so that the id it is found by is never another statement's
    sql: str
    compiled: Compiled
    names: tuple[str, ...]  # the bound parameters, in the order of the SQL's placeholders
    # Picking the values in one call: the statement's own values (a literal it compares with)
    # under the caller's, then `pick`; then each (position, conversion) where there is one.
    own: dict[str, Any]
    pick: Callable[[dict[str, Any]], tuple[Any, ...]]
    into: tuple[tuple[int, Callable[[Any], Any]], ...]
    out: tuple[tuple[int, Callable[[Any], Any]], ...]  # (column, conversion) where there is one
    row: Any  # a named tuple of the columns: rows read by name, as SQLAlchemy's are


def _picker(names: tuple[str, ...]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    if len(names) == 1:  # (itemgetter of one name gives the value, not a tuple)
        (name,) = names
        return lambda given: (given[name],)
    return operator.itemgetter(*names) if names else lambda given: ()


_PROBE = datetime(2001, 2, 3, 4, 5, 6, 7)


def _bind_processor(type_: Any, dialect: Any) -> Callable[[Any], Any] | None:
    """The dialect's conversion of a value into the database; SQLite's DateTime text made by
    `isoformat` (SQLAlchemy formats it from a dict of fields, ten times slower), where the two
    make the same text."""
    process = type_.dialect_impl(dialect).bind_processor(dialect)
    if process is None or dialect.name != "sqlite" or not isinstance(type_, sa.DateTime):
        return process
    if process(_PROBE) != _datetime_text(_PROBE, process):
        return process  # a storage format of its own
    return functools.partial(_datetime_text, slow=process)


# The last datetime written and its text: a write gives the same `now` to several columns
# (a ticket's created_at and updated_at, its first reply's, its new requester's).
_last_datetime: tuple[Any, str] = (None, "")


def _datetime_text(value: Any, slow: Callable[[Any], Any]) -> Any:
    global _last_datetime
    if type(value) is datetime:  # (SQLAlchemy's text has no zone: the fields as they are)
        last, text = _last_datetime
        if value is not last:
            text = value.isoformat(" ", "microseconds")[:26]
            _last_datetime = (value, text)
        return text
    return slow(value)


def _plan(statement: Any, dialect: Any) -> Plan:
    compiled = statement.compile(dialect=dialect)
    if compiled.post_compile_params or compiled.literal_execute_params:
        raise ValueError("`fetch` takes statements without expanding (IN) parameters")
    names = tuple(compiled.positiontup or ())
    # (The dialect's own form of each type: SQLite's DateTime writes and reads its own text.)
    by_name = {
        name: _bind_processor(bind.type, dialect) for bind, name in compiled.bind_names.items()
    }
    into = tuple(by_name.get(name) for name in names)
    # Parameters the caller must give, or computed per call, have no value here: without
    # one, `values` lets SQLAlchemy build them (or say which is missing).
    own = {
        name: bind.value
        for bind, name in compiled.bind_names.items()
        if not bind.required and bind.callable is None
    }
    columns = (
        statement.selected_columns if hasattr(statement, "selected_columns") else ()
    ) or getattr(statement, "exported_columns", ())
    out = [column.type.dialect_impl(dialect).result_processor(dialect, None) for column in columns]
    return Plan(
        statement,
        compiled.string,
        compiled,
        names,
        own,
        _picker(names),
        tuple((i, convert) for i, convert in enumerate(into) if convert is not None),
        tuple((i, convert) for i, convert in enumerate(out) if convert is not None),
        namedtuple("Row", [column.key for column in columns], rename=True),
    )


def values(plan: Plan, parameters: dict[str, Any]) -> list[Any]:
    """The statement's values as `sqlite3` takes them: picked and converted, or (one missing,
    or computed per call) as SQLAlchemy builds them, which raises for a missing one."""
    try:
        found = list(plan.pick(plan.own | parameters if plan.own else parameters))
    except KeyError:
        given: Any = plan.compiled.construct_params(parameters)
        found = [given[name] for name in plan.names]
    for i, convert in plan.into:
        found[i] = convert(found[i])
    return found


# The plans of every inline engine of this process, by the id of the statement they run: every
# engine here compiles for the same dialect, and one started anew (as in each test) needs no
# compiling again.
_PLANS: dict[int, Plan] = {}


def plan_for(statement: Any, dialect: Any) -> Plan:
    plan = _PLANS.get(id(statement))
    if plan is None:
        if len(_PLANS) >= MAX_PLANS:
            _PLANS.clear()  # statements built per call would grow it without bound
        plan = _PLANS[id(statement)] = _plan(statement, dialect)
    return plan


class _Layout(NamedTuple):
    """Where numbered rows go among a statement's values: after `head` (its own values, ready
    for `sqlite3`), one row after another, then `tail`; each row's conversions by position in
    the row, the same for every row."""

    head: list[Any]
    tail: list[Any]
    convert: tuple[tuple[int, Callable[[Any], Any]], ...]


_LAYOUTS: dict[tuple[int, tuple[str, ...], int], _Layout | None] = {}


def numbered(names: tuple[str, ...], rows: Sequence[Sequence[Any]]) -> dict[str, Any]:
    """Numbered rows as parameters by name: `NAME_N` is row N's value of NAME."""
    return {
        f"{name}_{n}": value
        for n, row in enumerate(rows)
        for name, value in zip(names, row, strict=True)
    }


def _layout(plan: Plan, names: tuple[str, ...], count: int) -> _Layout | None:
    """How `count` rows of `names` go among the statement's values, or None when they are not
    one row after another between values of its own (then they are given by name)."""
    key = (id(plan.statement), names, count)
    if key not in _LAYOUTS:
        if len(_LAYOUTS) >= MAX_PLANS:
            _LAYOUTS.clear()
        _LAYOUTS[key] = _find_layout(plan, names, count)
    return _LAYOUTS[key]


def _find_layout(plan: Plan, names: tuple[str, ...], count: int) -> _Layout | None:
    rows = tuple(f"{name}_{n}" for n in range(count) for name in names)
    starts = [i for i in range(len(plan.names) - len(rows) + 1) if plan.names[i] == rows[0]]
    start = next((i for i in starts if plan.names[i : i + len(rows)] == rows), None)
    if start is None:
        return None
    end = start + len(rows)
    if not all(name in plan.own for name in plan.names[:start] + plan.names[end:]):
        return None
    compiled = cast(SQLCompiler, plan.compiled)
    binds = {name: bind for bind, name in compiled.bind_names.items()}
    for name in names:  # every row's value of a name is of one type, so converted alike
        if len({repr(binds[f"{name}_{n}"].type) for n in range(count)}) != 1:
            return None
    convert = dict(plan.into)

    def own(i: int) -> Any:  # the statement's own value at `i`, as `sqlite3` takes it
        value = plan.own[plan.names[i]]
        return convert[i](value) if i in convert else value

    return _Layout(
        [own(i) for i in range(start)],
        [own(i) for i in range(end, len(plan.names))],
        tuple((j, convert[start + j]) for j in range(len(names)) if start + j in convert),
    )


_NOTHING = object()


def placed_values(
    plan: Plan, names: tuple[str, ...], rows: Sequence[Sequence[Any]]
) -> list[Any] | None:
    """Numbered rows' values in place among the statement's own, converted, or None when the
    statement does not take them one row after another (then give them by name)."""
    placed = _layout(plan, names, len(rows))
    if placed is None:
        return None
    found = [*placed.head, *itertools.chain.from_iterable(rows), *placed.tail]
    if len(found) != len(plan.names):
        raise ValueError(f"each row must have a value for each of {names}")
    width, first = len(names), len(placed.head)
    for j, convert in placed.convert:
        # Rows share many values (a batch's moment, True and False): each converted once.
        last_in: Any = _NOTHING
        last_out: Any = None
        for i in range(first + j, first + width * len(rows), width):
            value = found[i]
            if value is not last_in:
                last_in, last_out = value, convert(value)
            found[i] = last_out
    return found
