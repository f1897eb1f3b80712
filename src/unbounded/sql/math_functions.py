"""PySpark's math functions (``pyspark.sql.functions``), re-exported by
``unbounded.sql.functions``; each compiles through the engine builder of the same name
in ``unbounded/engine/math_functions.py``. Miscellaneous functions (``nvl2``, ``rand``,
``uuid``, ``assert_true``...) live here too.

Output columns are named as PySpark 4 names them, which is not always ``name(args)``:

>>> acos("x").expr.display_name(), pow("a", 2).expr.display_name()
('ACOS(x)', 'POWER(a, 2)')
>>> positive("i").expr.display_name(), bround("x").expr.display_name()
('(+ i)', 'bround(x, 0)')
"""

from __future__ import annotations

from typing import Any

from unbounded.plan.expressions import BinaryOp, FunctionCall, Literal, UnaryOp
from unbounded.sql.column import Column, column_of
from unbounded.sql.function_call import column_expr, function_call, unseeded

__all__ = [
    "acos",
    "acosh",
    "asin",
    "asinh",
    "assert_true",
    "atan",
    "atan2",
    "atanh",
    "bin",
    "bit_count",
    "bit_get",
    "bitwiseNOT",
    "bitwise_not",
    "bround",
    "cbrt",
    "conv",
    "cos",
    "cosh",
    "cot",
    "csc",
    "degrees",
    "e",
    "equal_null",
    "expm1",
    "factorial",
    "getbit",
    "hex",
    "hypot",
    "input_file_name",
    "isnotnull",
    "ln",
    "log1p",
    "log2",
    "log10",
    "monotonically_increasing_id",
    "nanvl",
    "negate",
    "negative",
    "nullifzero",
    "nvl2",
    "pi",
    "pmod",
    "positive",
    "pow",
    "power",
    "radians",
    "raise_error",
    "rand",
    "randn",
    "rint",
    "sec",
    "sha",
    "shiftLeft",
    "shiftRight",
    "shiftRightUnsigned",
    "shiftleft",
    "shiftright",
    "shiftrightunsigned",
    "sign",
    "signum",
    "sin",
    "sinh",
    "spark_partition_id",
    "tan",
    "tanh",
    "toDegrees",
    "toRadians",
    "try_add",
    "try_divide",
    "try_mod",
    "try_multiply",
    "try_subtract",
    "typeof",
    "unhex",
    "uuid",
    "width_bucket",
    "xxhash64",
    "zeroifnull",
]


def shown_call(name: str, *args: Any, shown: str | None = None,
               template: str | None = None) -> Column:
    """``name(args...)`` whose output column Spark names ``shown(args...)`` (``ACOS(x)``)
    or fills ``template`` with the arguments' names (``(+ {0})``); a string argument
    names a column, as everywhere in PySpark."""
    exprs = tuple(column_expr(a) for a in args)
    names = [e.display_name() for e in exprs]
    if template is not None:
        label = template.format(*names)
    elif shown is not None:
        label = f"{shown}({', '.join(names)})"
    else:
        return Column(FunctionCall(name, exprs))
    return Column(FunctionCall(name, exprs, (("display", label),)))


def _upper(name: str, *args: Any) -> Column:
    return shown_call(name, *args, shown=name.upper())


def _lit(value: Any) -> Any:
    """A Python number as a literal (PySpark's ``float`` arguments), else a column."""
    return Column(Literal(value)) if isinstance(value, (int, float)) else value


# ---- trigonometry, logarithms, roots -----------------------------------------------------
def acos(col: Any) -> Column: return _upper("acos", col)
def acosh(col: Any) -> Column: return _upper("acosh", col)
def asin(col: Any) -> Column: return _upper("asin", col)
def asinh(col: Any) -> Column: return _upper("asinh", col)
def atan(col: Any) -> Column: return _upper("atan", col)
def atanh(col: Any) -> Column: return _upper("atanh", col)
def cos(col: Any) -> Column: return _upper("cos", col)
def cosh(col: Any) -> Column: return _upper("cosh", col)
def sin(col: Any) -> Column: return _upper("sin", col)
def sinh(col: Any) -> Column: return _upper("sinh", col)
def tan(col: Any) -> Column: return _upper("tan", col)
def tanh(col: Any) -> Column: return _upper("tanh", col)
def cot(col: Any) -> Column: return _upper("cot", col)
def csc(col: Any) -> Column: return _upper("csc", col)
def sec(col: Any) -> Column: return _upper("sec", col)
def cbrt(col: Any) -> Column: return _upper("cbrt", col)
def degrees(col: Any) -> Column: return _upper("degrees", col)
def radians(col: Any) -> Column: return _upper("radians", col)
def log10(col: Any) -> Column: return _upper("log10", col)
def log2(col: Any) -> Column: return _upper("log2", col)
def log1p(col: Any) -> Column: return _upper("log1p", col)
def expm1(col: Any) -> Column: return _upper("expm1", col)
def signum(col: Any) -> Column: return _upper("signum", col)
def sign(col: Any) -> Column: return function_call("sign", col)
def rint(col: Any) -> Column: return function_call("rint", col)
def ln(col: Any) -> Column: return function_call("ln", col)
def e() -> Column: return _upper("e")
def pi() -> Column: return _upper("pi")


