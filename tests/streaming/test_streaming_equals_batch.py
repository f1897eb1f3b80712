"""Over the whole input, a streaming query's result equals the same query run as a batch
(for append mode: the windows the final watermark closed), whatever the split into
batches. Random inputs with fixed seeds."""

from __future__ import annotations

import datetime as dt
import os
import random

import pytest

from unbounded.sql import functions as F
from unbounded.testing import MemoryStream

T0 = dt.datetime(2026, 3, 1, 8, 0, 0)
SCHEMA = "ts TIMESTAMP, k STRING, v LONG"


def _events(seed: int, n: int) -> list[tuple]:
    rng = random.Random(seed)
    return [(T0 + dt.timedelta(seconds=i * 7 + rng.randint(-40, 40)), rng.choice("abcd"),
             rng.choice([None, *range(-5, 50)])) for i in range(n)]


def _blocks(rows: list[tuple], seed: int) -> list[list[tuple]]:
    rng = random.Random(seed)
    blocks, i = [], 0
    while i < len(rows):
        size = rng.randint(1, 40)
        blocks.append(rows[i:i + size])
        i += size
    return blocks


AGGS = [F.count("*").alias("n"), F.count("v").alias("nv"), F.sum("v").alias("s"),
        F.min("v").alias("lo"), F.max("v").alias("hi"), F.count_distinct("v").alias("d")]


def _canon(rows) -> list[tuple]:
    out = []
    for r in rows:
        out.append(tuple(tuple(x) if isinstance(x, tuple) else x for x in r))
    return sorted(out, key=repr)


def _run(spark, tmp_path, df_of, rows, seed, mode):
    stream = MemoryStream(SCHEMA, spark)
    query = (df_of(stream.toDF()).writeStream.outputMode(mode).format("memory")
             .queryName(f"eq_{mode}_{seed}").option("checkpointLocation",
                                                     str(tmp_path / f"cp{seed}")).start())
    try:
        for block in _blocks(rows, seed):
            stream.addData(block)
            query.processAllAvailable(60)
    finally:
        query.stop()
    return _canon(spark.table(f"eq_{mode}_{seed}").collect())


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_complete_mode_equals_batch(spark, tmp_path, seed):
    rows = _events(seed, 300)
    query = lambda df: df.groupBy(F.window("ts", "2 minutes"), "k").agg(*AGGS)  # noqa: E731
    streamed = _run(spark, tmp_path, query, rows, seed, "complete")
    batch = _canon(query(spark.createDataFrame(rows, SCHEMA)).collect())
    assert streamed == batch


@pytest.mark.parametrize("seed", [4, 5])
def test_append_mode_equals_batch_windows_closed_by_the_final_watermark(spark, tmp_path, seed):
    rows = sorted(_events(seed, 300))  # in order: no row is late, so nothing is dropped
    delay = dt.timedelta(minutes=1)
    query = lambda df: (df.withWatermark("ts", "1 minute")  # noqa: E731
                        .groupBy(F.window("ts", "3 minutes", "1 minute"), "k").agg(*AGGS))
    streamed = _run(spark, tmp_path, query, rows, seed, "append")
    watermark = max(r[0] for r in rows) - delay
    closed = query(spark.createDataFrame(rows, SCHEMA)).where(
        F.col("window.end") <= F.lit(watermark))
    assert streamed == _canon(closed.collect())
    assert streamed, "the input must close some windows"


def test_parquet_windowed_counts_equal_batch_whether_files_scan_lazily_or_not(
        spark, tmp_path, monkeypatch):
    """Files of one layout are scanned lazily inside the fused task; a file whose layout
    differs (an extra column) is read eagerly: both give the batch query's windows."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    folder = tmp_path / "in"
    folder.mkdir()
    rows = sorted(_events(9, 400))
    for i in range(4):
        chunk = rows[i * 100:(i + 1) * 100]
        table = pa.table({"ts": pa.array([r[0] for r in chunk], pa.timestamp("us", "UTC")),
                          "k": [r[1] for r in chunk], "v": pa.array([r[2] for r in chunk],
                                                                    pa.int64())})
        if i == 2:
            table = table.append_column("extra", pa.array(["x"] * len(chunk)))
        pq.write_table(table, folder / f"part-{i}.parquet")
        os.utime(folder / f"part-{i}.parquet", (1_700_000_000 + i, 1_700_000_000 + i))
    query = lambda df: (df.withWatermark("ts", "1 minute")  # noqa: E731
                        .groupBy(F.window("ts", "2 minutes"), "k").agg(*AGGS))
    import unbounded.sources.files as files

    monkeypatch.setattr(files, "_parallelism", lambda: 2)  # tasks of files [0, 1], [2, 3]
    stream = spark.readStream.schema(SCHEMA).option("maxFilesPerTrigger", 4).parquet(
        str(folder))
    q = (query(stream).writeStream.outputMode("append").format("memory").queryName("pq_eq")
         .option("checkpointLocation", str(tmp_path / "cp")).trigger(availableNow=True)
         .start())
    assert q.awaitTermination(60)
    watermark = max(r[0] for r in rows) - dt.timedelta(minutes=1)
    batch = query(spark.createDataFrame(rows, SCHEMA)).where(
        F.col("window.end") <= F.lit(watermark))
    assert _canon(spark.table("pq_eq").collect()) == _canon(batch.collect())
    seen = [p.eventTime for p in q.recentProgress if "max" in p.eventTime]
    assert max(e["max"] for e in seen) == max(r[0] for r in rows).strftime(
        "%Y-%m-%dT%H:%M:%S.000Z")
