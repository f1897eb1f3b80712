"""Row-based transformWithState (PySpark 4.1+) on a stream: the processor gets and yields
``Row``s; keys are tuples of Python values; the initial state comes a Row at a time;
value, list and map state, timers and restarts work as in transformWithStateInPandas."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from unbounded.sql import Row
from unbounded.sql.streaming_state import (
    ExpiredTimerInfo,
    StatefulProcessor,
    StatefulProcessorHandle,
    TimerValues,
)
from unbounded.testing import MemoryStream

T0 = dt.datetime(2026, 1, 1, 10, 0, 0)
UTC0 = T0.replace(tzinfo=dt.UTC)


def at(minutes: float) -> dt.datetime:
    return T0 + dt.timedelta(minutes=minutes)


def ms(t: dt.datetime) -> int:
    return int(t.replace(tzinfo=dt.UTC).timestamp() * 1000)


class Batches:
    """A foreachBatch sink keeping each non-empty batch's rows, sorted."""

    def __init__(self) -> None:
        self.by_id: dict[int, list[tuple[Any, ...]]] = {}

    def __call__(self, df: Any, batch_id: int) -> None:
        rows = sorted((tuple(r) for r in df.collect()), key=repr)
        if rows:
            self.by_id[batch_id] = rows

    def batches(self) -> list[list[tuple[Any, ...]]]:
        return [rows for _, rows in sorted(self.by_id.items())]


def _start(df: Any, sink: Batches, cp: Any, mode: str = "update") -> Any:
    return (df.writeStream.outputMode(mode).foreachBatch(sink)
            .option("checkpointLocation", str(cp)).start())


def _feed(q: Any, stream: MemoryStream, rows: list[tuple[Any, ...]]) -> None:
    stream.addData(rows)
    q.processAllAvailable(30)


class Totals(StatefulProcessor):
    """A running count and amount total per key; reports what each call saw."""

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.total = handle.getValueState("total", "n long, amount long")
        self.seen = handle.getListState("seen", "w string")

    def handleInputRows(self, key: Any, rows: Iterator[Row],
                        timerValues: TimerValues) -> Iterator[Row]:
        n, amount = self.total.get() or (0, 0)
        for row in rows:
            assert isinstance(row, Row)
            n, amount = n + 1, amount + row.amount
            self.seen.appendValue((row["w"],))
        self.total.update((n, amount))
        yield Row(k=key[0], n=n, amount=amount,
                  words=",".join(w for (w,) in self.seen.get()), key=repr(key))

    def handleInitialState(self, key: Any, initialState: Row,
                           timerValues: TimerValues) -> None:
        n, amount = self.total.get() or (0, 0)
        self.total.update((n + 1, amount + initialState.amount))


OUT = "k string, n long, amount long, words string, key string"


def test_rows_in_rows_out_with_state_across_batches_and_a_restart(spark, tmp_path):
    stream = MemoryStream("k STRING, w STRING, amount LONG", spark)
    sink = Batches()
    df = stream.toDF().groupBy("k").transformWithState(Totals(), OUT, "Update", "None")
    q = _start(df, sink, tmp_path / "cp")
    _feed(q, stream, [("a", "x", 1), ("b", "y", 10), ("a", "z", 2)])
    q.stop()
    q = _start(df, sink, tmp_path / "cp")
    _feed(q, stream, [("a", "w", 4)])
    q.stop()
    assert sink.batches() == [
        [("a", 2, 3, "x,z", "('a',)"), ("b", 1, 10, "y", "('b',)")],
        [("a", 3, 7, "x,z,w", "('a',)")],
    ]


def test_the_initial_state_comes_one_row_at_a_time(spark, tmp_path):
    stream = MemoryStream("k STRING, w STRING, amount LONG", spark)
    sink = Batches()
    initial = spark.createDataFrame([("a", 100), ("a", 200), ("z", 5)], "k string, amount long")
    df = stream.toDF().groupBy("k").transformWithState(
        Totals(), OUT, "Update", "None", initialState=initial.groupBy("k"))
    q = _start(df, sink, tmp_path / "cp")
    _feed(q, stream, [("a", "x", 1)])
    _feed(q, stream, [("z", "y", 1)])
    q.stop()
    # a: two initial rows (n=2, 300) then one row; z: one initial row, its row next batch
    assert sink.batches() == [[("a", 3, 301, "x", "('a',)")], [("z", 2, 6, "y", "('z',)")]]


