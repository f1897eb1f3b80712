"""Plans for ``pivot``, ``rollup`` and ``cube``, built from the nodes the engine already
runs (Aggregate, Project, Union), as Spark's analyzer rewrites them:

- a pivot aggregates by the keys and the pivot column, then keeps, per key and pivot
  value, the one aggregated value (Spark's ``PivotFirst``): a missing combination is NULL;
- a rollup or cube copies each row once per grouping set, the rolled-up keys NULL and
  ``grouping(col)``/``grouping_id(...)`` the set's constants (Spark's ``Expand``), then
  aggregates once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from unbounded.engine.ansi import java_double
from unbounded.errors import AnalysisException
from unbounded.plan import types as T
from unbounded.plan.expressions import (
    AggregateCall,
    Alias,
    BinaryOp,
    CaseWhen,
    Cast,
    ColumnRef,
    Expression,
    FunctionCall,
    GetField,
    Literal,
    Star,
    walk,
)
from unbounded.plan.logical import Aggregate, LogicalPlan, Project
from unbounded.sql.expr_rewrite import transform

__all__ = ["GroupingSets", "Pivot", "cube_sets", "grouping_sets_plan", "pivot_name",
           "pivot_plan", "rollup_sets", "uses_grouping"]

_PIVOT = "__unbounded_pivot"
_GROUPING = ("grouping", "grouping_id")
_EXPAND = "__unbounded_grouping_set"
_SET_ID = "__unbounded_grouping_set_id"


@dataclass(frozen=True)
class Pivot:
    """``groupBy(...).pivot(column, values)``: ``values`` already resolved (sorted
    distinct values when the caller gave none), each cast to the column's type."""

    column: Expression
    data_type: T.DataType
    values: tuple[Any, ...]
    labels: tuple[str | None, ...] = ()  # SQL's ``IN ('x' AS ex)``: the value's name

    def label(self, position: int) -> str:
        """The name of the value at ``position``: its alias, else its text as Spark casts
        it to a string (a tuple of several pivot columns prints as ``{x, true}``)."""
        given = self.labels[position] if self.labels else None
        return given if given is not None else _value_text(self.values[position])


@dataclass(frozen=True)
class GroupingSets:
    """Which keys (by index) each aggregation of a rollup or cube groups by, and the
    keys' types (a rolled-up key is a NULL of its type)."""

    sets: tuple[tuple[int, ...], ...]
    key_types: tuple[T.DataType, ...]


def rollup_sets(n: int) -> tuple[tuple[int, ...], ...]:
    """``rollup(a, b)``: (a, b), (a), () -- Spark's order."""
    return tuple(tuple(range(i)) for i in range(n, -1, -1))


def cube_sets(n: int) -> tuple[tuple[int, ...], ...]:
    """``cube(a, b)``: every subset, as Spark lists them (by grouping id ascending)."""
    return tuple(tuple(i for i in range(n) if not mask >> (n - 1 - i) & 1)
                 for mask in range(2 ** n))


# ---- pivot -------------------------------------------------------------------------
def pivot_name(value: Any, agg: Expression, single: bool) -> str:
    """Spark's pivot output name: the value as a string, then ``_<aggregate>`` when
    there are several aggregates."""
    return _joined_name(_value_text(value), agg, single)


def _joined_name(text: str, agg: Expression, single: bool) -> str:
    return text if single else f"{text}_{agg.display_name()}"


def _value_text(value: Any) -> str:
    if isinstance(value, tuple):
        return "{" + ", ".join(_value_text(v) for v in value) + "}"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return _double_text(value)
    return str(value)  # integers, strings, dates and decimals print as Spark casts them


