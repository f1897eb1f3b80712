"""``spark.read`` and ``df.write``: batch reads of the file formats (honouring file-sink
manifests) and batch writes of files and warehouse tables.

A path may be a local one or an fsspec URL (``s3://bucket/out``, reached with fsspec's
options as a checkpoint is): reads list, check and open it through the store, and
writes upload each data file under its own name (:mod:`unbounded.files.stores`).
"""

from __future__ import annotations

import glob
import os
import shutil
import uuid
from enum import Enum
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from unbounded.checkpoint.storage import is_url, storage_for
from unbounded.engine.context import session_time_zone
from unbounded.errors import AnalysisException
from unbounded.files.paths import local_path, path_uri
from unbounded.files.stores import clear_folder, is_folder, join, path_exists, under
from unbounded.plan.logical import FileRelation
from unbounded.sql.options import OptionsBuilder
from unbounded.sql.types import StructField, StructType, parse_ddl_schema

if TYPE_CHECKING:
    from unbounded.files.partitions import PartitionedFiles
    from unbounded.plan.expressions import Expression
    from unbounded.plan.logical import LogicalPlan
    from unbounded.session import SparkSession
    from unbounded.sql.dataframe import DataFrame

__all__ = ["DataFrameReader", "DataFrameWriter", "list_data_files"]

_FORMATS = ("csv", "json", "parquet", "text", "orc", "avro")


def list_data_files(path: str, *, ignore_missing: bool = False) -> list[str]:
    """The data files under ``path``: the manifest's files when a file sink wrote it
    (a listed file that is gone fails unless ``ignore_missing``, as in Spark),
    otherwise every visible file (names starting with ``_`` or ``.`` are skipped)."""
    from unbounded.files.manifest import FileSinkManifest

    if is_url(path):
        return _url_data_files(path, ignore_missing=ignore_missing)
    local = path.removeprefix("file://")
    if os.path.isdir(os.path.join(local, "_spark_metadata")):
        return FileSinkManifest(local).existing_files(ignore_missing=ignore_missing)
    if os.path.isfile(local):
        return [local]
    matches = glob.glob(local) if glob.has_magic(local) else [local]
    files: list[str] = []
    for match in matches:
        if os.path.isfile(match):
            files.append(match)
            continue
        for root, dirs, names in os.walk(match):
            dirs[:] = sorted(d for d in dirs if not d.startswith(("_", ".")))
            files.extend(os.path.join(root, n) for n in sorted(names)
                         if not n.startswith(("_", ".")))
    return files


def _url_data_files(url: str, *, ignore_missing: bool) -> list[str]:
    """The objects under ``url`` in name order, or its file sink manifest's files."""
    from unbounded.files.listing import has_sink_manifest
    from unbounded.files.listing import list_data_files as listed
    from unbounded.files.manifest import FileSinkManifest

    if has_sink_manifest(url):
        return FileSinkManifest(url).existing_files(ignore_missing=ignore_missing)
    return sorted(f.path for f in listed(url))


def _partition_projection(full: StructType, keys: list[StructField],
                          values: tuple[str | None, ...]) -> tuple[Expression, ...]:
    """Spark's order: the files' columns, a partition column taking the place (and the
    value) of a file column of its name, then the other partition columns."""
    from unbounded.plan.expressions import Alias, Cast, ColumnRef, Literal

    constants: dict[str, Expression] = {
        k.name.lower(): Alias(Cast(Literal(v), k.dataType), k.name)
        for k, v in zip(keys, values, strict=True)}
    exprs = [constants.pop(f.name.lower(), ColumnRef(f"`{f.name}`")) for f in full.fields]
    return (*exprs, *constants.values())


