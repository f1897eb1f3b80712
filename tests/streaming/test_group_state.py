"""applyInPandasWithState on a stream: exact rows per batch for sessions closed by
event-time timeouts, processing-time timeouts under a controlled clock, restarts, and
Spark's rejections."""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from unbounded.engine import state_workers
from unbounded.errors import AnalysisException, UnsupportedOperationException
from unbounded.runtime import microbatch
from unbounded.sql import functions as F
from unbounded.sql.streaming_state import GroupState, GroupStateTimeout
from unbounded.testing import MemoryStream

T0 = dt.datetime(2026, 1, 1, 10, 0, 0)
GAP_MS = 30 * 60 * 1000
SESSIONS = "user string, start timestamp, end timestamp, n long"


@pytest.fixture(autouse=True, params=["in_process", "in_workers"])
def calls_run(request, monkeypatch) -> str:
    """Every test twice: the user calls on the driver, then every state partition's calls
    shipped to a worker process (as a large partition is)."""
    if request.param == "in_workers":
        monkeypatch.setattr(state_workers, "MIN_CALLS_PER_WORKER", 0)
    return str(request.param)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def ms(t: dt.datetime) -> int:
    return int(t.replace(tzinfo=dt.UTC).timestamp() * 1000)


class Batches:
    """A foreachBatch sink keeping each batch's rows, sorted, by batch id."""

    def __init__(self) -> None:
        self.by_id: dict[int, list[tuple[Any, ...]]] = {}

    def __call__(self, df: Any, batch_id: int) -> None:
        self.by_id[batch_id] = sorted((tuple(r) for r in df.collect()), key=repr)

    def nonempty(self) -> list[list[tuple[Any, ...]]]:
        return [rows for _, rows in sorted(self.by_id.items()) if rows]


def sessionize(key: tuple[Any, ...], frames: Iterator[pd.DataFrame],
               state: GroupState) -> Iterator[pd.DataFrame]:
    """A session per user: closed when the watermark passes its last event plus 30 min."""
    if state.hasTimedOut:
        start, end, n = state.get
        state.remove()
        yield pd.DataFrame({"user": [key[0]], "start": [start], "end": [end], "n": [n]})
        return
    start, end, n = state.get if state.exists else (None, None, 0)
    for pdf in frames:
        start = min(filter(None, [start, pdf.ts.min().to_pydatetime()]))
        end = max(filter(None, [end, pdf.ts.max().to_pydatetime()]))
        n += len(pdf)
    state.update((start, end, n))
    state.setTimeoutTimestamp(ms(end) + GAP_MS)


def _sessions_query(stream: MemoryStream, sink: Batches, cp: Any) -> Any:
    df = (stream.toDF().withWatermark("ts", "10 minutes").groupBy("user")
          .applyInPandasWithState(sessionize, SESSIONS, "start timestamp, end timestamp, n long",
                                  "append", GroupStateTimeout.EventTimeTimeout))
    return (df.writeStream.outputMode("append").foreachBatch(sink)
            .option("checkpointLocation", str(cp)).start())


def _feed(q: Any, stream: MemoryStream, rows: list[tuple[Any, ...]]) -> None:
    stream.addData(rows)
    q.processAllAvailable(30)


def test_sessions_close_when_the_watermark_passes_their_event_time_timeout(spark, tmp_path):
    stream = MemoryStream("user STRING, ts TIMESTAMP", spark)
    sink = Batches()
    q = _sessions_query(stream, sink, tmp_path / "cp")
    _feed(q, stream, [("a", at(0)), ("a", at(5)), ("b", at(2))])
    assert sink.nonempty() == []
    # Watermark 10:40 passes b's timeout (10:02 + 30 min); a's moved to 10:50.
    _feed(q, stream, [("a", at(20)), ("c", at(50))])
    assert sink.nonempty() == [[("b", at(2), at(2), 1)]]
    # Watermark 11:20 passes a's 10:50; c's 11:20 is not passed (strictly older only).
    _feed(q, stream, [("z", at(90))])
    assert sink.nonempty()[1:] == [[("a", at(0), at(20), 3)]]
    # 10:30 is late (at or below the previous watermark 11:20): dropped, a stays closed.
    _feed(q, stream, [("a", at(30)), ("c", at(95))])
    _feed(q, stream, [("z", at(200))])  # z gets rows, so only c times out
    q.stop()
    assert sink.nonempty()[2:] == [[("c", at(50), at(95), 2)]]


