"""PySpark's collection functions (``pyspark.sql.functions``), re-exported by
``unbounded.sql.functions``; each compiles through the engine builder of the same name
in ``unbounded/engine/collection_functions.py``.

Higher-order functions take a Python function of Columns, as PySpark does: it is called
once, with one ``LambdaVariable`` Column per parameter, and its result becomes the body
of a ``LambdaFunction`` node. A SQL string's ``x -> x + 1`` builds the same node.

>>> transform("xs", lambda x: x + 1).expr.display_name()
'transform(xs, lambdafunction((namedlambdavariable() + 1), namedlambdavariable()))'
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from unbounded.errors import AnalysisException
from unbounded.plan.expressions import FunctionCall, LambdaFunction, LambdaVariable, Literal
from unbounded.sql.column import Column, to_expr
from unbounded.sql.function_call import column_expr, function_call

__all__ = [
    "aggregate", "array_append", "array_compact", "array_distinct", "array_except",
    "array_insert", "array_intersect", "array_join", "array_max", "array_min",
    "array_position", "array_prepend", "array_remove", "array_repeat", "array_size",
    "array_sort", "array_union", "arrays_overlap", "arrays_zip", "cardinality", "exists",
    "filter", "flatten", "forall", "get", "inline", "inline_outer", "map_concat",
    "map_contains_key", "map_entries",
    "map_filter", "map_from_arrays", "map_from_entries", "map_zip_with", "named_struct",
    "reduce",
    "sequence", "shuffle", "slice", "sort_array", "stack", "str_to_map", "transform",
    "transform_keys", "transform_values", "try_element_at", "zip_with",
]

LambdaArg = Callable[..., Column] | Column


def _lambda(f: LambdaArg, arities: tuple[int, ...]) -> Column:
    """``f`` as a ``LambdaFunction`` Column (a Column from SQL's ``x -> ...`` as is)."""
    if isinstance(f, Column):
        return f
    names = list(inspect.signature(f).parameters)
    if len(names) not in arities:
        raise AnalysisException(
            f"[INVALID_LAMBDA_FUNCTION_CALL.NUM_ARGS_MISMATCH] The function expects "
            f"{' or '.join(map(str, arities))} arguments, but got {len(names)}.",
            error_class="INVALID_LAMBDA_FUNCTION_CALL")
    body = f(*(Column(LambdaVariable(n)) for n in names))
    if not isinstance(body, Column):
        raise AnalysisException(
            f"[HIGHER_ORDER_FUNCTION_SHOULD_RETURN_COLUMN] The function should return a "
            f"Column, but returned {type(body).__name__}.",
            error_class="HIGHER_ORDER_FUNCTION_SHOULD_RETURN_COLUMN")
    return Column(LambdaFunction(body.expr, tuple(names)))


def _hof(name: str, *args: Any) -> Column:
    return Column(FunctionCall(name, tuple(column_expr(a) if not isinstance(a, Column)
                                           else a.expr for a in args)))


# ---- higher-order functions ----------------------------------------------------------
def transform(col: Any, f: LambdaArg) -> Column:
    """Each element through ``f(x)`` or ``f(x, index)``."""
    return _hof("transform", col, _lambda(f, (1, 2)))


def filter(col: Any, f: LambdaArg) -> Column:
    """The elements for which ``f(x)`` (or ``f(x, index)``) is true."""
    return _hof("filter", col, _lambda(f, (1, 2)))


def exists(col: Any, f: LambdaArg) -> Column:
    return _hof("exists", col, _lambda(f, (1,)))


def forall(col: Any, f: LambdaArg) -> Column:
    return _hof("forall", col, _lambda(f, (1,)))


def aggregate(col: Any, initialValue: Any, merge: LambdaArg,
              finish: LambdaArg | None = None) -> Column:
    """A left fold of the elements from ``initialValue``, then ``finish`` (Spark shows
    the identity when none is given)."""
    return _fold("aggregate", col, initialValue, merge, finish)


def reduce(col: Any, initialValue: Any, merge: LambdaArg,
           finish: LambdaArg | None = None) -> Column:
    return _fold("reduce", col, initialValue, merge, finish)


def _fold(name: str, col: Any, zero: Any, merge: LambdaArg, finish: LambdaArg | None
          ) -> Column:
    done = _lambda(finish if finish is not None else (lambda acc: acc), (1,))
    start = column_expr(zero) if isinstance(zero, str) else to_expr(zero)  # a name: a column
    return _hof(name, col, Column(start), _lambda(merge, (2,)), done)


def zip_with(left: Any, right: Any, f: LambdaArg) -> Column:
    """``f(l, r)`` over the elements of both arrays; the shorter is padded with NULLs."""
    return _hof("zip_with", left, right, _lambda(f, (2,)))


def map_filter(col: Any, f: LambdaArg) -> Column:
    return _hof("map_filter", col, _lambda(f, (2,)))


def transform_keys(col: Any, f: LambdaArg) -> Column:
    return _hof("transform_keys", col, _lambda(f, (2,)))


def transform_values(col: Any, f: LambdaArg) -> Column:
    return _hof("transform_values", col, _lambda(f, (2,)))


def map_zip_with(col1: Any, col2: Any, f: LambdaArg) -> Column:
    """``f(key, v1, v2)`` over the keys of either map (a missing value is NULL)."""
    return _hof("map_zip_with", col1, col2, _lambda(f, (3,)))


_DEFAULT_ORDER = (
    "lambdafunction((IF(((namedlambdavariable() IS NULL) AND (namedlambdavariable() IS "
    "NULL)), 0, (IF((namedlambdavariable() IS NULL), 1, (IF((namedlambdavariable() IS "
    "NULL), -1, (IF((namedlambdavariable() < namedlambdavariable()), -1, "
    "(IF((namedlambdavariable() > namedlambdavariable()), 1, 0)))))))))), "
    "namedlambdavariable(), namedlambdavariable())")


def array_sort(col: Any, comparator: LambdaArg | None = None) -> Column:
    """Ascending with NULLs last, or in ``comparator``'s order (negative: before)."""
    if comparator is None:
        shown = f"array_sort({column_expr(col).display_name()}, {_DEFAULT_ORDER})"
        return function_call("array_sort", col, display=shown)
    return _hof("array_sort", col, _lambda(comparator, (2,)))


# ---- arrays ----------------------------------------------------------------------------
def _value(v: Any) -> Column:
    return Column(to_expr(v))


def array_append(col: Any, value: Any) -> Column:
    return function_call("array_append", col, _value(value))


def array_prepend(col: Any, value: Any) -> Column:
    return function_call("array_prepend", col, _value(value))


def array_insert(arr: Any, pos: Any, value: Any) -> Column:
    """``value`` at 1-based ``pos`` (negative: from the end); past either end pads NULLs."""
    return function_call("array_insert", arr, _value(pos), _value(value))


def array_remove(col: Any, element: Any) -> Column:
    return function_call("array_remove", col, _value(element))


def array_position(col: Any, value: Any) -> Column:
    """The 1-based position of the first element equal to ``value``; 0 if none."""
    return function_call("array_position", col, _value(value))


def array_join(col: Any, delimiter: str, null_replacement: str | None = None) -> Column:
    extra = () if null_replacement is None else (Literal(null_replacement),)
    return Column(FunctionCall("array_join",
                               (column_expr(col), Literal(delimiter), *extra)))


def array_repeat(col: Any, count: Any) -> Column:
    return function_call("array_repeat", col, _value(count))


def slice(x: Any, start: Any, length: Any) -> Column:
    """``length`` elements from 1-based ``start`` (negative: from the end)."""
    return function_call("slice", x, _value(start), _value(length))


def sort_array(col: Any, asc: bool = True) -> Column:
    """Ascending with NULLs first, or descending with NULLs last."""
    return function_call("sort_array", col, Literal(asc))


def sequence(start: Any, stop: Any, step: Any = None) -> Column:
    """``start`` to ``stop`` inclusive by ``step`` (1 or -1 by default)."""
    if step is None:
        return function_call("sequence", start, stop)
    return function_call("sequence", start, stop, step)


def shuffle(col: Any, seed: Any = None) -> Column:
    """A random permutation; the same ``seed`` gives the same permutation."""
    if seed is None:
        return function_call("shuffle", col)
    shown = f"shuffle({column_expr(col).display_name()})"  # Spark does not show the seed
    return function_call("shuffle", col, _value(seed), display=shown)


def get(col: Any, index: Any) -> Column:
    """The element at 0-based ``index``; NULL outside the array."""
    return function_call("get", col, _value(index))


def try_element_at(col: Any, extraction: Any) -> Column:
    """``element_at`` that gives NULL (not an error) for an index outside the array."""
    return function_call("try_element_at", col, extraction)


def arrays_zip(*cols: Any) -> Column:
    """Structs of the i-th elements (fields named after the columns), NULL-padded."""
    return function_call("arrays_zip", *cols)


def array_compact(col: Any) -> Column: return function_call("array_compact", col)
def array_distinct(col: Any) -> Column: return function_call("array_distinct", col)
def array_max(col: Any) -> Column: return function_call("array_max", col)
def array_min(col: Any) -> Column: return function_call("array_min", col)
def array_size(col: Any) -> Column: return function_call("array_size", col)
def cardinality(col: Any) -> Column: return function_call("cardinality", col)
def flatten(col: Any) -> Column: return function_call("flatten", col)
def array_except(col1: Any, col2: Any) -> Column:
    return function_call("array_except", col1, col2)


def array_intersect(col1: Any, col2: Any) -> Column:
    return function_call("array_intersect", col1, col2)


def array_union(col1: Any, col2: Any) -> Column:
    return function_call("array_union", col1, col2)


def arrays_overlap(a1: Any, a2: Any) -> Column:
    return function_call("arrays_overlap", a1, a2)


# ---- maps ------------------------------------------------------------------------------
def map_concat(*cols: Any) -> Column:
    if len(cols) == 1 and isinstance(cols[0], (list, tuple)):
        cols = tuple(cols[0])
    return function_call("map_concat", *cols)


def map_entries(col: Any) -> Column: return function_call("map_entries", col)
def map_from_entries(col: Any) -> Column: return function_call("map_from_entries", col)


def map_from_arrays(col1: Any, col2: Any) -> Column:
    return function_call("map_from_arrays", col1, col2)


def map_contains_key(col: Any, value: Any) -> Column:
    return function_call("map_contains_key", col, _value(value))


def str_to_map(text: Any, pairDelim: Any = None, keyValueDelim: Any = None) -> Column:
    """A string map: pairs split on ``pairDelim`` (``,``), key from value on
    ``keyValueDelim`` (``:``); both are regular expressions, as in Spark."""
    pair = _value(pairDelim if pairDelim is not None else Column(Literal(",")))
    kv = _value(keyValueDelim if keyValueDelim is not None else Column(Literal(":")))
    return function_call("str_to_map", text, pair, kv)


def named_struct(*cols: Any) -> Column:
    """A struct from alternating field names (string literals) and values."""
    exprs = [column_expr(c) for c in cols]
    names = [e.value for e in exprs[::2] if isinstance(e, Literal) and isinstance(e.value, str)]
    if len(exprs) % 2 or len(names) != len(exprs) // 2:
        raise AnalysisException(
            "[DATATYPE_MISMATCH.CREATE_NAMED_STRUCT_WITHOUT_FOLDABLE_STRING] named_struct() "
            "takes pairs of a string literal name and a value.",
            error_class="DATATYPE_MISMATCH")
    shown = f"named_struct({', '.join(e.display_name() for e in exprs)})"
    return Column(FunctionCall("named_struct", tuple(exprs[1::2]),
                               (("names", tuple(names)), ("display", shown))))


# ---- generators: one input row becomes several output rows ------------------------------
def inline(col: Any) -> Column:
    """One row per struct of the array, one column per field."""
    return function_call("inline", col)


def inline_outer(col: Any) -> Column:
    """``inline``, with one row of NULLs for a NULL or empty array."""
    return function_call("inline_outer", col)


def stack(*cols: Any) -> Column:
    """``stack(n, v1, v2, ...)``: the values in ``n`` rows (columns ``col0``, ``col1``...)."""
    return function_call("stack", *cols)
