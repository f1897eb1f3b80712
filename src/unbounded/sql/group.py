"""``GroupedData``: what ``DataFrame.groupBy`` returns; ``agg`` builds an Aggregate."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from unbounded.errors import AnalysisException, UnsupportedOperationException
from unbounded.plan.expressions import (
    AggregateCall,
    Alias,
    ColumnRef,
    Expression,
    PythonEvalType,
    Star,
)
from unbounded.plan.logical import (
    Aggregate,
    FlatMapCoGroupsInPandas,
    FlatMapGroupsInPandas,
    FlatMapGroupsInPandasWithState,
    GroupStateTimeoutKind,
    TimeMode,
    TransformWithStateInPandas,
)
from unbounded.sql.column import Column, column_of
from unbounded.sql.grouping_ops import (
    GroupingSets,
    Pivot,
    grouping_sets_plan,
    pivot_plan,
    uses_grouping,
)
from unbounded.sql.types import StructType, parse_ddl_schema
from unbounded.sql.udf import python_function

if TYPE_CHECKING:
    from unbounded.sql.dataframe import DataFrame

__all__ = ["GroupedData", "PandasCogroupedOps"]

_DICT_AGGS = {"count", "sum", "avg", "mean", "min", "max", "first", "last",
              "collect_list", "collect_set", "approx_count_distinct", "stddev", "variance"}


class GroupedData:
    def __init__(self, df: DataFrame, keys: tuple[Expression, ...],
                 sets: GroupingSets | None = None, pivot_by: Pivot | None = None) -> None:
        self._df = df
        self._keys = keys
        self._sets = sets  # rollup/cube (sql/grouping_ops.py)
        self._pivot = pivot_by

    def pivot(self, pivot_col: Any, values: list[Any] | None = None) -> GroupedData:
        """One output column per value of ``pivot_col`` (and aggregate): ``values``, or
        its sorted distinct values (a batch job of its own, as in Spark)."""
        if self._pivot is not None:
            raise UnsupportedOperationException(
                "[REPEATED_CLAUSE] The PIVOT clause may be used at most once per SUBQUERY "
                "operation.", error_class="REPEATED_CLAUSE")
        if self._sets is not None:
            raise UnsupportedOperationException(
                "[UNSUPPORTED_FEATURE.PIVOT_AFTER_GROUP_BY] The feature is not supported: "
                "PIVOT clause following a GROUP BY clause. Consider pushing the GROUP BY "
                "into a subquery.", error_class="UNSUPPORTED_FEATURE.PIVOT_AFTER_GROUP_BY")
        column = column_of(pivot_col)
        data_type = self._df.select(column).schema.fields[0].dataType
        if values is None:
            values = _distinct_sorted(self._df, column)
        return GroupedData(self._df, self._keys, None,
                           Pivot(column.expr, data_type, tuple(values)))

    def agg(self, *exprs: Any) -> DataFrame:
        """Aggregate with Columns (``F.sum("x")``) or a dict ``{"x": "sum"}``."""
        if len(exprs) == 1 and isinstance(exprs[0], dict):
            aggs = tuple(self._dict_agg(c, f) for c, f in exprs[0].items())
        else:
            aggs = tuple(column_of(e).expr for e in exprs)
        plan = self._df._plan
        if self._sets is None and any(uses_grouping(a) for a in aggs):
            raise AnalysisException(
                "[UNSUPPORTED_GROUPING_EXPRESSION] grouping()/grouping_id() can only be used "
                "with GroupingSets/Cube/Rollup.", error_class="UNSUPPORTED_GROUPING_EXPRESSION")
        if self._pivot is not None:
            return self._df._with_plan(pivot_plan(plan, self._keys, self._pivot, aggs))
        if self._sets is not None:
            return self._df._with_plan(grouping_sets_plan(plan, self._keys, self._sets, aggs))
        return self._df._with_plan(Aggregate(plan, self._keys, aggs))

    @staticmethod
    def _dict_agg(column: str, fn: str) -> Expression:
        name = fn.lower()
        if name not in _DICT_AGGS:
            from unbounded.errors import AnalysisException

            raise AnalysisException(f"Unknown aggregate function {fn!r} in agg(dict).")
        arg: Expression = Star() if column == "*" else ColumnRef(column)
        return AggregateCall(name, (arg,))

    def applyInPandas(self, func: Any, schema: StructType | str) -> DataFrame:
        """Call ``func`` once per group with the group's rows as a pandas DataFrame
        (``func(key, pdf)`` when it takes two arguments); its DataFrames, of ``schema``,
        are the result."""
        function = python_function(func, PythonEvalType.SQL_GROUPED_MAP_PANDAS_UDF)
        plan = FlatMapGroupsInPandas(self._df._plan, self._keys, function, _schema(schema))
        return self._df._with_plan(plan)

    def applyInPandasWithState(self, func: Any, outputStructType: StructType | str,
                               stateStructType: StructType | str, outputMode: str,
                               timeoutConf: str) -> DataFrame:
        """Call ``func(key, frames, state)`` per group of each micro-batch, with the
        group's rows as an iterator of pandas DataFrames and its ``GroupState`` (a tuple
        of ``stateStructType``'s fields kept across batches); the DataFrames it yields,
        of ``outputStructType``, are the result. ``outputMode`` ("append" or "update")
        must match the query's; ``timeoutConf`` is a ``GroupStateTimeout``. Streams only,
        as in Spark."""
        # Registers the node's compile rule; imported here, not at the top, so start-up
        # of every other query does not pay for it (transformWithState does the same).
        import unbounded.engine.group_state  # noqa: F401

        function = python_function(func, PythonEvalType.SQL_GROUPED_MAP_PANDAS_UDF)
        plan = FlatMapGroupsInPandasWithState(
            self._df._plan, self._keys, function, _schema(outputStructType),
            _schema(stateStructType), _function_output_mode(outputMode),
            _timeout_kind(timeoutConf))
        return self._df._with_plan(plan)

    def transformWithStateInPandas(self, statefulProcessor: Any,  # noqa: PLR0917 (PySpark's)
                                   outputStructType: StructType | str, outputMode: str,
                                   timeMode: str, initialState: GroupedData | None = None,
                                   eventTimeColumnName: str = "") -> DataFrame:
        """Run ``statefulProcessor`` (a ``StatefulProcessor``) per group of each
        micro-batch: its ``handleInputRows(key, frames, timerValues)`` gets the group's
        rows as pandas DataFrames and keeps value, list and map state and timers
        (``timeMode``: "None", "ProcessingTime" or "EventTime"); the DataFrames it yields,
        of ``outputStructType``, are the result. ``initialState`` (a batch DataFrame's
        ``groupBy``) seeds the state in the first batch through ``handleInitialState``.
        Streams only here (Spark also runs it on batch DataFrames)."""
        return self._transform_with_state(statefulProcessor, statefulProcessor,
                                          outputStructType, outputMode, timeMode,
                                          initialState, eventTimeColumnName)

    def transformWithState(self, statefulProcessor: Any,  # noqa: PLR0917 (PySpark's)
                           outputStructType: StructType | str, outputMode: str,
                           timeMode: str, initialState: GroupedData | None = None,
                           eventTimeColumnName: str = "") -> DataFrame:
        """As ``transformWithStateInPandas`` (PySpark 4.1+), but the processor's
        ``handleInputRows(key, rows, timerValues)`` gets an iterator of ``Row`` and
        yields ``Row``s, and ``handleInitialState`` gets one initial-state ``Row`` per
        call."""
        from unbounded.engine.stateful_processor import RowProcessor

        return self._transform_with_state(RowProcessor(statefulProcessor), statefulProcessor,
                                          outputStructType, outputMode, timeMode,
                                          initialState, eventTimeColumnName)

    def _transform_with_state(self, runs: Any, statefulProcessor: Any,  # noqa: PLR0917
                              outputStructType: StructType | str, outputMode: str,
                              timeMode: str, initialState: GroupedData | None,
                              eventTimeColumnName: str) -> DataFrame:
        from unbounded.engine.stateful_processor import StatefulProcessor

        if not isinstance(statefulProcessor, StatefulProcessor):
            raise TypeError("[NOT_EXPECTED_TYPE] Argument `statefulProcessor` should be a "
                            f"StatefulProcessor, got {type(statefulProcessor).__name__}.")
        processor = python_function(runs,
                                    PythonEvalType.SQL_GROUPED_MAP_PANDAS_UDF,
                                    name=type(statefulProcessor).__name__)
        plan = TransformWithStateInPandas(
            self._df._plan, self._keys, processor, _schema(outputStructType),
            _function_output_mode(outputMode), _time_mode(timeMode),
            initialState._df._plan if initialState is not None else None,
            initialState._keys if initialState is not None else (), eventTimeColumnName)
        return self._df._with_plan(plan)

    def cogroup(self, other: GroupedData) -> PandasCogroupedOps:
        """Pair this grouping with ``other``'s, for ``applyInPandas`` over both."""
        return PandasCogroupedOps(self, other)

    def count(self) -> DataFrame:
        return self.agg(Column(Alias(AggregateCall("count", (Star(),)), "count")))

    def _each(self, fn: str, cols: tuple[str, ...]) -> DataFrame:
        names = cols or tuple(self._numeric_columns())
        return self.agg(*(Column(AggregateCall(fn, (ColumnRef(c),))) for c in names))

    def _numeric_columns(self) -> list[str]:
        from unbounded.sql.types import (
            ByteType,
            DecimalType,
            DoubleType,
            FloatType,
            IntegerType,
            LongType,
            ShortType,
        )

        numeric = (ByteType, ShortType, IntegerType, LongType, FloatType, DoubleType, DecimalType)
        key_names = {k.display_name() for k in self._keys}
        return [f.name for f in self._df.schema.fields
                if isinstance(f.dataType, numeric) and f.name not in key_names]

    def sum(self, *cols: str) -> DataFrame: return self._each("sum", cols)
    def avg(self, *cols: str) -> DataFrame: return self._each("avg", cols)
    def mean(self, *cols: str) -> DataFrame: return self._each("avg", cols)
    def min(self, *cols: str) -> DataFrame: return self._each("min", cols)
    def max(self, *cols: str) -> DataFrame: return self._each("max", cols)


