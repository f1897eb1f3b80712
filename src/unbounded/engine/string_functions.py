"""Engine builders of PySpark's string functions (Polars expressions with Spark's
semantics), registered by name in ``engine.functions.FUNCTIONS`` when imported (which
``engine/functions.py`` does on the first name its own table lacks).

Where Polars has a kernel with Spark's meaning it is used; the rest (Java's
``String.format``, soundex, Levenshtein, URL codecs...) visit one batch's values in a
Python list comprehension, never one expression call per row. Positions are in
characters, 1-based, as in Spark (Polars' ``str.find`` counts bytes, so it is not used).
"""

from __future__ import annotations

import base64
import math
import re
from collections.abc import Callable
from decimal import ROUND_HALF_EVEN, Decimal
from typing import Any
from urllib.parse import quote_plus, unquote_plus, urlsplit

import polars as pl

from unbounded.engine.ansi import checked
from unbounded.engine.context import CompileContext
from unbounded.engine.expressions import dtypes_of, like_to_regex
from unbounded.engine.function_args import literal_arg, map_values
from unbounded.engine.functions import register
from unbounded.engine.java_format import java_format
from unbounded.engine.number_format import NumberFormat
from unbounded.errors import (
    AnalysisException,
    IllegalArgumentException,
    SparkRuntimeException,
)
from unbounded.plan.expressions import FunctionCall

__all__ = ["jaro_winkler", "map_rows", "soundex", "split_sentences"]

Builder = Callable[[FunctionCall, list[pl.Expr], CompileContext], pl.Expr]


def map_rows(args: list[pl.Expr], out: pl.DataType, fn: Callable[..., Any]) -> pl.Expr:
    """``fn(*values)`` for each row whose arguments are all non-NULL (else NULL): one
    Python call per batch over the zipped columns."""
    def run(series: pl.Series) -> pl.Series:
        columns = [series.struct.field(f"_{i}").to_list() for i in range(len(args))]
        values = [None if None in row else fn(*row) for row in zip(*columns, strict=True)]
        return pl.Series(series.name, values, dtype=out)

    packed = pl.struct([a.alias(f"_{i}") for i, a in enumerate(args)])
    return packed.map_batches(run, return_dtype=out, is_elementwise=True)


def _text(arg: pl.Expr, ctx: CompileContext) -> pl.Expr:
    """A string argument (Spark casts numbers and binaries to string)."""
    return arg if ctx.dtype_of(arg) == pl.String else arg.cast(pl.String)


