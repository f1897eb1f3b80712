"""Python UDFs compiled to Polars, on whole batches.

A ``PythonUDF`` becomes one ``map_batches`` call over a struct of its arguments: pandas
UDFs get each batch as pandas Series (one Python call per batch), row UDFs are called
once per row but their input and output are converted a column at a time through Arrow
(no Polars ``map_elements``; ``engine/row_udfs.py``), a large batch over worker processes
(``engine/udf_workers.py``), a deterministic one once per distinct argument tuple when
the batch repeats them (``engine/distinct_calls.py``). ``mapInPandas``/``mapInArrow``,
``applyInPandas`` and cogrouped ``applyInPandas`` are frame-level calls
(``map_in_batches``, ``apply_in_groups``, ``apply_in_cogroups``). Any failure of user
code is a ``PythonException`` naming the function, the error and, for row UDFs, the
input row.
"""

from __future__ import annotations

import inspect
import itertools
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from unbounded.engine.context import CompileContext
from unbounded.engine.dtypes import arrow_schema_to_polars, to_polars_dtype
from unbounded.engine.expressions import compile_expr
from unbounded.engine.row_udfs import RowFailure, load_function
from unbounded.errors import PythonException
from unbounded.plan import types as T
from unbounded.plan.expressions import PythonEvalType, PythonFunction, PythonUDF

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "MAX_RECORDS_PER_BATCH",
    "apply_in_cogroups",
    "apply_in_groups",
    "batch_of",
    "compile_udf",
    "frame_to_pandas",
    "load_function",
    "map_in_batches",
]

# spark.sql.execution.arrow.maxRecordsPerBatch: the batch size iterator UDFs see.
MAX_RECORDS_PER_BATCH = 10_000

_Runner = Callable[[PythonUDF, list[pa.Array], int], pa.Array]


# ---- scalar UDFs -------------------------------------------------------------------
@compile_expr.register
def compile_udf(expr: PythonUDF, ctx: CompileContext) -> pl.Expr:
    """``expr`` as one ``map_batches`` over a struct of its arguments."""
    args = [compile_expr(a, ctx).alias(f"_{i}") for i, a in enumerate(expr.args)]
    # Not elementwise: Polars then hands over whole columns (one call per task's frame,
    # per group in an aggregation) and re-raises the UDF's own exception unchanged.
    once = not args and not _per_row_without_arguments(expr)
    packed = pl.struct(args) if args else pl.lit(0) if once else pl.int_range(pl.len())
    return packed.map_batches(
        _BatchCall(expr), return_dtype=to_polars_dtype(expr.return_type),
        is_elementwise=False, returns_scalar=expr.is_aggregate or once)


def _per_row_without_arguments(expr: PythonUDF) -> bool:
    """Whether a UDF without arguments is called once per row, as PySpark calls it
    (a random id), rather than once per batch with its value filling the column: a
    nondeterministic row UDF. A deterministic one has one distinct argument tuple, so
    one call is the ``distinct_calls`` rule (Spark: duplicate invocations of a
    deterministic UDF may be eliminated)."""
    return not expr.deterministic and expr.function.eval_type in _ROW_EVAL_TYPES


class _BatchCall:
    """Runs one UDF over one Polars batch (a struct Series of its arguments)."""

    def __init__(self, expr: PythonUDF) -> None:
        self.expr = expr
        self.runner = _RUNNERS[expr.function.eval_type]
        self.target = to_polars_dtype(expr.return_type)

    def __call__(self, packed: pl.Series) -> pl.Series:
        columns = [c.combine_chunks() for c in packed.struct.unnest().to_arrow().columns] \
            if self.expr.args else []
        try:
            out = self.runner(self.expr, columns, len(packed))
        except PythonException:
            raise
        except RowFailure as failure:
            raise _udf_error(self.expr, failure.error, _row_text(self.expr, columns,
                                                               failure.index)) from failure.error
        except Exception as error:
            raise _udf_error(self.expr, error, None) from error
        series = pl.from_arrow(out)
        assert isinstance(series, pl.Series)
        return series if series.dtype == self.target else series.cast(self.target)


def _udf_error(expr: PythonUDF, error: Exception, row: str | None) -> PythonException:
    where = f" on the input row {row}" if row is not None else " on a batch"
    return PythonException(
        f"[PYTHON_EXCEPTION] The Python UDF `{expr.function.name}` failed{where}: "
        f"{type(error).__name__}: {error}. Fix the function or filter out such input; "
        "a streaming query restarted from its checkpoint runs the failed batch again.",
        cause=error)


