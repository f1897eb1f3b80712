"""Spark's implicit casts: which argument becomes which type before a function runs.

Spark's analyzer inserts casts where a function or operator meets a type it does not
take but can convert to (``ImplicitCastInputTypes``, ``AnsiTypeCoercion``): ``upper(1)``
is ``upper('1')``, ``sqrt('4')`` is ``sqrt(4.0)``, ``'2' > 1`` compares numbers. This
module holds only the rules, as types; ``engine/expressions.py`` (``implicit_cast``)
applies them with Spark's cast, so under ANSI mode a string that is not a number fails
with ``CAST_INVALID_INPUT`` as an explicit cast does, and gives NULL when ANSI is off.

The rules, checked against PySpark 4.3 (Spark 4's default, ANSI on):

- string functions cast numbers, booleans, dates and timestamps to string;
- numeric functions (``sqrt``, ``abs``, ``round``...) and ``sum``/``avg`` cast strings
  to double; date functions cast strings to date, time-of-day ones to timestamp;
- arithmetic and comparison between a string and a number: both sides become bigint
  when the number is integral, double otherwise (``'2' + 1`` is bigint 3); arithmetic
  between two strings is rejected (``'1' - '1'``);
- ``greatest``/``least`` take values of one type (numbers widen): a string among
  numbers is ``DATATYPE_MISMATCH.DATA_DIFF_TYPES`` in both modes;
- ``coalesce``/``nvl``/``nvl2``, ``array``, ``map`` keys and values and ``CASE``/``IF``
  values mixing strings with another type: the string is cast to it (findWiderCommonType,
  strings first): bigint for integral numbers, double for fractional ones, boolean, date,
  timestamp (``array('true', true)`` is ``array<boolean>``; ``array(1, 'a')`` fails at run
  time), a string checked only in the rows whose value is returned (``coalesce(1, 'x')``
  is 1: Spark evaluates lazily); types that do not meet (an int and a boolean, structs
  with other field names) are ``DATA_DIFF_TYPES`` in both modes;
- ``IN`` between a string and numbers, booleans, dates or timestamps: each comparison
  casts as ``=`` does.

With ANSI off (Spark's ``TypeCoercion``), a comparison casts the string to the number's
type (``IN`` compares as strings, so ``'1.0' IN (1)`` is false), and a string that does
not convert is NULL. Where the non-ANSI rules give other result types, the table below
(``LEGACY_*``, ``legacy_binary_types``, ``legacy_common_type``) says so and
``engine/legacy_coercion.py`` inserts the casts into a plan's expressions when the
DataFrame is built, as Spark's analyzer does, so the schema and the data agree in every
mode. Checked against PySpark 4.3 with ``spark.sql.ansi.enabled=false``:

- arithmetic (``+ - * / %``) with a string operand: the string becomes double, and so
  does the result (``'2' + 1`` is 3.0, ``'2.5' + 1`` 3.5, ``'2' + '2'`` 4.0, ``'x' + 1``
  NULL), where ANSI gives bigint 3 and rejects two strings;
- a string compared with a decimal: both sides double (``'2' = 2.0BD`` is true);
- ``coalesce``/``nvl``/``ifnull``/``nvl2``/``CASE``/``IF``/``array``/``map`` values mixing
  strings with numbers, dates or timestamps: string (``coalesce(1, 'a')`` is '1'), where
  ANSI gives bigint; a string among booleans (also in ``IN``) is ``DATA_DIFF_TYPES``;
- both modes: a string compared with a date or timestamp column is cast to that type.

>>> import polars as pl
>>> function_arg_types("upper", [pl.Int32])
[StringType()]
>>> binary_operand_types("add", pl.String, pl.Int32, ansi=True)
(LongType(), LongType())
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

from unbounded.engine.ansi import spark_type_name
from unbounded.engine.dtypes import polars_schema_to_spark, to_polars_dtype
from unbounded.errors import AnalysisException
from unbounded.plan import types as T

__all__ = [
    "COMMON_TYPE_FUNCTIONS",
    "LEGACY_COMMON_TYPE_FUNCTIONS",
    "STRING_AS_DOUBLE_AGGREGATES",
    "NoCommonType",
    "binary_operand_types",
    "check_same_type_inputs",
    "coerced_function",
    "common_value_type",
    "data_diff_types",
    "function_arg_types",
    "legacy_binary_types",
    "legacy_common_type",
    "legacy_mix_fails",
    "map_diff_types",
    "spark_type_name",
    "union_column_type",
]

_STRING = T.StringType()
_DOUBLE = T.DoubleType()
_LONG = T.LongType()

# function -> the argument positions Spark declares as strings.
_STRING_ARGS: dict[str, tuple[int, ...]] = {
    **dict.fromkeys(("upper", "ucase", "lower", "lcase", "initcap", "trim", "ltrim",
                     "rtrim", "reverse", "substring", "substr", "split", "regexp_replace",
                     "regexp_extract", "instr", "lpad", "rpad"), (0,)),
    **dict.fromkeys(("contains", "startswith", "endswith"), (0, 1)),
    # engine/string_functions.py (Spark's mask and soundex take strings only: no cast)
    **dict.fromkeys(("like", "ilike", "rlike", "regexp", "regexp_like", "regexp_count",
                     "regexp_substr", "regexp_instr", "regexp_extract_all", "substring_index",
                     "left", "right", "translate", "repeat", "btrim", "quote", "ascii",
                     "url_encode", "url_decode", "try_url_decode", "char_length",
                     "character_length", "to_binary", "try_to_binary"), (0,)),
    **dict.fromkeys(("overlay", "split_part", "find_in_set", "levenshtein",
                     "jaro_winkler_similarity", "parse_url", "try_parse_url", "locate",
                     "position"), (0, 1)),
    "replace": (0, 1, 2),
    # every argument: concat(1.5, 'x') is '1.5x', numbers printed as Java prints them
    **dict.fromkeys(("concat", "concat_ws"), tuple(range(256))),
}
_DOUBLE_ARGS: dict[str, tuple[int, ...]] = {
    **dict.fromkeys(("sqrt", "exp", "ln", "abs", "round", "floor", "ceil", "ceiling",
                     "isnan"), (0,)),
    "log": (0, 1),
    # engine/math_functions.py
    **dict.fromkeys(("acos", "asin", "atan", "acosh", "asinh", "atanh", "cos", "cosh", "sin",
                     "sinh", "tan", "tanh", "cot", "csc", "sec", "cbrt", "degrees", "radians",
                     "log10", "log2", "log1p", "expm1", "rint", "signum", "sign", "bround"),
                    (0,)),
    **dict.fromkeys(("atan2", "hypot", "nanvl"), (0, 1)),
}
_DATE_ARGS: dict[str, tuple[int, ...]] = {
    **dict.fromkeys(("year", "month", "dayofmonth", "day", "dayofyear", "weekofyear",
                     "quarter", "dayofweek", "date_add"), (0,)),
    "datediff": (0, 1),
}
_TIMESTAMP_ARGS: dict[str, tuple[int, ...]] = dict.fromkeys(
    ("hour", "minute", "second", "date_trunc"), (0,))
_RULES: tuple[tuple[dict[str, tuple[int, ...]], T.DataType], ...] = (
    (_STRING_ARGS, _STRING), (_DOUBLE_ARGS, _DOUBLE), (_DATE_ARGS, T.DateType()),
    (_TIMESTAMP_ARGS, T.TimestampType()),
)
_ARITHMETIC = frozenset({"add", "sub", "mul", "div", "mod", "pow"})
_COMPARISON = frozenset({"eq", "ne", "lt", "le", "gt", "ge", "eq_null_safe"})


def coerced_function(name: str) -> bool:
    """Whether any argument of the function ``name`` may need an implicit cast (so the
    caller asks for argument types only then)."""
    return any(name in table for table, _ in _RULES)


def function_arg_types(name: str, dtypes: Sequence[pl.DataType]) -> list[T.DataType | None]:
    """The type each argument of ``name`` is cast to, None where it stays as it is."""
    targets: list[T.DataType | None] = [None] * len(dtypes)
    for table, target in _RULES:
        for i in table.get(name, ()):
            if i < len(dtypes) and _converts(dtypes[i], target):
                targets[i] = target
    return targets


def _converts(dtype: pl.DataType, target: T.DataType) -> bool:
    """Whether Spark casts a ``dtype`` input implicitly to ``target``: to string from any
    atomic type, to anything else only from string."""
    if isinstance(target, T.StringType):
        return dtype.is_numeric() or dtype == pl.Boolean or dtype.is_temporal()
    return dtype == pl.String


# Functions whose arguments take one common type (coalesce('1', 2), greatest).
COMMON_TYPE_FUNCTIONS = frozenset({"coalesce", "nvl", "ifnull", "array"})
# Functions whose inputs must already share a type up to widening (no string promotion).
SAME_TYPE_FUNCTIONS = frozenset({"greatest", "least"})


def check_same_type_inputs(name: str, display: str, dtypes: Sequence[pl.DataType]) -> None:
    """Spark's analysis error when ``greatest``/``least`` mix kinds of values (a string
    and a number, a boolean and a date): Polars would compare them anyway."""
    if name not in SAME_TYPE_FUNCTIONS:
        return
    kinds = {_kind(d) for d in dtypes if d != pl.Null}
    if len(kinds) <= 1:
        return
    names = ", ".join(f'"{spark_type_name(d)}"' for d in dtypes)
    raise AnalysisException(
        f'[DATATYPE_MISMATCH.DATA_DIFF_TYPES] Cannot resolve "{display}" due to data type '
        f"mismatch: Input to `{name}` should all be the same type, but it's [{names}]. "
        "SQLSTATE: 42K09", error_class="DATATYPE_MISMATCH.DATA_DIFF_TYPES")


def data_diff_types(name: str, display: str, dtypes: Sequence[pl.DataType], *,
                    listed: bool = False) -> AnalysisException:
    """Spark's error for inputs that share no type: ``listed`` prints them as
    ``["A", "B"]`` (casewhen, in, greatest), else as ``("A" or "B")`` (coalesce, array)."""
    names = [f'"{spark_type_name(d)}"' for d in dtypes]
    shown = f"[{', '.join(names)}]" if listed else f"({' or '.join(names)})"
    return AnalysisException(
        f'[DATATYPE_MISMATCH.DATA_DIFF_TYPES] Cannot resolve "{display}" due to data type '
        f"mismatch: Input to `{name}` should all be the same type, but it's {shown}. "
        "SQLSTATE: 42K09", error_class="DATATYPE_MISMATCH.DATA_DIFF_TYPES")


def map_diff_types(part: str, display: str, dtypes: Sequence[pl.DataType]
                   ) -> AnalysisException:
    """Spark's error for ``map`` keys (``part`` KEY) or values (VALUE) of no one type."""
    names = ", ".join(f'"{spark_type_name(d)}"' for d in dtypes)
    return AnalysisException(
        f'[DATATYPE_MISMATCH.CREATE_MAP_{part}_DIFF_TYPES] Cannot resolve "{display}" due '
        f"to data type mismatch: The given {part.lower()}s of function `map` should all be "
        f"the same type, but they are [{names}]. SQLSTATE: 42K09",
        error_class=f"DATATYPE_MISMATCH.CREATE_MAP_{part}_DIFF_TYPES")


