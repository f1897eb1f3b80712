"""Spark's comparison of two structs (``= <> < <= > >= <=>``, and so ``IN``), which
``engine/expressions.py`` calls when both operands are structs.

Spark compares structs by field POSITION: ``named_struct('a', 1, 'b', 2) =
named_struct('b', 1, 'a', 2)`` is true. Their types must agree: with the same field names
(case-insensitive) each pair of fields takes its tightest common type (int and bigint:
bigint; no string promotion); with other names the field types must be equal; otherwise
``DATATYPE_MISMATCH.BINARY_OP_DIFF_TYPES``. Ordering is lexicographic, a NULL field
sorting first and NaN last; two NULL fields are equal (so ``=`` is true). Polars would
match fields by name and cannot order structs.

>>> import polars as pl
>>> struct_common_type(pl.Struct({"a": pl.Int32}), pl.Struct({"A": pl.Int64}))
Struct({'a': Int64})
>>> struct_common_type(pl.Struct({"a": pl.Int32}), pl.Struct({"b": pl.Int64})) is None
True
"""

from __future__ import annotations

from typing import Any

import polars as pl

from unbounded.engine.ansi import spark_type_name
from unbounded.errors import AnalysisException
from unbounded.plan.expressions import BinaryOp

__all__ = ["aligned_structs", "compare_structs", "struct_common_type"]

_INTEGRAL = (pl.Int8(), pl.Int16(), pl.Int32(), pl.Int64())
_FLOATS = (pl.Float32(), pl.Float64())


def compare_structs(expr: BinaryOp, left: pl.Expr, right: pl.Expr,
                    dtypes: tuple[pl.Struct, pl.Struct]) -> pl.Expr:
    """``left <op> right`` for two structs, as Spark compares them (see the module)."""
    (a, b), common = aligned_structs(expr.display_name(), (left, right), dtypes)
    less, equal = _ordering(a, b, common)
    if expr.op == "eq_null_safe":
        return pl.when(a.is_null() | b.is_null()).then(a.is_null() & b.is_null()) \
            .otherwise(equal)
    result = {"eq": equal, "ne": ~equal, "lt": less, "le": less | equal,
              "gt": ~(less | equal), "ge": ~less}[expr.op]
    return pl.when(a.is_null() | b.is_null()).then(None).otherwise(result)


def aligned_structs(shown: str, values: tuple[pl.Expr, pl.Expr],
                    dtypes: tuple[pl.Struct, pl.Struct]
                    ) -> tuple[tuple[pl.Expr, pl.Expr], pl.Struct]:
    """Both structs cast to the type they compare in, field by position (a join's keys
    hash equal then), and that type; DATATYPE_MISMATCH when they do not compare."""
    common = struct_common_type(*dtypes)
    if common is None:
        names = [_sql_type(d) for d in dtypes]
        raise AnalysisException(
            f'[DATATYPE_MISMATCH.BINARY_OP_DIFF_TYPES] Cannot resolve "{shown}" due to data '
            "type mismatch: the left and right operands of the binary operator have "
            f'incompatible types ("{names[0]}" and "{names[1]}"). SQLSTATE: 42K09',
            error_class="DATATYPE_MISMATCH.BINARY_OP_DIFF_TYPES")
    a, b = (_as_type(v, d, common) for v, d in zip(values, dtypes, strict=True))
    return (a, b), common


def _sql_type(dtype: pl.DataType) -> str:
    """A type as Spark's messages print it (``STRUCT<a: INT>``; Spark adds NOT NULL where
    it knows a field cannot be NULL, which Polars does not track)."""
    if isinstance(dtype, pl.Struct):
        fields = ", ".join(f"{f.name}: {_sql_type(_dtype(f))}" for f in dtype.fields)
        return f"STRUCT<{fields}>"
    if isinstance(dtype, pl.List):
        return f"ARRAY<{_sql_type(_instance(dtype.inner))}>"
    return spark_type_name(dtype)


def struct_common_type(left: pl.Struct, right: pl.Struct) -> pl.Struct | None:
    """The type Spark compares two structs in (the left one's field names), None when
    they do not compare."""
    if len(left.fields) != len(right.fields):
        return None
    if all(a.name.lower() == b.name.lower() for a, b in zip(left.fields, right.fields,
                                                            strict=True)):
        types = [_tightest(_dtype(a), _dtype(b)) for a, b in zip(left.fields, right.fields,
                                                                 strict=True)]
        if any(t is None for t in types):
            return None
        return pl.Struct([pl.Field(f.name, t) for f, t in zip(left.fields, types, strict=True)
                          if t is not None])
    return left if _same_shape(left, right) else None