class DataFrameReader(OptionsBuilder):
    def __init__(self, session: SparkSession) -> None:
        self._session = session
        self._format = "parquet"
        self._options: dict[str, str] = {}
        self._schema: StructType | None = None

    def format(self, source: str) -> DataFrameReader:
        self._format = source.lower()
        return self

    def schema(self, schema: StructType | str) -> DataFrameReader:
        self._schema = parse_ddl_schema(schema) if isinstance(schema, str) else schema
        return self

    def load(self, path: str | list[str] | None = None, format: str | None = None,
             schema: StructType | str | None = None, **options: Any) -> DataFrame:
        from unbounded.files.formats import infer_schema
        from unbounded.sql.dataframe import DataFrame

        if format is not None:
            self.format(format)
        if schema is not None:
            self.schema(schema)
        self.options(**options)
        if self._format == "delta":
            return self._load_delta(path)
        if self._format in ("statestore", "state-metadata"):
            return self._load_state(path)
        if self._format not in _FORMATS:
            raise AnalysisException(
                f"[DATA_SOURCE_NOT_FOUND] Failed to find the data source {self._format!r}; "
                f"batch reads support {', '.join(_FORMATS)}.")
        raw = path if path is not None else self._options.get("path")
        if raw is None:
            raise AnalysisException("A path is required: spark.read.format(...).load(path).")
        paths = [raw] if isinstance(raw, str) else list(raw)
        files = self._files(paths, ignore_missing=self._ignore_missing_files())
        found = self._partitions(paths, files)
        if found is not None and len(found.columns.fields):
            return DataFrame(self._partitioned_plan(found), self._session)
        resolved = self._schema or infer_schema(self._format, files, dict(self._options),
                                                streaming=False)
        relation = FileRelation(self._format, tuple(files), resolved,
                                self._read_options(), tuple(paths))
        return DataFrame(relation, self._session)

    def _read_options(self) -> tuple[tuple[str, str], ...]:
        """The reader's options, with Spark's ``timeZone`` default: the session zone,
        where csv/JSON timestamps without an offset are wall-clock times."""
        options = tuple(self._options.items())
        if self._format.lower() not in ("csv", "json"):
            return options
        return (("timeZone", session_time_zone(self._session.conf.getAll())), *options)

    def _partitions(self, paths: list[str], files: list[str]) -> PartitionedFiles | None:
        """The ``col=value`` folders under the given folders (None unless every path is
        a folder; columns must agree across them, as Spark's discovery requires)."""
        from unbounded.files.partitions import discover_partitions

        roots = [_root(p) for p in paths]
        if not roots or not all(_is_discoverable(r) for r in roots):
            return None
        infer = self._session.conf.get(
            "spark.sql.sources.partitionColumnTypeInference.enabled", "true")
        return discover_partitions({r: [f for f in files if under(f, r)] for r in roots},
                                   infer_types=str(infer).lower() == "true")

    def _partitioned_plan(self, found: PartitionedFiles) -> LogicalPlan:
        """Spark's partitioned read: each group's files with its values as constants,
        the partition columns after the data columns (typed as a user schema says)."""
        from unbounded.files.formats import infer_schema
        from unbounded.plan.logical import Project, Union

        names = {n.lower() for n in found.columns.names}
        files = [f for group in found.groups.values() for f in group]
        full = self._schema or infer_schema(self._format, files, dict(self._options),
                                            streaming=False)
        data = StructType([f for f in full.fields if f.name.lower() not in names])
        given = {f.name.lower(): f for f in (self._schema.fields if self._schema else [])}
        keys = [StructField(k.name, given[k.name.lower()].dataType)
                if k.name.lower() in given else k for k in found.columns.fields]
        options = self._read_options()
        plans: list[LogicalPlan] = [
            Project(FileRelation(self._format, tuple(group), data, options),
                    _partition_projection(full, keys, values))
            for values, group in sorted(found.groups.items(), key=lambda g: str(g[0]))]
        return plans[0] if len(plans) == 1 else Union(tuple(plans))

    def _load_delta(self, path: str | list[str] | None) -> DataFrame:
        """A Delta table's snapshot (option ``versionAsOf`` for an older one), read now."""
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        from unbounded.plan.logical import DataRelation
        from unbounded.sql.dataframe import DataFrame

        raw = path if path is not None else self._options.get("path")
        if not isinstance(raw, str):
            raise AnalysisException("A Delta read takes one table path: "
                                    "spark.read.format('delta').load('/path').")
        _refuse_url("Delta tables", raw)
        version = self._options.get("versionAsOf")
        try:
            table = DeltaTable(local_path(raw), version=int(version) if version else None)
        except TableNotFoundError:
            raise AnalysisException(
                f"[DELTA_TABLE_NOT_FOUND] {raw} is not a Delta table (no _delta_log).",
                error_class="DELTA_TABLE_NOT_FOUND") from None
        return DataFrame(DataRelation(pa.table(table.to_pyarrow_table())), self._session)

    def _load_state(self, path: str | list[str] | None) -> DataFrame:
        """Spark 4's state data sources over a checkpoint folder (batch-only)."""
        from unbounded.plan.logical import DataRelation
        from unbounded.sql.dataframe import DataFrame
        from unbounded.state.reader import (
            StateReadOptions,
            read_state_metadata,
            read_state_store,
        )

        raw = path if path is not None else self._options.get("path")
        if not isinstance(raw, str):
            raise AnalysisException("A state read takes one checkpoint folder: spark.read"
                                    f".format({self._format!r}).load('/checkpoint').")
        folder = local_path(raw)
        table = (read_state_metadata(folder) if self._format == "state-metadata" else
                 read_state_store(folder, StateReadOptions.parse(self._options)))
        return DataFrame(DataRelation(table), self._session)

    def _ignore_missing_files(self) -> bool:
        """The option ``ignoreMissingFiles``, else spark.sql.files.ignoreMissingFiles."""
        conf = self._session.conf.get("spark.sql.files.ignoreMissingFiles", "false")
        option = [v for k, v in self._options.items() if k.lower() == "ignoremissingfiles"]
        return str(option[-1] if option else conf).lower() == "true"

    @staticmethod
    def _files(paths: list[str], *, ignore_missing: bool) -> list[str]:
        files: list[str] = []
        for p in paths:
            root = _root(p)
            if (is_url(root) or not glob.has_magic(root)) and not path_exists(root):
                shown = root if is_url(root) else f"file:{root}"
                raise AnalysisException(f"[PATH_NOT_FOUND] Path does not exist: {shown}.",
                                        error_class="PATH_NOT_FOUND")
            files.extend(list_data_files(root, ignore_missing=ignore_missing))
        return files

    def csv(self, path: str | list[str], schema: StructType | str | None = None,
            **options: Any) -> DataFrame:
        return self.load(path, "csv", schema, **options)

    def json(self, path: str | list[str], schema: StructType | str | None = None,
             **options: Any) -> DataFrame:
        return self.load(path, "json", schema, **options)

    def parquet(self, *paths: str, **options: Any) -> DataFrame:
        return self.load(list(paths), "parquet", None, **options)

    def text(self, path: str | list[str], **options: Any) -> DataFrame:
        return self.load(path, "text", None, **options)

    def orc(self, path: str | list[str], **options: Any) -> DataFrame:
        return self.load(path, "orc", None, **options)

    def table(self, tableName: str) -> DataFrame:
        return self._session.table(tableName)


