"""A streaming query over a long DataFrame chain (hundreds of plan nodes) is cut into
stages and runs: the physical planning walks plans without recursion."""

from __future__ import annotations

from unbounded.sql import functions as F
from unbounded.testing import MemoryStream


def test_a_streaming_aggregation_over_a_600_step_chain_runs(spark):
    events = MemoryStream("id LONG", spark)
    frame = events.toDF()
    for _ in range(600):
        frame = frame.withColumn("id", F.col("id") + 1)
    query = (frame.groupBy((F.col("id") % 2).alias("k")).count().writeStream
             .outputMode("complete").format("memory").queryName("deep").start())
    try:
        events.addData([(1,), (2,), (4,)])
        query.processAllAvailable(120)
    finally:
        query.stop()
    # 601, 602, 604: one odd, two even
    assert sorted(tuple(r) for r in spark.sql("SELECT * FROM deep").collect()) == [
        (0, 2), (1, 1)]