def _row_text(expr: PythonUDF, columns: list[pa.Array], index: int) -> str:
    values = ", ".join(f"{a.display_name()}={c[index].as_py()!r}"
                       for a, c in zip(expr.args, columns, strict=True))
    return f"({values})"


# ---- row UDFs ----------------------------------------------------------------------
def _run_rows(expr: PythonUDF, columns: list[pa.Array], n: int) -> pa.Array:
    """One call per row (``engine/row_udfs.py``), large batches over worker processes
    (``engine/udf_workers.py``); a deterministic UDF once per distinct argument tuple
    when the batch repeats them enough (``engine/distinct_calls.py``). Both are
    imported here, on the first row UDF: a query without one starts without them."""
    from unbounded.engine.distinct_calls import distinct_arguments
    from unbounded.engine.udf_workers import run_row_udf

    distinct = distinct_arguments(columns, n) if expr.deterministic else None
    arrow = expr.function.eval_type is PythonEvalType.SQL_ARROW_BATCHED_UDF
    if distinct is None:
        return run_row_udf(expr.function.pickled, columns, n, expr.return_type, arrow)
    try:
        results = run_row_udf(expr.function.pickled, distinct.columns, distinct.count,
                              expr.return_type, arrow)
    except RowFailure as failure:
        raise RowFailure(distinct.first_row(failure.index), failure.error) from failure.error
    return distinct.expand(results)


# ---- pandas UDFs -------------------------------------------------------------------
def _run_pandas(expr: PythonUDF, columns: list[pa.Array], n: int) -> pa.Array:
    """Series -> Series, one call per batch; the result must keep the batch's length."""
    return_type = expr.return_type
    result = load_function(expr.function.pickled)(*(_to_pandas(c) for c in columns))
    _check_pandas_result(result, return_type)
    _check_length(len(result), n)
    return _pandas_to_arrow(result, return_type)


def _run_pandas_iter(expr: PythonUDF, columns: list[pa.Array], n: int) -> pa.Array:
    """Iterator[Series] -> Iterator[Series] over slices of ``MAX_RECORDS_PER_BATCH``
    rows (a tuple of Series per slice when the UDF takes several columns)."""
    return_type = expr.return_type
    series = [_to_pandas(c) for c in columns]
    slices = (_slice(series, start) for start in range(0, n, MAX_RECORDS_PER_BATCH))
    outputs: list[pa.Array] = []
    for result in load_function(expr.function.pickled)(slices):
        _check_pandas_result(result, return_type)
        outputs.append(_pandas_to_arrow(result, return_type))
    _check_length(sum(len(o) for o in outputs), n)
    return pa.concat_arrays(outputs) if outputs else pa.array([], type=return_type.to_arrow())


def _slice(series: list[pd.Series], start: int) -> Any:
    parts = [s.iloc[start:start + MAX_RECORDS_PER_BATCH] for s in series]
    return parts[0] if len(parts) == 1 else tuple(parts)


def _run_grouped_agg(expr: PythonUDF, columns: list[pa.Array], n: int) -> pa.Array:
    """Series -> scalar: one call per group."""
    import pandas as pd

    value = load_function(expr.function.pickled)(*(_to_pandas(c) for c in columns))
    return pa.Array.from_pandas(pd.Series([value]), type=expr.return_type.to_arrow(),
                                safe=False)


def _to_pandas(column: pa.Array) -> Any:
    """A column as PySpark hands it to pandas UDFs: a Series (a DataFrame for a struct),
    timestamps naive in the session time zone."""
    import pandas as pd

    if pa.types.is_struct(column.type):
        return pd.DataFrame({f.name: _to_pandas(column.field(i))
                             for i, f in enumerate(column.type)})
    if pa.types.is_timestamp(column.type) and column.type.tz is not None:
        column = column.cast(pa.timestamp(column.type.unit))
    return column.to_pandas()


def _check_pandas_result(result: Any, return_type: T.DataType) -> None:
    import pandas as pd

    expected = pd.DataFrame if isinstance(return_type, T.StructType) else pd.Series
    if not isinstance(result, expected):
        raise TypeError(f"[UDF_RETURN_TYPE] Return type of the user-defined function should "
                        f"be pandas.{expected.__name__}, but is {type(result).__name__}.")


def _check_length(got: int, expected: int) -> None:
    if got != expected:
        raise ValueError(f"[RESULT_ROWS_MISMATCH] Number of rows of the output ({got}) does "
                         f"not match number of rows of the input ({expected}).")


def _pandas_to_arrow(result: Any, return_type: T.DataType) -> pa.Array:
    if isinstance(return_type, T.StructType):
        arrays = [_pandas_to_arrow(_frame_column(result, f.name, i), f.dataType)
                  for i, f in enumerate(return_type.fields)]
        return pa.StructArray.from_arrays(arrays, fields=list(return_type.to_arrow()))
    return pa.Array.from_pandas(result, type=return_type.to_arrow(), safe=False)


