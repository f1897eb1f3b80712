"""Reading csv, JSON lines, parquet, ORC, Avro and text files into Arrow, as Spark's file
formats do.

Parsing is vectorised: pyarrow tokenises csv and JSON, Polars converts strings to the
schema's types, and a row whose conversion fails is found with a column mask, not a
Python loop. Only a file that holds a malformed row is read again line by line, so that
the parse mode can act on it with the raw line and its line number:

* ``PERMISSIVE`` (default) keeps the row; fields that do not parse are NULL and the raw
  line goes to the ``columnNameOfCorruptRecord`` column (default ``_corrupt_record``)
  when the schema has it;
* ``DROPMALFORMED`` drops the row;
* ``FAILFAST`` raises :class:`~unbounded.errors.MalformedRecordError` naming the file
  and line.

The result is always cast to the requested schema: its column order and types, with
missing columns NULL. A directory written by a file sink (it has ``_spark_metadata``)
reads only the files its manifest lists. A path may be an fsspec URL
(``s3://bucket/in``): its objects are read through the store (:mod:`.stores`).

Example:
    >>> import os, tempfile
    >>> from unbounded.plan.types import StructType
    >>> folder = tempfile.mkdtemp()
    >>> with open(os.path.join(folder, "a.csv"), "w") as f:
    ...     _ = f.write("id,name\\n1,x\\noops,y\\n")
    >>> schema = StructType.fromDDL("id INT, name STRING, _corrupt_record STRING")
    >>> read_files("csv", [folder], schema, {"header": "true"}).to_pylist()[1]
    {'id': None, 'name': 'y', '_corrupt_record': 'oops,y'}
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import enum
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl
import pyarrow as pa

from unbounded.checkpoint.storage import is_url
from unbounded.errors import AnalysisException, MalformedRecordError
from unbounded.files.datetime_text import (
    DatetimeOptions,
    read_date,
    read_timestamp,
    read_timestamp_ntz,
)
from unbounded.files.json_strict import spark_json_scalar
from unbounded.files.json_text import has_temporals, leaves_failed, map_leaves
from unbounded.files.listing import expand_paths
from unbounded.files.stores import arrow_input, parquet_file, read_bytes
from unbounded.plan.timestamp_text import text_to_date, text_to_timestamp
from unbounded.plan.types import (
    ArrayType,
    BinaryType,
    BooleanType,
    DataType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IntegerType,
    LongType,
    MapType,
    NullType,
    StringType,
    StructField,
    StructType,
    TimestampNTZType,
    TimestampType,
    from_arrow_type,
)

# pyarrow's CSV, JSON and ORC readers are imported by the functions that use them: a
# Parquet query does not pay for them at start-up (issue 15).
if TYPE_CHECKING:
    import pyarrow.csv as pacsv

__all__ = [
    "DEFAULT_CORRUPT_RECORD_COLUMN",
    "FILE_FORMATS",
    "ParseMode",
    "ReadSettings",
    "infer_schema",
    "read_files",
    "scan_files",
]


FILE_FORMATS = ("csv", "json", "parquet", "text", "orc", "avro")
DEFAULT_CORRUPT_RECORD_COLUMN = "_corrupt_record"
_NAIVE_TIMESTAMP_FORMATS = ("%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f",
                            "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M", "%Y-%m-%d")


class ParseMode(enum.Enum):
    """What to do with a record that does not parse (Spark's ``mode`` option)."""

    PERMISSIVE = "PERMISSIVE"
    DROPMALFORMED = "DROPMALFORMED"
    FAILFAST = "FAILFAST"


@dataclass(frozen=True)
class ReadSettings:
    """The reader options of csv/json/text, parsed once (keys are case-insensitive)."""

    mode: ParseMode = ParseMode.PERMISSIVE
    corrupt_column: str = DEFAULT_CORRUPT_RECORD_COLUMN
    header: bool = False
    sep: str = ","
    quote: str = '"'
    escape: str = "\\"
    null_value: str = ""
    infer_schema: bool = False
    multiline: bool = False
    wholetext: bool = False
    line_sep: str | None = None
    # timestampFormat, timestampNTZFormat, dateFormat and timeZone (the session zone
    # unless set: where a timestamp without an offset is a wall-clock time).
    datetimes: DatetimeOptions = field(default_factory=DatetimeOptions)
    prefer_date: bool = True  # csv inference: a column of dates is DATE, not TIMESTAMP

    @classmethod
    def from_options(cls, options: dict[str, str]) -> ReadSettings:
        opts = {k.lower(): str(v) for k, v in options.items()}
        return cls(
            mode=_parse_mode(opts.get("mode", "PERMISSIVE")),
            corrupt_column=opts.get("columnnameofcorruptrecord", DEFAULT_CORRUPT_RECORD_COLUMN),
            header=_flag(opts, "header"),
            sep=_single_char(opts, "sep", opts.get("delimiter", ",")),
            quote=_single_char(opts, "quote", '"'),
            escape=_single_char(opts, "escape", "\\"),
            null_value=opts.get("nullvalue", ""),
            infer_schema=_flag(opts, "inferschema"),
            multiline=_flag(opts, "multiline"),
            wholetext=_flag(opts, "wholetext"),
            line_sep=opts.get("linesep"),
            datetimes=DatetimeOptions.for_reading(opts),
            prefer_date=_flag(opts, "preferdate", "true"),
        )


def _parse_mode(raw: str) -> ParseMode:
    try:
        return ParseMode(raw.upper())
    except ValueError:
        raise AnalysisException(
            f"Unknown parse mode {raw!r}. Use PERMISSIVE, DROPMALFORMED or FAILFAST.",
            error_class="INVALID_OPTION",
        ) from None


def _flag(opts: dict[str, str], key: str, default: str = "false") -> bool:
    raw = opts.get(key, default).strip().lower()
    if raw not in ("true", "false"):
        raise AnalysisException(f"Option {key!r} must be 'true' or 'false', got {raw!r}.",
                                error_class="INVALID_OPTION")
    return raw == "true"


def _single_char(opts: dict[str, str], key: str, default: str) -> str:
    value = opts.get(key, default)
    if value == "\\t":
        value = "\t"
    if len(value) != 1:
        raise AnalysisException(f"Option {key!r} must be a single character, got {value!r}.",
                                error_class="INVALID_OPTION")
    return value


# ----------------------------------------------------------------------------- reading


def scan_files(fmt: str, paths: list[str], schema: StructType,
               options: dict[str, str]) -> pl.LazyFrame:
    """The rows of ``paths`` as a Polars lazy frame (batch reads through FileRelation).

    The files are read when the frame is collected, not when its schema is asked for:
    eager analysis resolves every new DataFrame's schema, which read every file each
    time (a select over 5M Parquet rows took 1.5 s before anything ran). Polars checks
    the rows read against the declared schema, so a difference fails, never passes."""
    empty = pl.from_arrow(pa.Table.from_batches([], schema=schema.to_arrow_schema()))
    assert isinstance(empty, pl.DataFrame)

    def read() -> pl.DataFrame:
        frame = pl.from_arrow(read_files(fmt, paths, schema, options))
        assert isinstance(frame, pl.DataFrame)
        return frame

    return pl.defer(read, schema=empty.schema, validate_schema=True)


def read_files(fmt: str, paths: list[str], schema: StructType,
               options: dict[str, str]) -> pa.Table:
    """The rows of ``paths`` (files, folders or globs) in ``fmt``, cast to ``schema``."""
    reader = _reader(fmt)
    settings = ReadSettings.from_options(options)
    tables = [reader(p, schema, settings) for p in expand_paths(paths)]
    if not tables:
        return pa.Table.from_batches([], schema=schema.to_arrow_schema())
    return pa.concat_tables(tables)


_Reader = Callable[[str, StructType, ReadSettings], pa.Table]


def _reader(fmt: str) -> _Reader:
    readers: dict[str, _Reader] = {
        "csv": _read_csv, "json": _read_json, "parquet": _read_parquet, "text": _read_text,
        "orc": _read_orc, "avro": _read_avro,
    }
    reader = readers.get(fmt.lower())
    if reader is None:
        raise AnalysisException(
            f"Unknown file format {fmt!r}; use one of {', '.join(FILE_FORMATS)}.",
            error_class="DATA_SOURCE_NOT_FOUND",
        )
    return reader


def _conform(table: pa.Table, schema: StructType) -> pa.Table:
    """``table`` with exactly the columns and types of ``schema``; missing columns NULL."""
    arrays = []
    for f in schema.fields:
        target = f.dataType.to_arrow()
        if f.name in table.column_names:
            arrays.append(_cast(table.column(f.name), target))
        else:
            arrays.append(pa.nulls(table.num_rows, target))
    fields = [pa.field(f.name, f.dataType.to_arrow()) for f in schema.fields]
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _cast(column: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
    if column.type == target:
        return column
    if pa.types.is_null(column.type):
        return pa.chunked_array([pa.nulls(len(column), target)])
    # Only temporal casts may lose precision (ns -> us), as Spark truncates.
    safe = not (pa.types.is_timestamp(target) or pa.types.is_date(target))
    return column.cast(target, safe=safe)


def _data_fields(schema: StructType, settings: ReadSettings) -> list[StructField]:
    return [f for f in schema.fields if f.name != settings.corrupt_column]


# -- text


def _read_text(path: str, schema: StructType, settings: ReadSettings) -> pa.Table:
    text = read_bytes(path).decode("utf-8", errors="replace")
    lines = [text] if settings.wholetext else _split_lines(text, settings.line_sep)
    name = schema.fields[0].name if schema.fields else "value"
    return _conform(pa.table({name: pa.array(lines, pa.large_string())}), schema)


def _split_lines(text: str, sep: str | None) -> list[str]:
    if sep is None:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
        sep = "\n"
    lines = text.split(sep)
    if lines and lines[-1] == "":
        lines.pop()
    return lines


# -- parquet


def _read_parquet(path: str, schema: StructType, settings: ReadSettings) -> pa.Table:
    try:
        with parquet_file(path) as source:  # one footer read for the schema and the rows
            present = set(source.schema_arrow.names)
            columns = [f.name for f in schema.fields if f.name in present]
            # Tasks already run in parallel; a thread pool per file only oversubscribes.
            table = source.read(columns=columns, use_threads=False)
    except pa.ArrowInvalid as e:
        raise MalformedRecordError(
            f"Cannot read {path} as Parquet: {e}. Remove the file from the input folder, or "
            "read the folder with the format its files are in.") from e
    try:
        return _conform(table, schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
        raise AnalysisException(
            f"Parquet file {path} does not match the schema {schema.simpleString()}: {e}. "
            "Read it with a schema whose types match the file.",
            error_class="PARQUET_SCHEMA_MISMATCH",
        ) from e


# -- orc and avro (self-describing, like parquet)


def _read_orc(path: str, schema: StructType, settings: ReadSettings) -> pa.Table:
    from pyarrow import orc
    try:
        source = orc.ORCFile(arrow_input(path))
        present = set(source.schema.names)
        table = source.read(columns=[f.name for f in schema.fields if f.name in present])
    except (pa.ArrowInvalid, OSError) as e:
        raise MalformedRecordError(
            f"Cannot read {path} as ORC: {e}. Remove the file from the input folder, or "
            "read the folder with the format its files are in.") from e
    return _conform(table, schema)


def _read_avro(path: str, schema: StructType, settings: ReadSettings) -> pa.Table:
    from unbounded.files.avro import read_avro

    with _local_copy(path) as local:
        return read_avro(local, schema)


@contextlib.contextmanager
def _local_copy(path: str) -> Iterator[str]:
    """A local path holding ``path``'s bytes (the Avro reader opens paths); an error
    that names the copy names ``path`` instead."""
    if not is_url(path):
        yield path
        return
    handle, local = tempfile.mkstemp(prefix=".unbounded-", suffix=".avro")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(read_bytes(path))
        yield local
    except (MalformedRecordError, AnalysisException) as e:
        raise type(e)(str(e).replace(local, path), error_class=e.error_class) from e
    finally:
        os.unlink(local)


# -- records (csv and JSON): a fast vectorised pass, a line-by-line pass on bad files


@dataclass
class _Lines:
    """The records of one file read line by line: their line numbers and raw text."""

    path: str
    numbers: list[int]
    raw: list[str]
    broken: list[bool]  # the record did not even split into fields


def _read_csv(path: str, schema: StructType, settings: ReadSettings) -> pa.Table:
    fields = _data_fields(schema, settings)
    _check_csv_types(fields)
    raw = _csv_fast(path, fields, settings)
    if raw is not None:
        typed, bad = _parse_strings(raw, fields, settings.datetimes)
        if not bad.any():
            return _conform(typed.to_arrow(), schema)
    raw, lines = _csv_slow(path, fields, settings)
    typed, bad = _parse_strings(raw, fields, settings.datetimes)
    return _apply_mode(typed.to_arrow(), bad, lines, schema, settings)


def _check_csv_types(fields: list[StructField]) -> None:
    for f in fields:
        if isinstance(f.dataType, ArrayType | MapType | StructType):
            raise AnalysisException(
                f"CSV data source does not support {f.dataType.simpleString()} data type "
                f"(column {f.name!r}). Read it as a string and parse it with from_json.",
                error_class="UNSUPPORTED_DATA_TYPE",
            )


def _csv_parse_options(settings: ReadSettings, on_invalid: Any) -> pacsv.ParseOptions:
    import pyarrow.csv as pacsv
    return pacsv.ParseOptions(
        delimiter=settings.sep, quote_char=settings.quote, double_quote=True,
        escape_char=settings.escape, newlines_in_values=False, ignore_empty_lines=True,
        invalid_row_handler=on_invalid,
    )


def _csv_fast(path: str, fields: list[StructField],
              settings: ReadSettings) -> pl.DataFrame | None:
    """All fields as strings, or None when some row has the wrong number of fields."""
    import pyarrow.csv as pacsv
    if not fields:
        return None
    invalid: list[object] = []

    def on_invalid(row: object) -> str:
        invalid.append(row)
        return "skip"

    names = [f.name for f in fields]
    try:
        table = pacsv.read_csv(
            arrow_input(path),
            read_options=pacsv.ReadOptions(column_names=names,
                                           skip_rows=1 if settings.header else 0),
            parse_options=_csv_parse_options(settings, on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types=dict.fromkeys(names, pa.large_string()),
                null_values=[settings.null_value], strings_can_be_null=True,
                quoted_strings_can_be_null=True),
        )
    except (pa.ArrowInvalid, UnicodeDecodeError):
        return None
    if invalid:
        return None
    return _to_polars(table)


def _to_polars(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _file_lines(path: str) -> Iterable[tuple[int, str]]:
    """The non-blank lines of a file with their 1-based numbers."""
    text = read_bytes(path).decode("utf-8", errors="replace")
    for number, line in enumerate(text.split("\n"), start=1):
        stripped = line.removesuffix("\r")
        if stripped.strip():
            yield number, stripped


def _csv_slow(path: str, fields: list[StructField],
              settings: ReadSettings) -> tuple[pl.DataFrame, _Lines]:
    lines = _Lines(path, [], [], [])
    columns: list[list[str | None]] = [[] for _ in fields]
    entries = iter(_file_lines(path))
    if settings.header:
        next(entries, None)
    for number, line in entries:
        tokens = _csv_tokens(line, settings)
        lines.numbers.append(number)
        lines.raw.append(line)
        lines.broken.append(len(tokens) != len(fields))
        for i, column in enumerate(columns):
            token = tokens[i] if i < len(tokens) else None
            column.append(None if token == settings.null_value else token)
    frame = pl.DataFrame({f.name: pl.Series(c, dtype=pl.String)
                          for f, c in zip(fields, columns, strict=True)})
    return frame, lines


def _csv_tokens(line: str, settings: ReadSettings) -> list[str]:
    reader = csv.reader([line], delimiter=settings.sep, quotechar=settings.quote,
                        escapechar=settings.escape, doublequote=True, strict=False)
    try:
        return next(reader, [])
    except csv.Error:
        return []


def _read_json(path: str, schema: StructType, settings: ReadSettings) -> pa.Table:
    fields = _data_fields(schema, settings)
    staging = pa.schema([pa.field(f.name, _json_staging_type(f.dataType)) for f in fields])
    if not settings.multiline:
        table = _json_fast(path, staging)
        if table is not None:
            typed, bad = _parse_strings(_to_polars(table), fields, settings.datetimes, json=True)
            if not bad.any():
                return _conform(typed.to_arrow(), schema)
    records, lines = _json_records(path, settings)
    staged, broken_values = _stage_records(records, fields, staging)
    typed, bad = _parse_strings(_to_polars(staged), fields, settings.datetimes, json=True)
    lines.broken = [a or b for a, b in zip(lines.broken, broken_values, strict=True)]
    return _apply_mode(typed.to_arrow(), bad, lines, schema, settings)


def _json_staging_type(data_type: DataType) -> pa.DataType:
    """Top-level dates and timestamps as strings (Polars parses them in every format
    Spark accepts); lists as Arrow's ``list``, which pyarrow's JSON reader builds."""
    if isinstance(data_type, DateType | TimestampType | TimestampNTZType):
        return pa.large_string()
    return _json_nested_type(data_type)


def _json_nested_type(data_type: DataType) -> pa.DataType:
    # Text, read with timestampFormat/dateFormat (in the zone) by _parse_strings.
    if isinstance(data_type, TimestampType | DateType):
        return pa.large_string()
    if isinstance(data_type, ArrayType):
        return pa.list_(_json_nested_type(data_type.elementType))
    if isinstance(data_type, MapType):
        return pa.map_(data_type.keyType.to_arrow(), _json_nested_type(data_type.valueType))
    if isinstance(data_type, StructType):
        return pa.struct([pa.field(f.name, _json_nested_type(f.dataType))
                          for f in data_type.fields])
    return data_type.to_arrow()


def _json_fast(path: str, staging: pa.Schema) -> pa.Table | None:
    import pyarrow.json as pajson
    options = pajson.ParseOptions(explicit_schema=staging, unexpected_field_behavior="ignore")
    try:
        table = pajson.read_json(arrow_input(path), parse_options=options)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        return None
    return table.select(staging.names) if staging.names else table


def _json_records(path: str, settings: ReadSettings) -> tuple[list[dict[str, Any]], _Lines]:
    if settings.multiline:
        return _json_document(path)
    records: list[dict[str, Any]] = []
    lines = _Lines(path, [], [], [])
    for number, line in _file_lines(path):
        for record in _json_line_records(line):
            records.append(record or {})
            lines.numbers.append(number)
            lines.raw.append(line)
            lines.broken.append(record is None)
    return records, lines


def _json_line_records(line: str) -> list[dict[str, Any] | None]:
    """One line's records; ``[None]`` when it is not a JSON object (or array of them)."""
    try:
        value = json.loads(line)
    except ValueError:
        return [None]
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
        return list(value)
    return [None]


def _json_document(path: str) -> tuple[list[dict[str, Any]], _Lines]:
    text = read_bytes(path).decode("utf-8", errors="replace")
    records = _json_line_records(text)
    n = len(records)
    return [r or {} for r in records], _Lines(path, [1] * n, [text] * n,
                                              [r is None for r in records])


def _stage_records(records: list[dict[str, Any]], fields: list[StructField],
                   staging: pa.Schema) -> tuple[pa.Table, list[bool]]:
    """Build the staging columns; a value of the wrong JSON type is NULL and marks its row."""
    broken = [False] * len(records)
    arrays = []
    for f, target in zip(fields, staging.types, strict=True):
        values = [_json_value(r.get(f.name), f.dataType) for r in records]
        arrays.append(_array_or_nulls(values, target, broken))
    return pa.Table.from_arrays(arrays, schema=staging), broken


def _json_value(value: Any, data_type: DataType) -> Any:
    """A top-level value as the staging column takes it."""
    if isinstance(data_type, TimestampType) and isinstance(value, int) \
            and not isinstance(value, bool):
        return str(value)  # epoch seconds, read by _json_instant
    if isinstance(data_type, DateType | TimestampType | TimestampNTZType):
        return value  # parsed by Polars with the other strings
    return _json_nested_value(value, data_type)


def _json_nested_value(value: Any, data_type: DataType) -> Any:
    if value is None:
        return None
    # Spark keeps the JSON text of a non-string value read into a string column.
    if isinstance(data_type, StringType):
        return value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    if isinstance(data_type, StructType) and isinstance(value, dict):
        return {f.name: _json_nested_value(value.get(f.name), f.dataType)
                for f in data_type.fields}
    if isinstance(data_type, ArrayType) and isinstance(value, list):
        return [_json_nested_value(v, data_type.elementType) for v in value]
    if isinstance(data_type, MapType) and isinstance(value, dict):
        return {k: _json_nested_value(v, data_type.valueType) for k, v in value.items()}
    if isinstance(data_type, TimestampType):  # text; an integer is epoch seconds
        is_int = isinstance(value, int) and not isinstance(value, bool)
        return value if isinstance(value, str) else str(value) if is_int else None
    if isinstance(data_type, DateType):  # text; another value does not read as a date
        return value if isinstance(value, str) else json.dumps(value)
    if isinstance(data_type, TimestampNTZType) and isinstance(value, str):
        return _iso_value(value)
    return spark_json_scalar(value, data_type)  # REFUSED fails the Arrow conversion


def _iso_value(text: str) -> Any:
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        return text  # fails the Arrow conversion, so the record counts as malformed


def _array_or_nulls(values: list[Any], target: pa.DataType, broken: list[bool]) -> pa.Array:
    try:
        return pa.array(values, type=target)
    except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
        pass
    out = []
    for i, v in enumerate(values):
        try:
            out.append(pa.array([v], type=target)[0].as_py())
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError, OverflowError):
            out.append(None)
            broken[i] = True
    return pa.array(out, type=target)


# -- string to type conversion, shared by csv and JSON


def _parse_strings(raw: pl.DataFrame, fields: list[StructField], formats: DatetimeOptions,
                   *, json: bool = False) -> tuple[pl.DataFrame, pl.Series]:
    """Convert string columns to their field types (dates and timestamps with the
    reader's formats, else as Spark's cast reads them: a timestamp without an offset is a
    wall-clock time in the zone; in JSON an integer is epoch seconds); also the mask of
    rows that failed. The values are converted in one pass and compared with their text
    in a second, so no conversion is computed twice."""
    typed = raw.select([_typed(pl.col(f.name), raw.schema[f.name], f.dataType, formats,
                               json=json).alias(f.name) for f in fields])
    if not fields:
        return typed, pl.Series("bad", [False] * raw.height, dtype=pl.Boolean)
    both = typed.hstack([c.alias("\0" + c.name) for c in raw.get_columns()])
    failures = [_failed(pl.col("\0" + f.name), raw.schema[f.name], pl.col(f.name), f.dataType)
                for f in fields]
    bad = both.with_columns(pl.any_horizontal(failures).alias("\0bad"))  # literals broadcast
    return typed, bad.get_column("\0bad")


def _text_or_null(column: pl.Expr) -> pl.Expr:
    return pl.when(column.str.strip_chars() == "").then(None).otherwise(column)


def _is_text(staged: pl.DataType, data_type: DataType) -> bool:
    """Whether a staged column is text to convert (not a string column, not nested)."""
    return staged == pl.String and not isinstance(data_type, StringType)


def _typed(column: pl.Expr, staged: pl.DataType, data_type: DataType,
           formats: DatetimeOptions, *, json: bool) -> pl.Expr:
    if not _is_text(staged, data_type):
        return _nested_timestamps(column, staged, data_type, formats)
    source = _text_or_null(column)
    if json and isinstance(data_type, TimestampType):
        return _json_instant(source, formats)
    return _parse_expr(source, data_type, formats)


def _failed(column: pl.Expr, staged: pl.DataType, typed: pl.Expr, data_type: DataType
            ) -> pl.Expr:
    """Whether a value had text (or nested dates and timestamps) that did not convert."""
    if _is_text(staged, data_type):
        return _text_or_null(column).is_not_null() & typed.is_null()
    from unbounded.engine.dtypes import to_polars_dtype

    target = to_polars_dtype(data_type)
    if not has_temporals(target):
        return pl.lit(False)
    return leaves_failed(column, staged, typed, target, has_temporals)


def _nested_timestamps(column: pl.Expr, staged: pl.DataType, data_type: DataType,
                       formats: DatetimeOptions) -> pl.Expr:
    """A struct's, an array's or a map's timestamps and dates, staged as text, read as the
    top-level ones (with timestampFormat/dateFormat, else a timestamp in the zone unless
    it carries an offset; a JSON integer is seconds since the epoch); one that does not
    read is NULL (its record is malformed: :func:`_failed`), a map with one is NULL as a
    whole, as Spark's."""
    from unbounded.engine.dtypes import to_polars_dtype

    target = to_polars_dtype(data_type)
    if not has_temporals(target):
        return column

    def leaf(text: pl.Expr, staged_leaf: pl.DataType, result: pl.DataType) -> pl.Expr:
        if staged_leaf != pl.String:  # a map's date key: Arrow read it
            return text
        text = pl.when(text.str.strip_chars() != "").then(text)
        if result == pl.Date:
            return _parse_expr(text, DateType(), formats)
        return _json_instant(text, formats)
    parsed = map_leaves(column, staged, leaf, target, has_temporals)
    if not isinstance(target, pl.Map):
        return parsed
    return pl.when(leaves_failed(column, staged, parsed, target, has_temporals).not_()) \
        .then(parsed)


def _json_instant(text: pl.Expr, formats: DatetimeOptions) -> pl.Expr:
    """A JSON timestamp: an integer is seconds since the epoch (staged as its digits),
    text is read with timestampFormat or in Spark's default shapes."""
    seconds = text.str.strip_chars().cast(pl.Int64, strict=False)
    epoch = (seconds * 1_000_000).cast(pl.Datetime("us", "UTC"))
    return pl.when(text.str.contains(r"^\s*-?\d+\s*$")).then(epoch) \
        .otherwise(_parse_expr(text, TimestampType(), formats))


def _parse_expr(source: pl.Expr, data_type: DataType, formats: DatetimeOptions) -> pl.Expr:
    if isinstance(data_type, BooleanType):
        lowered = source.str.to_lowercase()
        return pl.when(lowered == "true").then(True).when(lowered == "false").then(False)
    if isinstance(data_type, DateType | TimestampType | TimestampNTZType):
        return _parse_datetime(source, data_type, formats)
    if isinstance(data_type, BinaryType):
        return source.cast(pl.Binary)
    from unbounded.engine.dtypes import to_polars_dtype

    return source.str.strip_chars().cast(to_polars_dtype(data_type), strict=False)


def _parse_datetime(source: pl.Expr, data_type: DataType, formats: DatetimeOptions
                    ) -> pl.Expr:
    """A date or timestamp with the reader's pattern for it (and where it does not read,
    with ``enableDateTimeParsingFallback``, as without one), else in Spark's default
    shapes (a timestamp without an offset is a wall-clock time in the zone)."""
    pattern = {DateType: formats.date, TimestampType: formats.timestamp,
               TimestampNTZType: formats.timestamp_ntz}[type(data_type)]
    if pattern is None:
        return _default_datetime(source, data_type, formats.zone)
    if isinstance(data_type, DateType):
        read = read_date(source, formats)
    elif isinstance(data_type, TimestampType):
        read = read_timestamp(source, formats)
    else:
        read = read_timestamp_ntz(source, formats)
    if not formats.fallback:
        return read
    return pl.coalesce([read, _default_datetime(source, data_type, formats.zone)])


def _default_datetime(source: pl.Expr, data_type: DataType, zone: str) -> pl.Expr:
    """Spark's cast reading (plan/timestamp_text.py), but a TIMESTAMP_NTZ with an offset
    does not read: the csv/JSON parsers refuse it where a cast drops it."""
    if isinstance(data_type, DateType):
        return text_to_date(source)
    if isinstance(data_type, TimestampType):
        return text_to_timestamp(source, zone)
    shapes = _Shapes(source)
    return pl.coalesce([shapes.read(fmt) for fmt in _NAIVE_TIMESTAMP_FORMATS])


class _Shapes:
    """TIMESTAMP_NTZ text sorted by shape, so each strptime sees only the values that may
    read in its format (a strptime on NULLs is nearly free, a failing one is not); text
    with an offset reads in none."""

    def __init__(self, text: pl.Expr) -> None:
        self.text = text
        self.colons = text.str.count_matches(":")
        self.t = text.str.contains("T", literal=True)
        self.offset = (self.colons >= 2) & text.str.contains(r"(?:Z|[+-]\d{2}(?::?\d{2})?)$")

    def read(self, fmt: str) -> pl.Expr:
        fits = (self.t if "T" in fmt else self.t.not_()) & self.offset.not_()
        fits &= self.colons >= 2 if "%S" in fmt else \
            self.colons == (1 if "%M" in fmt else 0)
        return pl.when(fits).then(self.text).str.to_datetime(fmt, time_unit="us",
                                                             strict=False)


def _apply_mode(typed: pa.Table, bad: pl.Series, lines: _Lines,
                schema: StructType, settings: ReadSettings) -> pa.Table:
    import pyarrow.compute as pc  # lazy: 30-50 ms at import, only malformed rows need it

    mask = pa.array([b or bool(c) for b, c in zip(lines.broken, bad.to_list(), strict=True)],
                    pa.bool_())
    if settings.mode is ParseMode.FAILFAST and pc.any(mask).as_py():
        first = mask.to_pylist().index(True)
        raise _malformed(lines.path, lines.numbers[first], lines.raw[first])
    if settings.mode is ParseMode.DROPMALFORMED:
        return _conform(typed.filter(pc.invert(mask)), schema)
    if settings.corrupt_column in schema.names:
        raw = pa.array(lines.raw, pa.large_string())
        corrupt = pc.if_else(mask, raw, pa.nulls(len(raw), pa.large_string()))
        typed = typed.append_column(settings.corrupt_column, corrupt)
    return _conform(typed, schema)


def _malformed(path: str, line: int, raw: str) -> MalformedRecordError:
    shown = raw if len(raw) <= 200 else raw[:200] + "..."
    return MalformedRecordError(
        f"Malformed record in file {path} at line {line}: {shown!r}. Parse mode FAILFAST "
        "stops at the first bad record. Fix the file, or read with option "
        "mode='PERMISSIVE' (bad fields become NULL, the raw line goes to "
        "columnNameOfCorruptRecord) or mode='DROPMALFORMED' (bad records are skipped).",
    )


# ------------------------------------------------------------------------- inference


def infer_schema(fmt: str, paths: list[str], options: dict[str, str],
                 *, streaming: bool = True) -> StructType:
    """The schema of ``paths`` when the user gave none.

    Parquet's, ORC's and Avro's come from file metadata and text's is ``value STRING``.
    csv and JSON are sampled only with option ``inferSchema=true``; a streaming read
    without it fails, as in Spark, while a batch read falls back to Spark's batch
    defaults (csv: all strings, JSON: inferred).
    """
    fmt = fmt.lower()
    _reader(fmt)
    if fmt == "text":
        return StructType([StructField("value", StringType())])
    settings = ReadSettings.from_options(options)
    files = expand_paths(paths)
    if fmt in ("parquet", "orc", "avro"):
        return _infer_self_describing(fmt, files, paths)
    if not settings.infer_schema and streaming:
        raise AnalysisException(
            f"Schema must be specified when creating a streaming source DataFrame from "
            f"{fmt}. Pass it with .schema('col1 TYPE, ...'), or set option "
            "inferSchema=true to sample the files that exist when the query starts.",
            error_class="STREAM_SCHEMA_REQUIRED",
        )
    if fmt == "csv":
        return _infer_csv(files, settings)
    return _infer_json(files)


def _infer_self_describing(fmt: str, files: list[str], paths: list[str]) -> StructType:
    """The schema stored in the first file (Parquet, ORC or Avro), every field nullable."""
    if not files:
        label = {"parquet": "Parquet", "orc": "ORC", "avro": "Avro"}[fmt]
        raise AnalysisException(
            f"Unable to infer schema for {label} at {', '.join(paths)}: no {fmt} files "
            "found. Specify the schema with .schema(...).",
            error_class="UNABLE_TO_INFER_SCHEMA",
        )
    schema = _file_schema(fmt, files[0])
    return StructType([StructField(f.name, f.dataType, True) for f in schema.fields])


def _file_schema(fmt: str, path: str) -> StructType:
    if fmt == "parquet":
        with parquet_file(path) as source:
            return StructType.from_arrow(source.schema_arrow)
    if fmt == "orc":
        from pyarrow import orc

        return StructType.from_arrow(orc.ORCFile(arrow_input(path)).schema)
    from unbounded.files.avro import avro_file_schema

    with _local_copy(path) as local:
        return avro_file_schema(local)


def _infer_csv(files: list[str], settings: ReadSettings) -> StructType:
    if not files:
        raise AnalysisException(
            "Unable to infer the csv schema: no files found. Specify it with .schema(...).",
            error_class="UNABLE_TO_INFER_SCHEMA",
        )
    table = _csv_sample(files[0], settings)
    names = [n if settings.header else f"_c{i}" for i, n in enumerate(table.column_names)]
    if not settings.infer_schema:
        return StructType([StructField(n, StringType()) for n in names])
    types = [_csv_inferred_type(table.column(i)) for i in range(table.num_columns)]
    texts = [n for n, t in zip(table.column_names, types, strict=True)
             if isinstance(t, StringType | DateType | TimestampType | TimestampNTZType)]
    if texts:
        sample = _to_polars(_csv_sample(files[0], settings, as_text=texts))
        decided = {n: _csv_datetime_type(sample.get_column(n), settings) for n in texts}
        types = [decided.get(n, t) for n, t in zip(table.column_names, types, strict=True)]
    return StructType([StructField(n, t) for n, t in zip(names, types, strict=True)])


def _csv_sample(path: str, settings: ReadSettings, as_text: list[str] | None = None
                ) -> pa.Table:
    """The file with pyarrow's inferred types, or only the ``as_text`` columns as text."""
    import pyarrow.csv as pacsv
    text_types = dict.fromkeys(as_text or [], pa.large_string())
    return pacsv.read_csv(
        arrow_input(path),
        read_options=pacsv.ReadOptions(autogenerate_column_names=not settings.header),
        parse_options=_csv_parse_options(settings, lambda _row: "skip"),
        convert_options=pacsv.ConvertOptions(
            null_values=[settings.null_value], strings_can_be_null=True,
            true_values=["true", "True", "TRUE"], false_values=["false", "False", "FALSE"],
            column_types=text_types, include_columns=as_text),
    )


def _csv_datetime_type(values: pl.Series, settings: ReadSettings) -> DataType:
    """Spark's csv inference of a column of text: DATE when every value reads with
    ``dateFormat`` (``preferDate``, the default), TIMESTAMP when every value reads with
    ``timestampFormat`` (without it, in the shapes Spark's cast reads), both mixed:
    TIMESTAMP only when neither format is set, as the lenient default reads the dates
    too; else STRING."""
    formats = settings.datetimes
    text = pl.col("v")
    date_formats = DatetimeOptions(formats.zone, date=formats.date or "yyyy-MM-dd")
    is_date = read_date(text, date_formats).is_not_null() if settings.prefer_date \
        else pl.lit(False)
    is_instant = _parse_datetime(text, TimestampType(), formats).is_not_null()
    kinds = pl.DataFrame({"v": values}).drop_nulls() \
        .select(is_date.alias("date"), (is_instant & is_date.not_()).alias("instant"))
    dates, instants = int(kinds["date"].sum()), int(kinds["instant"].sum())
    if kinds.height == 0 or dates + instants < kinds.height:
        return StringType()
    if instants == 0:
        return DateType()
    lenient = formats.timestamp is None and formats.date in (None, "yyyy-MM-dd")
    return TimestampType() if dates == 0 or lenient else StringType()


def _csv_inferred_type(column: pa.ChunkedArray) -> DataType:
    t = column.type
    if pa.types.is_integer(t):
        import pyarrow.compute as pc  # lazy: 30-50 ms at import

        low, high = pc.min(column).as_py(), pc.max(column).as_py()
        fits = low is None or (low >= -(2**31) and high < 2**31)
        return IntegerType() if fits else LongType()
    if pa.types.is_floating(t):
        return DoubleType()
    if pa.types.is_null(t):
        return StringType()
    return from_arrow_type(t)


def _infer_json(files: list[str]) -> StructType:
    if not files:
        raise AnalysisException(
            "Unable to infer the JSON schema: no files found. Specify it with .schema(...).",
            error_class="UNABLE_TO_INFER_SCHEMA",
        )
    merged: DataType = StructType()
    for f in files:
        merged = _merge_types(merged, _json_spark_struct(_json_file_schema(f)))
    assert isinstance(merged, StructType)
    return merged


def _json_file_schema(path: str) -> StructType:
    import pyarrow.json as pajson
    try:
        return StructType.from_arrow(pajson.read_json(arrow_input(path)).schema)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    records = [r for _, line in _file_lines(path)
               for r in _json_line_records(line) if r is not None]
    try:
        return StructType.from_arrow(pa.Table.from_pylist(records).schema)
    except (pa.ArrowInvalid, pa.ArrowTypeError):
        names = sorted({k for r in records for k in r})
        return StructType([StructField(n, StringType()) for n in names])


def _merge_types(a: DataType, b: DataType) -> DataType:
    """The type that holds values of both (Spark's JSON inference rule: else string)."""
    if a == b or isinstance(b, NullType):
        return a
    if isinstance(a, NullType):
        return b
    if isinstance(a, StructType) and isinstance(b, StructType):
        fields = {f.name: f.dataType for f in a.fields}
        for f in b.fields:
            fields[f.name] = _merge_types(fields[f.name], f.dataType) \
                if f.name in fields else f.dataType
        return StructType([StructField(n, t) for n, t in sorted(fields.items())])
    if isinstance(a, ArrayType) and isinstance(b, ArrayType):
        return ArrayType(_merge_types(a.elementType, b.elementType))
    numeric = (LongType, DoubleType)
    if isinstance(a, numeric) and isinstance(b, numeric):
        return DoubleType()
    return StringType()


def _json_spark_struct(struct: StructType) -> StructType:
    """Spark's inferred JSON types: fields sorted by name, longs, strings for times."""
    fields = [StructField(f.name, _json_spark_type(f.dataType)) for f in struct.fields]
    return StructType(sorted(fields, key=lambda f: f.name))


def _json_spark_type(t: DataType) -> DataType:
    if isinstance(t, StructType):
        return _json_spark_struct(t)
    if isinstance(t, ArrayType):
        return ArrayType(_json_spark_type(t.elementType))
    if isinstance(t, NullType | TimestampType | TimestampNTZType | DateType):
        return StringType()
    if isinstance(t, IntegerType):
        return LongType()
    if isinstance(t, FloatType | DecimalType):
        return DoubleType()
    return t
