"""Window functions (``f(...) OVER (PARTITION BY ... ORDER BY ... frame)``) in a projection.

Each window expression becomes a hidden column before the projection runs: the rows are
sorted (stably) by the window's ordering, the function runs per partition with Polars'
``over`` (so rows keep that order inside each partition), and the original row order is
restored at the end. The projection then reads the hidden column in place of the node.
Everything is vectorised; nothing runs per row in Python.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import polars as pl

from unbounded.engine.aggregates import compile_agg_args, compile_aggregate_call
from unbounded.engine.context import CompileContext, OutputColumn
from unbounded.engine.expressions import compile_expr
from unbounded.errors import AnalysisException
from unbounded.plan.expressions import (
    AggregateCall,
    Alias,
    ColumnRef,
    Expression,
    Literal,
    Star,
    walk,
)
from unbounded.plan.window import RankingCall, WindowExpression, WindowFrame

__all__ = ["MAX_ROWS_FRAME", "with_window_columns"]

MAX_ROWS_FRAME = 512  # widest finite ROWS frame (it costs one shifted column per row)
_ROW = "__window_row"
_RN = "__window_rn"


def with_window_columns(
    frame: pl.LazyFrame, exprs: tuple[Expression, ...], ctx: CompileContext
) -> tuple[pl.LazyFrame, tuple[Expression, ...], CompileContext]:
    """``frame`` with one hidden column per window expression of ``exprs``, and ``exprs``
    reading those columns (``*`` expanded so the hidden columns are not selected)."""
    windows = _distinct_windows(exprs)
    if not windows:
        return frame, exprs, ctx
    names = {w: f"__window_{i}" for i, w in enumerate(windows)}
    out = frame.with_row_index(_ROW)
    for window, name in names.items():
        out = _add_window_column(out, window, name, ctx.with_schema(out.collect_schema()))
    out = out.sort(_ROW).drop(_ROW)
    rewritten = tuple(_rewrite(e, names, ctx.columns) for e in exprs)
    flat = tuple(x for group in rewritten for x in group)
    return out, flat, ctx.with_schema(out.collect_schema())


def _distinct_windows(exprs: tuple[Expression, ...]) -> list[WindowExpression]:
    found: list[WindowExpression] = []
    for e in exprs:
        for node in walk(e):
            if isinstance(node, WindowExpression) and node not in found:
                found.append(node)
    return found


def _rewrite(expr: Expression, names: dict[WindowExpression, str],
             visible: tuple[OutputColumn, ...]) -> tuple[Expression, ...]:
    if isinstance(expr, Star) and expr.target is None:
        # By position: after a join two visible columns may share a name.
        return tuple(ColumnRef(f"`{c.name}`", ordinal=i) for i, c in enumerate(visible))
    replaced = _replace(expr, names)
    if replaced is expr:
        return (expr,)
    return (replaced if isinstance(replaced, Alias) else Alias(replaced, expr.display_name()),)


def _replace(expr: Expression, names: dict[WindowExpression, str]) -> Expression:
    """``expr`` with every window node replaced by a reference to its hidden column."""
    if isinstance(expr, WindowExpression):
        return ColumnRef(f"`{names[expr]}`")
    changes: dict[str, object] = {}
    for f in dataclasses.fields(expr):  # type: ignore[arg-type]
        value = getattr(expr, f.name)
        new = _replace_value(value, names)
        if new is not value:
            changes[f.name] = new
    return dataclasses.replace(expr, **changes) if changes else expr  # type: ignore[type-var]


def _replace_value(value: object, names: dict[WindowExpression, str]) -> object:
    if isinstance(value, Expression):
        return _replace(value, names)
    if isinstance(value, tuple) and value:
        items = tuple(_replace_value(v, names) for v in value)
        return items if any(a is not b for a, b in zip(items, value, strict=True)) else value
    return value


@compile_expr.register
def _(expr: RankingCall, ctx: CompileContext) -> pl.Expr:
    raise AnalysisException(
        f'[WINDOW_FUNCTION_WITHOUT_OVER_CLAUSE] Window function "{expr.display_name()}" '
        "requires an OVER clause: add .over(Window.partitionBy(...).orderBy(...)).",
        error_class="WINDOW_FUNCTION_WITHOUT_OVER_CLAUSE")


# ---- one window column ---------------------------------------------------------------
def _add_window_column(frame: pl.LazyFrame, window: WindowExpression, name: str,
                       ctx: CompileContext) -> pl.LazyFrame:
    spec = window.spec
    parts = [compile_expr(p, ctx).alias(f"__window_p{i}")
             for i, p in enumerate(spec.partition_by)] or [pl.lit(0).alias("__window_p0")]
    orders = [compile_expr(o.child, ctx).alias(f"__window_o{i}")
              for i, o in enumerate(spec.order_by)]
    keyed = frame.with_columns([*parts, *orders])
    if orders:
        keyed = keyed.sort(
            [o.meta.output_name() for o in orders],
            descending=[not o.ascending for o in spec.order_by],
            nulls_last=[not (o.nulls_first if o.nulls_first is not None else o.ascending)
                        for o in spec.order_by],
            maintain_order=True)
    part_cols = [p.meta.output_name() for p in parts]
    order_cols = [o.meta.output_name() for o in orders]
    keyed = keyed.with_columns(
        pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over(part_cols).alias(_RN))
    over = _Over(part_cols, order_cols)
    value = _window_value(window, over, ctx.with_schema(keyed.collect_schema()))
    keyed = keyed.with_columns(value.alias(name))
    peers = _peer_pick(window)
    if peers is not None:  # RANGE frames: rows that tie share the value of the last (first)
        keyed = keyed.with_columns(over.peers(getattr(pl.col(name), peers)()).alias(name))
    return keyed.drop([*part_cols, *order_cols, _RN])


def _peer_pick(window: WindowExpression) -> str | None:
    frame = window.spec.frame_for(window.function)
    if frame.kind != "range" or not window.spec.order_by:
        return None
    if frame.start is None and frame.end == 0:
        return "last"
    return "first" if frame.start == 0 and frame.end is None else None


@dataclasses.dataclass(frozen=True)
class _Over:
    """The hidden partition and ordering columns of one window (rows sorted by order)."""

    part: list[str]
    order: list[str]

    def partition(self, e: pl.Expr) -> pl.Expr:
        return e.over(self.part)

    def peers(self, e: pl.Expr) -> pl.Expr:
        """Over the rows that tie with the current one (same partition and ordering)."""
        return e.over([*self.part, *self.order])


def _window_value(window: WindowExpression, over: _Over, ctx: CompileContext) -> pl.Expr:
    fn = window.function
    if isinstance(fn, RankingCall) and fn.name == "nth_value":
        return _nth_value(fn, window.spec.frame_for(fn), over, ctx)
    if isinstance(fn, RankingCall):
        return _ranking(fn, over, ctx)
    assert isinstance(fn, AggregateCall)
    return _framed_aggregate(fn, window.spec.frame_for(fn), over, ctx)


def _ranking(fn: RankingCall, over: _Over, ctx: CompileContext) -> pl.Expr:
    rn = pl.col(_RN)
    size = over.partition(pl.len()).cast(pl.Int64)
    if fn.name == "row_number":
        return rn.cast(pl.Int32)
    if fn.name == "rank":
        return over.peers(rn.min()).cast(pl.Int32)
    if fn.name == "dense_rank":
        return (over.partition(pl.struct(over.order).rle_id()) + 1).cast(pl.Int32)
    if fn.name == "percent_rank":
        rank = over.peers(rn.min()).cast(pl.Float64)
        return pl.when(size > 1).then((rank - 1) / (size - 1)).otherwise(0.0)
    if fn.name == "cume_dist":
        return over.peers(rn.max()).cast(pl.Float64) / size
    if fn.name == "ntile":
        return _ntile(fn, rn.cast(pl.Int64), size)
    return _offset_value(fn, over, ctx)


def _ntile(fn: RankingCall, rn: pl.Expr, size: pl.Expr) -> pl.Expr:
    """The bucket of ``n`` a row falls in: the first ``size % n`` buckets hold one row
    more than the others, as Spark's ``NTile``."""
    n = fn.args[0].value if fn.args and isinstance(fn.args[0], Literal) else None
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        raise AnalysisException(
            f"[DATATYPE_MISMATCH.VALUE_OUT_OF_RANGE] ntile's number of buckets must be a "
            f"positive integer literal, got {fn.args[0].display_name() if fn.args else ''}.",
            error_class="DATATYPE_MISMATCH.VALUE_OUT_OF_RANGE")
    small = size // n
    larger = size % n  # buckets of small + 1 rows
    first_rows = larger * (small + 1)
    in_larger = (rn - 1) // (small + 1) + 1
    in_smaller = larger + (rn - 1 - first_rows) // pl.when(small > 0).then(small).otherwise(1) + 1
    return pl.when(rn <= first_rows).then(in_larger).otherwise(in_smaller).cast(pl.Int32)


