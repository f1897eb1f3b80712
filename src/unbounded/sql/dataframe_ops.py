"""PySpark DataFrame methods built from the core ones (select, filter, join, union,
groupBy): renaming, missing values, set operations by row, sampling, summaries, local
iteration. ``DataFrame`` inherits them, so each stays a composition of plan nodes the
engine already runs, batch and (where Spark allows) streaming.
"""

from __future__ import annotations

import builtins
import itertools
from collections.abc import Callable, Iterator
from functools import reduce
from typing import TYPE_CHECKING, Any, Self

from unbounded.errors import AnalysisException
from unbounded.plan import types as T
from unbounded.sql import functions as F
from unbounded.sql.column import Column
from unbounded.sql.grouping_ops import GroupingSets, cube_sets, rollup_sets
from unbounded.sql.row import Row

if TYPE_CHECKING:
    from unbounded.sql.dataframe import DataFrame
    from unbounded.sql.group import GroupedData

__all__ = ["DataFrameNaFunctions", "DataFrameOps", "DataFrameStatFunctions"]

_NUMERIC = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType,
            T.DecimalType)
_ROW_NUMBER = "__unbounded_row_in_group"
_UNPIVOT = "__unbounded_unpivot"


def _kind(value: Any) -> type | None:
    """Which columns a fill or replace value applies to, as PySpark decides by its type."""
    if isinstance(value, bool):
        return bool
    if isinstance(value, (int, float)):
        return float
    if isinstance(value, str):
        return str
    return None


def _matches(data_type: T.DataType, kind: type | None) -> bool:
    if kind is bool:
        return isinstance(data_type, T.BooleanType)
    if kind is float:
        return isinstance(data_type, _NUMERIC)
    if kind is str:
        return isinstance(data_type, T.StringType)
    return False


def _missing(column: Column, data_type: T.DataType) -> Column:
    """NULL, or NaN in a floating-point column: what ``na`` functions count as missing."""
    if isinstance(data_type, (T.FloatType, T.DoubleType)):
        return column.isNull() | F.isnan(column)
    return column.isNull()


