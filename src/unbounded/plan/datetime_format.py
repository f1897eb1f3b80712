"""Spark's datetime patterns (``yyyy-MM-dd HH:mm:ss``) as chrono strftime formats.

Letters chrono has a directive for become one (``MM`` -> ``%m``); the few it has none
for (day of year in two digits, quarters, ``k``'s 24 at midnight, eras...) become a
:class:`PatternField`, which :func:`field_text` computes from the wall clock. Spark
refuses the week-based letters (``Y w W u e c``) since 3.0, and ``E F q Q`` when parsing.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import polars as pl

from unbounded.errors import AnalysisException
from unbounded.plan.time_zones import offset_text, parse_zone, to_local

__all__ = ["PatternField", "field_text", "format_instant", "spark_format_parts",
           "spark_to_chrono"]

_TOKENS: dict[str, str] = {
    "yyyy": "%Y", "yy": "%y",
    "MMMM": "%B", "MMM": "%b", "MM": "%m", "M": "%-m",
    "LLLL": "%B", "LLL": "%b", "LL": "%m", "L": "%-m",
    "dd": "%d", "d": "%-d", "DDD": "%j", "D": "%-j",
    "HH": "%H", "H": "%-H", "hh": "%I", "h": "%-I",
    "mm": "%M", "m": "%-M", "ss": "%S", "s": "%-S",
    "SSSSSS": "%6f", "SSS": "%3f",
    "a": "%p", "EEEE": "%A", "EEE": "%a", "EE": "%a", "E": "%a",
    "Z": "%z", "ZZ": "%z", "ZZZ": "%z", "z": "%Z", "zz": "%Z", "zzz": "%Z",
}
# Letters chrono cannot print, with the widths Spark accepts for each.
_FIELDS: dict[str, range | tuple[int, ...]] = {
    "D": (2,), "y": range(1, 10), "Q": range(1, 5), "q": range(1, 5), "F": (1,),
    "G": range(1, 5), "K": range(1, 3), "k": range(1, 3), "S": range(1, 10),
    "x": range(1, 6), "X": range(1, 6), "O": (1, 4), "Z": (4, 5), "V": (2,)}
_WEEK_BASED = frozenset("YwWuec")
_ILLEGAL = frozenset("AnNpB")
_FORMAT_ONLY = frozenset("EFqQ")
_ORDINALS = ("1st", "2nd", "3rd", "4th")


@dataclass(frozen=True)
class PatternField:
    """A run of one pattern letter that chrono has no directive for (``DD``, ``QQQ``)."""

    letter: str
    width: int


Part = str | PatternField


@lru_cache(maxsize=256)
def spark_format_parts(pattern: str) -> tuple[Part, ...]:
    """A pattern for formatting as chrono text and fields, in order; optional sections
    (``[...]``) print their content, as Java does for a timestamp.

    >>> spark_format_parts("yyyy-DD''Q")
    ('%Y-', PatternField(letter='D', width=2), "'", PatternField(letter='Q', width=1))
    """
    parts: list[Part] = []
    for run in _runs(pattern):
        if run in ("[", "]"):
            continue
        part = _part(run, pattern) if run[:1].isalpha() else _literal(run)
        if isinstance(part, str) and parts and isinstance(parts[-1], str):
            parts[-1] += part
        elif part:
            parts.append(part)
    return tuple(parts)


@lru_cache(maxsize=256)
def spark_to_chrono(pattern: str) -> str:
    """Translate a Spark pattern for parsing; quoted text stays literal.

    >>> spark_to_chrono("yyyy-MM-dd'T'HH:mm:ss.SSS")
    '%Y-%m-%dT%H:%M:%S.%3f'
    """
    out: list[str] = []
    for run in _runs(pattern):
        if run[:1] in _FORMAT_ONLY:
            raise _illegal(run[0], pattern)
        part = _part(run, pattern) if run[:1].isalpha() else _literal(run)
        out.append(_parse_directive(part) if isinstance(part, PatternField) else part)
    return "".join(out)


def _parse_directive(field: PatternField) -> str:
    """The nearest chrono directive for parsing a field (an era reads as the text AD)."""
    if field.letter == "G":
        return "Anno Domini" if field.width == 4 else "AD"
    if field.letter == "S":
        return "%6f" if field.width > 3 else "%3f"
    if field.letter in "xXZ":
        return "%#z"
    if field.letter in "OV":
        raise AnalysisException(f"Parsing the pattern letter {field.letter!r} is not supported.")
    return {"y": "%Y", "D": "%j", "K": "%I", "k": "%H"}[field.letter]


def _runs(pattern: str) -> list[str]:
    """Letter runs (``yyyy``), other characters one at a time, and quoted text with its
    quotes decoded: ``'o''clock'`` is the text ``o'clock``, ``''`` one quote."""
    runs: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern[i] == "'":
            text, i = _quoted(pattern, i)
            runs.append("\0" + text)
            continue
        j = i + 1
        while pattern[i].isalpha() and j < len(pattern) and pattern[j] == pattern[i]:
            j += 1
        runs.append(pattern[i:j])
        i = j
    return runs