toDegrees = degrees
toRadians = radians


def atan2(col1: Any, col2: Any) -> Column:
    """The angle of the point (``col2``, ``col1``) in radians, as ``java.lang.Math.atan2``."""
    return _upper("atan2", _lit(col1), _lit(col2))


def hypot(col1: Any, col2: Any) -> Column:
    return _upper("hypot", _lit(col1), _lit(col2))


def pow(col1: Any, col2: Any) -> Column:
    """``col1`` to the power ``col2`` as a double (Spark's ``POWER``)."""
    return Column(BinaryOp("pow", column_expr(_lit(col1)), column_expr(_lit(col2))))


power = pow


def nanvl(col1: Any, col2: Any) -> Column:
    """``col1`` unless it is NaN, then ``col2`` (both doubles)."""
    return function_call("nanvl", col1, col2)


def bround(col: Any, scale: Any = None) -> Column:
    """Half-even ("banker's") rounding to ``scale`` decimal places (negative: tens...)."""
    return function_call("bround", col, Column(Literal(0 if scale is None else scale))
                         if not isinstance(scale, Column) else scale)


def pmod(dividend: Any, divisor: Any) -> Column:
    """The positive remainder of ``dividend / divisor``."""
    return function_call("pmod", _lit(dividend), _lit(divisor))


def factorial(col: Any) -> Column: return function_call("factorial", col)


# ---- signs and checked arithmetic ---------------------------------------------------------
def negative(col: Any) -> Column: return function_call("negative", col)
def positive(col: Any) -> Column: return shown_call("positive", col, template="(+ {0})")
def try_add(left: Any, right: Any) -> Column: return function_call("try_add", left, right)
def try_subtract(left: Any, right: Any) -> Column:
    return function_call("try_subtract", left, right)
def try_multiply(left: Any, right: Any) -> Column:
    return function_call("try_multiply", left, right)
def try_divide(left: Any, right: Any) -> Column:
    return function_call("try_divide", left, right)
def try_mod(left: Any, right: Any) -> Column: return function_call("try_mod", left, right)


negate = negative


def width_bucket(v: Any, min: Any, max: Any, numBucket: Any) -> Column:
    """The 1-based bucket of ``v`` among ``numBucket`` equal-width buckets of
    [``min``, ``max``): 0 below, ``numBucket + 1`` above."""
    return function_call("width_bucket", v, min, max, _lit(numBucket))


# ---- bits and radixes ----------------------------------------------------------------------
def _shift(name: str, col: Any, numBits: int) -> Column:
    return function_call(name, col, Column(Literal(numBits)))


def shiftleft(col: Any, numBits: int) -> Column:
    """``col << numBits`` with Java's wrap-around (int or bigint)."""
    return _shift("shiftleft", col, numBits)


def shiftright(col: Any, numBits: int) -> Column:
    """``col >> numBits``, sign-extending."""
    return _shift("shiftright", col, numBits)


def shiftrightunsigned(col: Any, numBits: int) -> Column:
    """``col >>> numBits``, filling with zeros."""
    return _shift("shiftrightunsigned", col, numBits)


shiftLeft = shiftleft
shiftRight = shiftright
shiftRightUnsigned = shiftrightunsigned


def bitwise_not(col: Any) -> Column:
    return Column(UnaryOp("bitnot", column_expr(col)))


bitwiseNOT = bitwise_not


def bit_count(col: Any) -> Column: return function_call("bit_count", col)


def bit_get(col: Any, pos: Any) -> Column:
    """Bit ``pos`` (0 is the lowest) of an integral value, as a tinyint."""
    return function_call("bit_get", col, _lit(pos))


def getbit(col: Any, pos: Any) -> Column:
    return function_call("getbit", col, _lit(pos))


def bin(col: Any) -> Column: return function_call("bin", col)
def hex(col: Any) -> Column: return function_call("hex", col)
def unhex(col: Any) -> Column: return function_call("unhex", col)


def conv(col: Any, fromBase: int, toBase: int) -> Column:
    """The number written in ``col`` in base ``fromBase``, written in base ``toBase``
    (negative: signed)."""
    return function_call("conv", col, Column(Literal(fromBase)), Column(Literal(toBase)))


# ---- miscellaneous: NULL handling, types, randomness, assertions, hashes -----------------
def nvl2(col1: Any, col2: Any, col3: Any) -> Column:
    """``col2`` where ``col1`` is not NULL, else ``col3``."""
    return function_call("nvl2", col1, col2, col3)


