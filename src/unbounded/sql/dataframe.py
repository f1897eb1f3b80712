"""``DataFrame``: an immutable logical plan plus the session that made it.

Transformations return new DataFrames; nothing runs until an action (batch) or
``writeStream.start()`` (streaming).
"""

from __future__ import annotations

import time
from collections import Counter
from functools import cached_property, reduce
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from unbounded.engine.context import (
    CompileContext,
    OutputColumn,
    ansi_enabled,
    session_time_zone,
)
from unbounded.engine.legacy_coercion import with_legacy_casts
from unbounded.engine.plans import compile_output, plan_columns, plan_schema, to_display_arrow
from unbounded.engine.zone_binding import with_time_zone
from unbounded.errors import AnalysisException
from unbounded.plan.expressions import (
    AggregateCall,
    Alias,
    ColumnRef,
    Expression,
    PythonEvalType,
    SortOrder,
    Star,
)
from unbounded.plan.intervals import parse_interval_ms
from unbounded.plan.logical import (
    Deduplicate,
    Filter,
    Join,
    JoinType,
    Limit,
    LogicalPlan,
    MapInBatches,
    Project,
    Sort,
    SubqueryAlias,
    Union,
    WithWatermark,
    is_streaming,
)
from unbounded.sql.analysis import analyze, engine_error
from unbounded.sql.column import Column, column_of
from unbounded.sql.dataframe_ops import DataFrameOps
from unbounded.sql.group import GroupedData
from unbounded.sql.row import Row, rows_from_arrow
from unbounded.sql.types import StructType, parse_ddl_schema
from unbounded.sql.udf import python_function

if TYPE_CHECKING:
    import pandas as pd

    from unbounded.session import SparkSession
    from unbounded.sql.readwriter import DataFrameWriter
    from unbounded.sql.streaming import DataStreamWriter

__all__ = ["DataFrame"]


_AMBIGUOUS = -1


def _check_observed_metric(expr: Expression) -> None:
    """Spark's rule: a column may appear in an observed metric only inside an aggregate."""
    from unbounded.plan.expressions import AggregateCall, contains_node

    if contains_node(expr, ColumnRef) and not contains_node(expr, AggregateCall):
        raise AnalysisException(
            "[INVALID_OBSERVED_METRICS.NON_AGGREGATE_FUNC_ARG_IS_ATTRIBUTE] Invalid observed "
            f"metrics: {expr.display_name()} uses a column outside an aggregate function. "
            "Wrap it in one, e.g. max(col) or count(col).",
            error_class="INVALID_OBSERVED_METRICS.NON_AGGREGATE_FUNC_ARG_IS_ATTRIBUTE")


def _quoted(name: str) -> ColumnRef:
    return ColumnRef(f"`{name}`") if "." in name else ColumnRef(name)