def test_a_restart_continues_the_sessions_from_the_checkpoint(spark, tmp_path):
    stream = MemoryStream("user STRING, ts TIMESTAMP", spark)
    sink = Batches()
    q = _sessions_query(stream, sink, tmp_path / "cp")
    _feed(q, stream, [("a", at(0)), ("b", at(2))])
    q.stop()
    q = _sessions_query(stream, sink, tmp_path / "cp")
    _feed(q, stream, [("a", at(10)), ("z", at(45))])  # watermark 10:35 closes b only
    _feed(q, stream, [("z", at(100))])
    q.stop()
    assert sink.nonempty() == [[("b", at(2), at(2), 1)], [("a", at(0), at(10), 2)]]


def test_late_rows_are_dropped_and_counted_under_event_time_timeouts(spark, tmp_path):
    stream = MemoryStream("user STRING, ts TIMESTAMP", spark)
    sink = Batches()
    q = _sessions_query(stream, sink, tmp_path / "cp")
    _feed(q, stream, [("a", at(60))])  # watermark 10:50
    _feed(q, stream, [("b", at(40)), ("b", at(55))])
    q.stop()
    dropped = [p["stateOperators"][0]["numRowsDroppedByWatermark"] for p in q.recentProgress]
    assert sum(dropped) == 1


class Clock:
    """The batch timestamps the micro-batch loop logs, set by the test."""

    def __init__(self, start_ms: int) -> None:
        self.now = start_ms

    def __call__(self) -> int:
        return self.now


def counts_with_idle_timeout(key: tuple[Any, ...], frames: Iterator[pd.DataFrame],
                             state: GroupState) -> Iterator[pd.DataFrame]:
    """Count per key; a key idle for 60 s of processing time is reported and dropped."""
    if state.hasTimedOut:
        (n,) = state.get
        state.remove()
        yield pd.DataFrame({"k": [key[0]], "n": [n], "expired": [True],
                            "at": [state.getCurrentProcessingTimeMs()]})
        return
    n = (state.get[0] if state.exists else 0) + sum(len(pdf) for pdf in frames)
    state.update((n,))
    state.setTimeoutDuration(60_000)
    yield pd.DataFrame({"k": [key[0]], "n": [n], "expired": [False],
                        "at": [state.getCurrentProcessingTimeMs()]})


def test_processing_time_timeouts_fire_in_a_no_data_batch_once_due(spark, tmp_path,
                                                                   monkeypatch):
    clock = Clock(1_000_000)
    monkeypatch.setattr(microbatch, "now_ms", clock)
    stream = MemoryStream("k STRING", spark)
    sink = Batches()
    df = stream.toDF().groupBy("k").applyInPandasWithState(
        counts_with_idle_timeout, "k string, n long, expired boolean, at long", "n long",
        "update", GroupStateTimeout.ProcessingTimeTimeout)
    q = (df.writeStream.outputMode("update").foreachBatch(sink)
         .option("checkpointLocation", str(tmp_path / "cp")).start())
    _feed(q, stream, [("a",), ("b",), ("a",)])
    clock.now += 30_000
    _feed(q, stream, [("a",)])  # a's timeout moves to 1_090_000; b's stays 1_060_000
    clock.now += 30_000  # 1_060_000: not yet past b's timeout (strictly older only)
    q.processAllAvailable(30)
    clock.now += 1  # now past it: one batch without data times b out
    q.processAllAvailable(30)
    clock.now += 40_000  # past a's
    q.processAllAvailable(30)
    q.processAllAvailable(30)
    q.stop()
    assert sink.nonempty() == [
        [("a", 2, False, 1_000_000), ("b", 1, False, 1_000_000)],
        [("a", 3, False, 1_030_000)],
        [("b", 1, True, 1_060_001)],
        [("a", 3, True, 1_100_001)],
    ]


