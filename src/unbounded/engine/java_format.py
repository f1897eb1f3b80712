"""Java's ``String.format`` for ``format_string``/``printf``: Python's ``%`` operator
differs in what a NULL, a boolean and a double print as, so each conversion is
rendered here with Java's rules.

>>> java_format("%s-%d|%5s|%-3s|%.2f%%", ["a", 7, None, True, 2.345])
'a-7| null|true|2.35%'
>>> java_format("%05.2f|%x|%,d", [None, 255, 1234567])
'   nu|ff|1,234,567'
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from decimal import ROUND_HALF_UP, Decimal, localcontext
from typing import Any

import numpy as np

from unbounded.engine.ansi import java_double
from unbounded.errors import SparkRuntimeException

__all__ = ["java_format"]

_SPEC = re.compile(r"%(?:(\d+)\$)?([-#+ 0,(]*)(\d+)?(?:\.(\d+))?([a-zA-Z%])")


def java_format(fmt: str, args: Sequence[Any], kinds: Sequence[str] = ()) -> str:
    """``String.format(fmt, args...)`` for the conversions Spark users write:
    s S d x X o f e E g b c n %. ``kinds`` names each argument's Java type where the
    value alone does not tell it: ``byte``/``short``/``int`` (``%x`` of a negative value
    is its two's complement in that width, as for ``long``), ``float`` (``%s`` prints
    the shortest float, not double, digits)."""
    position = 0

    def kind_of(index: int) -> str:
        return kinds[index] if index < len(kinds) else ""

    def render(match: re.Match[str]) -> str:
        nonlocal position
        index, flags, width, precision, kind = match.groups()
        if kind == "%":
            return _pad("%", flags, width)
        if kind == "n":
            return "\n"
        if index is not None:
            at = int(index) - 1
        else:
            if position >= len(args):
                raise _format_error(f"Format specifier '{match.group(0)}'")
            at, position = position, position + 1
        return _pad(_convert(args[at], kind, flags, precision, kind_of(at)), flags, width)

    return _SPEC.sub(render, fmt)


def _convert(value: Any, kind: str, flags: str, precision: str | None, java: str) -> str:
    if value is None:
        text = "null" if kind not in "bB" else "false"
        return text[: int(precision)] if precision is not None else text
    if kind in "sS":
        text = _java_string(value, java)
        text = text[: int(precision)] if precision is not None else text
        return text.upper() if kind == "S" else text
    if kind in "bB":
        return str(bool(value)).lower() if isinstance(value, bool) else "true"
    if kind == "c":
        return chr(int(value))
    if kind in "dxXo":
        return _integer(value, kind, flags, _BITS.get(java, 64))
    if kind in "feEgG" and isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("-Infinity" if value < 0 else "Infinity")
    digits = 6 if precision is None else int(precision)
    if kind == "f":
        return _fixed(value, flags, digits)
    if kind in "gG":
        return _general(value, flags, digits, kind)
    if kind in "eE":
        spec = "".join(f for f in flags if f in "+ ,") + f".{digits}{kind}"
        return format(float(value), spec)
    raise _format_error(f"Conversion '{kind}'")


def _fixed(value: Any, flags: str, digits: int) -> str:
    """``%f``: Java rounds the shortest decimal form of a double half-up (``%.2f`` of
    49.125 is 49.13; Python's rounding of the binary value gives 49.12)."""
    exact = value if isinstance(value, Decimal) else Decimal(repr(float(value)))
    with localcontext() as ctx:
        ctx.prec = 800  # room for a double's 308 integral digits
        rounded = exact.quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return format(rounded, "".join(f for f in flags if f in "+ ,") + f".{digits}f")


_BITS = {"byte": 8, "short": 16, "int": 32}


def _general(value: Any, flags: str, digits: int, kind: str) -> str:
    """Java's ``%g``: ``digits`` significant digits, plain between 1e-4 and 10^digits,
    else scientific; trailing zeros are kept (Python's ``g`` drops them)."""
    digits = digits or 1
    number = float(value)
    rounded = float(f"{number:.{digits - 1}e}")
    if rounded == 0 or 1e-4 <= abs(rounded) < 10 ** digits:
        exponent = 0 if rounded == 0 else math.floor(math.log10(abs(rounded)))
        return _fixed(value, flags, max(digits - 1 - exponent, 0))
    text = format(number, "".join(f for f in flags if f in "+ ,") + f".{digits - 1}e")
    return text.upper() if kind == "G" else text


def _integer(value: Any, kind: str, flags: str, bits: int) -> str:
    if isinstance(value, (float, bool)):
        raise _format_error(f"%{kind} applied to {type(value).__name__}")
    number = int(value)
    if kind != "d" and number < 0:  # Java prints the two's complement of its type
        number += 1 << bits
    spec = "".join(f for f in flags if f in "+ ,") if kind == "d" else ""
    return format(number, spec + {"d": "d", "x": "x", "X": "X", "o": "o"}[kind])


def _java_string(value: Any, java: str = "") -> str:
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float) and java == "float":
        return java_double(float(str(np.float32(value))))
    if isinstance(value, float):
        return java_double(value)
    return str(value)


def _pad(text: str, flags: str, width: str | None) -> str:
    if width is None:
        return text
    if "-" in flags:
        return text.ljust(int(width))
    if "0" in flags and text not in ("null",) and re.fullmatch(r"[-+ ]?[\d.,]+", text):
        sign = text[0] if text[0] in "-+ " else ""
        return sign + text[len(sign):].rjust(int(width) - len(sign), "0")
    return text.rjust(int(width))


def _format_error(what: str) -> SparkRuntimeException:
    return SparkRuntimeException(
        f"[FORMAT_STRING] {what} does not match the arguments of format_string.",
        error_class="FORMAT_STRING")