class DataFrame(DataFrameOps):
    def __init__(self, plan: LogicalPlan, session: SparkSession) -> None:
        # As Spark's analyzer: the session zone is bound into the new nodes' expressions,
        # and non-ANSI sessions type them by Spark's other rules (casts written in).
        conf = session.conf.getAll()
        plan = with_time_zone(plan, session_time_zone(conf))
        self._plan = plan if ansi_enabled(conf) else with_legacy_casts(plan)
        self.sparkSession = session

    def _with_plan(self, plan: LogicalPlan) -> DataFrame:
        frame = DataFrame(plan, self.sparkSession)
        analyze(frame._plan)  # eager, as PySpark: a bad column or type fails at this call
        return frame

    # ---- schema --------------------------------------------------------------------
    @cached_property
    def schema(self) -> StructType:
        return plan_schema(self._plan)

    @property
    def columns(self) -> list[str]:
        # From the cached output columns: no Spark schema is built for a chain's steps.
        return [c.name for c in self._output]

    @property
    def dtypes(self) -> list[tuple[str, str]]:
        return [(f.name, f.dataType.simpleString()) for f in self.schema.fields]

    @property
    def isStreaming(self) -> bool:
        return is_streaming(self._plan)

    def printSchema(self, level: int | None = None) -> None:
        """Print the schema as a tree, as PySpark does (with a blank line after it)."""
        print(self.schema.treeString())

    def explain(self, extended: bool | str | None = None, mode: str | None = None) -> None:
        """Print the plan: ``extended=True`` (or ``mode="extended"``) adds the parsed,
        analysed and optimised plans before the physical one, as PySpark does."""
        from unbounded.sql.explain import explain_text

        if isinstance(extended, str):
            mode, extended = extended, None
        chosen = mode or ("extended" if extended else "simple")
        schema = ", ".join(f"{n}: {t}" for n, t in self.dtypes)
        print(explain_text(self._plan, schema, chosen))

    def __getitem__(self, item: str | int) -> Column:
        """The column ``item`` of this DataFrame: it keeps meaning this DataFrame's column
        after a join with another one that has a column of the same name."""
        if isinstance(item, int):
            item = _quoted(self.columns[item]).name
        if item == "*":
            return Column(Star())
        return Column(ColumnRef(item, plan_id=self._plan.plan_id))

    def __getattr__(self, name: str) -> Column:
        if name.startswith("_") or name not in self.columns:
            raise AttributeError(f"'DataFrame' object has no attribute '{name}'")
        return Column(ColumnRef(name, plan_id=self._plan.plan_id))

    @cached_property
    def _output(self) -> tuple[OutputColumn, ...]:
        return plan_columns(self._plan)

    def _refs(self) -> list[ColumnRef]:
        """One reference per output column; a repeated name is pinned by position."""
        names = Counter(c.name.lower() for c in self._output)
        return [_quoted(c.name) if names[c.name.lower()] == 1
                else ColumnRef(c.name, ordinal=i) for i, c in enumerate(self._output)]

    def __repr__(self) -> str:
        return "DataFrame[" + ", ".join(f"{n}: {t}" for n, t in self.dtypes) + "]"

    # ---- transformations -----------------------------------------------------------
    def select(self, *cols: Any) -> DataFrame:
        if len(cols) == 1 and isinstance(cols[0], (list, tuple)):
            cols = tuple(cols[0])
        exprs = tuple(column_of(c).expr for c in cols)
        return self._project(exprs)

    def selectExpr(self, *exprs: str) -> DataFrame:
        from unbounded.sql.expr_parser import parse_expression

        if len(exprs) == 1 and isinstance(exprs[0], (list, tuple)):
            exprs = tuple(exprs[0])
        return self._project(tuple(parse_expression(e) for e in exprs))

    def _project(self, exprs: tuple[Expression, ...]) -> DataFrame:
        """A projection; one holding an aggregate outside a window is a global
        aggregation, as Spark plans ``df.select(F.max("x"))``."""
        if any(_has_bare_aggregate(e) for e in exprs):
            return self.groupBy().agg(*(Column(e) for e in exprs))
        return self._with_plan(Project(self._plan, exprs))

    def filter(self, condition: Column | str) -> DataFrame:
        if isinstance(condition, str):
            from unbounded.sql.expr_parser import parse_expression

            expr = parse_expression(condition)
        else:
            expr = condition.expr
        return self._with_plan(Filter(self._plan, expr))

    where = filter

    def withColumns(self, colsMap: dict[str, Column]) -> DataFrame:
        existing = self.columns
        lowered = {c.lower(): c for c in existing}
        exprs: list[Expression] = []
        replaced: set[str] = set()
        for name, ref in zip(existing, self._refs(), strict=True):
            new = next((k for k in colsMap if k.lower() == name.lower()), None)
            if new is not None:
                exprs.append(Alias(colsMap[new].expr, new))
                replaced.add(new)
            else:
                exprs.append(ref)
        for name, column in colsMap.items():
            if name not in replaced and name.lower() not in lowered:
                exprs.append(Alias(column.expr, name))
        return self._with_plan(Project(self._plan, tuple(exprs)))

    def withColumn(self, colName: str, col: Column) -> DataFrame:
        if not isinstance(col, Column):
            raise TypeError(f"withColumn needs a Column for {colName!r}, got {type(col).__name__}")
        return self.withColumns({colName: col})

    def withColumnRenamed(self, existing: str, new: str) -> DataFrame:
        """Rename a column (matched case-insensitively); a no-op when there is none."""
        if existing.lower() not in (c.lower() for c in self.columns):
            return self
        exprs = tuple(Alias(r, new) if c.lower() == existing.lower() else r
                      for c, r in zip(self.columns, self._refs(), strict=True))
        return self._with_plan(Project(self._plan, exprs))

    def withColumnsRenamed(self, colsMap: dict[str, str]) -> DataFrame:
        df = self
        for old, new in colsMap.items():
            df = df.withColumnRenamed(old, new)
        return df

    def drop(self, *cols: Any) -> DataFrame:
        """Drop columns by name (every column of that name) or by Column (that one:
        ``joined.drop(df2.id)`` keeps ``df1``'s ``id``)."""
        names = {c.lower() for c in cols if isinstance(c, str)}
        refs = [c.expr for c in cols if isinstance(c, Column) and isinstance(c.expr, ColumnRef)]
        positions = [self._position_of(r) for r in refs]
        names |= {r.display_name().lower() for r, i in zip(refs, positions, strict=True)
                  if i == _AMBIGUOUS}
        dropped = set(positions)
        kept = tuple(r for i, (c, r) in enumerate(zip(self._output, self._refs(), strict=True))
                     if c.name.lower() not in names and i not in dropped)
        return self._with_plan(Project(self._plan, kept))

    def _position_of(self, ref: ColumnRef) -> int | None:
        """Where ``ref`` points in the output; ``_AMBIGUOUS`` for a name that repeats
        (then every column of that name goes, as a string would drop them)."""
        ctx = CompileContext(__import__("polars").Schema(), 0, columns=self._output)
        try:
            column, fields = ctx.resolve_column(ref)
        except AnalysisException as err:
            # PySpark's drop ignores a column it cannot find.
            return _AMBIGUOUS if err.error_class == "AMBIGUOUS_REFERENCE" else None
        return None if fields else self._output.index(column)

    def alias(self, alias: str) -> DataFrame:
        """This DataFrame under the name ``alias``: ``F.col("alias.x")`` and ``"alias.x"``
        in SQL strings then name its column ``x``, also after a join."""
        return self._with_plan(SubqueryAlias(self._plan, alias))

    def join(self, other: DataFrame, on: Any = None, how: str | None = None) -> DataFrame:
        """Join with ``other`` (PySpark's ``DataFrame.join``).

        ``on`` is a column name or a list of names (an equi-join keeping one column per
        name), a boolean Column, a list of Columns (AND-ed), or None (every pair of rows).
        ``how`` is any of Spark's join type spellings; inner by default.
        """
        join_type = JoinType.parse(how) if how is not None else JoinType.INNER
        if isinstance(on, str):
            on = [on]
        if isinstance(on, (list, tuple)) and on and all(isinstance(n, str) for n in on):
            return self._with_plan(Join(self._plan, other._plan, join_type, using=tuple(on)))
        return self._with_plan(Join(self._plan, other._plan, join_type, _join_condition(on)))

    def crossJoin(self, other: DataFrame) -> DataFrame:
        """Every pair of a row of this DataFrame and a row of ``other``."""
        return self._with_plan(Join(self._plan, other._plan, JoinType.CROSS))

    def union(self, other: DataFrame) -> DataFrame:
        return self._with_plan(Union((self._plan, other._plan)))

    unionAll = union

    def unionByName(self, other: DataFrame, allowMissingColumns: bool = False) -> DataFrame:
        if not allowMissingColumns:
            missing = set(self.columns) ^ set(other.columns)
            if missing:
                raise AnalysisException(
                    f"[NUM_COLUMNS_MISMATCH] unionByName: columns {sorted(missing)} are not in "
                    "both inputs. Pass allowMissingColumns=True to fill them with NULL.")
            # Reordered by name, the inputs then line up by position (types widen as union's).
            other = other.select(*(_quoted(c) for c in self.columns))
            return self.union(other)
        return self._with_plan(Union((self._plan, other._plan), by_name=True,
                                     allow_missing=True))

    def observe(self, observation: str, *exprs: Column) -> DataFrame:
        """Named aggregates over the rows passing this point, rows unchanged (Spark's
        CollectMetrics). On a streaming query they are evaluated per micro-batch and
        reported in ``progress.observedMetrics[observation]``; observe must then be the
        last transformation before ``writeStream``. A batch DataFrame's rows are unchanged
        and its metrics are not reported (there is no ``Observation`` object yet).

        >>> from unbounded.sql import SparkSession, functions as F
        >>> df = SparkSession.builder.create().range(3)
        >>> df.observe("m", F.count(F.lit(1)).alias("rows")).count()
        3
        """
        from unbounded.plan.observe import collect_metrics

        if not isinstance(observation, str):
            raise TypeError("observe() takes the metrics' name as a string "
                            f"(Observation objects are not supported), got {observation!r}")
        metrics = tuple(column_of(e).expr for e in exprs)
        for expr in metrics:
            _check_observed_metric(expr)
        return self._with_plan(collect_metrics(self._plan, observation, metrics))

    def withWatermark(self, eventTime: str, delayThreshold: str) -> DataFrame:
        field = next((f for f in self.schema.fields if f.name.lower() == eventTime.lower()), None)
        if field is None:
            raise AnalysisException(
                f"withWatermark: no column named {eventTime!r}; columns: {self.columns}.")
        if field.dataType.typeName() != "timestamp":
            raise AnalysisException(
                f"Event time must be defined on a window or a timestamp, but {eventTime} is "
                f"of type {field.dataType.simpleString()}. Cast it with to_timestamp(...).")
        delay = parse_interval_ms(delayThreshold)
        if delay < 0:
            raise AnalysisException("The watermark delay must not be negative.")
        return self._with_plan(WithWatermark(self._plan, field.name, delay))

    def groupBy(self, *cols: Any) -> GroupedData:
        if len(cols) == 1 and isinstance(cols[0], (list, tuple)):
            cols = tuple(cols[0])
        return GroupedData(self, tuple(column_of(c).expr for c in cols))

    groupby = groupBy

    def agg(self, *exprs: Any) -> DataFrame:
        return self.groupBy().agg(*exprs)

    def dropDuplicates(self, subset: list[str] | None = None) -> DataFrame:
        return self._with_plan(Deduplicate(self._plan, tuple(subset) if subset else None))

    drop_duplicates = dropDuplicates

    def distinct(self) -> DataFrame:
        return self.dropDuplicates()

    def dropDuplicatesWithinWatermark(self, subset: list[str] | None = None) -> DataFrame:
        keys = tuple(subset) if subset else None
        return self._with_plan(Deduplicate(self._plan, keys, within_watermark=True))

    def orderBy(self, *cols: Any, ascending: bool | list[bool] = True) -> DataFrame:
        if len(cols) == 1 and isinstance(cols[0], (list, tuple)):
            cols = tuple(cols[0])
        flags = ascending if isinstance(ascending, list) else [ascending] * len(cols)
        orders = []
        for c, asc in zip(cols, flags, strict=True):
            expr = column_of(c).expr
            orders.append(expr if isinstance(expr, SortOrder) else SortOrder(expr, asc))
        return self._with_plan(Sort(self._plan, tuple(orders)))

    sort = orderBy

    def limit(self, num: int) -> DataFrame:
        return self._with_plan(Limit(self._plan, num))

    def mapInPandas(self, func: Any, schema: StructType | str, barrier: bool = False,
                    profile: Any = None) -> DataFrame:
        """Map an iterator of pandas DataFrames (batches of this DataFrame's rows) to an
        iterator of DataFrames of ``schema``; on a stream it runs inside the tasks."""
        return self._map_in(func, schema, PythonEvalType.SQL_MAP_PANDAS_ITER_UDF)

    def mapInArrow(self, func: Any, schema: StructType | str, barrier: bool = False,
                   profile: Any = None) -> DataFrame:
        """``mapInPandas`` with ``pyarrow.RecordBatch``es in and out."""
        return self._map_in(func, schema, PythonEvalType.SQL_MAP_ARROW_ITER_UDF)

    def _map_in(self, func: Any, schema: StructType | str, kind: PythonEvalType) -> DataFrame:
        target = parse_ddl_schema(schema) if isinstance(schema, str) else schema
        return self._with_plan(MapInBatches(self._plan, python_function(func, kind), target))

    def repartition(self, numPartitions: int | Any = None, *cols: Any) -> DataFrame:
        """Accepted for PySpark code; rows and results are unchanged (the engine picks
        its own partitioning)."""
        return self

    def coalesce(self, numPartitions: int) -> DataFrame:
        """Accepted for PySpark code; rows and results are unchanged."""
        return self

    # ---- actions (batch only) ------------------------------------------------------
    def _require_batch(self, action: str) -> None:
        if self.isStreaming:
            raise AnalysisException(
                f"Queries with streaming sources must be executed with writeStream.start(); "
                f"{action}() cannot run on a streaming DataFrame.",
                error_class="STREAMING_ACTION")

    def toArrow(self) -> pa.Table:
        self._require_batch("toArrow")
        conf = self.sparkSession.conf.getAll()
        ctx = CompileContext(pl.Schema(), int(time.time() * 1_000_000),
                             ansi=ansi_enabled(conf), time_zone=session_time_zone(conf))
        frame, columns = compile_output(self._plan, {}, ctx)
        try:
            collected = frame.collect()
        except pl.exceptions.PolarsError as err:
            raise engine_error(self._plan, err) from None
        return to_display_arrow(collected, columns)

    def collect(self) -> list[Row]:
        """The rows; structs come back as Rows and maps as dicts, as in PySpark."""
        return rows_from_arrow(self.toArrow(), self.schema)

    def count(self) -> int:
        return int(self.toArrow().num_rows)

    def first(self) -> Row | None:
        rows = self.limit(1).collect()
        return rows[0] if rows else None

    def head(self, n: int | None = None) -> Any:
        if n is None:
            return self.first()
        return self.limit(n).collect()

    def take(self, num: int) -> list[Row]:
        return self.limit(num).collect()

    def show(self, n: int = 20, truncate: bool | int = True, vertical: bool = False) -> None:
        from unbounded.sinks.console import format_table

        self._require_batch("show")
        zone = session_time_zone(self.sparkSession.conf.getAll())
        print(format_table(self.limit(n + 1).toArrow(), n, truncate, zone))

    def toPandas(self) -> pd.DataFrame:
        """A pandas frame as PySpark builds it: strings as ``object`` (None for NULL),
        timestamps as naive ``datetime64[ns]`` in the session time zone."""
        import pandas as pd

        table = self.toArrow()
        zone = session_time_zone(self.sparkSession.conf.getAll())
        # By position: a join's output may repeat a name, which a dict would collapse.
        columns = {i: _pandas_column(column, zone) for i, column in enumerate(table.columns)}
        frame = pd.DataFrame(columns, columns=list(columns))
        frame.columns = table.column_names
        return frame

    def isEmpty(self) -> bool:
        return self.limit(1).count() == 0

    # ---- streaming -----------------------------------------------------------------
    @property
    def writeStream(self) -> DataStreamWriter:
        from unbounded.sql.streaming import DataStreamWriter

        if not self.isStreaming:
            raise AnalysisException(
                "'writeStream' can be called only on streaming Dataset/DataFrame; use "
                "spark.readStream to read a stream.")
        return DataStreamWriter(self)

    def createOrReplaceTempView(self, name: str) -> None:
        self.sparkSession._register_view(name, self)

    def createTempView(self, name: str) -> None:
        """A session view for ``spark.sql``; fails if the name is taken."""
        self.sparkSession.catalog._create_temp_view(name, self, replace=False)

    def createOrReplaceGlobalTempView(self, name: str) -> None:
        """A view every session of this process reads as ``global_temp.<name>``."""
        self.sparkSession.catalog._create_global_temp_view(name, self, replace=True)

    def createGlobalTempView(self, name: str) -> None:
        self.sparkSession.catalog._create_global_temp_view(name, self, replace=False)

    @property
    def write(self) -> DataFrameWriter:
        """The batch writer: ``df.write.mode("append").parquet(path)``, ``saveAsTable``."""
        from unbounded.sql.readwriter import DataFrameWriter

        if self.isStreaming:
            raise AnalysisException(
                "'write' can not be called on streaming Dataset/DataFrame; use writeStream.",
                error_class="WRITE_STREAM_NOT_ALLOWED")
        return DataFrameWriter(self)




