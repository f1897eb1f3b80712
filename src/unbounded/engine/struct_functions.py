"""``try_cast`` and ``update_fields`` (what ``Column.try_cast``, ``withField`` and
``dropFields`` build): importing this module registers their builders."""

from __future__ import annotations

import polars as pl

from unbounded.engine.context import CompileContext
from unbounded.engine.expressions import cast_to
from unbounded.engine.functions import register
from unbounded.errors import AnalysisException
from unbounded.plan.expressions import FunctionCall

__all__: list[str] = []


@register("try_cast")
def _try_cast(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """ANSI cast rules, NULL where the value does not convert (never an error)."""
    return cast_to(args[0], ctx.dtype_of(args[0]), call.param("type"), ansi=True)


@register("update_fields")
def _update_fields(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """The struct with fields set (``("with", name)``, replaced in place or appended)
    and dropped (``("drop", name)``), in order; a NULL struct stays NULL."""
    dtype = ctx.dtype_of(args[0])
    if not isinstance(dtype, pl.Struct):
        raise AnalysisException(
            f"[DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE] withField/dropFields need a struct "
            f"column, got {dtype}.", error_class="DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE")
    fields = {f.name: args[0].struct.field(f.name) for f in dtype.fields}
    values = iter(args[1:])
    for op, name in call.param("ops"):
        if op == "with":
            fields[name] = next(values)
        else:
            fields.pop(name, None)
    if not fields:
        raise AnalysisException(
            "[DATATYPE_MISMATCH.CANNOT_DROP_ALL_FIELDS] Cannot drop all fields in struct.",
            error_class="DATATYPE_MISMATCH.CANNOT_DROP_ALL_FIELDS")
    rebuilt = pl.struct([value.alias(name) for name, value in fields.items()])
    return pl.when(args[0].is_not_null()).then(rebuilt)
