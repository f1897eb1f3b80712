"""Read what a sink committed, as a multiset of rows in the oracle's shape."""

from __future__ import annotations

import glob
import os
from collections import Counter

import polars as pl

from chaos.workload import COLUMNS

__all__ = ["committed_rows"]


def _frame_rows(frame: pl.DataFrame, query: str) -> Counter[tuple[object, ...]]:
    if frame.is_empty():
        return Counter()
    if query == "windowed" and frame.schema["ws"] != pl.Int64:
        frame = frame.with_columns(pl.col("ws").dt.epoch("ms"))
    return Counter(frame.select(COLUMNS[query]).iter_rows())


def _read_parquet(files: list[str]) -> pl.DataFrame:
    return pl.concat([pl.read_parquet(f) for f in files]) if files else pl.DataFrame()


def _kafka_rows(bootstrap: str, topic: str, query: str) -> Counter[tuple[object, ...]]:
    """Committed records ``a|b|...`` (chaos.job), every column a long but ``key``."""
    from unbounded.testing.kafka_log import read_log

    names = COLUMNS[query]
    values = [v.decode().split("|") for v in read_log(bootstrap, topic, 1).committed]
    return Counter(tuple(cell if name == "key" else int(cell)
                         for name, cell in zip(names, row, strict=True)) for row in values)


def _delta_rows(table: str, query: str) -> Counter[tuple[object, ...]]:
    """The rows of the Delta table's newest version, read through its log."""
    from deltalake import DeltaTable

    if not DeltaTable.is_deltatable(table):
        return Counter()
    frame = pl.from_arrow(DeltaTable(table).to_pyarrow_table())
    assert isinstance(frame, pl.DataFrame)
    return _frame_rows(frame, query)


def committed_rows(sink: str, query: str, output: str,
                   bootstrap: str = "") -> Counter[tuple[object, ...]]:
    """Rows the sink committed: the file sink's manifest, the foreachBatch writer's batch
    files, the Delta table's newest version, or the committed records of the Kafka topic
    ``output``."""
    if sink == "file":
        from unbounded.files.manifest import FileSinkManifest

        if not os.path.isdir(os.path.join(output, "_spark_metadata")):
            return Counter()
        return _frame_rows(_read_parquet(FileSinkManifest(output).existing_files()), query)
    if sink == "foreach":
        files = sorted(glob.glob(os.path.join(output, "batch-*.parquet")))
        return _frame_rows(_read_parquet(files), query)
    if sink == "delta":
        return _delta_rows(output, query)
    return _kafka_rows(bootstrap, output, query)