class PandasCogroupedOps:
    """``df1.groupBy(k).cogroup(df2.groupBy(k))``: groups of both sides by key."""

    def __init__(self, left: GroupedData, right: GroupedData) -> None:
        self._left = left
        self._right = right

    def applyInPandas(self, func: Any, schema: StructType | str) -> DataFrame:
        """Call ``func(left_pdf, right_pdf)`` (or ``func(key, left_pdf, right_pdf)``) once
        per key found on either side; a side without the key gets an empty DataFrame."""
        left, right = self._left, self._right
        plan = FlatMapCoGroupsInPandas(left._df._plan, right._df._plan, left._keys,
                                       right._keys, python_function(
            func, PythonEvalType.SQL_COGROUPED_MAP_PANDAS_UDF), _schema(schema))
        return left._df._with_plan(plan)


def _function_output_mode(mode: str) -> str:
    """Spark's check of ``applyInPandasWithState``'s output mode (case-insensitive)."""
    lowered = mode.lower() if isinstance(mode, str) else ""
    if lowered == "complete":
        raise AnalysisException("The output mode of function should be append or update",
                                error_class="ILLEGAL_ARGUMENT")
    if lowered not in ("append", "update"):
        raise AnalysisException(
            f"[STREAMING_OUTPUT_MODE.INVALID] Invalid streaming output mode: {mode}. Accepted "
            "output modes are 'Append', 'Complete', 'Update'.",
            error_class="STREAMING_OUTPUT_MODE.INVALID")
    return lowered


