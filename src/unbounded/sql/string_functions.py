"""PySpark's string functions (``pyspark.sql.functions``), re-exported by
``unbounded.sql.functions``; each compiles through the engine builder of the same name
in ``unbounded/engine/string_functions.py``.

Arguments PySpark types as ``str``/``int`` (a delimiter, a count) are literals; those it
types as columns may be columns. Output columns are named as PySpark names them:

>>> like("s", lit("H%")).expr.display_name(), rlike("s", lit("l+")).expr.display_name()
('s LIKE H%', 'RLIKE(s, l+)')
>>> locate("l", "s").expr.display_name(), mask("s").expr.display_name()
('locate(l, s, 1)', 'mask(s, X, x, n, NULL)')
"""

from __future__ import annotations

from typing import Any

from unbounded.errors import AnalysisException
from unbounded.plan.expressions import FunctionCall, Literal
from unbounded.sql.column import Column
from unbounded.sql.function_call import column_expr, function_call, unseeded
from unbounded.sql.math_functions import shown_call

__all__ = [
    "ascii", "bit_length", "btrim", "char", "chr", "contains", "decode", "elt", "encode",
    "endswith", "find_in_set", "format_number", "format_string", "ilike", "left",
    "levenshtein", "like", "locate", "mask", "octet_length", "overlay", "parse_url",
    "position", "printf", "quote", "regexp", "regexp_count", "regexp_extract_all",
    "regexp_instr", "regexp_like", "regexp_substr", "repeat", "right", "rlike", "soundex",
    "split_part", "startswith", "substring_index", "translate", "unbase64", "url_decode",
    "url_encode",
]


def lit(value: Any) -> Column:
    """A literal column (a Column passes through): PySpark's ``lit``."""
    return value if isinstance(value, Column) else Column(Literal(value))


def _opt(value: Any, default: Any) -> Column:
    return lit(default if value is None else value)


# ---- pattern matching ----------------------------------------------------------------------
def like(str: Any, pattern: Any, escapeChar: Any = None) -> Column:
    """SQL ``LIKE`` (``%`` any run, ``_`` one character); ``escapeChar`` defaults to ``\\``."""
    if escapeChar is None:
        return shown_call("like", str, pattern, template="{0} LIKE {1}")
    return shown_call("like", str, pattern, escapeChar, template="{0} LIKE {1} ESCAPE '{2}'")


def ilike(str: Any, pattern: Any, escapeChar: Any = None) -> Column:
    """Case-insensitive ``LIKE``."""
    extra = () if escapeChar is None else (escapeChar,)
    return function_call("ilike", str, pattern, *extra)


def rlike(str: Any, regexp: Any) -> Column:
    """True where the regular expression matches part of the string."""
    return shown_call("rlike", str, regexp, shown="RLIKE")


def regexp(str: Any, regexp: Any) -> Column:
    return shown_call("regexp", str, regexp, shown="REGEXP")


def regexp_like(str: Any, regexp: Any) -> Column:
    return shown_call("regexp_like", str, regexp, shown="REGEXP_LIKE")


def regexp_count(str: Any, regexp: Any) -> Column:
    return function_call("regexp_count", str, regexp)


def regexp_substr(str: Any, regexp: Any) -> Column:
    """The first match, or NULL."""
    return function_call("regexp_substr", str, regexp)


def regexp_instr(str: Any, regexp: Any, idx: Any = None) -> Column:
    """1-based position of the first match, 0 when none."""
    return function_call("regexp_instr", str, regexp, _opt(idx, 0))


def regexp_extract_all(str: Any, regexp: Any, idx: Any = None) -> Column:
    """Group ``idx`` (default 1) of every match, as an array."""
    return function_call("regexp_extract_all", str, regexp, _opt(idx, 1))


def startswith(str: Any, prefix: Any) -> Column:
    return function_call("startswith", str, prefix)


def endswith(str: Any, suffix: Any) -> Column:
    return function_call("endswith", str, suffix)


def contains(left: Any, right: Any) -> Column:
    return function_call("contains", left, right)


# ---- slicing and searching -----------------------------------------------------------------
def substring_index(str: Any, delim: str, count: int) -> Column:
    """The part before the ``count``-th ``delim`` (from the right when negative)."""
    return function_call("substring_index", str, lit(delim), lit(count))


