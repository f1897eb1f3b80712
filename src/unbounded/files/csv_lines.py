"""Rows as the csv lines Spark's writer (univocity) prints, built column by column in
Polars.

What Spark does and Polars' own csv writer does not: a quote inside a value is escaped
with the ``escape`` character (``"a\\"b"``, not ``"a""b"``); leading and trailing
whitespace is trimmed (``ignoreLeadingWhiteSpace``/``ignoreTrailingWhiteSpace``, true
for writing); an empty string is ``emptyValue`` (default ``""``) and NULL ``nullValue``
(default nothing); floats print as Java's (``1.0E20``, ``-Infinity``); ``quoteAll`` and
``escapeQuotes`` are honoured. Dates and timestamps are expected as text already
(``datetime_text.datetimes_as_text``).

Example:
    >>> frame = pl.DataFrame({"s": ['a"b', " x ", "", None], "d": [1e20, 0.5, None, 2.0]})
    >>> csv_text(frame, CsvWriteOptions.from_options({}))
    '"a\\\\"b",1.0E20\\nx,0.5\\n"",\\n,2.0\\n'
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from typing import IO

import polars as pl

from unbounded.files.json_lines import java_float_text

__all__ = ["CsvWriteOptions", "csv_text", "write_lines"]

_WHITESPACE = "".join(chr(c) for c in range(33))  # univocity trims chars <= ' '


@dataclass(frozen=True)
class CsvWriteOptions:
    """The csv writer's options, with Spark's defaults (keys are lower case)."""

    sep: str = ","
    quote: str = '"'
    escape: str = "\\"
    null_value: str = ""
    empty_value: str = '""'
    header: bool = False
    quote_all: bool = False
    escape_quotes: bool = True
    trim_leading: bool = True
    trim_trailing: bool = True
    line_sep: str = "\n"

    @classmethod
    def from_options(cls, lowered: dict[str, str]) -> CsvWriteOptions:
        def flag(key: str, default: bool) -> bool:
            return lowered.get(key, str(default)).strip().lower() == "true"
        quote = lowered.get("quote", '"')
        return cls(
            sep=lowered.get("sep", lowered.get("delimiter", ",")).replace("\\t", "\t"),
            quote=quote, escape=lowered.get("escape", "\\"),
            null_value=lowered.get("nullvalue", ""),
            empty_value=lowered.get("emptyvalue", quote * 2),
            header=flag("header", False), quote_all=flag("quoteall", False),
            escape_quotes=flag("escapequotes", True),
            trim_leading=flag("ignoreleadingwhitespace", True),
            trim_trailing=flag("ignoretrailingwhitespace", True),
            line_sep=lowered.get("linesep", "\n"))


def csv_text(frame: pl.DataFrame, options: CsvWriteOptions) -> str:
    """The whole file: the header line if asked, then one line per row."""
    out = io.BytesIO()
    write_csv_lines(out, frame, options)
    return out.getvalue().decode("utf-8")


def write_csv_lines(out: IO[bytes], frame: pl.DataFrame, options: CsvWriteOptions) -> None:
    """Write the header line if asked, then one line per row, to ``out``."""
    for line in _header(frame.columns, options):
        out.write((line + options.line_sep).encode("utf-8"))
    fields = [_field(pl.col(n), t, options) for n, t in frame.schema.items()]
    write_lines(out, frame.select(pl.concat_str(fields, separator=options.sep)).to_series(),
                options.line_sep)


def write_lines(out: IO[bytes], lines: pl.Series, line_sep: str = "\n") -> None:
    """Each text of ``lines`` and ``line_sep`` after it, as they are (Polars' writer,
    told to quote nothing: no Python string per line)."""
    if len(lines):
        lines.to_frame("line").write_csv(out, include_header=False, quote_style="never",
                                         line_terminator=line_sep)


def _header(names: list[str], options: CsvWriteOptions) -> list[str]:
    if not options.header or not names:
        return []
    frame = pl.DataFrame({"name": names})
    quoted = frame.select(_quoted(pl.col("name"), options)).to_series().to_list()
    return [options.sep.join(quoted)]


def _field(value: pl.Expr, dtype: pl.DataType, options: CsvWriteOptions) -> pl.Expr:
    null = options.quote + options.null_value + options.quote if options.quote_all \
        else options.null_value
    if (dtype.is_numeric() or dtype == pl.Boolean) and not options.quote_all:
        return _text(value, dtype).fill_null(null)  # no spaces, quotes or separators
    text = _trimmed(_text(value, dtype), options)
    return pl.when(value.is_null()).then(pl.lit(null)) \
        .when(text == "").then(pl.lit(options.empty_value)) \
        .otherwise(_quoted(text, options))


def _text(value: pl.Expr, dtype: pl.DataType) -> pl.Expr:
    if dtype == pl.Boolean:
        return pl.when(value).then(pl.lit("true")).otherwise(pl.lit("false"))
    if dtype.is_float():
        return java_float_text(value)
    return value.cast(pl.String)


def _trimmed(text: pl.Expr, options: CsvWriteOptions) -> pl.Expr:
    if options.trim_leading:
        text = text.str.strip_chars_start(_WHITESPACE)
    if options.trim_trailing:
        text = text.str.strip_chars_end(_WHITESPACE)
    return text


def _quoted(text: pl.Expr, options: CsvWriteOptions) -> pl.Expr:
    """Quoted, its quotes escaped, when it holds the separator or a line break, or a
    quote (unless ``escapeQuotes`` is false); every value with ``quoteAll``."""
    if options.quote_all:
        return _wrapped(text, options)
    quote = options.quote if options.escape_quotes else ""
    special = text.str.contains("[" + re.escape(options.sep + quote) + "\\r\\n]")
    return pl.when(special).then(_wrapped(pl.when(special).then(text), options)) \
        .otherwise(text)  # the escaping runs only on the values quoted


def _wrapped(text: pl.Expr, options: CsvWriteOptions) -> pl.Expr:
    escaped = text.str.replace_all(options.quote, options.escape + options.quote,
                                   literal=True)
    return pl.lit(options.quote) + escaped + pl.lit(options.quote)
