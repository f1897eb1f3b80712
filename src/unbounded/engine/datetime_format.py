"""Spark's datetime patterns (``yyyy-MM-dd HH:mm:ss``) as chrono strftime formats."""

from __future__ import annotations

from functools import lru_cache

from unbounded.errors import AnalysisException

__all__ = ["spark_to_chrono"]

_TOKENS: dict[str, str] = {
    "yyyy": "%Y", "yyy": "%Y", "yy": "%y", "y": "%Y", "uuuu": "%Y",
    "MMMM": "%B", "MMM": "%b", "MM": "%m", "M": "%-m", "LL": "%m",
    "dd": "%d", "d": "%-d", "DDD": "%j",
    "HH": "%H", "H": "%-H", "hh": "%I", "h": "%-I", "kk": "%H",
    "mm": "%M", "m": "%-M", "ss": "%S", "s": "%-S",
    "SSSSSS": "%6f", "SSSSS": "%6f", "SSSS": "%6f", "SSS": "%3f", "SS": "%3f", "S": "%3f",
    "a": "%p", "EEEE": "%A", "EEE": "%a", "E": "%a",
    "XXX": "%:z", "XX": "%z", "X": "%z", "Z": "%z", "ZZ": "%z", "xxx": "%:z", "VV": "%Z",
    "z": "%Z",
}


@lru_cache(maxsize=256)
def spark_to_chrono(pattern: str) -> str:
    """Translate a Spark datetime pattern; quoted text stays literal.

    >>> spark_to_chrono("yyyy-MM-dd'T'HH:mm:ss.SSS")
    '%Y-%m-%dT%H:%M:%S.%3f'
    """
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "'":
            end = pattern.find("'", i + 1)
            if end < 0:
                raise AnalysisException(f"Unclosed quote in datetime pattern {pattern!r}")
            out.append(pattern[i + 1 : end].replace("%", "%%") or "'")
            i = end + 1
            continue
        if ch.isalpha():
            j = i
            while j < len(pattern) and pattern[j] == ch:
                j += 1
            run = pattern[i:j]
            if run not in _TOKENS:
                raise AnalysisException(
                    f"Unsupported datetime pattern letters {run!r} in {pattern!r}; "
                    "use Spark's datetime pattern letters (y, M, d, H, m, s, S, a, E, X, Z)."
                )
            out.append(_TOKENS[run])
            i = j
            continue
        out.append("%%" if ch == "%" else ch)
        i += 1
    return "".join(out)