def test_state_values_keep_their_declared_types(spark, tmp_path):
    stream = MemoryStream("k LONG, s STRING", spark)
    sink = Batches()

    def keep(key: tuple[Any, ...], frames: Iterator[pd.DataFrame],
             state: GroupState) -> Iterator[pd.DataFrame]:
        before = state.getOption
        words = [w for pdf in frames for w in pdf.s]
        state.update((key[0] * 10, ",".join(words), 0.5))
        yield pd.DataFrame({"k": [key[0]], "before": [repr(before)]})

    df = stream.toDF().groupBy("k").applyInPandasWithState(
        keep, "k long, before string", "x long, words string, f double", "update",
        GroupStateTimeout.NoTimeout)
    q = (df.writeStream.outputMode("update").foreachBatch(sink)
         .option("checkpointLocation", str(tmp_path / "cp")).start())
    _feed(q, stream, [(1, "x"), (1, "y")])
    _feed(q, stream, [(1, "z")])
    q.stop()
    assert sink.nonempty() == [[(1, "None")], [(1, "(10, 'x,y', 0.5)")]]


def count_rows(key: tuple[Any, ...], frames: Iterator[pd.DataFrame],
               state: GroupState) -> Iterator[pd.DataFrame]:
    n = (state.get[0] if state.exists else 0) + sum(len(pdf) for pdf in frames)
    state.update((n,))
    yield pd.DataFrame({"k": [key[0]], "n": [n], "expired": [False], "at": [0]})


def _grouped(stream: MemoryStream | None, mode: str,
             timeout: str = GroupStateTimeout.NoTimeout, df: Any = None) -> Any:
    source = df if df is not None else stream.toDF()  # type: ignore[union-attr]
    return source.groupBy("k").applyInPandasWithState(
        count_rows, "k string, n long, expired boolean, at long", "n long", mode, timeout)


@pytest.mark.parametrize(("function_mode", "query_mode", "message"), [
    ("update", "append", "applyInPandasWithState in update mode is not supported with "
                         "Append output mode"),
    ("append", "update", "applyInPandasWithState in append mode is not supported with "
                         "Update output mode"),
    ("update", "complete", "Complete output mode not supported when there are no streaming "
                           "aggregations"),
])
def test_the_function_output_mode_must_match_the_query_output_mode(
        spark, tmp_path, function_mode, query_mode, message):
    stream = MemoryStream("k STRING", spark)
    writer = _grouped(stream, function_mode).writeStream.outputMode(query_mode)
    with pytest.raises(UnsupportedOperationException, match=message):
        writer.format("noop").option("checkpointLocation", str(tmp_path)).start()


def test_spark_rejections_around_aggregations_timeouts_and_repeats(spark, tmp_path):
    stream = MemoryStream("k STRING", spark)
    cases = [
        (_grouped(stream, "update").groupBy("k").count(), "update",
         "update mode is not supported with aggregation"),
        (_grouped(stream, "update", GroupStateTimeout.EventTimeTimeout), "update",
         "Watermark must be specified"),
        (_grouped(stream, "append", df=_grouped(stream, "append")), "append",
         "Multiple applyInPandasWithStates are not supported"),
    ]
    for df, mode, message in cases:
        with pytest.raises(UnsupportedOperationException, match=message):
            (df.writeStream.outputMode(mode).format("noop")
             .option("checkpointLocation", str(tmp_path)).start())


def test_an_aggregation_over_an_append_mode_function_runs(spark, tmp_path):
    stream = MemoryStream("k STRING", spark)
    sink = Batches()
    df = (_grouped(stream, "append").groupBy("expired").agg(F.sum("n").alias("total")))
    q = (df.writeStream.outputMode("complete").foreachBatch(sink)
         .option("checkpointLocation", str(tmp_path / "cp")).start())
    _feed(q, stream, [("a",), ("b",), ("a",)])
    _feed(q, stream, [("a",)])
    q.stop()
    assert sink.nonempty() == [[(False, 3)], [(False, 6)]]