def _frame_column(frame: pd.DataFrame, name: str, position: int) -> pd.Series:
    """A result column by name when the frame's labels are strings, else by position
    (Spark's ``assignColumnsByName``)."""
    if all(isinstance(c, str) for c in frame.columns):
        if name not in frame.columns:
            raise ValueError(
                f"[RESULT_COLUMN_NAMES_MISMATCH] Column names of the returned "
                f"pandas.DataFrame do not match the schema: missing {name!r}, "
                f"found {list(frame.columns)}.")
        column: pd.Series = frame[name]
        return column
    by_position: pd.Series = frame.iloc[:, position]
    return by_position


_ROW_EVAL_TYPES = frozenset({PythonEvalType.SQL_BATCHED_UDF,
                             PythonEvalType.SQL_ARROW_BATCHED_UDF})
_RUNNERS: dict[PythonEvalType, _Runner] = {
    PythonEvalType.SQL_BATCHED_UDF: _run_rows,
    PythonEvalType.SQL_ARROW_BATCHED_UDF: _run_rows,
    PythonEvalType.SQL_SCALAR_PANDAS_UDF: _run_pandas,
    PythonEvalType.SQL_SCALAR_PANDAS_ITER_UDF: _run_pandas_iter,
    PythonEvalType.SQL_GROUPED_AGG_PANDAS_UDF: _run_grouped_agg,
}
# ---- frame-level user code ---------------------------------------------------------
def _map_frame(frame: pl.LazyFrame, run: Callable[[pl.DataFrame], pl.DataFrame],
               schema: T.StructType) -> pl.LazyFrame:
    """``run`` over the whole frame; no filter, projection or limit moves across it."""
    return frame.map_batches(
        run, schema=arrow_schema_to_polars(schema.to_arrow_schema()),
        predicate_pushdown=False, projection_pushdown=False, slice_pushdown=False,
        validate_output_schema=False)


def map_in_batches(frame: pl.LazyFrame, names: Sequence[str], function: PythonFunction,
                   schema: T.StructType) -> pl.LazyFrame:
    """``mapInPandas``/``mapInArrow`` over ``frame`` (whose columns users call ``names``)."""
    return _map_frame(frame, _MapRun(names, function, schema), schema)


class _MapRun:
    def __init__(self, names: Sequence[str], function: PythonFunction,
                 schema: T.StructType) -> None:
        self.names, self.function, self.schema = list(names), function, schema

    def __call__(self, frame: pl.DataFrame) -> pl.DataFrame:
        table = frame.to_arrow().rename_columns(self.names)
        batches = iter(table.to_batches(max_chunksize=MAX_RECORDS_PER_BATCH))
        user = load_function(self.function.pickled)
        arrow = self.function.eval_type is PythonEvalType.SQL_MAP_ARROW_ITER_UDF
        try:
            inputs = batches if arrow else (frame_to_pandas(b) for b in batches)
            outputs = [batch_of(out, self.schema, arrow) for out in user(inputs)]
        except Exception as error:
            raise _function_error(self.function, error) from error
        return _frame_of(outputs, self.schema)


def apply_in_groups(frame: pl.LazyFrame, names: Sequence[str], keys: list[pl.Expr],
                    function: PythonFunction, schema: T.StructType) -> pl.LazyFrame:
    """``groupBy(keys).applyInPandas``: one call per group, the groups in the order
    their first rows appear."""
    keyed = frame.with_columns([k.alias(f"__key{i}") for i, k in enumerate(keys)])
    return _map_frame(keyed, _GroupRun(names, len(keys), function, schema), schema)


class _GroupRun:
    def __init__(self, names: Sequence[str], n_keys: int, function: PythonFunction,
                 schema: T.StructType) -> None:
        self.names, self.function, self.schema = list(names), function, schema
        self.keys = [f"__key{i}" for i in range(n_keys)]

    def __call__(self, frame: pl.DataFrame) -> pl.DataFrame:
        user = load_function(self.function.pickled)
        outputs = []
        for key, group in _groups(frame, self.keys):
            pdf = frame_to_pandas(group.drop(self.keys).to_arrow().rename_columns(self.names))
            outputs.append(self._call(user, key, (pdf,)))
        return _frame_of(outputs, self.schema)

    def _call(self, user: Callable[..., Any], key: tuple[Any, ...],
              frames: tuple[pd.DataFrame, ...]) -> pa.Table:
        try:
            with_key = len(inspect.signature(user).parameters) == len(frames) + 1
            result = user(key, *frames) if with_key else user(*frames)
            return batch_of(result, self.schema, arrow=False)
        except Exception as error:
            raise _function_error(self.function, error, key) from error


