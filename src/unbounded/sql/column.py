"""``Column``: PySpark's column object, a thin wrapper over an immutable expression node."""

from __future__ import annotations

from typing import Any

from unbounded.plan.expressions import (
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
    Like,
    Literal,
    SortOrder,
    Star,
    UnaryOp,
)
from unbounded.sql.types import DataType, parse_data_type

__all__ = ["Column", "to_expr"]


def to_expr(value: Any) -> Expression:
    """A Column, an expression or a Python literal as an expression node."""
    if isinstance(value, Column):
        return value.expr
    if isinstance(value, Expression):
        return value
    return Literal(value)


def _to_column_expr(value: Any) -> Expression:
    """Like ``to_expr`` but a bare string names a column (PySpark's convention)."""
    if isinstance(value, str):
        if value == "*" or value.endswith(".*"):
            return Star(value[:-2] or None)
        return ColumnRef(value)
    return to_expr(value)


class Column:
    """A column expression; operators build new columns, nothing is evaluated here.

    >>> (Column(ColumnRef("a")) + 1).alias("b").expr.display_name()
    'b'
    """

    __slots__ = ("expr",)

    def __init__(self, expr: Expression) -> None:
        self.expr = expr

    # -- arithmetic and comparison ---------------------------------------------------
    def _bin(self, op: str, other: Any) -> Column:
        return Column(BinaryOp(op, self.expr, to_expr(other)))

    def _rbin(self, op: str, other: Any) -> Column:
        return Column(BinaryOp(op, to_expr(other), self.expr))

    def __add__(self, o: Any) -> Column: return self._bin("add", o)
    def __radd__(self, o: Any) -> Column: return self._rbin("add", o)
    def __sub__(self, o: Any) -> Column: return self._bin("sub", o)
    def __rsub__(self, o: Any) -> Column: return self._rbin("sub", o)
    def __mul__(self, o: Any) -> Column: return self._bin("mul", o)
    def __rmul__(self, o: Any) -> Column: return self._rbin("mul", o)
    def __truediv__(self, o: Any) -> Column: return self._bin("div", o)
    def __rtruediv__(self, o: Any) -> Column: return self._rbin("div", o)
    def __mod__(self, o: Any) -> Column: return self._bin("mod", o)
    def __rmod__(self, o: Any) -> Column: return self._rbin("mod", o)
    def __pow__(self, o: Any) -> Column: return self._bin("pow", o)
    def __rpow__(self, o: Any) -> Column: return self._rbin("pow", o)
    def __eq__(self, o: Any) -> Column: return self._bin("eq", o)  # type: ignore[override]
    def __ne__(self, o: Any) -> Column: return self._bin("ne", o)  # type: ignore[override]
    def __lt__(self, o: Any) -> Column: return self._bin("lt", o)
    def __le__(self, o: Any) -> Column: return self._bin("le", o)
    def __gt__(self, o: Any) -> Column: return self._bin("gt", o)
    def __ge__(self, o: Any) -> Column: return self._bin("ge", o)
    def __and__(self, o: Any) -> Column: return self._bin("and", o)
    def __rand__(self, o: Any) -> Column: return self._rbin("and", o)
    def __or__(self, o: Any) -> Column: return self._bin("or", o)
    def __ror__(self, o: Any) -> Column: return self._rbin("or", o)
    def __invert__(self) -> Column: return Column(UnaryOp("not", self.expr))
    def __neg__(self) -> Column: return Column(UnaryOp("neg", self.expr))

    def __hash__(self) -> int:
        return hash(self.expr)

    def __bool__(self) -> bool:
        raise ValueError(
            "Cannot convert column into bool: please use '&' for 'and', '|' for 'or', "
            "'~' for 'not' when building DataFrame boolean expressions."
        )

    def __getitem__(self, key: Any) -> Column:
        if isinstance(key, slice):
            return self.substr(key.start, key.stop)
        if isinstance(key, str):
            return self.getField(key)
        return Column(GetItem(self.expr, to_expr(key)))

    def __getattr__(self, name: str) -> Column:
        if name.startswith("__"):
            raise AttributeError(name)
        return self.getField(name)

    def __repr__(self) -> str:
        return f"Column<'{self.expr.display_name()}'>"

    # -- PySpark methods -------------------------------------------------------------
    def eqNullSafe(self, other: Any) -> Column:
        return self._bin("eq_null_safe", other)

    def bitwiseAND(self, other: Any) -> Column:
        return self._bin("bitand", other)

    def bitwiseOR(self, other: Any) -> Column:
        return self._bin("bitor", other)

    def bitwiseXOR(self, other: Any) -> Column:
        return self._bin("bitxor", other)

    def alias(self, *names: str, **kwargs: Any) -> Column:
        return Column(Alias(self.expr, names[0]))

    name = alias

    def cast(self, dataType: DataType | str) -> Column:
        target = parse_data_type(dataType) if isinstance(dataType, str) else dataType
        return Column(Cast(self.expr, target))

    astype = cast

    def try_cast(self, dataType: DataType | str) -> Column:
        """As ``cast``, but NULL where a value does not convert, even under ANSI mode."""
        target = parse_data_type(dataType) if isinstance(dataType, str) else dataType
        shown = (self.expr.display_name() if isinstance(self.expr, ColumnRef) else
                 f"TRY_CAST({self.expr.display_name()} AS {target.simpleString().upper()})")
        return Column(FunctionCall("try_cast", (self.expr,),
                                   (("type", target), ("display", shown))))

    def isNaN(self) -> Column:
        return Column(FunctionCall("isnan", (self.expr,)))

    def withField(self, fieldName: str, col: Column) -> Column:
        """This struct with field ``fieldName`` set to ``col`` (replaced or appended);
        ``a.b`` sets field ``b`` of struct field ``a``."""
        if not isinstance(col, Column):
            raise TypeError(f"[NOT_COLUMN] Argument `col` should be a Column, got "
                            f"{type(col).__name__}.")
        return self._update_fields("with", fieldName, col.expr)

    def dropFields(self, *fieldNames: str) -> Column:
        """This struct without the named fields (``a.b``: field ``b`` of struct field
        ``a``); a name it lacks is ignored, dropping every field is an error."""
        column = self
        for name in fieldNames:
            column = column._update_fields("drop", name, None)
        return column

    def _update_fields(self, kind: str, name: str, value: Expression | None) -> Column:
        """Chained updates fold into one ``update_fields`` call, named as Spark names it;
        each op is ``(kind, path)``, its value (for "with") the next argument."""
        base = self.expr
        ops: tuple[tuple[str, tuple[str, ...]], ...] = ()
        parts: tuple[str, ...] = ()
        values: tuple[Expression, ...] = ()
        if isinstance(base, FunctionCall) and base.name == "update_fields":
            ops, values, parts = base.param("ops"), base.args[1:], base.param("parts")
            base = base.args[0]
        path = tuple(name.split("."))
        ops = (*ops, (kind, path))
        parts = (*parts, _field_op_text(base.display_name(), kind, path, value))
        values = (*values, value) if value is not None else values
        display = f"update_fields({base.display_name()}, {', '.join(parts)})"
        return Column(FunctionCall("update_fields", (base, *values), (
            ("ops", ops), ("parts", parts), ("display", display))))

    def isNull(self) -> Column:
        return Column(UnaryOp("isnull", self.expr))

    def isNotNull(self) -> Column:
        return Column(UnaryOp("isnotnull", self.expr))

    def isin(self, *values: Any) -> Column:
        if len(values) == 1 and isinstance(values[0], (list, tuple, set)):
            values = tuple(values[0])
        return Column(In(self.expr, tuple(to_expr(v) for v in values)))

    def like(self, pattern: str) -> Column:
        return Column(Like(self.expr, pattern, "like"))

    def ilike(self, pattern: str) -> Column:
        return Column(Like(self.expr, pattern, "ilike"))

    def rlike(self, pattern: str) -> Column:
        return Column(Like(self.expr, pattern, "rlike"))

    def contains(self, other: Any) -> Column:
        return Column(FunctionCall("contains", (self.expr, to_expr(other))))

    def startswith(self, other: Any) -> Column:
        return Column(FunctionCall("startswith", (self.expr, to_expr(other))))

    def endswith(self, other: Any) -> Column:
        return Column(FunctionCall("endswith", (self.expr, to_expr(other))))

    def substr(self, startPos: int, length: int) -> Column:
        return Column(FunctionCall("substring", (self.expr,),
                                   (("pos", startPos), ("len", length))))

    def getField(self, name: str) -> Column:
        return Column(GetField(self.expr, name))

    def getItem(self, key: Any) -> Column:
        return Column(GetItem(self.expr, to_expr(key)))

    def between(self, lower: Any, upper: Any) -> Column:
        return Column(BinaryOp("and", (self >= lower).expr, (self <= upper).expr))

    def when(self, condition: Column, value: Any) -> Column:
        if not isinstance(self.expr, CaseWhen) or self.expr.otherwise is not None:
            raise ValueError("when() can only be applied on a Column built by functions.when()")
        branches = (*self.expr.branches, (condition.expr, to_expr(value)))
        return Column(CaseWhen(branches))

    def otherwise(self, value: Any) -> Column:
        if not isinstance(self.expr, CaseWhen) or self.expr.otherwise is not None:
            raise ValueError(
                "otherwise() can only be applied once on a Column built by functions.when()")
        return Column(CaseWhen(self.expr.branches, to_expr(value)))

    def asc(self) -> Column:
        return Column(SortOrder(self.expr, True))

    def desc(self) -> Column:
        return Column(SortOrder(self.expr, False))

    def asc_nulls_first(self) -> Column:
        return Column(SortOrder(self.expr, True, True))

    def asc_nulls_last(self) -> Column:
        return Column(SortOrder(self.expr, True, False))

    def desc_nulls_first(self) -> Column:
        return Column(SortOrder(self.expr, False, True))

    def desc_nulls_last(self) -> Column:
        return Column(SortOrder(self.expr, False, False))

    def over(self, window: Any = None) -> Column:
        """This aggregate or ranking function evaluated over ``window`` (a WindowSpec)."""
        from unbounded.plan.window import WindowExpression, WindowSpec

        spec = window.spec if window is not None else WindowSpec()
        try:
            return Column(WindowExpression(self.expr, spec))
        except (TypeError, ValueError) as err:
            from unbounded.errors import AnalysisException

            raise AnalysisException(str(err), error_class="UNSUPPORTED_EXPR_FOR_WINDOW") \
                from None


def _field_op_text(base: str, kind: str, path: tuple[str, ...],
                   value: Expression | None) -> str:
    """How Spark shows one field update: ``WithField(v)``, ``dropfield()``, or for a
    nested path ``WithField(update_fields(s.a, ...))``."""
    if len(path) > 1:
        inner = f"{base}.{path[0]}"
        text = _field_op_text(inner, kind, path[1:], value)
        return f"WithField(update_fields({inner}, {text}))"
    return "dropfield()" if value is None else f"WithField({value.display_name()})"


def column_of(value: Any) -> Column:
    """A Column from a Column or a column name."""
    return value if isinstance(value, Column) else Column(_to_column_expr(value))