def _timeout_kind(conf: str) -> GroupStateTimeoutKind:
    for kind in GroupStateTimeoutKind:
        if kind.value == conf:
            return kind
    raise AnalysisException(
        f"Unknown timeoutConf {conf!r}: use GroupStateTimeout.NoTimeout, "
        "ProcessingTimeTimeout or EventTimeTimeout.", error_class="ILLEGAL_ARGUMENT")


def _time_mode(mode: str) -> TimeMode:
    for kind in TimeMode:
        if isinstance(mode, str) and kind.value.lower() == mode.lower():
            return kind
    raise AnalysisException(
        f"[STATEFUL_PROCESSOR_UNKNOWN_TIME_MODE] Unknown time mode {mode}. Accepted timeMode "
        "modes are 'none', 'processingTime', 'eventTime'",
        error_class="STATEFUL_PROCESSOR_UNKNOWN_TIME_MODE")


def _distinct_sorted(df: DataFrame, column: Column) -> list[Any]:
    """Spark's pivot values when none are given: distinct (at most
    ``spark.sql.pivotMaxValues``), ascending, NULL first."""
    if df.isStreaming:
        raise AnalysisException(
            "pivot is not supported on a streaming DataFrames/Datasets (give the values: "
            "pivot(column, [values])).", error_class="UNSUPPORTED_FEATURE")
    limit = int(df.sparkSession.conf.get("spark.sql.pivotMaxValues", "10000"))
    rows = (df.select(column.alias("v")).distinct().limit(limit + 1)
            .orderBy(column_of("v").asc_nulls_first()).collect())
    if len(rows) > limit:
        raise AnalysisException(
            f"The pivot column {column.expr.display_name()} has more than {limit} distinct "
            "values, this could indicate an error. If this was intended, set "
            "spark.sql.pivotMaxValues to at least the number of distinct values of the "
            "pivot column.", error_class="_LEGACY_ERROR_TEMP_1324")
    return [r[0] for r in rows]


def _schema(schema: StructType | str) -> StructType:
    return parse_ddl_schema(schema) if isinstance(schema, str) else schema