def _groups(frame: pl.DataFrame, keys: list[str]) -> list[tuple[tuple[Any, ...], pl.DataFrame]]:
    if not keys:
        return [((), frame)] if frame.height else []
    parts = frame.partition_by(keys, maintain_order=True, as_dict=True)
    return list(parts.items())


def apply_in_cogroups(sides: tuple[pl.LazyFrame, pl.LazyFrame],
                      names: tuple[Sequence[str], Sequence[str]],
                      keys: tuple[list[pl.Expr], list[pl.Expr]],
                      function: PythonFunction, schema: T.StructType) -> pl.LazyFrame:
    """``cogroup(...).applyInPandas``: one call per key found on either side."""
    key_names = [f"__key{i}" for i in range(len(keys[0]))]
    keyed = [side.with_columns([k.alias(n) for k, n in zip(ks, key_names, strict=True)])
             for side, ks in zip(sides, keys, strict=True)]
    run = _CoGroupRun(names, key_names, function, schema)
    return pl.defer(lambda: run(keyed[0].collect(), keyed[1].collect()),
                    schema=arrow_schema_to_polars(schema.to_arrow_schema()))


class _CoGroupRun(_GroupRun):
    def __init__(self, names: tuple[Sequence[str], Sequence[str]], keys: list[str],
                 function: PythonFunction, schema: T.StructType) -> None:
        super().__init__(names[0], len(keys), function, schema)
        self.sides = names

    def __call__(self, left: pl.DataFrame, right: pl.DataFrame) -> pl.DataFrame:  # type: ignore[override]
        user = load_function(self.function.pickled)
        groups = [dict(_groups(side, self.keys)) for side in (left, right)]
        outputs = []
        for key in dict.fromkeys(itertools.chain(groups[0], groups[1])):
            frames = tuple(self._side(side, groups[i].get(key), names)
                           for i, (side, names) in enumerate(zip((left, right), self.sides,
                                                                 strict=True)))
            outputs.append(self._call(user, key, frames))
        return _frame_of(outputs, self.schema)

    def _side(self, whole: pl.DataFrame, group: pl.DataFrame | None,
              names: Sequence[str]) -> pd.DataFrame:
        rows = (group if group is not None else whole.clear()).drop(self.keys)
        return frame_to_pandas(rows.to_arrow().rename_columns(list(names)))


def frame_to_pandas(data: pa.Table | pa.RecordBatch) -> pd.DataFrame:
    """Rows as a pandas DataFrame, timestamps naive in the session time zone (UTC)."""
    columns = [c.cast(pa.timestamp(c.type.unit)) if pa.types.is_timestamp(c.type)
               and c.type.tz is not None else c for c in data.columns]
    frame: pd.DataFrame = pa.table(columns, names=data.schema.names).to_pandas()
    return frame


def batch_of(result: Any, schema: T.StructType, arrow: bool) -> pa.Table:
    """Rows the user function returned, checked and cast to ``schema``."""
    import pandas as pd

    expected = pa.RecordBatch if arrow else pd.DataFrame
    if not isinstance(result, expected):
        package = "pyarrow" if arrow else "pandas"
        raise TypeError(f"[UDF_RETURN_TYPE] Return type of the user-defined function should "
                        f"be {package}.{expected.__name__}, but is {type(result).__name__}.")
    target = schema.to_arrow_schema()
    if arrow:
        batch: Any = result
        names = batch.schema.names
        columns = [batch.column(names.index(f.name)) if f.name in names else batch.column(i)
                   for i, f in enumerate(schema.fields)]
        return pa.Table.from_arrays(columns, names=schema.names).cast(target)
    arrays = [_pandas_to_arrow(_frame_column(result, f.name, i), f.dataType)
              for i, f in enumerate(schema.fields)]
    return pa.Table.from_arrays(arrays, schema=target)


def _frame_of(tables: list[pa.Table], schema: T.StructType) -> pl.DataFrame:
    target = schema.to_arrow_schema()
    frame = pl.from_arrow(pa.concat_tables(tables) if tables else target.empty_table())
    assert isinstance(frame, pl.DataFrame)
    return frame


def _function_error(function: PythonFunction, error: Exception,
                    key: tuple[Any, ...] | None = None) -> PythonException:
    group = f" on the group {key!r}" if key is not None else ""
    return PythonException(
        f"[PYTHON_EXCEPTION] The Python function `{function.name}` failed{group}: "
        f"{type(error).__name__}: {error}. A streaming query restarted from its checkpoint "
        "runs the failed batch again.", cause=error)
