"""Writing one data file in a Spark file format: what the file sink and the batch writer
(``DataFrame.write``) share.

Files are named as Spark names them (``part-00000-<uuid>.c000.snappy.parquet``) and are
fsynced before the caller records them anywhere; new folders (``col=value/``) are made
with their names fsynced into their parents. What is left to the caller is one fsync of
each folder the files went into, once all are written (the file sink does it before its
manifest entry names them). A folder may be an fsspec URL (``s3://bucket/out``): each
file is then uploaded whole under its name. A partitioned write puts each partition's
rows under ``col=value/`` folders, without the partition columns, as Spark does.

Example:
    >>> import os, tempfile
    >>> import pyarrow as pa
    >>> folder = tempfile.mkdtemp()
    >>> table = pa.table({"k": ["a", "b"], "v": [1, 2]})
    >>> [os.path.relpath(p, folder).split(os.sep)[0] for p in
    ...  write_partitioned(folder, "json", table, ("k",), {}, stem="part-0")]
    ['k=a', 'k=b']
"""

from __future__ import annotations

import datetime
import os
import tempfile

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from unbounded.checkpoint.atomic import fsync_file, make_dirs, note_written
from unbounded.checkpoint.storage import FsspecStorage, is_url, storage_for
from unbounded.config import option_value
from unbounded.errors import AnalysisException
from unbounded.files.datetime_text import DatetimeOptions, datetimes_as_text, has_datetimes
from unbounded.files.partitions import DEFAULT_PARTITION_NAME, escape_path_name
from unbounded.plan.time_zones import to_local

__all__ = ["WRITE_FORMATS", "file_extension", "write_data_file", "write_partitioned"]

_EXTENSIONS = {"parquet": ".snappy.parquet", "json": ".json", "csv": ".csv", "text": ".txt",
               "orc": ".snappy.orc", "avro": ".avro"}
WRITE_FORMATS = tuple(_EXTENSIONS)
_ORC_CODECS = {"none": "uncompressed", "uncompressed": "uncompressed", "snappy": "snappy",
               "zlib": "zlib", "lz4": "lz4", "zstd": "zstd"}


def file_extension(fmt: str) -> str:
    """The file name suffix Spark gives a data file of ``fmt``."""
    if fmt not in _EXTENSIONS:
        raise AnalysisException(
            f"Cannot write the format {fmt!r}; writable formats are "
            f"{', '.join(WRITE_FORMATS)}.", error_class="DATA_SOURCE_NOT_FOUND")
    return _EXTENSIONS[fmt]


def write_data_file(path: str, fmt: str, table: pa.Table, options: dict[str, str], *,
                    sync: bool = True) -> None:
    """Write ``table`` to the new file ``path`` in ``fmt`` and fsync it (through the
    checkpoint's file-system seam, so a fault-injecting one sees data files too), unless
    ``sync=False``: the caller fsyncs it (a file sink, with its manifest entry). At a
    URL the file is written locally first and uploaded under its final name, which no
    other writer uses (a uuid): an object store publishes it whole or not at all."""
    lowered = {k.lower(): v for k, v in options.items()}
    if is_url(path):
        _upload_data_file(path, fmt, table, lowered)
        return
    make_dirs(os.path.dirname(path))
    _WRITERS[fmt](path, table, lowered)
    note_written(path)
    if sync:
        fsync_file(path)


def _upload_data_file(path: str, fmt: str, table: pa.Table, options: dict[str, str]
                      ) -> None:
    store = storage_for(path)
    assert isinstance(store, FsspecStorage)
    handle, local = tempfile.mkstemp(suffix=file_extension(fmt), prefix=".unbounded-")
    os.close(handle)
    try:
        _WRITERS[fmt](local, table, options)
        store.upload(local, path)
    finally:
        os.unlink(local)


def write_partitioned(folder: str, fmt: str, table: pa.Table, partition_by: tuple[str, ...],
                      options: dict[str, str], *, stem: str, zone: str = "UTC",
                      sync: bool = True) -> list[str]:
    """Write ``table`` as ``<folder>/[col=value/...]<stem><ext>`` files; their paths. A
    timestamp partition value is its wall-clock time in ``zone`` (the session's, unless
    the ``timeZone`` option says otherwise), as Spark names the folder. ``sync`` as
    :func:`write_data_file`'s."""
    name = stem + file_extension(fmt)
    zone = option_value(options, "timeZone", zone) or zone
    options = {**options, "timeZone": zone}  # the csv/JSON writers' timestamps read it
    if not partition_by:
        path = os.path.join(folder, name)
        write_data_file(path, fmt, table, options, sync=sync)
        return [path]
    frame = _polars(table)
    frame = frame.with_columns([to_local(pl.col(c), zone).alias(c) for c in partition_by
                                if _is_instant(frame.schema[c])])
    frame = frame.with_columns([pl.col(c).replace("", None) for c in partition_by
                                if frame.schema[c] == pl.String])  # one folder with NULL
    paths = []
    for key, group in frame.partition_by(list(partition_by), as_dict=True).items():
        sub = os.path.join(folder, *(f"{escape_path_name(c)}={partition_value(v)}"
                                     for c, v in zip(partition_by, key, strict=True)))
        path = os.path.join(sub, name)
        write_data_file(path, fmt, group.drop(list(partition_by)).to_arrow(), options,
                        sync=sync)
        paths.append(path)
    return paths