def _offset_value(fn: RankingCall, over: _Over, ctx: CompileContext) -> pl.Expr:
    """lag/lead: the value ``offset`` rows away; ``default`` when that row is outside the
    partition (a NULL value inside the partition stays NULL, as in Spark)."""
    if fn.name not in ("lag", "lead"):
        raise AnalysisException(f"Unknown window function {fn.name}().",
                                error_class="UNRESOLVED_ROUTINE")
    offset = fn.offset()
    value = compile_expr(fn.args[0], ctx)
    shifted = over.partition(value.shift(-offset))
    target = pl.col(_RN) + offset
    inside = (target >= 1) & (target <= over.partition(pl.len()).cast(pl.Int64))
    default = compile_expr(fn.args[2], ctx)
    return pl.when(inside).then(shifted).otherwise(default)


def _nth_value(fn: RankingCall, frame: WindowFrame, over: _Over,
               ctx: CompileContext) -> pl.Expr:
    """The value at the frame's n-th row (with ignoreNulls, at its n-th non-NULL value),
    NULL when the frame holds fewer, as Spark's ``NthValue``. RANGE frames compute as ROWS;
    ties then take their peers' value."""
    if frame.kind == "range" and (frame.start, frame.end) not in _RANGE_AS_ROWS:
        raise AnalysisException(
            f"nth_value over {frame.sql()} is not supported yet; supported: every ROWS "
            "frame, and RANGE frames bounded by UNBOUNDED or CURRENT ROW.",
            error_class="UNSUPPORTED_WINDOW_FRAME")
    n = _nth_offset(fn)
    x = compile_expr(fn.args[0], ctx)
    rn, size = pl.col(_RN), pl.len().cast(pl.Int64)
    one = pl.lit(1, pl.Int64)
    first = pl.min_horizontal(rn, one) if frame.start is None else \
        pl.max_horizontal(rn + frame.start, one)  # per row, so every part has one value
    last = size if frame.end is None else pl.min_horizontal(rn + frame.end, size)
    target = _nth_non_null(x, first, n, size) if fn.ignores_nulls() else first + (n - 1)
    value = x.gather((target - 1).clip(0, size - 1))
    return over.partition(pl.when(target <= last).then(value))


