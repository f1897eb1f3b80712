"""transformWithStateInPandas on a stream: exact rows per batch for value, list and map
state, processing- and event-time timers, TTL, initial state and restarts, and PySpark's
errors."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pandas as pd
import pytest

from unbounded.runtime import microbatch
from unbounded.sql.streaming_state import (
    ExpiredTimerInfo,
    StatefulProcessor,
    StatefulProcessorHandle,
    TimerValues,
)
from unbounded.testing import MemoryStream

T0 = dt.datetime(2026, 1, 1, 10, 0, 0)


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


class Clock:
    """The batch timestamps the micro-batch loop logs, set by the test."""

    def __init__(self, start_ms: int) -> None:
        self.now = start_ms

    def __call__(self) -> int:
        return self.now


def _start(df: Any, sink: Batches, cp: Any, mode: str = "update") -> Any:
    return (df.writeStream.outputMode(mode).foreachBatch(sink)
            .option("checkpointLocation", str(cp)).start())


def _feed(q: Any, stream: MemoryStream, rows: list[tuple[Any, ...]]) -> None:
    stream.addData(rows)
    q.processAllAvailable(30)


class RunningCount(StatefulProcessor):
    """A value state: rows seen per key."""

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.count = handle.getValueState("count", "n long")

    def handleInputRows(self, key: Any, rows: Iterator[pd.DataFrame],
                        timerValues: TimerValues) -> Iterator[pd.DataFrame]:
        n = (self.count.get() or (0,))[0] + sum(len(pdf) for pdf in rows)
        self.count.update((n,))
        yield pd.DataFrame({"k": [key[0]], "n": [n]})


def _counts(stream: MemoryStream) -> Any:
    return stream.toDF().groupBy("k").transformWithStateInPandas(
        RunningCount(), "k string, n long", "Update", "None")


def test_a_value_state_keeps_a_running_count_per_key(spark, tmp_path):
    stream = MemoryStream("k STRING", spark)
    sink = Batches()
    q = _start(_counts(stream), sink, tmp_path / "cp")
    _feed(q, stream, [("a",), ("b",), ("a",)])
    _feed(q, stream, [("a",)])
    _feed(q, stream, [("b",), ("c",)])
    q.stop()
    assert sink.nonempty() == [[("a", 2), ("b", 1)], [("a", 3)], [("b", 2), ("c", 1)]]


def test_a_restart_continues_the_counts_from_the_checkpoint(spark, tmp_path):
    stream = MemoryStream("k STRING", spark)
    sink = Batches()
    q = _start(_counts(stream), sink, tmp_path / "cp")
    _feed(q, stream, [("a",), ("b",)])
    q.stop()
    q = _start(_counts(stream), sink, tmp_path / "cp")
    _feed(q, stream, [("a",), ("a",)])
    q.stop()
    assert sink.nonempty() == [[("a", 1), ("b", 1)], [("a", 3)]]


class Recent(StatefulProcessor):
    """A list state: the last three words per key, oldest first."""

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.words = handle.getListState("words", "w string, at long")

    def handleInputRows(self, key: Any, rows: Iterator[pd.DataFrame],
                        timerValues: TimerValues) -> Iterator[pd.DataFrame]:
        pdf = pd.concat(list(rows))
        self.words.appendList([(w, int(i)) for w, i in zip(pdf.w, pdf.i, strict=True)])
        kept = list(self.words.get())[-3:]
        self.words.put(kept)
        yield pd.DataFrame({"k": [key[0]], "words": [",".join(w for w, _ in kept)],
                            "exists": [self.words.exists()]})


def test_a_list_state_appends_and_replaces_its_elements(spark, tmp_path):
    stream = MemoryStream("k STRING, w STRING, i LONG", spark)
    sink = Batches()
    df = stream.toDF().groupBy("k").transformWithStateInPandas(
        Recent(), "k string, words string, exists boolean", "Update", "None")
    q = _start(df, sink, tmp_path / "cp")
    _feed(q, stream, [("a", "x", 1), ("a", "y", 2), ("b", "p", 3)])
    _feed(q, stream, [("a", "z", 4), ("a", "w", 5)])
    q.stop()
    assert sink.nonempty() == [[("a", "x,y", True), ("b", "p", True)],
                               [("a", "y,z,w", True)]]


class Tally(StatefulProcessor):
    """A map state: counts per word per key; "-word" removes the word."""

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.tally = handle.getMapState("tally", "word string", "n long")

    def handleInputRows(self, key: Any, rows: Iterator[pd.DataFrame],
                        timerValues: TimerValues) -> Iterator[pd.DataFrame]:
        for pdf in rows:
            for word in pdf.w:
                if word.startswith("-"):
                    self.tally.removeKey((word[1:],))
                    continue
                n = (self.tally.getValue((word,)) or (0,))[0]
                self.tally.updateValue((word,), (n + 1,))
        pairs = sorted(f"{k[0]}={v[0]}" for k, v in self.tally.iterator())
        yield pd.DataFrame({"k": [key[0]], "tally": [" ".join(pairs)],
                            "has_x": [self.tally.containsKey(("x",))]})


def test_a_map_state_updates_and_removes_user_keys(spark, tmp_path):
    stream = MemoryStream("k STRING, w STRING", spark)
    sink = Batches()
    df = stream.toDF().groupBy("k").transformWithStateInPandas(
        Tally(), "k string, tally string, has_x boolean", "Update", "None")
    q = _start(df, sink, tmp_path / "cp")
    _feed(q, stream, [("a", "x"), ("a", "y"), ("a", "x"), ("b", "y")])
    q.stop()
    q = _start(df, sink, tmp_path / "cp")
    _feed(q, stream, [("a", "-x"), ("a", "z"), ("b", "y")])
    q.stop()
    assert sink.nonempty() == [
        [("a", "x=2 y=1", True), ("b", "y=1", False)],
        [("a", "y=1 z=1", False), ("b", "y=2", False)],
    ]


class IdleAlert(StatefulProcessor):
    """Counts per key; a key idle for 60 s of processing time is reported and cleared."""

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.handle = handle
        self.count = handle.getValueState("count", "n long")

    def handleInputRows(self, key: Any, rows: Iterator[pd.DataFrame],
                        timerValues: TimerValues) -> Iterator[pd.DataFrame]:
        for timer in self.handle.listTimers():
            self.handle.deleteTimer(timer)
        now = timerValues.getCurrentProcessingTimeInMs()
        self.handle.registerTimer(now + 60_000)
        n = (self.count.get() or (0,))[0] + sum(len(pdf) for pdf in rows)
        self.count.update((n,))
        yield pd.DataFrame({"k": [key[0]], "n": [n], "expired": [False], "at": [now]})

    def handleExpiredTimer(self, key: Any, timerValues: TimerValues,
                           expiredTimerInfo: ExpiredTimerInfo) -> Iterator[pd.DataFrame]:
        n = self.count.get()[0]  # type: ignore[index]
        self.count.clear()
        yield pd.DataFrame({"k": [key[0]], "n": [n], "expired": [True],
                            "at": [expiredTimerInfo.getExpiryTimeInMs()]})


def _idle(stream: MemoryStream) -> Any:
    return stream.toDF().groupBy("k").transformWithStateInPandas(
        IdleAlert(), "k string, n long, expired boolean, at long", "Update", "ProcessingTime")


def test_processing_time_timers_fire_in_a_no_data_batch_once_due(spark, tmp_path,
                                                                 monkeypatch):
    clock = Clock(1_000_000)
    monkeypatch.setattr(microbatch, "now_ms", clock)
    stream = MemoryStream("k STRING", spark)
    sink = Batches()
    q = _start(_idle(stream), sink, tmp_path / "cp")
    _feed(q, stream, [("a",), ("b",), ("a",)])
    clock.now += 30_000
    _feed(q, stream, [("a",)])  # a's timer moves to 1_090_000; b's stays 1_060_000
    clock.now += 29_999
    q.processAllAvailable(30)  # 1_059_999: nothing due
    clock.now += 1  # 1_060_000: b's timer fires (at or before the batch timestamp)
    q.processAllAvailable(30)
    clock.now += 30_000
    _feed(q, stream, [("b",)])  # b starts again from nothing; a fires in the same batch
    q.stop()
    assert sink.nonempty() == [
        [("a", 2, False, 1_000_000), ("b", 1, False, 1_000_000)],
        [("a", 3, False, 1_030_000)],
        [("b", 1, True, 1_060_000)],
        [("a", 3, True, 1_090_000), ("b", 1, False, 1_090_000)],
    ]


def test_a_restarted_query_fires_timers_stored_before_the_restart(spark, tmp_path,
                                                                  monkeypatch):
    clock = Clock(2_000_000)
    monkeypatch.setattr(microbatch, "now_ms", clock)
    stream = MemoryStream("k STRING", spark)
    sink = Batches()
    q = _start(_idle(stream), sink, tmp_path / "cp")
    _feed(q, stream, [("a",)])
    q.stop()
    clock.now += 60_000
    q = _start(_idle(stream), sink, tmp_path / "cp")  # only the stored timer asks
    q.processAllAvailable(30)
    q.stop()
    assert sink.nonempty() == [[("a", 1, False, 2_000_000)], [("a", 1, True, 2_060_000)]]


class Sessions(StatefulProcessor):
    """Sessions per user, closed by an event-time timer 30 minutes after the last event."""

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.handle = handle
        self.session = handle.getValueState("session", "start timestamp, end timestamp, n long")

    def handleInputRows(self, key: Any, rows: Iterator[pd.DataFrame],
                        timerValues: TimerValues) -> Iterator[pd.DataFrame]:
        pdf = pd.concat(list(rows))
        start, end, n = self.session.get() or (None, None, 0)
        start = min(filter(None, [start, pdf.ts.min().to_pydatetime()]))
        end = max(filter(None, [end, pdf.ts.max().to_pydatetime()]))
        for timer in self.handle.listTimers():
            self.handle.deleteTimer(timer)
        self.handle.registerTimer(ms(end) + 30 * 60_000)
        self.session.update((start, end, n + len(pdf)))
        return iter([])

    def handleExpiredTimer(self, key: Any, timerValues: TimerValues,
                           expiredTimerInfo: ExpiredTimerInfo) -> Iterator[pd.DataFrame]:
        start, end, n = self.session.get()  # type: ignore[misc]
        self.session.clear()
        yield pd.DataFrame({"user": [key[0]], "start": [start], "end": [end], "n": [n],
                            "watermark": [timerValues.getCurrentWatermarkInMs()]})


def test_event_time_timers_fire_when_the_watermark_passes_them(spark, tmp_path):
    stream = MemoryStream("user STRING, ts TIMESTAMP", spark)
    sink = Batches()
    df = (stream.toDF().withWatermark("ts", "10 minutes").groupBy("user")
          .transformWithStateInPandas(
              Sessions(), "user string, start timestamp, end timestamp, n long, "
              "watermark long", "Append", "EventTime"))
    q = _start(df, sink, tmp_path / "cp", "append")
    _feed(q, stream, [("a", at(0)), ("a", at(5)), ("b", at(2))])
    assert sink.nonempty() == []
    # Watermark 10:40 passes b's timer (10:32); a's is 10:50 after this batch's row.
    _feed(q, stream, [("a", at(20)), ("c", at(50))])
    assert sink.nonempty() == [[("b", at(2), at(2), 1, ms(at(40)))]]
    # Watermark 11:20 passes a's 10:50; c's timer 11:20 is reached too (at or before).
    _feed(q, stream, [("z", at(90))])
    # 10:30 is late (not after the watermark 11:20): dropped.
    _feed(q, stream, [("a", at(30))])
    q.stop()
    assert sink.nonempty()[1:] == [[("a", at(0), at(20), 3, ms(at(80))),
                                    ("c", at(50), at(50), 1, ms(at(80)))]]


class Remember(StatefulProcessor):
    """A value state with a 60 s TTL: reports what it held before this batch."""

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.last = handle.getValueState("last", "w string", ttlDurationMs=60_000)

    def handleInputRows(self, key: Any, rows: Iterator[pd.DataFrame],
                        timerValues: TimerValues) -> Iterator[pd.DataFrame]:
        before = self.last.get()
        words = [w for pdf in rows for w in pdf.w]
        if words[-1] != "peek":
            self.last.update((words[-1],))
        yield pd.DataFrame({"k": [key[0]], "before": [repr(before)]})


def test_a_value_state_with_a_ttl_expires_in_processing_time(spark, tmp_path, monkeypatch):
    clock = Clock(5_000_000)
    monkeypatch.setattr(microbatch, "now_ms", clock)
    stream = MemoryStream("k STRING, w STRING", spark)
    sink = Batches()
    df = stream.toDF().groupBy("k").transformWithStateInPandas(
        Remember(), "k string, before string", "Update", "ProcessingTime")
    q = _start(df, sink, tmp_path / "cp")
    _feed(q, stream, [("a", "x"), ("b", "y")])  # both expire at 5_060_000
    clock.now += 30_000
    _feed(q, stream, [("a", "peek"), ("b", "z")])  # b's "z" lives to 5_090_000
    clock.now += 30_000  # 5_060_000: a's value has expired, b's not
    _feed(q, stream, [("a", "peek"), ("b", "peek")])
    q.stop()
    assert sink.nonempty() == [
        [("a", "None"), ("b", "None")],
        [("a", "('x',)"), ("b", "('y',)")],
        [("a", "None"), ("b", "('z',)")],
    ]


class Seeded(RunningCount):
    """The running count, seeded from an initial state."""

    def handleInitialState(self, key: Any, initialState: pd.DataFrame,
                           timerValues: TimerValues) -> None:
        self.count.update((int(initialState.n.sum()),))


def test_the_initial_state_seeds_the_first_batch_only(spark, tmp_path):
    stream = MemoryStream("k STRING", spark)
    sink = Batches()
    initial = spark.createDataFrame([("a", 10), ("z", 5), ("z", 1)], "k string, n long")
    df = stream.toDF().groupBy("k").transformWithStateInPandas(
        Seeded(), "k string, n long", "Update", "None", initialState=initial.groupBy("k"))
    q = _start(df, sink, tmp_path / "cp")
    _feed(q, stream, [("a",), ("b",)])
    _feed(q, stream, [("z",)])
    q.stop()
    q = _start(df, sink, tmp_path / "cp")  # the initial state is not applied again
    _feed(q, stream, [("a",)])
    q.stop()
    assert sink.nonempty() == [[("a", 11), ("b", 1)], [("z", 7)], [("a", 12)]]


class TtlOnce(StatefulProcessor):
    def init(self, handle: StatefulProcessorHandle) -> None:
        handle.getValueState("v", "n long", ttlDurationMs=1000)

    def handleInputRows(self, key: Any, rows: Iterator[pd.DataFrame],
                        timerValues: TimerValues) -> Iterator[pd.DataFrame]:
        return iter([])


def test_a_ttl_outside_processing_time_fails_as_in_pyspark(spark, tmp_path):
    stream = MemoryStream("k STRING", spark)
    df = stream.toDF().groupBy("k").transformWithStateInPandas(
        TtlOnce(), "k string", "Update", "None")
    with pytest.raises(Exception, match=r"STATEFUL_PROCESSOR_INCORRECT_TIME_MODE_TO_ASSIGN_TTL.*"
                                        r"Cannot use TTL for state=v in timeMode=None"):
        _start(df, Batches(), tmp_path / "cp")


def test_timers_without_a_time_mode_fail_the_batch(spark, tmp_path):
    class Timed(RunningCount):
        def handleInputRows(self, key: Any, rows: Iterator[pd.DataFrame],
                            timerValues: TimerValues) -> Iterator[pd.DataFrame]:
            StatefulProcessorHandle.registerTimer(self.handle, 1)
            return iter([])

        def init(self, handle: StatefulProcessorHandle) -> None:
            self.handle = handle

    stream = MemoryStream("k STRING", spark)
    df = stream.toDF().groupBy("k").transformWithStateInPandas(
        Timed(), "k string", "Update", "None")
    q = _start(df, Batches(), tmp_path / "cp")
    stream.addData([("a",)])
    with pytest.raises(Exception, match="STATEFUL_PROCESSOR_CANNOT_PERFORM_OPERATION_WITH_"
                                        "INVALID_TIME_MODE"):
        q.processAllAvailable(30)
    q.stop()


def test_arguments_are_checked_when_built(spark):
    df = spark.createDataFrame([("a",)], "k string")
    with pytest.raises(Exception, match="STATEFUL_PROCESSOR_UNKNOWN_TIME_MODE"):
        df.groupBy("k").transformWithStateInPandas(RunningCount(), "k string", "Update", "Wall")
    with pytest.raises(Exception, match="should be append or update"):
        df.groupBy("k").transformWithStateInPandas(RunningCount(), "k string", "Complete",
                                                   "None")
    built = df.groupBy("k").transformWithStateInPandas(RunningCount(), "k string, n long",
                                                       "update", "processingtime")
    assert built.columns == ["k", "n"]
