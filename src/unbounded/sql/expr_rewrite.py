"""Top-down rewriting of expression trees, shared by the SQL translator and the plans of
``pivot``/``rollup``/``cube`` (``unbounded.sql.grouping_ops``), which both replace
sub-expressions (a grouped key by its column, a ``grouping()`` call by its value).

>>> from unbounded.plan.expressions import ColumnRef, Literal
>>> transform(ColumnRef("x"), lambda e: Literal(1) if e == ColumnRef("x") else None)
Literal(value=1, data_type=None)
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from unbounded.plan.expressions import Expression

__all__ = ["transform"]


def transform(expr: Expression, fn: Callable[[Expression], Expression | None]) -> Expression:
    """``expr`` with each node ``fn`` maps (to a non-None value) replaced, top down."""
    replaced = fn(expr)
    if replaced is not None:
        return replaced
    if not dataclasses.is_dataclass(expr):
        return expr
    changes: dict[str, Any] = {}
    for f in dataclasses.fields(expr):
        value = getattr(expr, f.name)
        new = _transform_value(value, fn)
        if new is not value:
            changes[f.name] = new
    return dataclasses.replace(expr, **changes) if changes else expr  # type: ignore[type-var]


def _transform_value(value: Any, fn: Callable[[Expression], Expression | None]) -> Any:
    if isinstance(value, Expression):
        return transform(value, fn)
    if isinstance(value, tuple) and any(isinstance(v, (Expression, tuple)) for v in value):
        items = tuple(_transform_value(v, fn) for v in value)
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    return value