def _kind(dtype: pl.DataType) -> str:
    if dtype.is_numeric():
        return "number"
    if dtype.is_temporal() and not isinstance(dtype, pl.Duration):
        return "datetime"
    return str(dtype.base_type())


class NoCommonType(ValueError):
    """Values whose types Spark finds no common type for (an int and a boolean, a
    boolean and a date): the caller raises its DATA_DIFF_TYPES error."""


def common_value_type(dtypes: Sequence[pl.DataType]) -> T.DataType | None:
    """ANSI's common type of values that mix strings with other atomic types (Spark's
    findWiderCommonType, strings first): the string takes the other's type, bigint for
    an integral number, double for a fractional one, else boolean, date or timestamp
    (a date and a timestamp give timestamp). None where no string mixes in (Polars'
    supertype is Spark's) or a type is nested; raises NoCommonType when the types do not
    meet (``array(1, true)``, ``coalesce(bs, b, 1)``)."""
    kinds = [d for d in dtypes if d != pl.Null]
    if _structs_named_apart(kinds):
        raise NoCommonType(dtypes)
    if not kinds or not all(_atomic(d) for d in kinds):
        return None
    ordered = sorted(kinds, key=lambda d: d != pl.String)
    common: pl.DataType | None = ordered[0]
    for dtype in ordered[1:]:
        common = None if common is None else _wider(common, dtype)
    if common is None:
        raise NoCommonType(dtypes)
    if pl.String not in kinds or common == pl.String:
        return None
    return polars_schema_to_spark(pl.Schema({"c": common})).fields[0].dataType