def left(str: Any, len: Any) -> Column:
    return function_call("left", str, lit(len))


def right(str: Any, len: Any) -> Column:
    return function_call("right", str, lit(len))


def locate(substr: str, str: Any, pos: int = 1) -> Column:
    """1-based position of ``substr`` in ``str`` at or after ``pos``; 0 when absent."""
    return function_call("locate", lit(substr), str, lit(pos))


def position(substr: Any, str: Any, start: Any = None) -> Column:
    return function_call("position", substr, str, _opt(start, 1))


def translate(srcCol: Any, matching: str, replace: str) -> Column:
    """Each character of ``matching`` replaced by the one at its place in ``replace``
    (dropped when ``replace`` is shorter)."""
    return function_call("translate", srcCol, lit(matching), lit(replace))


def repeat(col: Any, n: Any) -> Column:
    return function_call("repeat", col, lit(n))


def overlay(src: Any, replace: Any, pos: Any, len: Any = -1) -> Column:
    """``src`` with ``len`` characters from ``pos`` replaced by ``replace``."""
    return function_call("overlay", src, replace, lit(pos), lit(len))


def split_part(src: Any, delimiter: Any, partNum: Any) -> Column:
    return function_call("split_part", src, delimiter, partNum)


def find_in_set(str: Any, str_array: Any) -> Column:
    return function_call("find_in_set", str, str_array)


def elt(*inputs: Any) -> Column:
    """The ``n``-th of the other arguments, ``n`` being the first."""
    return function_call("elt", *inputs)


# ---- trimming, lengths, characters ---------------------------------------------------------
def btrim(str: Any, trim: Any = None) -> Column:
    return function_call("btrim", str) if trim is None else function_call("btrim", str, trim)


def octet_length(col: Any) -> Column: return function_call("octet_length", col)
def bit_length(col: Any) -> Column: return function_call("bit_length", col)
def ascii(col: Any) -> Column: return function_call("ascii", col)
def char(col: Any) -> Column: return function_call("char", col)
def chr(col: Any) -> Column: return function_call("chr", col)
def quote(col: Any) -> Column: return function_call("quote", col)
def soundex(col: Any) -> Column: return function_call("soundex", col)
def unbase64(col: Any) -> Column: return function_call("unbase64", col)
def url_encode(str: Any) -> Column: return function_call("url_encode", str)
def url_decode(str: Any) -> Column: return function_call("url_decode", str)


def mask(col: Any, upperChar: Any = None, lowerChar: Any = None, digitChar: Any = None,
         otherChar: Any = None) -> Column:
    """Letters and digits replaced by ``X``, ``x`` and ``n`` (or the given characters)."""
    return function_call("mask", col, _opt(upperChar, "X"), _opt(lowerChar, "x"),
                         _opt(digitChar, "n"), lit(otherChar))


# ---- formatting and codecs -----------------------------------------------------------------
def format_number(col: Any, d: int) -> Column:
    """``1,234.57``: grouped thousands, ``d`` decimals rounded half-even."""
    return function_call("format_number", col, lit(d))


def format_string(format: str, *cols: Any) -> Column:
    """Java's ``String.format(format, cols...)``."""
    return function_call("format_string", lit(format), *cols)


def printf(format: Any, *cols: Any) -> Column:
    return function_call("printf", format, *cols)


def levenshtein(left: Any, right: Any, threshold: int | None = None) -> Column:
    """Edit distance; -1 when it exceeds ``threshold``."""
    extra = () if threshold is None else (lit(threshold),)
    return function_call("levenshtein", left, right, *extra)


def encode(col: Any, charset: str) -> Column:
    return function_call("encode", col, lit(charset))


def decode(col: Any, charset: str) -> Column:
    return function_call("decode", col, lit(charset))


def parse_url(url: Any, partToExtract: Any, key: Any = None) -> Column:
    """HOST, PATH, QUERY (or one query ``key``), REF, PROTOCOL, FILE, AUTHORITY or
    USERINFO of a URL."""
    extra = () if key is None else (key,)
    return function_call("parse_url", url, partToExtract, *extra)


# ---- more of PySpark 4's string functions ----------------------------------------------------
def replace(src: Any, search: Any, replace: Any = None) -> Column:
    """Every ``search`` in ``src`` replaced by ``replace`` (default: removed)."""
    return function_call("replace", src, search, _opt(replace, ""))


