"""Which rows of a stream-stream join's state can no longer match: Spark's rules.

Spark (``StreamingSymmetricHashJoinHelper.getStateWatermarkPredicates``) evicts a side's
state in one of two ways:
- **Key watermark**: a join key at some position is an event-time column with a
  watermark (or a window over one) on either side; then on both sides rows whose key at
  that position is at or below the watermark go (a window compares its end).
- **Value watermark**: otherwise, a side that has a watermarked column of its own is
  evicted by a bound solved from the condition's time-range conjuncts. A conjunct
  ``a < b`` (or ``<=``, ``>``, ``>=``) is cut into terms ``a - b``; exactly one term
  must be this side's time column, negated, and the other side's event time is replaced
  by the watermark: ``W + c1 - c2 < thisTime``. The bound is that sum in milliseconds
  (truncated), less one for ``<=``/``>=``; the smallest bound over the conjuncts wins,
  and rows whose watermarked column is at or below it are evicted.

Numbers: interval literals count their microseconds, plain numbers are seconds.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from unbounded.engine.context import OutputColumn
from unbounded.engine.joins import EquiKey, JoinInputs, conjuncts
from unbounded.plan.expressions import (
    Alias,
    BinaryOp,
    Cast,
    ColumnRef,
    Expression,
    FunctionCall,
    Literal,
    UnaryOp,
    walk,
)
from unbounded.plan.logical import Join, LogicalPlan, Project, WithWatermark, walk_plan

__all__ = ["SideEviction", "side_evictions", "state_value_bounds", "watermarked_columns"]

_SWAPPED = {"lt": ("lt", False, 0), "le": ("lt", False, 1), "gt": ("lt", True, 0),
            "ge": ("lt", True, 1)}


@dataclass(frozen=True)
class SideEviction:
    """How one side's state is evicted: rows whose ``column`` (physical name; a window's
    end when ``is_window``) is at or below the bound. ``offsets`` are the value
    watermark's (constant us, minus) pairs; empty for a key watermark (bound = W)."""

    column: str
    is_window: bool = False
    offsets: tuple[tuple[int, int], ...] = ()

    def bound_us(self, watermark_us: int) -> int:
        if not self.offsets:
            return watermark_us
        watermark_ms = watermark_us // 1000
        return min(int((watermark_ms * 1000 + c) / 1000) - minus
                   for c, minus in self.offsets) * 1000

    def predicate(self, bound_us: int) -> pl.Expr:
        column = pl.col(self.column)
        if self.is_window:
            column = column.struct.field("end")
        return column.dt.epoch("us") <= bound_us


def watermarked_columns(plan: LogicalPlan, columns: Sequence[OutputColumn]) -> list[str]:
    """Physical names of ``plan``'s output columns that carry a watermark: the
    withWatermark columns below it, and windows computed over them."""
    marked = {n.column.lower() for n in walk_plan(plan) if isinstance(n, WithWatermark)}
    for node in walk_plan(plan):
        if isinstance(node, Project):
            marked |= {e.display_name().lower() for e in node.exprs if _window_over(e, marked)}
    return [c.physical for c in columns if c.name.lower() in marked]


def _window_over(expr: Expression, marked: set[str]) -> bool:
    inner = expr.child if isinstance(expr, Alias) else expr
    return (isinstance(inner, FunctionCall) and inner.name in ("window", "session_window")
            and any(isinstance(n, ColumnRef) and n.display_name().lower() in marked
                    for n in walk(inner)))


def side_evictions(node: Join, keys: Sequence[EquiKey], inputs: JoinInputs,
                   left_marked: list[str], right_marked: list[str]
                   ) -> tuple[SideEviction | None, SideEviction | None]:
    """The eviction of the left and the right side's state (None: kept forever)."""
    renamed = {v: k for k, v in inputs.right_renames.items()}
    marked = {"left": set(left_marked), "right": {inputs.right_renames.get(c, c)
                                                  for c in right_marked}}
    by_key = _key_evictions(keys, inputs, marked, renamed)
    if by_key is not None:
        return by_key
    left = _value_eviction("left", node, inputs, marked, left_marked)
    right = _value_eviction("right", node, inputs, marked,
                            [inputs.right_renames.get(c, c) for c in right_marked])
    if right is not None:
        right = SideEviction(renamed.get(right.column, right.column), right.is_window,
                             right.offsets)
    return left, right