def _tightest(left: pl.DataType, right: pl.DataType) -> pl.DataType | None:
    """Spark's findTightestCommonType over Polars types: equal types, NULL and another,
    numbers widening (no string promotion); structs field by field."""
    if right in (left, pl.Null):
        return left
    if left == pl.Null:
        return right
    if isinstance(left, pl.Struct) and isinstance(right, pl.Struct):
        return struct_common_type(left, right)
    ranks = (*_INTEGRAL, *_FLOATS)
    if left in ranks and right in ranks:
        return max(left, right, key=ranks.index)
    return None


def _same_shape(left: pl.DataType, right: pl.DataType) -> bool:
    """Equal types, struct field names aside (Spark's sameType for comparisons)."""
    if isinstance(left, pl.Struct) and isinstance(right, pl.Struct):
        return len(left.fields) == len(right.fields) and all(
            _same_shape(_dtype(a), _dtype(b)) for a, b in zip(left.fields, right.fields,
                                                              strict=True))
    if isinstance(left, pl.List) and isinstance(right, pl.List):
        return _same_shape(_instance(left.inner), _instance(right.inner))
    return bool(left == right)


def _dtype(f: pl.Field) -> pl.DataType:
    """A field's dtype as an instance (Polars may hold the class, ``pl.Int64``)."""
    return _instance(f.dtype)


def _instance(dtype: Any) -> pl.DataType:
    instance: pl.DataType = dtype() if isinstance(dtype, type) else dtype
    return instance


def _as_type(value: pl.Expr, dtype: pl.Struct, target: pl.Struct) -> pl.Expr:
    """``value`` with ``target``'s field names (by position, at every depth) and types.
    Names are set before the cast: Polars casts struct fields by name (2.1 gave NULL
    for a nested field of another name, 2.2 fails)."""
    renamed = _renamed(value, dtype, target)
    return renamed if dtype == target else renamed.cast(target)


def _renamed(value: pl.Expr, dtype: pl.DataType, target: pl.DataType) -> pl.Expr:
    """``value`` (of ``dtype``) with ``target``'s struct field names, by position."""
    if isinstance(dtype, pl.List) and isinstance(target, pl.List):
        inner, goal = _instance(dtype.inner), _instance(target.inner)
        return value if not _names_differ(inner, goal) else \
            value.list.eval(_renamed(pl.element(), inner, goal))
    if not (isinstance(dtype, pl.Struct) and isinstance(target, pl.Struct)):
        return value
    renamed = value.struct.rename_fields([f.name for f in target.fields]) \
        if [f.name for f in dtype.fields] != [f.name for f in target.fields] else value
    nested = [_renamed(pl.field(t.name), _dtype(f), _dtype(t)).alias(t.name)
              for f, t in zip(dtype.fields, target.fields, strict=True)
              if _names_differ(_dtype(f), _dtype(t))]
    return renamed.struct.with_fields(nested) if nested else renamed


def _names_differ(dtype: pl.DataType, target: pl.DataType) -> bool:
    """Whether some struct field inside differs in name from ``target``'s."""
    if isinstance(dtype, pl.List) and isinstance(target, pl.List):
        return _names_differ(_instance(dtype.inner), _instance(target.inner))
    if isinstance(dtype, pl.Struct) and isinstance(target, pl.Struct):
        return any(f.name != t.name or _names_differ(_dtype(f), _dtype(t))
                   for f, t in zip(dtype.fields, target.fields, strict=True))
    return False


def _ordering(a: pl.Expr, b: pl.Expr, dtype: pl.DataType) -> tuple[pl.Expr, pl.Expr]:
    """(a < b, a == b) for non-NULL ``a`` and ``b``: NULL sorts first, NULLs are equal."""
    if not isinstance(dtype, pl.Struct):
        return (a < b).fill_null(False), (a == b).fill_null(False)
    less, equal = pl.lit(False), pl.lit(True)
    for f in reversed(dtype.fields):
        x, y = a.struct.field(f.name), b.struct.field(f.name)
        field_less, field_equal = _ordering(x, y, _dtype(f))
        nulls = x.is_null() | y.is_null()
        field_less = pl.when(nulls).then(x.is_null() & y.is_not_null()).otherwise(field_less)
        field_equal = pl.when(nulls).then(x.is_null() & y.is_null()).otherwise(field_equal)
        less, equal = field_less | (field_equal & less), field_equal & equal
    return less, equal
