"""Generators in a projection: ``explode``, ``posexplode`` (and ``_outer``), ``json_tuple``.

The function itself compiles to a list column (``engine/functions.py``); after the
projection, the one generator column is exploded into rows and, when its elements are
structs Spark shows as several columns (``pos``/``col``, a map's ``key``/``value``,
``json_tuple``'s ``c0``...), unnested in place.
"""

from __future__ import annotations

import polars as pl

from unbounded.engine.functions import map_entries
from unbounded.errors import AnalysisException
from unbounded.plan.expressions import Alias, Expression, FunctionCall

__all__ = ["GENERATORS", "expand_generators"]

# name -> (explodes rows, keeps a row for a NULL or empty input)
GENERATORS: dict[str, tuple[bool, bool]] = {
    "explode": (True, False), "explode_outer": (True, True),
    "posexplode": (True, False), "posexplode_outer": (True, True),
    "json_tuple": (False, True),
    "inline": (True, False), "inline_outer": (True, True), "stack": (True, False),
}
# Generators whose rows are always structs shown as several columns.
_STRUCT_ROWS = frozenset({"json_tuple", "posexplode", "posexplode_outer", "inline",
                          "inline_outer", "stack"})


def _generator_of(expr: Expression) -> FunctionCall | None:
    while isinstance(expr, Alias):
        expr = expr.child
    return expr if isinstance(expr, FunctionCall) and expr.name in GENERATORS else None


def expand_generators(frame: pl.LazyFrame, exprs: tuple[Expression, ...]) -> pl.LazyFrame:
    """Explode (and unnest) the generator column of a projection's output, if any."""
    found = [(e, g) for e in exprs if (g := _generator_of(e)) is not None]
    if not found:
        return frame
    if len(found) > 1:
        raise AnalysisException(
            "[UNSUPPORTED_GENERATOR.MULTI_GENERATOR] The generator is not supported: only one "
            f"generator allowed per SELECT clause but found {len(found)}: "
            f"{', '.join(g.display_name() for _, g in found)}. Explode in two select steps.",
            error_class="UNSUPPORTED_GENERATOR")
    expr, call = found[0]
    name = expr.display_name()
    explodes, outer = GENERATORS[call.name]
    dtype = frame.collect_schema()[name]
    if isinstance(dtype, pl.Map):  # a map's entries become key and value columns
        frame = frame.with_columns(map_entries(pl.col(name), dtype))
    if explodes:
        frame = frame.explode(name, empty_as_null=outer, keep_nulls=outer)
    if call.name in _STRUCT_ROWS or isinstance(dtype, pl.Map):
        return frame.unnest(name)
    return frame if isinstance(expr, Alias) else frame.rename({name: "col"})
