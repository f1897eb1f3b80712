"""PySpark's ``Window`` and ``WindowSpec``: build the spec that ``Column.over`` takes.

>>> w = Window.partitionBy("k").orderBy("v").rowsBetween(Window.unboundedPreceding, 0)
>>> w.spec.frame.sql()
'ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW'
"""

from __future__ import annotations

import sys
from typing import Any

from unbounded.plan import window as W
from unbounded.plan.expressions import SortOrder
from unbounded.sql.column import column_of

__all__ = ["Window", "WindowSpec"]

_JAVA_LONG_MIN = -(1 << 63)
_JAVA_LONG_MAX = (1 << 63) - 1


def _flatten(cols: tuple[Any, ...]) -> tuple[Any, ...]:
    if len(cols) == 1 and isinstance(cols[0], (list, tuple)):
        return tuple(cols[0])
    return cols


def _start(value: int) -> int | None:
    return W.UNBOUNDED if value <= max(-sys.maxsize, _JAVA_LONG_MIN) else int(value)


def _end(value: int) -> int | None:
    return W.UNBOUNDED if value >= min(sys.maxsize, _JAVA_LONG_MAX) else int(value)


class WindowSpec:
    """An immutable window specification; each method returns a new one."""

    __slots__ = ("spec",)

    def __init__(self, spec: W.WindowSpec | None = None) -> None:
        self.spec = spec or W.WindowSpec()

    def partitionBy(self, *cols: Any) -> WindowSpec:
        keys = tuple(column_of(c).expr for c in _flatten(cols))
        return WindowSpec(W.WindowSpec(keys, self.spec.order_by, self.spec.frame))

    def orderBy(self, *cols: Any) -> WindowSpec:
        orders = tuple(_sort_order(c) for c in _flatten(cols))
        return WindowSpec(W.WindowSpec(self.spec.partition_by, orders, self.spec.frame))

    def rowsBetween(self, start: int, end: int) -> WindowSpec:
        return self._framed(W.WindowFrame("rows", _start(start), _end(end)))

    def rangeBetween(self, start: int, end: int) -> WindowSpec:
        return self._framed(W.WindowFrame("range", _start(start), _end(end)))

    def _framed(self, frame: W.WindowFrame) -> WindowSpec:
        return WindowSpec(W.WindowSpec(self.spec.partition_by, self.spec.order_by, frame))

    def __repr__(self) -> str:
        return f"<WindowSpec {self.spec}>"


def _sort_order(col: Any) -> SortOrder:
    expr = column_of(col).expr
    return expr if isinstance(expr, SortOrder) else SortOrder(expr, True)


class Window:
    """Entry points of a window spec, as in ``pyspark.sql.Window``."""

    unboundedPreceding: int = _JAVA_LONG_MIN
    unboundedFollowing: int = _JAVA_LONG_MAX
    currentRow: int = 0

    @staticmethod
    def partitionBy(*cols: Any) -> WindowSpec:
        return WindowSpec().partitionBy(*cols)

    @staticmethod
    def orderBy(*cols: Any) -> WindowSpec:
        return WindowSpec().orderBy(*cols)

    @staticmethod
    def rowsBetween(start: int, end: int) -> WindowSpec:
        return WindowSpec().rowsBetween(start, end)

    @staticmethod
    def rangeBetween(start: int, end: int) -> WindowSpec:
        return WindowSpec().rangeBetween(start, end)
