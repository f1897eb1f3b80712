"""Expression nodes: the immutable trees that ``Column`` objects wrap.

Nodes are frozen dataclasses, so a plan can be shared between threads, compared, and
shipped to another process. Each node knows the column name Spark would give it
(``display_name``); engines compile them elsewhere (``unbounded.engine``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

from unbounded.plan.types import DataType

__all__ = [
    "AggregateCall",
    "Alias",
    "BinaryOp",
    "CaseWhen",
    "Cast",
    "ColumnRef",
    "Expression",
    "FunctionCall",
    "GetField",
    "GetItem",
    "In",
    "LambdaFunction",
    "LambdaVariable",
    "Like",
    "Literal",
    "PythonEvalType",
    "PythonFunction",
    "PythonUDF",
    "SortOrder",
    "Star",
    "UnaryOp",
    "contains_node",
    "output_name",
    "walk",
]

_INFIX = {
    "add": "+", "sub": "-", "mul": "*", "div": "/", "mod": "%",
    "eq": "=", "ne": "!=", "lt": "<", "le": "<=", "gt": ">", "ge": ">=",
    "and": "AND", "or": "OR", "eq_null_safe": "<=>",
    "bitand": "&", "bitor": "|", "bitxor": "^", "concat_op": "||",
}


# Parameters that Spark shows in a function's column name, before and after the columns:
# ``substring(name, 1, 3)``, ``concat_ws(-, a, b)``, ``date_trunc(hour, ts)``.
_SHOWN_PARAMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "substring": ((), ("pos", "len")), "split": ((), ("pattern", "limit")),
    "round": ((), ("scale",)), "date_format": ((), ("format",)),
    "to_timestamp": ((), ("format",)), "to_date": ((), ("format",)),
    "get_json_object": ((), ("path",)), "regexp_replace": ((), ("pattern", "replacement")),
    "regexp_extract": ((), ("pattern", "idx")), "instr": ((), ("substr",)),
    "lpad": ((), ("len", "pad")), "rpad": ((), ("len", "pad")),
    "from_unixtime": ((), ("format",)), "unix_timestamp": ((), ("format",)),
    "concat_ws": (("sep",), ()), "date_trunc": (("unit",), ()),
}


class Expression:
    """Base of every expression node."""

    def children(self) -> tuple[Expression, ...]:
        return ()

    def display_name(self) -> str:
        raise NotImplementedError(type(self).__name__)


@dataclass(frozen=True)
class ColumnRef(Expression):
    """A column by name.

    ``a.b`` names column ``b`` of the input aliased ``a`` or, when no input is aliased
    ``a``, field ``b`` of struct column ``a`` (Spark tries the qualifier first).
    ``plan_id`` is set by ``df["x"]``/``df.x``: the reference then means the column of
    that DataFrame's output (the plan node with that id), whatever sits above it.
    ``ordinal`` pins the reference to one input column by position, for projections the
    API builds over inputs whose names repeat (``withColumn`` after a join).
    """

    name: str
    plan_id: str | None = field(default=None, repr=False)
    ordinal: int | None = field(default=None, repr=False)

    def display_name(self) -> str:
        if self.name.startswith("`") and self.name.endswith("`"):
            return self.name[1:-1]
        return self.name.split(".")[-1] if "." in self.name else self.name


@dataclass(frozen=True)
class Star(Expression):
    """``*``: every column of the input (optionally of one struct column)."""

    target: str | None = None

    def display_name(self) -> str:
        return "*"


@dataclass(frozen=True)
class Literal(Expression):
    value: Any
    data_type: DataType | None = None

    def display_name(self) -> str:
        if self.value is None:
            return "NULL"
        if isinstance(self.value, bool):
            return str(self.value).lower()
        return str(self.value)


@dataclass(frozen=True)
class Alias(Expression):
    child: Expression
    name: str

    def children(self) -> tuple[Expression, ...]:
        return (self.child,)

    def display_name(self) -> str:
        return self.name


@dataclass(frozen=True)
class BinaryOp(Expression):
    op: str
    left: Expression
    right: Expression

    def children(self) -> tuple[Expression, ...]:
        return (self.left, self.right)

    def display_name(self) -> str:
        if self.op == "pow":
            return f"POWER({self.left.display_name()}, {self.right.display_name()})"
        symbol = _INFIX.get(self.op, self.op)
        return f"({self.left.display_name()} {symbol} {self.right.display_name()})"


@dataclass(frozen=True)
class UnaryOp(Expression):
    op: str  # "not", "neg", "isnull", "isnotnull", "bitnot"
    child: Expression

    def children(self) -> tuple[Expression, ...]:
        return (self.child,)

    def display_name(self) -> str:
        inner = self.child.display_name()
        names = {"not": f"(NOT {inner})", "neg": f"(- {inner})",
                 "isnull": f"({inner} IS NULL)", "isnotnull": f"({inner} IS NOT NULL)",
                 "bitnot": f"~{inner}"}
        return names[self.op]


@dataclass(frozen=True)
class Cast(Expression):
    """``time_zone``: the session zone when the DataFrame was built (Spark fixes a
    time-zone-aware expression's zone at analysis); None reads the running query's."""

    child: Expression
    to: DataType
    time_zone: str | None = None

    def children(self) -> tuple[Expression, ...]:
        return (self.child,)

    def display_name(self) -> str:
        return f"CAST({self.child.display_name()} AS {self.to.simpleString().upper()})"


@dataclass(frozen=True)
class CaseWhen(Expression):
    branches: tuple[tuple[Expression, Expression], ...]
    otherwise: Expression | None = None

    def children(self) -> tuple[Expression, ...]:
        flat = [e for pair in self.branches for e in pair]
        return (*flat, self.otherwise) if self.otherwise is not None else tuple(flat)

    def display_name(self) -> str:
        parts = " ".join(
            f"WHEN {c.display_name()} THEN {v.display_name()}" for c, v in self.branches
        )
        tail = f" ELSE {self.otherwise.display_name()}" if self.otherwise is not None else ""
        return f"CASE {parts}{tail} END"


@dataclass(frozen=True)
class In(Expression):
    child: Expression
    values: tuple[Expression, ...]

    def children(self) -> tuple[Expression, ...]:
        return (self.child, *self.values)

    def display_name(self) -> str:
        vals = ", ".join(v.display_name() for v in self.values)
        return f"({self.child.display_name()} IN ({vals}))"


@dataclass(frozen=True)
class Like(Expression):
    child: Expression
    pattern: str
    kind: str = "like"  # "like", "ilike", "rlike"

    def children(self) -> tuple[Expression, ...]:
        return (self.child,)

    def display_name(self) -> str:
        return f"{self.child.display_name()} {self.kind.upper()} {self.pattern}"


@dataclass(frozen=True)
class GetField(Expression):
    child: Expression
    field_name: str

    def children(self) -> tuple[Expression, ...]:
        return (self.child,)

    def display_name(self) -> str:
        return f"{self.child.display_name()}.{self.field_name}"


@dataclass(frozen=True)
class GetItem(Expression):
    child: Expression
    key: Expression

    def children(self) -> tuple[Expression, ...]:
        return (self.child, self.key)

    def display_name(self) -> str:
        return f"{self.child.display_name()}[{self.key.display_name()}]"


@dataclass(frozen=True)
class FunctionCall(Expression):
    """A scalar function by name; ``params`` holds non-column arguments (formats, ...)."""

    name: str
    args: tuple[Expression, ...] = ()
    params: tuple[tuple[str, Any], ...] = field(default=())

    def children(self) -> tuple[Expression, ...]:
        return self.args

    def param(self, key: str, default: Any = None) -> Any:
        for k, v in self.params:
            if k == key:
                return v
        return default

    def display_name(self) -> str:
        if self.name == "window":
            return "window"
        if self.name == "session_window":
            return "session_window"
        if self.name == "current_timestamp":
            return "current_timestamp()"
        shown_as = self.param("display")  # a name Spark forms its own way (extract(x FROM t))
        if shown_as is not None:
            return str(shown_as)
        before, after = _SHOWN_PARAMS.get(self.name, ((), ()))
        shown = [*(self._param_text(p) for p in before), *(a.display_name() for a in self.args),
                 *(self._param_text(p) for p in after)]
        return f"{self.name}({', '.join(t for t in shown if t is not None)})"

    def _param_text(self, key: str) -> str | None:
        value = self.param(key)
        return None if value is None else Literal(value).display_name()


@dataclass(frozen=True)
class AggregateCall(Expression):
    """An aggregate function (count, sum, ...) evaluated per group."""

    name: str
    args: tuple[Expression, ...] = ()
    distinct: bool = False

    def children(self) -> tuple[Expression, ...]:
        return self.args

    def display_name(self) -> str:
        inner = ", ".join(a.display_name() for a in self.args) or "1"
        if self.name == "count" and self.args and isinstance(self.args[0], Star):
            inner = "1"
        # For these, ``distinct`` carries ignoreNulls, which Spark does not show.
        ignores_nulls = self.name in ("first", "last", "first_value", "last_value",
                                      "any_value")
        prefix = "DISTINCT " if self.distinct and not ignores_nulls else ""
        return f"{self.name}({prefix}{inner})"


@dataclass(frozen=True)
class SortOrder(Expression):
    child: Expression
    ascending: bool = True
    nulls_first: bool | None = None

    def children(self) -> tuple[Expression, ...]:
        return (self.child,)

    def display_name(self) -> str:
        return f"{self.child.display_name()} {'ASC' if self.ascending else 'DESC'}"


@dataclass(frozen=True)
class LambdaVariable(Expression):
    """A parameter of a lambda (``x`` in ``transform(xs, x -> x + 1)``), bound by the
    enclosing ``LambdaFunction``; Spark 4 shows every one as ``namedlambdavariable()``."""

    name: str

    def display_name(self) -> str:
        return "namedlambdavariable()"


@dataclass(frozen=True)
class LambdaFunction(Expression):
    """The function argument of a higher-order function (``transform``, ``filter``...):
    ``body`` over the ``LambdaVariable``s named in ``params`` and over input columns."""

    body: Expression
    params: tuple[str, ...]

    def __post_init__(self) -> None:
        if not self.params or len(set(self.params)) != len(self.params):
            raise ValueError(f"A lambda needs distinct parameter names, got {self.params}.")

    def children(self) -> tuple[Expression, ...]:
        return (self.body,)

    def display_name(self) -> str:
        shown = ", ".join("namedlambdavariable()" for _ in self.params)
        return f"lambdafunction({self.body.display_name()}, {shown})"


class PythonEvalType(IntEnum):
    """How Python code sees its input, with PySpark's ``PythonEvalType`` numbers."""

    SQL_BATCHED_UDF = 100
    SQL_ARROW_BATCHED_UDF = 101
    SQL_SCALAR_PANDAS_UDF = 200
    SQL_GROUPED_MAP_PANDAS_UDF = 201
    SQL_GROUPED_AGG_PANDAS_UDF = 202
    SQL_SCALAR_PANDAS_ITER_UDF = 204
    SQL_MAP_PANDAS_ITER_UDF = 205
    SQL_COGROUPED_MAP_PANDAS_UDF = 206
    SQL_MAP_ARROW_ITER_UDF = 207


@dataclass(frozen=True)
class PythonFunction:
    """User code in a plan: the function as cloudpickle bytes, so a plan holding it
    pickles for an executor in another process and compares by value."""

    name: str
    pickled: bytes = field(repr=False)
    eval_type: PythonEvalType


@dataclass(frozen=True)
class PythonUDF(Expression):
    """A call of a Python (or pandas) UDF on ``args``; Spark names its column
    ``name(args)``. ``deterministic=False`` comes from ``asNondeterministic()``."""

    function: PythonFunction
    args: tuple[Expression, ...]
    return_type: DataType
    deterministic: bool = True

    def children(self) -> tuple[Expression, ...]:
        return self.args

    @property
    def is_aggregate(self) -> bool:
        return self.function.eval_type is PythonEvalType.SQL_GROUPED_AGG_PANDAS_UDF

    def display_name(self) -> str:
        return f"{self.function.name}({', '.join(a.display_name() for a in self.args)})"


def walk(expr: Expression) -> Iterator[Expression]:
    """Every node of ``expr``, parents before children."""
    yield expr
    for child in expr.children():
        yield from walk(child)


def contains_node(expr: Expression, kind: type[Expression], name: str | None = None) -> bool:
    """Whether ``expr`` holds a node of ``kind`` (and, for calls, of function ``name``)."""
    for node in walk(expr):
        if isinstance(node, kind) and (name is None or getattr(node, "name", None) == name):
            return True
    return False


def output_name(expr: Expression) -> str:
    """The column name an expression gets in a projection."""
    return expr.display_name()