def substr(str: Any, pos: Any, len: Any = None) -> Column:
    """``substring`` with its position and length as literal columns or numbers."""
    start = _int_value(pos, "pos")
    length = 2147483647 if len is None else _int_value(len, "len")
    child = column_expr(str)
    shown = f"substr({child.display_name()}, {start}, {length})"
    return Column(FunctionCall("substring", (child,),
                               (("pos", start), ("len", length), ("display", shown))))


def _int_value(value: Any, name: str) -> int:
    literal = value.expr if isinstance(value, Column) else Literal(value)
    if not isinstance(literal, Literal) or not isinstance(literal.value, int):
        raise AnalysisException(f"substr() needs a literal integer `{name}`.",
                                error_class="NON_FOLDABLE_INPUT")
    return literal.value


def char_length(str: Any) -> Column: return function_call("char_length", str)
def character_length(str: Any) -> Column: return function_call("character_length", str)
def lcase(str: Any) -> Column: return function_call("lcase", str)
def ucase(str: Any) -> Column: return function_call("ucase", str)
def try_url_decode(str: Any) -> Column: return function_call("try_url_decode", str)
def is_valid_utf8(str: Any) -> Column: return function_call("is_valid_utf8", str)
def make_valid_utf8(str: Any) -> Column: return function_call("make_valid_utf8", str)
def validate_utf8(str: Any) -> Column: return function_call("validate_utf8", str)
def try_validate_utf8(str: Any) -> Column: return function_call("try_validate_utf8", str)
def to_base32(col: Any) -> Column: return function_call("to_base32", col)
def from_base32(col: Any) -> Column: return function_call("from_base32", col)


def try_parse_url(url: Any, partToExtract: Any, key: Any = None) -> Column:
    """``parse_url`` giving NULL for an invalid URL."""
    extra = () if key is None else (key,)
    return function_call("try_parse_url", url, partToExtract, *extra)


def to_binary(col: Any, format: Any = None) -> Column:
    """Bytes from text in ``format``: ``hex`` (the default), ``utf-8`` or ``base64``."""
    extra = () if format is None else (lit(format),)
    return function_call("to_binary", col, *extra)


def try_to_binary(col: Any, format: Any = None) -> Column:
    extra = () if format is None else (lit(format),)
    return function_call("try_to_binary", col, *extra)


def jaro_winkler_similarity(str1: Any, str2: Any) -> Column:
    """Jaro-Winkler similarity in [0, 1]."""
    return function_call("jaro_winkler_similarity", str1, str2)


def randstr(length: Any, seed: Any = None) -> Column:
    """Random strings of ``length`` letters and digits, fixed by seed, partition and row."""
    return function_call("randstr", lit(length), _seed_of(seed))


def _seed_of(seed: Any) -> Column:
    return lit(unseeded() if seed is None else seed)


def to_number(col: Any, format: Any) -> Column:
    """The decimal a string spells in a Spark number format (``'$99.99'``); raises when
    it does not match."""
    return function_call("to_number", col, lit(format))


def try_to_number(col: Any, format: Any) -> Column:
    return function_call("try_to_number", col, lit(format))


def to_char(col: Any, format: Any) -> Column:
    """A number written in a Spark number format; bytes as hex, base64 or utf-8 text."""
    return function_call("to_char", col, lit(format))


def to_varchar(col: Any, format: Any) -> Column:
    return shown_call("to_varchar", col, lit(format), shown="to_char")


def sentences(string: Any, language: Any = None, country: Any = None) -> Column:
    """The words of each sentence, as an array of arrays of strings (Java's
    BreakIterator rules for English; ``language`` and ``country`` are accepted)."""
    return function_call("sentences", string, _opt(language, ""), _opt(country, ""))


__all__ += ["sentences"]
__all__ += [
    "to_char", "to_number", "to_varchar", "try_to_number",
]
__all__ += [
    "char_length", "character_length", "from_base32", "is_valid_utf8", "jaro_winkler_similarity",
    "lcase", "make_valid_utf8", "randstr", "replace", "substr", "to_base32", "to_binary",
    "try_parse_url", "try_to_binary", "try_url_decode", "try_validate_utf8", "ucase",
    "validate_utf8",
]
