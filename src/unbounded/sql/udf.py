"""Python UDFs: ``udf``, ``pandas_udf`` and ``spark.udf.register``, as PySpark's.

A ``UserDefinedFunction`` pickles its function with cloudpickle (PySpark does the same),
so the ``PythonUDF`` node a call builds holds bytes: a plan with a UDF stays immutable,
comparable and picklable for an executor in another process. Functions registered by
name are temporary functions of this process: SQL strings (``expr``, ``selectExpr``,
``filter``) are parsed without a session, so the registry is the process's.

>>> plus_one = udf(lambda x: x + 1, "int")
>>> plus_one("a").expr.display_name()
'<lambda>(a)'
"""

from __future__ import annotations

import collections.abc
import inspect
import threading
import typing
from collections.abc import Callable
from enum import IntEnum
from typing import Any

import cloudpickle

from unbounded.errors import AnalysisException
from unbounded.plan.expressions import PythonEvalType, PythonFunction, PythonUDF
from unbounded.sql.column import Column, column_of
from unbounded.sql.types import (
    DataType,
    StringType,
    StructType,
    parse_data_type,
    parse_ddl_schema,
)

__all__ = [
    "PandasUDFType",
    "UDFRegistration",
    "UserDefinedFunction",
    "pandas_udf",
    "python_function",
    "registered_udf",
    "udf",
]


class PandasUDFType(IntEnum):
    """PySpark's (deprecated) ``functionType`` values of ``pandas_udf``."""

    SCALAR = PythonEvalType.SQL_SCALAR_PANDAS_UDF
    SCALAR_ITER = PythonEvalType.SQL_SCALAR_PANDAS_ITER_UDF
    GROUPED_MAP = PythonEvalType.SQL_GROUPED_MAP_PANDAS_UDF
    GROUPED_AGG = PythonEvalType.SQL_GROUPED_AGG_PANDAS_UDF


def _function_name(f: Callable[..., Any]) -> str:
    """The name Spark shows for ``f``: its ``__name__``, else its class name."""
    name = getattr(f, "__name__", None)
    return name if isinstance(name, str) else type(f).__name__


def python_function(f: Callable[..., Any], eval_type: PythonEvalType,
                    name: str | None = None) -> PythonFunction:
    """``f`` as a plan holds it: pickled by cloudpickle (lambdas and closures too)."""
    return PythonFunction(name or _function_name(f), cloudpickle.dumps(f), eval_type)


def _as_type(value: DataType | str) -> DataType:
    """A DataType, or a DDL string: a type (``"int"``) or fields (``"n long, s string"``)."""
    if not isinstance(value, str):
        return value
    try:
        return parse_data_type(value)
    except AnalysisException:
        return parse_ddl_schema(value)


class UserDefinedFunction:
    """A Python function usable as a column function; calling it with columns (or
    column names) gives a Column, as PySpark's UDFs do."""

    def __init__(self, func: Callable[..., Any], returnType: DataType | str = "string",
                 name: str | None = None,
                 evalType: PythonEvalType = PythonEvalType.SQL_BATCHED_UDF,
                 deterministic: bool = True) -> None:
        if not callable(func):
            raise TypeError(f"[NOT_CALLABLE] Argument `func` should be a callable, got "
                            f"{type(func).__name__}.")
        self.func = func
        self.returnType = _as_type(returnType)
        self.evalType = PythonEvalType(evalType)
        self.deterministic = deterministic
        self._name = name or _function_name(func)
        self.__name__ = self._name
        self.__doc__ = getattr(func, "__doc__", None)
        self._pickled: bytes | None = None
        self._lock = threading.Lock()

    def _function(self) -> PythonFunction:
        with self._lock:
            if self._pickled is None:
                self._pickled = cloudpickle.dumps(self.func)
        return PythonFunction(self._name, self._pickled, self.evalType)

    def __call__(self, *cols: Any) -> Column:
        args = tuple(column_of(c).expr for c in cols)
        return Column(PythonUDF(self._function(), args, self.returnType, self.deterministic))

    def asNondeterministic(self) -> UserDefinedFunction:
        """Mark the UDF nondeterministic (PySpark changes and returns the same UDF): it is
        then called once per row, never once per distinct argument tuple."""
        self.deterministic = False
        return self

    def _renamed(self, name: str) -> UserDefinedFunction:
        return UserDefinedFunction(self.func, self.returnType, name, self.evalType,
                                   self.deterministic)

    def __repr__(self) -> str:
        return f"UserDefinedFunction({self._name}, {self.returnType!r}, {self.evalType.name})"