def _structs_named_apart(kinds: list[pl.DataType]) -> bool:
    """Structs whose field names differ share no type (Spark matches them by name here,
    case-insensitively); Polars would merge their fields."""
    names = {tuple(f.name.lower() for f in d.fields) for d in kinds if isinstance(d, pl.Struct)}
    return len(names) > 1


def _atomic(dtype: pl.DataType) -> bool:
    return dtype.is_numeric() or dtype in (pl.String, pl.Boolean, pl.Date) \
        or isinstance(dtype, pl.Datetime)


def _wider(left: pl.DataType, right: pl.DataType) -> pl.DataType | None:
    """The wider of two atomic types, as Spark's ANSI rules find it; None: none."""
    if left == right:
        return left
    if left.is_numeric() and right.is_numeric():
        return pl.Int64() if left.is_integer() and right.is_integer() else pl.Float64()
    if left == pl.String:
        return _string_with(right)
    temporal = {left, right}
    if pl.Date in temporal and any(isinstance(d, pl.Datetime) for d in temporal):
        return left if isinstance(left, pl.Datetime) else right
    return None


def _string_with(other: pl.DataType) -> pl.DataType:
    """A string meeting ``other`` is cast to it (a number: bigint or double)."""
    if other.is_numeric():
        return pl.Int64() if other.is_integer() else pl.Float64()
    return other