def test_output_mode_and_timeout_arguments_are_checked_when_built(spark):
    df = spark.createDataFrame([("a",)], "k string")
    with pytest.raises(AnalysisException, match="should be append or update"):
        _grouped(None, "Complete", df=df)
    with pytest.raises(AnalysisException, match="Invalid streaming output mode: bogus"):
        _grouped(None, "bogus", df=df)
    with pytest.raises(AnalysisException, match="Unknown timeoutConf"):
        _grouped(None, "update", "Sometimes", df=df)
    assert _grouped(None, "Update", df=df).columns == ["k", "n", "expired", "at"]


def test_a_batch_dataframe_fails_as_in_spark(spark):
    df = _grouped(None, "update", df=spark.createDataFrame([("a",)], "k string"))
    with pytest.raises(UnsupportedOperationException,
                       match=r"unsupported in batch query\. Use applyInPandas instead"):
        df.collect()


def test_a_failing_function_fails_the_query_naming_the_group(spark, tmp_path):
    stream = MemoryStream("k STRING", spark)

    def boom(key: tuple[Any, ...], frames: Any, state: GroupState) -> Any:
        _ = state.get  # no state yet
        return iter([])

    df = stream.toDF().groupBy("k").applyInPandasWithState(
        boom, "k string", "n long", "update", GroupStateTimeout.NoTimeout)
    q = (df.writeStream.outputMode("update").format("noop")
         .option("checkpointLocation", str(tmp_path / "cp")).start())
    stream.addData([("a",)])
    with pytest.raises(Exception, match=r"`boom` failed on the group \('a',\): ValueError: "
                                        r"\[STATE_NOT_EXISTS\]"):
        q.processAllAvailable(30)
    q.stop()


def test_a_restarted_query_times_out_keys_stored_before_the_restart(spark, tmp_path,
                                                                    monkeypatch):
    clock = Clock(2_000_000)
    monkeypatch.setattr(microbatch, "now_ms", clock)
    stream = MemoryStream("k STRING", spark)
    sink = Batches()

    def start() -> Any:
        df = stream.toDF().groupBy("k").applyInPandasWithState(
            counts_with_idle_timeout, "k string, n long, expired boolean, at long", "n long",
            "update", GroupStateTimeout.ProcessingTimeTimeout)
        return (df.writeStream.outputMode("update").foreachBatch(sink)
                .option("checkpointLocation", str(tmp_path / "cp")).start())

    q = start()
    _feed(q, stream, [("a",)])
    q.stop()
    clock.now += 60_001
    q = start()  # no new rows: only the stored timeout asks for a batch
    q.processAllAvailable(30)
    q.stop()
    assert sink.nonempty() == [[("a", 1, False, 2_000_000)], [("a", 1, True, 2_060_001)]]


def pid_of_call(key: tuple[Any, ...], frames: Iterator[pd.DataFrame],
                state: GroupState) -> Iterator[pd.DataFrame]:
    n = sum(len(f) for f in frames)
    yield pd.DataFrame({"k": [key[0]], "n": [n], "pid": [os.getpid()]})


def test_shipped_calls_run_in_worker_processes_with_the_same_output(spark, tmp_path,
                                                                    calls_run):
    stream = MemoryStream("k STRING", spark)
    sink = Batches()
    df = stream.toDF().groupBy("k").applyInPandasWithState(
        pid_of_call, "k string, n long, pid long", "n long", "update",
        GroupStateTimeout.NoTimeout)
    q = (df.writeStream.outputMode("update").foreachBatch(sink)
         .option("checkpointLocation", str(tmp_path / "cp")).start())
    _feed(q, stream, [("a",), ("b",), ("a",)])
    q.stop()
    [rows] = sink.nonempty()
    assert sorted(r[:2] for r in rows) == [("a", 2), ("b", 1)]
    here = {r[2] == os.getpid() for r in rows}
    assert here == ({True} if calls_run == "in_process" else {False})
