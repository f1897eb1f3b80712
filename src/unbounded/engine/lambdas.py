"""Lambda functions of higher-order functions (``transform(xs, x -> x + y)``), run exactly.

A lambda's body is compiled like any expression, over the input columns plus one column
per lambda variable (``lambda_column(name)``), so implicit casts, ANSI checks and
nested lambdas work unchanged. At run time one Python call per batch lays the elements
out one row per element (outer columns repeated for each element of their row), evaluates
the body once over all of them with Polars, and puts the results back into lists.
Polars' ``list.eval`` cannot read other columns, which Spark's lambdas may.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import polars as pl
import pyarrow as pa

from unbounded.engine.context import CompileContext
from unbounded.engine.expressions import compile_expr, lambda_column
from unbounded.errors import AnalysisException
from unbounded.plan.expressions import Expression, LambdaFunction

__all__ = ["CompiledLambda", "ElementRows", "compile_lambda", "element_rows", "lambda_of",
           "packed", "rebuild_lists"]


@dataclass(frozen=True)
class CompiledLambda:
    """A lambda's body over element rows: ``variables`` are the columns it binds (in
    parameter order), ``outer`` the input columns it also reads."""

    body: pl.Expr
    variables: tuple[str, ...]
    outer: tuple[str, ...]
    dtype: pl.DataType

    def evaluate(self, rows: pl.DataFrame) -> pl.Series:
        """The body over ``rows`` (one value per row, constants broadcast)."""
        return rows.with_columns(self.body.alias("__ub_out"))["__ub_out"]


def lambda_of(call_name: str, arg: Expression, arities: tuple[int, ...]) -> LambdaFunction:
    """``arg`` as a lambda taking one of ``arities`` parameters, else Spark's error."""
    if not isinstance(arg, LambdaFunction):
        raise AnalysisException(
            f"[DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE] {call_name}() needs a lambda function, "
            f"got {arg.display_name()}.", error_class="DATATYPE_MISMATCH")
    if len(arg.params) not in arities:
        raise AnalysisException(
            f"[INVALID_LAMBDA_FUNCTION_CALL.NUM_ARGS_MISMATCH] A higher order function "
            f"expects {' or '.join(map(str, arities))} arguments, but got "
            f"{len(arg.params)}.", error_class="INVALID_LAMBDA_FUNCTION_CALL")
    return arg


def compile_lambda(fn: LambdaFunction, dtypes: list[pl.DataType],
                   ctx: CompileContext) -> CompiledLambda:
    """``fn``'s body over the input plus its variables typed ``dtypes``."""
    names = tuple(lambda_column(p) for p in fn.params)
    schema = dict(ctx.schema)
    schema.update(zip(names, dtypes, strict=False))
    # The variables are in the schema but not among the named columns, so a name that
    # does not resolve is reported with the input's columns only.
    inner = ctx.with_schema(pl.Schema(schema), columns=ctx.columns)
    body = compile_expr(fn.body, inner)
    outer = tuple(n for n in dict.fromkeys(body.meta.root_names()) if n not in names)
    return CompiledLambda(body, names, outer, inner.dtype_of(body))


def packed(lists: list[pl.Expr], extra: dict[str, pl.Expr], outer: tuple[str, ...]
           ) -> pl.Expr:
    """One struct per row of the lists (``__ub_l0``...), fixed arguments and outer
    columns, for a ``map_batches`` to unpack."""
    fields = [e.alias(f"__ub_l{i}") for i, e in enumerate(lists)]
    fields += [e.alias(name) for name, e in extra.items()]
    fields += [pl.col(name) for name in outer if name not in extra]
    return pl.struct(fields)


@dataclass(frozen=True)
class ElementRows:
    """The elements of one batch's lists, one row each: columns ``__ub_e<i>`` (the i-th
    list's element, NULL past its end), ``__ub_pos`` (0-based) and the outer columns.
    ``row_of`` maps each element row to its input row; ``counts``/``valid`` describe the
    input rows (a row is invalid, its result NULL, when any of its lists is NULL)."""

    rows: pl.DataFrame
    row_of: np.ndarray
    counts: np.ndarray
    valid: np.ndarray


def element_rows(frame: pl.DataFrame, n_lists: int, outer: tuple[str, ...]) -> ElementRows:
    """Lay out the lists of ``frame`` (zipped: the longest sets the count) as rows."""
    lengths = [frame[f"__ub_l{i}"].list.len() for i in range(n_lists)]
    valid = np.all([s.is_not_null().to_numpy() for s in lengths], axis=0) \
        if frame.height else np.zeros(0, dtype=bool)
    own = [s.fill_null(0).to_numpy().astype(np.int64) for s in lengths]
    counts = np.where(valid, np.max(own, axis=0), 0) if frame.height \
        else np.zeros(0, dtype=np.int64)
    row_of = np.repeat(np.arange(frame.height), counts)
    pos = np.arange(row_of.size) - np.repeat(np.cumsum(counts) - counts, counts)
    columns = {f"__ub_e{i}": _elements(frame[f"__ub_l{i}"], own[i], row_of, pos)
               .alias(f"__ub_e{i}") for i in range(n_lists)}
    rows = pl.DataFrame([pl.Series("__ub_pos", pos, dtype=pl.Int32), *columns.values()])
    if outer:
        rows = rows.with_columns(frame.select(outer).gather(pl.Series(row_of, dtype=pl.UInt32)))
    return ElementRows(rows, row_of, counts, valid)


def _elements(lists: pl.Series, lengths: np.ndarray, row_of: np.ndarray,
              pos: np.ndarray) -> pl.Series:
    flat = lists.explode(empty_as_null=False, keep_nulls=False)
    starts = np.cumsum(lengths) - lengths
    index = pl.Series(starts[row_of] + pos, dtype=pl.Int64)
    inside = pl.Series(pos < lengths[row_of])
    index = pl.select(pl.when(inside).then(index)).to_series()
    return flat.gather(index)


def rebuild_lists(values: pl.Series, counts: np.ndarray, valid: np.ndarray,
                  dtype: pl.DataType) -> pl.Series:
    """Lists of ``counts[i]`` consecutive ``values`` each (NULL where not ``valid``)."""
    offsets = pa.array(np.concatenate([[0], np.cumsum(counts)]).astype(np.int64))
    array = pa.LargeListArray.from_arrays(offsets, values.to_arrow(),
                                          mask=pa.array(~valid))
    return pl.Series("", array).cast(dtype)


def per_row(row_of: np.ndarray, mask: np.ndarray, n: int) -> np.ndarray:
    """How many element rows of each input row hold ``mask``."""
    return np.bincount(row_of[mask], minlength=n)


BatchFn = Callable[[pl.Series], pl.Series]