def _is_instant(dtype: pl.DataType) -> bool:
    return isinstance(dtype, pl.Datetime) and dtype.time_zone is not None


def partition_value(value: object) -> str:
    """A partition folder's value as Spark spells it: path-escaped, NULL and the empty
    string as a special name."""
    if value is None or value == "":
        return DEFAULT_PARTITION_NAME
    if isinstance(value, datetime.datetime):  # as CAST(ts AS STRING): no zero fraction
        text = value.strftime("%Y-%m-%d %H:%M:%S")
        text += f".{value.microsecond:06d}".rstrip("0") if value.microsecond else ""
        return escape_path_name(text)
    return escape_path_name(str(value))


def _polars(table: pa.Table) -> pl.DataFrame:
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    return frame


def _write_parquet(path: str, table: pa.Table, options: dict[str, str]) -> None:
    pq.write_table(table, path, compression=options.get("compression", "snappy"))


def _write_orc(path: str, table: pa.Table, options: dict[str, str]) -> None:
    from pyarrow import orc
    codec = _ORC_CODECS.get(options.get("compression", "snappy").lower())
    if codec is None:
        raise AnalysisException(
            f"Unknown orc compression {options['compression']!r}; use one of "
            f"{', '.join(sorted(_ORC_CODECS))}.", error_class="INVALID_OPTION")
    orc.write_table(table, path, compression=codec)


def _write_json(path: str, table: pa.Table, options: dict[str, str]) -> None:
    """One object a line, as Spark's writer prints it (:mod:`.json_lines`); NULL fields
    are left out unless ``ignoreNullFields`` is false."""
    from unbounded.files.csv_lines import write_lines
    from unbounded.files.json_lines import json_lines

    ignore_nulls = options.get("ignorenullfields", "true").strip().lower() != "false"
    with open(path, "wb") as out:
        write_lines(out, json_lines(_with_datetime_text(table, options),
                                    ignore_nulls=ignore_nulls))


def _with_datetime_text(table: pa.Table, options: dict[str, str]) -> pl.DataFrame:
    """Dates and timestamps, nested ones too, as text with the writer's timestampFormat,
    timestampNTZFormat and dateFormat (Spark's defaults without them) in its zone."""
    frame = _polars(table)
    formats = DatetimeOptions.from_options(options)
    return frame.with_columns(datetimes_as_text(pl.col(c), t, formats).alias(c)
                              for c, t in frame.schema.items() if has_datetimes(t))


def _write_csv(path: str, table: pa.Table, options: dict[str, str]) -> None:
    """As Spark's writer prints csv (:mod:`.csv_lines`), dates and timestamps with the
    writer's patterns."""
    from unbounded.files.csv_lines import CsvWriteOptions, write_csv_lines

    with open(path, "wb") as out:
        write_csv_lines(out, _with_datetime_text(table, options),
                        CsvWriteOptions.from_options(options))


def _write_text(path: str, table: pa.Table, options: dict[str, str]) -> None:
    if table.num_columns != 1 or not (pa.types.is_string(table.schema.types[0])
                                      or pa.types.is_large_string(table.schema.types[0])):
        raise AnalysisException(
            "Text data source supports only a single column of type string, but the data "
            f"has {table.num_columns} column(s): {table.schema}. Select one string column "
            "(e.g. with to_json or concat_ws).", error_class="INVALID_SCHEMA")
    separator = options.get("linesep", "\n")
    with open(path, "w", encoding="utf-8") as out:
        for value in table.column(0).to_pylist():
            out.write(("" if value is None else value) + separator)


def _write_avro(path: str, table: pa.Table, options: dict[str, str]) -> None:
    from unbounded.files.avro import write_avro

    write_avro(path, table, options)


_WRITERS = {"parquet": _write_parquet, "orc": _write_orc, "json": _write_json,
            "csv": _write_csv, "text": _write_text, "avro": _write_avro}