class DataFrameOps:
    """Mixed into ``DataFrame``; each method uses only its public API (declared here for
    the type checker)."""

    if TYPE_CHECKING:
        @property
        def columns(self) -> list[str]: ...
        @property
        def schema(self) -> Any: ...
        @property
        def isStreaming(self) -> bool: ...

        def __getitem__(self, item: str | int) -> Column: ...
        def select(self, *cols: Any) -> DataFrame: ...
        def filter(self, condition: Column | str) -> DataFrame: ...
        def withColumn(self, colName: str, col: Column) -> DataFrame: ...
        def join(self, other: DataFrame, on: Any = None, how: str | None = None
                 ) -> DataFrame: ...
        def distinct(self) -> DataFrame: ...
        def union(self, other: DataFrame) -> DataFrame: ...
        def orderBy(self, *cols: Any, ascending: bool | list[bool] = True) -> DataFrame: ...
        def collect(self) -> list[Row]: ...
        def createOrReplaceTempView(self, name: str) -> None: ...
        def groupBy(self, *cols: Any) -> GroupedData: ...

    # ---- shape and names -------------------------------------------------------------
    def toDF(self, *cols: str) -> DataFrame:
        """The same rows with every column renamed, in order."""
        if len(cols) != len(self.columns):
            raise AnalysisException(
                f"[BAD_INPUT] toDF needs one name per column: the DataFrame has "
                f"{len(self.columns)} columns ({', '.join(self.columns)}), {len(cols)} names "
                "were given.", error_class="BAD_INPUT")
        return self.select(*(self[i].alias(name) for i, name in enumerate(cols)))

    def transform(self, func: Callable[..., DataFrame], *args: Any,
                  **kwargs: Any) -> DataFrame:
        return func(self, *args, **kwargs)

    def cache(self) -> Self:
        """The DataFrame itself: results never depend on caching, and this engine reads
        its inputs again on each action (a cache is an optimisation Spark may drop)."""
        return self

    def persist(self, storageLevel: Any = None) -> Self:
        return self

    def unpersist(self, blocking: bool = False) -> Self:
        return self

    def hint(self, name: str, *parameters: Any) -> Self:
        """Accepted and ignored, as Spark ignores a hint it cannot use."""
        return self

    def sortWithinPartitions(self, *cols: Any, **kwargs: Any) -> DataFrame:
        """Sorted as a whole: one local partition is every partition's order."""
        return self.orderBy(*cols, **kwargs)

    def isLocal(self) -> bool:
        return not self.isStreaming

    def registerTempTable(self, name: str) -> None:
        self.createOrReplaceTempView(name)

    # ---- missing values --------------------------------------------------------------
    @property
    def na(self) -> DataFrameNaFunctions:
        return DataFrameNaFunctions(self)

    def fillna(self, value: Any, subset: str | list[str] | tuple[str, ...] |
               None = None) -> DataFrame:
        """NULLs (and NaN in numeric columns) replaced by ``value`` in the columns of its
        kind (numbers, strings or booleans), or per column from a dict (cast to the
        column's type); a number fills an integer column with its integral part."""
        fields = self.schema.fields
        if isinstance(value, dict):
            wanted = {k.lower(): v for k, v in value.items()}
            targets = {f.name: wanted[f.name.lower()] for f in fields
                       if f.name.lower() in wanted}
        else:
            if _kind(value) is None:
                raise AnalysisException(
                    f"[NOT_BOOL_OR_DICT_OR_FLOAT_OR_INT_OR_STR] value should be a bool, dict, "
                    f"float, int or str, got {type(value).__name__}.",
                    error_class="NOT_BOOL_OR_DICT_OR_FLOAT_OR_INT_OR_STR")
            chosen = _subset(subset, self.columns)
            targets = {f.name: value for f in fields
                       if f.name.lower() in chosen and _matches(f.dataType, _kind(value))}
        return self.select(*(self._filled(f, targets) for f in fields))

    def _filled(self, field: Any, targets: dict[str, Any]) -> Column:
        column = self[field.name]
        if field.name not in targets:
            return column
        replacement = F.lit(targets[field.name]).cast(field.dataType)
        return F.when(_missing(column, field.dataType), replacement).otherwise(column) \
            .alias(field.name)

    def dropna(self, how: str = "any", thresh: int | None = None,
               subset: str | list[str] | tuple[str, ...] | None = None) -> DataFrame:
        """Rows kept when they have at least ``thresh`` values that are neither NULL nor
        NaN among ``subset`` (``how='any'``: all of them, ``'all'``: one)."""
        if how not in ("any", "all"):
            raise AnalysisException(f"[VALUE_NOT_ANY_OR_ALL] how must be 'any' or 'all', "
                                    f"got {how!r}.", error_class="VALUE_NOT_ANY_OR_ALL")
        chosen = _subset(subset, self.columns)
        fields = [f for f in self.schema.fields if f.name.lower() in chosen]
        if thresh is None:
            thresh = len(fields) if how == "any" else 1
        present = [F.when(_missing(self[f.name], f.dataType), 0).otherwise(1) for f in fields]
        if not present:
            return self.select("*")
        return self.filter(reduce(lambda a, b: a + b, present) >= thresh)

    def replace(self, to_replace: Any, value: Any = ...,
                subset: str | list[str] | tuple[str, ...] | None = None) -> DataFrame:
        """Values equal to ``to_replace`` (a value, a list, or a dict old -> new) replaced
        in the columns of their kind."""
        pairs = _replacements(to_replace, value)
        kinds = {_kind(old) for old, _ in pairs}
        chosen = _subset(subset, self.columns)
        out = []
        for f in self.schema.fields:
            column = self[f.name]
            if f.name.lower() not in chosen or not any(_matches(f.dataType, k) for k in kinds):
                out.append(column)
                continue
            replaced: Any = F
            for old, new in pairs:
                hit = column == F.lit(old).cast(f.dataType)
                replaced = replaced.when(hit, F.lit(new).cast(f.dataType))
            out.append(replaced.otherwise(column).alias(f.name))
        return self.select(*out)

    # ---- set operations by row -------------------------------------------------------
    def intersect(self, other: DataFrame) -> DataFrame:
        """Distinct rows present in both, matched by position with NULLs equal."""
        left, right = _aligned(self, other)
        return left.distinct().join(right, _same_rows(left, right), "left_semi")

    def subtract(self, other: DataFrame) -> DataFrame:
        """Distinct rows of this one absent from ``other`` (SQL's EXCEPT DISTINCT)."""
        left, right = _aligned(self, other)
        return left.distinct().join(right, _same_rows(left, right), "left_anti")

    def exceptAll(self, other: DataFrame) -> DataFrame:
        """Rows of this one less as many equal rows of ``other`` (EXCEPT ALL)."""
        return _by_occurrence(*_aligned(self, other), "left_anti")

    def intersectAll(self, other: DataFrame) -> DataFrame:
        """Each row as many times as it is in both (INTERSECT ALL)."""
        return _by_occurrence(*_aligned(self, other), "left_semi")

    # ---- rows to the driver ----------------------------------------------------------
    def tail(self, num: int) -> list[Row]:
        rows = self.collect()
        return rows[len(rows) - num:] if num > 0 else []

    def toLocalIterator(self, prefetchPartitions: bool = False) -> Iterator[Row]:
        return iter(self.collect())

    def foreach(self, f: Callable[[Row], None]) -> None:
        for row in self.collect():
            f(row)

    def foreachPartition(self, f: Callable[[Iterator[Row]], None]) -> None:
        f(iter(self.collect()))

    def toJSON(self, use_unicode: bool = True) -> list[str]:
        """Each row as a JSON object (PySpark returns an RDD of these strings)."""
        frame = self.select(F.to_json(F.struct(*(self[c] for c in self.columns))).alias("j"))
        return [r[0] for r in frame.collect()]

    # ---- sampling --------------------------------------------------------------------
    def sample(self, withReplacement: Any = None, fraction: Any = None,
               seed: int | None = None) -> DataFrame:
        """About ``fraction`` of the rows, each kept by its own seeded draw (the same
        seed, the same rows); sampling with replacement is not supported."""
        if isinstance(withReplacement, float) and fraction is None:
            withReplacement, fraction = None, withReplacement
        elif isinstance(withReplacement, float) and isinstance(fraction, int):
            withReplacement, fraction, seed = None, withReplacement, fraction
        if withReplacement:
            raise AnalysisException("sample(withReplacement=True) is not supported.",
                                    error_class="UNSUPPORTED_FEATURE")
        if not isinstance(fraction, (int, float)) or not 0.0 <= fraction <= 1.0:
            raise AnalysisException(f"[INVALID_SAMPLING_FRACTION] fraction must be in [0, 1], "
                                    f"got {fraction!r}.", error_class="INVALID_SAMPLING_FRACTION")
        return self.filter(F.rand(seed if seed is not None else 0) < float(fraction))

    def randomSplit(self, weights: list[float],
                    seed: int | None = None) -> list[DataFrame]:
        """Disjoint parts, about in proportion to ``weights``, from one seeded draw per
        row (so the parts cover every row exactly once)."""
        if not weights or any(w < 0 for w in weights) or builtins.sum(weights) <= 0:
            raise AnalysisException("randomSplit needs non-negative weights with a positive "
                                    "sum.", error_class="INVALID_PARAMETER_VALUE")
        total = builtins.sum(weights)
        bounds = [builtins.sum(weights[:i]) / total for i in range(len(weights) + 1)]
        drawn = self.withColumn(_ROW_NUMBER, F.rand(seed if seed is not None else 0))
        draw = drawn[_ROW_NUMBER]
        return [drawn.filter((draw >= lo) & ((draw < hi) if i < len(weights) - 1 else F.lit(True)))
                .drop(_ROW_NUMBER)
                for i, (lo, hi) in enumerate(itertools.pairwise(bounds))]

    # ---- summaries -------------------------------------------------------------------
    def describe(self, *cols: str | list[str]) -> DataFrame:
        """count, mean, stddev, min and max of numeric and string columns, as strings."""
        return _summary(self, _names(cols), ["count", "mean", "stddev", "min", "max"])

    def summary(self, *statistics: str) -> DataFrame:
        stats = list(statistics) or ["count", "mean", "stddev", "min", "25%", "50%", "75%",
                                     "max"]
        return _summary(self, [], stats)

    # ---- grouping sets and reshaping -------------------------------------------------
    def rollup(self, *cols: Any) -> GroupedData:
        """Aggregates by ``cols``, by each prefix of them and overall; rolled-up keys are
        NULL (``F.grouping``/``F.grouping_id`` tell them from NULL values)."""
        return self._grouping_sets(cols, rollup_sets)

    def cube(self, *cols: Any) -> GroupedData:
        """Aggregates by every subset of ``cols``."""
        return self._grouping_sets(cols, cube_sets)

    def _grouping_sets(self, cols: tuple[Any, ...],
                       sets_of: Callable[[int], tuple[tuple[int, ...], ...]]
                       ) -> GroupedData:
        from unbounded.sql.group import GroupedData

        grouped = self.groupBy(*cols)
        keys = grouped._keys
        types = tuple(f.dataType for f in self.select(*(Column(k) for k in keys)).schema.fields)
        return GroupedData(grouped._df, keys, GroupingSets(sets_of(len(keys)), types))

    def unpivot(self, ids: Any, values: Any, variableColumnName: str,
                valueColumnName: str) -> DataFrame:
        """One row per input row and value column: the ids, the column's name and its
        value (cast to the value columns' common type), in input order."""
        id_cols = [_as_column(c) for c in _listed(ids)]
        value_cols = self._value_columns(id_cols, values)
        types = [self.select(c).schema.fields[0].dataType for c in value_cols]
        target = _common_type(types, [c.expr.display_name() for c in value_cols])
        pairs = [F.struct(F.lit(c.expr.display_name()).alias(variableColumnName),
                          c.cast(target).alias(valueColumnName)) for c in value_cols]
        exploded = self.select(*id_cols, F.explode(F.array(*pairs)).alias(_UNPIVOT))
        return exploded.select(*(exploded.columns[:-1]),
                               F.col(_UNPIVOT)[variableColumnName].alias(variableColumnName),
                               F.col(_UNPIVOT)[valueColumnName].alias(valueColumnName))

    melt = unpivot

    def _value_columns(self, id_cols: list[Column], values: Any) -> list[Column]:
        if values is None:
            taken = {c.expr.display_name() for c in id_cols}
            found = [F.col(f"`{n}`") for n in self.columns if n not in taken]
        else:
            found = [_as_column(c) for c in _listed(values)]
        if not found:
            raise AnalysisException(
                "[UNPIVOT_REQUIRES_VALUE_COLUMNS] At least one value column needs to be "
                "specified for UNPIVOT, all columns specified as ids.",
                error_class="UNPIVOT_REQUIRES_VALUE_COLUMNS")
        return found

    # ---- statistics ------------------------------------------------------------------
    @property
    def stat(self) -> DataFrameStatFunctions:
        return DataFrameStatFunctions(self)

    def corr(self, col1: str, col2: str, method: str | None = None) -> float | None:
        """Pearson correlation of two numeric columns (the only method Spark has); a
        NULL counts as 0, as in Spark."""
        if method not in (None, "pearson"):
            raise ValueError(f"Currently only the calculation of the Pearson Correlation "
                             f"coefficient is supported, not {method!r}.")
        return self._one_value(F.corr(_as_double(col1), _as_double(col2)))

    def cov(self, col1: str, col2: str) -> float | None:
        """Sample covariance of two numeric columns."""
        return self._one_value(F.covar_samp(_as_double(col1), _as_double(col2)))

    def _one_value(self, aggregate: Column) -> float | None:
        value = self.groupBy().agg(aggregate).collect()[0][0]
        return None if value is None else float(value)

    def approxQuantile(self, col: str | list[str] | tuple[str, ...],
                       probabilities: list[float] | tuple[float, ...],
                       relativeError: float) -> list[float] | list[list[float]]:
        """Quantiles of numeric columns (values of the column, NULL and NaN skipped);
        exact here whatever ``relativeError``, which Spark's error bound allows."""
        names = [col] if isinstance(col, str) else list(col)
        probs = [float(p) for p in probabilities]
        row = self.groupBy().agg(*(_quantiles(self, n, probs) for n in names)).collect()[0]
        found = [[float(v) for v in row[i]] if row[i] and None not in row[i] else []
                 for i in range(len(names))]  # no values: Spark's empty list
        return found[0] if isinstance(col, str) else found

    def freqItems(self, cols: list[str] | tuple[str, ...],
                  support: float | None = None) -> DataFrame:
        """Items that may occur in more than ``support`` of the rows (Karp et al.'s one
        pass, as Spark runs it: false positives possible, no false negatives); one row,
        a ``<col>_freqItems`` array per column, items in first-kept order (Spark's come
        in its hash map's order)."""
        share = 0.01 if support is None else support
        if not 1e-4 <= share <= 1.0:
            raise ValueError(f"requirement failed: Support must be in [1e-4, 1], but got "
                             f"{share}.")
        names = list(cols)
        counters = [_FrequentItems(int(1 / share)) for _ in names]
        for row in self.select(*names).collect():
            for counter, value in zip(counters, row, strict=True):
                counter.add(value)
        types = [f.dataType for f in self.select(*names).schema.fields]
        return self.groupBy().agg(*(
            F.array(*(F.lit(v).cast(t) for v in c.items())).cast(T.ArrayType(t))
            .alias(f"{n}_freqItems") for n, c, t in zip(names, counters, types, strict=True)))

    def crosstab(self, col1: str, col2: str) -> DataFrame:
        """A contingency table: one row per value of ``col1`` (as a string), one count
        column per value of ``col2``, 0 where a pair never occurs."""
        left = F.col(col1).cast("string")
        right = F.coalesce(F.col(col2).cast("string"), F.lit("null"))
        counts = (self.select(F.coalesce(left, F.lit("null")).alias(f"{col1}_{col2}"),
                              right.alias(col2))
                  .groupBy(f"{col1}_{col2}").pivot(col2).count())
        return counts.fillna(0)