def _root(path: str) -> str:
    """A read path as it is listed: a URL without its trailing slash, a local path
    without ``file://``."""
    return path.rstrip("/") if is_url(path) else path.removeprefix("file://")


def _is_discoverable(root: str) -> bool:
    """Whether ``root`` is a folder whose ``col=value`` subfolders are partitions (a
    glob is not one; a URL's globs are not expanded)."""
    return (is_url(root) or not glob.has_magic(root)) and is_folder(root)


def _target_folder(path: str) -> str:
    """A write's output folder: a URL as given (no trailing slash), a local path made
    absolute."""
    return path.rstrip("/") if is_url(path) else os.path.abspath(local_path(path))


class SaveMode(Enum):
    """What a batch write does when its target exists (Spark's ``SaveMode``)."""

    APPEND = "append"
    OVERWRITE = "overwrite"
    IGNORE = "ignore"
    ERROR = "errorifexists"

    @classmethod
    def parse(cls, mode: str) -> SaveMode:
        text = mode.lower()
        if text in ("error", "default"):
            return cls.ERROR
        try:
            return cls(text)
        except ValueError:
            raise AnalysisException(
                f"[INVALID_SAVE_MODE] Unknown save mode: {mode}. Accepted save modes are "
                "'overwrite', 'append', 'ignore', 'error', 'errorifexists', 'default'.",
                error_class="INVALID_SAVE_MODE") from None