def _join_condition(on: Any) -> Expression | None:
    """A join condition from a Column, a list of Columns (AND-ed) or None."""
    if on is None or (isinstance(on, (list, tuple)) and not on):
        return None
    parts: list[Column] = list(on) if isinstance(on, (list, tuple)) else [on]
    if not all(isinstance(p, Column) for p in parts):
        raise TypeError("join's `on` must be a column name, a list of names, a Column or a "
                        f"list of Columns, not {on!r}")
    return reduce(Column.__and__, parts).expr


def _pandas_column(column: pa.ChunkedArray, zone: str) -> pd.Series:
    import pandas as pd

    t = column.type
    if pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t):
        return pd.Series(column.to_pylist(), dtype=object)
    if pa.types.is_timestamp(t):
        local: pd.Series = column.to_pandas()
        if t.tz is not None:
            local = local.dt.tz_convert(zone).dt.tz_localize(None)
        naive: pd.Series = local.astype("datetime64[ns]")
        return naive
    series: pd.Series = column.to_pandas()
    return series


def _has_bare_aggregate(expr: Expression) -> bool:
    """Whether ``expr`` holds an aggregate call that no window (``over``) owns."""
    from unbounded.plan.window import WindowExpression

    if isinstance(expr, AggregateCall):
        return True
    if isinstance(expr, WindowExpression):
        return False
    return any(_has_bare_aggregate(child) for child in expr.children())