def udf(f: Callable[..., Any] | DataType | str | None = None,
        returnType: DataType | str = "string", *,
        useArrow: bool | None = None) -> Any:
    """A row UDF: ``udf(f, "int")``, ``@udf``, ``@udf("int")`` or
    ``@udf(returnType=IntegerType())``. It is called once per row, on batches of rows;
    a deterministic one (the default) may be called once per distinct argument tuple of
    a batch, as Spark allows ("duplicate invocations may be eliminated"), unless marked
    with ``asNondeterministic()``.
    ``useArrow=True`` marks PySpark's Arrow-optimised UDF; as in PySpark 4.3, results of
    both kinds convert through Arrow.

    >>> udf(lambda s: s.upper())("name").expr.display_name()
    '<lambda>(name)'
    """
    eval_type = PythonEvalType.SQL_ARROW_BATCHED_UDF if useArrow \
        else PythonEvalType.SQL_BATCHED_UDF
    if f is None or isinstance(f, (DataType, str)):
        chosen = returnType if f is None else f
        return lambda func: UserDefinedFunction(func, chosen, evalType=eval_type)
    return UserDefinedFunction(f, returnType, evalType=eval_type)


def pandas_udf(f: Any = None, returnType: DataType | str | None = None,
               functionType: int | None = None) -> Any:
    """A vectorised UDF that gets pandas Series per batch: Series -> Series,
    Iterator[Series] -> Iterator[Series], or Series -> scalar (a grouped aggregate for
    ``groupBy().agg()``), told apart by the type hints or ``functionType``."""
    if f is None or isinstance(f, (DataType, str)):
        chosen = returnType if f is None else f
        kind = functionType if functionType is not None or not isinstance(returnType, int) \
            else returnType
        return lambda func: _pandas_udf(func, chosen, kind)
    return _pandas_udf(f, returnType, functionType)


def _pandas_udf(f: Callable[..., Any], return_type: Any,
                function_type: int | None) -> UserDefinedFunction:
    if return_type is None or isinstance(return_type, int):
        raise TypeError("[CANNOT_BE_NONE] Argument `returnType` can not be None.")
    eval_type = PythonEvalType(function_type) if function_type is not None \
        else _eval_type_from_hints(f)
    grouped_map = eval_type is PythonEvalType.SQL_GROUPED_MAP_PANDAS_UDF
    if grouped_map and not isinstance(_as_type(return_type), StructType):
        raise TypeError("[INVALID_RETURN_TYPE_FOR_PANDAS_UDF] Grouped map pandas UDFs "
                            "need a StructType return type.")
    return UserDefinedFunction(f, return_type, evalType=eval_type)


def _eval_type_from_hints(f: Callable[..., Any]) -> PythonEvalType:
    """Spark 3's rule: ``Iterator[...]`` returned -> iterator UDF; a Series or DataFrame
    returned -> scalar; anything else returned from Series -> grouped aggregate."""
    returned = _return_hint(f)
    if returned is None:
        return PythonEvalType.SQL_SCALAR_PANDAS_UDF
    if isinstance(returned, str):
        if returned.replace("typing.", "").startswith(("Iterator", "Iterable")):
            return PythonEvalType.SQL_SCALAR_PANDAS_ITER_UDF
        pandas_result = returned.endswith(("Series", "DataFrame"))
    else:
        if typing.get_origin(returned) in (collections.abc.Iterator, collections.abc.Iterable):
            return PythonEvalType.SQL_SCALAR_PANDAS_ITER_UDF
        pandas_result = getattr(returned, "__module__", "").startswith("pandas")
    return PythonEvalType.SQL_SCALAR_PANDAS_UDF if pandas_result \
        else PythonEvalType.SQL_GROUPED_AGG_PANDAS_UDF


def _return_hint(f: Callable[..., Any]) -> Any:
    try:
        return typing.get_type_hints(f).get("return")
    except Exception:  # hints naming local classes: fall back to their text
        annotation = inspect.signature(f).return_annotation
        return None if annotation is inspect.Signature.empty else annotation


_registry: dict[str, UserDefinedFunction] = {}
_registry_lock = threading.Lock()


def registered_udf(name: str) -> UserDefinedFunction | None:
    """The function ``spark.udf.register`` stored under ``name`` (case-insensitive)."""
    with _registry_lock:
        return _registry.get(name.lower())


class UDFRegistration:
    """``spark.udf``: functions registered here are callable by name from SQL strings."""

    def register(self, name: str, f: Callable[..., Any] | UserDefinedFunction,
                 returnType: DataType | str | None = None) -> UserDefinedFunction:
        """Register ``f`` as ``name``; a plain function needs ``returnType`` (string by
        default), a UDF keeps its own and must not be given one."""
        if isinstance(f, UserDefinedFunction):
            if returnType is not None:
                raise TypeError("[CANNOT_SPECIFY_RETURN_TYPE_FOR_UDF] returnType can not be "
                                f"specified when `f` is a user-defined function, but got "
                                f"{returnType}.")
            if f.evalType is PythonEvalType.SQL_GROUPED_MAP_PANDAS_UDF:
                raise AnalysisException("[INVALID_UDF_EVAL_TYPE] Grouped map pandas UDFs "
                                        "cannot be registered; use applyInPandas.")
            registered = f._renamed(name)
        else:
            registered = UserDefinedFunction(f, returnType or StringType(), name)
        with _registry_lock:
            _registry[name.lower()] = registered
        return registered
