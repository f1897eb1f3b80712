"""How a public function becomes an expression node: shared by ``sql/functions.py`` and
the function families kept in modules of their own (math, strings, dates, collections),
which ``sql/functions.py`` re-exports, as PySpark has them all in one namespace."""

from __future__ import annotations

import itertools
from typing import Any

from unbounded.plan.expressions import Expression, FunctionCall
from unbounded.sql.column import Column, column_of

__all__ = ["column_expr", "function_call", "unseeded"]


def column_expr(value: Any) -> Expression:
    """``value`` (a Column, a column name or a literal) as an expression node."""
    return column_of(value).expr


def function_call(name: str, *args: Any, **params: Any) -> Column:
    """``name(args...)``, compiled by the engine builder registered under ``name``;
    ``params`` are fixed (non-column) arguments the builder reads with ``call.param``."""
    return Column(FunctionCall(name, tuple(column_expr(a) for a in args),
                               tuple(params.items())))


_UNSEEDED = itertools.count()


def unseeded() -> int:
    """The seed of a random function called without one (``rand()``, ``uuid()``): the
    next of a sequence every process repeats, so a restarted job that builds its columns
    in the same order gets the same seeds and a re-run batch the same values (Spark
    draws a random seed, so its restarts change them)."""
    return (next(_UNSEEDED) * 0x9E3779B97F4A7C15 + 0x5DEECE66D) & ((1 << 63) - 1)
