"""``spark.catalog``: temporary views, global temporary views and tables in a local
warehouse folder (``spark.sql.warehouse.dir``, default ``./spark-warehouse``).

There is no metastore: a table is a folder, ``<warehouse>/<name>`` in the ``default``
database and ``<warehouse>/<db>.db/<name>`` in others (Spark's layout), holding data
files and a ``_unbounded_table.json`` (see :class:`TableMetadata`). A table written by a
streaming query (``toTable``) also holds the file sink's ``_spark_metadata``, so readers
see exactly the committed files. Names are case-insensitive, as in Spark.

Example:
    >>> from unbounded.sql import SparkSession
    >>> spark = SparkSession.builder.create()
    >>> spark.range(3).createOrReplaceTempView("numbers")
    >>> spark.catalog.tableExists("numbers"), spark.catalog.dropTempView("numbers")
    (True, True)
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple

import pyarrow as pa

from unbounded.checkpoint.storage import is_url
from unbounded.errors import AnalysisException
from unbounded.files.partitions import unescape_path_name
from unbounded.files.paths import local_path
from unbounded.plan.expressions import Expression
from unbounded.plan.types import StructField, StructType

if TYPE_CHECKING:
    from unbounded.session import SparkSession
    from unbounded.sql.dataframe import DataFrame

__all__ = ["Catalog", "Column", "Database", "Table", "TableMetadata", "parse_table_name",
           "table_not_found"]

DEFAULT_DATABASE = "default"
CATALOG_NAME = "spark_catalog"
_METADATA_FILE = "_unbounded_table.json"
_GLOBAL_VIEWS: dict[str, DataFrame] = {}  # shared by the sessions of a process, as in Spark
_GLOBAL_LOCK = threading.Lock()


class Database(NamedTuple):
    """A row of ``listDatabases`` (PySpark's ``Database``)."""

    name: str
    catalog: str | None
    description: str | None
    locationUri: str


class Table(NamedTuple):
    """A row of ``listTables`` (PySpark's ``Table``)."""

    name: str
    catalog: str | None
    namespace: list[str] | None
    description: str | None
    tableType: str
    isTemporary: bool

    @property
    def database(self) -> str | None:
        return self.namespace[0] if self.namespace and len(self.namespace) == 1 else None


class Column(NamedTuple):
    """A row of ``listColumns`` (PySpark's ``catalog.Column``)."""

    name: str
    description: str | None
    dataType: str
    nullable: bool
    isPartition: bool
    isBucket: bool
    isCluster: bool


@dataclass(frozen=True)
class TableMetadata:
    """What a warehouse table is: its format, schema and partition columns.

    Stored as ``<table>/_unbounded_table.json`` (a hidden name, so readers skip it)::

        {"version": 1, "format": "parquet", "partitionColumns": ["day"],
         "schema": "<base64 of the Arrow IPC schema>"}

    A reader rejects any other version.
    """

    format: str
    schema: StructType
    partition_columns: tuple[str, ...] = ()

    VERSION = 1

    def write(self, location: str) -> None:
        os.makedirs(location, exist_ok=True)
        arrow = self.schema.to_arrow_schema().serialize().to_pybytes()
        body = {"version": self.VERSION, "format": self.format,
                "partitionColumns": list(self.partition_columns),
                "schema": base64.b64encode(arrow).decode("ascii")}
        tmp = os.path.join(location, f".{_METADATA_FILE}.tmp")
        with open(tmp, "w", encoding="utf-8") as out:
            json.dump(body, out)
        os.replace(tmp, os.path.join(location, _METADATA_FILE))

    @classmethod
    def read(cls, location: str) -> TableMetadata | None:
        path = os.path.join(location, _METADATA_FILE)
        if not os.path.isfile(path):
            return None
        with open(path, encoding="utf-8") as f:
            body = json.load(f)
        if body.get("version") != cls.VERSION:
            raise AnalysisException(
                f"The table metadata {path} has version {body.get('version')!r}; this "
                f"unbounded reads version {cls.VERSION}. Upgrade unbounded.",
                error_class="UNSUPPORTED_TABLE_METADATA")
        schema = pa.ipc.read_schema(pa.py_buffer(base64.b64decode(body["schema"])))
        return cls(body["format"], StructType.from_arrow(schema),
                   tuple(body.get("partitionColumns", ())))


def parse_table_name(name: str) -> list[str]:
    """``db.t`` -> ``['db', 't']``; backquotes quote a part (``delta.`/a.b```)."""
    parts: list[str] = []
    current, quoted, i = "", False, 0
    while i < len(name):
        ch = name[i]
        if ch == "`":
            if quoted and name[i + 1:i + 2] == "`":
                current, i = current + "`", i + 2
                continue
            quoted = not quoted
        elif ch == "." and not quoted:
            parts.append(current)
            current = ""
        else:
            current += ch
        i += 1
    if quoted or not all([*parts, current]):
        raise AnalysisException(f"[INVALID_IDENTIFIER] Cannot parse the table name {name!r}.",
                                error_class="INVALID_IDENTIFIER")
    return [*parts, current]


def table_not_found(name: str) -> AnalysisException:
    return AnalysisException(
        f"[TABLE_OR_VIEW_NOT_FOUND] The table or view `{name}` cannot be found. Verify the "
        "spelling and correctness of the schema and catalog; create it with "
        "createOrReplaceTempView(...), saveAsTable(...) or writeStream.toTable(...).",
        error_class="TABLE_OR_VIEW_NOT_FOUND")


class Catalog:
    """``spark.catalog``: views of this session, global views, warehouse tables."""

    def __init__(self, session: SparkSession) -> None:
        self._session = session
        self._views: dict[str, DataFrame] = {}
        self._current = DEFAULT_DATABASE

    # ---- databases ---------------------------------------------------------------------
    @property
    def _warehouse(self) -> str:
        root = str(self._session.conf.get("spark.sql.warehouse.dir", "spark-warehouse"))
        if is_url(root):  # refused: abspath would make a local folder named "s3:"
            raise AnalysisException(
                f"spark.sql.warehouse.dir is a URL ({root}); warehouse tables live in a "
                "local or shared file system folder only. Set it to a path, or write the "
                "table's files with df.write.parquet('s3://...') and read them back with "
                "spark.read.", error_class="UNSUPPORTED_LOCATION")
        return os.path.abspath(local_path(root))

    @property
    def _global_db(self) -> str:
        return str(self._session.conf.get("spark.sql.globalTempDatabase", "global_temp")).lower()

    def _database_location(self, db: str) -> str:
        if db == DEFAULT_DATABASE:
            return self._warehouse
        return os.path.join(self._warehouse, f"{db}.db")

    def currentDatabase(self) -> str:
        return self._current

    def currentCatalog(self) -> str:
        return CATALOG_NAME

    def setCurrentDatabase(self, dbName: str) -> None:
        if not self.databaseExists(dbName):
            raise AnalysisException(
                f"[SCHEMA_NOT_FOUND] The schema `{dbName}` cannot be found.",
                error_class="SCHEMA_NOT_FOUND")
        self._current = dbName.lower()

    def databaseExists(self, dbName: str) -> bool:
        db = dbName.lower()
        return db == DEFAULT_DATABASE or os.path.isdir(self._database_location(db))

    def listDatabases(self, pattern: str | None = None) -> list[Database]:
        names = {DEFAULT_DATABASE}
        if os.path.isdir(self._warehouse):
            names |= {n[:-3] for n in os.listdir(self._warehouse) if n.endswith(".db")}
        return [Database(n, CATALOG_NAME, "default database" if n == DEFAULT_DATABASE
                         else None, "file:" + self._database_location(n))
                for n in sorted(names) if _matches(n, pattern)]

    # ---- views ---------------------------------------------------------------------------
    def _create_temp_view(self, name: str, df: DataFrame, *, replace: bool) -> None:
        key = _view_name(name)
        if not replace and key in self._views:
            raise _view_exists(name)
        self._views[key] = df

    def _create_global_temp_view(self, name: str, df: DataFrame, *, replace: bool) -> None:
        key = _view_name(name)
        with _GLOBAL_LOCK:
            if not replace and key in _GLOBAL_VIEWS:
                raise _view_exists(f"{self._global_db}.{name}")
            _GLOBAL_VIEWS[key] = df

    def dropTempView(self, viewName: str) -> bool:
        return self._views.pop(viewName.lower(), None) is not None

    def dropGlobalTempView(self, viewName: str) -> bool:
        with _GLOBAL_LOCK:
            return _GLOBAL_VIEWS.pop(viewName.lower(), None) is not None

    # ---- tables --------------------------------------------------------------------------
    def listTables(self, dbName: str | None = None, pattern: str | None = None) -> list[Table]:
        """The tables of ``dbName`` (the current database by default), then the temporary
        views (global ones too when ``dbName`` is the global temporary database)."""
        db = (dbName or self._current).lower()
        tables: list[Table] = []
        if db == self._global_db:
            with _GLOBAL_LOCK:
                globals_ = sorted(_GLOBAL_VIEWS)
            tables += [Table(n, None, [db], None, "TEMPORARY", True) for n in globals_]
        else:
            if not self.databaseExists(db):
                raise AnalysisException(f"[SCHEMA_NOT_FOUND] The schema `{db}` cannot be found.",
                                        error_class="SCHEMA_NOT_FOUND")
            tables += [Table(n, CATALOG_NAME, [db], None, "MANAGED", False)
                       for n in self._table_names(db)]
        tables += [Table(n, None, [], None, "TEMPORARY", True) for n in sorted(self._views)]
        return [t for t in tables if _matches(t.name, pattern)]

    def _table_names(self, db: str) -> list[str]:
        root = self._database_location(db)
        if not os.path.isdir(root):
            return []
        return sorted(n for n in os.listdir(root)
                      if os.path.isfile(os.path.join(root, n, _METADATA_FILE)))

    def tableExists(self, tableName: str, dbName: str | None = None) -> bool:
        parts = parse_table_name(tableName) if dbName is None else [dbName, tableName]
        try:
            self._lookup([p.lower() for p in parts])
        except AnalysisException as err:
            if err.error_class == "TABLE_OR_VIEW_NOT_FOUND":
                return False
            raise
        return True

    def getTable(self, tableName: str) -> Table:
        parts = [p.lower() for p in parse_table_name(tableName)]
        if len(parts) == 1 and parts[0] in self._views:
            return Table(parts[0], None, [], None, "TEMPORARY", True)
        db, name = self._qualify(parts)
        self._table_metadata(db, name, tableName)
        return Table(name, CATALOG_NAME, [db], None, "MANAGED", False)

    def listColumns(self, tableName: str, dbName: str | None = None) -> list[Column]:
        """The columns of a view or table, partition columns flagged."""
        name = tableName if dbName is None else f"{dbName}.{tableName}"
        df = self._resolve(name)
        found = self._table(name) if len(parse_table_name(name)) > 1 or \
            name.lower() not in self._views else None
        partitions = {c.lower() for c in found[1].partition_columns} if found else set()
        return [Column(f.name, None, f.dataType.simpleString(), f.nullable,
                       f.name.lower() in partitions, False, False)
                for f in df.schema.fields]

    # ---- used by spark.table, spark.sql, the writers -------------------------------------
    def _resolve(self, name: str) -> DataFrame:
        """The DataFrame ``name`` stands for: a view, a table, or a memory sink's table."""
        found = self._lookup([p.lower() for p in parse_table_name(name)])
        if found is None:
            raise table_not_found(name)
        return found

    def _lookup(self, parts: list[str]) -> DataFrame | None:
        if len(parts) == 1 and parts[0] in self._views:
            return self._views[parts[0]]
        if len(parts) == 2 and parts[0] == self._global_db:
            with _GLOBAL_LOCK:
                view = _GLOBAL_VIEWS.get(parts[1])
            if view is None:
                raise table_not_found(".".join(parts))
            return view
        db, name = self._qualify(parts)
        if os.path.isfile(os.path.join(self._database_location(db), name, _METADATA_FILE)):
            return self._read_table(db, name)
        if len(parts) == 1:
            return self._memory_table(parts[0])
        raise table_not_found(".".join(parts))

    def _memory_table(self, name: str) -> DataFrame:
        from unbounded.plan.logical import DataRelation
        from unbounded.sinks.memory import memory_table
        from unbounded.sql.dataframe import DataFrame

        table = memory_table(name)
        if table is None:
            raise table_not_found(name)
        return DataFrame(DataRelation(table), self._session)

    def _qualify(self, parts: list[str]) -> tuple[str, str]:
        if len(parts) == 3 and parts[0] == CATALOG_NAME:
            parts = parts[1:]
        if len(parts) == 1:
            return self._current, parts[0]
        if len(parts) == 2:
            return parts[0], parts[1]
        raise AnalysisException(
            f"[REQUIRES_SINGLE_PART_NAMESPACE] {'.'.join(parts)}: the session catalog names "
            "tables as [database.]table.", error_class="REQUIRES_SINGLE_PART_NAMESPACE")

    def _table_metadata(self, db: str, name: str, shown: str) -> tuple[str, TableMetadata]:
        location = os.path.join(self._database_location(db), name)
        metadata = TableMetadata.read(location)
        if metadata is None:
            raise table_not_found(shown)
        return location, metadata

    def _read_table(self, db: str, name: str) -> DataFrame:
        location, metadata = self._table_metadata(db, name, f"{db}.{name}")
        if metadata.partition_columns:
            return self._read_partitioned(location, metadata)
        reader = self._session.read.format(metadata.format).schema(metadata.schema)
        return reader.load(location)

    def _read_partitioned(self, location: str, metadata: TableMetadata) -> DataFrame:
        """A partitioned table: each ``col=value`` folder's files, with the partition
        columns as constants of the types the table declares (the catalog knows them,
        as Spark's metastore does; nothing is inferred from the folder names)."""
        from unbounded.plan.logical import FileRelation, Project, Union
        from unbounded.sql.dataframe import DataFrame
        from unbounded.sql.readwriter import list_data_files

        keys = [f for f in metadata.schema.fields if f.name in metadata.partition_columns]
        data = StructType([f for f in metadata.schema.fields
                           if f.name not in metadata.partition_columns])
        groups: dict[tuple[str | None, ...], list[str]] = {}
        for path in list_data_files(location):
            values = _partition_values(os.path.relpath(path, location), len(keys))
            groups.setdefault(values, []).append(path)
        plans = [Project(FileRelation(metadata.format, tuple(files), data),
                         _with_constants(data, keys, values))
                 for values, files in sorted(groups.items(), key=lambda g: str(g[0]))]
        if not plans:
            empty = FileRelation(metadata.format, (), metadata.schema)
            return DataFrame(empty, self._session)
        plan = plans[0] if len(plans) == 1 else Union(tuple(plans))
        return DataFrame(plan, self._session)

    def _table(self, name: str) -> tuple[str, TableMetadata] | None:
        """A warehouse table's location and metadata; None when there is none."""
        db, table = self._qualify([p.lower() for p in parse_table_name(name)])
        if db == self._global_db:
            return None
        if not self.databaseExists(db):
            raise AnalysisException(f"[SCHEMA_NOT_FOUND] The schema `{db}` cannot be found.",
                                    error_class="SCHEMA_NOT_FOUND")
        location = os.path.join(self._database_location(db), table)
        metadata = TableMetadata.read(location)
        return None if metadata is None else (location, metadata)

    def _create_table(self, name: str, metadata: TableMetadata, *, replace: bool) -> str:
        """Make (or, with ``replace``, empty and remake) the table's folder; its path."""
        db, table = self._qualify([p.lower() for p in parse_table_name(name)])
        location = os.path.join(self._database_location(db), table)
        if replace and os.path.isdir(location):
            shutil.rmtree(location)
        metadata.write(location)
        return location


def _partition_values(relative: str, count: int) -> tuple[str | None, ...]:
    """The values of ``a=1/b=x/part-0.parquet``'s partition folders (NULL's name too)."""
    folders = relative.split(os.sep)[:-1][-count:] if count else []
    values = [unescape_path_name(f.partition("=")[2]) for f in folders]
    return tuple(None if v == "__HIVE_DEFAULT_PARTITION__" else v for v in values)


def _with_constants(data: StructType, keys: list[StructField],
                    values: tuple[str | None, ...]) -> tuple[Expression, ...]:
    from unbounded.plan.expressions import Alias, Cast, ColumnRef, Literal

    columns: list[Expression] = [ColumnRef(f"`{f.name}`") for f in data.fields]
    columns += [Alias(Cast(Literal(v), k.dataType), k.name)
                for k, v in zip(keys, values, strict=True)]
    return tuple(columns)


def _view_name(name: str) -> str:
    parts = parse_table_name(name)
    if len(parts) != 1:
        raise AnalysisException(
            f"[TEMP_VIEW_NAME_TOO_MANY_NAME_PARTS] CREATE TEMPORARY VIEW expects a "
            f"single-part view name, got {name!r}.",
            error_class="TEMP_VIEW_NAME_TOO_MANY_NAME_PARTS")
    return parts[0].lower()


def _view_exists(name: str) -> AnalysisException:
    return AnalysisException(
        f"[TEMP_TABLE_OR_VIEW_ALREADY_EXISTS] Cannot create the temporary view `{name}` "
        "because it already exists. Choose a different name, drop or replace the existing "
        "view (createOrReplaceTempView).", error_class="TEMP_TABLE_OR_VIEW_ALREADY_EXISTS")


def _matches(name: str, pattern: str | None) -> bool:
    """Spark's SHOW TABLES pattern: ``*`` any characters, ``|`` alternatives."""
    if pattern is None:
        return True
    import fnmatch

    return any(fnmatch.fnmatch(name, p.strip().lower()) for p in pattern.split("|"))