# Aggregates whose string input Spark casts to double (sum('2') is 2.0).
STRING_AS_DOUBLE_AGGREGATES = frozenset({"sum", "avg", "mean", "stddev", "stddev_samp",
                                         "variance", "var_samp"})


def binary_operand_types(op: str, left: pl.DataType, right: pl.DataType, *, ansi: bool
                         ) -> tuple[T.DataType | None, T.DataType | None]:
    """The types both operands of ``op`` are cast to when one is a string and the other
    a number (or, compared, a date or timestamp); (None, None) when no cast applies."""
    if op not in _ARITHMETIC and op not in _COMPARISON:
        return None, None
    if op in _COMPARISON:
        temporal = _temporal_comparison(left, right)
        if temporal != (None, None):
            return temporal
    if left == pl.String and right.is_numeric():
        number, string_left = right, True
    elif right == pl.String and left.is_numeric():
        number, string_left = left, False
    else:
        return None, None
    target = _common_with_string(op, number, ansi)
    if target is None:
        return None, None
    return (target, target if _widens(number, target) else None) if string_left \
        else (target if _widens(number, target) else None, target)


def _common_with_string(op: str, number: pl.DataType, ansi: bool) -> T.DataType | None:
    if ansi or op in _ARITHMETIC:  # a result type: ANSI's in both modes (see above)
        return _LONG if number.is_integer() else _DOUBLE
    return _spark_numeric(number)


def _widens(number: pl.DataType, target: T.DataType) -> bool:
    """Whether the number side is cast as well (an int meeting a bigint string)."""
    return _spark_numeric(number) != target


def _spark_numeric(dtype: pl.DataType) -> T.DataType | None:
    table: list[tuple[type[pl.DataType], T.DataType]] = [
        (pl.Int8, T.ByteType()), (pl.Int16, T.ShortType()), (pl.Int32, T.IntegerType()),
        (pl.Int64, _LONG), (pl.Float32, T.FloatType()), (pl.Float64, _DOUBLE),
    ]
    return next((t for d, t in table if dtype == d), None)


def _temporal_comparison(left: pl.DataType, right: pl.DataType
                         ) -> tuple[T.DataType | None, T.DataType | None]:
    """A string compared with a date, a timestamp or a boolean is cast to it (both
    modes)."""
    def target(other: pl.DataType) -> T.DataType | None:
        if other == pl.Date:
            return T.DateType()
        if other == pl.Boolean:
            return T.BooleanType()
        return T.TimestampType() if isinstance(other, pl.Datetime) else None

    if left == pl.String:
        return target(right), None
    if right == pl.String:
        return None, target(left)
    return None, None