_RANGE_AS_ROWS = frozenset({(None, 0), (0, None), (None, None)})


def _nth_non_null(x: pl.Expr, first: pl.Expr, n: int, size: pl.Expr) -> pl.Expr:
    """The 1-based row of the n-th non-NULL value from row ``first`` on: the first row
    whose running count of non-NULL values reaches those before ``first`` plus n."""
    seen = x.is_not_null().cast(pl.Int64).cum_sum()
    before = pl.when(first >= 2).then(seen.gather((first - 2).clip(0, size - 1))) \
        .otherwise(pl.lit(0, pl.Int64))
    return seen.search_sorted(before + n, side="left").cast(pl.Int64) + 1


def _nth_offset(fn: RankingCall) -> int:
    """nth_value's row number: a positive integer literal, as Spark requires."""
    arg = fn.args[1]
    if not isinstance(arg, Literal):
        raise AnalysisException(
            f'[DATATYPE_MISMATCH.NON_FOLDABLE_INPUT] Cannot resolve "{fn.display_name()}" '
            "due to data type mismatch: the input `offset` should be a foldable \"INT\" "
            f'expression; however, got "{arg.display_name()}".',
            error_class="DATATYPE_MISMATCH.NON_FOLDABLE_INPUT")
    n = arg.value
    if not isinstance(n, int) or isinstance(n, bool) or n <= 0:
        raise AnalysisException(
            f'[DATATYPE_MISMATCH.VALUE_OUT_OF_RANGE] Cannot resolve "{fn.display_name()}" '
            "due to data type mismatch: The offset must be between (0, "
            f"9223372036854775807] (current value = {n}L).",
            error_class="DATATYPE_MISMATCH.VALUE_OUT_OF_RANGE")
    return n


