"""Statistical, boolean and exact-percentile aggregates of PySpark 4, added to
``engine.aggregates.AGGREGATES`` when imported (the import at the end of
``engine/aggregates.py`` does it).

Spark's empty and degenerate groups are kept: a group with no non-NULL value gives NULL
(``count_if``: 0), and a statistic whose divisor is zero gives NULL, not NaN
(``spark.sql.legacy.statisticalAggregate`` off, Spark's default). Pairwise statistics
(``corr``, ``covar_*``) use the rows where both values are non-NULL.
"""

from __future__ import annotations

from collections.abc import Callable

import polars as pl

from unbounded.engine.aggregates import AGGREGATES
from unbounded.errors import AnalysisException
from unbounded.plan.expressions import AggregateCall, Expression, FunctionCall, Literal

__all__ = ["percentages_of", "try_sum_integers"]

AggBuilder = Callable[[list[pl.Expr], AggregateCall], pl.Expr]


def _when_any(values: pl.Expr, result: pl.Expr, at_least: int = 1) -> pl.Expr:
    return pl.when(values.count() >= at_least).then(result)


def _spread(ddof: int, sqrt: bool) -> AggBuilder:
    def build(args: list[pl.Expr], call: AggregateCall) -> pl.Expr:
        x = args[0].cast(pl.Float64)
        value = x.std(ddof=ddof) if sqrt else x.var(ddof=ddof)
        return _when_any(x, value, ddof + 1)

    return build


def _pairs(args: list[pl.Expr]) -> tuple[pl.Expr, pl.Expr]:
    both = args[0].is_not_null() & args[1].is_not_null()
    return args[0].cast(pl.Float64).filter(both), args[1].cast(pl.Float64).filter(both)


def _covar(ddof: int) -> AggBuilder:
    def build(args: list[pl.Expr], call: AggregateCall) -> pl.Expr:
        x, y = _pairs(args)
        return _when_any(x, pl.cov(x, y, ddof=ddof), ddof + 1)

    return build


def _corr(args: list[pl.Expr], call: AggregateCall) -> pl.Expr:
    # Spark's form, ck / sqrt(xMk * yMk) over centred sums: corr(c, c) is exactly 1.0
    # because sqrt(a * a) == |a| in IEEE arithmetic, where std_x * std_y rounds twice.
    x, y = _pairs(args)
    dx, dy = x - x.mean(), y - y.mean()
    scale = ((dx * dx).sum() * (dy * dy).sum()).sqrt()
    return pl.when((x.count() > 0) & (scale != 0)).then((dx * dy).sum() / scale)


def _central(x: pl.Expr, power: int) -> pl.Expr:
    return ((x - x.mean()) ** power).mean()


def _skewness(args: list[pl.Expr], call: AggregateCall) -> pl.Expr:
    x = args[0].cast(pl.Float64).drop_nulls()
    m2 = _central(x, 2)
    return pl.when(m2 > 0).then(_central(x, 3) / m2 ** 1.5)


def _kurtosis(args: list[pl.Expr], call: AggregateCall) -> pl.Expr:
    x = args[0].cast(pl.Float64).drop_nulls()
    m2 = _central(x, 2)
    return pl.when(m2 > 0).then(_central(x, 4) / m2 ** 2 - 3.0)


def percentages_of(expr: Expression, function: str) -> tuple[list[float], bool]:
    """The literal percentage(s) of a percentile call, and whether they came as an array."""
    if isinstance(expr, Literal) and isinstance(expr.value, (int, float)):
        values, many = [expr.value], False
    elif isinstance(expr, Literal) and isinstance(expr.value, list):
        values, many = expr.value, True
    elif isinstance(expr, FunctionCall) and expr.name == "array" and all(
            isinstance(a, Literal) for a in expr.args):
        values, many = [a.value for a in expr.args if isinstance(a, Literal)], True
    else:
        raise AnalysisException(
            f"[DATATYPE_MISMATCH.NON_FOLDABLE_INPUT] {function}: the percentage must be a "
            "literal number or an array of them.",
            error_class="DATATYPE_MISMATCH.NON_FOLDABLE_INPUT")
    for p in values:
        if not isinstance(p, (int, float)) or not 0.0 <= float(p) <= 1.0:
            raise AnalysisException(
                f"[DATATYPE_MISMATCH.VALUE_OUT_OF_RANGE] {function}: the percentage {p} must "
                "be between 0.0 and 1.0.", error_class="DATATYPE_MISMATCH.VALUE_OUT_OF_RANGE")
    return [float(p) for p in values], many


def _percentile(args: list[pl.Expr], call: AggregateCall) -> pl.Expr:
    """Exact percentiles with linear interpolation between the closest ranks (Spark's
    ``percentile``), each value counted ``frequency`` times."""
    ps, many = percentages_of(call.args[1], "percentile")
    values = args[0].cast(pl.Float64)
    if len(args) > 2:
        values = values.repeat_by(args[2].cast(pl.Int64)).explode()
    values = values.drop_nulls()
    picks = [_when_any(values, values.quantile(p, interpolation="linear")) for p in ps]
    return pl.concat_list(picks) if many else picks[0]


