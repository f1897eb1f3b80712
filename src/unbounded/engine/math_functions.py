"""Engine builders of PySpark's math functions (Polars expressions with Spark's
semantics), registered by name in ``engine.functions.FUNCTIONS`` when imported (which
``engine/functions.py`` does on the first name its own table lacks).

Spark's conventions kept here: trigonometry and logarithms work in doubles; a logarithm
of a value outside its domain is NULL (not NaN or -inf); integral bit operations wrap as
Java's ``int``/``long`` do; ``try_*`` give NULL where the ANSI operator raises.
"""

from __future__ import annotations

import getpass
import math
import struct
import uuid
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal
from importlib import metadata
from typing import Any

import numpy as np
import polars as pl

from unbounded.engine.ansi import checked, division_checked, integral_bounds, spark_type_name
from unbounded.engine.context import CompileContext
from unbounded.engine.dtypes import polars_schema_to_spark
from unbounded.engine.expressions import compile_expr, dtypes_of, implicit_cast
from unbounded.engine.function_args import literal_arg, map_values
from unbounded.engine.functions import register
from unbounded.engine.xxhash64 import xxhash64_row
from unbounded.errors import (
    AnalysisException,
    ArithmeticException,
    IllegalArgumentException,
    SparkRuntimeException,
)
from unbounded.plan import types as T
from unbounded.plan.expressions import BinaryOp, FunctionCall, UnaryOp

__all__ = ["convert_base", "fdlibm_cbrt"]

Unary = Callable[[pl.Expr], pl.Expr]


