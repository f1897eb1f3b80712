"""The ``console`` sink and the table layout it shares with ``DataFrame.show``."""

from __future__ import annotations

import sys
from datetime import date, datetime
from decimal import Decimal
from typing import Any

import pyarrow as pa

from unbounded.config import DEFAULTS
from unbounded.errors import AnalysisException
from unbounded.plan.time_zones import in_zone
from unbounded.sinks.base import MicroBatch, SinkContext

__all__ = ["ConsoleSink", "format_table", "format_value"]


def format_value(value: Any) -> str:
    """A cell as Spark 4 prints it (``NULL``, ``true``, ``[1, NULL]``, ``{a, 1}``)."""
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        text = value.strftime("%Y-%m-%d %H:%M:%S")
        if value.microsecond:
            text += f".{value.microsecond:06d}".rstrip("0")
        return text
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return "[" + " ".join(f"{b:02X}" for b in value) + "]"
    if isinstance(value, float | Decimal):
        return repr(float(value)) if isinstance(value, float) else str(value)
    if isinstance(value, dict):
        return "{" + ", ".join(format_value(v) for v in value.values()) + "}"
    if isinstance(value, list):
        if value and all(isinstance(v, tuple) and len(v) == 2 for v in value):
            return "{" + ", ".join(f"{format_value(k)} -> {format_value(v)}"
                                   for k, v in value) + "}"
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    return str(value)


def format_table(table: pa.Table, num_rows: int = 20, truncate: int | bool = True,
                 zone: str = "UTC") -> str:
    """Spark's ``show()`` layout; ``truncate`` cuts cells to 20 characters (or N);
    timestamps print as wall-clock times in ``zone``, the session time zone."""
    width = 20 if truncate is True else int(truncate) if truncate else 0
    table = in_zone(table, zone)
    names = table.column_names
    # By position, not by name: a join's output may repeat a column name.
    shown = zip(*(c.to_pylist() for c in table.slice(0, num_rows).columns), strict=True)
    rows = [[_cut(format_value(v), width) for v in r] for r in shown]
    widths = [max([3, len(n), *(len(r[i]) for r in rows)]) for i, n in enumerate(names)]
    line = "+" + "+".join("-" * w for w in widths) + "+"

    def fmt(cells: list[str]) -> str:
        padded = [c.rjust(w) if width else c.ljust(w) for c, w in zip(cells, widths, strict=True)]
        return "|" + "|".join(padded) + "|"

    out = [line, fmt(list(names)), line, *(fmt(r) for r in rows), line]
    if table.num_rows > num_rows:
        noun = "row" if num_rows == 1 else "rows"
        out.append(f"only showing top {num_rows} {noun}")
    return "\n".join(out) + "\n"


def _cut(text: str, width: int) -> str:
    if width and len(text) > width:
        return text[: width - 3] + "..." if width >= 4 else text[:width]
    return text


class ConsoleSink:
    """Prints each batch; debugging only (output is not transactional)."""

    def __init__(self, fmt: str, ctx: SinkContext) -> None:
        try:
            self.num_rows = int(ctx.option("numRows", "20") or "20")
        except ValueError:
            raise AnalysisException("Option 'numRows' of the console sink must be a number.") \
                from None
        raw = (ctx.option("truncate", "true") or "true").lower()
        self.truncate: int | bool = True if raw == "true" else False if raw == "false" \
            else int(raw)
        conf = ctx.extra.get("conf", {})
        self.zone = conf.get("spark.sql.session.timeZone") or \
            DEFAULTS["spark.sql.session.timeZone"]

    @property
    def description(self) -> str:
        return f"ConsoleSink[numRows={self.num_rows}, truncate={self.truncate}]"

    def add_batch(self, batch_id: int, batch: MicroBatch) -> None:
        bar = "-" * 43
        text = format_table(batch.table(), self.num_rows, self.truncate, self.zone)
        sys.stdout.write(f"{bar}\nBatch: {batch_id}\n{bar}\n{text}\n")
        sys.stdout.flush()

    def stop(self) -> None:
        """Nothing to release."""
