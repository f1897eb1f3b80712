"""The PySpark-shaped API: ``from unbounded.sql import SparkSession, functions as F``.

The modules load inside ``unbounded.startup.loading`` (the garbage collector paused,
OpenBLAS's spin shortened): this is the first import of almost every program, and it
brings in Polars, pyarrow and numpy too.
"""

from unbounded.startup import loading

with loading():
    from unbounded.session import RuntimeConfig, SparkSession
    from unbounded.sql import functions, types
    from unbounded.sql.catalog import Catalog
    from unbounded.sql.column import Column
    from unbounded.sql.dataframe import DataFrame
    from unbounded.sql.group import GroupedData
    from unbounded.sql.readwriter import DataFrameReader, DataFrameWriter
    from unbounded.sql.row import Row
    from unbounded.sql.streaming import (
        DataStreamReader,
        DataStreamWriter,
        StreamingQuery,
        StreamingQueryManager,
    )
    from unbounded.sql.window import Window, WindowSpec

__all__ = [
    "Catalog",
    "Column",
    "DataFrame",
    "DataFrameReader",
    "DataFrameWriter",
    "DataStreamReader",
    "DataStreamWriter",
    "GroupedData",
    "Row",
    "RuntimeConfig",
    "SparkSession",
    "StreamingQuery",
    "StreamingQueryManager",
    "Window",
    "WindowSpec",
    "functions",
    "types",
]