class DataFrameWriter(OptionsBuilder):
    """``df.write``: write a batch DataFrame's rows to files or to a warehouse table.

    Data files are written to ``<path>/_temporary/<id>`` first and moved into place, then
    ``_SUCCESS`` is written, so a failed write leaves no partial data where readers look.

    >>> import tempfile
    >>> from unbounded.sql import SparkSession
    >>> spark = SparkSession.builder.create()
    >>> out = tempfile.mkdtemp() + "/out"
    >>> spark.range(3).write.mode("overwrite").json(out)
    >>> sorted(r.id for r in spark.read.json(out).collect())
    [0, 1, 2]
    """

    def __init__(self, df: DataFrame) -> None:
        self._df = df
        # The session zone: the wall clock of timestamp partition folders.
        self._zone = session_time_zone(df.sparkSession.conf.getAll())
        self._format: str | None = None
        self._mode = SaveMode.ERROR
        self._options: dict[str, str] = {}
        self._partition_by: tuple[str, ...] = ()

    def format(self, source: str) -> DataFrameWriter:
        self._format = source.lower()
        return self

    def mode(self, saveMode: str | None) -> DataFrameWriter:
        if saveMode is not None:
            self._mode = SaveMode.parse(saveMode)
        return self

    def partitionBy(self, *cols: str | list[str]) -> DataFrameWriter:
        names = cols[0] if len(cols) == 1 and isinstance(cols[0], list) else cols
        self._partition_by = tuple(str(c) for c in names)
        return self

    def _configure(self, format: str | None, mode: str | None, partitionBy: Any,
                   options: dict[str, Any]) -> None:
        if format is not None:
            self.format(format)
        self.mode(mode)
        if partitionBy is not None:
            self.partitionBy(*([partitionBy] if isinstance(partitionBy, str) else partitionBy))
        self.options(**{k: v for k, v in options.items() if v is not None})

    @property
    def _resolved_format(self) -> str:
        return self._format or str(self._df.sparkSession.conf.get(
            "spark.sql.sources.default", "parquet")).lower()

    # ---- files -------------------------------------------------------------------------
    def save(self, path: str | None = None, format: str | None = None,
             mode: str | None = None, partitionBy: Any = None, **options: Any) -> None:
        self._configure(format, mode, partitionBy, options)
        target = path if path is not None else self._options.get("path")
        if target is None:
            raise AnalysisException("A path is required: df.write.format(...).save(path), "
                                    "or saveAsTable(name).", error_class="MISSING_PATH")
        folder = _target_folder(target)
        if self._resolved_format == "delta":
            self._write_delta(folder)
        else:
            self._write_path(folder)

    def _write_delta(self, folder: str) -> None:
        """A Delta commit through delta-rs; with options ``txnAppId`` and ``txnVersion``
        (Delta's idempotent writes, for ``foreachBatch``) a version already committed by
        that app id is skipped."""
        from deltalake import write_deltalake

        from unbounded.sinks.delta import write_batch

        _refuse_url("Delta tables", folder)
        app_id, version = self._options.get("txnAppId"), self._options.get("txnVersion")
        table = self._table()
        if app_id and version:
            if self._mode is not SaveMode.APPEND:
                raise AnalysisException("Idempotent Delta writes (txnAppId, txnVersion) "
                                        'need mode("append").', error_class="INVALID_OPTION")
            write_batch(table, int(version), folder, app_id)
            return
        if self._mode is SaveMode.ERROR and os.path.isdir(os.path.join(folder, "_delta_log")):
            raise AnalysisException(
                f"[DELTA_PATH_EXISTS] Cannot write to already existent path {path_uri(folder)} "
                'without setting mode("overwrite") or mode("append").',
                error_class="DELTA_PATH_EXISTS")
        schema_mode = "overwrite" if _flag(self._options, "overwriteSchema") else (
            "merge" if _flag(self._options, "mergeSchema") else None)
        mode = "error" if self._mode is SaveMode.ERROR else self._mode.value
        write_deltalake(folder, table, mode=mode,  # type: ignore[arg-type]
                        partition_by=list(self._partition_by) or None,
                        schema_mode=schema_mode)  # type: ignore[arg-type]

    def _write_path(self, folder: str) -> None:
        exists = path_exists(folder)
        if exists and self._mode is SaveMode.ERROR:
            raise AnalysisException(
                f"[PATH_ALREADY_EXISTS] Path {path_uri(folder)} already exists. Set mode as "
                '"overwrite" to overwrite the existing path.', error_class="PATH_ALREADY_EXISTS")
        if exists and self._mode is SaveMode.IGNORE:
            return
        table = self._table()
        if exists and self._mode is SaveMode.OVERWRITE:
            clear_folder(folder)
        _write_files(folder, self._resolved_format, table, self._partition_by,
                     {k: v for k, v in self._options.items() if k != "path"}, zone=self._zone)

    def _table(self) -> pa.Table:
        table = self._df.toArrow()
        missing = [c for c in self._partition_by if c not in table.column_names]
        if missing:
            raise AnalysisException(
                f"[UNRESOLVED_COLUMN] partitionBy: no column {missing[0]!r}; columns: "
                f"{table.column_names}.", error_class="UNRESOLVED_COLUMN")
        return table

    def parquet(self, path: str, mode: str | None = None, partitionBy: Any = None,
                compression: str | None = None) -> None:
        self.save(path, "parquet", mode, partitionBy, compression=compression)

    def orc(self, path: str, mode: str | None = None, partitionBy: Any = None,
            compression: str | None = None) -> None:
        self.save(path, "orc", mode, partitionBy, compression=compression)

    def json(self, path: str, mode: str | None = None, **options: Any) -> None:
        self.save(path, "json", mode, None, **options)

    def csv(self, path: str, mode: str | None = None, **options: Any) -> None:
        self.save(path, "csv", mode, None, **options)

    def text(self, path: str, **options: Any) -> None:
        self.save(path, "text", None, None, **options)

    # ---- tables ------------------------------------------------------------------------
    def saveAsTable(self, name: str, format: str | None = None, mode: str | None = None,
                    partitionBy: Any = None, **options: Any) -> None:
        """Write the rows as the warehouse table ``name`` (created when missing; with
        append, matched to the existing table's columns by name, as in Spark)."""
        self._configure(format, mode, partitionBy, options)
        catalog = self._df.sparkSession.catalog
        existing = catalog._table(name)
        if existing is None or self._mode is SaveMode.OVERWRITE:
            self._create_table(name)
            return
        if self._mode is SaveMode.ERROR:
            raise AnalysisException(
                f"[TABLE_OR_VIEW_ALREADY_EXISTS] Cannot create table or view `{name}` because "
                "it already exists. Choose a different name, drop the existing object, or use "
                'mode("append") / mode("overwrite").', error_class="TABLE_OR_VIEW_ALREADY_EXISTS")
        if self._mode is SaveMode.APPEND:
            location, metadata = existing
            self._check_table_format(name, metadata)
            by_name = _conform_by_name(self._table(), metadata.schema, name)
            _write_files(location, metadata.format, by_name, metadata.partition_columns,
                         self._options, zone=self._zone)

    def _create_table(self, name: str) -> None:
        from unbounded.sql.catalog import TableMetadata

        table = self._table()
        order = [c for c in table.column_names if c not in self._partition_by]
        table = table.select([*order, *self._partition_by])
        metadata = TableMetadata(self._resolved_format, StructType.from_arrow(table.schema),
                                 self._partition_by)
        location = self._df.sparkSession.catalog._create_table(name, metadata, replace=True)
        _write_files(location, metadata.format, table, self._partition_by, self._options,
                     zone=self._zone)

    def _check_table_format(self, name: str, metadata: Any) -> None:
        if self._format is not None and self._format != metadata.format:
            raise AnalysisException(
                f"The format of the existing table {name} is `{metadata.format}`. It doesn't "
                f"match the specified format `{self._format}`.",
                error_class="TABLE_FORMAT_MISMATCH")

    def insertInto(self, tableName: str, overwrite: bool | None = None) -> None:
        """Add the rows to an existing table, matching its columns by position."""
        catalog = self._df.sparkSession.catalog
        existing = catalog._table(tableName)
        if existing is None:
            catalog._resolve(tableName)  # raises TABLE_OR_VIEW_NOT_FOUND
            raise AnalysisException(f"insertInto({tableName!r}): only warehouse tables take "
                                    "inserts, not views.", error_class="UNSUPPORTED_INSERT")
        location, metadata = existing
        table = _conform_by_position(self._df.toArrow(), metadata.schema, tableName)
        if overwrite or self._mode is SaveMode.OVERWRITE:
            clear_folder(location, keep=frozenset({"_unbounded_table.json"}))
        _write_files(location, metadata.format, table, metadata.partition_columns,
                     self._options, zone=self._zone)


