"""``try_cast`` and ``update_fields`` (what ``Column.try_cast``, ``withField`` and
``dropFields`` build): importing this module registers their builders."""

from __future__ import annotations

import polars as pl

from unbounded.engine.context import CompileContext
from unbounded.engine.dtypes import polars_schema_to_spark
from unbounded.engine.expressions import cast_to
from unbounded.engine.functions import register
from unbounded.errors import AnalysisException
from unbounded.plan.expressions import FunctionCall

__all__: list[str] = []


@register("try_cast")
def _try_cast(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """ANSI cast rules, NULL where the value does not convert (never an error)."""
    return cast_to(args[0], ctx.dtype_of(args[0]), call.param("type"), ansi=True,
                   zone=ctx.time_zone)


@register("update_fields")
def _update_fields(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """The struct with fields set (``("with", path)``, replaced in place or appended)
    and dropped (``("drop", path)``), in order; a NULL struct stays NULL."""
    result, values = args[0], iter(args[1:])
    for kind, path in call.param("ops"):
        value = next(values) if kind == "with" else None
        result = _apply(result, call.args[0].display_name(), path, value, ctx)
    return result


def _apply(struct: pl.Expr, name: str, path: tuple[str, ...], value: pl.Expr | None,
           ctx: CompileContext) -> pl.Expr:
    fields = _fields(struct, name, ctx)
    head = path[0]
    if len(path) > 1:
        if head not in fields:
            shown = ", ".join(f"`{f}`" for f in fields)
            raise AnalysisException(f"[FIELD_NOT_FOUND] No such struct field `{head}` in "
                                    f"{shown}.", error_class="FIELD_NOT_FOUND")
        fields[head] = _apply(fields[head], f"{name}.{head}", path[1:], value, ctx)
    elif value is not None:
        fields[head] = value
    else:
        fields.pop(head, None)
    if not fields:
        raise AnalysisException(
            "[DATATYPE_MISMATCH.CANNOT_DROP_ALL_FIELDS] Cannot drop all fields in struct.",
            error_class="DATATYPE_MISMATCH.CANNOT_DROP_ALL_FIELDS")
    rebuilt = pl.struct([v.alias(n) for n, v in fields.items()])
    return pl.when(struct.is_not_null()).then(rebuilt)


def _fields(struct: pl.Expr, name: str, ctx: CompileContext) -> dict[str, pl.Expr]:
    dtype = ctx.dtype_of(struct)
    if not isinstance(dtype, pl.Struct):
        shown = polars_schema_to_spark(pl.Schema({name: dtype})).fields[0].dataType
        raise AnalysisException(
            f'[DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE] Cannot resolve "update_fields('
            f'{name}, ...)" due to data type mismatch: The first parameter requires the '
            f'"STRUCT" type, however "{name}" has the type '
            f'"{shown.simpleString().upper()}".',
            error_class="DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE")
    return {f.name: struct.struct.field(f.name) for f in dtype.fields}
