"""``spark.sql``'s parameters, as PySpark binds them: ``args`` fill ``:name`` and ``?``
markers with SQL literals (in the parsed tree, so a value is never re-parsed as SQL), and
``**kwargs`` fill ``{name}`` fields of the query text (``string.Formatter``).

Example:
    >>> from unbounded.sql.expr_parser import parse_statement
    >>> bind_parameters(parse_statement("SELECT ?"), {})  # doctest: +IGNORE_EXCEPTION_DETAIL
    Traceback (most recent call last):
    unbounded.errors.AnalysisException: [UNBOUND_SQL_PARAMETER] ...
    >>> bind_parameters(parse_statement("SELECT :n * 2"), {"n": 21}).sql(dialect="spark")
    'SELECT 21 * 2'
"""

from __future__ import annotations

import datetime as dt
import string
import uuid
from typing import TYPE_CHECKING, Any

from sqlglot import exp

from unbounded.errors import AnalysisException
from unbounded.plan.expressions import ColumnRef, Literal

if TYPE_CHECKING:
    from unbounded.session import SparkSession

__all__ = ["QueryFormatter", "bind_parameters"]


class QueryFormatter(string.Formatter):
    """PySpark's ``spark.sql(query, **kwargs)`` formatting: a DataFrame becomes a
    temporary view for the query's translation, a string a SQL string literal, a Column
    its name; anything else its ``str``."""

    def __init__(self, session: SparkSession) -> None:
        self.session = session
        self.views: list[tuple[object, str]] = []

    def get_field(self, field_name: str, args: Any, kwargs: Any) -> Any:
        value, first = super().get_field(field_name, args, kwargs)
        return self.sql_text(value, field_name), first

    def sql_text(self, value: Any, field_name: str) -> Any:
        from unbounded.sql.column import Column
        from unbounded.sql.dataframe import DataFrame

        if isinstance(value, DataFrame):
            for df, name in self.views:
                if df is value:
                    return name
            name = f"_unbounded_{uuid.uuid4().hex}"
            self.views.append((value, name))
            value.createOrReplaceTempView(name)
            return name
        if isinstance(value, Column):
            if not isinstance(value.expr, ColumnRef):
                raise AnalysisException(
                    f"[VALUE_NOT_PLAIN_COLUMN_REFERENCE] Value {value.expr.display_name()} in "
                    f"{field_name} should be a plain column reference such as `df.col` or "
                    "`col('column')`.", error_class="VALUE_NOT_PLAIN_COLUMN_REFERENCE")
            return value.expr.name
        if isinstance(value, str):
            return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return value

    def drop_views(self) -> None:
        """The plans hold the views' plans, so the names can go once translated."""
        for _, name in self.views:
            self.session.catalog.dropTempView(name)


def bind_parameters(tree: exp.Expr, args: dict[str, Any] | list[Any] | None) -> exp.Expr:
    """``:name`` markers bound from a dict, ``?`` markers (in text order) from a list, as
    SQL literals; a marker without a value fails with Spark's error class."""
    markers = [n for n in tree.walk(bfs=False) if isinstance(n, exp.Placeholder)]
    if not markers:
        return tree
    positional = iter(args) if isinstance(args, list) else None
    for marker in markers:
        name = str(marker.this) if marker.this is not None else ""
        if positional is not None and not name:
            value = next(positional, _MISSING)
        elif isinstance(args, dict) and name:
            value = args.get(name, _MISSING)
        else:
            value = _MISSING
        if value is _MISSING:
            raise AnalysisException(
                f"[UNBOUND_SQL_PARAMETER] Found the unbound parameter: {name or '?'}. Please, "
                "fix `args` and provide a mapping of the parameter to a SQL literal.",
                error_class="UNBOUND_SQL_PARAMETER")
        marker.replace(_literal_node(value))
    return tree


_MISSING = object()


def _literal_node(value: Any) -> exp.Expr:
    """A Python value (or ``lit(...)`` Column) as the sqlglot literal expr_parser reads."""
    from unbounded.sql.column import Column

    if isinstance(value, Column) and isinstance(value.expr, Literal):
        value = value.expr.value
    if value is None:
        return exp.Null()
    if isinstance(value, bool):
        return exp.Boolean(this=value)
    if isinstance(value, (int, float)):
        return exp.Literal.number(value)
    if isinstance(value, str):
        return exp.Literal.string(value)
    if isinstance(value, (dt.datetime, dt.date)):
        kind = "TIMESTAMP" if isinstance(value, dt.datetime) else "DATE"
        return exp.cast(exp.Literal.string(value.isoformat()), kind)
    raise AnalysisException(
        f"[INVALID_SQL_ARG] The argument {value!r} of `sql()` is invalid; pass a Python "
        "literal (number, string, bool, date, datetime, None) or lit(...).",
        error_class="INVALID_SQL_ARG")
