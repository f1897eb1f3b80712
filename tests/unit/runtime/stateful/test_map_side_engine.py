"""A task's map side over a small input (under ``SMALL_MAP_SIDE_ROWS`` rows, counted from
the Parquet footers or the source's rows) runs on Polars' in-memory engine, whose fixed
cost per query is lower; a larger one stays on the streaming engine. The rows emitted
are the same either way."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import polars as pl
import pytest

from unbounded.runtime.stateful import aggregate
from unbounded.sql import SparkSession
from unbounded.sql import functions as F
from unbounded.testing import MemoryStream

__all__: list[str] = []

T0 = dt.datetime(2026, 1, 1, 10, 0, 0)


@pytest.fixture
def engines(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """The engine of each map-side ``collect_all``."""
    seen: list[str] = []
    collect_all = pl.collect_all

    def recording(queries: Any, *, engine: Any = "auto", **kwargs: Any) -> Any:
        seen.append(engine)
        return collect_all(queries, engine=engine, **kwargs)

    monkeypatch.setattr(aggregate.pl, "collect_all", recording)
    yield seen


def _windowed_counts(spark: SparkSession, rows: list[tuple[Any, ...]], tmp: str) -> list[Any]:
    stream = MemoryStream("t TIMESTAMP, v LONG", spark)
    counts = (stream.toDF().withWatermark("t", "10 seconds")
              .groupBy(F.window("t", "5 seconds")).agg(F.count("*").alias("n"),
                                                         F.sum("v").alias("s")))
    out: list[Any] = []
    query = (counts.writeStream.outputMode("update")
             .foreachBatch(lambda d, _: out.extend(sorted(tuple(r) for r in d.collect())))
             .option("checkpointLocation", tmp).start())
    try:
        stream.addData(rows)
        query.processAllAvailable(60)
    finally:
        query.stop()
    return out


def test_a_small_input_runs_its_map_side_in_memory(spark, tmp_path, engines):
    rows = [(T0 + dt.timedelta(seconds=i), i) for i in range(12)]
    out = _windowed_counts(spark, rows, str(tmp_path / "cp"))
    assert [(w.start, n, s) for w, n, s in out] == [
        (T0, 5, 10), (T0 + dt.timedelta(seconds=5), 5, 35),
        (T0 + dt.timedelta(seconds=10), 2, 21)]
    assert engines and set(engines) == {"in-memory"}


def test_a_large_input_runs_its_map_side_streaming(spark, tmp_path, engines):
    n = aggregate.SMALL_MAP_SIDE_ROWS
    rows = [(T0 + dt.timedelta(milliseconds=i), 1) for i in range(n)]
    out = _windowed_counts(spark, rows, str(tmp_path / "cp"))
    assert [(w.start, c, s) for w, c, s in out] == [(T0, 5000, 5000), (
        T0 + dt.timedelta(seconds=5), n - 5000, n - 5000)]
    assert "streaming" in engines  # the batch with the rows (an empty one is small)