def _quoted(pattern: str, start: int) -> tuple[str, int]:
    if pattern.startswith("''", start):
        return "'", start + 2
    text, i = "", start + 1
    while i < len(pattern):
        if pattern.startswith("''", i):
            text, i = text + "'", i + 2
        elif pattern[i] == "'":
            return text, i + 1
        else:
            text, i = text + pattern[i], i + 1
    raise AnalysisException(f"Unclosed quote in datetime pattern {pattern!r}")


def _literal(run: str) -> str:
    return run.removeprefix("\0").replace("%", "%%")


def _part(run: str, pattern: str) -> Part:
    letter = run[0]
    if letter in _WEEK_BASED:
        raise AnalysisException(
            "[INCONSISTENT_BEHAVIOR_CROSS_VERSION.DATETIME_WEEK_BASED_PATTERN] Spark >= 3.0 "
            f"does not support the week-based pattern letter {letter!r} (in {pattern!r}); "
            "use the SQL function EXTRACT instead.",
            error_class="INCONSISTENT_BEHAVIOR_CROSS_VERSION.DATETIME_WEEK_BASED_PATTERN")
    if letter in _ILLEGAL:
        raise _illegal(letter, pattern)
    if run in _TOKENS:
        return _TOKENS[run]
    if run == "zzzz":
        raise AnalysisException(
            f"Full time-zone names (zzzz, in {pattern!r}) are not supported; use z for the "
            "short name or VV for the zone id.", error_class="UNSUPPORTED_DATETIME_PATTERN")
    if letter in _FIELDS and len(run) in _FIELDS[letter]:
        return PatternField(letter, len(run))
    raise AnalysisException(
        f"[INCONSISTENT_BEHAVIOR_CROSS_VERSION.DATETIME_PATTERN_RECOGNITION] Unsupported "
        f"datetime pattern letters {run!r} in {pattern!r}; use Spark's datetime pattern "
        "letters (y, D, M, d, Q, E, F, a, h, K, k, H, m, s, S, G, X, Z, z).",
        error_class="INCONSISTENT_BEHAVIOR_CROSS_VERSION.DATETIME_PATTERN_RECOGNITION")


def _illegal(letter: str, pattern: str) -> AnalysisException:
    return AnalysisException(
        f"[INVALID_DATETIME_PATTERN.ILLEGAL_CHARACTER] Unrecognized datetime pattern: "
        f"{pattern}. Illegal pattern character found in datetime pattern: {letter}. Please "
        "provide legal character.", error_class="INVALID_DATETIME_PATTERN.ILLEGAL_CHARACTER")