class DataFrameNaFunctions:
    """``df.na``: ``fill``, ``drop`` and ``replace`` as ``fillna``, ``dropna``,
    ``replace``."""

    def __init__(self, df: DataFrameOps) -> None:
        self._df = df

    def fill(self, value: Any, subset: Any = None) -> DataFrame:
        return self._df.fillna(value, subset)

    def drop(self, how: str = "any", thresh: int | None = None,
             subset: Any = None) -> DataFrame:
        return self._df.dropna(how, thresh, subset)

    def replace(self, to_replace: Any, value: Any = ..., subset: Any = None) -> DataFrame:
        return self._df.replace(to_replace, value, subset)


class DataFrameStatFunctions:
    """``df.stat``: ``corr``, ``cov``, ``crosstab``, ``freqItems`` and
    ``approxQuantile``."""

    def __init__(self, df: DataFrameOps) -> None:
        self._df = df

    def corr(self, col1: str, col2: str, method: str | None = None) -> float | None:
        return self._df.corr(col1, col2, method)

    def cov(self, col1: str, col2: str) -> float | None:
        return self._df.cov(col1, col2)

    def crosstab(self, col1: str, col2: str) -> DataFrame:
        return self._df.crosstab(col1, col2)

    def freqItems(self, cols: list[str] | tuple[str, ...],
                  support: float | None = None) -> DataFrame:
        return self._df.freqItems(cols, support)

    def approxQuantile(self, col: Any, probabilities: Any,
                       relativeError: float) -> list[float] | list[list[float]]:
        return self._df.approxQuantile(col, probabilities, relativeError)