class Sessions(StatefulProcessor):
    """Event-time sessions: a timer 30 minutes after a user's last event closes them;
    rows carry their timestamps as PySpark's transformWithState does (aware, UTC)."""

    def init(self, handle: StatefulProcessorHandle) -> None:
        self.handle = handle
        self.session = handle.getValueState("session", "start timestamp, end timestamp, n long")

    def handleInputRows(self, key: Any, rows: Iterator[Row],
                        timerValues: TimerValues) -> Iterator[Row]:
        aware = [r.ts for r in rows]
        assert all(t.tzinfo is not None for t in aware)
        times = [t.replace(tzinfo=None) for t in aware]  # state hands back naive UTC
        start, end, n = self.session.get() or (None, None, 0)
        start = min(t for t in [start, *times] if t is not None)
        end = max(t for t in [end, *times] if t is not None)
        for timer in self.handle.listTimers():
            self.handle.deleteTimer(timer)
        self.handle.registerTimer(ms(end) + 30 * 60_000)
        self.session.update((start, end, n + len(times)))
        return iter([])

    def handleExpiredTimer(self, key: Any, timerValues: TimerValues,
                           expiredTimerInfo: ExpiredTimerInfo) -> Iterator[Row]:
        start, end, n = self.session.get()  # type: ignore[misc]
        self.session.clear()
        yield Row(user=key[0], start=start, end=end, n=n,
                  fired=expiredTimerInfo.getExpiryTimeInMs())


def test_event_time_timers_close_sessions_with_row_output(spark, tmp_path):
    stream = MemoryStream("user STRING, ts TIMESTAMP", spark)
    sink = Batches()
    df = (stream.toDF().withWatermark("ts", "10 minutes").groupBy("user")
          .transformWithState(Sessions(), "user string, start timestamp, end timestamp, "
                              "n long, fired long", "Append", "EventTime"))
    q = _start(df, sink, tmp_path / "cp", "append")
    _feed(q, stream, [("a", at(0)), ("a", at(5)), ("b", at(2))])
    _feed(q, stream, [("a", at(20)), ("c", at(50))])  # watermark 10:40 passes b's 10:32
    _feed(q, stream, [("z", at(90))])  # watermark 11:20 passes a's 10:50 and c's 11:20
    q.stop()
    assert sink.batches() == [
        [("b", at(2), at(2), 1, ms(at(32)))],
        [("a", at(0), at(20), 3, ms(at(50))), ("c", at(50), at(50), 1, ms(at(80)))],
    ]


class Bad(StatefulProcessor):
    def init(self, handle: StatefulProcessorHandle) -> None:
        pass

    def handleInputRows(self, key: Any, rows: Iterator[Row],
                        timerValues: TimerValues) -> Iterator[Any]:
        yield {"k": key[0]}


def test_a_handler_yielding_something_else_than_rows_fails_the_batch(spark, tmp_path):
    stream = MemoryStream("k STRING", spark)
    df = stream.toDF().groupBy("k").transformWithState(Bad(), "k string", "Update", "None")
    q = _start(df, Batches(), tmp_path / "cp")
    stream.addData([("a",)])
    with pytest.raises(Exception, match=r"must yield pyspark.sql.Row, got dict"):
        q.processAllAvailable(30)
    q.stop()


def test_a_row_missing_an_output_field_gives_null_and_a_processor_is_required(spark, tmp_path):
    class Partial(Bad):
        def handleInputRows(self, key: Any, rows: Iterator[Row],
                            timerValues: TimerValues) -> Iterator[Any]:
            yield Row(k=key[0])

    stream = MemoryStream("k STRING", spark)
    sink = Batches()
    df = stream.toDF().groupBy("k").transformWithState(Partial(), "k string, n long",
                                                       "Update", "None")
    q = _start(df, sink, tmp_path / "cp")
    _feed(q, stream, [("a",)])
    q.stop()
    assert sink.batches() == [[("a", None)]]
    with pytest.raises(TypeError, match="should be a StatefulProcessor, got function"):
        stream.toDF().groupBy("k").transformWithState(lambda: None, "k string", "Update",
                                                      "None")
