"""median, percentile, percentile_approx, corr, covar_* and the other aggregates kept as
rows in streaming state: across batches and a restart from the checkpoint they equal the
batch query over all the input, and PySpark 4.3's answer (an opt-in oracle run gave the
same rows: median 2.0/3.5/5.0, covar_pop 4.666.../0.25/0.0 for keys x/y/NULL)."""

from __future__ import annotations

from typing import Any

from unbounded.sql import functions as F
from unbounded.testing import (
    AddData,
    CheckAnswer,
    MemoryStream,
    StartStream,
    StopStream,
    run_stream_test,
)

ROWS = [("x", 1), ("x", 2), ("y", 3), ("y", 4), (None, 5), ("x", 6)]


def _aggregates() -> list[Any]:
    return [F.median("c"), F.percentile("c", 0.5), F.percentile_approx("c", 0.5),
            F.covar_pop("c", "c"), F.covar_samp("c", "c")]


def test_kept_row_aggregates_survive_a_restart_and_equal_the_batch_query(
        spark: Any, tmp_path: Any) -> None:
    events = MemoryStream("a STRING, c INT", spark)
    stats = events.toDF().groupBy("a").agg(*_aggregates())
    latest: list[tuple[Any, ...]] = []

    def start() -> Any:
        def sink(batch: Any, batch_id: int) -> None:
            latest[:] = [tuple(r) for r in batch.collect()]

        return (stats.writeStream.outputMode("complete").foreachBatch(sink)
                .option("checkpointLocation", str(tmp_path / "cp")).start())

    run_stream_test(
        start, lambda: latest,
        AddData(events, ROWS[:3]),
        CheckAnswer([("x", 1.5, 1.5, 1, 0.25, 0.5), ("y", 3.0, 3.0, 3, 0.0, None)]),
        StopStream(),
        AddData(events, ROWS[3:]),
        StartStream(),
        CheckAnswer([("x", 2.0, 2.0, 2, 4.666666666666667, 7.0),
                     ("y", 3.5, 3.5, 3, 0.25, 0.5), (None, 5.0, 5.0, 5, 0.0, None)]),
    )
    batch = spark.createDataFrame(ROWS, "a STRING, c INT").groupBy("a").agg(*_aggregates())
    assert sorted(latest, key=repr) == sorted((tuple(r) for r in batch.collect()), key=repr)


def test_corr_and_an_array_of_percentiles_merge_across_batches(spark: Any) -> None:
    events = MemoryStream("a STRING, c INT, d DOUBLE", spark)
    query = (events.toDF().groupBy("a").agg(F.corr("c", "d"), F.percentile("c", [0.25, 0.75]))
             .writeStream.outputMode("update").format("memory").queryName("pairs").start())
    try:
        events.addData([("x", 1, 2.0), ("x", 2, 4.0)])
        query.processAllAvailable(30)
        events.addData([("x", 3, 5.0), ("y", 1, None)])
        query.processAllAvailable(30)
    finally:
        query.stop()
    last = {r[0]: (round(r[1], 9) if r[1] is not None else None, r[2])
            for r in spark.sql("SELECT * FROM pairs").collect()}
    assert last["x"] == (0.981980506, [1.5, 2.5])
    assert last["y"] == (None, [1.0, 1.0])