def _flag(options: dict[str, str], key: str) -> bool:
    return any(k.lower() == key.lower() and v.lower() == "true" for k, v in options.items())


def _refuse_url(what: str, path: str) -> None:
    """Writers that reach only local folders refuse a URL rather than make a local
    folder named ``s3:``."""
    if is_url(path):
        raise AnalysisException(
            f"{what} are not supported at a URL yet: {path}. Write to a local or shared "
            "file system path, or write the files with format parquet/csv/json/text/orc/"
            "avro, which work at fsspec URLs.", error_class="UNSUPPORTED_LOCATION")


def _write_files(folder: str, fmt: str, table: pa.Table, partition_by: tuple[str, ...],
                 options: dict[str, str], *, zone: str = "UTC") -> None:
    """Write into a staging folder, move the files into place, then mark ``_SUCCESS``.
    At a URL, which has no rename, each file is uploaded under its final, unique name
    (an object appears whole or not at all), then ``_SUCCESS`` is written."""
    from unbounded.files.writing import write_partitioned

    if is_url(folder):
        write_partitioned(folder, fmt, table, partition_by, options,
                          stem=f"part-00000-{uuid.uuid4()}-c000", zone=zone)
        storage_for(folder).replace(join(folder, "_SUCCESS"), b"")
        return
    staging = os.path.join(folder, "_temporary", uuid.uuid4().hex)
    written = write_partitioned(staging, fmt, table, partition_by, options,
                                stem=f"part-00000-{uuid.uuid4()}-c000", zone=zone)
    for path in written:
        target = os.path.join(folder, os.path.relpath(path, staging))
        os.makedirs(os.path.dirname(target), exist_ok=True)
        os.replace(path, target)
    shutil.rmtree(os.path.join(folder, "_temporary"), ignore_errors=True)
    with open(os.path.join(folder, "_SUCCESS"), "w"):
        pass


