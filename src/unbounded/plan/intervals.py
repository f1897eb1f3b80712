"""Spark interval strings (``"10 minutes"``, ``"1 hour 30 seconds"``) as microseconds."""

from __future__ import annotations

import re

from unbounded.errors import AnalysisException

__all__ = ["parse_interval_ms", "parse_interval_us"]

_UNITS_US: dict[str, int] = {
    "microsecond": 1, "us": 1,
    "millisecond": 1_000, "ms": 1_000,
    "second": 1_000_000, "sec": 1_000_000, "s": 1_000_000,
    "minute": 60_000_000, "min": 60_000_000, "m": 60_000_000,
    "hour": 3_600_000_000, "h": 3_600_000_000,
    "day": 86_400_000_000, "d": 86_400_000_000,
    "week": 7 * 86_400_000_000, "w": 7 * 86_400_000_000,
}
_PART = re.compile(r"(-?\d+(?:\.\d+)?)\s*([a-zA-Z]+)")


def parse_interval_us(text: str) -> int:
    """Microseconds in a Spark interval string.

    >>> parse_interval_us("interval 1 minute 30 seconds")
    90000000
    >>> parse_interval_us("500ms")
    500000
    """
    body = text.strip().lower()
    body = body.removeprefix("interval").strip()
    parts = _PART.findall(body)
    leftover = _PART.sub("", body).strip()
    if not parts or leftover:
        raise AnalysisException(
            f"Cannot parse the interval {text!r}. Write it as '<number> <unit>', "
            "e.g. '10 seconds', '5 minutes' or '1 hour'.",
            error_class="INVALID_INTERVAL",
        )
    total = 0.0
    for number, unit in parts:
        key = unit if unit in _UNITS_US else unit[:-1] if unit.endswith("s") else unit
        if key not in _UNITS_US:
            raise AnalysisException(
                f"Unknown interval unit {unit!r} in {text!r}; use microseconds, milliseconds, "
                "seconds, minutes, hours, days or weeks.",
                error_class="INVALID_INTERVAL",
            )
        total += float(number) * _UNITS_US[key]
    return int(total)


def parse_interval_ms(text: str) -> int:
    return parse_interval_us(text) // 1000
