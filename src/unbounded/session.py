"""``SparkSession``: the entry point; wiring only (builder, conf, readers, streams).

This module sits above ``unbounded.sql``, whose ``__init__`` re-exports it (as
``pyspark.sql`` does). So it imports the ``sql`` modules where a session uses them,
never while it is being defined: ``import unbounded.session`` works as a first import.
"""

from __future__ import annotations

import threading
from functools import cached_property
from typing import TYPE_CHECKING, Any, ClassVar

import pyarrow as pa

from unbounded.executors.base import Executor
from unbounded.executors.master import create_executor, parse_master
from unbounded.plan.logical import DataRelation
from unbounded.plan.time_zones import parse_zone
from unbounded.plan.types import StructType, parse_ddl_schema

if TYPE_CHECKING:
    from unbounded.sql.catalog import Catalog
    from unbounded.sql.context import SparkContext
    from unbounded.sql.dataframe import DataFrame
    from unbounded.sql.readwriter import DataFrameReader
    from unbounded.sql.streaming import DataStreamReader, StreamingQueryManager
    from unbounded.sql.udf import UDFRegistration

__all__ = ["RuntimeConfig", "SparkSession"]

_UNSET = object()


class RuntimeConfig:
    """``spark.conf``: string settings, Spark's names (e.g. spark.sql.shuffle.partitions)."""

    def __init__(self, values: dict[str, str]) -> None:
        self._values = values

    def set(self, key: str, value: Any) -> None:
        if key == "spark.sql.session.timeZone":
            parse_zone(str(value))  # an unknown zone fails here, as Spark's conf check
        self._values[key] = str(value).lower() if isinstance(value, bool) else str(value)

    def get(self, key: str, default: Any = _UNSET) -> Any:
        if key in self._values:
            return self._values[key]
        if default is _UNSET:
            from unbounded.config import DEFAULTS

            if key in DEFAULTS:
                return DEFAULTS[key]
            raise KeyError(f"[SQL_CONF_NOT_FOUND] The SQL config {key!r} cannot be found.")
        return default

    def unset(self, key: str) -> None:
        self._values.pop(key, None)

    def getAll(self) -> dict[str, str]:
        return dict(self._values)

    def isModifiable(self, key: str) -> bool:
        return True


class SparkSession:
    """The session: ``SparkSession.builder.appName("x").getOrCreate()``."""

    _active: ClassVar[SparkSession | None] = None
    _lock: ClassVar[threading.Lock] = threading.Lock()

    builder: ClassVar[SparkSession.Builder]

    class Builder:
        def __init__(self) -> None:
            self._options: dict[str, str] = {}

        def appName(self, name: str) -> SparkSession.Builder:
            return self.config("spark.app.name", name)

        def master(self, master: str) -> SparkSession.Builder:
            return self.config("spark.master", master)

        def config(self, key: str | None = None, value: Any = None,
                   conf: Any = None, map: dict[str, Any] | None = None) -> SparkSession.Builder:
            if key is not None:
                self._options[key] = str(value).lower() if isinstance(value, bool) else str(value)
            for k, v in (map or {}).items():
                self._options[k] = str(v)
            return self

        def enableHiveSupport(self) -> SparkSession.Builder:
            return self

        def getOrCreate(self) -> SparkSession:
            with SparkSession._lock:
                session = SparkSession._active
                if session is None:
                    session = SparkSession(dict(self._options))
                    SparkSession._active = session
                else:
                    for k, v in self._options.items():
                        session.conf.set(k, v)
                return session

        def create(self) -> SparkSession:
            return SparkSession(dict(self._options))

    def __init__(self, options: dict[str, str] | None = None) -> None:
        from unbounded.sql.streaming import StreamingQueryManager

        self.conf = RuntimeConfig(dict(options or {}))
        self._streams = StreamingQueryManager(self)
        self._executor_instance: Executor | None = None
        self._master = parse_master(self.conf.get("spark.master", "local[*]"))

    @classmethod
    def getActiveSession(cls) -> SparkSession | None:
        return cls._active

    @property
    def version(self) -> str:
        from importlib.metadata import version

        return version("unbounded")

    @property
    def readStream(self) -> DataStreamReader:
        from unbounded.sql.streaming import DataStreamReader

        return DataStreamReader(self)

    @property
    def read(self) -> DataFrameReader:
        from unbounded.sql.readwriter import DataFrameReader

        return DataFrameReader(self)

    @property
    def streams(self) -> StreamingQueryManager:
        return self._streams

    @property
    def udf(self) -> UDFRegistration:
        """``spark.udf.register(name, f, returnType)``: functions callable from SQL."""
        from unbounded.sql.udf import UDFRegistration

        return UDFRegistration()

    @cached_property
    def sparkContext(self) -> SparkContext:
        """The parts of SparkContext scripts use: setLogLevel, applicationId, appName..."""
        from unbounded.sql.context import SparkContext

        return SparkContext(lambda key: self.conf.get(key, None),
                            lambda: self._streams._hub.ui_url)

    def _executor(self) -> Executor:
        if self._executor_instance is None:
            self._executor_instance = create_executor(
                self._master, lambda key: self.conf.get(key, None))
        return self._executor_instance

    @cached_property
    def catalog(self) -> Catalog:
        """Temporary views, global temporary views and warehouse tables."""
        from unbounded.sql.catalog import Catalog

        return Catalog(self)

    def _register_view(self, name: str, df: DataFrame) -> None:
        self.catalog._create_temp_view(name, df, replace=True)

    def sql(self, sqlQuery: str, args: dict[str, Any] | list[Any] | None = None,
            **kwargs: Any) -> DataFrame:
        """Run a SQL query over temporary views and tables: a batch DataFrame, or a
        streaming one when a view it reads is streaming. ``args`` binds ``:name`` (dict)
        or ``?`` (list) parameters; ``kwargs`` fill ``{name}`` fields (a DataFrame there
        is read as a view), as in PySpark."""
        from unbounded.sql.sql_parser import run_sql

        return run_sql(self, sqlQuery, args, kwargs)

    def createDataFrame(self, data: Any, schema: StructType | str | list[str] | None = None,
                        ) -> DataFrame:
        from unbounded.sql.dataframe import DataFrame
        from unbounded.sql.local_data import table_from_data

        if isinstance(schema, str):
            schema = parse_ddl_schema(schema)
        return DataFrame(DataRelation(table_from_data(data, schema)), self)

    def range(self, start: int, end: int | None = None, step: int = 1) -> DataFrame:
        from unbounded.sql.dataframe import DataFrame

        if end is None:
            start, end = 0, start
        return DataFrame(DataRelation(pa.table({"id": pa.array(range(start, end, step),
                                                                 pa.int64())})), self)

    def table(self, tableName: str) -> DataFrame:
        """A view, a warehouse table, or a memory sink's table (named by its queryName)."""
        return self.catalog._resolve(tableName)

    def stop(self) -> None:
        for q in self._streams.active:
            q.stop()
        self._streams._close()
        if self._executor_instance is not None:
            self._executor_instance.shutdown()
            self._executor_instance = None
        with SparkSession._lock:
            if SparkSession._active is self:
                SparkSession._active = None

    def __enter__(self) -> SparkSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class _BuilderProperty:
    """``SparkSession.builder`` gives a fresh builder on every access, as in PySpark."""

    def __get__(self, obj: object, owner: type) -> SparkSession.Builder:
        return SparkSession.Builder()


SparkSession.builder = _BuilderProperty()  # type: ignore[assignment]