def _conform_by_name(table: pa.Table, schema: StructType, name: str) -> pa.Table:
    lowered = {c.lower(): c for c in table.column_names}
    missing = [f.name for f in schema.fields if f.name.lower() not in lowered]
    if missing or len(table.column_names) != len(schema.fields):
        raise AnalysisException(
            f"[INCOMPATIBLE_DATA_FOR_TABLE.CANNOT_FIND_DATA] Cannot write to table {name}: "
            f"its columns are {schema.names}, the data has {table.column_names}.",
            error_class="INCOMPATIBLE_DATA_FOR_TABLE.CANNOT_FIND_DATA")
    ordered = table.select([lowered[f.name.lower()] for f in schema.fields])
    return _cast_to(ordered, schema, name)


def _conform_by_position(table: pa.Table, schema: StructType, name: str) -> pa.Table:
    if table.num_columns != len(schema.fields):
        side = "TOO_MANY" if table.num_columns > len(schema.fields) else "NOT_ENOUGH"
        raise AnalysisException(
            f"[INSERT_COLUMN_ARITY_MISMATCH.{side}_DATA_COLUMNS] "
            f"Cannot write to {name}: the table has {len(schema.fields)} columns "
            f"{schema.names}, the data has {table.num_columns}.",
            error_class="INSERT_COLUMN_ARITY_MISMATCH")
    return _cast_to(table.rename_columns(schema.names), schema, name)


def _cast_to(table: pa.Table, schema: StructType, name: str) -> pa.Table:
    try:
        return table.cast(schema.to_arrow_schema())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as err:
        raise AnalysisException(
            f"[INCOMPATIBLE_DATA_FOR_TABLE.CANNOT_SAFELY_CAST] Cannot write to table {name}: "
            f"{err}.", error_class="INCOMPATIBLE_DATA_FOR_TABLE.CANNOT_SAFELY_CAST") from err