class _FrequentItems:
    """Spark's ``FreqItemCounter``: at most ``size`` candidate items; an item that finds
    the map full is not kept and lowers every count by one."""

    def __init__(self, size: int) -> None:
        self._size = size
        self._counts: dict[Any, int] = {}

    def add(self, key: Any) -> None:
        counts = self._counts
        if key in counts:
            counts[key] += 1
        elif len(counts) < self._size:
            counts[key] = 1
        else:  # with a count of 1 Spark's rule keeps no new key and lowers every count by 1
            self._counts = {k: v - 1 for k, v in counts.items() if v > 1}

    def items(self) -> list[Any]:
        return list(self._counts)


def _quantiles(df: DataFrameOps, name: str, probs: list[float]) -> Column:
    column = F.col(name)
    if isinstance(df.select(column).schema.fields[0].dataType, (T.FloatType, T.DoubleType)):
        column = F.when(~F.isnan(column), column)
    return F.percentile_approx(column.cast("double"), probs).alias(name)


def _as_double(name: str) -> Column:
    """Spark's stat functions read a NULL as 0.0 (they do not skip the row)."""
    return F.coalesce(F.col(name).cast("double"), F.lit(0.0))


def _listed(value: Any) -> list[Any]:
    return list(value) if isinstance(value, (list, tuple)) else [value]