def field_text(local: pl.Expr, field: PatternField, offset_minutes: pl.Expr,
               zone_id: str) -> pl.Expr:
    """A field's text from a wall-clock datetime (and its offset from UTC, and the zone's
    id for ``VV``), as Java's formatter prints it."""
    letter, width = field.letter, field.width
    if letter in "xXOZ":
        return _offset_text(offset_minutes, letter, width)
    if letter == "V":
        return pl.lit(zone_id)
    if letter in "Qq" and width >= 3:
        quarter = local.dt.quarter()
        if width == 3:
            return pl.lit("Q") + quarter.cast(pl.String)
        ordinal = quarter.replace_strict(range(1, 5), _ORDINALS, return_dtype=pl.String)
        return ordinal + pl.lit(" quarter")
    if letter == "S":  # the fraction's first digits (microseconds: zeros after 6)
        micros = local.dt.microsecond().cast(pl.String).str.zfill(6)
        return (micros + pl.lit("000")).str.slice(0, width)
    if letter == "G":
        era = ("BC", "AD") if width < 4 else ("Before Christ", "Anno Domini")
        return pl.when(local.dt.year() > 0).then(pl.lit(era[1])).otherwise(pl.lit(era[0]))
    return _number(local, letter).cast(pl.String).str.zfill(width)


def _offset_text(minutes: pl.Expr, letter: str, width: int) -> pl.Expr:
    """``x``: -08, +0530; ``xx``: -0800; ``xxx``: -08:00; ``X``: the same with Z for zero;
    ``O``: GMT-8, GMT+5:30; ``OOOO``/``ZZZZ``: GMT-08:00; ``ZZZZZ``: -08:00 or Z."""
    sign = pl.when(minutes < 0).then(pl.lit("-")).otherwise(pl.lit("+"))
    hours, rest = (minutes.abs() // 60).cast(pl.String), (minutes.abs() % 60).cast(pl.String)
    hh, mm = hours.str.zfill(2), rest.str.zfill(2)
    if letter == "O" and width == 1:
        text = pl.concat_str([pl.lit("GMT"), sign, hours,
                              pl.when(rest != "0").then(pl.lit(":") + mm).otherwise(pl.lit(""))])
    elif letter in "OZ" and width == 4:
        text = pl.concat_str([pl.lit("GMT"), sign, hh, pl.lit(":"), mm])
    elif width == 1:
        text = pl.concat_str([sign, hh, pl.when(rest != "0").then(mm).otherwise(pl.lit(""))])
    else:
        text = pl.concat_str([sign, hh, pl.lit(":" if width in (3, 5) else ""), mm])
    zero = {"X": "Z", "O": "GMT", "Z": "GMT" if width == 4 else "Z"}.get(letter)
    return text if zero is None else pl.when(minutes == 0).then(pl.lit(zero)).otherwise(text)


def _number(local: pl.Expr, letter: str) -> pl.Expr:
    if letter == "D":
        return local.dt.ordinal_day()
    if letter == "y":
        return local.dt.year()
    if letter in "Qq":
        return local.dt.quarter()
    if letter == "F":  # Java's ALIGNED_DAY_OF_WEEK_IN_MONTH: 1 on days 1, 8, 15...
        return (local.dt.day() - 1) % 7 + 1
    if letter == "K":
        return local.dt.hour() % 12
    return pl.when(local.dt.hour() == 0).then(24).otherwise(local.dt.hour())  # k


def format_instant(moment: pl.Expr, pattern: str, zone: str) -> pl.Expr:
    """An instant as text in the zone: chrono prints what it can, the other fields
    (``DD``, ``QQQ``...) are computed from the wall clock."""
    parts = spark_format_parts(pattern)
    if len(parts) == 1 and isinstance(parts[0], str):
        return _strftime(moment, parts[0], zone)
    local = to_local(moment, zone)
    offset = (local.dt.replace_time_zone("UTC") - moment).dt.total_minutes()
    rule = parse_zone(zone)
    zone_id = rule.region or ("UTC" if rule.is_utc else offset_text(rule.offset_us))
    return pl.concat_str([_strftime(moment, p, zone) if isinstance(p, str)
                          else field_text(local, p, offset, zone_id) for p in parts])


def _strftime(moment: pl.Expr, chrono: str, zone: str) -> pl.Expr:
    """Chrono's text in the zone; offset letters print the zone's offset."""
    rule = parse_zone(zone)
    if rule.region is not None:
        return moment.dt.convert_time_zone(rule.region).dt.strftime(chrono)
    shown = offset_text(rule.offset_us)
    chrono = chrono.replace("%z", shown.replace(":", "")) \
        .replace("%Z", "UTC" if rule.is_utc else shown)
    return to_local(moment, zone).dt.strftime(chrono)