def _rows(out: pl.DataType, fn: Callable[..., Any], *names: str) -> None:
    """Register ``names`` as ``fn`` over their arguments' values, row by row."""
    def build(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
        return map_rows(args, out, fn)

    register(*names)(build)


# ---- pattern matching ------------------------------------------------------------------
@register("like", "ilike")
def _like(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    pattern = str(literal_arg(call, 1, "pattern"))
    escape = str(literal_arg(call, 2, "escape character")) if len(call.args) > 2 else "\\"
    flags = "(?is)" if call.name.lower() == "ilike" else "(?s)"
    return _text(args[0], ctx).str.contains(flags + like_to_regex(pattern, escape))


@register("rlike", "regexp", "regexp_like")
def _rlike(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return _text(args[0], ctx).str.contains(args[1])


@register("regexp_count")
def _regexp_count(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    pattern = str(literal_arg(call, 1, "pattern"))
    return _text(args[0], ctx).str.count_matches(pattern).cast(pl.Int32)


@register("regexp_substr")
def _regexp_substr(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    pattern = str(literal_arg(call, 1, "pattern"))
    return _text(args[0], ctx).str.extract(pattern, 0)


@register("regexp_instr")
def _regexp_instr(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """1-based position of the first match, 0 when there is none."""
    pattern = re.compile(str(literal_arg(call, 1, "pattern")))

    def position(text: str) -> int:
        found = pattern.search(text)
        return 0 if found is None else found.start() + 1

    return map_values(_text(args[0], ctx), pl.Int32(), position)


@register("regexp_extract_all")
def _regexp_extract_all(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext
                        ) -> pl.Expr:
    """Group ``idx`` of every match; a group that did not take part gives ""."""
    pattern = re.compile(str(literal_arg(call, 1, "pattern")))
    idx = int(literal_arg(call, 2, "group index")) if len(call.args) > 2 else 1
    if not 0 <= idx <= pattern.groups:
        raise SparkRuntimeException(
            "[INVALID_PARAMETER_VALUE.REGEX_GROUP_INDEX] The value of parameter(s) `idx` in "
            f"`regexp_extract_all` is invalid: Expects group index between 0 and "
            f"{pattern.groups}, but got {idx}. SQLSTATE: 22023",
            error_class="INVALID_PARAMETER_VALUE")
    return map_values(_text(args[0], ctx), pl.List(pl.String),
                      lambda t: [m.group(idx) or "" for m in pattern.finditer(t)])


# ---- slicing and searching ---------------------------------------------------------------
def _substring_index(text: str, delim: str, count: int) -> str:
    if count == 0 or not delim:
        return ""
    parts = text.split(delim)
    return delim.join(parts[:count] if count > 0 else parts[count:])


_rows(pl.String(), _substring_index, "substring_index")


@register("left")
def _left(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    length = args[1].cast(pl.Int64)
    text = _text(args[0], ctx)
    return pl.when(length <= 0).then(pl.when(text.is_not_null()).then(pl.lit(""))) \
        .otherwise(text.str.slice(0, length))


@register("right")
def _right(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    length = args[1].cast(pl.Int64)
    text = _text(args[0], ctx)
    return pl.when(length <= 0).then(pl.when(text.is_not_null()).then(pl.lit(""))) \
        .otherwise(text.str.slice(-length))


def _locate(substr: str, text: str, pos: int) -> int:
    """1-based position of ``substr`` at or after ``pos``; 0 when absent or pos < 1."""
    if pos < 1:
        return 0
    return text.find(substr, pos - 1) + 1


@register("locate", "position")
def _locate_builder(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    pos = args[2] if len(args) > 2 else pl.lit(1)
    return map_rows([_text(args[0], ctx), _text(args[1], ctx), pos.cast(pl.Int64)],
                    pl.Int32(), _locate)


@register("instr")
def _instr(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """1-based character position of the first ``substr``, 0 when absent, NULL for NULL."""
    text, substr = _text(args[0], ctx), str(call.param("substr"))
    if not substr:
        return pl.when(text.is_not_null()).then(pl.lit(1, dtype=pl.Int32))
    parts = text.str.splitn(substr, 2)
    before = parts.struct.field("field_0").str.len_chars().cast(pl.Int32) + 1
    return pl.when(parts.struct.field("field_1").is_not_null()).then(before) \
        .when(text.is_not_null()).then(pl.lit(0, dtype=pl.Int32))


@register("lpad", "rpad")
def _pad(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """Spark's ``UTF8String.lpad``/``rpad``: the pad repeated to fill up to ``len``
    characters; a longer string (or any string, with an empty pad) is cut to ``len``."""
    text, length = _text(args[0], ctx), max(int(call.param("len")), 0)
    pad = str(call.param("pad", " "))
    if not pad:
        return text.str.slice(0, length)
    fill = pl.lit(pad * length).str.slice(0, length - text.str.len_chars())
    padded = pl.concat_str([fill, text] if call.name.lower() == "lpad" else [text, fill])
    return pl.when(text.str.len_chars() >= length).then(text.str.slice(0, length)) \
        .otherwise(padded)


def _initcap(text: str) -> str:
    """Spark 4 lower-cases, then title-cases the first letter after each space (only a
    space: '1e3' and 'a-b' stay one word; 'ß' becomes 'Ss', as ICU's title case)."""
    return " ".join(w[:1].title() + w[1:] for w in text.lower().split(" "))


@register("initcap")
def _initcap_builder(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext
                     ) -> pl.Expr:
    return map_values(_text(args[0], ctx), pl.String(), _initcap)


@register("translate")
def _translate(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """Each character of ``matching`` becomes the one at its place in ``replace``, or is
    dropped when ``replace`` is shorter; the first mapping of a character wins."""
    def translate(text: str, matching: str, replace: str) -> str:
        table: dict[int, int | None] = {}
        for i, ch in enumerate(matching):
            table.setdefault(ord(ch), ord(replace[i]) if i < len(replace) else None)
        return text.translate(table)

    return map_rows([_text(a, ctx) for a in args], pl.String(), translate)


@register("repeat")
def _repeat(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return map_rows([_text(args[0], ctx), args[1].cast(pl.Int64)], pl.String(),
                    lambda t, n: t * max(n, 0))


@register("overlay")
def _overlay(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """``src`` with ``len`` characters from ``pos`` replaced (len < 0: replace's length)."""
    def overlay(src: str, replace: str, pos: int, length: int) -> str:
        taken = len(replace) if length < 0 else length
        start = max(pos - 1, 0)
        return src[:start] + replace + src[start + taken:]

    length = args[3] if len(args) > 3 else pl.lit(-1)
    return map_rows([_text(args[0], ctx), _text(args[1], ctx), args[2].cast(pl.Int64),
                     length.cast(pl.Int64)], pl.String(), overlay)


@register("split_part")
def _split_part(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """Part ``partNum`` (1-based; negative counts from the end) of the string split on a
    literal delimiter, "" when out of range; part 0 raises INVALID_INDEX_OF_ZERO."""
    def part(text: str, delim: str, n: int) -> str:
        parts = text.split(delim) if delim else [text]
        index = n - 1 if n > 0 else len(parts) + n
        return parts[index] if 0 <= index < len(parts) else ""

    number = args[2].cast(pl.Int64)
    result = map_rows([_text(args[0], ctx), _text(args[1], ctx), number], pl.String(), part)

    def error(_: object) -> Exception:
        return SparkRuntimeException(
            "[INVALID_INDEX_OF_ZERO] The index 0 is invalid. An index shall be either < 0 or "
            "> 0 (the first element has index 1). SQLSTATE: 22003",
            error_class="INVALID_INDEX_OF_ZERO")

    return checked(result, args[0].is_not_null() & (number == 0), number, pl.String(), error)


@register("find_in_set")
def _find_in_set(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """1-based index of ``str`` in the comma-separated list; 0 if absent or if ``str``
    holds a comma."""
    def find(item: str, items: str) -> int:
        if "," in item:
            return 0
        parts = items.split(",")
        return parts.index(item) + 1 if item in parts else 0

    return map_rows([_text(a, ctx) for a in args], pl.Int32(), find)


@register("elt")
def _elt(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """The ``n``-th of the remaining arguments; out of range raises INVALID_ARRAY_INDEX
    under ANSI, else NULL."""
    n = args[0].cast(pl.Int64)
    choices = [_text(a, ctx) for a in args[1:]]
    chosen = pl.concat_list(choices).list.get(n - 1, null_on_oob=True)
    result = pl.when((n >= 1) & (n <= len(choices))).then(chosen)
    if not ctx.ansi:
        return result

    def error(index: object) -> Exception:
        return SparkRuntimeException(
            f"[INVALID_ARRAY_INDEX] The index {index} is out of bounds. The array has "
            f"{len(choices)} elements. Use the SQL function `get()` to tolerate accessing "
            "element at invalid index and return NULL instead. SQLSTATE: 22003",
            error_class="INVALID_ARRAY_INDEX")

    return checked(result, (n < 1) | (n > len(choices)), n, pl.String(), error)


# ---- trimming, lengths, characters -------------------------------------------------------
@register("btrim")
def _btrim(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    chars = args[1] if len(args) > 1 else pl.lit(" ")
    return _text(args[0], ctx).str.strip_chars(chars)


@register("octet_length")
def _octet_length(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    if ctx.dtype_of(args[0]) == pl.Binary:
        return args[0].bin.size().cast(pl.Int32)
    return _text(args[0], ctx).str.len_bytes().cast(pl.Int32)


@register("bit_length")
def _bit_length(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return _octet_length(call, args, ctx) * 8


@register("ascii")
def _ascii(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """The code point of the first character; 0 for ""."""
    return map_values(_text(args[0], ctx), pl.Int32(), lambda t: ord(t[0]) if t else 0)


@register("char", "chr")
def _chr(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """The character of code ``n % 256``; "" for a negative ``n``."""
    return map_values(args[0].cast(pl.Int64), pl.String(),
                      lambda n: "" if n < 0 else chr(n % 256))


@register("quote")
def _quote(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    escaped = _text(args[0], ctx).str.replace_all("\\", "\\\\", literal=True) \
        .str.replace_all("'", "\\'", literal=True)
    return pl.concat_str([pl.lit("'"), escaped, pl.lit("'")])


@register("mask")
def _mask(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """Upper-case letters, lower-case letters and digits replaced by their mask
    character (a NULL mask keeps them), other characters by ``otherChar`` if given."""
    defaults: list[str | None] = ["X", "x", "n", None]
    masks = [literal_arg(call, i + 1, "mask character") if i + 1 < len(call.args)
             else defaults[i] for i in range(4)]
    upper, lower, digit, other = masks

    def mask_char(ch: str) -> str:
        kind = upper if ch.isupper() else lower if ch.islower() else \
            digit if ch.isdigit() else other
        return ch if kind is None else kind

    return map_values(_text(args[0], ctx), pl.String(),
                      lambda t: "".join(mask_char(c) for c in t))


# ---- formatting --------------------------------------------------------------------------
@register("format_number")
def _format_number(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """``#,###.##`` with ``d`` decimals, rounded half-even from the exact binary value
    (Java's DecimalFormat); NULL for a negative ``d``."""
    digits = int(literal_arg(call, 1, "number of decimal places"))
    if digits < 0:
        return pl.lit(None, dtype=pl.String)
    unit = Decimal(1).scaleb(-digits)

    def fmt(value: Any) -> str:
        if isinstance(value, float) and not math.isfinite(value):
            return "NaN" if math.isnan(value) else ("-∞" if value < 0 else "∞")
        return f"{_decimal_format_digits(value, unit):,.{digits}f}"

    return map_values(args[0], pl.String(), fmt)


_JAVA_KINDS = {"Int8": "byte", "Int16": "short", "Int32": "int", "Float32": "float"}


def _decimal_format_digits(value: Any, unit: Decimal) -> Decimal:
    """Java's DecimalFormat: a double's shortest digits rounded half-even, a tie in them
    settled by the exact binary value (1e300 prints as 1 and zeros; 0.125 to two places
    is 0.12 while 0.135 is 0.14, as 0.135 is stored above the tie)."""
    from decimal import ROUND_DOWN, localcontext

    with localcontext() as ctx:
        ctx.prec = 800  # a double's integral digits (1e308) and its exact binary fraction
        if not isinstance(value, float):
            return Decimal(value).quantize(unit, rounding=ROUND_HALF_EVEN)
        short = Decimal(repr(value))
        tie = abs(short - short.quantize(unit, rounding=ROUND_DOWN)) == unit / 2
        return (Decimal(value) if tie else short).quantize(unit, rounding=ROUND_HALF_EVEN)


@register("format_string", "printf")
def _format_string(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """Java's ``String.format`` of the format and the other arguments (NULL prints as
    ``null``; a NULL format gives NULL)."""
    kinds = [_JAVA_KINDS.get(str(d), "") for d in dtypes_of(args[1:], ctx)]

    def run(series: pl.Series) -> pl.Series:
        columns = [series.struct.field(f"_{i}").to_list() for i in range(len(args))]
        values = [None if row[0] is None else java_format(row[0], row[1:], kinds)
                  for row in zip(*columns, strict=True)]
        return pl.Series(series.name, values, dtype=pl.String)

    packed = pl.struct([a.alias(f"_{i}") for i, a in enumerate(args)])
    return packed.map_batches(run, return_dtype=pl.String, is_elementwise=True)


# ---- phonetic and edit distance ----------------------------------------------------------
_SOUNDEX_CODES = "01230127022455012623017202"  # A..Z; 0: vowels and Y, 7: H and W


def soundex(text: str) -> str:
    """Spark's soundex: a string not starting with an ASCII letter comes back unchanged;
    vowels and other characters than ASCII letters separate equal codes, H and W do
    not."""
    if not text or not ("A" <= text[0] <= "Z" or "a" <= text[0] <= "z"):
        return text
    code, last = text[0].upper(), _SOUNDEX_CODES[ord(text[0].upper()) - 65]
    for ch in text[1:]:
        if not ("A" <= ch <= "Z" or "a" <= ch <= "z"):
            last = "0"  # a non-letter separates equal codes, as a vowel does
            continue
        digit = _SOUNDEX_CODES[ord(ch.upper()) - 65]
        if digit == "7":
            continue
        if digit not in ("0", last):
            code += digit
            if len(code) == 4:
                return code
        last = digit
    return code.ljust(4, "0")


@register("soundex")
def _soundex(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return map_values(_text(args[0], ctx), pl.String(), soundex)


def _levenshtein(left: str, right: str) -> int:
    previous = list(range(len(right) + 1))
    for i, a in enumerate(left, 1):
        current = [i]
        for j, b in enumerate(right, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1,
                               previous[j - 1] + (a != b)))
        previous = current
    return previous[-1]


@register("levenshtein")
def _levenshtein_builder(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext
                         ) -> pl.Expr:
    """Edit distance; with a threshold, -1 when the distance exceeds it."""
    limit = int(literal_arg(call, 2, "threshold")) if len(call.args) > 2 else None

    def distance(left: str, right: str) -> int:
        found = _levenshtein(left, right)
        return -1 if limit is not None and found > limit else found

    return map_rows([_text(args[0], ctx), _text(args[1], ctx)], pl.Int32(), distance)


# ---- binary codecs and URLs ----------------------------------------------------------------
@register("unbase64")
def _unbase64(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """Lenient, as Java's MIME decoder Spark uses: characters outside the alphabet are
    skipped and missing padding is tolerated; one dangling character raises."""
    def decode(text: str) -> bytes:
        kept = re.sub(r"[^A-Za-z0-9+/]", "", text)
        if len(kept) % 4 == 1:
            raise IllegalArgumentException(
                f"Last unit does not have enough valid bits (unbase64 of {text!r}).")
        return base64.b64decode(kept + "=" * (-len(kept) % 4))

    return map_values(_text(args[0], ctx), pl.Binary(), decode)


def _from_base64(text: str) -> bytes:
    kept = re.sub(r"[^A-Za-z0-9+/]", "", text)
    if len(kept) % 4 == 1:
        raise ValueError(text)
    return base64.b64decode(kept + "=" * (-len(kept) % 4))


def _from_hex_strict(text: str) -> bytes:
    return bytes.fromhex(text if len(text) % 2 == 0 else "0" + text)


_CHARSETS = {"US-ASCII": "ascii", "ISO-8859-1": "latin-1", "UTF-8": "utf-8",
             "UTF-16BE": "utf-16-be", "UTF-16LE": "utf-16-le", "UTF-16": "utf-16-be",
             "UTF-32": "utf-32-be"}


def _charset(call: FunctionCall) -> str:
    name = str(literal_arg(call, 1, "charset")).upper()
    if name not in _CHARSETS:
        raise AnalysisException(
            f"[INVALID_PARAMETER_VALUE.CHARSET] The value of parameter(s) `charset` in "
            f"`{call.name}` is invalid: expects one of the {', '.join(_CHARSETS)}, but got "
            f"{name}. SQLSTATE: 22023", error_class="INVALID_PARAMETER_VALUE")
    return name


def _coding_error(function: str, charset: str) -> SparkRuntimeException:
    return SparkRuntimeException(
        f"[MALFORMED_CHARACTER_CODING] Invalid value found when performing `{function}` "
        f"with {charset} SQLSTATE: 22000", error_class="MALFORMED_CHARACTER_CODING")


@register("encode")
def _encode(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """The string's bytes in ``charset`` (Java's UTF-16 writes a big-endian BOM)."""
    charset = _charset(call)

    def encode(text: str) -> bytes:
        try:
            data = text.encode(_CHARSETS[charset])
        except UnicodeEncodeError:
            raise _coding_error("encode", charset) from None
        return b"\xfe\xff" + data if charset == "UTF-16" and text else data

    return map_values(_text(args[0], ctx), pl.Binary(), encode)


@register("decode")
def _decode(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    charset = _charset(call)

    def decode(data: bytes) -> str:
        if charset == "UTF-16" and data[:2] in (b"\xfe\xff", b"\xff\xfe"):
            return data.decode("utf-16")
        try:
            return data.decode(_CHARSETS[charset])
        except UnicodeDecodeError:
            raise _coding_error("decode", charset) from None

    return map_values(args[0].cast(pl.Binary), pl.String(), decode)


@register("url_encode")
def _url_encode(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """``application/x-www-form-urlencoded`` as Java's URLEncoder (``*`` kept, ``~``
    escaped)."""
    return map_values(_text(args[0], ctx), pl.String(),
                      lambda t: quote_plus(t, safe="*").replace("~", "%7E"))


_BAD_ESCAPE = re.compile(r"%(?![0-9A-Fa-f]{2})")


@register("url_decode", "try_url_decode")
def _url_decode(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """``+`` is a space and ``%xx`` a byte; a bad escape raises CANNOT_DECODE_URL
    (NULL for ``try_url_decode``)."""
    lenient = call.name.lower() == "try_url_decode"

    def decode(text: str) -> str | None:
        if _BAD_ESCAPE.search(text):
            if lenient:
                return None
            raise IllegalArgumentException(
                f"[CANNOT_DECODE_URL] The provided URL cannot be decoded: {text}. Please "
                "ensure that the URL is properly formatted and try again. SQLSTATE: 22546",
                error_class="CANNOT_DECODE_URL")
        return unquote_plus(text, errors="strict")

    return map_values(_text(args[0], ctx), pl.String(), decode)


class _InvalidURL(ValueError):
    """A URL ``java.net.URI`` would not parse."""


def _url_part(url: str, part: str, key: str | None = None) -> str | None:
    """One part of a URL as ``java.net.URI`` splits it; NULL when absent."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 (a bad port shows only when read)
    except ValueError:
        raise _InvalidURL(url) from None
    netloc = parts.netloc or None
    file = parts.path + ("?" + parts.query if parts.query else "")
    found = {
        "HOST": parts.hostname, "PATH": parts.path, "QUERY": parts.query or None,
        "REF": parts.fragment or None, "PROTOCOL": parts.scheme or None, "FILE": file,
        "AUTHORITY": netloc, "USERINFO": netloc.rpartition("@")[0] or None
        if netloc and "@" in netloc else None,
    }.get(part)
    if key is None or part != "QUERY" or found is None:
        return found
    match = re.search(rf"(&|^){re.escape(key)}=([^&]*)", found)
    return None if match is None else match.group(2)


@register("parse_url", "try_parse_url")
def _parse_url(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """An invalid URL raises INVALID_URL under ANSI (``parse_url``), else gives NULL."""
    strict = ctx.ansi and call.name.lower() == "parse_url"

    def part(url: str, name: str, key: str | None = None) -> str | None:
        try:
            return _url_part(url, name, key)
        except _InvalidURL:
            if not strict:
                return None
            raise IllegalArgumentException(
                f"[INVALID_URL] The url is invalid: {url}. Use `try_parse_url` to tolerate "
                "invalid URL and return NULL instead. SQLSTATE: 22P02",
                error_class="INVALID_URL") from None

    return map_rows([_text(a, ctx) for a in args], pl.String(), part)


@register("replace")
def _replace(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """Every occurrence of ``search`` replaced (an empty ``search`` changes nothing)."""
    replacement = args[2] if len(args) > 2 else pl.lit("")
    return map_rows([_text(args[0], ctx), _text(args[1], ctx), _text(replacement, ctx)],
                    pl.String(), lambda t, old, new: t.replace(old, new) if old else t)


# ---- UTF-8 validity, binary conversions ------------------------------------------------------
def _utf8_of(arg: pl.Expr, ctx: CompileContext) -> pl.Expr:
    """Bytes to check: a string column is valid UTF-8 already, so it is read as bytes."""
    return arg if ctx.dtype_of(arg) == pl.Binary else _text(arg, ctx).cast(pl.Binary)


def _decodes(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@register("is_valid_utf8")
def _is_valid_utf8(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return map_values(_utf8_of(args[0], ctx), pl.Boolean(), _decodes)


@register("make_valid_utf8")
def _make_valid_utf8(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext
                     ) -> pl.Expr:
    """Invalid bytes become U+FFFD."""
    return map_values(_utf8_of(args[0], ctx), pl.String(),
                      lambda b: b.decode("utf-8", errors="replace"))


@register("validate_utf8", "try_validate_utf8")
def _validate_utf8(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """The string, or INVALID_UTF8_STRING (NULL for ``try_validate_utf8``)."""
    lenient = call.name.lower() == "try_validate_utf8"

    def validate(data: bytes) -> str | None:
        if _decodes(data):
            return data.decode("utf-8")
        if lenient:
            return None
        shown = re.sub(r"\\x([0-9a-f]{2})", lambda m: "\\x" + m.group(1).upper(),
                       data.decode("utf-8", errors="backslashreplace"))
        raise IllegalArgumentException(
            f"[INVALID_UTF8_STRING] Invalid UTF8 byte sequence found in string: {shown}. "
            "SQLSTATE: 22029", error_class="INVALID_UTF8_STRING")

    return map_values(_utf8_of(args[0], ctx), pl.String(), validate)


_BINARY_FORMATS: dict[str, Callable[[str], bytes]] = {
    "hex": _from_hex_strict, "utf-8": str.encode, "utf8": str.encode, "base64": _from_base64}


@register("to_binary", "try_to_binary")
def _to_binary(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """Bytes from hex (the default), UTF-8 or base64 text; malformed text raises
    CONVERSION_INVALID_INPUT (NULL for ``try_to_binary``)."""
    fmt = str(literal_arg(call, 1, "format")).lower() if len(call.args) > 1 else "hex"
    if fmt not in _BINARY_FORMATS:
        raise AnalysisException(
            f"[INVALID_PARAMETER_VALUE.BINARY_FORMAT] The value of parameter(s) `format` in "
            f"`{call.name}` is invalid: expects one of binary formats 'base64', 'hex', "
            f"'utf-8', but got '{fmt}'. SQLSTATE: 22023", error_class="INVALID_PARAMETER_VALUE")
    lenient = call.name.lower() == "try_to_binary"

    def convert(text: str) -> bytes | None:
        try:
            return _BINARY_FORMATS[fmt](text)
        except ValueError:
            if lenient:
                return None
            raise IllegalArgumentException(
                f"[CONVERSION_INVALID_INPUT] The value '{text}' ('{fmt.upper()}') cannot be "
                'converted to "BINARY" because it is malformed. Correct the value as per the '
                "syntax, or change its format. Use `try_to_binary` to tolerate malformed input "
                "and return NULL instead. SQLSTATE: 22018",
                error_class="CONVERSION_INVALID_INPUT") from None

    return map_values(_text(args[0], ctx), pl.Binary(), convert)


@register("to_base32")
def _to_base32(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return map_values(_utf8_of(args[0], ctx), pl.String(),
                      lambda b: base64.b32encode(b).decode())


@register("from_base32")
def _from_base32(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    def decode(text: str) -> bytes | None:
        try:
            return base64.b32decode(text + "=" * (-len(text) % 8), casefold=True)
        except ValueError:
            return None

    return map_values(_text(args[0], ctx), pl.Binary(), decode)


# ---- similarity and random strings -----------------------------------------------------------
def jaro_winkler(left: str, right: str) -> float:
    """Jaro-Winkler similarity as Spark computes it: the Jaro score plus the common-prefix
    bonus (up to 4 characters, scale 0.1), whatever the Jaro score."""
    if left == right:
        return 1.0
    shorter, longer = sorted((left, right), key=len)
    window = max(len(longer) // 2 - 1, 0)
    taken = [False] * len(longer)
    matched: list[str] = []
    for i, ch in enumerate(shorter):
        for j in range(max(i - window, 0), min(i + window + 1, len(longer))):
            if not taken[j] and longer[j] == ch:
                taken[j] = True
                matched.append(ch)
                break
    if not matched:
        return 0.0
    other = [longer[j] for j in range(len(longer)) if taken[j]]
    halves = sum(a != b for a, b in zip(matched, other, strict=True)) // 2
    m = len(matched)
    jaro = (m / len(left) + m / len(right) + (m - halves) / m) / 3
    prefix = next((k for k in range(min(4, len(shorter))) if left[k] != right[k]),
                  min(4, len(shorter)))
    return jaro + 0.1 * prefix * (1.0 - jaro)


_rows(pl.Float64(), jaro_winkler, "jaro_winkler_similarity")


# ---- number formats: to_number, to_char ------------------------------------------------------
def _number_format(call: FunctionCall) -> NumberFormat:
    return NumberFormat(str(literal_arg(call, 1, "format")))


@register("to_number", "try_to_number")
def _to_number(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """A decimal of the format's digits; a string that does not match raises
    INVALID_FORMAT.MISMATCH_INPUT (NULL for ``try_to_number``)."""
    fmt = _number_format(call)
    lenient = call.name.lower() == "try_to_number"

    def parse(text: str) -> Decimal | None:
        found = fmt.parse(text)
        if found is None and not lenient:
            raise IllegalArgumentException(
                f"[INVALID_FORMAT.MISMATCH_INPUT] The format is invalid: {fmt.text}. The input "
                f'"STRING" {text} does not match the format. SQLSTATE: 42601',
                error_class="INVALID_FORMAT")
        return found

    return map_values(_text(args[0], ctx), pl.Decimal(max(fmt.precision, 1), fmt.scale), parse)


_BINARY_TEXT: dict[str, Callable[[bytes], str]] = {
    "hex": lambda b: b.hex().upper(), "base64": lambda b: base64.b64encode(b).decode(),
    "utf-8": lambda b: b.decode("utf-8", errors="replace"),
    "utf8": lambda b: b.decode("utf-8", errors="replace")}


@register("to_char", "to_varchar")
def _to_char(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    """A number written in a Spark number format; bytes as ``hex``, ``base64`` or
    ``utf-8`` text."""
    dtype = ctx.dtype_of(args[0])
    if dtype == pl.Binary:
        kind = str(literal_arg(call, 1, "format")).strip().lower()
        if kind not in _BINARY_TEXT:
            raise AnalysisException(
                f"[INVALID_PARAMETER_VALUE.BINARY_FORMAT] The value of parameter(s) `format` "
                f"in `{call.name}` is invalid: expects one of binary formats 'base64', 'hex', "
                f"'utf-8', but got '{kind}'. SQLSTATE: 22023",
                error_class="INVALID_PARAMETER_VALUE")
        return map_values(args[0], pl.String(), _BINARY_TEXT[kind])
    if not (dtype.is_numeric()):
        raise AnalysisException(
            f"[DATATYPE_MISMATCH.UNEXPECTED_INPUT_TYPE] {call.name}() formats numbers and "
            f"binaries here; use date_format for dates and timestamps "
            f"({call.args[0].display_name()}).", error_class="DATATYPE_MISMATCH")
    fmt = _number_format(call)
    return map_values(args[0], pl.String(),
                      lambda v: fmt.format(v if isinstance(v, Decimal) else Decimal(repr(v))))


# ---- sentences ---------------------------------------------------------------------------------
_WORD = re.compile(r"[^\W_]+(?:(?:['.,]|_+)[^\W_]+)*")
_TERMINATOR = re.compile(r"[.!?]+['\")\]]*(\s+|$)")


def split_sentences(text: str) -> list[list[str]]:
    """Words per sentence as Java's BreakIterator finds them (Spark's ``sentences``):
    a sentence ends at ``!``, ``?`` or ``...``, or at ``.`` followed by a space and then
    not by a lower-case letter or a digit (``e.g. 3.5 apples`` is one sentence); words
    keep inner apostrophes, points and underscores (``don't``, ``e.g``, ``a_b``)."""
    sentences: list[list[str]] = []
    start = 0
    for end in _sentence_ends(text):
        words = [w for w in _WORD.findall(text[start:end]) if w[0].isalnum()]
        if words:
            sentences.append(words)
        start = end
    return sentences


def _sentence_ends(text: str) -> list[int]:
    ends = []
    for match in _TERMINATOR.finditer(text):
        rest, mark = text[match.end():], match.group()
        if "!" not in mark and "?" not in mark and "..." not in mark and rest and (
                rest[0].islower() or rest[0].isdigit()):
            continue
        ends.append(match.end())
    return [*ends, len(text)] if not ends or ends[-1] != len(text) else ends


@register("sentences")
def _sentences(call: FunctionCall, args: list[pl.Expr], ctx: CompileContext) -> pl.Expr:
    return map_values(_text(args[0], ctx), pl.List(pl.List(pl.String)), split_sentences)