def _key_evictions(keys: Sequence[EquiKey], inputs: JoinInputs, marked: dict[str, set[str]],
                   renamed: dict[str, str]
                   ) -> tuple[SideEviction | None, SideEviction | None] | None:
    for key in keys:
        lcol, rcol = _plain_column(key.left, inputs), _plain_column(key.right, inputs)
        if not ((lcol and lcol.physical in marked["left"])
                or (rcol and rcol.physical in marked["right"])):
            continue
        return (_key_side(lcol, inputs), None if rcol is None else SideEviction(
            renamed.get(rcol.physical, rcol.physical), _is_struct(rcol, inputs)))
    return None


def _key_side(column: OutputColumn | None, inputs: JoinInputs) -> SideEviction | None:
    return None if column is None else SideEviction(column.physical, _is_struct(column, inputs))


def _is_struct(column: OutputColumn, inputs: JoinInputs) -> bool:
    return isinstance(inputs.ctx.schema[column.physical], pl.Struct)


def _plain_column(expr: Expression, inputs: JoinInputs) -> OutputColumn | None:
    if not isinstance(expr, ColumnRef):
        return None
    column, fields = inputs.ctx.resolve_column(expr)
    return None if fields else column


def _value_eviction(side: str, node: Join, inputs: JoinInputs, marked: dict[str, set[str]],
                    own_marked: list[str]) -> SideEviction | None:
    own = [c for c in own_marked if not isinstance(inputs.ctx.schema[c], pl.Struct)]
    if not own:
        return None
    offsets = state_value_bounds(side, node.condition, inputs, marked)
    return SideEviction(own[0], False, tuple(offsets)) if offsets else None


def state_value_bounds(side: str, condition: Expression | None, inputs: JoinInputs,
                       marked: dict[str, set[str]]) -> list[tuple[int, int]]:
    """Per usable conjunct: (constant in us, 1 for ``<=``/``>=`` else 0)."""
    bounds = []
    for part in conjuncts(condition):
        if not (isinstance(part, BinaryOp) and part.op in _SWAPPED):
            continue
        _, swap, minus = _SWAPPED[part.op]
        lower, upper = (part.right, part.left) if swap else (part.left, part.right)
        constant = _solve(side, lower, upper, inputs, marked)
        if constant is not None:
            bounds.append((constant, minus))
    return bounds


@dataclass(frozen=True)
class _Term:
    """One summand of ``lower - upper``: a column, or a constant in microseconds."""

    column: OutputColumn | None
    negated: bool
    value_us: int = 0

    @property
    def signed_us(self) -> int:
        return -self.value_us if self.negated else self.value_us


def _solve(side: str, lower: Expression, upper: Expression, inputs: JoinInputs,
           marked: dict[str, set[str]]) -> int | None:
    """For ``lower < upper``: the constant c (us) with ``W + c < thisTime``, if any."""
    terms = [*_terms(lower, False, inputs), *_terms(upper, True, inputs)]
    if any(t is None for t in terms):
        return None
    found = [t for t in terms if t is not None]
    mine = [t for t in found if t.column is not None and inputs.side_of(t.column) == side]
    theirs = [t for t in found if t.column is not None and inputs.side_of(t.column) != side]
    other = "right" if side == "left" else "left"
    if len(mine) != 1 or not mine[0].negated or len(theirs) != 1 or theirs[0].negated:
        return None
    assert theirs[0].column is not None
    if theirs[0].column.physical not in marked[other]:
        return None
    return sum(t.signed_us for t in found if t.column is None)


def _terms(expr: Expression, negate: bool, inputs: JoinInputs) -> list[_Term | None]:
    if isinstance(expr, BinaryOp) and expr.op in ("add", "sub"):
        return [*_terms(expr.left, negate, inputs),
                *_terms(expr.right, negate != (expr.op == "sub"), inputs)]
    if isinstance(expr, UnaryOp) and expr.op == "neg":
        return _terms(expr.child, not negate, inputs)
    if isinstance(expr, Cast):
        return _terms(expr.child, negate, inputs)
    if isinstance(expr, ColumnRef):
        column = _plain_column(expr, inputs)
        return [None if column is None else _Term(column, negate)]
    if isinstance(expr, Literal):
        value = _literal_us(expr.value)
        return [None if value is None else _Term(None, negate, value)]
    return [None]


def _literal_us(value: object) -> int | None:
    if isinstance(value, datetime.timedelta):
        return (value.days * 86_400 + value.seconds) * 1_000_000 + value.microseconds
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value * 1_000_000)
    return None