def _as_column(value: Any) -> Column:
    return value if isinstance(value, Column) else F.col(value)


_WIDENING = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.FloatType, T.DoubleType)


def _common_type(types: list[T.DataType], names: list[str]) -> T.DataType:
    """The least common type of unpivot's value columns (numbers widen; anything else
    must be equal), or Spark's UNPIVOT_VALUE_DATA_TYPE_MISMATCH."""
    known = [t for t in types if not isinstance(t, T.NullType)] or types
    if all(t == known[0] for t in known):
        return known[0]
    ranks = [next((i for i, k in enumerate(_WIDENING) if isinstance(t, k)), None)
             for t in known]
    if all(r is not None for r in ranks):
        return _WIDENING[builtins.max(r for r in ranks if r is not None)]()
    shown = ", ".join(f'"{t.simpleString().upper()}" (`{n}`)'
                      for t, n in zip(types, names, strict=True))
    raise AnalysisException(
        "[UNPIVOT_VALUE_DATA_TYPE_MISMATCH] Unpivot value columns must share a least "
        f"common type, some types do not: [{shown}].",
        error_class="UNPIVOT_VALUE_DATA_TYPE_MISMATCH")


def _subset(subset: Any, columns: list[str]) -> set[str]:
    if subset is None:
        return {c.lower() for c in columns}
    names = [subset] if isinstance(subset, str) else list(subset)
    return {n.lower() for n in names}