# ---- aggregates over a frame ---------------------------------------------------------
def _framed_aggregate(call: AggregateCall, frame: WindowFrame, over: _Over,
                      ctx: CompileContext) -> pl.Expr:
    if frame.start is None and frame.end is None:
        return compile_aggregate_call(call, ctx).over(over.part)
    if call.distinct and call.name not in ("first", "last"):
        raise _unsupported(call, frame, "DISTINCT over a moving frame")
    args = compile_agg_args(call, ctx)
    # Spark orders NaN above every number: max is NaN once the frame holds one.
    nan_aware = call.name in ("min", "max") and ctx.dtype_of(args[0]).is_float()
    # RANGE frames compute as ROWS here; ties get their peers' value afterwards.
    if frame.start is None and frame.end == 0:
        return over.partition(_running(call, args, nan_aware=nan_aware))
    if frame.start == 0 and frame.end is None:
        return over.partition(_running(call, args, reverse=True, nan_aware=nan_aware))
    if frame.kind == "rows" and frame.start is not None and frame.end is not None:
        return _sliding_rows(call, args, (frame.start, frame.end), over, nan_aware=nan_aware)
    raise _unsupported(call, frame, "this frame")


def _unsupported(call: AggregateCall, frame: WindowFrame, what: str) -> AnalysisException:
    return AnalysisException(
        f"{what} is not supported yet for {call.display_name()} ({frame.sql()}); supported "
        "frames: UNBOUNDED PRECEDING or CURRENT ROW to CURRENT ROW or UNBOUNDED FOLLOWING "
        f"(ROWS or RANGE), and ROWS BETWEEN n PRECEDING AND m FOLLOWING.",
        error_class="UNSUPPORTED_WINDOW_FRAME")


def _running(call: AggregateCall, args: list[pl.Expr], reverse: bool = False, *,
             nan_aware: bool = False) -> pl.Expr:
    """The aggregate over the rows from the partition's start to each row (in order;
    from each row to the end with ``reverse``), NULLs skipped as Spark does."""
    flip: Callable[[pl.Expr], pl.Expr] = (lambda e: e.reverse()) if reverse else (lambda e: e)
    # Read backwards, the frame's first row is the running "last" and vice versa.
    name = {"first": "last", "last": "first"}.get(call.name, call.name) if reverse \
        else call.name
    builder = _RUNNING_NAN.get(name) if nan_aware else _RUNNING.get(name)
    if builder is None:
        raise AnalysisException(
            f"{call.name} over a running window frame is not supported yet; supported: "
            f"{', '.join(sorted(_RUNNING))}.", error_class="UNSUPPORTED_WINDOW_FRAME")
    if not args:  # count(*): the frame's rows
        return flip(pl.int_range(1, pl.len() + 1, dtype=pl.Int64))
    return flip(builder(flip(args[0]), call))


def _running_sum(x: pl.Expr, call: AggregateCall) -> pl.Expr:
    seen = x.is_not_null().cast(pl.Int64).cum_sum()
    return pl.when(seen > 0).then(x.fill_null(0).cum_sum())  # x is widened already


def _running_avg(x: pl.Expr, call: AggregateCall) -> pl.Expr:
    value = x.cast(pl.Float64)
    seen = value.is_not_null().cast(pl.Int64).cum_sum()
    return pl.when(seen > 0).then(value.fill_null(0.0).cum_sum() / seen)


def _running_first(x: pl.Expr, call: AggregateCall) -> pl.Expr:
    if call.distinct:  # ignorenulls: the first non-NULL value, once one has been seen
        return pl.when(x.is_not_null().cum_sum() > 0).then(x.drop_nulls().first())
    return pl.repeat(x.first(), pl.len())