def _doubles(name: str, fn: Unary) -> None:
    """Register ``name`` as ``fn`` of its argument cast to double."""
    def build(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
        return fn(args[0].cast(pl.Float64))

    register(name)(build)


def _positive_domain(fn: Unary, lowest: float = 0.0) -> Unary:
    """Spark's logarithms: NULL at or below ``lowest`` instead of -inf or NaN."""
    return lambda x: pl.when(x <= lowest).then(None).otherwise(fn(x))


def _words(x: float) -> tuple[int, int]:
    bits = struct.unpack("<Q", struct.pack("<d", x))[0]
    return bits >> 32, bits & 0xFFFFFFFF


def _double(high: int, low: int) -> float:
    value: float = struct.unpack("<d", struct.pack("<Q", (high << 32) | low))[0]
    return value


def fdlibm_cbrt(x: float) -> float:
    """The cube root exactly as the JVM's ``StrictMath.cbrt`` (fdlibm) rounds it; libm and
    numpy differ from it in the last bit for about one value in ten."""
    high, low = _words(x)
    sign, high = high & 0x80000000, high & 0x7FFFFFFF
    if high >= 0x7FF00000 or (high | low) == 0:
        return x + x if high >= 0x7FF00000 else x
    x = _double(high, low)
    if high < 0x00100000:  # subnormal
        t_high, t_low = _words(18014398509481984.0 * x)
        t = _double(t_high // 3 + 696219795, t_low)
    else:
        t = _double(high // 3 + 715094163, 0)
    r = t * t / x
    s = 5.42857142857142815906e-01 + r * t
    t *= 3.57142857142857150787e-01 + 1.60714285714285720630e+00 / (
        s + 1.41428571428571436819e+00 + -7.05306122448979611050e-01 / s)
    t = _double(_words(t)[0] + 1, 0)
    s = t * t
    r = x / s
    w = t + t
    r = (r - t) / (w + r)
    t = t + t * r
    t_high, t_low = _words(t)
    return _double(t_high | sign, t_low)


def _log10(value: float) -> float | None:
    """libm's log10, which rounds as the JVM's does (numpy's differs in the last bit)."""
    return None if value <= 0 else math.log10(value)


for _name, _fn in {
    "acos": pl.Expr.arccos, "asin": pl.Expr.arcsin, "atan": pl.Expr.arctan,
    "acosh": pl.Expr.arccosh, "asinh": pl.Expr.arcsinh, "atanh": pl.Expr.arctanh,
    "cos": pl.Expr.cos, "cosh": pl.Expr.cosh, "sin": pl.Expr.sin, "sinh": pl.Expr.sinh,
    "tan": pl.Expr.tan, "tanh": pl.Expr.tanh, "cot": lambda x: 1.0 / x.tan(),
    "csc": lambda x: 1.0 / x.sin(), "sec": lambda x: 1.0 / x.cos(),
    "cbrt": lambda x: map_values(x, pl.Float64(), fdlibm_cbrt),
    "degrees": pl.Expr.degrees, "radians": pl.Expr.radians,
    "expm1": lambda x: map_values(x, pl.Float64(), math.expm1),
    "log10": _positive_domain(lambda x: map_values(x, pl.Float64(), _log10)),
    "log2": _positive_domain(lambda x: x.log(2.0)),
    "log1p": _positive_domain(pl.Expr.log1p, -1.0),
    "rint": lambda x: x.round(0, mode="half_to_even"),
    "signum": pl.Expr.sign, "sign": pl.Expr.sign,
}.items():
    _doubles(_name, _fn)


@register("e")
def _e(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return pl.lit(math.e, dtype=pl.Float64)


@register("pi")
def _pi(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return pl.lit(math.pi, dtype=pl.Float64)


@register("atan2")
def _atan2(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return pl.arctan2(args[0].cast(pl.Float64), args[1].cast(pl.Float64))


@register("hypot")
def _hypot(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    x, y = (a.cast(pl.Float64) for a in args)
    return (x * x + y * y).sqrt()


@register("nanvl")
def _nanvl(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    x, y = (a.cast(pl.Float64) for a in args)
    return pl.when(x.is_nan()).then(y).otherwise(x)


@register("bround")
def _bround(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """Half-even rounding to ``scale`` digits; integers keep their type (a negative
    scale rounds them to tens, hundreds...)."""
    scale = int(literal_arg(call, 1, "scale") or 0) if len(call.args) > 1 else 0
    dtype = ctx.dtype_of(args[0])
    if isinstance(dtype, pl.Decimal):
        return _bround_decimal(args[0], dtype, scale)
    if not dtype.is_integer():
        rounded = args[0].cast(pl.Float64).round(scale, mode="half_to_even") if scale >= 0 \
            else _round_tens(args[0].cast(pl.Float64), -scale)
        # Spark rounds through BigDecimal: -0.0 comes back as 0.0.
        return pl.when(rounded == 0).then(0.0).otherwise(rounded)
    return args[0] if scale >= 0 else _round_tens(args[0], -scale).cast(dtype)


def _bround_decimal(value: pl.Expr, dtype: pl.Decimal, scale: int) -> pl.Expr:
    """A decimal stays a decimal: Spark's type keeps the integral digits plus one for a
    carry, with ``scale`` digits after the point (unchanged when it already has fewer)."""
    precision = dtype.precision or 38
    if scale >= dtype.scale:
        return value
    out = pl.Decimal(min(38, precision - dtype.scale + max(scale, 0) + 1), max(scale, 0))
    unit = Decimal(1).scaleb(-scale)
    return map_values(value, out, lambda v: v.quantize(unit, rounding=ROUND_HALF_EVEN))


def _round_tens(value: pl.Expr, digits: int) -> pl.Expr:
    unit = 10.0 ** digits
    return (value.cast(pl.Float64) / unit).round(0, mode="half_to_even") * unit


@register("pmod")
def _pmod(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """The non-negative remainder (for a positive divisor): ``%`` raises
    REMAINDER_BY_ZERO under ANSI, so this compiles it and then moves the sign."""
    divisor = args[1]
    remainder = compile_expr(BinaryOp("mod", call.args[0], call.args[1]), ctx)
    return pl.when(remainder < 0).then((remainder + divisor) % divisor).otherwise(remainder)


_FACTORIALS = {n: math.factorial(n) for n in range(21)}


@register("factorial")
def _factorial(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """``n!`` for 0 <= n <= 20 (the ones a bigint holds), else NULL."""
    return args[0].cast(pl.Int64).replace_strict(_FACTORIALS, default=None,
                                                 return_dtype=pl.Int64)


@register("negative")
def _negative(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return compile_expr(UnaryOp("neg", call.args[0]), ctx)


@register("positive")
def _positive(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return args[0]


# ---- try_*: the operator without ANSI's errors, NULL where it would raise --------------
def _try_arithmetic(op: str) -> None:
    def build(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
        lenient = ctx.with_schema(ctx.schema, ctx.columns)
        lenient.ansi = False
        result = compile_expr(BinaryOp(op, call.args[0], call.args[1]), lenient)
        if op not in ("add", "sub", "mul"):
            return result
        bounds = integral_bounds(ctx.dtype_of(result))
        if bounds is None:
            return result
        wide = _WIDE[op](*(a.cast(pl.Int128) for a in args))
        return pl.when((wide < bounds[0]) | (wide > bounds[1])).then(None).otherwise(result)

    register(f"try_{_TRY_NAMES[op]}")(build)


_TRY_NAMES = {"add": "add", "sub": "subtract", "mul": "multiply", "div": "divide",
              "mod": "mod"}
_WIDE: dict[str, Callable[[pl.Expr, pl.Expr], pl.Expr]] = {
    "add": lambda a, b: a + b, "sub": lambda a, b: a - b, "mul": lambda a, b: a * b}
for _op in _TRY_NAMES:
    _try_arithmetic(_op)


# ---- div: Spark's IntegralDivide ---------------------------------------------------------
_LONG_INPUTS = (pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt16, pl.UInt32)


@register("div")
def _integral_divide(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext
                     ) -> pl.Expr:
    """``a div b``: the quotient truncated toward zero as a BIGINT. Spark takes BIGINT
    (narrower integers widen) or DECIMAL: a double is DATATYPE_MISMATCH, a string is cast
    to BIGINT (ANSI) or to DOUBLE (non-ANSI, so rejected). A zero divisor is NULL, or
    DIVIDE_BY_ZERO under ANSI."""
    left_t, right_t = _div_operand_types(*dtypes_of(args, ctx), ansi=ctx.ansi)
    _check_div_operands(call, left_t, right_t)
    left, right = (_to_operand(a, t, ctx) for a, t in zip(args, (left_t, right_t),
                                                          strict=True))
    quotient = _truncated_quotient(left, right, left_t, right_t)
    result = pl.when(right == 0).then(None).otherwise(quotient)
    if not ctx.ansi:
        return result
    overflow = (left == _LONG_MIN) & (right == -1) if left_t == pl.Int64 else pl.lit(False)
    return checked(division_checked("div", left, right, result, pl.Int64()), overflow, left,
                   pl.Int64(), _divide_overflow)


_LONG_MIN = -(2**63)


def _divide_overflow(_: Any) -> Exception:
    return ArithmeticException(
        "[ARITHMETIC_OVERFLOW] Overflow in integral divide. Use 'try_divide' to tolerate "
        'overflow and return NULL instead. If necessary set "spark.sql.ansi.enabled" to '
        '"false" to bypass this error. SQLSTATE: 22003', error_class="ARITHMETIC_OVERFLOW")


def _div_operand_types(left: pl.DataType, right: pl.DataType, *, ansi: bool
                       ) -> tuple[pl.DataType, pl.DataType]:
    """Each operand's type after Spark's implicit casts for ``div``; a decimal meeting a
    double (or a string, which becomes one) is a double as well."""
    types = _div_operand(left, right, ansi), _div_operand(right, left, ansi)
    if any(isinstance(t, pl.Decimal) for t in types) and any(t.is_float() for t in types):
        return pl.Float64(), pl.Float64()
    return types


def _div_operand(dtype: pl.DataType, other: pl.DataType, ansi: bool) -> pl.DataType:
    if dtype in _LONG_INPUTS or (dtype == pl.Null and other == pl.Null):
        return pl.Int64()
    if dtype == pl.Null and other == pl.String and not ansi:
        return dtype  # VOID against the string's DOUBLE: Spark's DIFF_TYPES
    if dtype == pl.Null:  # takes the other side's type
        return _div_operand(other, pl.Null(), ansi)
    if dtype != pl.String:
        return dtype
    # Non-ANSI promotes a string in arithmetic to double; ANSI casts it to the other side.
    if not ansi or other.is_float() or isinstance(other, pl.Decimal):
        return pl.Float64()
    return pl.String() if other in (pl.String, pl.Null) else pl.Int64()


def _check_div_operands(call: FunctionCall, left: pl.DataType, right: pl.DataType) -> None:
    shown = (f'Cannot resolve "{call.display_name()}" due to data type mismatch: ')
    decimal = [isinstance(d, pl.Decimal) for d in (left, right)]
    if left != right and not (any(decimal) and all(d == pl.Int64 or isinstance(d, pl.Decimal)
                                                   for d in (left, right))):
        raise AnalysisException(
            f"[DATATYPE_MISMATCH.BINARY_OP_DIFF_TYPES] {shown}the left and right operands "
            "of the binary operator have incompatible types "
            f'("{spark_type_name(left)}" and "{spark_type_name(right)}"). SQLSTATE: 42K09',
            error_class="DATATYPE_MISMATCH.BINARY_OP_DIFF_TYPES")
    if left != pl.Int64 and not isinstance(left, pl.Decimal):
        raise AnalysisException(
            f"[DATATYPE_MISMATCH.BINARY_OP_WRONG_TYPE] {shown}the binary operator requires "
            'the input type ("BIGINT" or "DECIMAL" or "INTERVAL YEAR TO MONTH" or "INTERVAL '
            f'DAY TO SECOND"), not "{spark_type_name(left)}". SQLSTATE: 42K09',
            error_class="DATATYPE_MISMATCH.BINARY_OP_WRONG_TYPE")


def _to_operand(value: pl.Expr, dtype: pl.DataType, ctx: CompileContext) -> pl.Expr:
    if dtype == pl.Int64:
        return implicit_cast(value, T.LongType(), ctx)
    return value


def _truncated_quotient(left: pl.Expr, right: pl.Expr, left_t: pl.DataType,
                        right_t: pl.DataType) -> pl.Expr:
    """Java's ``/`` on longs (toward zero; Long.MIN_VALUE div -1 wraps); decimals divide
    exactly in Python's Decimal, as Spark's BigDecimal does, then truncate."""
    if left_t == pl.Int64 and right_t == pl.Int64:
        floored = left // right
        inexact = (floored * right != left) & ((left < 0) != (right < 0))
        return pl.when(right == -1).then(-left).when(inexact).then(floored + 1) \
            .otherwise(floored)
    pair = pl.struct(left.alias("a"), right.alias("b"))
    return pair.map_batches(_decimal_quotients, return_dtype=pl.Int64, is_elementwise=True)


def _decimal_quotients(pairs: pl.Series) -> pl.Series:
    out = [None if a is None or b is None or b == 0 else int(Decimal(a) / Decimal(b))
           for a, b in zip(pairs.struct.field("a").to_list(), pairs.struct.field("b").to_list(),
                           strict=True)]
    return pl.Series(pairs.name, out, dtype=pl.Int64)


@register("width_bucket")
def _width_bucket(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """Spark's equi-width histogram bucket: 0 below the range, ``n + 1`` above it, NULL
    for a bucket count that is not positive or an empty range."""
    value, low, high = (a.cast(pl.Float64) for a in args[:3])
    count = args[3].cast(pl.Int64)
    ascending = pl.when(value < low).then(0).when(value >= high).then(count + 1) \
        .otherwise(((value - low) / (high - low) * count).floor().cast(pl.Int64) + 1)
    descending = pl.when(value > low).then(0).when(value <= high).then(count + 1) \
        .otherwise(((low - value) / (low - high) * count).floor().cast(pl.Int64) + 1)
    invalid = (count <= 0) | (low == high) | value.is_nan() | low.is_nan() | high.is_nan()
    return pl.when(invalid).then(None).when(low < high).then(ascending) \
        .otherwise(descending).cast(pl.Int64)


# ---- integral bits: Java's int and long arithmetic, through numpy per batch -------------
def _java_integral(dtype: pl.DataType) -> pl.DataType:
    """Spark's bit functions take int or bigint (a byte or short widens to int)."""
    return pl.Int64() if dtype == pl.Int64 else pl.Int32()


def _on_numbers(arg: pl.Expr, dtype: pl.DataType, out: pl.DataType,
                fn: Callable[[np.ndarray], np.ndarray]) -> pl.Expr:
    """``fn`` over the batch's values as a numpy array; NULL rows stay NULL."""
    def run(series: pl.Series) -> pl.Series:
        values = fn(series.fill_null(0).to_numpy())
        return pl.Series(series.name, values, dtype=out).zip_with(series.is_not_null(),
                                                                  pl.Series([None], dtype=out))

    return arg.cast(dtype).map_batches(run, return_dtype=out, is_elementwise=True)


def _shift(kind: str) -> None:
    def build(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
        dtype = _java_integral(ctx.dtype_of(args[0]))
        bits = 64 if dtype == pl.Int64 else 32
        count = int(literal_arg(call, 1, "number of bits")) % bits
        signed, unsigned = (np.int64, np.uint64) if bits == 64 else (np.int32, np.uint32)

        def shift(values: Any) -> Any:
            if kind == "left":
                return values << signed(count)
            if kind == "right":
                return values >> signed(count)
            return (values.view(unsigned) >> unsigned(count)).view(signed)

        return _on_numbers(args[0], dtype, dtype, shift)

    register(f"shift{kind}")(build)


for _kind in ("left", "right", "rightunsigned"):
    _shift(_kind)


@register("bit_count")
def _bit_count(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """Set bits of the value as a bigint (Spark widens an int: ``bit_count(-4)`` is 62)."""
    if ctx.dtype_of(args[0]) == pl.Boolean:
        return args[0].cast(pl.Int32)
    return args[0].cast(pl.Int64).bitwise_count_ones().cast(pl.Int32)


@register("bit_get", "getbit")
def _bit_get(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """Bit ``pos`` of the value; a position outside the type's width raises Spark's
    INVALID_PARAMETER_VALUE.BIT_POSITION_RANGE."""
    dtype = _java_integral(ctx.dtype_of(args[0]))
    bits = 64 if dtype == pl.Int64 else 32
    pos = args[1].cast(pl.Int64)
    value = args[0].cast(pl.Int64)
    bit = (value // pl.lit(2, pl.Int64).pow(pos.clip(0, 62)) % 2).cast(pl.Int8)
    bit = pl.when(pos == 63).then((value < 0).cast(pl.Int8)).otherwise(bit)

    def error(got: object) -> Exception:
        return IllegalArgumentException(
            "[INVALID_PARAMETER_VALUE.BIT_POSITION_RANGE] The value of parameter(s) `pos` "
            f"in `{call.name}` is invalid: expects an integer value in [0, {bits}), but got "
            f"{got}. SQLSTATE: 22023", error_class="INVALID_PARAMETER_VALUE")

    bad = value.is_not_null() & ((pos < 0) | (pos >= bits))
    return checked(bit, bad, pos, pl.Int8(), error)


# ---- radix conversions -------------------------------------------------------------------
_MASK64 = (1 << 64) - 1


@register("bin")
def _bin(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """Java's ``Long.toBinaryString``: a negative value shows its 64-bit two's complement."""
    return map_values(args[0].cast(pl.Int64), pl.String(),
                       lambda v: format(int(v) & _MASK64, "b"))


@register("hex")
def _hex(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """Upper-case hex of a number (two's complement) or of a string's UTF-8 bytes."""
    dtype = ctx.dtype_of(args[0])
    if dtype == pl.Binary:
        return args[0].bin.encode("hex").str.to_uppercase()
    if dtype == pl.String:
        return args[0].cast(pl.Binary).bin.encode("hex").str.to_uppercase()
    return map_values(args[0].cast(pl.Int64), pl.String(),
                       lambda v: format(int(v) & _MASK64, "X"))


@register("unhex")
def _unhex(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """Bytes from hex digits (an odd count takes a leading 0); NULL if not hex."""
    return map_values(args[0].cast(pl.String), pl.Binary(), _from_hex)


def _from_hex(value: object) -> bytes | None:
    text = str(value)
    try:
        return bytes.fromhex(text if len(text) % 2 == 0 else "0" + text)
    except ValueError:
        return None


@register("conv")
def _conv(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """Spark's ``conv``: digits read up to the first invalid one as an unsigned 64-bit
    number; a negative target base prints signed values. Overflow raises under ANSI
    and saturates (all ones) without."""
    source = int(literal_arg(call, 1, "base"))
    target = int(literal_arg(call, 2, "base"))
    if not 2 <= source <= 36 or not 2 <= abs(target) <= 36:
        return pl.lit(None, dtype=pl.String)
    ansi = ctx.ansi
    return map_values(args[0].cast(pl.String), pl.String(),
                       lambda v: convert_base(str(v), source, target, ansi))


_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_JAVA_TRIMMED = "".join(chr(c) for c in range(33))  # String.trim: every char <= ' '


def convert_base(text: str, source: int, target: int, ansi: bool) -> str | None:
    """One value of ``conv`` (Spark's ``NumberConverter.convert``)."""
    text = text.strip(_JAVA_TRIMMED)
    negative = text.startswith("-")
    digits = text[1:] if negative else text
    if not text:
        return None
    value = 0
    for ch in digits:
        digit = int(ch, 36) if ch.isascii() and ch.isalnum() else 99
        if digit >= source:
            break
        value = value * source + digit
        if value > _MASK64:
            if ansi:
                raise ArithmeticException(
                    "[ARITHMETIC_OVERFLOW] Overflow in function conv(). If necessary set "
                    '"spark.sql.ansi.enabled" to "false" to bypass this error. SQLSTATE: 22003',
                    error_class="ARITHMETIC_OVERFLOW")
            value = _MASK64
            break
    signed = value - (1 << 64) if value >> 63 else value
    if negative and target > 0:
        signed = -1 if signed < 0 else -signed
    if target < 0 and signed < 0:
        signed, negative = -signed, True
    shown = _in_base(signed & _MASK64, abs(target))
    return "-" + shown if negative and target < 0 else shown


def _in_base(value: int, base: int) -> str:
    out = ""
    while True:
        value, digit = divmod(value, base)
        out = _DIGITS[digit] + out
        if not value:
            return out



# ---- miscellaneous -----------------------------------------------------------------------
@register("nvl2")
def _nvl2(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return pl.when(args[0].is_not_null()).then(args[1]).otherwise(args[2])


@register("equal_null")
def _equal_null(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    left, right = args
    if ctx.dtype_of(right) == pl.Null:
        return left.is_null()
    if ctx.dtype_of(left) == pl.Null:
        return right.is_null()
    return left.eq_missing(right)


@register("typeof")
def _typeof(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    dtype = ctx.dtype_of(args[0])
    spark = polars_schema_to_spark(pl.Schema({"v": dtype})).fields[0].dataType
    # As long as the argument (a bare literal would make a projection of it one row long).
    every_row = args[0].is_null() | args[0].is_not_null()
    return pl.when(every_row).then(pl.lit(spark.simpleString(), dtype=pl.String))


@register("zeroifnull")
def _zeroifnull(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    dtype = ctx.dtype_of(args[0])
    return pl.coalesce(args[0], pl.lit(0).cast(pl.Int32 if dtype == pl.Null else dtype))


@register("nullifzero")
def _nullifzero(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return pl.when(args[0] != 0).then(args[0])


# ---- per-partition values: the same for the same seed, partition and row ----------------
_GOLDEN = 0x9E3779B97F4A7C15


def _row_bits(key: int) -> pl.Expr:
    """64 random-looking bits per row (SplitMix64 of the row's place in the partition and
    ``key``): a re-run batch gets the same bits, as Spark's per-partition generators."""
    def mix(index: pl.Series) -> pl.Series:
        z = index.to_numpy().astype(np.uint64) * np.uint64(_GOLDEN) + np.uint64(key)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return pl.Series(index.name, z ^ (z >> np.uint64(31)), dtype=pl.UInt64)

    return pl.int_range(pl.len(), dtype=pl.UInt64).map_batches(
        mix, return_dtype=pl.UInt64, is_elementwise=True)


def _key(seed: int, ctx: CompileContext, stream: int = 0) -> int:
    return (seed * _GOLDEN + ctx.partition_index * 0xD1B54A32D192ED03
            + stream * 0x8CB92BA72F3D8DD7) & ((1 << 64) - 1)


def _uniform(seed: int, ctx: CompileContext, stream: int = 0) -> pl.Expr:
    return (_row_bits(_key(seed, ctx, stream)) // (1 << 11)).cast(pl.Float64) * 2.0 ** -53


@register("rand", "random")
def _rand(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return _uniform(int(literal_arg(call, 0, "seed") or 0), ctx)


@register("randn")
def _randn(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """Box-Muller over two uniform streams."""
    seed = int(literal_arg(call, 0, "seed") or 0)
    u1, u2 = 1.0 - _uniform(seed, ctx, 1), _uniform(seed, ctx, 2)
    return (-2.0 * u1.log()).sqrt() * (2.0 * math.pi * u2).cos()


@register("uuid")
def _uuid(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """Fixed by seed, partition, row and the batch's logged timestamp: a re-run batch
    gets the same UUIDs and the next batch new ones (``rand`` repeats per batch, as
    Spark's per-partition generators do; UUIDs are used as keys)."""
    seed = int(call.param("seed", 0)) ^ (ctx.batch_timestamp_us * _GOLDEN & ((1 << 63) - 1))
    high = _row_bits(_key(seed, ctx, 1)).alias("h")
    low = _row_bits(_key(seed, ctx, 2)).alias("l")

    def text(pairs: pl.Series) -> pl.Series:
        rows = zip(pairs.struct.field("h").to_list(), pairs.struct.field("l").to_list(),
                   strict=True)
        return pl.Series(pairs.name, [str(uuid.UUID(int=(h << 64) | lo, version=4))
                                      for h, lo in rows], dtype=pl.String)

    return pl.struct(high, low).map_batches(text, return_dtype=pl.String,
                                            is_elementwise=True)


@register("monotonically_increasing_id")
def _monotonically_increasing_id(call: FunctionCall, args: list[pl.Expr],
                                 ctx: CompileContext) -> pl.Expr:
    return pl.int_range(pl.len(), dtype=pl.Int64) + (ctx.partition_index << 33)


@register("spark_partition_id")
def _spark_partition_id(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext
                        ) -> pl.Expr:
    return pl.lit(ctx.partition_index, dtype=pl.Int32)


@register("input_file_name")
def _input_file_name(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext
                     ) -> pl.Expr:
    return pl.lit(ctx.input_file, dtype=pl.String)


# ---- assertions ----------------------------------------------------------------------------
def _user_error(message: object) -> Exception:
    return SparkRuntimeException(f"[USER_RAISED_EXCEPTION] {message} SQLSTATE: P0001",
                                 error_class="USER_RAISED_EXCEPTION")


@register("assert_true")
def _assert_true(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """NULL, or USER_RAISED_EXCEPTION at the first row whose condition is false or NULL."""
    condition = args[0].cast(pl.Boolean)
    failed = condition.is_null() | ~condition
    return checked(pl.lit(None), failed, args[1].cast(pl.String), pl.Null(), _user_error)


@register("raise_error")
def _raise_error(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    every_row = pl.int_range(pl.len()) >= 0
    return checked(pl.lit(None), every_row, args[0].cast(pl.String), pl.Null(), _user_error)


@register("xxhash64")
def _xxhash64(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """Spark's XXH64 (seed 42) of the row's values; see ``engine/xxhash64.py``."""
    kinds = [_hash_kind(d) for d in dtypes_of(args, ctx)]

    def run(series: pl.Series) -> pl.Series:
        columns = [series.struct.field(f"_{i}").to_list() for i in range(len(args))]
        hashes = [xxhash64_row(row, kinds) for row in zip(*columns, strict=True)]
        return pl.Series(series.name, hashes, dtype=pl.Int64)

    packed = pl.struct([a.alias(f"_{i}") for i, a in enumerate(args)])
    return packed.map_batches(run, return_dtype=pl.Int64, is_elementwise=True)


def _hash_kind(dtype: pl.DataType) -> str:
    if dtype in (pl.Int8, pl.Int16, pl.Int32, pl.Boolean):
        return "int"
    if isinstance(dtype, pl.Decimal):
        wide = "big" if (dtype.precision or 38) > 18 else ""
        return f"{wide}decimal:{dtype.scale}"
    return "float" if dtype == pl.Float32 else ""


# ---- session facts -------------------------------------------------------------------------
def _constant(value: Callable[[], object], dtype: pl.DataType, *names: str) -> None:
    def build(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
        return pl.lit(value(), dtype=dtype)

    register(*names)(build)


_constant(lambda: "spark_catalog", pl.String(), "current_catalog")
_constant(lambda: "default", pl.String(), "current_database", "current_schema")
_constant(getpass.getuser, pl.String(), "current_user", "user", "session_user")
_constant(lambda: metadata.version("unbounded"), pl.String(), "version")
_constant(lambda: -1, pl.Int64(), "input_file_block_length", "input_file_block_start")


@register("uniform")
def _uniform_range(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """``min + u * (max - min)``; floored to an integer when both bounds are integers."""
    low, high = literal_arg(call, 0, "minimum"), literal_arg(call, 1, "maximum")
    seed = int(literal_arg(call, 2, "seed"))
    value: pl.Expr = low + _uniform(seed, ctx) * (high - low)
    if isinstance(low, int) and isinstance(high, int):
        return value.floor().cast(pl.Int64 if max(abs(low), abs(high)) >> 31 else pl.Int32)
    return value


@register("randstr")
def _randstr(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """``length`` characters of [0-9a-zA-Z] per row, drawn from the row's random bits."""
    length = int(literal_arg(call, 0, "length"))
    seed = int(literal_arg(call, 1, "seed"))
    streams = [_row_bits(_key(seed, ctx, 10 + k)).alias(f"c{k}") for k in range(length)]
    if not streams:
        return pl.repeat(pl.lit(""), pl.len())
    chars = [pl.lit(_ALPHANUMERIC).str.slice((s % len(_ALPHANUMERIC)).cast(pl.Int64), 1)
             for s in streams]
    return pl.concat_str(chars)


_ALPHANUMERIC = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