def _names(cols: tuple[Any, ...]) -> list[str]:
    if len(cols) == 1 and isinstance(cols[0], (list, tuple)):
        return list(cols[0])
    return [str(c) for c in cols]


def _replacements(to_replace: Any, value: Any) -> list[tuple[Any, Any]]:
    if isinstance(to_replace, dict):
        pairs = list(to_replace.items())
    elif isinstance(to_replace, (list, tuple)):
        values = value if isinstance(value, (list, tuple)) else [value] * len(to_replace)
        if len(values) != len(to_replace):
            raise AnalysisException("[LENGTH_SHOULD_BE_THE_SAME] to_replace and value should "
                                    "have the same length.",
                                    error_class="LENGTH_SHOULD_BE_THE_SAME")
        pairs = list(zip(to_replace, values, strict=True))
    else:
        if value is ...:
            raise AnalysisException("[ARGUMENT_REQUIRED] value is required when to_replace "
                                    "is not a dict.", error_class="ARGUMENT_REQUIRED")
        pairs = [(to_replace, value)]
    kinds = {_kind(old) for old, _ in pairs} | {_kind(new) for _, new in pairs if new is not None}
    if len(kinds) > 1 or None in {_kind(old) for old, _ in pairs}:
        raise AnalysisException("[MIXED_TYPE_REPLACEMENT] Mixed type replacements are not "
                                "supported.", error_class="MIXED_TYPE_REPLACEMENT")
    return pairs