def _median(args: list[pl.Expr], call: AggregateCall) -> pl.Expr:
    values = args[0].cast(pl.Float64).drop_nulls()
    return _when_any(values, values.quantile(0.5, interpolation="linear"))


def _mode(args: list[pl.Expr], call: AggregateCall) -> pl.Expr:
    """The most frequent non-NULL value; among equally frequent ones the smallest (Spark
    returns any of them unless asked to be deterministic)."""
    values = args[0].drop_nulls()
    return _when_any(values, values.mode().min())


def _count_if(args: list[pl.Expr], call: AggregateCall) -> pl.Expr:
    return args[0].cast(pl.Boolean).sum().cast(pl.Int64)


def _boolean(method: str) -> AggBuilder:
    def build(args: list[pl.Expr], call: AggregateCall) -> pl.Expr:
        values = args[0].cast(pl.Boolean)
        return _when_any(values, getattr(values, method)())

    return build


def _product(args: list[pl.Expr], call: AggregateCall) -> pl.Expr:
    values = args[0].cast(pl.Float64).drop_nulls()
    return _when_any(values, values.product())


def _first_or_last(method: str) -> AggBuilder:
    """``first_value``/``last_value``/``any_value``: the flag ``distinct`` carries
    ``ignoreNulls``, as for ``first``/``last``."""
    def build(args: list[pl.Expr], call: AggregateCall) -> pl.Expr:
        values = args[0].drop_nulls() if call.distinct else args[0]
        return getattr(values, method)()  # type: ignore[no-any-return]

    return build


def _bitwise(method: str) -> AggBuilder:
    def build(args: list[pl.Expr], call: AggregateCall) -> pl.Expr:
        return _when_any(args[0], getattr(args[0], method)())

    return build


def _listagg(args: list[pl.Expr], call: AggregateCall) -> pl.Expr:
    """The non-NULL values as text joined by the delimiter (none by default), in input
    order; DISTINCT keeps each value's first occurrence."""
    delimiter = call.args[1].value if len(call.args) > 1 and isinstance(
        call.args[1], Literal) and call.args[1].value is not None else ""
    values = args[0].cast(pl.String).drop_nulls()
    if call.distinct:
        values = values.unique(maintain_order=True)
    return _when_any(values, values.str.join(str(delimiter)))


def try_sum_integers(args: list[pl.Expr], call: AggregateCall) -> pl.Expr:
    """``try_sum`` of integers: NULL instead of an error or a wrapped value when the sum
    leaves the long range (summed exactly in 128 bits first). ``compile_aggregate_call``
    takes ``sum`` for other types, which cannot overflow that way."""
    values = args[0].unique() if call.distinct else args[0]
    wide = values.cast(pl.Int128).sum()
    exact = pl.when(wide.is_between(-(2**63), 2**63 - 1)).then(wide.cast(pl.Int64))
    return pl.when(values.count() > 0).then(exact)


def _regression(stat: str) -> AggBuilder:
    """Spark's ``regr_*(y, x)`` over the rows where both are non-NULL."""
    def build(args: list[pl.Expr], call: AggregateCall) -> pl.Expr:
        y, x = _pairs(args)
        n = x.count()
        sxx = ((x - x.mean()) ** 2).sum()
        syy = ((y - y.mean()) ** 2).sum()
        sxy = ((x - x.mean()) * (y - y.mean())).sum()
        if stat == "count":
            return n.cast(pl.Int64)
        values = {"avgx": x.mean(), "avgy": y.mean(), "sxx": sxx, "syy": syy, "sxy": sxy}
        if stat in values:
            return pl.when(n > 0).then(values[stat])
        slope = pl.when((n > 0) & (sxx != 0)).then(sxy / sxx)
        if stat == "slope":
            return slope
        if stat == "intercept":
            return y.mean() - slope * x.mean()
        return pl.when((n > 0) & (sxx != 0)).then(
            pl.when(syy == 0).then(1.0).otherwise(sxy ** 2 / (sxx * syy)))

    return build


AGGREGATES.update({
    "bit_and": _bitwise("bitwise_and"), "bit_or": _bitwise("bitwise_or"),
    "bit_xor": _bitwise("bitwise_xor"),
    "listagg": _listagg, "string_agg": _listagg,
    "try_sum": try_sum_integers, "try_avg": AGGREGATES["avg"],
    **{f"regr_{stat}": _regression(stat) for stat in (
        "count", "avgx", "avgy", "sxx", "syy", "sxy", "slope", "intercept", "r2")},
    "stddev_pop": _spread(0, sqrt=True), "var_pop": _spread(0, sqrt=False),
    "std": AGGREGATES["stddev"],
    "covar_pop": _covar(0), "covar_samp": _covar(1), "corr": _corr,
    "skewness": _skewness, "kurtosis": _kurtosis,
    "percentile": _percentile, "median": _median, "mode": _mode,
    "count_if": _count_if,
    "bool_and": _boolean("all"), "every": _boolean("all"),
    "bool_or": _boolean("any"), "some": _boolean("any"), "any": _boolean("any"),
    "product": _product,
    "first_value": _first_or_last("first"), "any_value": _first_or_last("first"),
    "last_value": _first_or_last("last"),
})