# ---- non-ANSI (spark.sql.ansi.enabled=false) where its result types differ ------------
# Functions whose values take one common type, which non-ANSI finds with string promotion.
LEGACY_COMMON_TYPE_FUNCTIONS = frozenset({"coalesce", "nvl", "ifnull", "array", "map"})
_LEGACY_ARITHMETIC = frozenset({"add", "sub", "mul", "div", "mod"})


def legacy_binary_types(op: str, left: pl.DataType, right: pl.DataType
                        ) -> tuple[T.DataType | None, T.DataType | None]:
    """Non-ANSI casts of ``op``'s operands where they differ from ANSI's: a string in
    arithmetic becomes double; a string compared with a decimal makes both double."""
    if op in _LEGACY_ARITHMETIC and pl.String in (left, right):
        other = right if left == pl.String else left
        if other == pl.String or other.is_numeric() or other == pl.Null:
            return (_DOUBLE if left == pl.String else None,
                    _DOUBLE if right == pl.String else None)
    if op in _COMPARISON and {left, right} & {pl.String} and \
            any(isinstance(d, pl.Decimal) for d in (left, right)):
        return _DOUBLE, _DOUBLE
    return None, None


def legacy_common_type(dtypes: Sequence[pl.DataType]) -> T.DataType | None:
    """Non-ANSI common type of values mixing strings with numbers, dates or timestamps:
    string (Spark's ``stringPromotion``); None when they do not mix so."""
    kinds = [d for d in dtypes if d != pl.Null]
    if pl.String not in kinds:
        return None
    others = [d for d in kinds if d != pl.String]
    if others and all(d.is_numeric() or d.is_temporal() for d in others):
        return _STRING
    return None


def legacy_mix_fails(dtypes: Sequence[pl.DataType]) -> bool:
    """Whether non-ANSI finds no common type where ANSI casts the string: a string
    among booleans (``array('true', true)``, ``b IN ('true')``)."""
    kinds = {d for d in dtypes if d != pl.Null}
    return pl.String in kinds and pl.Boolean in kinds


def union_column_type(dtypes: Sequence[pl.DataType], *, ansi: bool) -> pl.DataType | None:
    """The type one UNION column takes (Spark's WidenSetOperationTypes): numbers widen
    (an int and a double: double), a date and a timestamp give timestamp; a string among
    other atomic types takes their type under ANSI (bigint for integers, double for
    fractions, boolean, date, timestamp: ``'1' UNION 2`` is bigint) and makes the column a
    string without it. None: the first input's type (one type, nested types). Raises
    NoCommonType for types that do not meet (a boolean, date or timestamp with a number;
    without ANSI a string with a boolean): Spark's INCOMPATIBLE_COLUMN_TYPE."""
    kinds = [d for d in dtypes if d != pl.Null]
    if len(set(kinds)) <= 1 or not all(_atomic(d) for d in kinds):
        return None
    if pl.String in kinds:
        return _union_with_strings(dtypes, kinds, ansi)
    common = kinds[0]
    for dtype in kinds[1:]:
        wider = _numeric_supertype(common, dtype) if common.is_numeric() and \
            dtype.is_numeric() else _wider(common, dtype)
        if wider is None:
            raise NoCommonType(dtypes)
        common = wider
    return common


def _union_with_strings(dtypes: Sequence[pl.DataType], kinds: list[pl.DataType],
                        ansi: bool) -> pl.DataType:
    if ansi:
        common = common_value_type(dtypes)
        assert common is not None  # strings mixed with other atomic types
        return to_polars_dtype(common)
    if pl.Boolean in kinds:
        raise NoCommonType(dtypes)
    return pl.String()


def _numeric_supertype(left: pl.DataType, right: pl.DataType) -> pl.DataType:
    """Polars' supertype of two numbers, Spark's widening (int and bigint: bigint)."""
    frames = [pl.DataFrame(schema={"c": left}), pl.DataFrame(schema={"c": right})]
    return pl.concat(frames, how="vertical_relaxed").schema["c"]
