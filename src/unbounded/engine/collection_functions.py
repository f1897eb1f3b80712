"""Engine builders of PySpark's collection functions (Polars expressions with Spark's
semantics), registered by name in ``engine.functions.FUNCTIONS`` when imported (which
``engine/functions.py`` does on the first name its own table lacks).

Higher-order functions (``transform``, ``filter``, ``aggregate``, the map lambdas) run
their lambda over one row per element (``engine/lambdas.py``); the rest are native Polars
list and map expressions.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from functools import cmp_to_key
from typing import Any

import numpy as np
import polars as pl

from unbounded.engine.ansi import checked
from unbounded.engine.coercion import map_diff_types
from unbounded.engine.context import CompileContext
from unbounded.engine.expressions import dtypes_of, unify_values
from unbounded.engine.functions import map_entries, register
from unbounded.engine.lambdas import (
    CompiledLambda,
    ElementRows,
    compile_lambda,
    element_rows,
    lambda_of,
    packed,
    per_row,
    rebuild_lists,
)
from unbounded.errors import AnalysisException, IllegalArgumentException, SparkRuntimeException
from unbounded.plan.expressions import ColumnRef, FunctionCall, LambdaFunction, Literal

__all__: list[str] = []

_E0 = pl.col("__ub_e0")


def _dt(dtype: Any) -> pl.DataType:
    """A dtype instance (nested dtypes may hold the class, ``pl.Int64``)."""
    instance: pl.DataType = dtype() if isinstance(dtype, type) else dtype
    return instance


def _inner(call: FunctionCall, arg: pl.Expr, ctx: CompileContext, i: int = 0) -> pl.DataType:
    """The element type of an array argument, else Spark's type error."""
    dtype = ctx.dtype_of(arg)
    if isinstance(dtype, pl.Array):
        return _dt(dtype.inner)
    if not isinstance(dtype, pl.List):
        raise AnalysisException(
            f"[DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE] Cannot resolve "
            f"\"{call.display_name()}\" due to data type mismatch: the parameter {i + 1} "
            f"requires the \"ARRAY\" type, however {call.args[i].display_name()} is not an "
            "array.", error_class="DATATYPE_MISMATCH")
    return _dt(dtype.inner)


def _entry_dtype(arg: pl.Expr, ctx: CompileContext, call: FunctionCall) -> pl.Map:
    dtype = ctx.dtype_of(arg)
    if not isinstance(dtype, pl.Map):
        raise AnalysisException(
            f"[DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE] Cannot resolve "
            f"\"{call.display_name()}\" due to data type mismatch: the first parameter "
            "requires the \"MAP\" type.", error_class="DATATYPE_MISMATCH")
    return dtype


def _run(lists: list[pl.Expr], fn: CompiledLambda, finish: Callable[[ElementRows], pl.Series],
         dtype: pl.DataType, extra: dict[str, pl.Expr] | None = None) -> pl.Expr:
    """``finish`` over the element rows of ``lists`` (one Python call per batch)."""
    def batch(series: pl.Series) -> pl.Series:
        frame = series.struct.unnest()
        return finish(element_rows(frame, len(lists), fn.outer)).cast(dtype)

    outer = fn.outer + tuple(extra or ())
    return packed(lists, extra or {}, outer).map_batches(
        batch, return_dtype=dtype, is_elementwise=True)


def _bind(rows: pl.DataFrame, fn: CompiledLambda, values: list[pl.Expr]) -> pl.DataFrame:
    """``rows`` with each lambda variable bound to its value."""
    return rows.with_columns([v.alias(n) for n, v in zip(fn.variables, values, strict=False)])


