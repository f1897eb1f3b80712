"""UDFs in streaming queries: in selects and filters, mapInPandas inside the partition
tasks, grouped pandas code rejected before start, and a failing UDF that fails the batch
which a restart then runs exactly once."""

from __future__ import annotations

import os
import threading
import time

import pandas as pd
import pytest

from unbounded.errors import StreamingQueryException, UnsupportedOperationException
from unbounded.sql import functions as F
from unbounded.testing import (
    AddData,
    CheckAnswer,
    MemoryStream,
    StartStream,
    StopStream,
    run_stream_test,
)


def _collecting(df, tmp_path, collected):
    def start():
        def sink(batch, batch_id):
            collected.extend(tuple(r) for r in batch.collect())

        return (df.writeStream.foreachBatch(sink)
                .option("checkpointLocation", str(tmp_path / "cp")).start())

    return start


def test_row_and_pandas_udfs_in_streaming_select_and_filter(spark, tmp_path):
    stream = MemoryStream("id LONG, word STRING", spark)
    shout = F.udf(lambda w: w.upper() + "!", "string")
    doubled = F.pandas_udf(lambda s: s * 2, "long")
    spark.udf.register("stream_udf_is_odd", lambda x: x % 2 == 1, "boolean")
    df = stream.toDF().filter("stream_udf_is_odd(id)").select(
        doubled("id").alias("d"), shout("word").alias("w"))
    collected: list[tuple] = []
    run_stream_test(
        _collecting(df, tmp_path, collected), lambda: collected,
        AddData(stream, [(1, "a"), (2, "b"), (3, "c")]),
        CheckAnswer([(2, "A!"), (6, "C!")]),
        StopStream(),
        AddData(stream, [(5, "e"), (6, "f")]),
        StartStream(),
        CheckAnswer([(2, "A!"), (6, "C!"), (10, "E!")]),
    )


def test_map_in_pandas_on_a_stream_runs_in_the_partition_tasks(spark, tmp_path):
    stream = MemoryStream("id LONG", spark)
    log = tmp_path / "pids"

    def tag(frames):
        for frame in frames:
            with open(log, "a") as f:
                f.write(f"{threading.current_thread().name} {len(frame)}\n")
            yield pd.DataFrame({"id": frame["id"], "sq": frame["id"] ** 2})

    df = stream.toDF().mapInPandas(tag, "id long, sq long")
    collected: list[tuple] = []
    run_stream_test(
        _collecting(df, tmp_path, collected), lambda: collected,
        AddData(stream, [(1,), (2,)]),
        CheckAnswer([(1, 1), (2, 4)]),
        AddData(stream, [(3,)]),
        CheckAnswer([(1, 1), (2, 4), (3, 9)]),
    )
    calls = [line.split() for line in log.read_text().splitlines()]
    # One call per source partition of each batch, on the executor's task threads.
    assert sum(int(size) for _, size in calls) == 3
    assert all(name.startswith(("unbounded-task", "unbounded-ahead")) for name, _ in calls)


def test_apply_in_pandas_and_pandas_aggregates_on_a_stream_are_rejected(spark, tmp_path):
    stream = MemoryStream("k STRING, v LONG", spark)
    grouped = stream.toDF().groupBy("k").applyInPandas(lambda f: f, "k string, v long")
    with pytest.raises(UnsupportedOperationException, match="applyInPandas is not supported"):
        grouped.writeStream.format("noop").start()
    total = F.pandas_udf(lambda v: v.sum(), "long", F.PandasUDFType.GROUPED_AGG)
    aggregated = stream.toDF().groupBy("k").agg(total("v"))
    with pytest.raises(UnsupportedOperationException,
                       match="Streaming aggregation doesn't support group aggregate pandas UDF"):
        aggregated.writeStream.outputMode("update").format("noop").start()


def test_failing_udf_fails_the_batch_naming_it_and_a_restart_runs_the_batch_once(
        spark, tmp_path):
    stream = MemoryStream("id LONG", spark)
    broken = tmp_path / "broken"
    broken.write_text("yes")

    def checked_inverse(x):
        if os.path.exists(broken):
            raise RuntimeError("the lookup table is not loaded")
        return 100 // x

    df = stream.toDF().select("id", F.udf(checked_inverse, "long")("id").alias("inv"))
    batches: list[tuple[int, list[tuple]]] = []

    def start():
        def sink(batch, batch_id):
            batches.append((batch_id, sorted(tuple(r) for r in batch.collect())))

        return (df.writeStream.foreachBatch(sink)
                .option("checkpointLocation", str(tmp_path / "cp")).start())

    query = start()
    stream.addData([(4,), (5,)])
    with pytest.raises(StreamingQueryException) as failed:
        query.awaitTermination(timeout=30)
    message = str(failed.value)
    assert "`checked_inverse`" in message
    assert "RuntimeError: the lookup table is not loaded" in message
    assert "(id=4)" in message
    assert batches == []

    broken.unlink()
    query = start()
    query.processAllAvailable()
    query.stop()
    assert batches == [(0, [(4, 25), (5, 20)])]


def test_row_udf_over_worker_processes_names_the_failing_row_and_a_restart_reruns_it(
        spark, tmp_path, monkeypatch):
    from unbounded.engine import udf_workers

    pool = udf_workers.UdfWorkerPool(1)
    monkeypatch.setattr(udf_workers, "_POOL", [pool])
    monkeypatch.setattr(udf_workers, "MIN_ROWS_PER_PROCESS", 10)
    assert pool.wait_ready(60)
    stream = MemoryStream("id LONG", spark)
    broken = tmp_path / "broken"
    broken.write_text("yes")

    ran_in_worker = str(tmp_path / "worker-ran")

    def tagged(x):  # this process waits until the worker took a range (at most 30 s)
        if x == 3 and os.path.exists(broken):
            raise KeyError(x)
        if os.getpid() != parent:
            open(ran_in_worker, "a").close()
            return x * 10 + 1
        deadline = time.monotonic() + 30
        while not os.path.exists(ran_in_worker) and time.monotonic() < deadline:
            time.sleep(0.01)
        return x * 10

    parent = os.getpid()
    df = stream.toDF().select("id", F.udf(tagged, "long")("id").alias("t"))
    batches: list[tuple[int, list[tuple]]] = []

    def start():
        def sink(batch, batch_id):
            batches.append((batch_id, sorted(tuple(r) for r in batch.collect())))

        return (df.writeStream.foreachBatch(sink)
                .option("checkpointLocation", str(tmp_path / "cp")).start())

    query = start()
    stream.addData([(i,) for i in range(20)])
    with pytest.raises(StreamingQueryException) as failed:
        query.awaitTermination(timeout=60)
    assert "The Python UDF `tagged` failed on the input row (id=3): KeyError: 3" \
        in str(failed.value)
    broken.unlink()
    if os.path.exists(ran_in_worker):
        os.unlink(ran_in_worker)
    query = start()
    query.processAllAvailable()
    query.stop()
    pool.stop()
    [(batch_id, rows)] = batches
    assert batch_id == 0
    assert [(i, t // 10) for i, t in rows] == [(i, i) for i in range(20)]
    assert any(t % 10 for _, t in rows)  # some of the rows ran in the worker
