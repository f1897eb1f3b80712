"""SQL's ``PIVOT`` and ``UNPIVOT`` clauses of a FROM item, as Spark's analyzer resolves
them, over the plans of the DataFrame API:

* ``t PIVOT (agg [AS a], ... FOR col IN (v [AS x], ...))`` (``agg`` an aggregate or an
  expression over aggregates and literals, ``sum(v) + 1``) groups by every column of
  ``t`` that neither the aggregates nor the pivot column read, then spreads one column per
  value (and aggregate): named by the value's alias or text, then ``_<aggregate alias or
  SQL>`` when there are several aggregates (``grouping_ops.pivot_plan``). Several pivot
  columns, ``FOR (a, b) IN (('x', 1) AS x1, ...)``, match a tuple of values.
* ``t UNPIVOT [INCLUDE|EXCLUDE NULLS] (val FOR name IN (c1 [AS x], ...))`` gives one row
  per input row and listed column: the other columns, ``name`` (the alias or the column's
  name) and ``val`` (the columns' least common type); ``(v1, v2) FOR name IN ((a, b) AS
  ab, ...)`` unpivots column groups (an unaliased group is named ``a_b``). Rows whose
  values are all NULL go unless INCLUDE NULLS, as in Spark.

Example:
    >>> from unbounded.sql import SparkSession
    >>> spark = SparkSession.builder.create()
    >>> spark.createDataFrame([("r", "x", 1), ("r", "y", 2)], "k STRING, c STRING, v INT") \\
    ...     .createOrReplaceTempView("p")
    >>> spark.sql("SELECT * FROM p PIVOT (sum(v) FOR c IN ('x', 'y' AS why))").collect()
    [Row(k='r', x=1, why=2)]
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from unbounded.errors import AnalysisException
from unbounded.plan.expressions import (
    AggregateCall,
    ColumnRef,
    Expression,
    Literal,
    PythonUDF,
    walk,
)
from unbounded.plan.logical import LogicalPlan
from unbounded.sql.grouping_ops import Pivot, pivot_plan

if TYPE_CHECKING:
    from unbounded.session import SparkSession
    from unbounded.sql.column import Column
    from unbounded.sql.dataframe import DataFrame

__all__ = ["pivot_clause"]

Convert = Callable[[exp.Expr], Expression]


def pivot_clause(session: SparkSession, child: LogicalPlan, node: exp.Pivot,
                 convert: Convert) -> LogicalPlan:
    """The plan of ``child`` with one PIVOT or UNPIVOT clause applied."""
    from unbounded.sql.dataframe import DataFrame

    frame = DataFrame(child, session)
    if node.args.get("unpivot"):
        return _unpivot(frame, node)._plan
    return _pivot(frame, node, convert)


# ---- PIVOT -------------------------------------------------------------------------
def _pivot(frame: DataFrame, node: exp.Pivot, convert: Convert) -> LogicalPlan:
    from unbounded.sql.column import Column
    from unbounded.sql.functions import struct

    aggs = tuple(convert(e) for e in node.expressions)
    for agg, source in zip(aggs, node.expressions, strict=True):
        _check_aggregated(agg, source)
    (field,) = node.args["fields"]
    columns = [convert(c) for c in _members(field.this)]
    column = columns[0] if len(columns) == 1 else struct(*(Column(c) for c in columns)).expr
    data_type = frame.select(Column(column)).schema.fields[0].dataType
    values, labels = zip(*(_pivot_value(v, convert, len(columns)) for v in field.expressions),
                         strict=True)
    keys = _implicit_keys(frame, (*aggs, *columns))
    return pivot_plan(frame._plan, keys, Pivot(column, data_type, values, labels), aggs)


def _check_aggregated(agg: Expression, source: exp.Expr) -> None:
    """Spark's rule: a pivot value is an aggregate or an expression over aggregates and
    literals (``sum(v) + 1``); a column read outside an aggregate is named."""
    loose = _outside_aggregates(agg)
    if loose is not None:
        _not_aggregated(loose.name)
    if not any(_is_aggregate(n) for n in walk(agg)):
        _not_aggregated(source.sql("spark"))


def _outside_aggregates(e: Expression) -> ColumnRef | None:
    if _is_aggregate(e):
        return None
    if isinstance(e, ColumnRef):
        return e
    return next((c for c in map(_outside_aggregates, e.children()) if c is not None), None)


def _not_aggregated(shown: str) -> None:
    raise AnalysisException(
        f"Aggregate expression required for pivot, but '{shown}' did not appear in any "
        "aggregate function.", error_class="_LEGACY_ERROR_TEMP_1006")


def _is_aggregate(e: Expression) -> bool:
    return isinstance(e, AggregateCall) or (isinstance(e, PythonUDF) and e.is_aggregate)


def _pivot_value(node: exp.Expr, convert: Convert, width: int) -> tuple[Any, str | None]:
    label = node.alias if isinstance(node, exp.PivotAlias) else None
    value = node.this if isinstance(node, exp.PivotAlias) else node
    items = [convert(v) for v in _members(value)]
    if any(not isinstance(i, Literal) for i in items) or len(items) != width:
        raise AnalysisException(
            f"[NON_LITERAL_PIVOT_VALUES] Literal expressions required for pivot values, "
            f"found {value.sql('spark')}.", error_class="NON_LITERAL_PIVOT_VALUES")
    literals = [i.value for i in items if isinstance(i, Literal)]
    return (literals[0] if width == 1 else tuple(literals)), label or None


def _implicit_keys(frame: DataFrame, used: tuple[Expression, ...]) -> tuple[Expression, ...]:
    """Spark's pivot groups by every input column the aggregates and pivot columns do not
    read, in input order."""
    read = {_last_part(n.name) for e in used for n in walk(e) if isinstance(n, ColumnRef)}
    return tuple(ColumnRef(_quoted(c)) for c in frame.columns if c.lower() not in read)


def _last_part(name: str) -> str:
    parts = name.split("`")
    bare = parts[1] if len(parts) == 3 and not parts[0] else name.rsplit(".", maxsplit=1)[-1]
    return bare.lower()


def _quoted(name: str) -> str:
    return "`" + name.replace("`", "``") + "`" if not name.isidentifier() else name


def _members(node: exp.Expr) -> list[exp.Expr]:
    if isinstance(node, exp.Tuple):
        return list(node.expressions)
    if isinstance(node, exp.Paren):
        return _members(node.this)
    return [node]


# ---- UNPIVOT -----------------------------------------------------------------------
def _unpivot(frame: DataFrame, node: exp.Pivot) -> DataFrame:
    from unbounded.sql import functions as F

    value_names = [i.name for i in _members(node.expressions[0])]
    (field,) = node.args["fields"]
    groups = [_unpivot_group(g, len(value_names)) for g in field.expressions]
    listed = {_last_part(c) for _, columns in groups for c in columns}
    ids = [_quoted(c) for c in frame.columns if c.lower() not in listed]
    targets = [_value_type(frame, [cols[i] for _, cols in groups])
               for i in range(len(value_names))]
    rows = [F.struct(F.lit(label).alias("n"), *(
        F.col(c).cast(t).alias(f"v{i}") for i, (c, t) in enumerate(zip(cols, targets,
                                                                      strict=True))))
            for label, cols in groups]
    name = field.this.name
    exploded = frame.select(*ids, F.explode(F.array(*rows)).alias("__unbounded_unpivot"))
    out = exploded.select(*ids, F.col("__unbounded_unpivot.n").alias(name), *(
        F.col(f"__unbounded_unpivot.v{i}").alias(v) for i, v in enumerate(value_names)))
    if node.args.get("include_nulls"):
        return out
    return out.filter(_any_not_null([F.col(_quoted(v)) for v in value_names]))


def _any_not_null(values: list[Column]) -> Column:
    condition = values[0].isNotNull()
    for value in values[1:]:
        condition = condition | value.isNotNull()
    return condition


def _unpivot_group(node: exp.Expr, width: int) -> tuple[str, list[str]]:
    """One IN item: its name (alias, else the columns' names joined by ``_``) and
    columns."""
    alias = node.alias if isinstance(node, exp.PivotAlias) else None
    members = _members(node.this if isinstance(node, exp.PivotAlias) else node)
    names = [m.sql("spark") for m in members]
    if len(names) != width:
        raise AnalysisException(
            f"[UNPIVOT_VALUE_SIZE_MISMATCH] All unpivot value columns must have the same "
            f"size as there are value column names ({width}).",
            error_class="UNPIVOT_VALUE_SIZE_MISMATCH")
    return alias or "_".join(m.name for m in members), names


def _value_type(frame: DataFrame, columns: list[str]) -> Any:
    from unbounded.sql.dataframe_ops import _common_type

    types = [f.dataType for f in frame.select(*columns).schema.fields]
    return _common_type(types, [_last_part(c) for c in columns])