def _same_rows(left: DataFrameOps, right: DataFrameOps) -> Column:
    """Whole rows equal by position, NULLs equal (Spark's rule for set operations)."""
    if len(left.columns) != len(right.columns):
        raise AnalysisException(
            f"[NUM_COLUMNS_MISMATCH] EXCEPT/INTERSECT can only be performed on inputs with the "
            f"same number of columns, but the inputs have {len(left.columns)} and "
            f"{len(right.columns)}.", error_class="NUM_COLUMNS_MISMATCH")
    pairs = [left[i].eqNullSafe(right[i]) for i in range(len(left.columns))]
    return reduce(lambda a, b: a & b, pairs)


def _aligned(left: DataFrameOps, right: DataFrameOps) -> tuple[DataFrame, DataFrame]:
    """Both inputs in the column types their UNION would have (Spark widens the inputs of
    every set operation alike: '1' INTERSECT 1 is bigint under ANSI, string without)."""
    _same_rows(left, right)  # the same number of columns, or Spark's error
    target = left.union(right).schema  # type: ignore[arg-type]
    return _cast_to(left, target), _cast_to(right, target)


def _cast_to(df: DataFrameOps, target: T.StructType) -> DataFrame:
    fields = df.schema.fields
    if all(f.dataType == t.dataType for f, t in zip(fields, target.fields, strict=True)):
        return df  # type: ignore[return-value]
    return df.select(*(df[i] if f.dataType == t.dataType else
                       df[i].cast(t.dataType).alias(f.name)
                       for i, (f, t) in enumerate(zip(fields, target.fields, strict=True))))


def _numbered(df: DataFrameOps) -> DataFrame:
    """Each row with its occurrence number among equal rows (1, 2, ...)."""
    from unbounded.sql.window import Window

    cols = [df[c] for c in df.columns]
    window = Window.partitionBy(*cols).orderBy(*cols)
    return df.withColumn(_ROW_NUMBER, F.row_number().over(window))


def _by_occurrence(left: DataFrameOps, right: DataFrameOps, how: str) -> DataFrame:
    _same_rows(left, right)  # the same number of columns, or Spark's error
    lhs, rhs = _numbered(left), _numbered(right.toDF(*left.columns))
    condition = reduce(lambda a, b: a & b, [lhs[c].eqNullSafe(rhs[c]) for c in lhs.columns])
    return lhs.join(rhs, condition, how).drop(_ROW_NUMBER)


_STATISTICS: dict[str, Callable[[Column], Column]] = {
    "count": F.count, "mean": F.avg, "stddev": F.stddev, "min": F.min, "max": F.max,
}


def _summary(df: DataFrameOps, names: list[str], stats: list[str]) -> DataFrame:
    fields = [f for f in df.schema.fields if (not names or f.name in names)
              and isinstance(f.dataType, (*_NUMERIC, T.StringType))]
    rows = []
    for stat in stats:
        cells = [_statistic(stat, df[f.name], f.dataType).cast("string").alias(f.name)
                 for f in fields]
        rows.append(df.select(F.lit(stat).alias("summary"), *cells))
    return reduce(lambda a, b: a.union(b), rows)


def _statistic(stat: str, column: Column, data_type: T.DataType) -> Column:
    numeric = isinstance(data_type, _NUMERIC)
    if stat.endswith("%"):
        if not numeric:
            return F.lit(None)
        return F.percentile_approx(column, float(stat[:-1]) / 100)
    if stat not in _STATISTICS:
        raise AnalysisException(f"[SUMMARY_STATISTIC] {stat} is not a known statistic: use "
                                f"{', '.join(_STATISTICS)} or a percentage such as 75%.",
                                error_class="INVALID_PARAMETER_VALUE")
    if stat in ("mean", "stddev") and not numeric:
        return F.lit(None)
    return _STATISTICS[stat](column)
