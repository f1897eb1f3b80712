"""Partial aggregation skipping (Spark's spark.sql.aggregate.skipPartialAggregate): once
the tasks' grouping barely reduces a batch, the tasks send each row's own buffers and the
state partitions group them; grouping resumes when keys repeat. Either way the rows
emitted are the same, NULL values and a restart included, and the tasks' partition tags
put every row where the driver's partitioning pass would."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import polars as pl
import pytest

from unbounded.runtime.stateful import aggregate
from unbounded.runtime.stateful.aggregate import MapSideAggregation, _route
from unbounded.runtime.stateful.base import partition_ids, split_partitions
from unbounded.sql import SparkSession
from unbounded.sql import functions as F
from unbounded.testing import MemoryStream

ROWS = pl.DataFrame({"w": [0, 5_000_000, None, 10_000_000, 15_000_000, 0],
                     "g": ["a", None, "c", "d", "e", "f"], "n": [1, 2, 3, 4, 5, 6]})


@pytest.fixture
def modes(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[bool]]:
    """Whether each map-side run of a non-empty batch skipped its grouping."""
    seen: list[bool] = []
    run = MapSideAggregation.run

    def recording(self: MapSideAggregation, rows: pl.LazyFrame, watermark_us: int,
                  **hints: Any) -> Any:
        out = run(self, rows, watermark_us, **hints)
        if out.rows.height:
            seen.append(self.skip_partial)
        return out

    monkeypatch.setattr(MapSideAggregation, "run", recording)
    monkeypatch.setattr(aggregate, "SKIP_PARTIAL_MIN_ROWS", 1)
    yield seen


def _collect(batches: dict[int, list[tuple[Any, ...]]]) -> Any:
    def store(df: Any, batch_id: int) -> None:
        batches[batch_id] = sorted((tuple(r) for r in df.collect()), key=repr)
    return store


def _start(spark: SparkSession, stream: MemoryStream, cp: str,
           batches: dict[int, list[tuple[Any, ...]]]) -> Any:
    v = F.col("v")
    out = stream.toDF().groupBy("k").agg(
        F.count("*").alias("rows"), F.count(v).alias("values"), F.sum(v).alias("s"),
        F.avg(v).alias("mean"), F.min(v).alias("lo"), F.max(v).alias("hi"))
    return (out.writeStream.outputMode("update").foreachBatch(_collect(batches))
            .option("checkpointLocation", cp).start())


def _feed(spark: SparkSession, stream: MemoryStream, cp: str,
          batches: dict[int, list[tuple[Any, ...]]], data: list[list[tuple[Any, ...]]]
          ) -> None:
    query = _start(spark, stream, cp, batches)
    try:
        for rows in data:
            stream.addData(rows)
            query.processAllAvailable(30)
    finally:
        query.stop()


def test_skipped_and_grouped_batches_emit_spark_aggregates_across_a_restart(
        spark: SparkSession, tmp_path: Any, modes: list[bool]) -> None:
    stream = MemoryStream("k STRING, v LONG", spark)
    batches: dict[int, list[tuple[Any, ...]]] = {}
    cp = str(tmp_path / "cp")
    _feed(spark, stream, cp, batches, [
        [("a", 1), ("b", 2), ("c", None)],  # distinct keys: skip from the next batch
        [("a", 10), ("a", None), ("b", None), ("d", 4), ("e", None)],  # skipped
        [("b", None)],  # skipped: one row, which no grouping in the partition sums
    ])
    _feed(spark, stream, cp, batches, [  # restarted: state from the delta files
        [("a", 11), ("g", 3)],  # grouped (a fresh run decides again), then skip
        [("a", 1)] * 4 + [("b", 1)] * 2,  # skipped; 2 keys of 6 rows: resume grouping
        [("a", 5), ("f", 7)],  # grouped
    ])
    assert modes == [False, True, True, False, True, False]
    assert [batches[i] for i in sorted(batches)] == [
        [("a", 1, 1, 1, 1.0, 1, 1), ("b", 1, 1, 2, 2.0, 2, 2),
         ("c", 1, 0, None, None, None, None)],
        [("a", 3, 2, 11, 5.5, 1, 10), ("b", 2, 1, 2, 2.0, 2, 2), ("d", 1, 1, 4, 4.0, 4, 4),
         ("e", 1, 0, None, None, None, None)],
        [("b", 3, 1, 2, 2.0, 2, 2)],
        [("a", 4, 3, 22, 22 / 3, 1, 11), ("g", 1, 1, 3, 3.0, 3, 3)],
        [("a", 8, 7, 26, 26 / 7, 1, 11), ("b", 5, 3, 4, 4 / 3, 1, 2)],
        [("a", 9, 8, 31, 31 / 8, 1, 11), ("f", 1, 1, 7, 7.0, 7, 7)],
    ]


def test_an_aggregate_without_row_buffers_keeps_the_grouping(
        spark: SparkSession, tmp_path: Any, modes: list[bool]) -> None:
    stream = MemoryStream("k STRING, v LONG", spark)
    batches: dict[int, list[tuple[Any, ...]]] = {}
    out = stream.toDF().groupBy("k").agg(F.count("*").alias("n"), F.collect_set("v").alias("vs"))
    query = (out.writeStream.outputMode("update").foreachBatch(_collect(batches))
             .option("checkpointLocation", str(tmp_path / "cp")).start())
    try:
        for rows in ([("a", 1), ("b", 2)], [("a", 3), ("c", 4)]):
            stream.addData(rows)
            query.processAllAvailable(30)
    finally:
        query.stop()
    assert modes == [False, False]
    assert batches[1] == [("a", 2, [1, 3]), ("c", 1, [4])]


@pytest.mark.parametrize("n", [1, 2, 3, 7])
@pytest.mark.parametrize("skip", [False, True])
def test_task_partition_tags_route_rows_as_the_partitioning_pass(n: int, skip: bool) -> None:
    side = MapSideAggregation(
        key_exprs=(pl.col("w"), pl.col("g")), key_names=("w", "g"), sliding=(),
        partial=(pl.col("n").sum().alias("n"),), tumbling=(), event_time=None,
        row_partial=(pl.col("n").cast(pl.Int64).alias("n"),), skip_partial=skip,
        num_partitions=n)
    tagged = side.run(ROWS.lazy(), 0).rows
    routed = _route(tagged, ["w", "g"], n)
    grouped = tagged.drop(aggregate._PARTITION)
    general = split_partitions(grouped, partition_ids(grouped, ["w", "g"], n), n)
    assert [sorted(p.rows(), key=repr) for p in routed] == \
        [sorted(p.rows(), key=repr) for p in general]
    assert sorted((r for p in routed for r in p.rows()), key=repr) == \
        sorted(ROWS.rows(), key=repr)


@pytest.mark.parametrize("max_runs", [0, 64])
def test_tagged_rows_in_any_order_route_as_the_partitioning_pass(
        max_runs: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Rows in partition runs are sliced; rows in many runs take the partitioning pass."""
    monkeypatch.setattr(aggregate, "_MAX_RUNS", max_runs)
    n = 3
    tagged = ROWS.with_columns(partition_ids(ROWS, ["w", "g"], n).alias(aggregate._PARTITION))
    for rows in (tagged, tagged.reverse(), pl.concat([tagged, tagged.reverse()])):
        plain = rows.drop(aggregate._PARTITION)
        general = split_partitions(plain, partition_ids(plain, ["w", "g"], n), n)
        assert [p.rows() for p in _route(rows, ["w", "g"], n)] == [p.rows() for p in general]