_RUNNING: dict[str, Callable[[pl.Expr, AggregateCall], pl.Expr]] = {
    "count": lambda x, c: x.is_not_null().cast(pl.Int64).cum_sum(),
    "sum": _running_sum,
    "avg": _running_avg,
    "mean": _running_avg,
    "min": lambda x, c: x.cum_min().forward_fill(),
    "max": lambda x, c: x.cum_max().forward_fill(),
    "first": _running_first,
    "last": lambda x, c: x.forward_fill() if c.distinct else x,
}


def _running_nan_max(x: pl.Expr, call: AggregateCall) -> pl.Expr:
    numbers = _without_nan(x).cum_max().forward_fill()
    return pl.when(_nan_seen(x)).then(pl.lit(float("nan"))).otherwise(numbers)


def _running_nan_min(x: pl.Expr, call: AggregateCall) -> pl.Expr:
    """NaN only while the frame holds nothing but NaN (and NULL)."""
    numbers = _without_nan(x).cum_min().forward_fill()
    return pl.when(numbers.is_null() & _nan_seen(x)).then(pl.lit(float("nan"))) \
        .otherwise(numbers)


def _without_nan(x: pl.Expr) -> pl.Expr:
    return pl.when(x.is_nan()).then(None).otherwise(x)


def _nan_seen(x: pl.Expr) -> pl.Expr:
    return x.is_nan().fill_null(False).cast(pl.Int64).cum_sum() > 0


_RUNNING_NAN = {"min": _running_nan_min, "max": _running_nan_max}


def _sliding_extreme(name: str, copies: list[pl.Expr], nan_aware: bool) -> pl.Expr:
    """min/max of a sliding frame's copies; with NaN as Spark orders it for doubles."""
    pick = pl.min_horizontal if name == "min" else pl.max_horizontal
    if not nan_aware:
        return pick(copies)
    numbers = pick([_without_nan(c) for c in copies])
    has_nan = pl.any_horizontal([c.is_nan().fill_null(False) for c in copies])
    nan_wins = has_nan if name == "max" else has_nan & numbers.is_null()
    return pl.when(nan_wins).then(pl.lit(float("nan"))).otherwise(numbers)


def _sliding_rows(call: AggregateCall, args: list[pl.Expr], bounds: tuple[int, int],
                  over: _Over, *, nan_aware: bool = False) -> pl.Expr:
    """ROWS BETWEEN start AND end with finite offsets: one shifted copy per frame row
    (rows past the partition's edge are NULL, which every aggregate skips)."""
    start, end = bounds
    if end < start:
        return pl.lit(None)
    if end - start + 1 > MAX_ROWS_FRAME:
        raise AnalysisException(
            f"A ROWS frame of {end - start + 1} rows is wider than {MAX_ROWS_FRAME}; use "
            "UNBOUNDED PRECEDING for running aggregates.", error_class="UNSUPPORTED_WINDOW_FRAME")
    x = args[0] if args else pl.lit(1)
    copies = [over.partition(x.shift(-k)) for k in range(start, end + 1)]
    present = pl.sum_horizontal([c.is_not_null().cast(pl.Int64) for c in copies])
    if call.name == "count":
        if not args:  # count(*): the frame's rows that lie inside the partition
            size = over.partition(pl.len()).cast(pl.Int64)
            first = pl.max_horizontal(pl.col(_RN) + start, pl.lit(1, dtype=pl.Int64))
            last = pl.min_horizontal(pl.col(_RN) + end, size)
            return pl.max_horizontal(last - first + 1, pl.lit(0, dtype=pl.Int64))
        return present
    if call.name == "sum":
        total = pl.sum_horizontal(copies)  # compile_agg_args widened the input
        return pl.when(present > 0).then(total)
    if call.name in ("avg", "mean"):
        total = pl.sum_horizontal([c.cast(pl.Float64) for c in copies])
        return pl.when(present > 0).then(total / present)
    if call.name in ("min", "max"):
        return _sliding_extreme(call.name, copies, nan_aware)
    raise AnalysisException(
        f"{call.name} over a sliding ROWS frame is not supported yet; supported: count, "
        "sum, avg, min, max.", error_class="UNSUPPORTED_WINDOW_FRAME")
