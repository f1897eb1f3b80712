"""Session windows: ``session_window(ts, gap)`` as a grouping key.

Each row first gets its own window ``[ts, ts + gap)``; rows whose ``ts`` is null or whose
gap is not positive (or not an interval) get none and are dropped. Within one group of
the other keys, windows that overlap or touch (a start equal to the session's end so far)
merge into one session, as Spark's ``MergingSessionsIterator`` does; the key column is
the struct ``{start, end}`` of the merged session.

>>> frame = pl.DataFrame({"k": ["a", "a", "a"], SESSION_START: [0, 5, 20],
...                       SESSION_END: [5, 10, 25]})
>>> out = assign_sessions(frame, ["k"], "s", pl.Int64)
>>> out["s"].struct.unnest().rows()
[(0, 10), (0, 10), (20, 25)]
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeVar

import polars as pl

from unbounded.engine.context import CompileContext
from unbounded.engine.expressions import compile_expr
from unbounded.errors import AnalysisException
from unbounded.plan.expressions import Alias, Expression, FunctionCall
from unbounded.plan.intervals import parse_interval_us

__all__ = [
    "SESSION_END",
    "SESSION_START",
    "SessionBounds",
    "assign_sessions",
    "find_session_window",
    "session_bounds",
]

SESSION_START = "__session_start_us"
SESSION_END = "__session_end_us"
_SESSION_ID = "__session_id"
_UTC_US = pl.Datetime("us", "UTC")

Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)


def _window_call(key: Expression) -> FunctionCall | None:
    inner = key.child if isinstance(key, Alias) else key
    if isinstance(inner, FunctionCall) and inner.name in ("window", "session_window"):
        return inner
    return None


def find_session_window(keys: Sequence[Expression]) -> tuple[Expression, FunctionCall] | None:
    """The grouping key that is a ``session_window`` call, with the call; None if none.

    Raises ``AnalysisException`` for several window keys, as Spark does.
    """
    windows = [(k, c) for k in keys if (c := _window_call(k)) is not None]
    sessions = [(k, c) for k, c in windows if c.name == "session_window"]
    if sessions and len(windows) > 1:
        raise AnalysisException(
            "Multiple time/session window expressions would result in a cartesian product of "
            "rows, therefore they are currently not supported. Group by one window only.",
            error_class="MULTIPLE_TIME_WINDOW_EXPRESSIONS")
    return sessions[0] if sessions else None


@dataclass(frozen=True)
class SessionBounds:
    """Each row's own window as epoch microseconds (``SESSION_START``, ``SESSION_END``),
    and the timestamp type of the session struct's fields."""

    exprs: tuple[pl.Expr, pl.Expr]
    dtype: pl.DataType


def session_bounds(call: FunctionCall, ctx: CompileContext) -> SessionBounds:
    """Compile the per-row window ``[ts, ts + gap)`` of ``call`` over ``ctx``'s columns."""
    ts = compile_expr(call.args[0], ctx)
    ts_type = ctx.dtype_of(ts)
    if isinstance(ts_type, pl.Struct):  # a window column: its last microsecond, as Spark
        ts = ts.struct.field("end")
        ts_type = ctx.dtype_of(ts)
        start = ts.dt.epoch("us") - 1
    else:
        start = ts.cast(_UTC_US).dt.epoch("us") if not isinstance(ts_type, pl.Datetime) \
            else ts.dt.epoch("us")
    dtype = pl.Datetime("us", ts_type.time_zone) if isinstance(ts_type, pl.Datetime) \
        else _UTC_US
    end = start + _gap_us(call, ctx)
    return SessionBounds((start.alias(SESSION_START), end.alias(SESSION_END)), dtype)


def _gap_us(call: FunctionCall, ctx: CompileContext) -> pl.Expr:
    static = call.param("gap_us")
    if static is not None:
        return pl.lit(int(static), dtype=pl.Int64)
    gap = compile_expr(call.args[1], ctx)
    gap_type = ctx.dtype_of(gap)
    if isinstance(gap_type, pl.Duration):
        return gap.dt.total_microseconds().cast(pl.Int64)
    if isinstance(gap_type, (pl.String, pl.Null)):
        return gap.cast(pl.String).map_batches(_parse_gaps, return_dtype=pl.Int64)
    raise AnalysisException(
        f"The gap duration of session_window must be an interval or an interval string "
        f"such as '5 minutes', but {call.args[1].display_name()} is {gap_type}. Cast it, "
        "e.g. F.concat(F.col('minutes').cast('string'), F.lit(' minutes')).",
        error_class="DATATYPE_MISMATCH")


def _parse_gaps(texts: pl.Series) -> pl.Series:
    """Interval strings as microseconds; an unparsable one is null (Spark casts it to null)."""
    mapping: dict[str, int | None] = {t: _parse_or_none(t) for t in texts.unique().drop_nulls()}
    if not mapping:
        return pl.Series(texts.name, [None] * texts.len(), dtype=pl.Int64)
    return texts.replace_strict(mapping, default=None, return_dtype=pl.Int64)


def _parse_or_none(text: str) -> int | None:
    try:
        return parse_interval_us(text)
    except AnalysisException:
        return None


def _per_group(expr: pl.Expr, group_keys: list[str]) -> pl.Expr:
    return expr.over(group_keys) if group_keys else expr


def assign_sessions(frame: Frame, group_keys: list[str], name: str, dtype: pl.DataType,
                    tie_break: Sequence[str] = ()) -> Frame:
    """Replace the per-row bounds in ``frame`` by the struct column ``name`` holding the
    ``{start, end}`` of each row's merged session within its ``group_keys``.

    Rows without a window are dropped. The result is sorted by ``group_keys``, session
    start, then ``tie_break`` (input order for ties when empty), the order in which
    order-sensitive aggregates (``first``, ``collect_list``) see the rows.
    """
    start, end = pl.col(SESSION_START), pl.col(SESSION_END)
    ordered = frame.filter(start.is_not_null() & (end > start).fill_null(False)).sort(
        [*group_keys, SESSION_START, *tie_break], nulls_last=True, maintain_order=True)
    end_so_far = _per_group(end.cum_max().shift(1), group_keys)
    opens = end_so_far.is_null() | (start > end_so_far)  # touching windows merge
    with_id = ordered.with_columns(opens.cum_sum().alias(_SESSION_ID))
    session = pl.struct(start.min().over(_SESSION_ID).cast(dtype).alias("start"),
                        end.max().over(_SESSION_ID).cast(dtype).alias("end"))
    return with_id.with_columns(session.alias(name)).drop(SESSION_START, SESSION_END,
                                                          _SESSION_ID)