def equal_null(col1: Any, col2: Any) -> Column:
    """``=`` where NULL equals NULL (never NULL itself)."""
    return function_call("equal_null", col1, col2)


def isnotnull(col: Any) -> Column:
    return Column(UnaryOp("isnotnull", column_expr(col)))


def typeof(col: Any) -> Column:
    """The Spark SQL type name of ``col`` (``int``, ``string``, ``array<bigint>``...)."""
    return function_call("typeof", col)


def zeroifnull(col: Any) -> Column: return function_call("zeroifnull", col)
def nullifzero(col: Any) -> Column: return function_call("nullifzero", col)


def _seed(seed: int | None) -> Column:
    """A fixed seed: when none is given, the next of a sequence every process repeats, so
    a restarted job that builds its columns in the same order gets the same seeds and a
    re-run batch the same values (Spark draws a random one: a restart changes them)."""
    return Column(Literal(seed if seed is not None else unseeded()))


def rand(seed: int | None = None) -> Column:
    """Uniform doubles in [0, 1), the same for the same seed, partition and row."""
    return function_call("rand", _seed(seed))


def randn(seed: int | None = None) -> Column:
    """Standard normal doubles, the same for the same seed, partition and row."""
    return function_call("randn", _seed(seed))


def uuid(seed: Any = None) -> Column:
    """A version-4 UUID string per row, the same when a batch is re-run."""
    fixed = seed.expr.value if isinstance(seed, Column) and isinstance(seed.expr, Literal) \
        else seed
    chosen = fixed if isinstance(fixed, int) else unseeded()
    return Column(FunctionCall("uuid", (), (("seed", chosen), ("display", "uuid()"))))


def monotonically_increasing_id() -> Column:
    """Unique, increasing bigints: the partition index in the upper 31 bits, the row's
    position in its partition in the lower 33 (Spark's layout)."""
    return function_call("monotonically_increasing_id")


def spark_partition_id() -> Column:
    return shown_call("spark_partition_id", shown="SPARK_PARTITION_ID")


def input_file_name() -> Column:
    """The file the row was read from (a ``file:`` URI), or ""."""
    return function_call("input_file_name")


def assert_true(col: Any, errMsg: Any = None) -> Column:
    """NULL where ``col`` is true; raises USER_RAISED_EXCEPTION with ``errMsg`` else."""
    condition = column_expr(col)
    message = errMsg if errMsg is not None else f"'{condition.display_name()}' is not true!"
    return function_call("assert_true", col, _text(message))


def raise_error(errMsg: Any) -> Column:
    """Fails the query with USER_RAISED_EXCEPTION and ``errMsg``."""
    message = _text(errMsg)
    return shown_call("raise_error", message,
                      template="raise_error(USER_RAISED_EXCEPTION, map(errorMessage, {0}))")


def _text(value: Any) -> Any:
    return Column(Literal(value)) if isinstance(value, str) else value


def xxhash64(*cols: Any) -> Column:
    """Spark's 64-bit xxHash of the columns (seed 42), bit-identical."""
    return function_call("xxhash64", *cols)


def sha(col: Any) -> Column: return function_call("sha", col)



# ---- session facts, random numbers in a range, sort orders ----------------------------------
def current_catalog() -> Column: return function_call("current_catalog")


def current_database() -> Column:
    return shown_call("current_database", template="current_schema()")


def current_schema() -> Column: return function_call("current_schema")
def current_user() -> Column: return function_call("current_user")
def user() -> Column: return function_call("user")
def session_user() -> Column: return function_call("session_user")
def version() -> Column: return function_call("version")
def input_file_block_length() -> Column: return function_call("input_file_block_length")
def input_file_block_start() -> Column: return function_call("input_file_block_start")


def uniform(min: Any, max: Any, seed: Any = None) -> Column:
    """Random numbers in [``min``, ``max``): integers when both bounds are, fixed by seed,
    partition and row."""
    fixed = seed if seed is not None else unseeded()
    return function_call("uniform", _lit(min), _lit(max), _lit(fixed))


def ceiling(col: Any) -> Column: return function_call("ceiling", col)
def asc_nulls_first(col: Any) -> Column: return column_of(col).asc_nulls_first()
def asc_nulls_last(col: Any) -> Column: return column_of(col).asc_nulls_last()
def desc_nulls_first(col: Any) -> Column: return column_of(col).desc_nulls_first()
def desc_nulls_last(col: Any) -> Column: return column_of(col).desc_nulls_last()


__all__ += [
    "asc_nulls_first", "asc_nulls_last", "ceiling", "current_catalog", "current_database",
    "current_schema", "current_user", "desc_nulls_first", "desc_nulls_last",
    "input_file_block_length", "input_file_block_start", "session_user", "uniform", "user",
    "version",
]
