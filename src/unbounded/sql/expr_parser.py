"""SQL expression strings in Spark's dialect, parsed into expression nodes.

``F.expr(...)``, ``DataFrame.selectExpr(...)`` and ``DataFrame.filter("...")`` land here.
sqlglot tokenizes and parses; this module turns sqlglot's tree into the nodes of
``unbounded.plan.expressions``. Function calls are built by the functions of
``unbounded.sql.functions`` of the same name, so ``expr("split(s, ',')")`` is the very node
``split(col("s"), ",")`` builds; names only the engine knows become plain calls.

Example:
    >>> parse_expression("upper(name) AS shout").display_name()
    'shout'
    >>> parse_expression("a + 1 > 2").display_name()
    '((a + 1) > 2)'
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import cache, singledispatch
from typing import Any, ClassVar

import sqlglot
from sqlglot import TokenType, exp
from sqlglot.dialects.spark import Spark
from sqlglot.errors import ParseError, TokenError

from unbounded.errors import AnalysisException, ParseException
from unbounded.plan.expressions import (
    AggregateCall,
    Alias,
    BinaryOp,
    CaseWhen,
    Cast,
    ColumnRef,
    Expression,
    FunctionCall,
    GetField,
    GetItem,
    In,
    LambdaFunction,
    LambdaVariable,
    Like,
    Literal,
    SortOrder,
    Star,
    UnaryOp,
)
from unbounded.plan.intervals import parse_interval_us
from unbounded.sql import functions as F
from unbounded.sql.column import Column
from unbounded.sql.types import (
    BinaryType,
    DataType,
    DateType,
    DecimalType,
    TimestampNTZType,
    TimestampType,
    parse_data_type,
)
from unbounded.sql.udf import registered_udf

__all__ = ["convert_node", "parse_expression", "parse_statement"]


class _SparkExpressions(Spark):
    """Spark's dialect with every function call kept as written: name and positional args.

    sqlglot otherwise rewrites calls into its own canonical nodes (``split`` becomes
    ``RegexpSplit``, ``nvl`` becomes ``Coalesce``, ``date_trunc`` reorders its arguments),
    losing the Spark name our function table is keyed on.
    """

    # Spark reads a doubled quote inside a literal as one quote ('yyyy-MM-dd''T''HH').
    class Tokenizer(Spark.Tokenizer):  # type: ignore[name-defined,valid-type,misc]
        STRING_ESCAPES: ClassVar[list[str]] = ["\\", "'", '"']

    # Spark.Parser is a class attribute in sqlglot's stubs, a class at runtime.
    class Parser(Spark.Parser):  # type: ignore[name-defined,valid-type,misc]
        FUNCTIONS: ClassVar[dict[str, Any]] = {}
        FUNCTION_PARSERS: ClassVar[dict[str, Any]] = {
            k: v for k, v in Spark.Parser.FUNCTION_PARSERS.items()
            if k in ("CAST", "TRY_CAST", "EXTRACT")
        }
        # ``GROUP BY window(ts, '5 minutes')`` is Spark's time window, not a WINDOW clause.
        QUERY_MODIFIER_TOKENS: ClassVar[set[Any]] = (
            Spark.Parser.QUERY_MODIFIER_TOKENS - {TokenType.WINDOW})

        def _parse_pivot_aggregation(self) -> exp.Expr | None:
            # Spark's PIVOT takes any expression over aggregates (``sum(v) + 1 AS s``);
            # sqlglot's only a call. sql/sql_pivot.py checks that it aggregates.
            value: exp.Expr | None = self._parse_expression()
            if value is None:
                self.raise_error("Expecting an aggregation function in PIVOT")
            return value

        # ``x FOR y IN z`` is no Spark syntax (a comprehension elsewhere): in a PIVOT, FOR
        # ends the aggregates.
        RANGE_PARSERS: ClassVar[dict[Any, Any]] = {
            k: v for k, v in Spark.Parser.RANGE_PARSERS.items() if k != TokenType.FOR}


class _Rejected(Exception):
    """A construct the parser cannot turn into a node; becomes a ParseException."""

    def __init__(self, message: str, error_class: str = "UNSUPPORTED_SQL") -> None:
        super().__init__(message)
        self.error_class = error_class


def parse_expression(sql: str) -> Expression:
    """Parse one SQL expression (optionally ``... AS alias``) in Spark's dialect.

    Raises:
        ParseException: on a syntax error, or a construct unbounded does not support.

    Example:
        >>> parse_expression("CAST(id AS STRING) AS s")
        Alias(child=Cast(child=ColumnRef(name='id'), to=StringType(), time_zone=None), name='s')
    """
    try:
        tree = sqlglot.parse_one(sql, dialect=_SparkExpressions)
    except ParseError as err:
        raise ParseException(_syntax_message(sql, err)) from None
    except TokenError as err:
        raise ParseException(
            f"[PARSE_SYNTAX_ERROR] Cannot tokenize the SQL expression {sql!r}: {err}. "
            "Check for an unclosed quote or backquote.") from None
    try:
        return _convert(tree)
    except _Rejected as err:
        raise ParseException(f"[{err.error_class}] {err} (in the SQL expression {sql!r}).",
                             error_class=err.error_class) from None


def parse_statement(sql: str) -> exp.Expr:
    """Parse a whole SQL statement in the dialect expressions use; the statement
    translator (``unbounded.sql.sql_parser``) converts its expressions with
    :func:`convert_node`, so SQL statements and expression strings share one parser."""
    try:
        return sqlglot.parse_one(sql, dialect=_SparkExpressions)
    except ParseError as err:
        raise ParseException(_syntax_message(sql, err).replace("SQL expression",
                                                               "SQL statement")) from None
    except TokenError as err:
        raise ParseException(
            f"[PARSE_SYNTAX_ERROR] Cannot tokenize the SQL statement {sql!r}: {err}. "
            "Check for an unclosed quote or backquote.") from None


def convert_node(node: exp.Expr, sql: str) -> Expression:
    """One expression of a statement parsed by :func:`parse_statement`, as a node."""
    try:
        return _convert(node)
    except _Rejected as err:
        raise ParseException(f"[{err.error_class}] {err} (in the SQL statement {sql!r}).",
                             error_class=err.error_class) from None


def _syntax_message(sql: str, err: ParseError) -> str:
    if not err.errors:
        return f"[PARSE_SYNTAX_ERROR] Syntax error in the SQL expression {sql!r}: {err}."
    first = err.errors[0]
    near = first.get("highlight") or "end of input"
    return (f"[PARSE_SYNTAX_ERROR] Syntax error at or near {near!r} (line {first.get('line')}, "
            f"column {first.get('col')}) in the SQL expression {sql!r}: "
            f"{first.get('description')}.")


# ---- the conversion table: one rule per sqlglot node type ---------------------------
_CONSTRUCT_NAMES: dict[type[exp.Expr], str] = {
    exp.Window: "Window functions (OVER ...)",
    exp.Lambda: "Lambda functions",
    exp.Subquery: "Subqueries",
    exp.Select: "SELECT statements",
    exp.Block: "Several statements",
    exp.Tuple: "Tuples",
    exp.Filter: "Aggregate FILTER clauses",
    exp.Aliases: "Multi-name aliases",
}


def _describe(node: exp.Expr) -> str:
    name = _CONSTRUCT_NAMES.get(type(node), f"The SQL construct {type(node).__name__}")
    return f"{name} ({node.sql(dialect='spark')})"


@singledispatch
def _convert(node: exp.Expr) -> Expression:
    raise _Rejected(f"Unsupported SQL construct: {_describe(node)}")


@_convert.register
def _(node: exp.Paren) -> Expression:
    return _convert(node.this)


@_convert.register
def _(node: exp.Alias) -> Expression:
    return Alias(_convert(node.this), node.alias)


@_convert.register
def _(node: exp.Star) -> Expression:
    return Star()


@_convert.register
def _(node: exp.Column) -> Expression:
    names = [p.name for p in node.parts if not isinstance(p, exp.Star)]
    if isinstance(node.this, exp.Star):
        return Star(".".join(names))
    return _column_ref(names)


def _column_ref(names: list[str]) -> Expression:
    """``a.b`` as ``ColumnRef('a.b')`` (what ``col`` builds); a name holding a dot is
    backquoted, and fields after it become ``GetField``."""
    if not any("." in n for n in names):
        return ColumnRef(".".join(names))
    head: Expression = ColumnRef(f"`{names[0]}`" if "." in names[0] else names[0])
    for field_name in names[1:]:
        head = GetField(head, field_name)
    return head


@_convert.register
def _(node: exp.Dot) -> Expression:
    if not isinstance(node.expression, exp.Identifier):
        raise _Rejected(f"Unsupported SQL construct: {_describe(node)}")
    return GetField(_convert(node.this), node.expression.name)


@_convert.register
def _(node: exp.Bracket) -> Expression:
    if len(node.expressions) != 1:
        raise _Rejected(f"Subscripts with several keys ({node.sql(dialect='spark')}) "
                        "are not supported")
    return GetItem(_convert(node.this), _convert(node.expressions[0]))


# ---- literals ------------------------------------------------------------------------
@_convert.register
def _(node: exp.Literal) -> Expression:
    return Literal(_literal_value(node))


def _literal_value(node: exp.Literal) -> Any:
    text = str(node.this)
    if node.is_string:
        return text
    try:
        return int(text)
    except ValueError:
        return float(text)


@_convert.register
def _(node: exp.RawString) -> Expression:
    return Literal(str(node.this))


@_convert.register
def _(node: exp.Boolean) -> Expression:
    return Literal(bool(node.this))


@_convert.register
def _(node: exp.Null) -> Expression:
    return Literal(None)


@_convert.register
def _(node: exp.HexString) -> Expression:
    return Literal(bytes.fromhex(str(node.this)), BinaryType())


@_convert.register
def _(node: exp.Interval) -> Expression:
    return Literal(timedelta(microseconds=_interval_us(node)))


def _interval_text(node: exp.Expr) -> str:
    """``INTERVAL 1 HOUR 30 MINUTES`` (parsed as a sum of intervals) as ``'1 HOUR 30 MINUTES'``."""
    if isinstance(node, exp.Add):
        return f"{_interval_text(node.this)} {_interval_text(node.expression)}"
    if isinstance(node, exp.Interval):
        unit = node.args.get("unit")
        return f"{node.this.name} {unit.name if unit is not None else ''}".strip()
    raise _Rejected(f"Expected an interval, got {node.sql(dialect='spark')}")


def _is_interval(node: exp.Expr) -> bool:
    if isinstance(node, exp.Add):
        return _is_interval(node.this) and _is_interval(node.expression)
    return isinstance(node, exp.Interval)


def _interval_us(node: exp.Expr) -> int:
    text = _interval_text(node)
    try:
        return parse_interval_us(text)
    except AnalysisException as err:
        raise _Rejected(str(err), "INVALID_INTERVAL") from None


@_convert.register
def _(node: exp.Neg) -> Expression:
    child = _convert(node.this)
    if isinstance(child, Literal) and isinstance(child.value, (int, float)) \
            and not isinstance(child.value, bool):
        return Literal(-child.value, child.data_type)
    return UnaryOp("neg", child)


@_convert.register
def _(node: exp.Concat) -> Expression:
    # Only adjacent string literals ('a' 'b') reach here; concat(...) stays a call.
    parts = [_convert(e) for e in node.expressions]
    if all(isinstance(p, Literal) and isinstance(p.value, str) for p in parts):
        return Literal("".join(str(p.value) for p in parts if isinstance(p, Literal)))
    return F.concat(*(Column(p) for p in parts)).expr


# ---- casts and typed literals --------------------------------------------------------
@_convert.register
def _(node: exp.Cast) -> Expression:
    # Spark's CAST parses as TryCast (non-ANSI: NULL on failure); ``TIMESTAMP '...'`` and
    # ``DATE '...'`` parse as a plain Cast of a string, folded here into a typed literal.
    target = _data_type(node.to)
    if type(node) is exp.Cast and isinstance(node.this, exp.Literal) and node.this.is_string:
        typed = _typed_literal(str(node.this.this), target)
        if typed is not None:
            return typed
    return Cast(_convert(node.this), target)


def _data_type(node: exp.DataType) -> DataType:
    text = node.sql(dialect="spark")
    try:
        return parse_data_type(text)
    except ParseException:
        raise _Rejected(f"The data type {text} is not supported", "UNSUPPORTED_DATATYPE") \
            from None


def _typed_literal(text: str, target: DataType) -> Literal | None:
    try:
        if isinstance(target, DateType):
            return Literal(date.fromisoformat(text.strip()), target)
        if isinstance(target, (TimestampType, TimestampNTZType)):
            value = datetime.fromisoformat(text.strip())
            if isinstance(target, TimestampNTZType):
                return Literal(value.replace(tzinfo=None), target)
            # Without an offset: wall-clock time in the session zone, which the engine
            # knows (engine/expressions.py compiles the literal).
            return Literal(value if value.tzinfo is None else value.astimezone(UTC), target)
    except ValueError:
        raise _Rejected(f"Cannot parse the {target.simpleString().upper()} value {text!r}",
                        "INVALID_TYPED_LITERAL") from None
    return None


# ---- operators -----------------------------------------------------------------------
_BINARY_OPS: dict[type[exp.Expr], str] = {
    exp.Add: "add", exp.Sub: "sub", exp.Mul: "mul", exp.Div: "div", exp.Mod: "mod",
    exp.EQ: "eq", exp.NEQ: "ne", exp.LT: "lt", exp.LTE: "le", exp.GT: "gt", exp.GTE: "ge",
    exp.NullSafeEQ: "eq_null_safe", exp.And: "and", exp.Or: "or",
    exp.BitwiseAnd: "bitand", exp.BitwiseOr: "bitor", exp.BitwiseXor: "bitxor",
}


@_convert.register
def _(node: exp.Binary) -> Expression:
    op = _BINARY_OPS.get(type(node))
    if op is None:
        raise _Rejected(f"Unsupported SQL operator: {_describe(node)}")
    return BinaryOp(op, _convert(node.this), _convert(node.expression))


@_convert.register
def _(node: exp.IntDiv) -> Expression:
    # Spark's ``a DIV b`` (its type checks: engine/math_functions.py), named as Spark does.
    left, right = _convert(node.this), _convert(node.expression)
    shown = f"({left.display_name()} div {right.display_name()})"
    return FunctionCall("div", (_decimal_literal(node.this, left),
                                _decimal_literal(node.expression, right)), (("display", shown),))


def _decimal_literal(node: exp.Expr, value: Expression) -> Expression:
    """``7.5`` as Spark types it, DECIMAL(2,1), where a double would be rejected (div)."""
    number = node.this if isinstance(node, exp.Neg) else node
    if not isinstance(number, exp.Literal) or number.is_string \
            or "." not in str(number.this) \
            or not str(number.this).replace(".", "", 1).isdigit():
        return value
    whole, _, fraction = str(number.this).partition(".")
    precision = max(len((whole + fraction).lstrip("0")), len(fraction), 1)
    return Cast(value, DecimalType(precision, len(fraction)))


@_convert.register
def _(node: exp.DPipe) -> Expression:
    # Spark reads ``a || b || c`` as concat(a, b, c).
    parts: list[exp.Expr] = []
    pending: list[exp.Expr] = [node]
    while pending:
        item = pending.pop()
        if isinstance(item, exp.DPipe):
            pending.extend([item.expression, item.this])
        else:
            parts.append(item)
    return F.concat(*(Column(_convert(p)) for p in parts)).expr


@_convert.register
def _(node: exp.BitwiseNot) -> Expression:
    return UnaryOp("bitnot", _convert(node.this))


@_convert.register
def _(node: exp.Not) -> Expression:
    inner = node.this
    if isinstance(inner, exp.Is) and isinstance(inner.expression, exp.Null):
        return UnaryOp("isnotnull", _convert(inner.this))
    return UnaryOp("not", _convert(inner))


@_convert.register
def _(node: exp.Is) -> Expression:
    child = _convert(node.this)
    if isinstance(node.expression, exp.Null):
        return UnaryOp("isnull", child)
    if isinstance(node.expression, exp.Boolean):
        return BinaryOp("eq_null_safe", child, Literal(bool(node.expression.this)))
    raise _Rejected(f"{_describe(node)} is not supported; use IS [NOT] NULL/TRUE/FALSE")


@_convert.register
def _(node: exp.In) -> Expression:
    if node.args.get("query") is not None or node.args.get("unnest") is not None:
        raise _Rejected(f"IN with a subquery ({node.sql(dialect='spark')}) is not supported")
    return In(_convert(node.this), tuple(_convert(v) for v in node.expressions))


@_convert.register
def _(node: exp.Between) -> Expression:
    if node.args.get("symmetric"):
        raise _Rejected(f"BETWEEN SYMMETRIC ({node.sql(dialect='spark')}) is not supported")
    column = Column(_convert(node.this))
    return column.between(Column(_convert(node.args["low"])),
                          Column(_convert(node.args["high"]))).expr


# ---- pattern matching ----------------------------------------------------------------
def _pattern_match(node: exp.Binary, kind: str, escape: str | None = None) -> Expression:
    pattern = node.expression
    if not (isinstance(pattern, exp.Literal) and pattern.is_string):
        raise _Rejected(f"{kind.upper()} needs a string literal pattern, got "
                        f"{pattern.sql(dialect='spark')}")
    text = str(pattern.this)
    if escape is not None and escape != "\\":
        text = _rewrite_escape(text, escape)
    matched: Expression = Like(_convert(node.this), text, kind)
    return UnaryOp("not", matched) if node.args.get("negate") else matched


def _rewrite_escape(pattern: str, escape: str) -> str:
    """A LIKE pattern with a custom ESCAPE character, rewritten to escape with ``\\``."""
    out: list[str] = []
    chars = iter(pattern)
    for ch in chars:
        if ch == escape:
            out.append("\\" + next(chars, ""))
        else:
            out.append("\\\\" if ch == "\\" else ch)
    return "".join(out)


@_convert.register
def _(node: exp.Like) -> Expression:
    return _pattern_match(node, "like")


@_convert.register
def _(node: exp.ILike) -> Expression:
    return _pattern_match(node, "ilike")


@_convert.register
def _(node: exp.RegexpLike) -> Expression:
    return _pattern_match(node, "rlike")


@_convert.register
def _(node: exp.Escape) -> Expression:
    like, escape = node.this, node.expression
    if not isinstance(like, (exp.Like, exp.ILike)) or not (
        isinstance(escape, exp.Literal) and escape.is_string and len(str(escape.this)) == 1
    ):
        raise _Rejected(f"{_describe(node)} is not supported; ESCAPE takes one character")
    return _pattern_match(like, "like" if isinstance(like, exp.Like) else "ilike",
                          str(escape.this))


# ---- conditionals --------------------------------------------------------------------
@_convert.register
def _(node: exp.Case) -> Expression:
    operand = _convert(node.this) if node.this is not None else None
    branches: list[tuple[Expression, Expression]] = []
    for branch in node.args.get("ifs") or []:
        condition = _convert(branch.this)
        if operand is not None:
            condition = BinaryOp("eq", operand, condition)
        branches.append((condition, _convert(branch.args["true"])))
    default = node.args.get("default")
    return CaseWhen(tuple(branches), _convert(default) if default is not None else None)


@_convert.register
def _(node: exp.If) -> Expression:
    otherwise = node.args.get("false")
    return CaseWhen(((_convert(node.this), _convert(node.args["true"])),),
                    _convert(otherwise) if otherwise is not None else None)


# ---- lambdas: ``x -> x + 1``, ``(acc, x) -> acc + x`` -----------------------------------
@_convert.register
def _(node: exp.Lambda) -> Expression:
    params = tuple(e.name for e in node.expressions)
    try:
        return LambdaFunction(_bind_variables(_convert(node.this), set(params)), params)
    except ValueError as err:
        raise _Rejected(str(err), "INVALID_LAMBDA_FUNCTION_CALL") from None


@_convert.register
def _(node: exp.Identifier) -> Expression:  # sqlglot's form of a lambda parameter's use
    return ColumnRef(node.name)


def _bind_variables(expr: Any, names: set[str]) -> Any:
    """``expr`` with each reference to a lambda parameter as a ``LambdaVariable`` (an
    inner lambda's own parameters are already bound, so they shadow outer ones)."""
    if isinstance(expr, ColumnRef) and expr.name in names and expr.plan_id is None:
        return LambdaVariable(expr.name)
    if isinstance(expr, tuple):
        return tuple(_bind_variables(e, names) for e in expr)
    if not isinstance(expr, Expression) or not dataclasses.is_dataclass(expr):
        return expr
    changed = {f.name: _bind_variables(getattr(expr, f.name), names)
               for f in dataclasses.fields(expr)}
    return dataclasses.replace(expr, **changed)


@_convert.register
def _(node: exp.Transform) -> Expression:  # sqlglot's own node for transform(xs, x -> ...)
    return _call("transform", [node.this, node.expression])


# ---- function calls ------------------------------------------------------------------
@_convert.register
def _(node: exp.Anonymous) -> Expression:
    return _call(str(node.this).lower(), list(node.expressions))


@_convert.register
def _(node: exp.CurrentTimestamp) -> Expression:
    return F.current_timestamp().expr


@_convert.register
def _(node: exp.CurrentDate) -> Expression:
    return F.current_date().expr


_EXTRACT_FUNCTIONS = {
    "YEAR": "year", "QUARTER": "quarter", "MONTH": "month", "WEEK": "weekofyear",
    "DAY": "dayofmonth", "DAYOFWEEK": "dayofweek", "DOY": "dayofyear", "HOUR": "hour",
    "MINUTE": "minute",
}


@_convert.register
def _(node: exp.Extract) -> Expression:
    unit = node.this.name.upper()
    if unit not in _EXTRACT_FUNCTIONS:
        raise _Rejected(f"EXTRACT of {unit} is not supported; use one of "
                        f"{', '.join(_EXTRACT_FUNCTIONS)}")
    return _call(_EXTRACT_FUNCTIONS[unit], [node.expression])


@_convert.register
def _(node: exp.Window) -> Expression:
    """``f(...) OVER ([PARTITION BY ...] [ORDER BY ...] [ROWS|RANGE BETWEEN ...])``: the
    node ``Column.over(WindowSpec)`` builds."""
    from unbounded.plan import window as W

    order = node.args.get("order")
    if node.args.get("alias") is not None or node.args.get("over") != "OVER":
        raise _Rejected(f"Named windows ({node.sql(dialect='spark')}) are not supported; "
                        "write the window inline: OVER (PARTITION BY ... ORDER BY ...)")
    spec = W.WindowSpec(tuple(_convert(e) for e in node.args.get("partition_by") or []),
                        tuple(_sort_order(o) for o in (order.expressions if order else [])),
                        _frame(node.args.get("spec")))
    function = _convert(node.this)
    if isinstance(function, W.RankingCall) and not spec.order_by:
        raise _Rejected(
            f"Window function {function.name} requires the window to be ordered. You need to "
            f"add an ORDER BY clause. For example: SELECT {function.display_name()} OVER "
            "(PARTITION BY window_partition ORDER BY window_ordering) FROM table.",
            "WINDOW_FUNCTION_FRAME_NOT_ORDERED")
    try:
        return W.WindowExpression(function, spec)
    except (TypeError, ValueError) as err:
        raise _Rejected(str(err), "UNSUPPORTED_EXPR_FOR_WINDOW") from None


def _sort_order(node: exp.Expr) -> SortOrder:
    if not isinstance(node, exp.Ordered):
        return SortOrder(_convert(node), True)
    nulls_first = node.args.get("nulls_first")
    return SortOrder(_convert(node.this), not node.args.get("desc"),
                     bool(nulls_first) if nulls_first is not None else None)


def _frame(spec: exp.WindowSpec | None) -> Any:
    from unbounded.plan import window as W

    if spec is None:
        return None
    return W.WindowFrame(str(spec.args.get("kind") or "rows").lower(),
                         _frame_bound(spec.args.get("start"), spec.args.get("start_side")),
                         _frame_bound(spec.args.get("end"), spec.args.get("end_side")))


def _frame_bound(value: Any, side: Any) -> int | None:
    """``UNBOUNDED`` -> None, ``CURRENT ROW`` -> 0, ``n PRECEDING`` -> -n."""
    if isinstance(value, str):
        if value.upper() == "UNBOUNDED":
            return None
        if value.upper() == "CURRENT ROW":
            return 0
    offset = _constant(value) if isinstance(value, exp.Expr) else value
    if not isinstance(offset, int):
        raise _Rejected(f"A window frame bound must be an integer, got {value}")
    return -offset if str(side).upper() == "PRECEDING" else offset


@_convert.register
def _(node: exp.IgnoreNulls) -> Expression:
    inner = node.this
    takes_flag = ("first", "last", "nth_value")
    if isinstance(inner, exp.Anonymous) and str(inner.this).lower() in takes_flag:
        ignorenulls = exp.Boolean(this=True)
        return _call(str(inner.this).lower(), [*inner.expressions, ignorenulls])
    raise _Rejected(f"IGNORE NULLS is only supported on first(), last() and nth_value(), not "
                    f"{inner.sql(dialect='spark')}")


@_convert.register
def _(node: exp.RespectNulls) -> Expression:
    return _convert(node.this)


# SQL names of functions in ``unbounded.sql.functions`` that are not Spark SQL functions.
_PYTHON_ONLY = frozenset({"col", "column", "lit", "expr", "when", "asc", "desc",
                          "count_distinct", "sum_distinct", "udf", "pandas_udf", "call_udf",
                          "PandasUDFType"})
# Spark SQL spellings of a Python function under another name.
_SQL_ALIASES = {"substr": "substring", "std": "stddev"}
# Spark SQL defaults for parameters the Python function requires.
_SQL_DEFAULTS: dict[tuple[str, str], Any] = {
    ("substring", "len"): None, ("regexp_extract", "idx"): 1,
    ("lpad", "pad"): " ", ("rpad", "pad"): " ",
}
# Engine-internal function names that SQL must not reach.
_INTERNAL = frozenset({"typed_null", "cast_timestamp"})
# Aggregates where DISTINCT does not change the result.
_DISTINCT_NEUTRAL = frozenset({"min", "max", "collect_set", "approx_count_distinct"})


def _call(name: str, args: list[exp.Expr]) -> Expression:
    registered = registered_udf(name)  # temporary functions come first, as in Spark
    if registered is not None:
        return registered(*(Column(_convert(a)) for a in args)).expr
    special = _SPECIAL_CALLS.get(name)
    if special is not None:
        return special(args)
    return _builtin(name, args)


def _builtin(name: str, args: list[exp.Expr]) -> Expression:
    """A call of a built-in function (or aggregate) by its SQL name."""
    if any(isinstance(a, exp.Distinct) for a in args):
        return _distinct_aggregate(name, args)
    python_function = _python_function(name)
    if python_function is not None:
        return _bind(_SQL_ALIASES.get(name, name), python_function, args)
    scalar, aggregate = _engine_names()
    if name in scalar:
        return FunctionCall(name, tuple(_convert(a) for a in args))
    if name in aggregate:
        return AggregateCall(name, tuple(_convert(a) for a in args))
    raise _Rejected(
        f"Cannot resolve function `{name}`; supported functions are: "
        f"{', '.join(sorted(_sql_function_names()))}", "UNRESOLVED_ROUTINE")


def _python_function(name: str) -> Callable[..., Column] | None:
    target = _SQL_ALIASES.get(name, name)
    if target in _PYTHON_ONLY or target not in F.__all__:
        return None
    fn: Callable[..., Column] = getattr(F, target)
    return fn


@cache
def _engine_names() -> tuple[frozenset[str], frozenset[str]]:
    """Scalar and aggregate names the engine compiles (imported late: the engine imports
    ``unbounded.sql.types``, so a module-level import here could be circular)."""
    from unbounded.engine.aggregates import AGGREGATES
    from unbounded.engine.functions import function_table

    return frozenset(function_table()) - _INTERNAL, frozenset(AGGREGATES)


def _sql_function_names() -> set[str]:
    scalar, aggregate = _engine_names()
    python = {n for n in F.__all__ if n == n.lower() and n not in _PYTHON_ONLY}
    return python | scalar | aggregate | set(_SPECIAL_CALLS) | set(_SQL_ALIASES)


def _bind(name: str, fn: Callable[..., Column], args: list[exp.Expr]) -> Expression:
    """Call ``fn`` with SQL's positional ``args``: a parameter typed ``Any`` takes a column;
    any other (pattern, format, duration...) takes the literal's Python value."""
    values: list[Any] = []
    remaining = list(args)
    for param in inspect.signature(fn).parameters.values():
        if param.kind is inspect.Parameter.VAR_POSITIONAL:
            values.extend(Column(_convert(a)) for a in remaining)
            remaining = []
            break
        if remaining:
            values.append(_argument(name, param, remaining.pop(0)))
        elif (name, param.name) in _SQL_DEFAULTS:
            values.append(_SQL_DEFAULTS[(name, param.name)])
        elif param.default is inspect.Parameter.empty:
            raise _Rejected(f"{name}() needs the argument `{param.name}` "
                            f"(got {len(args)} arguments)", "WRONG_NUM_ARGS")
        else:
            values.append(param.default)
    if remaining:
        raise _Rejected(f"{name}() takes at most {len(args) - len(remaining)} arguments, "
                        f"got {len(args)}", "WRONG_NUM_ARGS")
    try:
        return fn(*values).expr
    except AnalysisException as err:  # e.g. a window duration that does not parse
        raise _Rejected(str(err), err.error_class) from None


_PY_TYPES: dict[str, tuple[type, ...]] = {
    "str": (str,), "int": (int,), "float": (int, float), "bool": (bool,),
    "None": (type(None),), "DataType": (DataType,), "dict[str, str]": (dict,),
}


def _argument(name: str, param: inspect.Parameter, node: exp.Expr) -> Any:
    if param.annotation in ("Any", Any) or isinstance(node, exp.Lambda):
        return Column(_convert(node))
    try:
        value = _constant(node)
    except _Rejected:
        raise _Rejected(f"The argument `{param.name}` of {name}() must be a literal, got "
                        f"{node.sql(dialect='spark')}", "NON_FOLDABLE_INPUT") from None
    allowed = [t.strip() for t in str(param.annotation).split("|")]
    kinds = tuple(k for t in allowed for k in _PY_TYPES.get(t, (object,)))
    if not isinstance(value, kinds) or (isinstance(value, bool) and "bool" not in allowed):
        raise _Rejected(f"The argument `{param.name}` of {name}() must be a literal of "
                        f"type {' or '.join(allowed)}, got {node.sql(dialect='spark')}",
                        "DATATYPE_MISMATCH")
    return value


def _constant(node: exp.Expr) -> Any:
    """The Python value of a constant argument (a string, number, interval or map)."""
    if _is_interval(node):
        return _interval_text(node)
    if isinstance(node, exp.Anonymous) and str(node.this).lower() == "map":
        items = [_constant(e) for e in node.expressions]
        return dict(zip(items[::2], items[1::2], strict=True))
    converted = _convert(node)
    if isinstance(converted, Literal) and converted.data_type is None:
        return converted.value
    raise _Rejected(f"Expected a literal, got {node.sql(dialect='spark')}")


def _distinct_aggregate(name: str, args: list[exp.Expr]) -> Expression:
    if len(args) != 1 or not isinstance(args[0], exp.Distinct):
        raise _Rejected(f"DISTINCT must be the first word inside {name}(...)")
    columns = [Column(_convert(e)) for e in args[0].expressions]
    if name == "count":
        return F.count_distinct(*columns).expr
    if name == "sum" and len(columns) == 1:
        return F.sum_distinct(columns[0]).expr
    if name in _DISTINCT_NEUTRAL and len(columns) == 1:
        return _call(name, list(args[0].expressions))
    raise _Rejected(f"{name}(DISTINCT ...) is not supported; DISTINCT works with count, sum, "
                    f"{', '.join(sorted(_DISTINCT_NEUTRAL))}")


def _log(args: list[exp.Expr]) -> Expression:
    if len(args) == 2:  # log(base, x)
        return FunctionCall("log", (_convert(args[0]), _convert(args[1])))
    return _bind("log", F.log, args)


def _power(args: list[exp.Expr]) -> Expression:
    if len(args) != 2:
        raise _Rejected(f"power() takes 2 arguments, got {len(args)}", "WRONG_NUM_ARGS")
    return BinaryOp("pow", _convert(args[0]), _convert(args[1]))


def _isnotnull(args: list[exp.Expr]) -> Expression:
    if len(args) != 1:
        raise _Rejected(f"isnotnull() takes 1 argument, got {len(args)}", "WRONG_NUM_ARGS")
    return UnaryOp("isnotnull", _convert(args[0]))


def _session_window(args: list[exp.Expr]) -> Expression:
    if len(args) != 2:
        raise _Rejected(f"session_window() takes 2 arguments, got {len(args)}",
                        "WRONG_NUM_ARGS")
    gap = args[1]
    constant_gap = isinstance(gap, exp.Interval) or (
        isinstance(gap, exp.Literal) and gap.is_string)
    gap_value = _constant(gap) if constant_gap else Column(_convert(gap))
    return F.session_window(Column(_convert(args[0])), gap_value).expr


def _position(args: list[exp.Expr]) -> Expression:
    """``position(substr IN str)`` (Spark names it ``locate(substr, str, 1)``), or the
    function call ``position(substr, str[, start])``."""
    if len(args) == 1 and isinstance(args[0], exp.In) and args[0].args.get("field"):
        substr, text = _convert(args[0].this), _convert(args[0].args["field"])
        return FunctionCall("locate", (substr, text, Literal(1)))
    return _bind("position", F.position, args)


def _named_struct(args: list[exp.Expr]) -> Expression:
    if len(args) % 2 == 0 and all(isinstance(a, exp.Literal) and a.is_string
                                  for a in args[::2]):
        return F.named_struct(*(Column(_convert(a)) for a in args)).expr
    if len(args) % 2:
        raise _Rejected("named_struct() takes name/value pairs", "WRONG_NUM_ARGS")
    names = tuple(_constant(a) for a in args[::2])
    if not all(isinstance(n, str) for n in names):
        raise _Rejected("The names given to named_struct() must be string literals",
                        "DATATYPE_MISMATCH")
    values = tuple(_convert(a) for a in args[1::2])
    return FunctionCall("named_struct", values, (("names", names),))


# Spark's grammar gives these a bare unit word first (``timestampdiff(HOUR, a, b)``).
_UNIT_ORDER = ("YEAR", "QUARTER", "MONTH", "WEEK", "DAY", "DAYOFYEAR", "HOUR", "MINUTE",
               "SECOND", "MILLISECOND", "MICROSECOND")
_DATETIME_UNITS = frozenset(_UNIT_ORDER)
_UNIT_CALLS = {"timestampadd": "timestampadd", "dateadd": "timestampadd",
               "date_add": "timestampadd", "timestampdiff": "timestampdiff",
               "datediff": "timestampdiff", "date_diff": "timestampdiff",
               "timediff": "timestampdiff"}


def _unit_call(name: str) -> Callable[[list[exp.Expr]], Expression]:
    """``name(unit, x, y)`` as Spark parses it: the unit a keyword, never a quoted
    string (INVALID_PARAMETER_VALUE.DATETIME_UNIT); with two arguments, the function
    of that name (``date_add(d, 1)``, ``datediff(end, start)``)."""
    def parse(args: list[exp.Expr]) -> Expression:
        if len(args) != 3:
            return _builtin(name, args)
        target, unit = _UNIT_CALLS[name], args[0]
        if isinstance(unit, exp.Literal) and unit.is_string:
            raise _Rejected(
                f"The value of parameter(s) `unit` in `{target}` is invalid: expects one of "
                f"the units without quotes {', '.join(_UNIT_ORDER)}, but got the string "
                f"literal '{unit.this}'.", "INVALID_PARAMETER_VALUE.DATETIME_UNIT")
        word = unit.name.upper() if isinstance(unit, exp.Column) and not unit.table else ""
        if word not in _DATETIME_UNITS:
            raise _Rejected(f"Cannot resolve routine `{name}`: its first argument must be "
                            f"a unit, one of {', '.join(_UNIT_ORDER)}", "UNRESOLVED_ROUTINE")
        rest = tuple(_convert(a) for a in args[1:])
        return FunctionCall(target, (Literal(word), *rest))
    return parse


_SPECIAL_CALLS: dict[str, Callable[[list[exp.Expr]], Expression]] = {
    "log": _log, "power": _power, "pow": _power, "isnotnull": _isnotnull,
    "session_window": _session_window, "named_struct": _named_struct, "position": _position,
    **{name: _unit_call(name) for name in _UNIT_CALLS},
}
