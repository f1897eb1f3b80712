"""What builders of the function families share: reading a constant argument and
running a Python function over a batch's values. Kept apart from ``engine/functions.py``
(which imports the families) so a family can be imported first without a cycle."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import polars as pl

from unbounded.errors import AnalysisException
from unbounded.plan.expressions import FunctionCall, Literal

__all__ = ["literal_arg", "map_values"]


def literal_arg(call: FunctionCall, index: int, what: str) -> Any:
    """The constant value of argument ``index`` (a pattern, a base, a bit count...)."""
    arg = call.args[index] if index < len(call.args) else None
    if not isinstance(arg, Literal):
        shown = arg.display_name() if arg is not None else "nothing"
        raise AnalysisException(
            f"[NON_FOLDABLE_INPUT] {call.name}() needs a constant {what}, got {shown}.",
            error_class="NON_FOLDABLE_INPUT")
    return arg.value


def map_values(arg: pl.Expr, out: pl.DataType, fn: Callable[[Any], object]) -> pl.Expr:
    """``fn`` over each non-NULL value of a batch (one Python call per batch)."""
    def run(series: pl.Series) -> pl.Series:
        return pl.Series(series.name, [None if v is None else fn(v) for v in series.to_list()],
                         dtype=out)

    return arg.map_batches(run, return_dtype=out, is_elementwise=True)