# ---- higher-order functions over arrays -----------------------------------------------
@register("transform")
def _transform(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    fn = compile_lambda(lambda_of("transform", call.args[1], (1, 2)),
                        [_inner(call, args[0], ctx), pl.Int32()], ctx)
    dtype = pl.List(fn.dtype)

    def finish(el: ElementRows) -> pl.Series:
        values = fn.evaluate(_bind(el.rows, fn, [_E0, pl.col("__ub_pos")]))
        return rebuild_lists(values, el.counts, el.valid, dtype)

    return _run([args[0]], fn, finish, dtype)


@register("filter")
def _filter(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    inner = _inner(call, args[0], ctx)
    fn = compile_lambda(lambda_of("filter", call.args[1], (1, 2)), [inner, pl.Int32()], ctx)
    dtype = pl.List(inner)

    def finish(el: ElementRows) -> pl.Series:
        keep = fn.evaluate(_bind(el.rows, fn, [_E0, pl.col("__ub_pos")])) \
            .fill_null(False).to_numpy().astype(bool)
        counts = per_row(el.row_of, keep, el.counts.size)
        return rebuild_lists(el.rows["__ub_e0"].filter(pl.Series(keep)), counts, el.valid,
                             dtype)

    return _run([args[0]], fn, finish, dtype)


def _quantifier(universal: bool) -> Callable[..., pl.Expr]:
    """``exists`` (any true; else NULL if any NULL) or ``forall`` (any false: false; else
    NULL if any NULL), Spark's three-valued logic."""
    def build(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
        fn = compile_lambda(lambda_of(call.name, call.args[1], (1,)),
                            [_inner(call, args[0], ctx)], ctx)

        def finish(el: ElementRows) -> pl.Series:
            result = fn.evaluate(_bind(el.rows, fn, [_E0]))
            nulls = per_row(el.row_of, result.is_null().to_numpy(), el.counts.size) > 0
            decisive = result.fill_null(universal).to_numpy().astype(bool)
            if universal:
                decisive = ~decisive
            hit = per_row(el.row_of, decisive, el.counts.size) > 0
            value = hit != universal
            out = pl.Series(np.where(hit | ~nulls, value, False))
            return pl.select(pl.when(pl.Series(el.valid & (hit | ~nulls))).then(out)) \
                .to_series()

        return _run([args[0]], fn, finish, pl.Boolean())

    return build


register("exists")(_quantifier(False))
register("forall")(_quantifier(True))


@register("aggregate", "reduce")
def _aggregate(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """A left fold: ``merge`` runs once per position over the rows still that long."""
    inner = _inner(call, args[0], ctx)
    acc_type = ctx.dtype_of(args[1])
    merge = compile_lambda(lambda_of(call.name, call.args[2], (2,)), [acc_type, inner], ctx)
    if merge.dtype != acc_type:
        raise AnalysisException(
            f"[DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE] Cannot resolve \"{call.display_name()}"
            f"\" due to data type mismatch: the merge function returns {merge.dtype}, but the "
            f"initial value is of {acc_type}; cast the initial value.",
            error_class="DATATYPE_MISMATCH")
    finish_fn = call.args[3] if len(call.args) > 3 else None
    final = compile_lambda(lambda_of(call.name, finish_fn, (1,)), [acc_type], ctx) \
        if isinstance(finish_fn, LambdaFunction) else None
    dtype = final.dtype if final is not None else acc_type
    outer = tuple(dict.fromkeys(merge.outer + (final.outer if final else ())))

    def batch(series: pl.Series) -> pl.Series:
        frame = series.struct.unnest()
        acc = _fold(frame, merge, outer)
        if final is not None:
            acc = final.evaluate(frame.select(*outer, acc.alias(final.variables[0])))
        return pl.select(pl.when(frame["__ub_l0"].is_not_null()).then(acc)).to_series() \
            .cast(dtype)

    return packed([args[0]], {"__ub_zero": args[1]}, outer).map_batches(
        batch, return_dtype=dtype, is_elementwise=True)


def _fold(frame: pl.DataFrame, merge: CompiledLambda, outer: tuple[str, ...]) -> pl.Series:
    acc = frame["__ub_zero"]
    lists = frame["__ub_l0"]
    lengths = lists.list.len().fill_null(0).to_numpy()
    for j in range(int(lengths.max()) if lengths.size else 0):
        active = np.flatnonzero(lengths > j)
        rows = pl.DataFrame([acc.gather(active).alias(merge.variables[0]),
                             lists.gather(active).list.get(j).alias(merge.variables[1])])
        rows = rows.with_columns(frame.select(outer).gather(active)) if outer else rows
        acc = acc.scatter(active, merge.evaluate(rows).cast(acc.dtype))
    return acc


@register("zip_with")
def _zip_with(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    fn = compile_lambda(lambda_of("zip_with", call.args[2], (2,)),
                        [_inner(call, args[0], ctx), _inner(call, args[1], ctx, 1)], ctx)
    dtype = pl.List(fn.dtype)

    def finish(el: ElementRows) -> pl.Series:
        values = fn.evaluate(_bind(el.rows, fn, [_E0, pl.col("__ub_e1")]))
        return rebuild_lists(values, el.counts, el.valid, dtype)

    return _run([args[0], args[1]], fn, finish, dtype)


@register("array_sort")
def _array_sort(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """Spark's default order is ascending with NULLs last; a comparator sorts stably."""
    inner = _inner(call, args[0], ctx)
    if len(call.args) < 2:
        return args[0].list.sort(nulls_last=True)
    fn = compile_lambda(lambda_of("array_sort", call.args[1], (2,)), [inner, inner], ctx)
    dtype = pl.List(inner)

    def batch(series: pl.Series) -> pl.Series:
        frame = series.struct.unnest()
        rows = frame.select(fn.outer)
        out = [None if xs is None else _sorted(xs, rows.slice(i, 1), fn)
               for i, xs in enumerate(frame["__ub_l0"])]
        return pl.Series(out, dtype=dtype)

    return packed([args[0]], {}, fn.outer).map_batches(batch, return_dtype=dtype,
                                                          is_elementwise=True)


def _sorted(series: pl.Series, outer: pl.DataFrame, fn: CompiledLambda) -> pl.Series:
    """``series`` in the comparator's order: every pair compared in one evaluation."""
    n = len(series)
    if n < 2:
        return series
    left, right = np.repeat(np.arange(n), n), np.tile(np.arange(n), n)
    rows = pl.DataFrame({fn.variables[0]: series.gather(left),
                         fn.variables[1]: series.gather(right)})
    if outer.width:
        rows = rows.with_columns(outer.select(pl.all().gather([0] * (n * n))))
    result = fn.evaluate(rows)
    if result.null_count():
        raise SparkRuntimeException(
            "[COMPARATOR_RETURNS_NULL] The comparator has returned a NULL for a comparison "
            "between two elements. It should return a positive integer for \"greater than\", "
            "0 for \"equal\" and a negative integer for \"less than\".",
            error_class="COMPARATOR_RETURNS_NULL")
    table: list[list[int]] = result.to_numpy().reshape(n, n).tolist()
    def compare(a: int, b: int) -> int:
        return table[a][b]

    order = sorted(range(n), key=cmp_to_key(compare))
    return series.gather(order)


# ---- higher-order functions over maps ---------------------------------------------------
def _map_lambda(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext,
                arity: int = 2) -> tuple[pl.Map, pl.Expr, CompiledLambda]:
    dtype = _entry_dtype(args[0], ctx, call)
    fn = compile_lambda(lambda_of(call.name, call.args[-1], (arity,)),
                        [_dt(dtype.key), _dt(dtype.value)], ctx)
    return dtype, map_entries(args[0], dtype), fn


_KEY, _VALUE = _E0.struct.field("key"), _E0.struct.field("value")


@register("map_filter")
def _map_filter(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    dtype, entries, fn = _map_lambda(call, args, ctx)
    listed = pl.List(pl.Struct({"key": dtype.key, "value": dtype.value}))

    def finish(el: ElementRows) -> pl.Series:
        keep = fn.evaluate(_bind(el.rows, fn, [_KEY, _VALUE])).fill_null(False) \
            .to_numpy().astype(bool)
        counts = per_row(el.row_of, keep, el.counts.size)
        return rebuild_lists(el.rows["__ub_e0"].filter(pl.Series(keep)), counts, el.valid,
                             listed)

    return _run([entries], fn, finish, listed).cast(dtype)


@register("transform_values")
def _transform_values(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    dtype, entries, fn = _map_lambda(call, args, ctx)
    listed = pl.List(pl.Struct({"key": dtype.key, "value": fn.dtype}))

    def finish(el: ElementRows) -> pl.Series:
        values = _bind(el.rows, fn, [_KEY, _VALUE]).select(
            _KEY.alias("key"), fn.body.alias("value"))
        return rebuild_lists(values.to_struct(), el.counts, el.valid, listed)

    return _run([entries], fn, finish, listed).cast(pl.Map(dtype.key, fn.dtype))


@register("transform_keys")
def _transform_keys(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    dtype, entries, fn = _map_lambda(call, args, ctx)
    listed = pl.List(pl.Struct({"key": fn.dtype, "value": dtype.value}))

    def finish(el: ElementRows) -> pl.Series:
        entries = _bind(el.rows, fn, [_KEY, _VALUE]).select(
            fn.body.alias("key"), _VALUE.alias("value"))
        if entries["key"].null_count():
            raise _null_key_error(None)
        lists = rebuild_lists(entries.to_struct(), el.counts, el.valid, listed)
        _reject_duplicate_keys(lists)
        return lists

    return _run([entries], fn, finish, listed).cast(pl.Map(fn.dtype, dtype.value))


@register("map_zip_with")
def _map_zip_with(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """The lambda sees each key of either map with both values (NULL where absent)."""
    left, right = _entry_dtype(args[0], ctx, call), _entry_dtype(args[1], ctx, call)
    fn = compile_lambda(lambda_of("map_zip_with", call.args[2], (3,)),
                        [_dt(left.key), _dt(left.value), _dt(right.value)], ctx)
    listed = pl.List(pl.Struct({"key": left.key, "value": fn.dtype}))
    keys = pl.concat_list(_keys(args[0], left), _keys(args[1], right)) \
        .list.unique(maintain_order=True)
    extra = {"__ub_m0": args[0], "__ub_m1": args[1]}

    def finish(el: ElementRows) -> pl.Series:
        values = [_E0, pl.col("__ub_m0").map.get(_E0), pl.col("__ub_m1").map.get(_E0)]
        bound = _bind(el.rows, fn, values)
        entries = bound.select(_E0.alias("key"), fn.body.alias("value"))
        return rebuild_lists(entries.to_struct(), el.counts, el.valid, listed)

    both = pl.when(args[0].is_not_null() & args[1].is_not_null()).then(keys)
    outer_fn = CompiledLambda(fn.body, fn.variables, (*fn.outer, *extra), fn.dtype)
    run = _run([both], outer_fn, finish, listed, extra)
    return run.cast(pl.Map(left.key, fn.dtype))


def _keys(value: pl.Expr, dtype: pl.Map) -> pl.Expr:
    return map_entries(value, dtype).list.eval(pl.element().struct.field("key"))


def _reject_duplicate_keys(lists: pl.Series) -> None:
    """Spark 4's ``spark.sql.mapKeyDedupPolicy=EXCEPTION``: a key twice in a map fails."""
    keys = lists.list.eval(pl.element().struct.field("key"))
    dup = keys.list.len() != keys.list.unique().list.len()
    if dup.any():
        row = keys.filter(dup)[0].to_list()
        seen = next(k for i, k in enumerate(row) if k in row[:i])
        raise SparkRuntimeException(
            f"[DUPLICATED_MAP_KEY] Duplicate map key {seen} was found, please check the input "
            "data. If you want to remove the duplicated keys, you can set "
            "spark.sql.mapKeyDedupPolicy to \"LAST_WIN\" so that the key inserted at last "
            "takes precedence. SQLSTATE: 23505", error_class="DUPLICATED_MAP_KEY")


def duplicate_keys_checked(lists: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    """``lists`` (entries), failing for a row whose keys repeat."""
    def check(series: pl.Series) -> pl.Series:
        _reject_duplicate_keys(series)
        return series

    return lists.map_batches(check, return_dtype=dtype, is_elementwise=True)



# ---- arrays -------------------------------------------------------------------------------
def _element_typed(value: pl.Expr, inner: pl.DataType, ctx: CompileContext) -> pl.Expr:
    """``value`` cast to the array's element type (a literal NULL, a narrower number)."""
    return value if ctx.dtype_of(value) == inner else value.cast(inner)


def _widened(call: FunctionCall, array: pl.Expr, value: pl.Expr, ctx: CompileContext
             ) -> tuple[pl.Expr, pl.Expr, pl.DataType]:
    """The array and the value in their common element type (``array_append(ints,
    bigint)`` is ``array<bigint>``); a string and a number have none, as in Spark."""
    inner = _inner(call, array, ctx)
    given = ctx.dtype_of(value)
    if given in (inner, pl.Null()):
        return array, value.cast(inner), inner
    if (given == pl.String()) != (inner == pl.String()):
        raise AnalysisException(
            f"[DATATYPE_MISMATCH.ARRAY_FUNCTION_DIFF_TYPES] Cannot resolve "
            f"\"{call.display_name()}\" due to data type mismatch: Input to `{call.name}` "
            "should have been \"ARRAY\" followed by a value with same element type.",
            error_class="DATATYPE_MISMATCH")
    common = _dt(ctx.dtype_of(pl.concat([pl.lit(None, inner), pl.lit(None, given)])))
    return array.cast(pl.List(common)), value.cast(common), common


@register("array_append", "array_prepend")
def _array_append(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    array, value, _ = _widened(call, args[0], args[1], ctx)
    parts = [array, value] if call.name == "array_append" else [value, array]
    return pl.when(array.is_not_null()).then(pl.concat_list(parts))


@register("array_insert")
def _array_insert(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    arr, value, inner = _widened(call, args[0], args[2], ctx)
    pos = args[1].cast(pl.Int64)
    length = arr.list.len().cast(pl.Int64)
    at = pl.when(pos > 0).then(pos - 1).otherwise(length + pos + 1)  # 0-based
    nulls = pl.lit(None, dtype=inner).repeat_by((at - length).clip(0, None))
    front = pl.lit(None, dtype=inner).repeat_by((-at).clip(0, None))
    head = arr.list.slice(0, at.clip(0, None))
    out = pl.concat_list([head, nulls, value, front, arr.list.slice(at.clip(0, None))])
    out = pl.when(arr.is_not_null() & pos.is_not_null()).then(out)
    return checked(out, pos == 0, pos, ctx.dtype_of(out), _zero_index_error)


def _zero_index_error(_: Any) -> Exception:
    return SparkRuntimeException(
        "[INVALID_INDEX_OF_ZERO] The index 0 is invalid. An index shall be either < 0 or > 0 "
        "(the first element has index 1). SQLSTATE: 22003", error_class="INVALID_INDEX_OF_ZERO")


@register("array_compact")
def _array_compact(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    _inner(call, args[0], ctx)
    return args[0].list.drop_nulls()


@register("array_distinct")
def _array_distinct(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    _inner(call, args[0], ctx)
    return args[0].list.unique(maintain_order=True)


def _set_op(method: str) -> Callable[[FunctionCall, list[pl.Expr], CompileContext], pl.Expr]:
    """Spark's array set operations: distinct results in first-seen order, NULL once."""
    def build(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
        left, right = _common_arrays(call, args, ctx)
        return getattr(left.list, method)(right)  # type: ignore[no-any-return]

    return build


def _common_arrays(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext
                   ) -> tuple[pl.Expr, pl.Expr]:
    left, right = _inner(call, args[0], ctx), _inner(call, args[1], ctx, 1)
    if left == right:
        return args[0], args[1]
    common = pl.List(ctx.dtype_of(pl.concat([pl.lit(None, left), pl.lit(None, right)])))
    return args[0].cast(common), args[1].cast(common)


register("array_except")(_set_op("set_difference"))
register("array_intersect")(_set_op("set_intersection"))
register("array_union")(_set_op("set_union"))


@register("arrays_overlap")
def _arrays_overlap(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """True for a common non-NULL element; else NULL if both are non-empty and either
    holds a NULL; else false."""
    left, right = _common_arrays(call, args, ctx)
    common = left.list.drop_nulls().list.set_intersection(right.list.drop_nulls()).list.len()
    has_null = left.list.eval(pl.element().is_null().any()).list.first() | \
        right.list.eval(pl.element().is_null().any()).list.first()
    both = (left.list.len() > 0) & (right.list.len() > 0)
    return pl.when(left.is_null() | right.is_null()).then(None) \
        .when(common > 0).then(True).when(both & has_null).then(None).otherwise(False)


@register("array_join")
def _array_join(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    _inner(call, args[0], ctx)
    texts = args[0].list.eval(pl.element().cast(pl.String))
    if len(args) > 2:
        texts = texts.list.eval(pl.element().fill_null(_literal(call, 2)))
    return texts.list.join(str(_literal(call, 1)), ignore_nulls=True)


def _literal(call: FunctionCall, i: int) -> Any:
    arg = call.args[i]
    if not isinstance(arg, Literal):
        raise AnalysisException(
            f"[NON_FOLDABLE_INPUT] {call.name}() needs a literal as argument {i + 1}, got "
            f"{arg.display_name()}.", error_class="NON_FOLDABLE_INPUT")
    return arg.value


@register("array_max")
def _array_max(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    _inner(call, args[0], ctx)
    return args[0].list.max()


@register("array_min")
def _array_min(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    _inner(call, args[0], ctx)
    return args[0].list.min()


@register("array_size")
def _array_size(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    _inner(call, args[0], ctx)
    return args[0].list.len().cast(pl.Int32)


@register("array_repeat")
def _array_repeat(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    count = args[1].cast(pl.Int64)
    return pl.when(count.is_not_null()).then(args[0].repeat_by(count.clip(0, None)))


@register("array_position")
def _array_position(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """1-based position of the first equal element (bigint), 0 when absent."""
    inner = _inner(call, args[0], ctx)
    found = _matches(args[0], _element_typed(args[1], inner, ctx))
    first = found.list.eval(pl.element().arg_max()).list.first().cast(pl.Int64) + 1
    hit = found.list.any()
    return pl.when(args[0].is_not_null() & args[1].is_not_null()) \
        .then(pl.when(hit).then(first).otherwise(0))


def _matches(arr: pl.Expr, value: pl.Expr) -> pl.Expr:
    """Per element, whether it equals ``value`` (NULL elements: false)."""
    return _equal_lists(arr, value.repeat_by(arr.list.len()))


def _equal_lists(arr: pl.Expr, repeated: pl.Expr) -> pl.Expr:
    # Both lists have one element per position; compare them element by element.
    diff = pl.struct(arr.alias("a"), repeated.alias("b"))
    return diff.map_batches(_compare_lists, return_dtype=pl.List(pl.Boolean),
                            is_elementwise=True)


def _compare_lists(series: pl.Series) -> pl.Series:
    frame = series.struct.unnest()
    a = frame["a"].explode(empty_as_null=False, keep_nulls=False)
    b = frame["b"].explode(empty_as_null=False, keep_nulls=False)
    counts = frame["a"].list.len().fill_null(0).to_numpy()
    equal = (a == b).fill_null(False)
    return rebuild_lists(equal, counts, frame["a"].is_not_null().to_numpy(),
                         pl.List(pl.Boolean))


@register("array_remove")
def _array_remove(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """The elements not equal to the value (NULL elements stay); a NULL value: NULL."""
    inner = _inner(call, args[0], ctx)
    value = _element_typed(args[1], inner, ctx)
    both = pl.struct(args[0].alias("a"), value.repeat_by(args[0].list.len()).alias("b"))
    kept = both.map_batches(_remove_equal, return_dtype=pl.List(inner), is_elementwise=True)
    return pl.when(args[1].is_not_null()).then(kept)


def _remove_equal(series: pl.Series) -> pl.Series:
    frame = series.struct.unnest()
    a = frame["a"].explode(empty_as_null=False, keep_nulls=False)
    b = frame["b"].explode(empty_as_null=False, keep_nulls=False)
    keep = (a != b).fill_null(True).to_numpy().astype(bool)
    row_of = np.repeat(np.arange(frame.height),
                       frame["a"].list.len().fill_null(0).to_numpy())
    counts = per_row(row_of, keep, frame.height)
    return rebuild_lists(a.filter(pl.Series(keep)), counts,
                         frame["a"].is_not_null().to_numpy(), frame["a"].dtype)


@register("sort_array")
def _sort_array(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    _inner(call, args[0], ctx)
    ascending = bool(_literal(call, 1)) if len(call.args) > 1 else True
    return args[0].list.sort(descending=not ascending, nulls_last=not ascending)


@register("slice")
def _slice(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    _inner(call, args[0], ctx)
    start, length = args[1].cast(pl.Int64), args[2].cast(pl.Int64)
    size = args[0].list.len().cast(pl.Int64)
    offset = pl.when(start > 0).then(start - 1).otherwise(size + start)
    out = pl.when(offset < 0).then(args[0].list.slice(0, 0)) \
        .otherwise(args[0].list.slice(offset.clip(0, None), length.clip(0, None)))
    out = checked(out, start == 0, start, ctx.dtype_of(out), _slice_start_error)
    return checked(out, length < 0, length, ctx.dtype_of(out), _slice_length_error)


def _slice_start_error(_: Any) -> Exception:
    return SparkRuntimeException(
        "[INVALID_PARAMETER_VALUE.START] The value of parameter(s) `start` in `slice` is "
        "invalid: Expects a positive or a negative value for `start`, but got 0. "
        "SQLSTATE: 22023", error_class="INVALID_PARAMETER_VALUE.START")


def _slice_length_error(value: Any) -> Exception:
    return SparkRuntimeException(
        f"[INVALID_PARAMETER_VALUE.LENGTH] The value of parameter(s) `length` in `slice` is "
        f"invalid: Expects `length` greater than or equal to 0, but got {value}. "
        "SQLSTATE: 22023", error_class="INVALID_PARAMETER_VALUE.LENGTH")


@register("flatten")
def _flatten(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """The inner arrays concatenated; NULL when any inner array is NULL."""
    inner = _inner(call, args[0], ctx)
    if not isinstance(inner, pl.List):
        raise AnalysisException(
            f"[DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE] flatten() needs an array of arrays, "
            f"got {call.args[0].display_name()}.", error_class="DATATYPE_MISMATCH")
    flat = args[0].list.eval(pl.element().explode(empty_as_null=False, keep_nulls=False))
    any_null = args[0].list.eval(pl.element().is_null().any()).list.first().fill_null(False)
    return pl.when(~any_null).then(flat.cast(pl.List(inner.inner)))


@register("sequence")
def _sequence(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """Integers from start to stop inclusive; the step's sign must lead there."""
    start, stop = args[0], args[1]
    if all(isinstance(d, (pl.Date, pl.Datetime)) for d in dtypes_of(args[:2], ctx)):
        return _time_sequence(call, args, ctx)
    dtype = _dt(ctx.dtype_of(pl.concat([start.first(), stop.first()])))
    if not all(d.is_integer() for d in dtypes_of(args, ctx)):
        raise AnalysisException(
            f"[DATATYPE_MISMATCH.SEQUENCE_WRONG_INPUT_TYPES] Cannot resolve "
            f"\"{call.display_name()}\" due to data type mismatch: `sequence` uses the wrong "
            "parameter type; start, stop and step must be integral (dates and timestamps "
            "are not supported yet).", error_class="DATATYPE_MISMATCH")
    step = args[2] if len(args) > 2 else pl.when(start <= stop).then(1).otherwise(-1)
    step = step.cast(pl.Int64)
    end = stop.cast(pl.Int64) + step.sign()
    out = pl.int_ranges(start.cast(pl.Int64), end, step, dtype=pl.Int64).cast(pl.List(dtype))
    wrong = ((step > 0) & (start > stop)) | ((step < 0) & (start < stop)) | \
        ((step == 0) & (start != stop))
    fixed = pl.when(step == 0).then(pl.concat_list(start.cast(dtype))).otherwise(out)
    bounds = pl.struct(start.alias("a"), stop.alias("b"), step.alias("s"))
    return checked(fixed, wrong, bounds, ctx.dtype_of(fixed), _sequence_error)


def _time_sequence(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """Dates or timestamps from start to stop by a fixed interval literal (one day by
    default, minus one day when stop comes first); month intervals are not supported."""
    step = call.args[2] if len(call.args) > 2 else None
    if step is not None and not (isinstance(step, Literal)
                                 and isinstance(step.value, timedelta)):
        raise AnalysisException(
            f"[DATATYPE_MISMATCH.SEQUENCE_WRONG_INPUT_TYPES] sequence() of dates or timestamps "
            f"needs an interval literal step (INTERVAL 1 DAY), got {step.display_name()}.",
            error_class="DATATYPE_MISMATCH")
    us = int((step.value if step is not None else timedelta(days=1)) / timedelta(microseconds=1))
    start, stop = args[0], args[1]
    if isinstance(ctx.dtype_of(start), pl.Datetime):
        start, stop = start.cast(pl.Datetime("us", "UTC")), stop.cast(pl.Datetime("us", "UTC"))
        ranges: Callable[..., pl.Expr] = pl.datetime_ranges
    else:
        ranges = pl.date_ranges
    day = 86_400_000_000
    every = f"{abs(us) // day}d" if ranges is pl.date_ranges and us % day == 0 \
        else f"{abs(us)}us"
    forward = ranges(start, stop, interval=every, closed="both")
    backward = ranges(stop, start, interval=every, closed="both").list.reverse()
    return pl.when(start <= stop).then(forward).otherwise(backward) if step is None \
        else (forward if us > 0 else backward)


def _sequence_error(value: Any) -> Exception:
    return IllegalArgumentException(
        f"requirement failed: Illegal sequence boundaries: {value['a']} to {value['b']} by "
        f"{value['s']}", error_class="ILLEGAL_ARGUMENT")


@register("shuffle")
def _shuffle(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    _inner(call, args[0], ctx)
    seed = int(_literal(call, 1)) if len(call.args) > 1 else None
    return args[0].list.sample(fraction=1.0, shuffle=True, seed=seed)


@register("get")
def _get(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    _inner(call, args[0], ctx)
    index = args[1].cast(pl.Int64)
    return pl.when(index >= 0).then(args[0].list.get(index, null_on_oob=True))


@register("try_element_at")
def _try_element_at(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    if isinstance(ctx.dtype_of(args[0]), pl.Map):
        return args[0].map.get(args[1])
    index = args[1].cast(pl.Int64)
    got = args[0].list.get(pl.when(index > 0).then(index - 1).otherwise(index),
                           null_on_oob=True)
    return checked(got, index == 0, index, ctx.dtype_of(got), _zero_index_error)


@register("arrays_zip")
def _arrays_zip(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    inners = [_inner(call, a, ctx, i) for i, a in enumerate(args)]
    names = [a.display_name() if isinstance(a, ColumnRef) else str(i)
             for i, a in enumerate(call.args)]
    if len(set(names)) < len(names):  # Polars structs need distinct field names
        names = [str(i) for i in range(len(names))]
    dtype = pl.List(pl.Struct(dict(zip(names, inners, strict=True))))

    def finish(el: ElementRows) -> pl.Series:
        values = el.rows.select([pl.col(f"__ub_e{i}").alias(n) for i, n in enumerate(names)])
        return rebuild_lists(values.to_struct(), el.counts, el.valid, dtype)

    noop = CompiledLambda(pl.lit(None), (), (), pl.Null())
    return _run(list(args), noop, finish, dtype)


# ---- maps -----------------------------------------------------------------------------
@register("map")
def _map(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    if len(args) % 2:
        raise AnalysisException(
            f"[WRONG_NUM_ARGS] map() needs an even number of arguments (key, value, ...), "
            f"got {len(args)}.", error_class="WRONG_NUM_ARGS")
    shown = call.display_name()
    keys = unify_values(args[::2], ctx, who=lambda d: map_diff_types("KEY", shown, d))
    if all(d == pl.Null for d in dtypes_of(keys, ctx)):  # map(NULL, v): NULL_MAP_KEY per row
        keys = [k.cast(pl.String) for k in keys]
    values = unify_values(args[1::2], ctx, who=lambda d: map_diff_types("VALUE", shown, d))
    entries = [pl.struct(k.alias("key"), v.alias("value"))
               for k, v in zip(keys, values, strict=True)]
    if not entries:  # Spark's map<void,void>; Polars keys cannot be of the Null type
        return pl.lit([], dtype=pl.List(pl.Struct({"key": pl.String, "value": pl.String})))\
            .cast(pl.Map(pl.String, pl.String))
    listed = pl.concat_list(entries)
    entry = ctx.dtype_of(listed)
    assert isinstance(entry, pl.List) and isinstance(entry.inner, pl.Struct)
    return _map_of_entries(listed, entry)  # a NULL or repeated key fails, as in Spark 4


@register("map_entries")
def _map_entries(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return map_entries(args[0], _entry_dtype(args[0], ctx, call))


@register("map_contains_key")
def _map_contains_key(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    dtype = _entry_dtype(args[0], ctx, call)
    return args[0].map.contains_key(_element_typed(args[1], _dt(dtype.key), ctx))


@register("map_concat")
def _map_concat(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    dtypes = [_entry_dtype(a, ctx, call) for a in args]
    entries = pl.concat_list([map_entries(a, d) for a, d in zip(args, dtypes, strict=True)])
    listed = ctx.dtype_of(entries)
    assert isinstance(listed, pl.List) and isinstance(listed.inner, pl.Struct)
    key, value = listed.inner.fields
    return duplicate_keys_checked(entries, listed).cast(pl.Map(key.dtype, value.dtype))


@register("map_from_entries")
def _map_from_entries(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    inner = _inner(call, args[0], ctx)
    if not isinstance(inner, pl.Struct) or len(inner.fields) != 2:
        raise AnalysisException(
            "[DATATYPE_MISMATCH.MAP_FROM_ENTRIES_WRONG_TYPE] map_from_entries() needs an "
            "array of two-field structs.", error_class="DATATYPE_MISMATCH")
    key, value = inner.fields
    listed = pl.List(pl.Struct({"key": key.dtype, "value": value.dtype}))
    renamed = args[0].list.eval(pl.struct(pl.element().struct.field(key.name).alias("key"),
                                          pl.element().struct.field(value.name).alias("value")))
    return _map_of_entries(renamed, listed)


def _map_of_entries(entries: pl.Expr, listed: pl.List) -> pl.Expr:
    assert isinstance(listed.inner, pl.Struct)
    key, value = listed.inner.fields
    checked_keys = _null_keys_checked(duplicate_keys_checked(entries, listed), listed)
    return checked_keys.cast(pl.Map(key.dtype, value.dtype))


def _null_keys_checked(entries: pl.Expr, listed: pl.DataType) -> pl.Expr:
    has_null = entries.list.eval(pl.element().struct.field("key").is_null().any()) \
        .list.first().fill_null(False)
    return checked(entries, has_null, has_null, listed, _null_key_error)


def _null_key_error(_: Any) -> Exception:
    return SparkRuntimeException("[NULL_MAP_KEY] Cannot use null as map key. SQLSTATE: 2200E",
                                 error_class="NULL_MAP_KEY")


@register("map_from_arrays")
def _map_from_arrays(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    keys, values = _inner(call, args[0], ctx), _inner(call, args[1], ctx, 1)
    listed = pl.List(pl.Struct({"key": keys, "value": values}))

    def finish(el: ElementRows) -> pl.Series:
        entries = el.rows.select(pl.col("__ub_e0").alias("key"),
                                 pl.col("__ub_e1").alias("value"))
        return rebuild_lists(entries.to_struct(), el.counts, el.valid, listed)

    noop = CompiledLambda(pl.lit(None), (), (), pl.Null())
    differ = args[0].list.len() != args[1].list.len()
    zipped = checked(_run([args[0], args[1]], noop, finish, listed), differ, differ, listed,
                     _length_error)
    return _map_of_entries(zipped, listed)


def _length_error(_: Any) -> Exception:
    return SparkRuntimeException(
        "The key array and value array of MapData must have the same length.",
        error_class="SPARK_RUNTIME_ERROR")


@register("str_to_map")
def _str_to_map(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    pair, kv = str(_literal(call, 1)), str(_literal(call, 2))
    pairs = args[0].str.split(pair)
    key = pl.element().str.splitn(kv, 2).struct.field("field_0")
    value = pl.element().str.splitn(kv, 2).struct.field("field_1")
    listed = pl.List(pl.Struct({"key": pl.String, "value": pl.String}))
    entries = pairs.list.eval(pl.struct(key.alias("key"), value.alias("value")))
    return duplicate_keys_checked(entries, listed).cast(pl.Map(pl.String, pl.String))


# ---- generators: the projection explodes and unnests these (engine/generators.py) ------
@register("inline", "inline_outer")
def _inline(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """An array of structs: one row per element, one column per field."""
    if not isinstance(_inner(call, args[0], ctx), pl.Struct):
        raise AnalysisException(
            f"[DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE] {call.name}() needs an array of "
            f"structs, got {call.args[0].display_name()}.", error_class="DATATYPE_MISMATCH")
    return args[0]


@register("stack")
def _stack(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """``stack(n, v...)``: the values in ``n`` rows of columns ``col0``...; NULL pads."""
    n = _literal(call, 0)
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise AnalysisException(
            "[DATATYPE_MISMATCH.NON_FOLDABLE_INPUT] stack() needs a positive integer literal "
            "as its first argument.", error_class="DATATYPE_MISMATCH")
    values = args[1:]
    width = -(-len(values) // n)
    columns = [values[c::width] for c in range(width)]
    rows = [pl.struct([_stacked(columns[c], r, ctx).alias(f"col{c}") for c in range(width)])
            for r in range(n)]
    return pl.concat_list(rows)


def _stacked(column: list[pl.Expr], row: int, ctx: CompileContext) -> pl.Expr:
    """The value of one stacked column at ``row``, in the column's common type."""
    common = _dt(ctx.dtype_of(pl.concat([v.first() for v in column])))
    return column[row].cast(common) if row < len(column) else pl.lit(None, common)