def _double_text(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return java_double(value)


def pivot_plan(child: LogicalPlan, keys: tuple[Expression, ...], pivot: Pivot,
               aggs: tuple[Expression, ...]) -> LogicalPlan:
    """Aggregate by keys and pivot value, then spread each value's row into columns."""
    inner = Aggregate(child, (*keys, Alias(pivot.column, _PIVOT)),
                      tuple(Alias(a, f"__unbounded_agg{i}") for i, a in enumerate(aggs)))
    outer_keys = tuple(ColumnRef(k.display_name(), ordinal=i) for i, k in enumerate(keys))
    single = len(aggs) == 1
    spread = tuple(_spread(pivot, position, len(keys), i, agg, single)
                   for position in range(len(pivot.values)) for i, agg in enumerate(aggs))
    return Aggregate(inner, outer_keys, spread)


def _spread(pivot: Pivot, position: int, n_keys: int, index: int,  # noqa: PLR0917
            agg: Expression, single: bool) -> Expression:
    pivot_ref = ColumnRef(_PIVOT, ordinal=n_keys)
    matches = _matches(pivot_ref, pivot.values[position], pivot.data_type)
    picked = CaseWhen(((matches, ColumnRef(f"__unbounded_agg{index}",
                                           ordinal=n_keys + 1 + index)),))
    name = _joined_name(pivot.label(position), agg, single)
    return Alias(AggregateCall("first", (picked,), True), name)


def _matches(pivot_ref: Expression, value: Any, data_type: T.DataType) -> Expression:
    """Whether the pivot column holds ``value`` (NULL matches NULL; one field each for a
    tuple of several pivot columns)."""
    if isinstance(value, tuple) and isinstance(data_type, T.StructType):
        fields = [_matches(GetField(pivot_ref, f.name), v, f.dataType)
                  for f, v in zip(data_type.fields, value, strict=True)]
        both = fields[0]
        for more in fields[1:]:
            both = BinaryOp("and", both, more)
        return both
    if isinstance(value, float) and math.isnan(value):
        return Literal(False)  # PySpark 4.3's NaN column is NULL: no row matches it
    return BinaryOp("eq_null_safe", pivot_ref, Cast(Literal(value), data_type))


# ---- rollup and cube ---------------------------------------------------------------
def grouping_sets_plan(child: LogicalPlan, keys: tuple[Expression, ...],
                       sets: GroupingSets, aggs: tuple[Expression, ...]) -> LogicalPlan:
    """Spark's ``Expand``: each row once per grouping set (rolled-up keys NULL, the set's
    grouping values beside), then one aggregation by the keys and the set's id, so a
    NULL key value and a rolled-up key stay apart. One aggregation: streams run it."""
    calls = _grouping_calls(aggs)
    fixed = tuple(a if isinstance(a, Alias) else Alias(a, a.display_name()) for a in aggs)

    def per_set(node: Expression) -> Expression | None:
        if isinstance(node, AggregateCall) and node.name in _GROUPING:
            return AggregateCall("max", (_field(f"c{calls.index(node)}"),))
        return None

    group_by = (*(Alias(_field(f"k{i}"), k.display_name()) for i, k in enumerate(keys)),
                Alias(_field("id"), _SET_ID))
    grouped = Aggregate(_expand(child, keys, sets, calls), group_by,
                        tuple(transform(a, per_set) for a in fixed))
    outputs = [ColumnRef(k.display_name(), ordinal=i) for i, k in enumerate(keys)]
    outputs += [ColumnRef(a.display_name(), ordinal=len(keys) + 1 + i)
                for i, a in enumerate(fixed)]
    return Project(grouped, tuple(outputs))


def _expand(child: LogicalPlan, keys: tuple[Expression, ...], sets: GroupingSets,
            calls: list[AggregateCall]) -> LogicalPlan:
    rows = tuple(_set_row(keys, sets, position, calls) for position in range(len(sets.sets)))
    copies = FunctionCall("explode", (FunctionCall("array", rows),))
    return Project(child, (Star(), Alias(copies, _EXPAND)))


def _field(name: str) -> Expression:
    return GetField(ColumnRef(_EXPAND), name)


def _grouping_calls(aggs: tuple[Expression, ...]) -> list[AggregateCall]:
    found: list[AggregateCall] = []
    for node in (n for a in aggs for n in walk(a)):
        if isinstance(node, AggregateCall) and node.name in _GROUPING and node not in found:
            found.append(node)
    return found


def _set_row(keys: tuple[Expression, ...], sets: GroupingSets, position: int,
             calls: list[AggregateCall]) -> Expression:
    """One grouping set's copy of a row: keys ``k<i>`` (NULL when rolled up), the set's
    ``id`` (its position: a set listed twice gives its rows twice, as in Spark) and each
    grouping call's value ``c<j>``."""
    chosen = sets.sets[position]
    values = [k if i in chosen else Cast(Literal(None), sets.key_types[i])
              for i, k in enumerate(keys)]
    values.append(Literal(position))
    values += [_grouping_value(c, keys, chosen) for c in calls]
    names = (*(f"k{i}" for i in range(len(keys))), "id",
             *(f"c{j}" for j in range(len(calls))))
    return FunctionCall("struct", tuple(values), (("names", names),))


def uses_grouping(expr: Expression) -> bool:
    """Whether ``grouping``/``grouping_id`` appear (only a rollup or cube has them)."""
    return any(isinstance(n, AggregateCall) and n.name in _GROUPING for n in walk(expr))


def _grouping_value(call: AggregateCall, keys: tuple[Expression, ...],
                    chosen: tuple[int, ...]) -> Expression:
    """``grouping(c)``: 1 when ``c`` is rolled up (tinyint); ``grouping_id(c1, ...)``:
    those bits, the first column the highest (bigint; no columns: every key)."""
    names = [k.display_name() for k in keys]
    columns = [a.display_name() for a in call.args] or names
    if call.name == "grouping_id" and columns != names:
        raise AnalysisException(
            f"[GROUPING_ID_COLUMN_MISMATCH] Columns of grouping_id ({','.join(columns)}) "
            f"does not match grouping columns ({','.join(names)}).",
            error_class="GROUPING_ID_COLUMN_MISMATCH")
    bits = []
    for column in columns:
        if column not in names:
            raise AnalysisException(
                f"[GROUPING_COLUMN_MISMATCH] Column of grouping ({column}) can't be found "
                f"in grouping columns {', '.join(names)}.",
                error_class="GROUPING_COLUMN_MISMATCH")
        bits.append(0 if names.index(column) in chosen else 1)
    if call.name == "grouping":
        return Cast(Literal(bits[0]), T.ByteType())
    return Cast(Literal(int("".join(map(str, bits)), 2)), T.LongType())
