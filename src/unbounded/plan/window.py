"""Window-function expression nodes: ``f(...) OVER (PARTITION BY ... ORDER BY ... frame)``.

Nodes are frozen like every expression node; ``WindowExpression.display_name`` is the
column name Spark gives (``row_number() OVER (PARTITION BY k ORDER BY v ASC NULLS FIRST
ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)``). The engine computes them in
``unbounded.engine.windows``.
"""

from __future__ import annotations

from dataclasses import dataclass

from unbounded.plan.expressions import AggregateCall, Expression, Literal, SortOrder

__all__ = [
    "UNBOUNDED",
    "RankingCall",
    "WindowExpression",
    "WindowFrame",
    "WindowSpec",
]

UNBOUNDED = None  # a frame bound that is unbounded (preceding as start, following as end)

# Functions Spark prints in upper case with empty parentheses (RankLike.sql).
_UPPER_NAMES = frozenset({"rank", "dense_rank", "percent_rank", "cume_dist"})
# Functions whose frame Spark fixes, whatever the window specification says.
_ROW_FRAMED = frozenset({"row_number", "rank", "dense_rank", "percent_rank", "cume_dist",
                         "ntile"})


@dataclass(frozen=True)
class RankingCall(Expression):
    """A function that only means something over a window: ``row_number``, ``rank``,
    ``dense_rank``, ``percent_rank``, ``cume_dist``, ``ntile``, ``lag``, ``lead``,
    ``nth_value`` (which, unlike the others, reads the window's frame)."""

    name: str
    args: tuple[Expression, ...] = ()

    def children(self) -> tuple[Expression, ...]:
        return self.args

    def display_name(self) -> str:
        if self.name in _UPPER_NAMES:
            return f"{self.name.upper()}()"
        if self.name == "nth_value":  # Spark's NthValue.sql: the flag is a suffix
            ignore = " ignore nulls" if self.ignores_nulls() else ""
            return f"nth_value({self.args[0].display_name()}, " \
                   f"{self.args[1].display_name()}){ignore}"
        return f"{self.name}({', '.join(a.display_name() for a in self.args)})"

    def ignores_nulls(self) -> bool:
        """nth_value's third argument: skip NULL values when counting rows."""
        return len(self.args) > 2 and self.args[2] == Literal(True)

    def offset(self) -> int:
        """lag/lead: how many rows back (negative) or ahead (positive)."""
        assert isinstance(self.args[1], Literal)
        n = int(self.args[1].value)
        return -n if self.name == "lag" else n


@dataclass(frozen=True)
class WindowFrame:
    """``ROWS``/``RANGE BETWEEN start AND end``; offsets relative to the current row
    (0), ``UNBOUNDED`` (None) for the partition's edge."""

    kind: str  # "rows" or "range"
    start: int | None
    end: int | None

    def __post_init__(self) -> None:
        if self.kind not in ("rows", "range"):
            raise ValueError(f"A window frame is 'rows' or 'range', not {self.kind!r}")

    def sql(self) -> str:
        return f"{self.kind.upper()} BETWEEN {_bound(self.start, 'PRECEDING')} AND " \
               f"{_bound(self.end, 'FOLLOWING')}"


def _bound(value: int | None, unbounded: str) -> str:
    """Spark prints a literal offset as ``<n> FOLLOWING``, negative ones too."""
    if value is None:
        return f"UNBOUNDED {unbounded}"
    return "CURRENT ROW" if value == 0 else f"{value} FOLLOWING"


@dataclass(frozen=True)
class WindowSpec:
    """Partitioning, ordering and (optional) explicit frame of a window."""

    partition_by: tuple[Expression, ...] = ()
    order_by: tuple[SortOrder, ...] = ()
    frame: WindowFrame | None = None

    def frame_for(self, function: Expression) -> WindowFrame:
        """Spark's frame: fixed for ranking/offset functions; else the explicit one; else
        RANGE UNBOUNDED PRECEDING..CURRENT ROW with ordering, the whole partition without."""
        if isinstance(function, RankingCall) and function.name in ("lag", "lead"):
            return WindowFrame("rows", function.offset(), function.offset())
        if isinstance(function, RankingCall) and function.name in _ROW_FRAMED:
            return WindowFrame("rows", UNBOUNDED, 0)
        if self.frame is not None:
            return self.frame
        if self.order_by:
            return WindowFrame("range", UNBOUNDED, 0)
        return WindowFrame("rows", UNBOUNDED, UNBOUNDED)

    def sql(self, function: Expression) -> str:
        parts = []
        if self.partition_by:
            parts.append("PARTITION BY " + ", ".join(p.display_name() for p in self.partition_by))
        if self.order_by:
            parts.append("ORDER BY " + ", ".join(_order_sql(o) for o in self.order_by))
        parts.append(self.frame_for(function).sql())
        return "(" + " ".join(parts) + ")"


def _order_sql(order: SortOrder) -> str:
    nulls_first = order.nulls_first if order.nulls_first is not None else order.ascending
    direction = "ASC" if order.ascending else "DESC"
    return f"{order.child.display_name()} {direction} NULLS {'FIRST' if nulls_first else 'LAST'}"


@dataclass(frozen=True)
class WindowExpression(Expression):
    """``function OVER spec``; ``function`` is an aggregate call or a ``RankingCall``."""

    function: Expression
    spec: WindowSpec

    def __post_init__(self) -> None:
        if not isinstance(self.function, (AggregateCall, RankingCall)):
            raise TypeError(
                f"{self.function.display_name()} is not a window function; use an aggregate "
                "(sum, count, ...) or row_number, rank, dense_rank, lag, lead with over().")
        if isinstance(self.function, RankingCall) and not self.spec.order_by:
            raise ValueError(
                f"[WINDOW_FUNCTION_WITHOUT_ORDER_BY] Window function {self.function.name}() "
                "requires the window to be ordered; add orderBy(...) to the window.")

    def children(self) -> tuple[Expression, ...]:
        return (self.function, *self.spec.partition_by, *self.spec.order_by)

    def display_name(self) -> str:
        return f"{self.function.display_name()} OVER {self.spec.sql(self.function)}"
